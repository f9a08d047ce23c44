//! Read-only access to a redb cache file, for `inspect`, `get` and `export`.
//!
//! `RedbBackend::open` opens the file for writing: redb rewrites the file's header on such an
//! open, and the backend creates the `<file>.seq` stamp file. A command that only reads must
//! leave the file as it was, so this module opens it with redb's read-only handle instead, in
//! `MultiWriter` mode: the mode `RedbBackend` uses by default, so the read-only handle shares the
//! file with running caches and sees their commits (a handle in another mode would fail with
//! `DatabaseAlreadyOpen`). A read-only handle in that mode never repairs and never writes.
//!
//! The table layout is the one `braincache-redb` documents (its `format.rs`, format version 1):
//! - `entries`: key (`&str`) → a one-byte tag, then for tag 1 the deadline as a little-endian
//!   `u64` of nanoseconds since the Unix epoch, then the value bytes; tag 0 has no deadline;
//! - `expiry`: (deadline, key) → `()`, the expiry index (not needed here: the deadlines are in
//!   the entries);
//! - `meta`: `"format_version"` → `u64`.
//!
//! redb may panic on a file damaged outside redb (its `&str` keys are unwrapped UTF-8, for
//! one); every call into redb runs under [`guarded`], which turns a panic into
//! [`Error::Corrupt`] naming the file.

use crate::cache::Visit;
use crate::error::{CliError, Result};
use braincache_core::{Error, Operation, Record, Timestamp};
use redb::{
    ConcurrencyMode, MultimapTableHandle, ReadOnlyDatabase, ReadOnlyTable, ReadableDatabase,
    ReadableTable, TableDefinition, TableHandle,
};
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// key → header + value.
const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
/// Settings of the file itself.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The tables of a braincache file, and no others.
const TABLE_NAMES: [&str; 3] = ["entries", "expiry", "meta"];
/// The `meta` key holding the format version.
const FORMAT_VERSION_KEY: &str = "format_version";
/// The format version whose entry layout [`split_entry`] reads.
pub(crate) const READ_VERSION: u64 = 1;

const TAG_FOREVER: u8 = 0;
const TAG_DEADLINE: u8 = 1;

/// A redb cache file opened read-only.
pub(crate) struct RedbFile {
    // Declared before `_db`, so it is dropped first.
    /// `None` when the file has no tables yet (created but never initialized): an empty cache.
    entries: Option<ReadOnlyTable<&'static str, &'static [u8]>>,
    /// Keeps the file open: a table's reads fail once its database is closed.
    _db: ReadOnlyDatabase,
    path: PathBuf,
}

impl RedbFile {
    /// Opens the file read-only and checks that it is a braincache cache of a format version
    /// this build reads. Nothing is written.
    pub(crate) fn open(path: &Path) -> Result<RedbFile> {
        guarded(path, None, || {
            let fail = |e: redb::Error| map(Operation::Open, path, None, e);
            let db = redb::Builder::new()
                .set_concurrency_mode(ConcurrencyMode::MultiWriter)
                .set_cache_size(16 << 20)
                .open_read_only(path)
                .map_err(|e| match e {
                    redb::DatabaseError::DatabaseAlreadyOpen => already_open(path),
                    e => fail(e.into()),
                })?;
            let txn = db.begin_read().map_err(|e| fail(e.into()))?;
            let mut names: Vec<String> = txn
                .list_tables()
                .map_err(|e| fail(e.into()))?
                .map(|t| t.name().to_owned())
                .collect();
            let multimap: Vec<String> = txn
                .list_multimap_tables()
                .map_err(|e| fail(e.into()))?
                .map(|t| t.name().to_owned())
                .collect();
            if names.is_empty() && multimap.is_empty() {
                return Ok(RedbFile {
                    entries: None,
                    _db: db,
                    path: path.to_path_buf(),
                });
            }
            let mut foreign: Vec<String> = multimap;
            foreign.extend(
                names
                    .drain(..)
                    .filter(|n| !TABLE_NAMES.contains(&n.as_str())),
            );
            if !foreign.is_empty() {
                foreign.sort_unstable();
                return Err(incompatible(
                    path,
                    format!(
                        "the redb file holds tables braincache does not use ({}): it belongs to \
                         another program",
                        foreign.join(", ")
                    ),
                )
                .into());
            }
            let table_error = |what: &str, e: redb::TableError| {
                incompatible(
                    path,
                    format!("the `{what}` table cannot be opened as braincache's: {e}"),
                )
            };
            let meta = txn.open_table(META).map_err(|e| table_error("meta", e))?;
            let version = ReadableTable::get(&meta, FORMAT_VERSION_KEY)
                .map_err(|e| fail(e.into()))?
                .map(|g| g.value());
            match version {
                Some(READ_VERSION) => {}
                Some(v) => {
                    return Err(incompatible(
                        path,
                        format!("format version {v}; this braincache reads version {READ_VERSION}"),
                    )
                    .into());
                }
                None => {
                    return Err(incompatible(path, "no format version in the `meta` table").into());
                }
            }
            let entries = txn
                .open_table(ENTRIES)
                .map_err(|e| table_error("entries", e))?;
            Ok(RedbFile {
                entries: Some(entries),
                _db: db,
                path: path.to_path_buf(),
            })
        })
    }

    /// The record stored under `key`, expired or not.
    pub(crate) fn get(&self, key: &str) -> Result<Option<Record>> {
        let Some(table) = &self.entries else {
            return Ok(None);
        };
        let path = &self.path;
        guarded(path, Some(key), || match ReadableTable::get(table, key) {
            Ok(Some(g)) => {
                let (deadline, value) = split_entry(g.value())
                    .map_err(|d| Error::corrupt_entry(key, d).with_path(path))?;
                Ok(Some(Record::new(value.to_vec(), deadline)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(map(Operation::Get, path, Some(key), e.into()).into()),
        })
    }

    /// Calls `f` with every entry (key, deadline, value bytes) in key order.
    pub(crate) fn scan(&self, f: &mut Visit<'_>) -> Result<()> {
        let Some(table) = &self.entries else {
            return Ok(());
        };
        let path = &self.path;
        guarded(path, None, || {
            let fail = |e: redb::StorageError| map(Operation::Get, path, None, e.into());
            for row in table.iter().map_err(fail)? {
                let (k, v) = row.map_err(fail)?;
                let key = k.value();
                let (deadline, value) = split_entry(v.value())
                    .map_err(|d| Error::corrupt_entry(key, d).with_path(path))?;
                f(key, deadline, value)?;
            }
            Ok(())
        })
    }
}

/// Splits entry bytes into the deadline and the value; `Err` describes the damage. The layout is
/// `braincache-redb`'s format version 1 (see the module docs).
pub(crate) fn split_entry(bytes: &[u8]) -> std::result::Result<(Option<Timestamp>, &[u8]), String> {
    match bytes.split_first() {
        None => Err("empty entry (no header)".to_owned()),
        Some((&TAG_FOREVER, value)) => Ok((None, value)),
        Some((&TAG_DEADLINE, rest)) => match rest.split_first_chunk::<8>() {
            Some((deadline, value)) => Ok((
                Some(Timestamp::from_unix_nanos(u64::from_le_bytes(*deadline))),
                value,
            )),
            None => Err(format!(
                "entry header truncated: {} deadline bytes of 8",
                rest.len()
            )),
        },
        Some((tag, _)) => Err(format!("unknown entry header tag {tag}")),
    }
}

/// Runs `f`, turning a panic inside redb into an error naming the file. The panic message is
/// not printed: the error carries it.
fn guarded<T>(path: &Path, key: Option<&str>, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        let e = Error::corrupt_file(path, None, format!("redb failed reading the file: {what}"));
        Err(CliError::Cache(match key {
            Some(k) => e.with_key(k),
            None => e,
        }))
    })
}

fn incompatible(path: &Path, detail: impl Into<String>) -> Error {
    Error::Incompatible {
        path: Some(path.to_path_buf()),
        detail: detail.into(),
    }
}

fn already_open(path: &Path) -> Error {
    Error::backend(
        Operation::Open,
        "redb",
        None,
        "another process has the file open in single-process mode (redb ExclusiveWriter), which \
         excludes every other process; read it when that process has closed it",
    )
    .with_path(path)
}

/// Maps a redb error the way `braincache-redb` does, so messages match the backend's:
/// damage → `Corrupt`; not a redb file → `Corrupt`; an old redb format → `Incompatible`;
/// I/O → `Io`; anything else → `Backend`.
fn map(op: Operation, path: &Path, key: Option<&str>, err: redb::Error) -> Error {
    let mapped = match err {
        redb::Error::Corrupted(detail) => Error::corrupt_file(path, None, detail),
        redb::Error::UpgradeRequired(v) => incompatible(
            path,
            format!(
                "the file is in redb file format {v}, which redb 4 does not open; upgrade it \
                 with redb's own tools"
            ),
        ),
        redb::Error::Io(e) if op == Operation::Open && e.kind() == io::ErrorKind::InvalidData => {
            let text = e.to_string();
            let detail = if text.to_ascii_lowercase().starts_with("not a redb database") {
                text
            } else {
                format!("not a redb database: {text}")
            };
            Error::corrupt_file(path, None, detail)
        }
        // A file that starts like a redb database but ends before its header does.
        redb::Error::Io(e) if op == Operation::Open && e.kind() == io::ErrorKind::UnexpectedEof => {
            Error::corrupt_file(path, None, format!("truncated redb database: {e}"))
        }
        redb::Error::Io(e) => Error::io(op, path, e),
        other => Error::backend(op, "redb", key, other).with_path(path),
    };
    match key {
        Some(k) => mapped.with_key(k),
        None => mapped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_backends_format_version() {
        // The entry layout above is format version 1's; a new version needs a new reader.
        assert_eq!(braincache_redb::FORMAT_VERSION, READ_VERSION);
    }

    #[test]
    fn entry_headers_split_and_damage_is_described() {
        assert_eq!(split_entry(&[0, 7, 8]), Ok((None, &[7, 8][..])));
        let mut e = vec![1];
        e.extend_from_slice(&5u64.to_le_bytes());
        e.push(9);
        assert_eq!(
            split_entry(&e),
            Ok((Some(Timestamp::from_unix_nanos(5)), &[9][..]))
        );
        assert!(split_entry(&[]).is_err());
        assert!(split_entry(&[1, 0, 0]).unwrap_err().contains("truncated"));
        assert!(split_entry(&[2]).unwrap_err().contains("tag 2"));
    }
}
