//! The redb file format for tools: recognize a braincache redb file, read its entries without
//! opening it as a cache (recovering a file whose last writer died without closing it), and
//! render stored values as JSON where the format allows.
//!
//! For the `braincache` command and other tools; a cache in use reads and writes through
//! [`RedbBackend`](crate::RedbBackend).
//!
//! ```
//! use braincache_core::{Backend, Record};
//! use braincache_redb::{RedbBackend, inspect};
//!
//! # fn main() -> braincache_core::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("cache.redb");
//! RedbBackend::open(&path)?.set("k", Record::new(b"v".to_vec(), None))?;
//! assert!(inspect::detect(&path)?);
//! let contents = inspect::read(&path)?;
//! assert_eq!(contents.entries, [("k".to_owned(), Record::new(b"v".to_vec(), None))]);
//! assert!(!contents.recovered); // closed cleanly: nothing was written
//! # Ok(())
//! # }
//! ```

use crate::errors;
use braincache_core::{Error, Operation, Record, Result};
use std::fs::File;
use std::io::{self, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// The first bytes of every redb database file (redb's header magic number).
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// True when the file at `path` starts with redb's magic number, so it is a redb database
/// (braincache's or another program's: [`read`] tells). Only the first bytes are read.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read.
pub fn detect(path: impl AsRef<Path>) -> Result<bool> {
    let path = path.as_ref();
    let fail = |e| Error::io(Operation::Open, path, e);
    let mut file = File::open(path).map_err(fail)?;
    let mut head = [0u8; REDB_MAGIC.len()];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fail(e)),
        }
    }
    Ok(head[..filled] == REDB_MAGIC)
}

/// What [`read`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Contents {
    /// Every entry, expired ones included, sorted by key.
    pub entries: Vec<(String, Record)>,
    /// True when the file needed crash recovery (the last process that wrote it exited without
    /// closing it, and no process had it open) and [`read`] recovered it first.
    pub recovered: bool,
}

/// Reads every entry of the braincache redb file at `path`, as
/// [`RedbBackend::read_entries`](crate::RedbBackend::read_entries) does (read-only, beside
/// processes that have it open), with one difference: a file whose last writer exited without
/// closing it (a `static` backend, `std::process::exit`, a crash) and that no process has open
/// any more is first recovered, as the next writer's open would recover it: [`recover`], then
/// the read. A file that needs no recovery is not written to.
///
/// # Errors
/// As [`RedbBackend::read_entries`](crate::RedbBackend::read_entries), and as [`recover`] when
/// a recovery was needed and failed.
pub fn read(path: impl AsRef<Path>) -> Result<Contents> {
    let path = path.as_ref();
    match crate::RedbBackend::read_entries(path) {
        Ok(entries) => Ok(Contents {
            entries,
            recovered: false,
        }),
        Err(e) if needs_recovery(&e) => {
            recover(path)?;
            Ok(Contents {
                entries: crate::RedbBackend::read_entries(path)?,
                recovered: true,
            })
        }
        Err(e) => Err(e),
    }
}

/// True when `e` says that a read-only open found the file not closed cleanly, with no live
/// writer to vouch for it: [`recover`] makes it readable.
#[must_use]
pub fn needs_recovery(e: &Error) -> bool {
    match e {
        Error::Backend {
            backend: errors::BACKEND,
            source,
            ..
        } => matches!(
            source.downcast_ref::<redb::Error>(),
            Some(redb::Error::RepairAborted)
        ),
        _ => false,
    }
}

/// Recovers the redb file at `path` after its last writer exited without closing it: opens it
/// for writing, as any writer's open would (redb checks every page and rebuilds its allocator
/// state), and closes it cleanly. The entries are not changed; every write that was
/// acknowledged before the writer died is kept (each was committed durably). The file must
/// exist; nothing else is created.
///
/// Safe while other processes use the file through `RedbBackend` in the default
/// multi-process mode. A redb file of another program is recovered too (redb's own recovery,
/// nothing braincache-specific is written).
///
/// # Errors
/// [`Error::Backend`] explaining what to do when the file cannot be opened for writing (no
/// permission, a read-only file system, a process holding it in single-process mode), with the
/// cause; [`Error::Corrupt`] when redb finds the file damaged beyond recovery.
pub fn recover(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let attempt = || -> std::result::Result<(), redb::DatabaseError> {
        let db = redb::Builder::new()
            .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
            .set_cache_size(16 << 20)
            .open(path)?;
        db.close()
    };
    let result = catch_unwind(AssertUnwindSafe(attempt))
        .map_err(|p| errors::read_panicked(path, None, p.as_ref()))?;
    result.map_err(|e| match errors::map(Operation::Open, path, None, e) {
        e @ Error::Corrupt { .. } => e,
        e => Error::backend(
            Operation::Open,
            errors::BACKEND,
            None,
            format!(
                "the file was not closed cleanly (a process that wrote it exited without \
                 closing its RedbBackend) and needs crash recovery, which opens it for writing; \
                 that failed ({e}). Open it once with write access to the file and its folder \
                 (RedbBackend::open, or the braincache command) to recover it"
            ),
        )
        .with_path(path),
    })
}

// How a tool renders a stored value as JSON text, and stores imported JSON: the same for every
// backend, so it lives in core.
#[doc(inline)]
pub use braincache_core::inspect::{value_from_json, value_json};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedbBackend;
    use braincache_core::Backend;

    #[test]
    fn detect_reads_the_magic_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.redb");
        RedbBackend::open(&path)
            .unwrap()
            .set("k", Record::new(vec![1], None))
            .unwrap();
        assert!(detect(&path).unwrap());
        for other in [&b""[..], b"redb", b"{}", &REDB_MAGIC[..8]] {
            std::fs::write(&path, other).unwrap();
            assert!(!detect(&path).unwrap(), "{other:?}");
        }
        assert!(matches!(
            detect(dir.path().join("missing")),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn only_a_repair_abort_needs_recovery() {
        let repair = Error::backend(
            Operation::Open,
            errors::BACKEND,
            None,
            redb::Error::RepairAborted,
        );
        assert!(needs_recovery(&repair));
        let other = Error::backend(
            Operation::Open,
            errors::BACKEND,
            None,
            redb::Error::DatabaseAlreadyOpen,
        );
        assert!(!needs_recovery(&other));
        assert!(!needs_recovery(&Error::corrupt_entry("k", "x")));
    }
}
