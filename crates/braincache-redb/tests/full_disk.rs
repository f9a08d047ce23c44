//! A full disk on a real, small tmpfs: after a commit fails for lack of space, the same handle
//! keeps answering reads, returns a typed error for writes, and writes again once there is
//! space, losing no acknowledged key.
//!
//! Needs the right to mount a tmpfs (root, as in CI). Without it the test prints a skip notice,
//! unless `BRAINCACHE_REQUIRE_TMPFS=1`, when that is a failure.

#![cfg(target_os = "linux")]

mod support;

use braincache_core::testkit::{Tmpfs, error_chain as chain};
use braincache_core::{Backend, Record};
use braincache_redb::RedbBackend;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

fn rec(i: usize, len: usize) -> Record {
    let mut v = vec![(i % 251) as u8; len];
    v[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Record::new(v, None)
}

/// Fills the disk through `b` until a write fails; returns the acknowledged keys and the error.
fn fill(b: &RedbBackend, from: usize) -> (Vec<(String, Record)>, braincache_core::Error) {
    let mut acked = Vec::new();
    let start = Instant::now();
    for i in from.. {
        assert!(start.elapsed() < Duration::from_secs(120), "never filled");
        assert!(i < from + 100_000, "never filled");
        let (k, r) = (format!("k{i:06}"), rec(i, 16 << 10));
        match b.set(&k, r.clone()) {
            Ok(()) => acked.push((k, r)),
            Err(e) => return (acked, e),
        }
    }
    unreachable!()
}

fn heals_on_the_same_handle(single_process: bool) {
    let Some(disk) = Tmpfs::mount_or_skip(4 << 20) else {
        return;
    };
    let path = disk.path().join("cache.redb");
    let builder = || {
        support::in_mode(
            RedbBackend::builder(&path).cache_size(1 << 20),
            single_process,
        )
    };
    let b = builder().build().unwrap();

    let (mut acked, err) = fill(&b, 0);
    assert!(
        acked.len() > 10,
        "only {} writes before the disk was full",
        acked.len()
    );
    assert!(err.is_storage_full(), "not a full disk: {err:?}");
    assert!(!chain(&err).contains("Previous I/O error"), "{err}");

    // While the disk is full: every acknowledged key reads back, on the same handle, and more
    // writes fail with the same typed error (not "Previous I/O error").
    for (k, r) in &acked {
        assert_eq!(b.get(k).unwrap().as_ref(), Some(r), "{k}");
    }
    assert_eq!(b.len().unwrap(), acked.len());
    for i in 0..3 {
        let e = b.set(&format!("more{i}"), rec(i, 64 << 10)).unwrap_err();
        assert!(e.is_storage_full(), "{e:?}");
        let many = acked
            .iter()
            .take(4)
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>();
        assert_eq!(b.get_many(&many).unwrap().len(), 4);
    }

    // Free space: something else on the disk goes away (a filler written outside the cache
    // would do; here the tmpfs grows, the same thing from redb's point of view).
    let grown = Command::new("mount")
        .args(["-o", "remount,size=8m"])
        .arg(disk.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(grown, "remount the tmpfs larger");

    // Writes succeed again on the same handle, and nothing acknowledged is lost.
    for i in 0..5 {
        let (k, r) = (format!("after{i}"), rec(i, 16 << 10));
        b.set(&k, r.clone()).unwrap();
        acked.push((k, r));
    }
    for (k, r) in &acked {
        assert_eq!(b.get(k).unwrap().as_ref(), Some(r), "{k}");
    }
    // Fill the larger disk too, heal again.
    let (more, err) = fill(&b, 1_000_000);
    assert!(err.is_storage_full(), "{err:?}");
    acked.extend(more);
    assert_eq!(b.len().unwrap(), acked.len());

    drop(b);
    // (In the same mode: a multi-process open would have to create the stamp file, on a
    // disk that is full again.)
    let again = builder().build().unwrap();
    for (k, r) in &acked {
        assert_eq!(
            again.get(k).unwrap().as_ref(),
            Some(r),
            "{k} lost after reopening"
        );
    }
    assert_eq!(again.len().unwrap(), acked.len());
    drop(again);
    let _ = fs::remove_file(&path);
}

#[test]
fn a_full_disk_heals_on_the_same_handle() {
    heals_on_the_same_handle(false);
}

#[test]
fn a_full_disk_heals_on_the_same_handle_in_single_process_mode() {
    heals_on_the_same_handle(true);
}

/// Several threads write while the disk fills: each gets its own answer, every acknowledged
/// write is kept, and the handle works again after space is freed.
#[test]
fn concurrent_writers_through_a_full_disk() {
    let Some(disk) = Tmpfs::mount_or_skip(4 << 20) else {
        return;
    };
    let path = disk.path().join("cache.redb");
    let b = RedbBackend::builder(&path)
        .cache_size(1 << 20)
        .build()
        .unwrap();
    let acked: Vec<(String, Record)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let b = &b;
                s.spawn(move || {
                    let mut acked = Vec::new();
                    let mut full = 0;
                    for i in 0..2_000 {
                        let (k, r) = (format!("t{t}-{i:05}"), rec(i, 8 << 10));
                        match b.set(&k, r.clone()) {
                            Ok(()) => acked.push((k, r)),
                            Err(e) => {
                                assert!(e.is_storage_full(), "{e:?}");
                                full += 1;
                                if full == 5 {
                                    break;
                                }
                            }
                        }
                        // Reads keep working in between.
                        if let Some((k, r)) = acked.first() {
                            assert_eq!(b.get(k).unwrap().as_ref(), Some(r));
                        }
                    }
                    acked
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("no writer panicked"))
            .collect()
    });
    for (k, r) in &acked {
        assert_eq!(b.get(k).unwrap().as_ref(), Some(r), "{k}");
    }
    assert!(
        Command::new("mount")
            .args(["-o", "remount,size=8m"])
            .arg(disk.path())
            .status()
            .is_ok_and(|s| s.success())
    );
    b.set("after", rec(0, 100)).unwrap();
    assert_eq!(b.len().unwrap(), acked.len() + 1);
}
