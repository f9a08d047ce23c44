//! Unit tests that look inside: the expiry index, purge's cost, group commit.

use super::*;
use crate::writer::{Tables, purge};
use std::sync::atomic::Ordering;

const HOUR: Duration = Duration::from_secs(3600);

fn open(dir: &tempfile::TempDir) -> RedbBackend {
    RedbBackend::open(dir.path().join("c.redb")).unwrap()
}

fn rec(v: &[u8], d: Option<Timestamp>) -> Record {
    Record::new(v.to_vec(), d)
}

/// The rows of the expiry table.
fn expiry_rows(b: &RedbBackend) -> Vec<(u64, String)> {
    let txn = b.shared().db.begin_read().unwrap();
    let t = txn.open_table(EXPIRY).unwrap();
    t.iter()
        .unwrap()
        .map(|r| {
            let (k, _) = r.unwrap();
            let (d, key) = k.value();
            (d, key.to_owned())
        })
        .collect()
}

#[test]
fn purge_walks_the_expiry_table_up_to_now_only() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(&dir);
    let now = Timestamp::now();
    // 3,000 entries that must not be touched: without a deadline, or due in an hour.
    let mut many: Vec<(String, Record)> = (0..1_500)
        .map(|i| (format!("forever-{i}"), rec(b"v", None)))
        .collect();
    many.extend((0..1_500).map(|i| (format!("later-{i}"), rec(b"v", Some(now + HOUR)))));
    // 7 entries already due.
    many.extend((0..7u64).map(|i| {
        let d = Timestamp::from_unix_nanos(now.as_unix_nanos() - 1_000 - i);
        (format!("due-{i}"), rec(b"v", Some(d)))
    }));
    b.set_many(many).unwrap();

    let txn = b.shared().db.begin_write().unwrap();
    let stats = {
        let mut t = Tables::open(&txn).unwrap();
        purge(&mut t, now.as_unix_nanos()).unwrap()
    };
    txn.abort().unwrap();
    // Only the due rows were read: the cost follows what expired, not the 3,007 entries.
    assert_eq!(stats.visited, 7);
    assert_eq!(stats.removed, 7);

    // The same through the backend, which commits it.
    assert_eq!(b.purge_expired(now).unwrap(), 7);
    assert_eq!(b.len().unwrap(), 3_000);
    assert_eq!(b.next_expiry().unwrap(), Some(now + HOUR));
    assert_eq!(expiry_rows(&b).len(), 1_500);
}

#[test]
fn the_expiry_index_follows_sets_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(&dir);
    let d1 = Timestamp::now() + HOUR;
    let d2 = d1 + HOUR;
    b.set("k", rec(b"1", Some(d1))).unwrap();
    b.set("k", rec(b"2", Some(d2))).unwrap();
    assert_eq!(expiry_rows(&b), vec![(d2.as_unix_nanos(), "k".to_owned())]);
    b.set("k", rec(b"3", Some(d2))).unwrap();
    assert_eq!(expiry_rows(&b), vec![(d2.as_unix_nanos(), "k".to_owned())]);
    b.set("k", rec(b"4", None)).unwrap();
    assert!(expiry_rows(&b).is_empty());
    b.set("k", rec(b"5", Some(d1))).unwrap();
    assert!(b.delete("k").unwrap());
    assert!(expiry_rows(&b).is_empty());
}

#[test]
fn a_damaged_entry_is_corrupt_and_purge_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(&dir);
    let past = Timestamp::now().as_unix_nanos() - 1;
    {
        let txn = b.shared().db.begin_write().unwrap();
        {
            let mut e = txn.open_table(ENTRIES).unwrap();
            e.insert("bad", &[9u8, 1, 2][..]).unwrap();
            e.insert("short", &[1u8, 1, 2][..]).unwrap();
            let mut x = txn.open_table(EXPIRY).unwrap();
            x.insert((past, "bad"), ()).unwrap();
        }
        txn.commit().unwrap();
        // Written behind the writer's back: announce it as the writer would.
        b.shared().reader.committed().unwrap();
    }
    for key in ["bad", "short"] {
        let e = b.get(key).unwrap_err();
        assert!(e.is_corrupt(), "{e}");
        assert_eq!(e.key(), Some(key));
        assert_eq!(e.path(), Some(b.path()));
        // The borrowing read reports the same damage, without calling its callback.
        let e = b
            .get_with(key, &mut |_| panic!("lent a damaged entry"))
            .unwrap_err();
        assert!(e.is_corrupt(), "{e}");
        assert_eq!(e.key(), Some(key));
        assert_eq!(e.path(), Some(b.path()));
    }
    // The stale row goes; the entry, whose deadline cannot be read, stays.
    assert_eq!(b.purge_expired(Timestamp::now()).unwrap(), 0);
    assert!(expiry_rows(&b).is_empty());
    assert!(b.get("bad").unwrap_err().is_corrupt());
    // Overwriting repairs it; deleting removes it.
    b.set("bad", rec(b"ok", None)).unwrap();
    assert_eq!(b.get("bad").unwrap(), Some(rec(b"ok", None)));
    assert!(b.delete("short").unwrap());
}

#[test]
fn concurrent_writers_share_commits() {
    const THREADS: usize = 8;
    const PER: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let b = open(&dir);
    let before = b.shared().commits.load(Ordering::Relaxed);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let b = &b;
            s.spawn(move || {
                for i in 0..PER {
                    b.set(&format!("{t}-{i}"), rec(b"v", None)).unwrap();
                }
            });
        }
    });
    let commits = b.shared().commits.load(Ordering::Relaxed) - before;
    assert_eq!(b.len().unwrap(), THREADS * PER);
    // Each set is acknowledged after a durable commit; with 8 writers most commits carry
    // several of them.
    assert!(
        commits < (THREADS * PER) as u64 / 2,
        "{commits} commits for {} sets",
        THREADS * PER
    );
}

#[test]
fn own_writes_are_seen_by_a_reused_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    for single in [false, true] {
        let mut builder = RedbBackend::builder(dir.path().join(format!("c-{single}.redb")))
            .snapshot_max_age(Duration::from_secs(3600));
        if single {
            builder = builder.single_process();
        }
        let b = builder.build().unwrap();
        for i in 0..50u8 {
            assert_eq!(
                b.get("k").unwrap().map(|r| r.value),
                (i > 0).then(|| vec![i - 1])
            );
            b.set("k", rec(&[i], None)).unwrap();
            assert_eq!(b.get("k").unwrap().map(|r| r.value), Some(vec![i]));
        }
    }
}

#[test]
fn the_snapshot_is_reused_while_nothing_commits() {
    let dir = tempfile::tempdir().unwrap();
    let b = RedbBackend::builder(dir.path().join("c.redb"))
        .snapshot_max_age(Duration::from_secs(3600))
        .build()
        .unwrap();
    b.set("k", rec(b"v", None)).unwrap();
    let s1 = b.snapshot(Operation::Get, None).unwrap();
    let s2 = b.snapshot(Operation::Get, None).unwrap();
    assert!(Arc::ptr_eq(&s1, &s2));
    b.set("k", rec(b"w", None)).unwrap();
    let s3 = b.snapshot(Operation::Get, None).unwrap();
    assert!(!Arc::ptr_eq(&s1, &s3));
    drop((s1, s2, s3));
    // With a zero maximum age nothing is reused.
    let fresh = RedbBackend::builder(dir.path().join("d.redb"))
        .snapshot_max_age(Duration::ZERO)
        .build()
        .unwrap();
    let s1 = fresh.snapshot(Operation::Get, None).unwrap();
    let s2 = fresh.snapshot(Operation::Get, None).unwrap();
    assert!(!Arc::ptr_eq(&s1, &s2));
}

#[test]
fn dropping_the_backend_releases_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let b = RedbBackend::open(&path).unwrap();
    b.set("k", rec(b"v", None)).unwrap();
    let _ = b.get("k").unwrap(); // a cached snapshot, too
    drop(b);
    // An exclusive open succeeds only once every lock of the multi-process handle is gone.
    let single = RedbBackend::builder(&path)
        .single_process()
        .build()
        .unwrap();
    assert_eq!(single.get("k").unwrap(), Some(rec(b"v", None)));
}

#[test]
fn two_handles_in_one_process_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let age = Duration::from_secs(3600);
    let a = RedbBackend::builder(&path)
        .snapshot_max_age(age)
        .build()
        .unwrap();
    let b = RedbBackend::builder(&path)
        .snapshot_max_age(age)
        .build()
        .unwrap();
    for i in 0..20u8 {
        let _ = b.get("k").unwrap();
        a.set("k", rec(&[i], None)).unwrap();
        assert_eq!(b.get("k").unwrap(), Some(rec(&[i], None)));
        let _ = a.get("j").unwrap();
        b.set("j", rec(&[i], None)).unwrap();
        assert_eq!(a.get("j").unwrap(), Some(rec(&[i], None)));
    }
}

/// Review finding: a cleaner woke a redb cache for nothing and each empty purge was a durable
/// commit (an fsync) that also ended every process's read snapshot. Requests that change
/// nothing now abort their transaction and announce nothing.
#[test]
fn requests_that_change_nothing_make_no_commit() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(&dir);
    let later = Timestamp::now() + std::time::Duration::from_secs(3600);
    b.set("k", rec(b"v", Some(later))).unwrap();
    let commits = || b.shared().commits.load(Ordering::Relaxed);
    let stamp = || std::fs::read(dir.path().join("c.redb.seq")).unwrap();
    let (before, stamp_before) = (commits(), stamp());
    assert_eq!(b.purge_expired(Timestamp::now()).unwrap(), 0);
    assert!(!b.delete("absent").unwrap());
    assert_eq!(b.delete_many(&["absent", "also absent"]).unwrap(), 0);
    b.set_many(Vec::new()).unwrap();
    assert_eq!(commits(), before, "no-op requests committed");
    assert_eq!(stamp(), stamp_before, "no-op requests announced a commit");
    // Requests that change something still commit and announce.
    assert_eq!(b.purge_expired(later).unwrap(), 1);
    assert_eq!(commits(), before + 1);
    assert_ne!(stamp(), stamp_before);
    assert_eq!(b.get("k").unwrap(), None);
}

/// Reads do not check the snapshot's age; the writer thread drops a snapshot older than
/// `snapshot_max_age`, while idle or after a batch that committed nothing.
#[test]
fn an_old_snapshot_is_dropped_by_the_writer_thread() {
    let dir = tempfile::tempdir().unwrap();
    let b = RedbBackend::builder(dir.path().join("c.redb"))
        .snapshot_max_age(Duration::from_millis(10))
        .build()
        .unwrap();
    b.set("k", rec(b"v", None)).unwrap();
    for busy in [false, true] {
        let first = b.snapshot(Operation::Get, None).unwrap();
        let start = std::time::Instant::now();
        loop {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the snapshot was never dropped (busy: {busy})"
            );
            if busy {
                // A request that commits nothing: the writer thread never idles.
                assert!(!b.delete("absent").unwrap());
            } else {
                std::thread::sleep(Duration::from_millis(2));
            }
            if !Arc::ptr_eq(&first, &b.snapshot(Operation::Get, None).unwrap()) {
                break;
            }
        }
    }
}
