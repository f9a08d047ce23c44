//! Reads that reuse the cached snapshot take no lock: what a caller's closure may do while such
//! a read lends it a value, and how `close` waits for such reads.

mod support;

use braincache_core::{Backend, Record, RecordRef};
use braincache_redb::RedbBackend;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

fn rec(v: &[u8]) -> Record {
    Record::new(v.to_vec(), None)
}

/// A read whose snapshot is cached: the next reads reuse it.
fn warm(b: &RedbBackend, key: &str) {
    assert!(b.get(key).unwrap().is_some());
}

/// While a read lends a value from the reused snapshot, the closure writes to the same backend
/// (a durable commit, after which the writer thread drops the cached snapshot) and reads it
/// again, in both modes. Neither waits for the other.
#[test]
fn the_lending_closure_may_write_and_read_the_same_backend() {
    for single in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.redb");
        let builder = RedbBackend::builder(&path);
        let b = Arc::new(support::in_mode(builder, single).build().unwrap());
        b.set("value", rec(b"7")).unwrap();
        warm(&b, "value");
        let (tx, rx) = mpsc::channel();
        let reader = Arc::clone(&b);
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for i in 0..20u8 {
                let found = reader
                    .get_with("value", &mut |r: RecordRef<'_>| {
                        seen.push(r.value.to_vec());
                        reader
                            .set("noted", rec(&[i]))
                            .expect("write from the closure");
                        let noted = reader.get("noted").expect("read from the closure");
                        assert_eq!(noted, Some(rec(&[i])), "its own write, acknowledged");
                    })
                    .unwrap();
                assert!(found);
            }
            let _ = tx.send(seen);
        });
        let seen = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("20 reads writing from their closure did not finish in 60 s: deadlock");
        assert_eq!(seen, vec![b"7".to_vec(); 20]);
        assert_eq!(b.get("noted").unwrap(), Some(rec(&[19])));
    }
}

/// A panic in the closure of a read from the reused snapshot is the caller's panic (not a
/// `Corrupt` error, as a panic inside redb would be), and the backend reads on.
#[test]
fn a_panic_in_the_lending_closure_reaches_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let b = RedbBackend::open(dir.path().join("c.redb")).unwrap();
    b.set("k", rec(b"v")).unwrap();
    warm(&b, "k");
    let p = catch_unwind(AssertUnwindSafe(|| {
        b.get_with("k", &mut |_| panic!("the caller's panic"))
    }))
    .unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"the caller's panic"));
    assert_eq!(b.get("k").unwrap(), Some(rec(b"v")));
    b.set("k", rec(b"w")).unwrap();
    assert_eq!(b.get("k").unwrap(), Some(rec(b"w")));
}

/// `close` waits for a read that is lending a value from the reused snapshot, then closes the
/// file: once it returns, the handle's reads are `Closed` and the file is free for an exclusive
/// open, although the handle itself lives on.
#[test]
fn close_waits_for_reads_of_the_reused_snapshot_and_frees_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let b = Arc::new(RedbBackend::open(&path).unwrap());
    b.set("k", rec(b"v")).unwrap();
    warm(&b, "k");

    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let reader = {
        let b = Arc::clone(&b);
        std::thread::spawn(move || {
            b.get_with("k", &mut |r: RecordRef<'_>| {
                entered_tx.send(()).unwrap();
                // Held until the test lets go (bounded, should the test fail first).
                let _ = release_rx.recv_timeout(Duration::from_secs(60));
                assert_eq!(
                    r.value, b"v",
                    "the lent value stays valid while close waits"
                );
            })
        })
    };
    entered
        .recv_timeout(Duration::from_secs(60))
        .expect("the read began");
    let closed = Arc::new(AtomicBool::new(false));
    let closer = {
        let (b, closed) = (Arc::clone(&b), Arc::clone(&closed));
        std::thread::spawn(move || {
            b.close().unwrap();
            closed.store(true, Ordering::SeqCst);
        })
    };
    // However long the read lends its value, `close` has not returned meanwhile.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !closed.load(Ordering::SeqCst),
        "close returned during a read"
    );
    release.send(()).unwrap();
    assert!(reader.join().unwrap().unwrap());
    closer.join().unwrap();
    assert!(closed.load(Ordering::SeqCst));

    // Closed: a read finds no snapshot to reuse, says so, and the database is closed although
    // `b` lives.
    let again = support::closed_and_file_free(&b, &path);
    assert_eq!(again.get("k").unwrap(), Some(rec(b"v")));
    drop(again);
    drop(b);
}
