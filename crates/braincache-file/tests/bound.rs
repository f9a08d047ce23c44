//! The size bound of the JSON file backend.

use braincache_core::{Backend, Record, Timestamp};
use braincache_file::FileBackend;
use std::process::Command;

/// A bound the conformance checks never reach: every write goes through the bound's pass.
mod bounded_conformance {
    use braincache_file::FileBackend;

    braincache_core::conformance_tests!(|| {
        let dir = tempfile::tempdir().unwrap();
        let b = FileBackend::builder(dir.path().join("cache.json"))
            .max_bytes(64 << 20)
            .max_entries(100_000)
            .build()
            .unwrap();
        (b, dir)
    });
}

fn json(v: u64) -> Record {
    Record::new(format!("{{\"n\": {v}}}").into_bytes(), None)
}

#[test]
fn the_bound_holds_in_the_file_after_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    let b = FileBackend::builder(&path)
        .max_bytes(3_000)
        .max_entries(40)
        .build()
        .unwrap();
    for i in 0..300 {
        if i % 10 == 0 {
            b.set_many((0..5).map(|j| (format!("m{i}-{j}"), json(j))).collect())
                .unwrap();
        } else {
            b.set(&format!("k{i}"), json(i)).unwrap();
        }
        // Another handle, as another process, reads the file as written.
        let other = FileBackend::open(&path).unwrap();
        assert!(other.bytes().unwrap() <= 3_000, "{i}");
        assert!(other.len().unwrap() <= 40, "{i}");
    }
    assert!(b.evictions() > 200, "{}", b.evictions());
}

#[test]
fn expired_entries_go_first() {
    let dir = tempfile::tempdir().unwrap();
    let b = FileBackend::builder(dir.path().join("cache.json"))
        .max_entries(10)
        .build()
        .unwrap();
    braincache_core::testkit::bound::expired_entries_are_evicted_first(&b, 10, json);
}

/// Bound 1,000 entries; 100 hot keys read every round while 20,000 one-time keys are written.
#[test]
fn hot_keys_survive_a_flood_of_one_time_writes() {
    let dir = tempfile::tempdir().unwrap();
    let b = FileBackend::builder(dir.path().join("cache.json"))
        .max_entries(1_000)
        .build()
        .unwrap();
    braincache_core::testkit::bound::hot_keys_survive_a_flood_of_one_time_writes(&b, json);
}

/// The Python original reads the file with `json.load` and looks at `value` and `expire_at`.
#[test]
fn a_bounded_file_stays_in_the_python_originals_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    let b = FileBackend::builder(&path).max_entries(50).build().unwrap();
    let soon = Some(Timestamp::now() + std::time::Duration::from_secs(3600));
    for i in 0..200 {
        let deadline = if i % 2 == 0 { soon } else { None };
        b.set(
            &format!("k{i}"),
            Record::new(format!("[{i}]").into_bytes(), deadline),
        )
        .unwrap();
    }
    assert_eq!(b.len().unwrap(), 50);
    let script = r#"
import json, sys
with open(sys.argv[1]) as f:
    data = json.load(f)
assert isinstance(data, dict), type(data)
for key, entry in data.items():
    assert set(entry) == {"value", "expire_at"}, entry
    assert isinstance(entry["value"], list)
    assert entry["expire_at"] is None or isinstance(entry["expire_at"], float)
print(len(data))
"#;
    let out = match Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("python3 not available, skipped: {e}");
            return;
        }
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "50");
}
