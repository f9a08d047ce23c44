//! Files braincache must refuse without touching them, and never panic on.

mod support;

use braincache_core::{Backend, Error, Record};
use braincache_redb::{FORMAT_VERSION, RedbBackend};
use redb::{Database, TableDefinition};
use std::path::Path;
use support::seq_path;

fn open_both_modes(path: &Path) -> Vec<Error> {
    let multi = RedbBackend::open(path).unwrap_err();
    let single = RedbBackend::builder(path)
        .single_process()
        .build()
        .unwrap_err();
    vec![multi, single]
}

/// Pseudo-random bytes, without a dependency.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn a_file_that_is_not_a_redb_database_is_corrupt_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("noise", noise(64 * 1024, 0x9e37_79b9_7f4a_7c15)),
        ("short", b"hello".to_vec()),
        (
            "json",
            br#"{"k": {"value": 1, "expire_at": null}}"#.to_vec(),
        ),
        ("zeros", vec![0; 8192]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        for e in open_both_modes(&path) {
            assert!(matches!(e, Error::Corrupt { .. }), "{name}: {e:?}");
            assert_eq!(e.path(), Some(path.as_path()), "{name}: {e}");
        }
        assert!(
            std::fs::read(&path).unwrap() == bytes,
            "{name} was modified"
        );
        assert!(
            !seq_path(&path).exists(),
            "{name}: a stamp file was created"
        );
    }
}

#[test]
fn a_redb_file_with_other_tables_is_incompatible_and_untouched() {
    const USERS: TableDefinition<&str, u64> = TableDefinition::new("users");
    const ENTRIES_AS_OTHER: TableDefinition<u64, u64> = TableDefinition::new("entries");
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.redb");
    let mistyped = dir.path().join("mistyped.redb");
    {
        let db = Database::create(&other).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(USERS).unwrap().insert("ann", 1).unwrap();
        txn.commit().unwrap();
        let db = Database::create(&mistyped).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(ENTRIES_AS_OTHER)
            .unwrap()
            .insert(1, 2)
            .unwrap();
        txn.commit().unwrap();
    }
    for path in [&other, &mistyped] {
        let before = std::fs::read(path).unwrap();
        for e in open_both_modes(path) {
            assert!(matches!(e, Error::Incompatible { .. }), "{e:?}");
            assert_eq!(e.path(), Some(path.as_path()));
        }
        assert!(
            std::fs::read(path).unwrap() == before,
            "{} was modified",
            path.display()
        );
        assert!(!seq_path(path).exists());
    }
    // The other program's data is still there.
    let db = Database::open(&other).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let t = txn.open_table(USERS).unwrap();
    assert_eq!(
        redb::ReadableTable::get(&t, "ann")
            .unwrap()
            .unwrap()
            .value(),
        1
    );
}

#[test]
fn a_future_format_version_is_incompatible_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    {
        let b = RedbBackend::open(&path).unwrap();
        b.set("k", Record::new(b"v".to_vec(), None)).unwrap();
    }
    support::write_format_version(&path, FORMAT_VERSION + 1);
    let before = std::fs::read(&path).unwrap();
    for e in open_both_modes(&path) {
        assert!(matches!(e, Error::Incompatible { .. }), "{e:?}");
        assert!(e.to_string().contains("newer"), "{e}");
    }
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the file was modified"
    );
}

#[test]
fn empty_and_missing_files_become_new_caches() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.redb");
    std::fs::write(&empty, b"").unwrap();
    let missing = dir.path().join("missing.redb");
    for path in [&empty, &missing] {
        let b = RedbBackend::open(path).unwrap();
        assert_eq!(b.len().unwrap(), 0);
        b.set("k", Record::new(vec![], None)).unwrap();
        drop(b);
        assert_eq!(RedbBackend::open(path).unwrap().len().unwrap(), 1);
    }
}

/// Issue 13, item 5: missing parent folders are created, in both modes.
#[test]
fn r13_missing_parent_folders_are_created() {
    let dir = tempfile::tempdir().unwrap();
    for (path, single) in [
        (dir.path().join("no/such/folder/c.redb"), false),
        (dir.path().join("other/nested/c.redb"), true),
    ] {
        let b = support::in_mode(RedbBackend::builder(&path), single)
            .build()
            .unwrap();
        b.set("k", Record::new(b"v".to_vec(), None)).unwrap();
        drop(b);
        let again = RedbBackend::open(&path).unwrap();
        assert_eq!(again.get("k").unwrap().unwrap().value, b"v");
    }
}

/// A folder that cannot be created (a regular file stands in its way) is an I/O error naming
/// the database file, whose cause names the folder.
#[test]
fn a_folder_that_cannot_be_created_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let path = file.join("sub/c.redb");
    let e = RedbBackend::open(&path).unwrap_err();
    assert!(e.is_io(), "{e:?}");
    assert_eq!(e.path(), Some(path.as_path()));
    let cause = std::error::Error::source(&e).expect("a cause").to_string();
    assert_eq!(
        cause,
        format!("cannot create its folder {}", file.join("sub").display())
    );
}

/// Issue 13, item 4: "not a redb database" is said once, in the whole error chain.
#[test]
fn r13_not_a_redb_database_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.redb");
    std::fs::write(&path, noise(8192, 7)).unwrap();
    for e in open_both_modes(&path) {
        let mut chain = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            chain.push_str(&format!(": {c}"));
            cause = c.source();
        }
        assert_eq!(
            chain
                .to_ascii_lowercase()
                .matches("not a redb database")
                .count(),
            1,
            "{chain}"
        );
        assert_eq!(
            chain,
            format!(
                "corrupt cache data in {}: not a redb database: magic number mismatch",
                path.display()
            )
        );
    }
}

#[test]
fn single_process_mode_excludes_other_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let owner = RedbBackend::builder(&path)
        .single_process()
        .build()
        .unwrap();
    let e = RedbBackend::open(&path).unwrap_err();
    assert!(matches!(e, Error::Backend { .. }), "{e:?}");
    drop(owner);
    // Dropping the owner released the file.
    RedbBackend::open(&path).unwrap();
}
