//! The size bound: usage bookkeeping, eviction order, scan resistance, old files, compaction.

mod support;

use braincache_core::{Backend, Error, Record, Timestamp};
use braincache_redb::RedbBackend;
use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};
use std::path::Path;
use support::real_usage;

/// A bound the conformance checks never reach: they run through the bounded code path (hints,
/// bookkeeping, the eviction check in every commit) and must see every entry they stored.
mod bounded_conformance {
    use braincache_redb::RedbBackend;

    braincache_core::conformance_tests!(|| {
        let dir = tempfile::tempdir().unwrap();
        let b = RedbBackend::builder(dir.path().join("c.redb"))
            .max_bytes(64 << 20)
            .max_entries(100_000)
            .build()
            .unwrap();
        (b, dir)
    });
}

fn rec(len: usize) -> Record {
    Record::new(vec![7; len], None)
}

const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The sum of [`real_usage`] read from the raw table (key and stored bytes, whatever header
/// format wrote them), for files with older records. The file must not be open in this process.
fn raw_usage(path: &Path) -> (u64, u64) {
    let db = redb::ReadOnlyDatabase::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(ENTRIES).unwrap();
    let (mut bytes, mut n) = (0u64, 0u64);
    for item in table.range::<&str>(..).unwrap() {
        let (k, v) = item.unwrap();
        bytes += (k.value().len() + v.value().len()) as u64;
        n += 1;
    }
    (bytes, n)
}

#[test]
fn usage_follows_every_kind_of_write_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let b = RedbBackend::builder(&path).unbounded().build().unwrap();
    let past = Some(Timestamp::from_unix_nanos(1));
    b.set("a", rec(10)).unwrap();
    b.set("a", rec(20)).unwrap(); // replaced
    b.set("b", Record::new(vec![1; 5], past)).unwrap();
    b.set_many((0..50).map(|i| (format!("m{i}"), rec(i))).collect())
        .unwrap();
    b.delete("m3").unwrap();
    b.delete_many(&["m4", "m5", "absent"]).unwrap();
    assert_eq!(b.purge_expired(Timestamp::now()).unwrap(), 1);
    let u = b.usage().unwrap();
    assert_eq!((u.bytes, u.entries), real_usage(&path));
    assert_eq!(u.entries, b.len().unwrap() as u64);
    assert_eq!(b.bytes().unwrap(), u.bytes);
    b.clear().unwrap();
    assert_eq!(b.bytes().unwrap(), 0);
    b.set("after", rec(3)).unwrap();
    let before = b.usage().unwrap();
    drop(b);
    let again = RedbBackend::open(&path).unwrap();
    assert_eq!(again.usage().unwrap().bytes, before.bytes);
    assert_eq!(again.usage().unwrap().entries, before.entries);
    assert_eq!(
        RedbBackend::read_usage(&path).unwrap().unwrap().bytes,
        before.bytes
    );
}

#[test]
fn the_bound_holds_after_every_write_and_counts_evictions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let b = RedbBackend::builder(&path)
        .max_bytes(20_000)
        .max_entries(150)
        .build()
        .unwrap();
    for i in 0..2_000 {
        if i % 10 == 0 {
            b.set_many(
                (0..7)
                    .map(|j| (format!("batch{i}-{j}"), rec(100 + j)))
                    .collect(),
            )
            .unwrap();
        } else {
            b.set(&format!("k{i}"), rec(i % 300)).unwrap();
        }
        let u = b.usage().unwrap();
        assert!(u.bytes <= 20_000 && u.entries <= 150, "{i}: {u:?}");
    }
    let u = b.usage().unwrap();
    assert_eq!((u.bytes, u.entries), real_usage(&path));
    assert!(b.evictions() > 1_000, "{}", b.evictions());
    assert_eq!(u.evictions, b.evictions());
    // A full cache keeps most of its bound.
    assert!(u.bytes > 10_000 || u.entries > 100, "{u:?}");
}

#[test]
fn expired_entries_are_evicted_first() {
    let dir = tempfile::tempdir().unwrap();
    let b = RedbBackend::builder(dir.path().join("c.redb"))
        .max_entries(100)
        .build()
        .unwrap();
    braincache_core::testkit::bound::expired_entries_are_evicted_first(&b, 100, |_| rec(1));
}

#[test]
fn an_entry_larger_than_the_bound_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let b = RedbBackend::builder(dir.path().join("c.redb"))
        .max_bytes(1_000)
        .build()
        .unwrap();
    b.set("small", rec(10)).unwrap();
    b.set("huge", rec(5_000)).unwrap();
    assert_eq!(b.get("huge").unwrap(), None);
    assert!(b.bytes().unwrap() <= 1_000);
}

/// FIFO would keep none of the hot keys; see the test kit's check.
#[test]
fn hot_keys_survive_a_flood_of_one_time_writes() {
    let dir = tempfile::tempdir().unwrap();
    let b = RedbBackend::builder(dir.path().join("c.redb"))
        .max_entries(1_000)
        .build()
        .unwrap();
    braincache_core::testkit::bound::hot_keys_survive_a_flood_of_one_time_writes(&b, |_| rec(32));
}

#[test]
fn a_file_without_bookkeeping_opens_and_gets_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    {
        // The layout braincache wrote before the bound existed.
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.insert("format_version", braincache_redb::FORMAT_VERSION)
                .unwrap();
            let mut entries = txn.open_table(ENTRIES).unwrap();
            for i in 0..300u32 {
                let mut v = vec![0u8]; // no deadline
                v.extend_from_slice(&i.to_le_bytes());
                entries
                    .insert(format!("old{i}").as_str(), v.as_slice())
                    .unwrap();
            }
            txn.open_table(EXPIRY).unwrap();
        }
        txn.commit().unwrap();
    }
    assert_eq!(RedbBackend::read_usage(&path).unwrap(), None);
    let b = RedbBackend::builder(&path)
        .max_entries(200)
        .build()
        .unwrap();
    let u = b.usage().unwrap();
    drop(b);
    // The old records have the old, shorter header: count them raw.
    assert_eq!((u.bytes, u.entries), raw_usage(&path));
    assert_eq!(u.entries, 300, "opening alone evicts nothing");
    let b = RedbBackend::builder(&path)
        .max_entries(200)
        .build()
        .unwrap();
    b.set("new", rec(1)).unwrap();
    // Eviction goes 1/64 below the bound (200 - 200 / 64 = 197), so later commits skip it.
    assert_eq!(
        b.len().unwrap(),
        197,
        "the first commit brings it within the bound"
    );
    let bytes = b.usage().unwrap().bytes;
    drop(b);
    assert_eq!(bytes, raw_usage(&path).0);
    // The data tables are where they were.
    let db = redb::Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    assert_eq!(txn.open_table(ENTRIES).unwrap().len().unwrap(), 197);
}

#[test]
fn compact_refuses_while_the_file_is_open_and_shrinks_it_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let b = RedbBackend::builder(&path).unbounded().build().unwrap();
    for i in 0..200 {
        b.set(&format!("k{i}"), rec(8 << 10)).unwrap();
    }
    b.clear().unwrap();
    b.set("kept", rec(5)).unwrap();
    let err = RedbBackend::compact(&path).unwrap_err();
    assert!(matches!(err, Error::InUse { .. }), "{err}");
    assert_eq!(err.path(), Some(path.as_path()));
    drop(b);
    let before = std::fs::metadata(&path).unwrap().len();
    RedbBackend::compact(&path).unwrap();
    let after = std::fs::metadata(&path).unwrap().len();
    assert!(after < before / 2, "{before} -> {after}");
    let b = RedbBackend::builder(&path)
        .check_integrity_on_open()
        .build()
        .unwrap();
    assert_eq!(b.get("kept").unwrap(), Some(rec(5)));
    assert_eq!(b.bytes().unwrap(), real_usage(&path).0);
}

#[test]
fn compact_of_a_file_that_is_not_braincaches_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    std::fs::write(&path, b"not redb").unwrap();
    let err = RedbBackend::compact(&path).unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not redb");
}

#[test]
fn a_smaller_bound_applies_from_the_next_commit_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let wide = RedbBackend::builder(&path).unbounded().build().unwrap();
    for i in 0..100 {
        wide.set(&format!("k{i}"), rec(10)).unwrap();
    }
    let narrow = RedbBackend::builder(&path).max_entries(10).build().unwrap();
    narrow.set("x", rec(1)).unwrap();
    assert_eq!(
        narrow.usage().unwrap().max_entries,
        10,
        "recorded by its first commit"
    );
    assert_eq!(narrow.len().unwrap(), 10);
    assert_eq!(wide.len().unwrap(), 10, "the bound is the file's");
}
