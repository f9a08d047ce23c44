//! A full disk on a real, small tmpfs: replaced versions of the file that are still open hold
//! their space until closed, so the backend bounds how many wait for the closing thread and
//! closes them all before retrying a write that found the disk full.
//!
//! Needs the right to mount a tmpfs (root, as in CI). Without it the test prints a skip notice,
//! unless `BRAINCACHE_REQUIRE_TMPFS=1`, when that is a failure.
#![cfg(target_os = "linux")]

use braincache_core::testkit::Tmpfs;
use braincache_core::{Backend, Record};
use braincache_file::FileBackend;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The tmpfs's size.
const DISK: u64 = 4 << 20;
/// Replaced versions that may wait for the closing thread (the backend's bound).
const MAX_PENDING: usize = 2;

/// Files of this process that are deleted but still open, under `dir`.
fn deleted_but_open(dir: &Path) -> Vec<PathBuf> {
    let prefix = dir.to_string_lossy().into_owned();
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|t| {
            let t = t.to_string_lossy();
            t.starts_with(&prefix) && t.ends_with(" (deleted)")
        })
        .collect()
}

#[test]
fn a_full_disk_is_full_only_when_the_live_file_and_its_next_version_fill_it() {
    let Some(disk) = Tmpfs::mount_or_skip(DISK) else {
        return;
    };
    let path = disk.path().join("cache.json");
    let b = FileBackend::open(&path).unwrap();
    let value = format!("\"{}\"", "v".repeat(8 << 10)); // a JSON string, 8 KiB
    let mut acknowledged = Vec::new();
    let mut sizes = Vec::new();
    let mut worst_pending = 0;
    let start = Instant::now();
    let err = loop {
        assert!(start.elapsed() < Duration::from_secs(120), "never filled");
        assert!(acknowledged.len() < 10_000, "never filled");
        let key = format!("k{:05}", acknowledged.len());
        match b.set(&key, Record::new(value.as_bytes().to_vec(), None)) {
            Ok(()) => {
                acknowledged.push(key);
                sizes.push(fs::metadata(&path).unwrap().len());
                let pending = deleted_but_open(disk.path());
                worst_pending = worst_pending.max(pending.len());
                assert!(
                    pending.len() <= MAX_PENDING,
                    "{} replaced versions still open after {} sets: {pending:?}",
                    pending.len(),
                    acknowledged.len()
                );
            }
            Err(e) => break e,
        }
    };
    assert!(err.is_storage_full(), "{err}");
    assert!(err.is_io(), "{err:?}");

    // What the disk can hold: each write needs the live file and its next version at once, so
    // n entries fit while size(n - 1) + size(n) <= DISK. Entries grow the file by `entry`.
    let n = acknowledged.len() as u64;
    let last = *sizes.last().unwrap();
    let entry = (last - sizes[0]) / (n - 1);
    let can_hold = (DISK - sizes[0] + entry) / (2 * entry); // size(k) ~ sizes[0] + (k-1) * entry
    eprintln!(
        "{n} entries of {entry} B fit before StorageFull; the disk holds about {can_hold}; \
         at most {worst_pending} replaced versions were open at once"
    );
    assert!(
        n * 100 >= can_hold * 95,
        "full after {n} entries, the disk holds about {can_hold} ({entry} B each)"
    );

    // Freeing space (a delete writes a smaller file) lets the same handle write again.
    for k in acknowledged.drain(..4) {
        assert!(b.delete(&k).unwrap(), "{k}");
    }
    b.set("after", Record::new(b"1".to_vec(), None)).unwrap();
    acknowledged.push("after".into());
    for k in &acknowledged {
        assert!(b.get(k).unwrap().is_some(), "{k} lost");
    }
    drop(b);
    let again = FileBackend::open(&path).unwrap();
    assert_eq!(again.len().unwrap(), acknowledged.len());
    for k in &acknowledged {
        assert!(again.get(k).unwrap().is_some(), "{k} lost after reopening");
    }
}
