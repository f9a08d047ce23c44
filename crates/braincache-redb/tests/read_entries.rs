//! `RedbBackend::read_entries`: every entry, expired ones included, in key order, from a file
//! that is left exactly as it was (bytes, modification time, no stamp file), with the backend's
//! errors for files it refuses.

mod support;

use braincache_core::{Backend, Error, Record, Timestamp};
use braincache_redb::{FORMAT_VERSION, RedbBackend};
use redb::{Database, ReadableDatabase, TableDefinition};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use support::seq_path;

const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");

/// Every file in `dir`: name → (bytes, modification time).
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, SystemTime)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let modified = e.metadata().unwrap().modified().unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap(), modified)
        })
        .collect();
    files.sort();
    files
}

/// The records the tests write: keys out of order, an expired one, an empty value, a deadline
/// to the nanosecond, a key that is not ASCII.
fn records() -> Vec<(String, Record)> {
    let later = Timestamp::from_unix_nanos(4_000_000_000_123_456_789);
    vec![
        ("zeta".to_owned(), Record::new(vec![0, 1, 255], None)),
        (
            "alpha".to_owned(),
            Record::new(
                b"expired".to_vec(),
                Some(Timestamp::from_unix_millis(1_000)),
            ),
        ),
        ("ключ".to_owned(), Record::new(vec![], Some(later))),
        (String::new(), Record::new(b"empty key".to_vec(), None)),
        ("mid".to_owned(), Record::new(vec![7; 5000], Some(later))),
    ]
}

/// A cache written (and closed) by the backend, without its stamp file.
fn written_cache(dir: &Path) -> PathBuf {
    let path = dir.join("cache.redb");
    RedbBackend::open(&path)
        .unwrap()
        .set_many(records())
        .unwrap();
    std::fs::remove_file(seq_path(&path)).unwrap();
    path
}

fn sorted(mut entries: Vec<(String, Record)>) -> Vec<(String, Record)> {
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

#[test]
fn every_entry_in_key_order_and_the_file_is_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = written_cache(dir.path());
    let before = snapshot(dir.path());
    // A modification time tick later: a rewrite would show.
    std::thread::sleep(Duration::from_millis(20));

    let entries = RedbBackend::read_entries(&path).unwrap();
    assert_eq!(entries, sorted(records()));
    // Twice: the first read changed nothing the second depends on.
    assert_eq!(RedbBackend::read_entries(&path).unwrap(), entries);

    assert_eq!(snapshot(dir.path()), before, "a file changed or appeared");
    assert!(!seq_path(&path).exists());
}

#[test]
fn works_beside_open_caches_and_sees_their_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = written_cache(dir.path());
    let app = RedbBackend::open(&path).unwrap();
    // The app keeps a snapshot open while the entries are read.
    assert!(app.get("zeta").unwrap().is_some());
    app.set("new", Record::new(b"n".to_vec(), None)).unwrap();
    assert!(app.delete("zeta").unwrap());

    let mut expected = records();
    expected.retain(|(k, _)| k != "zeta");
    expected.push(("new".to_owned(), Record::new(b"n".to_vec(), None)));
    assert_eq!(
        RedbBackend::read_entries(&path).unwrap(),
        sorted(expected.clone())
    );
    // The app goes on, and sees nothing amiss.
    app.set("after", Record::new(b"a".to_vec(), None)).unwrap();
    assert_eq!(app.len().unwrap(), expected.len() + 1);
    drop(app);

    // A process that holds the file in single-process mode excludes the read.
    let owner = RedbBackend::builder(&path)
        .single_process()
        .build()
        .unwrap();
    let e = RedbBackend::read_entries(&path).unwrap_err();
    assert!(matches!(e, Error::Backend { .. }), "{e:?}");
    assert_eq!(e.path(), Some(path.as_path()));
    // The message is the cause's (`Display` says its own level only).
    let cause = std::error::Error::source(&e).map(ToString::to_string);
    assert!(
        cause
            .as_deref()
            .is_some_and(|c| c.contains("single-process")),
        "{e}: {cause:?}"
    );
    drop(owner);
    assert_eq!(
        RedbBackend::read_entries(&path).unwrap().len(),
        expected.len() + 1
    );
}

#[test]
fn a_redb_file_without_tables_has_no_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.redb");
    drop(Database::create(&path).unwrap());
    let before = snapshot(dir.path());
    assert_eq!(RedbBackend::read_entries(&path).unwrap(), vec![]);
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn files_that_are_not_braincache_caches_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(written_cache(dir.path())).unwrap();
    let magic = b"redb\x1a\x0a\xa9\x0d\x0a";
    let corrupt: [(&str, Vec<u8>); 5] = [
        ("empty", vec![]),
        ("short", b"hello".to_vec()),
        (
            "json",
            br#"{"k": {"value": 1, "expire_at": null}}"#.to_vec(),
        ),
        ("truncated", [&magic[..], b"garbage"].concat()),
        // Cut inside the pages that hold the entries: with the bound's bookkeeping tables the
        // file is larger, and a cut at half left every page the entries need (the read-only
        // open recomputes the layout from the file's length), so nothing was lost to refuse.
        ("quarter", good[..good.len() / 4].to_vec()),
    ];
    for (name, bytes) in corrupt {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let before = snapshot(dir.path());
        let e = RedbBackend::read_entries(&path).unwrap_err();
        assert!(e.is_corrupt(), "{name}: {e:?}");
        assert_eq!(e.path(), Some(path.as_path()), "{name}: {e}");
        assert_eq!(snapshot(dir.path()), before, "{name}");
    }

    // Another program's redb file, and a braincache file of a newer format version.
    let other = dir.path().join("other.redb");
    {
        let db = Database::create(&other).unwrap();
        let txn = db.begin_write().unwrap();
        let orders: TableDefinition<u64, u64> = TableDefinition::new("orders");
        txn.open_table(orders).unwrap().insert(1, 2).unwrap();
        txn.commit().unwrap();
    }
    let newer = dir.path().join("newer.redb");
    std::fs::write(&newer, &good).unwrap();
    support::write_format_version(&newer, FORMAT_VERSION + 1);
    for (path, says) in [(&other, "orders"), (&newer, "newer")] {
        let before = snapshot(dir.path());
        let e = RedbBackend::read_entries(path).unwrap_err();
        assert!(matches!(e, Error::Incompatible { .. }), "{e:?}");
        assert_eq!(e.path(), Some(path.as_path()));
        assert!(e.to_string().contains(says), "{e}");
        assert_eq!(snapshot(dir.path()), before);
    }

    // A missing file is an I/O error, and is not created.
    let missing = dir.path().join("missing.redb");
    let e = RedbBackend::read_entries(&missing).unwrap_err();
    assert!(e.is_io(), "{e:?}");
    assert_eq!(e.path(), Some(missing.as_path()));
    assert!(!missing.exists());
}

#[test]
fn a_damaged_entry_is_corrupt_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = written_cache(dir.path());
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(ENTRIES)
            .unwrap()
            .insert("bad", &[9u8, 1, 2][..])
            .unwrap();
        txn.commit().unwrap();
        // The row is there, as planted.
        let txn = db.begin_read().unwrap();
        assert!(
            txn.open_table(ENTRIES)
                .unwrap()
                .get("bad")
                .unwrap()
                .is_some()
        );
    }
    let e = RedbBackend::read_entries(&path).unwrap_err();
    assert!(e.is_corrupt(), "{e:?}");
    assert_eq!(e.key(), Some("bad"));
    assert_eq!(e.path(), Some(path.as_path()));
}

/// A leaf's key damaged so that it still sorts between its neighbours but past the separator
/// its branch page holds (`k0740` -> `k075/`, as `/` sorts below `0`): the listing stays in
/// order while a lookup descends into the next leaf and misses the key. `read_entries` must not
/// hand out a listing that `get` contradicts (found in review: checking the order alone let
/// these through).
#[test]
fn a_listing_that_lookups_contradict_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let entries: Vec<(String, Record)> = (0..300u32)
        .map(|i| (format!("k{:04}", i * 10), Record::new(vec![7; 40], None)))
        .collect();
    let pristine = support::write_entries(&path, &entries);
    let mut refused = Vec::new();
    for w in entries.windows(2) {
        let (key, next) = (&w[0].0, &w[1].0);
        let damaged = format!("{}/", &next[..4]);
        let Some(at) = pristine.windows(5).position(|x| x == key.as_bytes()) else {
            continue;
        };
        let mut bytes = pristine.clone();
        bytes[at..at + 5].copy_from_slice(damaged.as_bytes());
        std::fs::write(&path, &bytes).unwrap();
        match RedbBackend::read_entries(&path) {
            Ok(listed) => {
                let b = RedbBackend::builder(&path).build().unwrap();
                for (k, r) in &listed {
                    assert_eq!(
                        b.get(k).unwrap().as_ref(),
                        Some(r),
                        "{damaged}: read_entries lists {k:?}, get disagrees"
                    );
                }
            }
            Err(e) => {
                assert!(e.is_corrupt(), "{damaged}: {e}");
                assert_eq!(e.path(), Some(path.as_path()), "{e}");
                refused.push(damaged);
            }
        }
    }
    // Keys at the ends of leaves (one per leaf boundary) are the ones this damage exposes.
    assert!(
        !refused.is_empty(),
        "no damaged file was refused: the test did not bite"
    );
}
