//! `RedbBackend::close` while a read that reuses the cached snapshot lends a value (such reads
//! take no lock): `close` returns only once that read has ended and the file is closed, whatever
//! took the snapshot out of the cache before `close` ran (a commit, its age); and the read's
//! closure may call the backend meanwhile (it gets `Error::Closed`) without hanging `close`.

mod support;

use braincache_core::{Backend, Error, Record, RecordRef};
use braincache_redb::RedbBackend;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn rec(v: &[u8]) -> Record {
    Record::new(v.to_vec(), None)
}

/// How many file descriptors of this process are open on `path`; `None` where `/proc/self/fd`
/// does not exist.
fn fds_on(path: &Path) -> Option<usize> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(
        dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target == path)
            .count(),
    )
}

/// What took the cached snapshot out of the cache while the read lent from it.
#[derive(Clone, Copy, Debug)]
enum Released {
    /// A commit: the writer thread drops the cached snapshot before it acknowledges the write.
    Commit,
    /// Its age: the writer thread drops a snapshot older than `snapshot_max_age`.
    Stale,
}

/// A read lends a value from the reused snapshot; the snapshot leaves the cache (`how`); then
/// `close` runs on this thread while another thread lets the read end after a delay. `close`
/// must return after the read ended, with no descriptor left on the file.
fn close_waits_for_a_read_of_a_released_snapshot(single: bool, how: Released) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let builder = RedbBackend::builder(&path).snapshot_max_age(Duration::from_millis(10));
    let b = Arc::new(support::in_mode(builder, single).build().unwrap());
    b.set("k", rec(b"v")).unwrap();
    assert!(b.get("k").unwrap().is_some()); // the snapshot is cached now

    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let lending = Arc::new(AtomicBool::new(false));
    let reader = {
        let (b, lending) = (Arc::clone(&b), Arc::clone(&lending));
        std::thread::spawn(move || {
            b.get_with("k", &mut |r: RecordRef<'_>| {
                lending.store(true, Ordering::SeqCst);
                entered_tx.send(()).unwrap();
                // Bounded, should the test fail first.
                let _ = release_rx.recv_timeout(Duration::from_secs(60));
                assert_eq!(
                    r.value, b"v",
                    "the lent value stays valid while close waits"
                );
                lending.store(false, Ordering::SeqCst);
            })
        })
    };
    entered
        .recv_timeout(Duration::from_secs(60))
        .expect("the read began");
    match how {
        Released::Commit => b.set("other", rec(b"x")).unwrap(),
        // The writer thread checks the age at least every 10 ms here.
        Released::Stale => std::thread::sleep(Duration::from_millis(300)),
    }
    // Another thread lets the read end a little later; `close` must wait for it.
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let _ = release.send(());
    });
    b.close().unwrap();
    let still_lending = lending.load(Ordering::SeqCst);
    let fds = fds_on(&path);
    releaser.join().unwrap();
    assert!(reader.join().unwrap().unwrap(), "the read found the key");
    assert!(
        !still_lending,
        "single={single} {how:?}: close returned while a read still lent a value from its \
         snapshot"
    );
    if let Some(fds) = fds {
        assert_eq!(
            fds, 0,
            "single={single} {how:?}: descriptors left on the file after close"
        );
    }
    // Closed, and the file free although `b` lives: the exclusive open finds both writes.
    let again = support::closed_and_file_free(&b, &path);
    assert_eq!(again.get("k").unwrap(), Some(rec(b"v")));
    assert_eq!(
        again.get("other").unwrap().is_some(),
        matches!(how, Released::Commit)
    );
}

#[test]
fn close_waits_for_a_read_whose_snapshot_a_commit_released() {
    close_waits_for_a_read_of_a_released_snapshot(false, Released::Commit);
}

#[test]
fn close_waits_for_a_read_whose_snapshot_a_commit_released_single_process() {
    close_waits_for_a_read_of_a_released_snapshot(true, Released::Commit);
}

#[test]
fn close_waits_for_a_read_whose_snapshot_went_stale() {
    close_waits_for_a_read_of_a_released_snapshot(false, Released::Stale);
}

#[test]
fn close_waits_for_a_read_whose_snapshot_went_stale_single_process() {
    close_waits_for_a_read_of_a_released_snapshot(true, Released::Stale);
}

/// A read's closure calls the backend while `close` waits for that read: each call returns
/// (`Error::Closed` once `close` has begun), and `close` returns once the closure does. The
/// closure calls until it sees `Closed`, so it calls while `close` waits for it.
#[test]
fn a_closure_may_call_the_backend_while_close_waits_for_it() {
    for single in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.redb");
        let builder = RedbBackend::builder(&path);
        let b = Arc::new(support::in_mode(builder, single).build().unwrap());
        b.set("k", rec(b"v")).unwrap();
        assert!(b.get("k").unwrap().is_some()); // the snapshot is cached now

        let (entered_tx, entered) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        {
            let b = Arc::clone(&b);
            std::thread::spawn(move || {
                let mut calls = Vec::new();
                let found = b.get_with("k", &mut |_: RecordRef<'_>| {
                    entered_tx.send(()).unwrap();
                    let start = Instant::now();
                    // Until `close` has begun: it cannot finish while this closure runs.
                    while start.elapsed() < Duration::from_secs(30) {
                        match b.get("other") {
                            Err(Error::Closed { .. }) => break,
                            Ok(_) => std::thread::sleep(Duration::from_millis(1)),
                            Err(e) => panic!("{e}"),
                        }
                    }
                    calls.push(b.get("k").map(drop));
                    calls.push(b.set("k", rec(b"w")));
                    calls.push(b.delete("k").map(drop));
                    calls.push(b.len().map(drop));
                    let _ = b.commits();
                    let _ = format!("{b:?}");
                });
                let _ = done_tx.send((found.map_err(|e| e.to_string()), calls));
            });
        }
        entered
            .recv_timeout(Duration::from_secs(60))
            .expect("the read began");
        let (closed_tx, closed) = mpsc::channel();
        {
            let b = Arc::clone(&b);
            std::thread::spawn(move || {
                let _ = closed_tx.send(b.close().map_err(|e| e.to_string()));
            });
        }
        let (found, calls) = done
            .recv_timeout(Duration::from_secs(60))
            .expect("the closure's calls to the backend hang while close waits for it");
        assert_eq!(found, Ok(true));
        assert_eq!(calls.len(), 4);
        for call in calls {
            assert!(matches!(call, Err(Error::Closed { .. })), "{call:?}");
        }
        closed
            .recv_timeout(Duration::from_secs(60))
            .expect("close did not return after the read ended")
            .unwrap();
        if let Some(fds) = fds_on(&path) {
            assert_eq!(
                fds, 0,
                "single={single}: descriptors left on the file after close"
            );
        }
        // Closed cleanly, with the one write: the closure's calls changed nothing.
        let again = RedbBackend::builder(&path)
            .single_process()
            .build()
            .unwrap();
        assert_eq!(again.get("k").unwrap(), Some(rec(b"v")));
    }
}

/// Two `close` calls at once: neither returns before the read that the first waits for has
/// ended (the second does not find the backend already closed and return early).
#[test]
fn a_second_close_waits_for_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let b = Arc::new(RedbBackend::open(&path).unwrap());
    b.set("k", rec(b"v")).unwrap();
    assert!(b.get("k").unwrap().is_some());

    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let lending = Arc::new(AtomicBool::new(false));
    let reader = {
        let (b, lending) = (Arc::clone(&b), Arc::clone(&lending));
        std::thread::spawn(move || {
            b.get_with("k", &mut |_: RecordRef<'_>| {
                lending.store(true, Ordering::SeqCst);
                entered_tx.send(()).unwrap();
                let _ = release_rx.recv_timeout(Duration::from_secs(60));
                lending.store(false, Ordering::SeqCst);
            })
        })
    };
    entered
        .recv_timeout(Duration::from_secs(60))
        .expect("the read began");
    let (first_tx, first) = mpsc::channel();
    {
        let b = Arc::clone(&b);
        std::thread::spawn(move || {
            let _ = first_tx.send(b.close().map_err(|e| e.to_string()));
        });
    }
    // Once the first close has begun (a read finds the backend closed), close again, and let
    // the read end a little later.
    let (second_tx, second) = mpsc::channel();
    {
        let (b, lending, path) = (Arc::clone(&b), Arc::clone(&lending), path.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            while b.get("other").is_ok() && start.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                let _ = release.send(());
            });
            let closed = b.close().map_err(|e| e.to_string());
            let _ = second_tx.send((closed, lending.load(Ordering::SeqCst), fds_on(&path)));
        });
    }
    let (closed, still_lending, fds) = second
        .recv_timeout(Duration::from_secs(60))
        .expect("the second close did not return");
    closed.unwrap();
    assert!(!still_lending, "the second close returned during the read");
    if let Some(fds) = fds {
        assert_eq!(
            fds, 0,
            "descriptors left on the file after the second close"
        );
    }
    assert!(reader.join().unwrap().unwrap());
    first
        .recv_timeout(Duration::from_secs(60))
        .expect("the first close did not return")
        .unwrap();
}
