//! The JSON file backend of [braincache](https://docs.rs/braincache): one human-readable file,
//! in the Python original's format, safe against crashes and shared by processes.
//!
//! [`FileBackend`] keeps the whole cache in one JSON document,
//! `{"key": {"value": <json>, "expire_at": <unix seconds | null>}}`, so `cat cache.json` shows
//! every entry and the Python original reads the same file. Its codec is
//! [`Json`](braincache_core::Json), so values are stored as real JSON.
//!
//! ```
//! use braincache_core::{Backend, Record};
//! use braincache_file::FileBackend;
//!
//! # fn main() -> braincache_core::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("cache.json");
//! let backend = FileBackend::open(&path)?; // created when missing
//! backend.set("user", Record::new(br#"{"id":1234}"#.to_vec(), None))?;
//! assert_eq!(backend.get("user")?.unwrap().value, br#"{"id":1234}"#);
//!
//! let text = std::fs::read_to_string(&path).unwrap();
//! assert_eq!(text, "{\n  \"user\": {\"value\": {\"id\":1234}, \"expire_at\": null}\n}\n");
//! # Ok(())
//! # }
//! ```
//!
//! With the facade: `BrainCache::new(FileBackend::open("cache.json")?)`.
//!
//! # When to pick it
//! - You want to read or edit the cache with a text editor or `jq`, or share it with the Python
//!   original.
//! - The cache is small (up to a few thousand entries, a few MB) and read more than written.
//!
//! Not for large or write-heavy caches: every write rewrites the whole document (O(size)) and,
//! by default, waits for two fsyncs. Use the redb backend there.
//!
//! # Guarantees
//! - **Crash-safe writes.** A write goes to `<file>.tmp` in the same folder, is fsynced, renamed
//!   over the file, and the folder is fsynced. A crash or `kill -9` at any point leaves the old
//!   or the new document, never a torn one.
//! - **Durable by default.** When `set`, `delete`, `clear` or `purge_expired` returns `Ok`, the
//!   change is on disk.
//! - **Several processes.** Writers take an exclusive lock on the sidecar `<file>.lock`
//!   ([`std::fs::File::lock`]), reload the document if another process changed it, apply their
//!   change and write, so no process's write is lost. Reads take no lock: before answering from
//!   memory they `stat` the file (about a microsecond) and reload it if it changed, so a `get`
//!   sees every write another process finished before the `get` began.
//! - **Damaged files are refused, not overwritten.** A file that is not JSON or not in the
//!   format makes `open` (or the operation that meets it) return
//!   [`Error::Corrupt`] naming the path and the line and
//!   column; the file's bytes are left as they were, and writes are refused until it is fixed.
//! - I/O failures (a folder that cannot be created, a path through a regular file, permission denied, a full
//!   disk) are [`Error::Io`] naming the operation and the path, never
//!   a panic. A write that fails (a durable write, a removal, a flush) leaves the file and what
//!   the handle answers as they were before the call (a failed flush keeps its sets pending),
//!   and no reader saw its change meanwhile: a handle shows a write to its readers (any thread)
//!   only once the new file is renamed into place. One exception: when only the last step, the folder's fsync,
//!   fails, the new file is already in place (other processes may have read it), so the change
//!   stands; the error names the folder, the rename may not survive a power loss, and the next
//!   write or [`flush`](Backend::flush) fsyncs the folder again.
//! - Deadlines are kept to the nanosecond in the file (`expire_at` is written as an exact
//!   decimal), and an expiry index keeps [`purge_expired`](Backend::purge_expired) and
//!   `next_expiry` from scanning the document.
//!
//! # Batched mode: faster sets, weaker durability
//! Rewriting the document on every write costs O(size) plus two fsyncs per write. For
//! write-heavy use, [`FileBackend::builder`]`(path).flush_every(interval)` keeps sets in
//! memory and writes them at most once per `interval` from a background thread, on
//! [`flush`](Backend::flush), with the next removal, and when the backend is dropped:
//!
//! ```
//! use braincache_core::{Backend, Record};
//! use braincache_file::FileBackend;
//! use std::time::Duration;
//!
//! # fn main() -> braincache_core::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let backend = FileBackend::builder(dir.path().join("cache.json"))
//!     .flush_every(Duration::from_millis(100))
//!     .build()?;
//! for i in 0..1000 {
//!     backend.set(&format!("k{i}"), Record::new(b"1".to_vec(), None))?; // memory only
//! }
//! backend.flush()?; // one write for all of them; errors surface here
//! # Ok(())
//! # }
//! ```
//!
//! - **Only sets wait.** `set` and `set_many` return once the change is in memory (this
//!   handle's readers see it at once). A `set` that returned `Ok` is **not** on disk until the
//!   next flush, so a crash or `kill -9` loses up to `interval` of sets (the file itself is
//!   still never torn).
//! - **Removals are written at once.** `delete`, `delete_many`, `clear` and `purge_expired`
//!   work as in durable mode: under the lock, on the file as it is at the call, written (with
//!   this handle's pending sets) before they return, at the cost of one durable write. So a
//!   removal never reaches what another process writes after it. One that removes nothing
//!   writes nothing.
//! - **How pending sets meet other processes' writes.** A flush takes the lock, reloads the
//!   file, and writes this handle's pending sets on top: each key's latest value as this handle
//!   set it. Everything else in the file is kept, so another process's writes to other keys
//!   are never lost. For a key this handle has set since its last flush, the flush wins: a
//!   `set` or `delete` of that key by another process between this handle's `set` and its
//!   flush is overwritten (per key, the later flush wins, as if this handle's `set` ran at the
//!   flush). Once written, a set is not written again. If other processes delete keys to
//!   invalidate them, a batched handle's older value can come back this way: use durable mode
//!   there, or `flush()` after such sets.
//! - **Errors.** A failed background flush keeps the sets pending and tries again at the next
//!   tick; [`flush`](Backend::flush) returns the error. The flush on drop cannot report one:
//!   call `flush()` first if you need to know.
//!
//! # Size bound
//! [`FileBackendBuilder::max_bytes`] and [`FileBackendBuilder::max_entries`] bound the file
//! (unbounded by default). The bound is applied inside each write, under the file lock, to the
//! document being written, so the file on disk never exceeds it, whichever processes write
//! it (each with its own bound). The file keeps the Python original's format, so the eviction
//! order is this handle's own: expired entries first, then entries by (reads seen, last use),
//! with keys first met in another process's writes counted as used when met. In batched mode
//! the bound applies at each flush: the memory of a handle may hold more between flushes.
//!
//! # Cost
//! A durable `set` costs about one replace of the document: two fsyncs (the new file's and the
//! folder's) and a write of the whole document. A batched `set` costs a map insert; each flush
//! then costs one durable write. A `get` is a `stat` and a map lookup. Figures measured on one
//! machine are in the *Performance* section of the
//! [`braincache` README](https://docs.rs/crate/braincache/latest).
//!
//! A durable write's cost grows with the document; `set_many` and `delete_many` write once for
//! all their entries.
//!
//! # Limitations
//! - Cooperating writers are braincache processes. The Python original writes the file in place
//!   and takes no lock: sharing a file with it is safe while only one side writes at a time.
//! - The file lock is advisory (`flock` on Unix) and may not work on network file systems.
//! - The whole document lives in memory in each process that opens it.
//!
//! The file format, including how values that are not JSON text are stored, is described below.
//!
#![doc = include_str!("../FORMAT.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

#[cfg(feature = "async")]
mod aio;
mod bound;
mod format;
pub mod inspect;
mod lease;
mod store;

pub use bound::ENTRY_OVERHEAD;

use braincache_core::{
    Backend, Error, Json, Lease, LeaseToken, Operation, Record, Result, Timestamp, Worker,
};
use crossbeam_channel::RecvTimeoutError;
use format::{Entry, Fresh, StoredValue};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use store::Store;

/// A cache kept in one JSON file. See the [crate docs](crate) for guarantees and format.
///
/// Opening the same file from several handles or processes is supported; each keeps the
/// document in memory and reloads it when the file changes. Dropping the backend writes what is
/// pending (batched mode), stops its flush thread and closes its files.
///
/// ```
/// use braincache::backend::{Backend, Record};
/// use braincache::backend::FileBackend;
///
/// # fn main() -> braincache::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("cache.json");
/// let a = FileBackend::open(&path)?;
/// let b = FileBackend::open(&path)?; // another handle, as another process would have
/// a.set("k", Record::new(b"42".to_vec(), None))?;
/// assert_eq!(b.get("k")?.unwrap().value, b"42"); // b notices the file changed
/// # Ok(())
/// # }
/// ```
pub struct FileBackend {
    store: Arc<Store>,
    flush_every: Option<Duration>,
    flusher: Option<Worker>,
    /// The writer thread of durable `set_async`, started on first use.
    #[cfg(feature = "async")]
    async_writer: aio::Writer,
}

impl FileBackend {
    /// Opens the cache file at `path` in durable mode, creating an empty one when it does not
    /// exist, and its folder and any missing parent folders (`std::fs::create_dir_all`, as
    /// Python's diskcache does). Same as `FileBackend::builder(path).build()`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the file is not a cache document (it is left untouched);
    /// [`Error::Io`] when the file, its folder or its sidecar `<file>.lock` cannot be created
    /// or read. The error's path is `path`; its `source()` names the folder or lock file when
    /// that step failed.
    pub fn open(path: impl AsRef<Path>) -> Result<FileBackend> {
        FileBackend::builder(path).build()
    }

    /// A builder, to choose batched writes.
    pub fn builder(path: impl AsRef<Path>) -> FileBackendBuilder {
        FileBackendBuilder {
            path: path.as_ref().to_path_buf(),
            flush_every: None,
            max_bytes: None,
            max_entries: None,
        }
    }

    /// The cache file (absolute, with a symbolic link resolved).
    #[must_use]
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// The batched mode's flush interval; `None` in durable mode.
    #[must_use]
    pub fn flush_every(&self) -> Option<Duration> {
        self.flush_every
    }

    /// The bytes of the document as the bound counts them: for each entry its key, its value's
    /// bytes and [`ENTRY_OVERHEAD`]. Computed from the document (fresh from the file).
    ///
    /// # Errors
    /// As [`Backend::len`].
    pub fn bytes(&self) -> Result<u64> {
        self.store.read(Operation::Len, |v| bound::usage(v).0)
    }

    /// The byte bound, if any.
    #[must_use]
    pub fn max_bytes(&self) -> Option<u64> {
        self.store.bound.max_bytes()
    }

    /// The entry bound, if any.
    #[must_use]
    pub fn max_entries(&self) -> Option<u64> {
        self.store.bound.max_entries()
    }

    /// True in durable mode (every write on disk before it returns).
    #[must_use]
    pub fn is_durable(&self) -> bool {
        self.store.is_durable()
    }

    /// Reads every entry of the cache file at `path`, expired ones included, sorted by key,
    /// without opening it as a cache: no lock is taken and nothing is created or written (so it
    /// also works on a file in a read-only folder). Writers replace the file whole, so the
    /// entries are one version of it. A zero-length file has no entries.
    ///
    /// For tools that inspect or export a cache ([`inspect`] has the rest of what they need); a
    /// cache in use reads through [`Backend`].
    ///
    /// ```
    /// use braincache::backend::{Backend, Record};
    /// use braincache::backend::FileBackend;
    ///
    /// # fn main() -> braincache::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("cache.json");
    /// std::fs::write(&path, r#"{"b": {"value": 2, "expire_at": null},
    ///                           "a": {"value": [1], "expire_at": 1.5}}"#).unwrap();
    /// let entries = FileBackend::read_entries(&path)?;
    /// assert_eq!(entries[0].0, "a");
    /// assert_eq!(entries[0].1.value, b"[1]");
    /// assert_eq!(entries[1].1, Record::new(b"2".to_vec(), None));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Corrupt`] (with line and column) when the file is not a cache document;
    /// [`Error::Io`] when it cannot be read (a missing file is an error, not an empty cache).
    pub fn read_entries(path: impl AsRef<Path>) -> Result<Vec<(String, Record)>> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(Operation::Open, path, e))?;
        let entries = format::parse(&bytes)
            .map_err(|e| Error::corrupt_file(path, Some(e.position()), e.detail.clone()))?;
        Ok(entries
            .iter()
            .map(|(k, e)| (k.clone(), record(e)))
            .collect())
    }
}

impl fmt::Debug for FileBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileBackend")
            .field("path", &self.path())
            .field("flush_every", &self.flush_every)
            .field("cached_len", &self.store.cached_len())
            .finish_non_exhaustive()
    }
}

impl Drop for FileBackend {
    fn drop(&mut self) {
        if let Some(flusher) = self.flusher.take() {
            flusher.stop();
        }
        // Nothing is pending in durable mode. In batched mode an error here cannot be
        // reported; `flush()` before dropping reports it.
        let _ = self.store.flush(Operation::Close);
    }
}

fn record(entry: &Entry) -> Record {
    let r = Record::new(entry.value.to_bytes(), entry.expires_at).with_codec(entry.value.codec());
    match &entry.fresh {
        None => r,
        Some(f) => r
            .with_fresh_until(f.fresh_until)
            .with_computed(f.computed_at, f.compute_time),
    }
}

fn entry(record: Record) -> Entry {
    let fresh = Fresh::of(&record);
    Entry {
        value: StoredValue::from_record(record.value, record.codec),
        expires_at: record.expires_at,
        fresh,
    }
}

impl Backend for FileBackend {
    type Codec = Json;

    fn get(&self, key: &str) -> Result<Option<Record>> {
        let found = self
            .store
            .read(Operation::Get, |v| {
                v.get(key).filter(|e| !e.is_placeholder()).map(record)
            })
            .map_err(|e| e.with_key(key))?;
        if found.is_some() {
            self.store.bound.read(key);
        }
        Ok(found)
    }

    fn set(&self, key: &str, record: Record) -> Result<()> {
        self.store.bound.set(key);
        self.store
            .set(Operation::Set, [(key.to_owned(), entry(record))])
            .map_err(|e| e.with_key(key))
    }

    /// Written before it returns in both modes (see the crate docs' batched mode).
    fn delete(&self, key: &str) -> Result<bool> {
        self.store
            .change(Operation::Delete, |v, c| c.delete(v, key))
            .map_err(|e| e.with_key(key))
    }

    /// Written before it returns in both modes (see the crate docs' batched mode).
    fn clear(&self) -> Result<()> {
        self.store.change(Operation::Clear, |v, c| c.clear(v))
    }

    fn len(&self) -> Result<usize> {
        self.store.read(Operation::Len, store::View::len)
    }

    /// Written before it returns in both modes (see the crate docs' batched mode).
    fn purge_expired(&self, now: Timestamp) -> Result<usize> {
        self.store.change(Operation::Purge, |v, c| c.purge(v, now))
    }

    fn next_expiry(&self) -> Result<Option<Timestamp>> {
        self.store
            .read(Operation::NextExpiry, store::View::next_expiry)
    }

    fn flush(&self) -> Result<()> {
        self.store.flush(Operation::Flush)
    }

    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Record>>> {
        let found: Vec<Option<Record>> = self.store.read(Operation::Get, |v| {
            keys.iter()
                .map(|k| v.get(k).filter(|e| !e.is_placeholder()).map(record))
                .collect()
        })?;
        for (k, f) in keys.iter().zip(&found) {
            if f.is_some() {
                self.store.bound.read(k);
            }
        }
        Ok(found)
    }

    /// Writes all the records with one rewrite of the file (one pair of fsyncs).
    fn set_many(&self, entries: Vec<(String, Record)>) -> Result<()> {
        for (k, _) in &entries {
            self.store.bound.set(k);
        }
        self.store.set(
            Operation::Set,
            entries.into_iter().map(|(k, r)| (k, entry(r))),
        )
    }

    /// A `lease` member in the key's entry, inside the locked document (see `lease.rs`).
    fn try_lease(
        &self,
        key: &str,
        token: LeaseToken,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease> {
        self.store
            .change(Operation::Lease, |v, c| {
                lease::take(v, c, key, token, ttl, now)
            })
            .map_err(|e| e.with_key(key))
    }

    fn release_lease(&self, key: &str, token: LeaseToken) -> Result<()> {
        self.store
            .change(Operation::Lease, |v, c| lease::release(v, c, key, token))
            .map_err(|e| e.with_key(key))
    }

    /// Removes the keys with one rewrite of the file, written before it returns in both modes.
    fn delete_many(&self, keys: &[&str]) -> Result<usize> {
        self.store.change(Operation::Delete, |v, c| {
            keys.iter().filter(|k| c.delete(v, k)).count()
        })
    }

    /// Entries this handle's writes evicted to keep the file within its bound.
    fn evictions(&self) -> u64 {
        self.store.bound.evictions()
    }
}

/// Builds a [`FileBackend`]. Defaults: durable mode (every write fsynced before it returns).
///
/// ```
/// use braincache::backend::FileBackend;
/// use std::time::Duration;
///
/// # fn main() -> braincache::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let backend = FileBackend::builder(dir.path().join("cache.json"))
///     .flush_every(Duration::from_millis(250))
///     .build()?;
/// assert_eq!(backend.flush_every(), Some(Duration::from_millis(250)));
/// # Ok(())
/// # }
/// ```
#[must_use]
#[derive(Debug, Clone)]
pub struct FileBackendBuilder {
    path: PathBuf,
    flush_every: Option<Duration>,
    max_bytes: Option<u64>,
    max_entries: Option<u64>,
}

impl FileBackendBuilder {
    /// Batched mode: keep sets in memory and write them at most once per `interval` (and on
    /// `flush()`, with the next removal, and on drop). Sets acknowledged since the last write
    /// are lost if the process dies; removals (`delete`, `clear`, `purge_expired`) are still
    /// written before they return. See the
    /// [crate docs](crate#batched-mode-faster-sets-weaker-durability). The interval is at least
    /// 1 ms (a zero interval is clamped to it, like every zero limit of braincache's builders);
    /// durable mode is [`durable`](Self::durable).
    pub fn flush_every(mut self, interval: Duration) -> Self {
        self.flush_every = Some(interval.max(Duration::from_millis(1)));
        self
    }

    /// Durable mode (the default; the one way to ask for it): every change is written and
    /// fsynced before the call returns. Undoes [`flush_every`](Self::flush_every).
    pub fn durable(mut self) -> Self {
        self.flush_every = None;
        self
    }

    /// Bounds the document's bytes as [`FileBackend::bytes`] counts them (unbounded by
    /// default). Every write that would leave the file over the bound removes entries in the
    /// same rewrite: expired ones first, then the ones this handle saw used least (see the
    /// [crate docs](crate#size-bound)). The file stays in the Python original's format.
    ///
    /// ```
    /// use braincache_core::{Backend, Record};
    /// use braincache_file::FileBackend;
    ///
    /// # fn main() -> braincache_core::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let b = FileBackend::builder(dir.path().join("cache.json"))
    ///     .max_bytes(4096)
    ///     .max_entries(20)
    ///     .build()?;
    /// for i in 0..100 {
    ///     b.set(&format!("k{i}"), Record::new(b"[1, 2, 3]".to_vec(), None))?;
    /// }
    /// assert!(b.len()? <= 20 && b.bytes()? <= 4096);
    /// assert_eq!(b.evictions(), 80);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// At least 1 (zero is clamped, like every zero limit of the builders).
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes.max(1));
        self
    }

    /// Bounds the number of entries, as [`max_bytes`](Self::max_bytes) bounds the bytes.
    ///
    /// At least 1 (zero is clamped, like every zero limit of the builders).
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.max_entries = Some(entries.max(1));
        self
    }

    /// Opens the file (creating it and its missing parent folders) and, in batched mode,
    /// starts the flush thread.
    ///
    /// # Errors
    /// As [`FileBackend::open`]; also [`Error::Io`] if the flush thread cannot be started.
    pub fn build(self) -> Result<FileBackend> {
        let bound = bound::Bound::new(self.max_bytes, self.max_entries);
        let store = Arc::new(Store::open(&self.path, self.flush_every.is_none(), bound)?);
        let flusher = match self.flush_every {
            Some(every) => Some(
                Flusher::start(Arc::clone(&store), every)
                    .map_err(|e| Error::io(Operation::Open, store.path(), e))?,
            ),
            None => None,
        };
        Ok(FileBackend {
            store,
            flush_every: self.flush_every,
            flusher,
            #[cfg(feature = "async")]
            async_writer: aio::Writer::new(),
        })
    }
}

/// The batched mode's background thread: flushes every interval until stopped. Stopping (or
/// dropping) it waits for at most one flush under way.
struct Flusher;

impl Flusher {
    fn start(store: Arc<Store>, every: Duration) -> std::io::Result<Worker> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        Worker::spawn(
            "braincache-file-flush",
            move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    // A failure keeps the changes pending for the next tick.
                    let _ = store.flush(Operation::Flush);
                }
            },
            move || {
                let _ = stop.send(());
            },
        )
    }
}
