//! `RedbBackend::close`: for a backend that is never dropped (a `static`, `process::exit`).
//! Writes queued before it are committed, later calls are `Error::Closed`, and the file is left
//! closed cleanly, so a read-only reader needs no recovery.

use braincache_core::{Backend, Error, Operation, Record, Timestamp};
use braincache_redb::{RedbBackend, inspect};
use std::sync::Arc;

#[test]
fn close_commits_stops_and_makes_every_later_call_a_closed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.redb");
    let backend = Arc::new(RedbBackend::open(&path).unwrap());
    // Writers on other threads race with the close: each write either was acknowledged (and is
    // in the file) or failed with `Closed` (and is not).
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let b = Arc::clone(&backend);
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..200 {
                    let key = format!("t{t}-{i}");
                    match b.set(&key, Record::new(vec![t; 8], None)) {
                        Ok(()) => acked.push(key),
                        Err(e) => {
                            assert!(matches!(e, Error::Closed { .. }), "{e}");
                            break;
                        }
                    }
                }
                acked
            })
        })
        .collect();
    backend
        .set("before", Record::new(b"v".to_vec(), Some(Timestamp::MAX)))
        .unwrap();
    backend.close().unwrap();
    let acked: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let commits = backend.commits();
    assert!(commits >= 1);

    // Every call is now a typed error naming the operation; closing again is fine.
    let closed = |r: Result<(), Error>, op: Operation| match r {
        Err(Error::Closed { op: got, backend }) => {
            assert_eq!((got, backend), (op, "redb"));
        }
        other => panic!("{op}: {other:?}"),
    };
    closed(backend.get("before").map(drop), Operation::Get);
    closed(backend.set("k", Record::new(vec![], None)), Operation::Set);
    closed(backend.delete("before").map(drop), Operation::Delete);
    closed(backend.clear(), Operation::Clear);
    closed(backend.len().map(drop), Operation::Len);
    closed(
        backend.purge_expired(Timestamp::now()).map(drop),
        Operation::Purge,
    );
    closed(backend.next_expiry().map(drop), Operation::NextExpiry);
    closed(backend.get_many(&["a"]).map(drop), Operation::Get);
    closed(backend.set_many(vec![]), Operation::Set);
    closed(backend.delete_many(&["a"]).map(drop), Operation::Delete);
    closed(backend.flush(), Operation::Flush);
    assert!(
        backend
            .get("before")
            .unwrap_err()
            .to_string()
            .contains("closed")
    );
    backend.close().unwrap();
    assert_eq!(backend.commits(), commits);
    assert_eq!(backend.path(), path);

    // The file was closed cleanly: a read-only reader opens it without recovery, and finds
    // every acknowledged write.
    let contents = inspect::read(&path).unwrap();
    assert!(!contents.recovered);
    assert_eq!(contents.entries.len(), acked.len() + 1);
    for key in &acked {
        assert!(contents.entries.iter().any(|(k, _)| k == key), "{key}");
    }
    // And the file is free: another handle opens it in single-process mode (which a live
    // handle in this process would prevent).
    drop(backend);
    let again = RedbBackend::builder(&path)
        .single_process()
        .build()
        .unwrap();
    assert_eq!(again.len().unwrap(), acked.len() + 1);
}

#[test]
fn a_handle_left_open_is_read_while_it_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.redb");
    let backend = RedbBackend::open(&path).unwrap();
    backend.set("k", Record::new(b"v".to_vec(), None)).unwrap();
    // A live writer vouches for the file: the read needs no recovery, and writes nothing.
    let before = std::fs::read(&path).unwrap();
    let contents = inspect::read(&path).unwrap();
    assert!(!contents.recovered);
    assert_eq!(contents.entries.len(), 1);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    backend.close().unwrap();
}
