//! The JSON file backend through the facade: the Python original's format, expiry, and real
//! processes — `kill -9` in the middle of writes, several writer processes, a `get` seeing
//! another process's write.
//!
//! Child processes re-run this test binary on one test (`--exact child_…`) with the
//! `BRAINCACHE_FILE_ROLE` variable naming it; without the variable those tests return at once.
#![cfg(feature = "file")]

use braincache::Timestamp;
use braincache::backend::FileBackend;
use braincache::base::ManualClock;
use braincache::{BrainCache, CacheCleaner};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use std::{env, fs, thread};

const ROLE: &str = "BRAINCACHE_FILE_ROLE";
const PATH: &str = "BRAINCACHE_FILE_PATH";
const ARG: &str = "BRAINCACHE_FILE_ARG";

/// Starts this test binary running only `test`, in the child role, on `path`.
fn spawn(test: &str, path: &Path, arg: &str) -> Child {
    Command::new(env::current_exe().unwrap())
        .args([
            "--exact",
            test,
            "--nocapture",
            "--test-threads=1",
            "--quiet",
        ])
        .env(ROLE, test)
        .env(PATH, path)
        .env(ARG, arg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// In a child: the file and argument, when this process plays `test`.
fn child_role(test: &str) -> Option<(PathBuf, String)> {
    (env::var(ROLE).ok()? == test).then(|| {
        let path = PathBuf::from(env::var_os(PATH).unwrap());
        (path, env::var(ARG).unwrap_or_default())
    })
}

fn open(path: &Path) -> BrainCache<FileBackend> {
    BrainCache::new(FileBackend::open(path).unwrap())
}

/// A small deterministic generator for kill delays (no dependency needed for this).
struct XorShift(u64);

impl XorShift {
    fn seeded() -> XorShift {
        let t = Timestamp::now().as_unix_nanos();
        eprintln!("kill-delay seed: {t}");
        XorShift(t | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    langs: Vec<String>,
    age: u32,
    score: f64,
    admin: bool,
    boss: Option<String>,
}

/// A file in the Python original's shape (as `json.dump` writes it) opens, and its values read
/// back through the Json codec; what braincache writes keeps that shape.
#[test]
fn python_shaped_files_read_back_and_keep_their_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    fs::write(
        &path,
        r#"{"user": {"value": {"name": "Ada", "langs": ["en", "fr"], "age": 36, "score": 9.5, "admin": false, "boss": null}, "expire_at": null},
 "count": {"value": 42, "expire_at": 4102444800.0},
 "ratio": {"value": 0.25, "expire_at": 4102444800},
 "name": {"value": "caf\u00e9 ☕", "expire_at": null},
 "nothing": {"value": null, "expire_at": null},
 "list": {"value": [1, "two", 3.0, [4], {"five": 5}], "expire_at": 4102444800.123},
 "floats": {"value": {"nan": NaN, "inf": Infinity, "neg": -Infinity, "list": [NaN, 1.5]}, "expire_at": null},
 "expired": {"value": "old", "expire_at": 1000000000.5}}"#,
    )
    .unwrap();
    let cache = open(&path);
    let ada = User {
        name: "Ada".into(),
        langs: vec!["en".into(), "fr".into()],
        age: 36,
        score: 9.5,
        admin: false,
        boss: None,
    };
    assert_eq!(cache.get::<User>("user").unwrap(), Some(ada));
    assert_eq!(cache.get::<u32>("count").unwrap(), Some(42));
    assert_eq!(cache.get::<f64>("ratio").unwrap(), Some(0.25));
    assert_eq!(
        cache.get::<String>("name").unwrap().as_deref(),
        Some("café ☕")
    );
    assert_eq!(cache.get::<Option<u32>>("nothing").unwrap(), Some(None));
    assert!(cache.has("nothing").unwrap(), "a stored null is a value");
    let list: serde_json::Value = cache.get("list").unwrap().unwrap();
    assert_eq!(list, serde_json::json!([1, "two", 3.0, [4], {"five": 5}]));
    assert_eq!(
        cache.get::<String>("expired").unwrap(),
        None,
        "past expire_at"
    );
    // Python's json writes NaN and the infinities as bare tokens; they read as f64 specials.
    let floats: std::collections::BTreeMap<String, serde_json::Value> =
        cache.get("floats").unwrap().unwrap();
    assert_eq!(floats.len(), 4);
    #[derive(Deserialize)]
    struct Floats {
        nan: f64,
        inf: f64,
        neg: f64,
        list: Vec<f64>,
    }
    let f: Floats = cache.get("floats").unwrap().unwrap();
    assert!(f.nan.is_nan() && f.list[0].is_nan());
    assert_eq!(
        (f.inf, f.neg, f.list[1]),
        (f64::INFINITY, f64::NEG_INFINITY, 1.5)
    );
    assert_eq!(cache.len().unwrap(), 8);
    assert_eq!(
        cache.next_expiry().unwrap(),
        Some(Timestamp::from_unix_millis(1_000_000_000_500))
    );
    assert!(cache.get::<String>("count").unwrap_err().is_decode());

    // Writing keeps every other entry's value text as it was, in the same shape.
    cache
        .set("new", &vec![1u8, 2], Duration::from_secs(60))
        .unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(r#""user": {"value": {"name": "Ada", "langs": ["en", "fr"], "age": 36, "score": 9.5, "admin": false, "boss": null}, "expire_at": null}"#), "{text}");
    assert!(
        text.contains(r#""new": {"value": [1,2], "expire_at": "#),
        "{text}"
    );
    assert!(
        text.contains(
            r#""list": {"value": [1, "two", 3.0, [4], {"five": 5}], "expire_at": 4102444800.123}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#""floats": {"value": {"nan": NaN, "inf": Infinity, "neg": -Infinity, "list": [NaN, 1.5]}, "expire_at": null}"#),
        "{text}"
    );
    // serde_json is strict JSON: check the shape on the document without Python's tokens.
    let text = text
        .replace("-Infinity", "null")
        .replace("Infinity", "null")
        .replace("NaN", "null");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (key, entry) in doc.as_object().unwrap() {
        let entry = entry.as_object().unwrap();
        assert_eq!(entry.len(), 2, "{key}");
        assert!(entry.contains_key("value"), "{key}");
        assert!(
            entry["expire_at"].is_null() || entry["expire_at"].is_f64(),
            "{key}"
        );
    }
}

/// `cat cache.json` shows the values as JSON.
#[test]
fn values_are_stored_as_readable_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    let cache = open(&path);
    let ada = User {
        name: "Ada".into(),
        langs: vec![],
        age: 36,
        score: 1.5,
        admin: true,
        boss: Some("Babbage".into()),
    };
    cache.set("user:1", &ada, None).unwrap();
    cache.set("tuple", &(1u8, "two"), None).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "{\n  \"tuple\": {\"value\": [1,\"two\"], \"expire_at\": null},\n  \
         \"user:1\": {\"value\": {\"name\":\"Ada\",\"langs\":[],\"age\":36,\"score\":1.5,\"admin\":true,\"boss\":\"Babbage\"}, \"expire_at\": null}\n}\n"
    );
    assert_eq!(open(&path).get::<User>("user:1").unwrap(), Some(ada));
}

/// The Python side of the format, with the real `json` module, when python3 is installed.
#[test]
fn python_json_reads_and_writes_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    let write = r#"
import json, sys, time
data = {"py": {"value": {"a": [1, 2.5, None, "x"]}, "expire_at": time.time() + 3600},
        "forever": {"value": "y", "expire_at": None},
        "floats": {"value": [float("nan"), float("inf"), -float("inf"), 0.5], "expire_at": None}}
with open(sys.argv[1], "w") as f:
    json.dump(data, f)
"#;
    let Ok(status) = Command::new("python3")
        .arg("-c")
        .arg(write)
        .arg(&path)
        .status()
    else {
        eprintln!("skipped: python3 is not installed");
        return;
    };
    assert!(status.success());
    let cache = open(&path);
    let v: serde_json::Value = cache.get("py").unwrap().unwrap();
    assert_eq!(v, serde_json::json!({"a": [1, 2.5, null, "x"]}));
    let left = cache.next_expiry().unwrap().unwrap();
    assert!(left > Timestamp::now() + Duration::from_secs(3000));
    let floats: Vec<f64> = cache.get("floats").unwrap().unwrap();
    assert!(floats[0].is_nan());
    assert_eq!(floats[1..], [f64::INFINITY, f64::NEG_INFINITY, 0.5]);
    cache
        .set("rs", &("from rust", 7u8), Duration::from_secs(60))
        .unwrap();
    cache
        .set(
            "rs-floats",
            &[f64::NAN, f64::NEG_INFINITY, f64::INFINITY],
            None,
        )
        .unwrap();
    let read = r#"
import json, math, sys, time
data = json.load(open(sys.argv[1]))
assert data["rs"]["value"] == ["from rust", 7], data["rs"]
nan, neg, inf = data["rs-floats"]["value"]
assert math.isnan(nan) and neg == -math.inf and inf == math.inf, data["rs-floats"]
assert math.isnan(data["floats"]["value"][0]), data["floats"]
assert data["rs"]["expire_at"] > time.time(), data["rs"]
assert data["py"]["value"] == {"a": [1, 2.5, None, "x"]}
assert data["forever"]["expire_at"] is None
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(read)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Entries past `expire_at` are never returned; `purge_expired` removes them from the file.
#[test]
fn expired_entries_are_hidden_then_purged_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    let clock = ManualClock::new(Timestamp::from_unix_millis(1_700_000_000_000));
    let cache = BrainCache::builder(FileBackend::open(&path).unwrap())
        .clock(clock.clone())
        .build();
    cache.set("short", &1u8, Duration::from_secs(10)).unwrap();
    cache
        .set("long", &2u8, Duration::from_millis(100_500))
        .unwrap();
    cache.set("forever", &3u8, None).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(r#""short": {"value": 1, "expire_at": 1700000010.0}"#),
        "{text}"
    );
    assert!(
        text.contains(r#""long": {"value": 2, "expire_at": 1700000100.5}"#),
        "{text}"
    );

    clock.advance(Duration::from_millis(9_999));
    assert_eq!(cache.get::<u8>("short").unwrap(), Some(1));
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        cache.get::<u8>("short").unwrap(),
        None,
        "expired at its deadline"
    );
    assert!(!cache.has("short").unwrap());
    assert_eq!(cache.len().unwrap(), 3, "not purged yet");
    assert!(fs::read_to_string(&path).unwrap().contains("\"short\""));

    assert_eq!(cache.purge_expired().unwrap(), 1);
    let text = fs::read_to_string(&path).unwrap();
    assert!(!text.contains("\"short\""), "{text}");
    assert!(text.contains("\"long\"") && text.contains("\"forever\""));
    assert_eq!(
        cache.next_expiry().unwrap(),
        Some(Timestamp::from_unix_millis(1_700_000_100_500))
    );
    clock.advance(Duration::from_secs(1000));
    assert_eq!(cache.purge_expired().unwrap(), 1);
    assert_eq!(cache.purge_expired().unwrap(), 0);
    assert_eq!(open(&path).len().unwrap(), 1);
    assert_eq!(cache.stats().expired, 2);
}

#[test]
fn the_cleaner_removes_expired_entries_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    let cache = open(&path);
    let cleaner = CacheCleaner::start(&cache, Duration::from_secs(3600));
    cache.set("keep", &1u8, None).unwrap();
    cache.set("short", &2u8, Duration::from_millis(20)).unwrap();
    let t = Instant::now();
    while fs::read_to_string(&path).unwrap().contains("\"short\"") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the cleaner never purged"
        );
        thread::sleep(Duration::from_millis(5));
    }
    cleaner.stop();
    assert_eq!(open(&path).len().unwrap(), 1);
}

/// Bad input through the facade: refused with the path and position, file unchanged.
#[test]
fn a_corrupt_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    let text = b"{\"k\": {\"value\": 1, \"expire_at\": null},\n \"j\": {\"value\": 2}}";
    fs::write(&path, text).unwrap();
    let err = FileBackend::open(&path).unwrap_err();
    assert!(err.is_corrupt());
    assert_eq!(err.path(), Some(path.as_path()));
    let msg = err.to_string();
    assert!(msg.contains("at line 2, column"), "{msg}");
    assert!(msg.contains("missing field `expire_at`"), "{msg}");
    assert_eq!(fs::read(&path).unwrap(), text);
}

// ---------------------------------------------------------------------------------------------
// Crash safety: kill -9 at random points.

const CRASH_CHILD: &str = "child_crash_writer";

/// 20 times: a writer process sets keys as fast as it can and prints each key once `set`
/// returned; it is killed (SIGKILL) at a random moment. After each kill the file must parse and
/// hold every acknowledged key of every round so far.
#[test]
fn kill_9_mid_write_never_tears_the_file_or_loses_an_acknowledged_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    let mut rng = XorShift::seeded();
    let mut acked: Vec<String> = Vec::new();
    let mut tmp_left = 0;
    for round in 0..20 {
        let mut child = spawn(CRASH_CHILD, &path, &round.to_string());
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Let it acknowledge a random number of sets, then kill it a random moment later
        // (a set here takes a few milliseconds, so the kill lands anywhere in a write).
        let mut lines = Vec::new();
        let wanted = 1 + rng.below(6);
        while lines
            .iter()
            .filter(|l: &&String| l.starts_with("acked "))
            .count()
            < wanted as usize
        {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => lines.push(line),
                Err(e) => panic!("round {round}: the writer stopped writing: {e}"),
            }
        }
        thread::sleep(Duration::from_micros(rng.below(4_000)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        // Only whole lines count: a line cut by the kill was not fully acknowledged.
        for line in lines {
            if let Some(key) = line.strip_prefix("acked ") {
                acked.push(key.to_owned());
            }
        }
        if path.with_file_name("cache.json.tmp").exists() {
            tmp_left += 1;
        }
        let cache = BrainCache::new(
            FileBackend::open(&path)
                .unwrap_or_else(|e| panic!("round {round}: the file does not open: {e}")),
        );
        for key in &acked {
            assert_eq!(
                cache.get::<String>(key).unwrap().as_deref(),
                Some(key.as_str()),
                "round {round}: acknowledged key {key} lost"
            );
        }
    }
    eprintln!(
        "{} acknowledged sets survived 20 kills; {tmp_left} kills left a temp file (killed mid-write)",
        acked.len()
    );
    assert!(
        acked.len() >= 20,
        "the writers barely wrote: {}",
        acked.len()
    );
}

#[test]
fn child_crash_writer() {
    let Some((path, round)) = child_role(CRASH_CHILD) else {
        return;
    };
    let cache = open(&path);
    let mut out = std::io::stdout().lock();
    writeln!(out, "started").unwrap();
    out.flush().unwrap();
    let padding = "p".repeat(200);
    let start = Instant::now();
    for i in 0..100_000 {
        let key = format!("r{round}-{i}");
        cache.set(&key, &key, None).unwrap();
        // Bulk up the document so writes take long enough to be interrupted.
        cache
            .set(&format!("pad-{round}-{i}"), &padding, None)
            .unwrap();
        writeln!(out, "acked {key}").unwrap();
        out.flush().unwrap();
        if start.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Several writer processes.

const MULTI_CHILD: &str = "child_multi_writer";
const PROCS: usize = 4;
const THREADS: usize = 2;
const KEYS: usize = 40;

fn run_writers(path: &Path, mode: &str) {
    let go = path.with_file_name("go");
    let children: Vec<Child> = (0..PROCS)
        .map(|p| spawn(MULTI_CHILD, path, &format!("{mode} {p}")))
        .collect();
    fs::write(&go, b"").unwrap();
    for mut child in children {
        let status = child.wait().unwrap();
        assert!(status.success(), "a writer failed: {status}");
    }
    fs::remove_file(&go).unwrap();
    let cache = open(path);
    let mut missing = Vec::new();
    for p in 0..PROCS {
        for t in 0..THREADS {
            for i in 0..KEYS {
                let key = format!("p{p}-t{t}-{i}");
                if cache.get::<String>(&key).unwrap().as_deref() != Some(key.as_str()) {
                    missing.push(key);
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{mode}: {} keys lost: {missing:?}",
        missing.len()
    );
    assert_eq!(cache.len().unwrap(), PROCS * THREADS * KEYS);
}

/// 4 processes × 2 threads, each setting its own keys into one file: none is lost, with
/// durable writes and with batched ones.
#[test]
fn four_processes_two_threads_lose_no_key() {
    let dir = tempfile::tempdir().unwrap();
    run_writers(&dir.path().join("durable.json"), "durable");
    run_writers(&dir.path().join("batched.json"), "batched");
}

#[test]
fn child_multi_writer() {
    let Some((path, arg)) = child_role(MULTI_CHILD) else {
        return;
    };
    let (mode, p) = arg.split_once(' ').unwrap();
    let backend = match mode {
        "durable" => FileBackend::open(&path).unwrap(),
        _ => FileBackend::builder(&path)
            .flush_every(Duration::from_millis(2))
            .build()
            .unwrap(),
    };
    let cache = BrainCache::new(backend);
    let go = path.with_file_name("go");
    let t = Instant::now();
    while !go.exists() && t.elapsed() < Duration::from_secs(20) {
        thread::sleep(Duration::from_millis(1));
    }
    thread::scope(|s| {
        for t in 0..THREADS {
            let cache = &cache;
            s.spawn(move || {
                for i in 0..KEYS {
                    let key = format!("p{p}-t{t}-{i}");
                    cache.set(&key, &key, None).unwrap();
                }
            });
        }
    });
    // Batched mode: the drop at the end of this function writes what is still pending.
}

// ---------------------------------------------------------------------------------------------
// A get sees another process's finished write.

const SET_CHILD: &str = "child_set_once";

#[test]
fn get_sees_what_another_process_wrote_before_it_began() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    let cache = open(&path);
    cache.set("mine", &0u32, None).unwrap();
    assert_eq!(cache.get::<u32>("k").unwrap(), None); // loaded into memory
    // Same-size values, written quickly: each must be seen.
    for (round, mode) in ["durable", "durable", "batched", "durable"]
        .iter()
        .enumerate()
    {
        let value = round + 1;
        let status = spawn(SET_CHILD, &path, &format!("{mode} {value}"))
            .wait()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            cache.get::<usize>("k").unwrap(),
            Some(value),
            "round {round} ({mode})"
        );
    }
    assert_eq!(cache.get::<u32>("mine").unwrap(), Some(0));
}

#[test]
fn child_set_once() {
    let Some((path, arg)) = child_role(SET_CHILD) else {
        return;
    };
    let (mode, value) = arg.split_once(' ').unwrap();
    let value: usize = value.parse().unwrap();
    let backend = match mode {
        "durable" => FileBackend::open(&path).unwrap(),
        _ => FileBackend::builder(&path)
            .flush_every(Duration::from_secs(3600))
            .build()
            .unwrap(),
    };
    BrainCache::new(backend).set("k", &value, None).unwrap();
}
