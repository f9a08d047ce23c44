//! A braincache file whose pages were damaged outside redb: every call returns, `Ok` or a typed
//! error; no panic reaches the caller. (redb itself panics on some damaged pages; the backend
//! catches those.) Alone in its binary, because it silences the process-wide panic hook.

mod support;

use braincache_core::{Backend, Record, Timestamp};
use braincache_redb::RedbBackend;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

/// How many damaged copies of the file are tried, each with 512 bytes flipped at its own offset.
const CASES: usize = 32;

/// Writes `pristine` to `path` with 512 bytes flipped at an offset of damage case `case`;
/// returns the offset. Scattered over the file, past the first page (the header: damage there
/// is "not a redb database" or a failed open, which bad_input.rs covers).
fn damage(path: &std::path::Path, pristine: &[u8], case: usize) -> usize {
    let mut bytes = pristine.to_vec();
    let start = 4096 + (case * 7919 * 13) % (bytes.len() - 8192);
    for b in &mut bytes[start..start + 512] {
        *b ^= 0x5a;
    }
    std::fs::write(path, &bytes).unwrap();
    start
}

#[test]
fn damaged_pages_are_errors_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    {
        let b = RedbBackend::open(&path).unwrap();
        // A few small commits, then a large one: a layout where damage reaches pages that
        // redb panics on when reading.
        for i in 0..22u8 {
            b.set(&format!("k{i}"), Record::new(vec![i; 100], None))
                .unwrap();
        }
        let later = Timestamp::now() + Duration::from_secs(3600);
        b.set_many(
            (0..2_000)
                .map(|i| {
                    let d = (i % 3 == 0).then_some(later);
                    (format!("key{i}"), Record::new(vec![7; 100], d))
                })
                .collect(),
        )
        .unwrap();
    }
    let pristine = std::fs::read(&path).unwrap();
    let len = pristine.len();
    assert!(len > 64 * 1024, "{len}");

    // Silence redb's panic messages while the damaged files are read.
    std::panic::set_hook(Box::new(|_| {}));
    let mut escaped = Vec::new();
    let mut errors = 0;
    for case in 0..CASES {
        let start = damage(&path, &pristine, case);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut errs = 0;
            match RedbBackend::open(&path) {
                Err(_) => errs += 1,
                Ok(b) => {
                    for i in (0..2_000).step_by(7) {
                        errs += usize::from(b.get(&format!("key{i}")).is_err());
                    }
                    errs += usize::from(b.len().is_err());
                    errs += usize::from(b.next_expiry().is_err());
                    errs += usize::from(b.get_many(&["key1", "key2"]).is_err());
                    errs += usize::from(b.set("new", Record::new(vec![1], None)).is_err());
                    errs += usize::from(b.purge_expired(Timestamp::MAX).is_err());
                }
            }
            errs
        }));
        match outcome {
            Ok(n) => errors += n,
            Err(_) => escaped.push(start),
        }
    }
    drop(std::panic::take_hook());
    assert!(escaped.is_empty(), "panics escaped at offsets {escaped:?}");
    // The damage was seen somewhere (the test would be vacuous otherwise).
    assert!(errors > 0);
}

/// With `check_integrity_on_open()` the same damage is found at the open: each damaged copy is
/// refused there as `Error::Corrupt`, or opens (the damage hit pages no tree uses, or redb went
/// back to the previous commit) and then answers every call without an error. A healthy file
/// opens and reads back whole.
#[test]
fn a_verifying_open_refuses_damage_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let entries: Vec<(String, Record)> = (0..2_000)
        .map(|i| (format!("key{i}"), Record::new(vec![7; 100], None)))
        .collect();
    let pristine = support::write_entries(&path, &entries);
    let verified = |p: &std::path::Path| RedbBackend::builder(p).check_integrity_on_open().build();
    {
        let b = verified(&path).unwrap();
        assert_eq!(b.len().unwrap(), 2_000);
        assert_eq!(b.get("key1999").unwrap(), Some(entries[1999].1.clone()));
    }
    let mut refused = 0;
    for case in 0..CASES {
        let start = damage(&path, &pristine, case);
        match verified(&path) {
            Err(e) => {
                assert!(e.is_corrupt(), "offset {start}: {e}");
                refused += 1;
            }
            Ok(b) => {
                for i in (0..2_000).step_by(7) {
                    b.get(&format!("key{i}")).unwrap();
                }
                b.len().unwrap();
                b.next_expiry().unwrap();
                b.set("new", Record::new(vec![1], None)).unwrap();
                b.purge_expired(Timestamp::MAX).unwrap();
            }
        }
    }
    assert!(refused > 0, "no damaged copy was refused");
}
