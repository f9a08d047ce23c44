//! Finding and opening a cache file: existence, which backend wrote it, reads that write
//! nothing, and writes through the backends themselves.

use crate::error::{CliError, Result};
use braincache_core::{Backend, Record, Timestamp};
use braincache_file::FileBackend;
use braincache_redb::RedbBackend;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// What a scan calls with each entry: the key, the deadline (`None`: never expires) and the
/// value's bytes.
pub(crate) type Visit<'a> = dyn FnMut(&str, Option<Timestamp>, &[u8]) -> Result<()> + 'a;

/// The backend a cache file belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// The JSON file backend (`braincache_file::FileBackend`).
    File,
    /// The redb backend (`braincache_redb::RedbBackend`).
    Redb,
}

impl Kind {
    /// The name `inspect` shows.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::File => "file (JSON)",
            Kind::Redb => "redb",
        }
    }

    /// The name `inspect --json` shows.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Redb => "redb",
        }
    }
}

/// The first bytes of every redb database file (redb's header magic number).
pub(crate) const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// Checks that `path` is an existing regular file (symbolic links followed) and returns its size.
/// Nothing is created when it is missing.
pub(crate) fn check_file(path: &Path) -> Result<u64> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(m.len()),
        Ok(_) => Err(CliError::NotAFile {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(CliError::Missing {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(CliError::io("cannot read", path, e)),
    }
}

/// Tells the backend by content: a file that starts with redb's magic number is a redb database;
/// anything else is taken for the JSON file backend's document (which then reports, with line
/// and column, what is wrong with a file that is neither). A zero-length file is an empty JSON
/// cache, as the file backend reads it.
pub(crate) fn detect(path: &Path) -> Result<Kind> {
    let mut file = File::open(path).map_err(|e| CliError::io("cannot read", path, e))?;
    let mut head = [0u8; REDB_MAGIC.len()];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CliError::io("cannot read", path, e)),
        }
    }
    Ok(if head[..filled] == REDB_MAGIC {
        Kind::Redb
    } else {
        Kind::File
    })
}

/// A cache file read without writing: nothing is created, locked or written. Holds every entry,
/// expired ones included, in key order.
pub(crate) struct Reader(Vec<(String, Record)>);

impl Reader {
    /// Reads the cache file at `path` as `kind`, through the backend's own read-only reader
    /// (`FileBackend::read_entries`, `RedbBackend::read_entries`).
    pub(crate) fn open(path: &Path, kind: Kind) -> Result<Reader> {
        Ok(Reader(match kind {
            Kind::File => FileBackend::read_entries(path)?,
            Kind::Redb => without_panic_messages(|| RedbBackend::read_entries(path))?,
        }))
    }

    /// The record stored under `key`, expired or not.
    pub(crate) fn get(&self, key: &str) -> Result<Option<Record>> {
        Ok(self
            .0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.0[i].1.clone()))
    }

    /// Every entry, in key order.
    pub(crate) fn records(&self) -> &[(String, Record)] {
        &self.0
    }

    /// Calls `f` with every entry (key, deadline, value bytes) in key order.
    pub(crate) fn scan(&self, f: &mut Visit<'_>) -> Result<()> {
        for (k, r) in &self.0 {
            f(k, r.expires_at, &r.value)?;
        }
        Ok(())
    }
}

/// Runs `f` with the panic hook silenced. redb panics on some damaged files;
/// `RedbBackend::read_entries` returns those panics as `Error::Corrupt` naming the file, which
/// the command prints, but the hook would print redb's panic message first.
fn without_panic_messages<T>(f: impl FnOnce() -> T) -> T {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = f();
    std::panic::set_hook(hook);
    result
}

/// Deletes `keys` through the backend; returns how many were there.
///
/// The file is first read without writing; when none of the keys is there it is not opened for
/// writing at all, so it stays byte for byte as it was (opening a redb file for writing rewrites
/// its header, and both backends create sidecar files).
pub(crate) fn delete(path: &Path, kind: Kind, keys: &[&str]) -> Result<usize> {
    let reader = Reader::open(path, kind)?;
    let mut present = 0;
    for k in keys {
        present += usize::from(reader.get(k)?.is_some());
    }
    // The read-only redb handle is closed before the backend opens the file.
    drop(reader);
    if present == 0 {
        return Ok(0);
    }
    Ok(match kind {
        Kind::File => FileBackend::open(path)?.delete_many(keys)?,
        Kind::Redb => RedbBackend::open(path)?.delete_many(keys)?,
    })
}

/// Removes the entries whose deadline is at or before `now` through the backend; returns how
/// many. As with [`delete`], a file with nothing to purge is not opened for writing.
pub(crate) fn purge(path: &Path, kind: Kind, now: Timestamp) -> Result<usize> {
    let reader = Reader::open(path, kind)?;
    let mut due = 0usize;
    reader.scan(&mut |_, deadline, _| {
        due += usize::from(deadline.is_some_and(|d| d <= now));
        Ok(())
    })?;
    drop(reader);
    if due == 0 {
        return Ok(0);
    }
    Ok(match kind {
        Kind::File => FileBackend::open(path)?.purge_expired(now)?,
        Kind::Redb => RedbBackend::open(path)?.purge_expired(now)?,
    })
}
