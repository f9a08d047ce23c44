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

use braincache_core::testkit::servers as redis_support;

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

    /// Its stdout, parsed as one JSON document.
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.out()).expect("stdout is JSON")
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

/// Runs `braincache COMMAND FILE REST...`.
fn run_on(command: &str, file: &Path, rest: &[&str]) -> Run {
    let mut args = vec![OsStr::new(command), file.as_os_str()];
    args.extend(rest.iter().map(OsStr::new));
    braincache(args)
}

/// Runs `braincache export FILE -o TO`.
fn export_to(file: &Path, to: &Path) -> Run {
    braincache([
        OsStr::new("export"),
        file.as_os_str(),
        OsStr::new("-o"),
        to.as_os_str(),
    ])
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

/// A new folder with the cache file `name` that `write` wrote, and the records in it.
fn cache_with(
    name: &str,
    records: Vec<(String, Record)>,
    write: impl FnOnce(&Path, Vec<(String, Record)>),
) -> (tempfile::TempDir, PathBuf, Vec<(String, Record)>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    write(&path, records.clone());
    (dir, path, records)
}

/// A JSON cache written by the file backend, in a new folder without the backend's lock file,
/// and the records in it.
fn file_cache() -> (tempfile::TempDir, PathBuf, Vec<(String, Record)>) {
    cache_with("cache.json", file_records(), |path, records| {
        FileBackend::open(path).unwrap().set_many(records).unwrap();
        std::fs::remove_file(path.with_file_name("cache.json.lock")).unwrap();
    })
}

/// A redb cache written by the redb backend (closed), without its stamp file, and the records
/// in it.
fn redb_cache() -> (tempfile::TempDir, PathBuf, Vec<(String, Record)>) {
    cache_with("cache.redb", redb_records(), |path, records| {
        RedbBackend::open(path).unwrap().set_many(records).unwrap();
        let _ = std::fs::remove_file(path.with_file_name("cache.redb.seq"));
    })
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
        let text = run_on("inspect", &path, &[]).ok().out();
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

        let text = run_on("inspect", &path, &["--keys"]).ok().out();
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

        let doc = run_on("inspect", &path, &["--keys", "--json"]).ok().json();
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
    let raw = run_on("get", &path, &["bin", "--raw"]).ok();
    assert_eq!(raw.stdout, [0, 1, 255]);
    assert_unchanged(dir.path(), &before);

    let (dir, path, _) = redb_cache();
    let before = snapshot(dir.path());
    let user = pc(&(1234u32, "Ada"));
    let shown = run_on("get", &path, &["user"]).ok().out();
    assert_eq!(shown, format!("{}\n", hex(&user)));
    let raw = run_on("get", &path, &["user", "--raw"]).ok();
    assert_eq!(raw.stdout, user);
    let back: (u32, String) = Postcard.decode(&raw.stdout).unwrap();
    assert_eq!(back, (1234, "Ada".to_owned()));
    // Postcard bytes that are JSON text by chance still print as hex for redb.
    let one = run_on("get", &path, &["one"]).ok().out();
    assert_eq!(one, "31\n");
    assert_unchanged(dir.path(), &before);
}

#[test]
fn get_of_a_missing_or_expired_key_exits_with_1_and_says_which() {
    for (dir, path, _) in [file_cache(), redb_cache()] {
        let before = snapshot(dir.path());
        let missing = run_on("get", &path, &["nope"]);
        assert_eq!(missing.code, 1);
        assert!(missing.stdout.is_empty());
        assert!(
            missing.stderr.starts_with("not found: key \"nope\""),
            "{}",
            missing.stderr
        );
        assert!(missing.stderr.contains(&path.display().to_string()));

        let expired = run_on("get", &path, &["old"]);
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
        let shown = run_on("get", &path, &["old", "--expired", "--raw"]).ok();
        assert!(!shown.stdout.is_empty());
        assert_unchanged(dir.path(), &before);
    }
}

#[test]
fn delete_removes_keys_through_the_backend_and_writes_nothing_when_none_is_there() {
    for (dir, path, _) in [file_cache(), redb_cache()] {
        let before = snapshot(dir.path());
        let none = run_on("delete", &path, &["nope"]).ok();
        assert_eq!(none.out(), "deleted 0 of 1 key\n");
        assert_unchanged(dir.path(), &before);

        let run = run_on("delete", &path, &["user", "old", "nope", "user"]).ok();
        assert_eq!(run.out(), "deleted 2 of 3 keys\n");
        let keys = stored_keys(&path);
        assert!(!keys.contains(&"user".to_owned()) && !keys.contains(&"old".to_owned()));
        assert!(keys.contains(&"session".to_owned()));
    }
}

#[test]
fn purge_removes_expired_entries_only() {
    for (dir, path, records) in [file_cache(), redb_cache()] {
        let run = run_on("purge", &path, &[]).ok();
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
        let again = run_on("purge", &path, &[]).ok();
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
    let stdout = run_on("export", &path, &[]).ok();
    assert_eq!(stdout.stdout, text.as_bytes());
    let live = run_on("export", &path, &["--skip-expired", "-o", "-"]).ok();
    let doc: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&live.stdout).unwrap();
    assert_eq!(doc.keys().collect::<Vec<_>>(), ["one", "session", "user"]);
}

#[test]
fn export_of_a_file_cache_reproduces_the_file() {
    let (dir, path, _) = file_cache();
    let before = snapshot(dir.path());
    let run = run_on("export", &path, &[]).ok();
    // The backend's own layout, byte for byte, tagged values and escaped keys included.
    assert_eq!(run.stdout, std::fs::read(&path).unwrap());
    assert_unchanged(dir.path(), &before);

    // An existing output is replaced; the cache itself cannot be the output.
    let out = dir.path().join("copy.json");
    std::fs::write(&out, "old content").unwrap();
    export_to(&path, &out).ok();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&path).unwrap());
    let before = snapshot(dir.path());
    let refused = export_to(&path, &path);
    refused.failed(&path);
    assert_unchanged(dir.path(), &before);

    // An output in a folder that does not exist: an error naming it, nothing left behind.
    let nowhere = dir.path().join("no-such-folder").join("out.json");
    export_to(&path, &nowhere).failed(&nowhere);
    assert_unchanged(dir.path(), &before);
}

/// Every subcommand, with the extra arguments it needs.
fn every_command(path: &Path) -> Vec<Vec<&OsStr>> {
    let p = path.as_os_str();
    vec![
        vec![OsStr::new("inspect"), p],
        vec![OsStr::new("inspect"), p, OsStr::new("--keys")],
        vec![OsStr::new("keys"), p],
        vec![OsStr::new("get"), p, OsStr::new("user")],
        vec![
            OsStr::new("get"),
            p,
            OsStr::new("user"),
            OsStr::new("--json"),
        ],
        vec![OsStr::new("delete"), p, OsStr::new("user")],
        vec![OsStr::new("purge"), p],
        vec![OsStr::new("clear"), p, OsStr::new("--yes")],
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
    let run = run_on("inspect", dir.path(), &[]).failed(dir.path());
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
        // A quarter: with the bound's bookkeeping tables the file is larger, and a cut at half
        // left every page the entries need (so `get` found them), though not the bookkeeping's.
        ("quarter.redb", good[..good.len() / 4].to_vec()),
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

    let text = run_on("inspect", &path, &[]).ok().out();
    assert!(
        line(&text, "entries").ends_with(&format!(" {}", records.len() + 1)),
        "{text}"
    );
    let got = run_on("get", &path, &["fresh"]).ok().out();
    assert_eq!(got, "010203\n");
    // The program sees what the command deleted and purged.
    run_on("delete", &path, &["fresh"]).ok();
    assert_eq!(app.get("fresh").unwrap(), None);
    run_on("purge", &path, &[]).ok();
    assert_eq!(app.get("old").unwrap(), None);
    assert!(app.get("session").unwrap().is_some());
    drop(app);

    // A program in single-process mode excludes everyone: the command says so.
    let owner = RedbBackend::builder(&path)
        .single_process()
        .build()
        .unwrap();
    let run = run_on("inspect", &path, &[]).failed(&path);
    assert!(run.stderr.contains("single-process"), "{}", run.stderr);
    drop(owner);
    run_on("inspect", &path, &[]).ok();
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
    let text = run_on("inspect", &path, &[]).ok().out();
    assert!(line(&text, "backend").ends_with("file (JSON)"), "{text}");
    assert!(line(&text, "entries").ends_with(" 0"), "{text}");
    assert!(line(&text, "next expiry").ends_with(" none"), "{text}");
    let out = run_on("export", &path, &[]).ok();
    assert_eq!(out.stdout, b"{}\n");
    let purge = run_on("purge", &path, &[]).ok();
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

/// Runs `braincache` with standard input from `input` (a pipe, not a terminal).
fn braincache_with_input<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>, input: &str) -> Run {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_braincache"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // The command may exit without reading: a broken pipe here is fine.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn keys_lists_live_keys_with_prefix_limit_and_json() {
    for (dir, path, records) in [file_cache(), redb_cache()] {
        let before = snapshot(dir.path());
        let now = Timestamp::now();
        let mut live: Vec<&str> = records
            .iter()
            .filter(|(_, r)| r.expires_at.is_none_or(|d| d > now))
            .map(|(k, _)| k.as_str())
            .collect();
        live.sort_unstable();
        let shown = |k: &str| {
            if k.contains('\n') {
                format!("{k:?}\n")
            } else {
                format!("{k}\n")
            }
        };
        let out = run_on("keys", &path, &[]).ok().out();
        assert_eq!(out, live.iter().map(|k| shown(k)).collect::<String>());

        // --expired adds the expired ones; --prefix and --limit narrow.
        let all = run_on("keys", &path, &["--expired"]).ok().out();
        assert_eq!(all.lines().count(), records.len(), "{all}");
        assert!(all.contains("old\n"), "{all}");
        let s = run_on("keys", &path, &["--prefix", "s"]).ok().out();
        let want: String = live
            .iter()
            .filter(|k| k.starts_with('s'))
            .map(|k| shown(k))
            .collect();
        assert_eq!(s, want);
        let one = run_on("keys", &path, &["--limit", "1"]).ok().out();
        assert_eq!(one, shown(live[0]));

        // --json: every key exactly, with its size and deadline.
        let doc = run_on("keys", &path, &["--json", "--expired"]).ok().json();
        let listed = doc.as_array().unwrap();
        assert_eq!(listed.len(), records.len());
        for (key, record) in &records {
            let row = listed
                .iter()
                .find(|r| r["key"] == key.as_str())
                .unwrap_or_else(|| panic!("{key:?} missing in {doc}"));
            assert_eq!(row["size"], record.value.len());
            assert_eq!(row["expired"], record.expires_at.is_some_and(|d| d <= now));
            assert_eq!(row["expire_at"].is_null(), record.expires_at.is_none());
        }
        assert_unchanged(dir.path(), &before);
    }
}

#[test]
fn get_json_describes_the_entry() {
    let (dir, path, _) = file_cache();
    let before = snapshot(dir.path());
    let run = |key: &str| run_on("get", &path, &[key, "--json"]).ok().json();
    let user = run("user");
    assert_eq!(user["key"], "user");
    assert_eq!(
        user["value"],
        serde_json::json!({"id": 1234, "name": "Ada"})
    );
    assert_eq!(user["value_hex"], hex(br#"{"id":1234,"name":"Ada"}"#));
    assert_eq!(user["expire_at"], serde_json::Value::Null);
    assert_eq!(user["expired"], false);
    let bin = run("bin");
    assert_eq!(bin["value"], serde_json::Value::Null);
    assert_eq!(bin["value_hex"], "0001ff");
    assert_eq!(bin["size"], 3);
    assert!(run("session")["expire_at"].as_f64().unwrap() > 0.0);
    assert_unchanged(dir.path(), &before);

    let (dir, path, _) = redb_cache();
    let before = snapshot(dir.path());
    let doc = run_on("get", &path, &["user", "--json"]).ok().json();
    assert_eq!(doc["value_hex"], hex(&pc(&(1234u32, "Ada"))));
    assert_unchanged(dir.path(), &before);
}

#[test]
fn clear_needs_a_yes_or_a_terminal_and_removes_every_entry() {
    for (dir, path, _) in [file_cache(), redb_cache()] {
        let p = path.as_os_str();
        // No terminal to ask on, no --yes: refused, nothing written.
        let before = snapshot(dir.path());
        let run = braincache_with_input([OsStr::new("clear"), p], "y\n").failed(&path);
        assert!(run.stderr.contains("--yes"), "{}", run.stderr);
        assert_unchanged(dir.path(), &before);

        let run = braincache([OsStr::new("clear"), p, OsStr::new("--yes")]).ok();
        assert!(run.out().starts_with("cleared "), "{}", run.out());
        assert!(stored_keys(&path).is_empty());
        // An empty cache is not written again.
        let before = snapshot(dir.path());
        let run = braincache([OsStr::new("clear"), p, OsStr::new("-y")]).ok();
        assert_eq!(run.out(), "cleared 0 entries\n");
        assert_unchanged(dir.path(), &before);
    }
}

/// On a terminal (a pseudo-terminal made by util-linux `script`, when installed), `clear` asks
/// and only a yes clears.
#[test]
fn clear_asks_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` command to make a terminal");
        return;
    }
    for (answer, cleared) in [("n", false), ("y", true)] {
        let (_dir, path, records) = file_cache();
        let command = format!(
            "{} clear '{}'",
            env!("CARGO_BIN_EXE_braincache"),
            path.display()
        );
        let mut child = Command::new("script")
            .args(["-q", "-e", "-c", &command, "/dev/null"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("[y/N]"), "{text}");
        if cleared {
            assert_eq!(out.status.code(), Some(0), "{text}");
            assert!(stored_keys(&path).is_empty(), "{text}");
        } else {
            assert_eq!(out.status.code(), Some(1), "{text}");
            assert_eq!(
                FileBackend::read_entries(&path).unwrap().len(),
                records.len(),
                "{text}"
            );
        }
    }
}

#[test]
fn import_is_the_inverse_of_export() {
    for (dir, path, mut records) in [file_cache(), redb_cache()] {
        records.sort_by(|a, b| a.0.cmp(&b.0));
        let ext = path.extension().unwrap().to_owned();
        let doc = dir.path().join("export.json");
        export_to(&path, &doc).ok();
        // Into a new cache of the same backend: the same bytes and deadlines, to the
        // nanosecond.
        let mut copy = dir.path().join("copy");
        copy.set_extension(&ext);
        let run = braincache([OsStr::new("import"), doc.as_os_str(), copy.as_os_str()]).ok();
        assert_eq!(
            run.out(),
            format!(
                "imported {} entries into {}\n",
                records.len(),
                copy.display()
            )
        );
        let back = if ext == "json" {
            FileBackend::read_entries(&copy).unwrap()
        } else {
            RedbBackend::read_entries(&copy).unwrap()
        };
        assert_eq!(back, records);
        if ext == "json" {
            // The file backend writes the same document it was exported from.
            assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&path).unwrap());
        }

        // Into an existing cache: the document's keys are replaced, the others stay.
        let other = dir.path().join("other.json");
        let backend = FileBackend::open(&other).unwrap();
        backend
            .set("mine", Record::new(b"1".to_vec(), None))
            .unwrap();
        backend
            .set("user", Record::new(b"2".to_vec(), None))
            .unwrap();
        drop(backend);
        braincache([
            OsStr::new("import"),
            doc.as_os_str(),
            other.as_os_str(),
            OsStr::new("--skip-expired"),
        ])
        .ok();
        let merged = FileBackend::read_entries(&other).unwrap();
        assert!(merged.iter().any(|(k, _)| k == "mine"));
        assert!(!merged.iter().any(|(k, _)| k == "old"), "expired: skipped");
        let user = merged.iter().find(|(k, _)| k == "user").unwrap();
        let want = records.iter().find(|(k, _)| k == "user").unwrap();
        assert_eq!(user.1, want.1);

        // A new file whose backend cannot be told: refused, nothing created. With --backend:
        // created.
        let odd = dir.path().join("cache.bin");
        let run = braincache([OsStr::new("import"), doc.as_os_str(), odd.as_os_str()]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains("--backend"), "{}", run.stderr);
        assert!(!odd.exists());
        braincache([
            OsStr::new("import"),
            doc.as_os_str(),
            odd.as_os_str(),
            OsStr::new("--backend"),
            OsStr::new("redb"),
        ])
        .ok();
        assert_eq!(
            RedbBackend::read_entries(&odd).unwrap().len(),
            records.len()
        );

        // A missing document, or one that is not in the format: an error naming it.
        let missing = dir.path().join("missing.json");
        braincache([OsStr::new("import"), missing.as_os_str(), copy.as_os_str()]).failed(&missing);
        braincache([OsStr::new("import"), path.as_os_str(), path.as_os_str()]).failed(&path);
    }
}

/// The child half of `a_cache_that_is_never_dropped_is_read_after_its_process_exits`: run by
/// that test (as this test binary with an environment variable set), it sets keys through a
/// backend in a `static`, as the README's `LazyLock` pattern does, and exits with
/// `std::process::exit`, so the backend is never dropped. Does nothing when run normally.
#[test]
fn child_exits_without_dropping_its_cache() {
    use std::sync::LazyLock;
    let Some(path) = std::env::var_os("BRAINCACHE_CLI_TEST_CHILD") else {
        return;
    };
    static CACHE: LazyLock<RedbBackend> = LazyLock::new(|| {
        let path = std::env::var_os("BRAINCACHE_CLI_TEST_CHILD").unwrap();
        RedbBackend::open(path).unwrap()
    });
    assert_eq!(CACHE.path(), Path::new(&path));
    CACHE.set("a", Record::new(b"1".to_vec(), None)).unwrap();
    CACHE
        .set_many(vec![
            ("b".into(), Record::new(b"2".to_vec(), Some(in_an_hour()))),
            ("c".into(), Record::new(vec![3; 100], None)),
        ])
        .unwrap();
    std::process::exit(0);
}

#[test]
fn a_cache_that_is_never_dropped_is_read_after_its_process_exits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.redb");
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_exits_without_dropping_its_cache",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BRAINCACHE_CLI_TEST_CHILD", &path)
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "{}",
        String::from_utf8_lossy(&child.stderr)
    );
    // The file was left as redb leaves a database that was never closed: a read-only open
    // refuses it (this is what `braincache` 0.1 failed on, with "Database repair aborted.").
    let e = RedbBackend::read_entries(&path).unwrap_err();
    assert!(braincache_redb::inspect::needs_recovery(&e), "{e}");

    // inspect, get and export all succeed and see every acknowledged write.
    let run = run_on("inspect", &path, &[]).ok();
    assert!(line(&run.out(), "entries").ends_with(" 3"), "{}", run.out());
    assert!(
        run.stderr.contains("not closed cleanly") && run.stderr.contains("recovered"),
        "{}",
        run.stderr
    );
    let got = run_on("get", &path, &["b"]).ok();
    // The child stored the byte b"2" with no codec stated: it reads as the default codec's
    // (MessagePack) value, the number 50, which the CLI shows as JSON.
    assert_eq!(got.out(), "50\n");
    assert!(got.stderr.is_empty(), "recovered once: {}", got.stderr);
    let out = dir.path().join("export.json");
    export_to(&path, &out).ok();
    let exported = FileBackend::read_entries(&out).unwrap();
    let keys: Vec<&str> = exported.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["a", "b", "c"]);
    assert_eq!(exported[2].1.value, vec![3; 100]);
    // The file is clean again: a read-only open reads it.
    assert_eq!(RedbBackend::read_entries(&path).unwrap().len(), 3);
}

/// `--redis URL --redis-prefix P`: every command that takes it works on that prefix's entries
/// only; other keys in the database stay.
#[test]
fn redis_prefixes_are_inspected_read_and_cleared() {
    use braincache_redis::RedisBackend;
    let Some(server) = redis_support::RedisServer::start_or_skip() else {
        return;
    };
    let url = server.url();
    let app = RedisBackend::builder(&url)
        .key_prefix("app:")
        .build()
        .unwrap();
    let other = RedisBackend::builder(&url)
        .key_prefix("other:")
        .build()
        .unwrap();
    let records = redb_records()
        .into_iter()
        .filter(|(_, r)| r.expires_at.is_none_or(|d| d > Timestamp::now()))
        .collect::<Vec<_>>();
    app.set_many(records.clone()).unwrap();
    other.set("keep", Record::new(b"1".to_vec(), None)).unwrap();
    let redis = |rest: &[&str]| {
        let mut all = vec!["--redis", url.as_str(), "--redis-prefix", "app:"];
        all.extend(rest);
        braincache(all)
    };

    let text = redis(&["inspect"]).ok().out();
    assert!(line(&text, "backend").ends_with("redis"), "{text}");
    assert!(line(&text, "prefix").ends_with("\"app:\""), "{text}");
    assert!(
        line(&text, "entries").ends_with(&format!(" {}", records.len())),
        "{text}"
    );
    assert!(
        line(&text, "value bytes").ends_with(&format!(" {}", value_bytes(&records))),
        "{text}"
    );
    let doc = redis(&["inspect", "--json"]).ok().json();
    assert_eq!(doc["entries"], records.len());
    assert_eq!(doc["backend"], "redis");

    let mut keys: Vec<&str> = records.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    let listed = redis(&["keys"]).ok().out();
    assert_eq!(
        listed,
        keys.iter().map(|k| format!("{k}\n")).collect::<String>()
    );
    assert_eq!(redis(&["keys", "--prefix", "u"]).ok().out(), "user\n");

    let user = pc(&(1234u32, "Ada"));
    assert_eq!(
        redis(&["get", "user"]).ok().out(),
        format!("{}\n", hex(&user))
    );
    assert_eq!(redis(&["get", "user", "--raw"]).ok().stdout, user);
    let json = redis(&["get", "user", "--json"]).ok().json();
    assert_eq!(json["value_hex"], hex(&user));
    assert_eq!(redis(&["get", "nope"]).code, 1);

    // Export reads back through the file backend.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export.json");
    redis(&["export", "-o", out.to_str().unwrap()]).ok();
    let mut sorted = records.clone();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(FileBackend::read_entries(&out).unwrap(), sorted);

    assert_eq!(
        redis(&["delete", "user", "nope"]).ok().out(),
        "deleted 1 of 2 keys\n"
    );
    assert_eq!(app.get("user").unwrap(), None);

    // clear: refused without --yes (no terminal), then only the prefix's keys go.
    assert_eq!(
        braincache_with_input(
            ["--redis", url.as_str(), "--redis-prefix", "app:", "clear"],
            "y\n"
        )
        .code,
        2
    );
    assert!(app.get("session").unwrap().is_some());
    let cleared = redis(&["clear", "--yes"]).ok().out();
    assert_eq!(cleared, format!("cleared {} entries\n", records.len() - 1));
    assert_eq!(app.len().unwrap(), 0);
    assert_eq!(other.get("keep").unwrap().unwrap().value, b"1");

    // A file and --redis together, purge and import with --redis: usage errors.
    for bad in [
        &["inspect", "cache.json"][..],
        &["purge"],
        &["import", "a.json", "b.json"],
    ] {
        let run = redis(bad);
        assert_eq!(run.code, 2, "{bad:?}: {}", run.stderr);
        assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    }
    // An unreachable server: an error, exit 2.
    let run = braincache(["--redis", "redis://127.0.0.1:1/0", "inspect"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
}
