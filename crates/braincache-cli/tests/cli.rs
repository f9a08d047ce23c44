//! The `braincache` binary, run for real on caches written by the backends themselves.
//!
//! Every test works in its own temporary folder. Tests of commands that only read take a
//! snapshot of the folder (every file's name, bytes and modification time) before and compare
//! after: the cache must be byte for byte as it was, and no file (a lock, a sidecar, the cache
//! itself) may appear.

use braincache_core::{Backend, Codec, Json, Postcard, Record, Timestamp};
use braincache_file::FileBackend;
use braincache_redb::RedbBackend;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn out(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }

    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        self
    }

    /// Checks a failure: exit code 2, one `error: ` line naming `path`, no panic.
    #[track_caller]
    fn failed(self, path: &Path) -> Run {
        assert_eq!(
            self.code,
            2,
            "stdout: {}\nstderr: {}",
            self.out(),
            self.stderr
        );
        assert!(self.stderr.starts_with("error: "), "{}", self.stderr);
        assert!(
            self.stderr.contains(&path.display().to_string()),
            "the message names the file: {}",
            self.stderr
        );
        // No panic message from the hook (an error may say that redb panicked, and was caught).
        assert!(!self.stderr.contains("panicked at"), "{}", self.stderr);
        assert!(self.stdout.is_empty(), "{}", self.out());
        self
    }
}

fn braincache<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_braincache"))
        .args(args)
        .output()
        .expect("the binary runs");
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every file in `dir`: name → (bytes, modification time).
type Snapshot = BTreeMap<String, (Vec<u8>, SystemTime)>;

fn snapshot(dir: &Path) -> Snapshot {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                (std::fs::read(e.path()).unwrap(), meta.modified().unwrap()),
            )
        })
        .collect()
}

#[track_caller]
fn assert_unchanged(dir: &Path, before: &Snapshot) {
    let after = snapshot(dir);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "no file created or removed"
    );
    for (name, (bytes, mtime)) in before {
        assert!(after[name].0 == *bytes, "{name} changed");
        assert_eq!(after[name].1, *mtime, "{name} was rewritten");
    }
}

fn long_ago() -> Timestamp {
    Timestamp::from_unix_millis(1_000_000) // 1970-01-01T00:16:40Z
}

fn in_an_hour() -> Timestamp {
    Timestamp::now() + Duration::from_secs(3600)
}

/// A cache's records, as the tests write them and expect them back.
fn file_records() -> Vec<(String, Record)> {
    let json = |v: serde_json::Value| Json.encode(&v).unwrap();
    vec![
        (
            "user".into(),
            Record::new(json(serde_json::json!({"id": 1234, "name": "Ada"})), None),
        ),
        (
            "session".into(),
            Record::new(json("abc".into()), Some(in_an_hour())),
        ),
        ("old".into(), Record::new(json(7.into()), Some(long_ago()))),
        // Bytes that are not JSON text, JSON that looks like a tag, JSON with whitespace, empty:
        // the file backend keeps them in tagged forms.
        ("bin".into(), Record::new(vec![0, 1, 255], None)),
        (
            "tag".into(),
            Record::new(br#"{"$bytes":"x"}"#.to_vec(), None),
        ),
        ("spaced".into(), Record::new(b" 1 ".to_vec(), None)),
        (
            "empty".into(),
            Record::new(Vec::new(), Some(long_ago() + Duration::from_millis(250))),
        ),
        (
            "line\nbreak \"quoted\"".into(),
            Record::new(b"null".to_vec(), None),
        ),
    ]
}

fn redb_records() -> Vec<(String, Record)> {
    vec![
        ("user".into(), pc_record(pc(&(1234u32, "Ada")), None)),
        ("session".into(), pc_record(pc(&"abc"), Some(in_an_hour()))),
        ("old".into(), pc_record(pc(&7u64), Some(long_ago()))),
        // Postcard bytes that happen to be JSON text (`1`): exported as bytes all the same.
        ("one".into(), pc_record(pc(&49u8), None)),
        ("empty".into(), pc_record(Vec::new(), Some(long_ago()))),
    ]
}

/// A record written with the postcard codec (as `BrainCache` over redb stored values before
/// MessagePack became its default, and does with `.codec(Postcard)`).
fn pc_record(value: Vec<u8>, expires_at: Option<Timestamp>) -> Record {
    Record::new(value, expires_at).with_codec(Some(Postcard::ID))
}

/// Postcard bytes.
fn pc<T: serde::Serialize>(value: &T) -> Vec<u8> {
    Postcard.encode(value).unwrap()
}

/// A JSON cache written by the file backend, in a new folder without the backend's lock file,
/// and the records in it.
fn file_cache() -> (tempfile::TempDir, PathBuf, Vec<(String, Record)>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    let records = file_records();
    FileBackend::open(&path)
        .unwrap()
        .set_many(records.clone())
        .unwrap();
    std::fs::remove_file(dir.path().join("cache.json.lock")).unwrap();
    (dir, path, records)
}

/// A redb cache written by the redb backend (closed), without its stamp file, and the records
/// in it.
fn redb_cache() -> (tempfile::TempDir, PathBuf, Vec<(String, Record)>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.redb");
    let records = redb_records();
    RedbBackend::open(&path)
        .unwrap()
        .set_many(records.clone())
        .unwrap();
    let _ = std::fs::remove_file(dir.path().join("cache.redb.seq"));
    (dir, path, records)
}

fn line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no `{name}:` line in\n{text}"))
}

fn value_bytes(records: &[(String, Record)]) -> usize {
    records.iter().map(|(_, r)| r.value.len()).sum()
}

#[test]
fn inspect_shows_counts_expiry_and_keys_and_changes_nothing() {
    for (backend, (dir, path, records)) in [("file (JSON)", file_cache()), ("redb", redb_cache())] {
        let before = snapshot(dir.path());
        let text = braincache([OsStr::new("inspect"), path.as_os_str()])
            .ok()
            .out();
        assert!(line(&text, "backend").ends_with(backend), "{text}");
        assert!(
            line(&text, "entries").ends_with(&format!(" {}", records.len())),
            "{text}"
        );
        assert!(
            line(&text, "expired").ends_with(" 2 (not purged yet)"),
            "{text}"
        );
        assert!(
            line(&text, "value bytes").ends_with(&format!(" {}", value_bytes(&records))),
            "{text}"
        );
        // The only deadline in the future is the session's, an hour away.
        let next = line(&text, "next expiry");
        assert!(
            next.contains("(in 59m") || next.contains("(in 1h"),
            "{next}"
        );
        assert!(next.contains('T') && next.contains("Z ("), "{next}");

        let text = braincache([
            OsStr::new("inspect"),
            path.as_os_str(),
            OsStr::new("--keys"),
        ])
        .ok()
        .out();
        let rows: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("SIZE"))
            .skip(1)
            .collect();
        assert_eq!(rows.len(), records.len(), "{text}");
        for (key, record) in &records {
            let shown = if key.contains('\n') {
                format!("{key:?}")
            } else {
                key.clone()
            };
            let row = rows
                .iter()
                .find(|r| r.ends_with(&format!("  {shown}")))
                .unwrap_or_else(|| panic!("no row for {key:?} in\n{text}"));
            assert!(
                row.trim_start()
                    .starts_with(&format!("{} ", record.value.len())),
                "{row}"
            );
            let ttl = match record.expires_at {
                None => "never",
                Some(d) if d < Timestamp::now() => "expired ",
                Some(_) => "59m ",
            };
            assert!(row.contains(ttl), "{row}");
        }

        let json = braincache([
            OsStr::new("inspect"),
            path.as_os_str(),
            OsStr::new("--keys"),
            OsStr::new("--json"),
        ])
        .ok()
        .out();
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(doc["entries"], records.len());
        assert_eq!(doc["expired"], 2);
        assert_eq!(doc["value_bytes"], value_bytes(&records));
        assert_eq!(doc["keys"].as_array().unwrap().len(), records.len());
        let session = records.iter().find(|(k, _)| k == "session").unwrap();
        let deadline = session.1.expires_at.unwrap().as_unix_secs_f64();
        assert!((doc["next_expiry"].as_f64().unwrap() - deadline).abs() < 0.001);

        assert_unchanged(dir.path(), &before);
    }
}

#[test]
fn get_prints_json_from_the_file_backend_and_hex_from_redb() {
    let (dir, path, _) = file_cache();
    let before = snapshot(dir.path());
    let get = |args: &[&str]| {
        let mut all = vec![OsStr::new("get"), path.as_os_str()];
        all.extend(args.iter().map(OsStr::new));
        braincache(all).ok().out()
    };
    assert_eq!(get(&["user"]), "{\"id\":1234,\"name\":\"Ada\"}\n");
    assert_eq!(get(&["session"]), "\"abc\"\n");
    assert_eq!(get(&["tag"]), "{\"$bytes\":\"x\"}\n"); // the value, not its tagged form
    assert_eq!(get(&["line\nbreak \"quoted\""]), "null\n");
    // Not JSON text: hex.
    assert_eq!(get(&["bin"]), "0001ff\n");
    assert_eq!(get(&["spaced"]), "203120\n");
    assert_eq!(
        get(&["user", "--hex"]),
        format!("{}\n", hex(br#"{"id":1234,"name":"Ada"}"#))
    );
    let raw = braincache([
        OsStr::new("get"),
        path.as_os_str(),
        OsStr::new("bin"),
        OsStr::new("--raw"),
    ])
    .ok();
    assert_eq!(raw.stdout, [0, 1, 255]);
    assert_unchanged(dir.path(), &before);

    let (dir, path, _) = redb_cache();
    let before = snapshot(dir.path());
    let user = pc(&(1234u32, "Ada"));
    let shown = braincache([OsStr::new("get"), path.as_os_str(), OsStr::new("user")])
        .ok()
        .out();
    assert_eq!(shown, format!("{}\n", hex(&user)));
    let raw = braincache([
        OsStr::new("get"),
        path.as_os_str(),
        OsStr::new("user"),
        OsStr::new("--raw"),
    ])
    .ok();
    assert_eq!(raw.stdout, user);
    let back: (u32, String) = Postcard.decode(&raw.stdout).unwrap();
    assert_eq!(back, (1234, "Ada".to_owned()));
    // Postcard bytes that are JSON text by chance still print as hex for redb.
    let one = braincache([OsStr::new("get"), path.as_os_str(), OsStr::new("one")])
        .ok()
        .out();
    assert_eq!(one, "31\n");
    assert_unchanged(dir.path(), &before);
}

#[test]
fn get_of_a_missing_or_expired_key_exits_with_1_and_says_which() {
    for (dir, path, _) in [file_cache(), redb_cache()] {
        let before = snapshot(dir.path());
        let missing = braincache([OsStr::new("get"), path.as_os_str(), OsStr::new("nope")]);
        assert_eq!(missing.code, 1);
        assert!(missing.stdout.is_empty());
        assert!(
            missing.stderr.starts_with("not found: key \"nope\""),
            "{}",
            missing.stderr
        );
        assert!(missing.stderr.contains(&path.display().to_string()));

        let expired = braincache([OsStr::new("get"), path.as_os_str(), OsStr::new("old")]);
        assert_eq!(expired.code, 1);
        assert!(expired.stdout.is_empty());
        assert!(
            expired.stderr.starts_with("expired: key \"old\""),
            "{}",
            expired.stderr
        );
        assert!(
            expired.stderr.contains("1970-01-01T00:16:40Z"),
            "{}",
            expired.stderr
        );

        // --expired prints it anyway.
        let shown = braincache([
            OsStr::new("get"),
            path.as_os_str(),
            OsStr::new("old"),
            OsStr::new("--expired"),
            OsStr::new("--raw"),
        ])
        .ok();
        assert!(!shown.stdout.is_empty());
        assert_unchanged(dir.path(), &before);
    }
}

#[test]
fn delete_removes_keys_through_the_backend_and_writes_nothing_when_none_is_there() {
    for (dir, path, _) in [file_cache(), redb_cache()] {
        let before = snapshot(dir.path());
        let none = braincache([OsStr::new("delete"), path.as_os_str(), OsStr::new("nope")]).ok();
        assert_eq!(none.out(), "deleted 0 of 1 key\n");
        assert_unchanged(dir.path(), &before);

        let run = braincache([
            OsStr::new("delete"),
            path.as_os_str(),
            OsStr::new("user"),
            OsStr::new("old"),
            OsStr::new("nope"),
            OsStr::new("user"),
        ])
        .ok();
        assert_eq!(run.out(), "deleted 2 of 3 keys\n");
        let keys = stored_keys(&path);
        assert!(!keys.contains(&"user".to_owned()) && !keys.contains(&"old".to_owned()));
        assert!(keys.contains(&"session".to_owned()));
    }
}

#[test]
fn purge_removes_expired_entries_only() {
    for (dir, path, records) in [file_cache(), redb_cache()] {
        let run = braincache([OsStr::new("purge"), path.as_os_str()]).ok();
        assert_eq!(run.out(), "purged 2 expired entries\n");
        let keys = stored_keys(&path);
        let live: Vec<String> = records
            .iter()
            .filter(|(_, r)| !r.is_expired(Timestamp::now()))
            .map(|(k, _)| k.clone())
            .collect();
        let mut expected = live.clone();
        expected.sort();
        assert_eq!(keys, expected);

        // Nothing left to purge: the file is not written.
        let before = snapshot(dir.path());
        let again = braincache([OsStr::new("purge"), path.as_os_str()]).ok();
        assert_eq!(again.out(), "purged 0 expired entries\n");
        assert_unchanged(dir.path(), &before);
    }
}

/// The keys in the cache at `path`, sorted, through the backends' own API.
fn stored_keys(path: &Path) -> Vec<String> {
    if path.extension() == Some(OsStr::new("json")) {
        FileBackend::read_entries(path)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    } else {
        let backend = RedbBackend::open(path).unwrap();
        let mut keys: Vec<String> = file_records()
            .into_iter()
            .chain(redb_records())
            .map(|(k, _)| k)
            .filter(|k| backend.get(k).unwrap().is_some())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

#[test]
fn export_of_a_redb_cache_is_read_back_by_the_file_backend() {
    let (dir, path, mut expected) = redb_cache();
    let before = snapshot(dir.path());
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("export.json");
    let run = braincache([
        OsStr::new("export"),
        path.as_os_str(),
        OsStr::new("--output"),
        out.as_os_str(),
    ])
    .ok();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        run.out(),
        format!("exported {} entries to {}\n", expected.len(), out.display())
    );
    assert_unchanged(dir.path(), &before);

    // Same bytes, same deadlines, to the nanosecond.
    assert_eq!(FileBackend::read_entries(&out).unwrap(), expected);
    // Every postcard value is in the `$bytes` form with its codec id, even the one that is JSON
    // text by chance.
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains(r#""one": {"value": {"$bytes": "MQ==", "$codec": 1}, "expire_at": null}"#),
        "{text}"
    );
    // And a cache opened on it serves them.
    let backend = FileBackend::open(&out).unwrap();
    let user = backend.get("user").unwrap().unwrap();
    let user: (u32, String) = Postcard.decode(&user.value).unwrap();
    assert_eq!(user, (1234, "Ada".to_owned()));
    // Python's json module reads it too (when there is a python3).
    if let Ok(py) = Command::new("python3")
        .args([
            "-c",
            "import json,sys; d=json.load(open(sys.argv[1])); print(len(d), d['old']['expire_at'])",
        ])
        .arg(&out)
        .output()
        && py.status.success()
    {
        assert_eq!(String::from_utf8_lossy(&py.stdout), "5 1000.0\n");
    }

    // To standard output: the same document; --skip-expired leaves out the expired entries.
    let stdout = braincache([OsStr::new("export"), path.as_os_str()]).ok();
    assert_eq!(stdout.stdout, text.as_bytes());
    let live = braincache([
        OsStr::new("export"),
        path.as_os_str(),
        OsStr::new("--skip-expired"),
        OsStr::new("-o"),
        OsStr::new("-"),
    ])
    .ok();
    let doc: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&live.stdout).unwrap();
    assert_eq!(doc.keys().collect::<Vec<_>>(), ["one", "session", "user"]);
}

#[test]
fn export_of_a_file_cache_reproduces_the_file() {
    let (dir, path, _) = file_cache();
    let before = snapshot(dir.path());
    let run = braincache([OsStr::new("export"), path.as_os_str()]).ok();
    // The backend's own layout, byte for byte, tagged values and escaped keys included.
    assert_eq!(run.stdout, std::fs::read(&path).unwrap());
    assert_unchanged(dir.path(), &before);

    // An existing output is replaced; the cache itself cannot be the output.
    let out = dir.path().join("copy.json");
    std::fs::write(&out, "old content").unwrap();
    braincache([
        OsStr::new("export"),
        path.as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
    ])
    .ok();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&path).unwrap());
    let before = snapshot(dir.path());
    let refused = braincache([
        OsStr::new("export"),
        path.as_os_str(),
        OsStr::new("-o"),
        path.as_os_str(),
    ]);
    refused.failed(&path);
    assert_unchanged(dir.path(), &before);

    // An output in a folder that does not exist: an error naming it, nothing left behind.
    let nowhere = dir.path().join("no-such-folder").join("out.json");
    braincache([
        OsStr::new("export"),
        path.as_os_str(),
        OsStr::new("-o"),
        nowhere.as_os_str(),
    ])
    .failed(&nowhere);
    assert_unchanged(dir.path(), &before);
}

/// Every subcommand, with the extra arguments it needs.
fn every_command(path: &Path) -> Vec<Vec<&OsStr>> {
    let p = path.as_os_str();
    vec![
        vec![OsStr::new("inspect"), p],
        vec![OsStr::new("inspect"), p, OsStr::new("--keys")],
        vec![OsStr::new("get"), p, OsStr::new("user")],
        vec![OsStr::new("delete"), p, OsStr::new("user")],
        vec![OsStr::new("purge"), p],
        vec![OsStr::new("export"), p],
    ]
}

#[test]
fn a_missing_file_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["cache.json", "cache.redb"] {
        let path = dir.path().join(name);
        for args in every_command(&path) {
            let run = braincache(&args).failed(&path);
            assert!(run.stderr.contains("no such file"), "{}", run.stderr);
            for backend in ["file", "redb"] {
                let mut forced = args.clone();
                forced.extend([OsStr::new("--backend"), OsStr::new(backend)]);
                braincache(&forced).failed(&path);
            }
        }
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing created"
    );

    // A folder is not a cache file either.
    let before = snapshot(dir.path());
    let run = braincache([OsStr::new("inspect"), dir.path().as_os_str()]).failed(dir.path());
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
    assert_unchanged(dir.path(), &before);
}

#[test]
fn a_corrupt_json_file_is_reported_with_its_position_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    std::fs::write(
        &path,
        "{\"a\": {\"value\": 1, \"expire_at\": null},\n \"user\": {\"value\": 2}}\n",
    )
    .unwrap();
    let before = snapshot(dir.path());
    for args in every_command(&path) {
        let run = braincache(&args).failed(&path);
        assert!(
            run.stderr.contains("corrupt cache data")
                && run.stderr.contains("line 2, column")
                && run.stderr.contains("expire_at"),
            "{}",
            run.stderr
        );
        assert_unchanged(dir.path(), &before);
    }
    // Not JSON at all, and not redb either.
    std::fs::write(&path, b"\x00\x01 not a cache").unwrap();
    let before = snapshot(dir.path());
    for args in every_command(&path) {
        let run = braincache(&args).failed(&path);
        assert!(run.stderr.contains("line 1, column 1"), "{}", run.stderr);
    }
    assert_unchanged(dir.path(), &before);
}

#[test]
fn damaged_or_foreign_redb_files_are_errors_not_panics_and_stay_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let magic = b"redb\x1a\x0a\xa9\x0d\x0a";
    let (_good_dir, good, _) = redb_cache();
    let good = std::fs::read(good).unwrap();
    let mut noise = Vec::from(&magic[..]);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..8192 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.push(x as u8);
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.redb", [&magic[..], b"garbage"].concat()),
        ("noise.redb", noise),
        ("half.redb", good[..good.len() / 2].to_vec()),
        ("header-only.redb", good[..4096.min(good.len())].to_vec()),
        ("scrambled4k.redb", scramble(&good, 4096)),
        ("scrambled8k.redb", scramble(&good, 8192)),
        ("scrambled16k.redb", scramble(&good, 16384)),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let before = snapshot(dir.path());
        for args in every_command(&path) {
            // redb panics on some of these (caught: no panic message, an error naming the file).
            let run = braincache(&args).failed(&path);
            assert!(run.stderr.contains("corrupt cache data"), "{}", run.stderr);
            // delete and purge too: refused before anything is opened for writing.
            assert_unchanged(dir.path(), &before);
        }
    }
    // A redb database of another program.
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("orders");
            txn.open_table(def).unwrap().insert(1, 2).unwrap();
        }
        txn.commit().unwrap();
    }
    let before = snapshot(dir.path());
    for args in every_command(&path) {
        let run = braincache(&args).failed(&path);
        assert!(
            run.stderr.contains("incompatible") && run.stderr.contains("orders"),
            "{}",
            run.stderr
        );
        assert_unchanged(dir.path(), &before);
    }
}

#[test]
fn works_beside_a_program_that_has_the_redb_cache_open() {
    let (_dir, path, records) = redb_cache();
    let app = RedbBackend::open(&path).unwrap();
    app.set("fresh", Record::new(vec![1, 2, 3], None)).unwrap();

    let text = braincache([OsStr::new("inspect"), path.as_os_str()])
        .ok()
        .out();
    assert!(
        line(&text, "entries").ends_with(&format!(" {}", records.len() + 1)),
        "{text}"
    );
    let got = braincache([OsStr::new("get"), path.as_os_str(), OsStr::new("fresh")])
        .ok()
        .out();
    assert_eq!(got, "010203\n");
    // The program sees what the command deleted and purged.
    braincache([OsStr::new("delete"), path.as_os_str(), OsStr::new("fresh")]).ok();
    assert_eq!(app.get("fresh").unwrap(), None);
    braincache([OsStr::new("purge"), path.as_os_str()]).ok();
    assert_eq!(app.get("old").unwrap(), None);
    assert!(app.get("session").unwrap().is_some());
    drop(app);

    // A program in single-process mode excludes everyone: the command says so.
    let owner = RedbBackend::builder(&path)
        .single_process()
        .build()
        .unwrap();
    let run = braincache([OsStr::new("inspect"), path.as_os_str()]).failed(&path);
    assert!(run.stderr.contains("single-process"), "{}", run.stderr);
    drop(owner);
    braincache([OsStr::new("inspect"), path.as_os_str()]).ok();
}

#[test]
fn usage_errors_exit_with_2() {
    let (dir, path, _) = file_cache();
    let before = snapshot(dir.path());
    let p = path.as_os_str();
    for args in [
        vec![],
        vec![OsStr::new("frobnicate"), p],
        vec![OsStr::new("inspect")],
        vec![OsStr::new("delete"), p],
        vec![
            OsStr::new("get"),
            p,
            OsStr::new("user"),
            OsStr::new("--raw"),
            OsStr::new("--hex"),
        ],
        vec![
            OsStr::new("inspect"),
            p,
            OsStr::new("--backend"),
            OsStr::new("sqlite"),
        ],
    ] {
        let run = braincache(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty());
        // clap's own messages; with no arguments at all, the help.
        assert!(
            run.stderr.starts_with("error: ") || run.stderr.contains("Usage: "),
            "{}",
            run.stderr
        );
    }
    // Forcing the wrong backend is an error about the file, not a guess.
    let run = braincache([
        OsStr::new("inspect"),
        p,
        OsStr::new("--backend"),
        OsStr::new("redb"),
    ])
    .failed(&path);
    assert!(run.stderr.contains("redb database"), "{}", run.stderr);
    assert_unchanged(dir.path(), &before);

    // Help and version are not errors.
    assert!(braincache(["--help"]).ok().out().contains("Exit codes"));
    assert!(
        braincache(["--version"])
            .ok()
            .out()
            .starts_with("braincache ")
    );
}

#[test]
fn a_zero_length_file_is_an_empty_json_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    std::fs::write(&path, b"").unwrap();
    let before = snapshot(dir.path());
    let text = braincache([OsStr::new("inspect"), path.as_os_str()])
        .ok()
        .out();
    assert!(line(&text, "backend").ends_with("file (JSON)"), "{text}");
    assert!(line(&text, "entries").ends_with(" 0"), "{text}");
    assert!(line(&text, "next expiry").ends_with(" none"), "{text}");
    let out = braincache([OsStr::new("export"), path.as_os_str()]).ok();
    assert_eq!(out.stdout, b"{}\n");
    let purge = braincache([OsStr::new("purge"), path.as_os_str()]).ok();
    assert_eq!(purge.out(), "purged 0 expired entries\n");
    // Forced to redb, an empty file is not silently turned into a database.
    for args in every_command(&path) {
        let mut forced = args.clone();
        forced.extend([OsStr::new("--backend"), OsStr::new("redb")]);
        braincache(&forced).failed(&path);
    }
    assert_unchanged(dir.path(), &before);
}

/// `bytes` with every byte from `from` on inverted: the header intact, the pages damaged.
fn scramble(bytes: &[u8], from: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for b in out.iter_mut().skip(from) {
        *b = !*b;
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
