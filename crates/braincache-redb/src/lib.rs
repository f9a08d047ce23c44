//! The durable backend of [braincache](https://docs.rs/braincache), on
//! [redb](https://docs.rs/redb): one file that several processes read and write at once.
//!
//! ```
//! use braincache_core::{Backend, Record};
//! use braincache_redb::RedbBackend;
//!
//! # fn main() -> braincache_core::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let backend = RedbBackend::open(dir.path().join("cache.redb"))?; // created if missing
//! backend.set("k", Record::new(b"v".to_vec(), None))?; // durable when it returns
//! assert_eq!(backend.get("k")?.unwrap().value, b"v");
//! # Ok(())
//! # }
//! ```
//!
//! - **Several processes, one file.** The file is opened in redb's `MultiWriter` mode, so any
//!   number of processes may open it for writing; [`RedbBackendBuilder::single_process`] uses
//!   redb's `ExclusiveWriter` mode instead (about half the commit cost, one process only).
//! - **Durable writes, group-committed.** Every write of a process goes to one writer thread,
//!   which commits whatever is queued in one durable transaction and answers each caller only
//!   after that commit reached the disk. In `MultiWriter` mode a commit costs about the same for
//!   8 writes as for 1, so concurrent writers share the cost.
//! - **Cheap reads that see every acknowledged write.** Reads run on the caller's thread, in a
//!   read snapshot reused while a commit stamp shared by all processes (the sidecar file
//!   `<file>.seq`) says nobody has committed since: see [Guarantees](#guarantees).
//! - **Bounded, across processes.** 1 GiB by default ([`DEFAULT_MAX_BYTES`]);
//!   [`RedbBackendBuilder::max_bytes`], [`max_entries`](RedbBackendBuilder::max_entries) and
//!   [`unbounded`](RedbBackendBuilder::unbounded) choose. Usage is kept in the file and updated
//!   in each write transaction, which also evicts (expired entries first, then by S3-FIFO, with
//!   reads recorded as hints that the next commit folds in), so the file never holds more than
//!   the bound after a commit, whichever process made it, and a `kill -9` never leaves the
//!   bookkeeping wrong. [`RedbBackend::compact`] gives freed pages back to the file system.
//! - **Purging follows what expired.** An `expiry` table ordered by deadline is walked from its
//!   start up to now; [`Backend::next_expiry`] is its first row.
//! - **Typed errors, never a panic on bad files.** A file that is not a redb database is
//!   [`Error::Corrupt`]; a redb file with other tables or a newer format version is
//!   [`Error::Incompatible`]. Neither is written to. A damaged entry is `Error::Corrupt` naming
//!   the key. redb panics on pages damaged outside redb; those panics are caught and returned
//!   as `Error::Corrupt` (redb's panic message still reaches the panic hook).
//!
//! # Guarantees
//! - **Durability.** When `set`, `delete`, `clear`, `purge_expired` or a batch form returns
//!   `Ok`, its transaction was committed with redb's `Durability::Immediate` (fsynced): it
//!   survives a crash of the process or of the machine. A write that returned an error, or had
//!   not returned when the process died, may or may not be there; the file is never torn.
//!   With [`RedbBackendBuilder::write_behind`] a write returns once queued instead: it is
//!   durable after the next commit (at most about the interval later) or `flush`, and a crash
//!   before that loses it (and every later write of this process), never the file.
//! - **Visibility.** A `get` (and `len`, `next_expiry`, `get_many`) sees every write that was
//!   acknowledged, in this process or any other process using `RedbBackend` on the same file,
//!   before the `get` began (with write-behind: this process's queued writes at once, other
//!   processes' once committed). Writes that are acknowledged while it runs may or may not be seen.
//!   `get_many` reads all its keys from one snapshot.
//! - **Atomicity.** Each call is one transaction or part of one: `set_many` and `delete_many`
//!   apply all or nothing.
//! - **Order.** Writes of one thread apply in the order they were made. Across processes, the
//!   last commit wins.
//! - **A full disk, and other I/O errors.** A write whose commit finds the disk full fails with
//!   [`Error::Io`] of kind `StorageFull` ([`Error::is_storage_full`]) and was not applied.
//!   redb then refuses every call on its open database ("Previous I/O error occurred"), so the
//!   backend opens the file again before it answers (the last durable commit is intact): on the
//!   same handle, reads of acknowledged keys keep working while the disk is full, writes fail
//!   with the same typed error, and writes succeed again once there is space. No restart and no
//!   new handle are needed. If the reopen itself fails, the call gets the open's error and the
//!   next call tries again.
//!
//! These hold for processes on one machine on a local file system, when every process that
//! writes the file uses this crate (the stamp file must see every commit) and in the same mode
//! (redb refuses a `single_process` open beside a multi-process one, with
//! `Error::Backend`).
//!
//! # Costs
//! A `get` costs a lookup in a reused read snapshot, below raw redb's own read; a `set` waits for
//! one durable commit, shared with every other write queued meanwhile. Figures measured on one
//! machine, against raw redb, are in the *Performance* section of the
//! [`braincache` README](https://docs.rs/crate/braincache/latest).
//!
//! A `get` in multi-process mode costs three atomic loads from the memory-mapped stamp file more
//! than a lookup in a reused snapshot (it used to cost a `pread`, a quarter of the get), and
//! borrows that snapshot with two atomic instructions on a slot of the calling thread (no lock,
//! no reference count shared with other threads); when another process commits between two
//! reads, the next read begins a new snapshot (about 5 µs).
//! Every write waits for a durable commit (an fsync), so one thread writing in a loop makes one
//! write per commit; several threads, or `set_many`, share commits (or use write-behind).
//!
//! # Files
//! `<name>` is the redb database (tables `entries`, `expiry`, `meta`, the usage bookkeeping
//! `usage`, `policy`, `queue`, and `leases` once a lease was taken; format version
//! [`FORMAT_VERSION`]). A file without the bookkeeping tables (written by an earlier build) gets
//! them, computed from its entries, at its first write; earlier builds refuse a file that has
//! them, or a `leases` table. In multi-process mode `<name>.seq` (24 bytes) carries the commit
//! stamp; it holds no data and may be deleted when no process has the cache open. Every process
//! maps it into memory: truncating it while a process has the cache open makes that process's
//! next read fault (`SIGBUS`).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod aio;
mod bound;
mod errors;
mod format;
pub mod inspect;
mod lease;
mod overlay;
mod reader;
mod stamp;
mod writer;

pub use bound::{Usage, usage_report};
pub use format::{FORMAT_VERSION, value_as_json};

/// This backend's name in errors: the `backend` field of [`Error::Backend`] and
/// [`Error::Closed`] (`"redb"`).
pub const BACKEND_NAME: &str = "redb";

use braincache_core::{
    Backend, Error, Lease, LeaseToken, MsgPack, Operation, Record, RecordRef, Result, Timestamp,
};
use format::{ENTRIES, EXPIRY, FORMAT_VERSION_KEY, META, TABLE_NAMES, decode_entry};
use overlay::Write;
use reader::{Snapshot, SnapshotCache};
use redb::{
    ConcurrencyMode, Database, MultimapTableHandle, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableHandle,
};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;
use writer::{Answer, Command, Engine, Limits, Writer};

/// The byte bound of a [`RedbBackend`] unless the builder says otherwise: 1 GiB, as Python
/// diskcache's default `size_limit`.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// A cache stored in a redb database file, shared by every process that opens it.
///
/// Cheap to share between threads (`Send + Sync`); wrap it in a `BrainCache` (which is `Clone`).
/// Two handles on one file in one process work like two processes (each has its own writer
/// thread and page cache), so one shared handle is cheaper. Dropping it finishes the writes
/// that are queued, stops its writer thread and closes the file, releasing its locks. See the
/// [crate docs](crate) for what it guarantees.
///
/// ```
/// use braincache::Timestamp;
/// use braincache::backend::{Backend, Record};
/// use braincache::backend::RedbBackend;
/// use std::time::Duration;
///
/// # fn main() -> braincache::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("cache.redb");
/// let backend = RedbBackend::builder(&path).build()?;
/// let deadline = Timestamp::now() + Duration::from_secs(60);
/// backend.set("session", Record::new(b"abc".to_vec(), Some(deadline)))?;
/// assert_eq!(backend.next_expiry()?, Some(deadline));
/// drop(backend);
///
/// // Durable: a later open (in this process or another) finds it.
/// let again = RedbBackend::open(&path)?;
/// assert_eq!(again.get("session")?.unwrap().value, b"abc");
/// # Ok(())
/// # }
/// ```
pub struct RedbBackend {
    /// `None` once [`close`](RedbBackend::close)d. Every call holds the read lock while it runs,
    /// so `close` waits for the calls in flight and later calls see `None`; reads that reuse the
    /// cached snapshot are the exception ([`RedbBackend::reusable`]), and `close` waits for them
    /// through the count of live snapshots, after it let go of this lock (their closures may
    /// call the backend, and get [`Error::Closed`]).
    state: RwLock<Option<Open>>,
    /// Held by `close` from start to end, so that a second `close` returns only once the
    /// database is closed (the state lock is let go of before that).
    closing: Mutex<()>,
    /// What `Open::shared` holds, for the reads that reuse the cached snapshot without the state
    /// lock. It outlives `close`, which closes its database.
    engine: Arc<Engine>,
    /// Opened with write-behind: reads look at the queued writes first, under the state lock.
    writes_behind: bool,
    path: PathBuf,
    single_process: bool,
    /// The writer's commit count when the backend was closed.
    commits_at_close: AtomicU64,
    /// The size bound it was opened with.
    limit: bound::Limit,
}

/// What an open backend holds; dropping it stops the writer thread. The database closes when
/// [`RedbBackend::close`] closes it, or when the backend drops.
struct Open {
    // Declared first: dropping it commits the buffered writes (write-behind) while the writer
    // thread still runs.
    behind: Option<overlay::Behind>,
    // Dropping it drains the queue and joins the thread before the database goes.
    writer: Writer,
    shared: Arc<Engine>,
}

/// The open backend, borrowed for one call.
struct OpenRef<'a>(RwLockReadGuard<'a, Option<Open>>);

impl std::ops::Deref for OpenRef<'_> {
    type Target = Open;
    fn deref(&self) -> &Open {
        // Invariant: an `OpenRef` is only made from a guard holding `Some` (`open_ref`).
        self.0.as_ref().expect("checked when the OpenRef was made")
    }
}

impl RedbBackend {
    /// Opens the cache file at `path` with the default options, creating it when it does not
    /// exist (an empty file is also initialized), with its folder and any missing parent folders
    /// (`std::fs::create_dir_all`, as Python's diskcache does). Several processes may have it
    /// open at once.
    ///
    /// # Errors
    /// - [`Error::Corrupt`] when the file is not a redb database;
    /// - [`Error::Incompatible`] when it is a redb database with other tables, or a braincache
    ///   file of another format version;
    /// - [`Error::Io`] or [`Error::Backend`] when it cannot be opened (a folder that cannot be
    ///   created, no permission, another process holding it in `single_process` mode).
    ///
    /// The file is not written to in the first two cases.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbBackend> {
        RedbBackend::builder(path).build()
    }

    /// A builder to choose the options: see [`RedbBackendBuilder`].
    pub fn builder(path: impl AsRef<Path>) -> RedbBackendBuilder {
        RedbBackendBuilder::new(path.as_ref())
    }

    /// The path of the database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many durable commits this handle's writer thread has made: compared with the number
    /// of writes, it shows how well group commit batches them.
    #[must_use]
    pub fn commits(&self) -> u64 {
        match self
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            Some(open) => open.shared.commits.load(Ordering::Relaxed),
            None => self.commits_at_close.load(Ordering::Relaxed),
        }
    }

    /// Closes the backend: waits for the calls in flight (every write queued before `close` is
    /// committed and answered, every read ended, the closure a [`get_with`](Backend::get_with)
    /// lends a value to included), stops the writer thread and closes the file, releasing its
    /// locks, as dropping the backend does. Every later call returns [`Error::Closed`], those
    /// that such a closure makes while `close` waits for it included. A `close` that runs while
    /// another is under way returns once the first has closed the file; closing after that does
    /// nothing.
    ///
    /// A closure that `get_with` lends a value to must not close its own backend: `close` would
    /// wait for that closure to end, and never return.
    ///
    /// For a backend that is never dropped: one in a `static` (a `LazyLock`), or in a program
    /// that ends with [`std::process::exit`]. Its writes need no close to be durable (each is
    /// committed before it returns), but a file that was not closed needs crash recovery, which
    /// the next process to open it for writing does (a check of every page, in proportion to the
    /// file's size) and which read-only opens cannot do ([`inspect::read`] does it for tools).
    ///
    /// ```
    /// use braincache_core::{Backend, Record};
    /// use braincache_redb::RedbBackend;
    ///
    /// # fn main() -> braincache_core::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("cache.redb");
    /// let backend = RedbBackend::open(&path)?;
    /// backend.set("k", Record::new(b"v".to_vec(), None))?;
    /// backend.close()?;
    /// assert!(matches!(backend.get("k"), Err(braincache_core::Error::Closed { .. })));
    /// // Closed cleanly: a read-only reader needs no recovery.
    /// assert_eq!(RedbBackend::read_entries(&path)?.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// With [`write_behind`](RedbBackendBuilder::write_behind), the error of a queued write that
    /// failed to commit (as [`flush`](Backend::flush) returns it); the backend is closed anyway.
    /// Otherwise none; the `Result` leaves room for reporting a failed close. A panic of redb while
    /// closing a file damaged outside redb is caught and ignored, as on drop.
    pub fn close(&self) -> Result<()> {
        let _closing = self.closing.lock().unwrap_or_else(PoisonError::into_inner);
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let Some(open) = state.take() else {
            return Ok(());
        };
        let mut result = Ok(());
        // Write-behind: commit what is queued first, so that a failure reaches the caller.
        if let Some(b) = &open.behind {
            result = b.flush();
        }
        let commits = open.shared.commits.load(Ordering::Relaxed);
        drop(open);
        self.commits_at_close.store(commits, Ordering::Relaxed);
        // Closed from here on: later calls, those of a closure waited for below included, get
        // `Closed` instead of waiting for this lock.
        drop(state);
        // The writer thread has stopped; reads that reuse the cached snapshot hold no state
        // lock: wait until every snapshot has ended, then close the database (`self.engine`
        // keeps the rest).
        self.engine.reader.release_and_wait();
        self.engine.db.close_now();
        result
    }

    /// What the open backend shares with its writer thread, for unit tests.
    #[cfg(test)]
    pub(crate) fn shared(&self) -> Arc<Engine> {
        Arc::clone(&self.open_ref(Operation::Get).expect("open").shared)
    }

    /// A read snapshot of the open backend, for unit tests.
    #[cfg(test)]
    pub(crate) fn snapshot(&self, op: Operation, key: Option<&str>) -> Result<Arc<Snapshot>> {
        self.open_ref(op)?.snapshot(op, key)
    }

    /// The open backend, or [`Error::Closed`] for `op`.
    fn open_ref(&self, op: Operation) -> Result<OpenRef<'_>> {
        let guard = self.state.read().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            return Err(errors::closed(op));
        }
        Ok(OpenRef(guard))
    }

    /// The bytes stored in the file, by every process: key, record header and value of each
    /// entry, as the bound counts them. Read from the file's bookkeeping (one read
    /// transaction), which every commit updates with its entries.
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn bytes(&self) -> Result<u64> {
        self.usage().map(|u| u.bytes)
    }

    /// The file's usage counters: bytes and entries stored, evictions by every process, and the
    /// bound last recorded.
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn usage(&self) -> Result<Usage> {
        let this = self.open_ref(Operation::Len)?;
        let path = &this.shared.path;
        let (db, _) = this.shared.db.current().ok_or_else(|| {
            Error::io(
                Operation::Len,
                path,
                std::io::Error::other("the database could not be reopened after an I/O error"),
            )
        })?;
        this.guarded(None, || {
            bound::usage_of(&*db).map_err(|e| errors::map(Operation::Len, path, None, e))
        })
    }

    /// This handle's byte bound; `None` when unbounded by bytes.
    #[must_use]
    pub fn max_bytes(&self) -> Option<u64> {
        self.limit.max_bytes
    }

    /// This handle's entry bound; `None` when unbounded by entries.
    #[must_use]
    pub fn max_entries(&self) -> Option<u64> {
        self.limit.max_entries
    }

    /// Rewrites the file at `path` so that it takes no more room than its live pages (redb's
    /// `compact`): redb reuses freed pages but never gives them back to the file system.
    /// Returns whether anything was moved.
    ///
    /// Needs the file to itself: it opens it in redb's exclusive mode, so it refuses with
    /// [`Error::InUse`] while any process (this one included) has it open, and nobody can open
    /// it while it runs.
    ///
    /// ```
    /// use braincache_core::{Backend, Error, Record};
    /// use braincache_redb::RedbBackend;
    ///
    /// # fn main() -> braincache_core::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("c.redb");
    /// let b = RedbBackend::open(&path)?;
    /// b.set("k", Record::new(vec![0; 4096], None))?;
    /// assert!(matches!(RedbBackend::compact(&path), Err(Error::InUse { .. })));
    /// drop(b);
    /// RedbBackend::compact(&path)?;
    /// assert_eq!(RedbBackend::open(&path)?.get("k")?.unwrap().value.len(), 4096);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// - [`Error::InUse`] while another handle has the file open;
    /// - as [`open`](Self::open) for a file that is not braincache's, or damaged;
    /// - [`Error::Io`] or [`Error::Backend`] when the compaction fails (the file is left valid:
    ///   redb compacts in durable steps).
    pub fn compact(path: impl AsRef<Path>) -> Result<bool> {
        let path = path.as_ref();
        catch_unwind(AssertUnwindSafe(|| compact_file(path)))
            .unwrap_or_else(|p| Err(errors::read_panicked(path, None, p.as_ref())))
    }

    /// The usage counters of the cache file at `path`, read without opening it as a cache
    /// (read-only, as [`read_entries`](Self::read_entries)): `None` for a file without
    /// bookkeeping (written by an older braincache, or never opened).
    ///
    /// # Errors
    /// As [`read_entries`](Self::read_entries).
    pub fn read_usage(path: impl AsRef<Path>) -> Result<Option<Usage>> {
        let path = path.as_ref();
        catch_unwind(AssertUnwindSafe(|| {
            let db = open_read_only(path)?;
            let txn = db
                .begin_read()
                .map_err(|e| errors::map(Operation::Len, path, None, e))?;
            bound::read_usage(&txn).map_err(|e| errors::map(Operation::Len, path, None, e))
        }))
        .unwrap_or_else(|p| Err(errors::read_panicked(path, None, p.as_ref())))
        .map_err(|e| truncated(path, e))
    }

    /// True when the backend is open with [`RedbBackendBuilder::write_behind`].
    #[cfg(feature = "async")]
    pub(crate) fn writes_behind(&self) -> bool {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|o| o.behind.is_some())
    }

    /// True when opened with [`RedbBackendBuilder::single_process`].
    #[must_use]
    pub fn is_single_process(&self) -> bool {
        self.single_process
    }

    /// Reads every entry of the cache file at `path`, expired ones included, sorted by key,
    /// without opening it as a cache: nothing is created or written (the file keeps its bytes and
    /// modification time, no `<file>.seq` appears) and no thread starts. The file is opened with
    /// redb's read-only handle in the multi-process mode, so this works while processes have it
    /// open through `RedbBackend` (not while one holds it in
    /// [`single_process`](RedbBackendBuilder::single_process) mode), and the entries are one
    /// snapshot of it. A file braincache created but never initialized (no tables) has no
    /// entries.
    ///
    /// For tools that inspect or export a cache (the `braincache` command); a cache in use
    /// reads through [`Backend`].
    ///
    /// ```
    /// use braincache::Timestamp;
    /// use braincache::backend::{Backend, Record};
    /// use braincache::backend::RedbBackend;
    ///
    /// # fn main() -> braincache::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("cache.redb");
    /// let backend = RedbBackend::open(&path)?;
    /// backend.set("b", Record::new(b"2".to_vec(), None))?;
    /// backend.set("a", Record::new(b"1".to_vec(), Some(Timestamp::EPOCH)))?; // long expired
    ///
    /// let entries = RedbBackend::read_entries(&path)?;
    /// assert_eq!(entries[0], ("a".to_owned(), Record::new(b"1".to_vec(), Some(Timestamp::EPOCH))));
    /// assert_eq!(entries[1].1.value, b"2");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`open`](Self::open) on the same file, and never after writing anything:
    /// - [`Error::Corrupt`] when the file is not a redb database (a truncated one included), when
    ///   redb finds it damaged (or panics on it), or naming the key of an entry that cannot be
    ///   decoded, that comes out of key order, or that a lookup does not find (damaged pages:
    ///   the listing would contradict the backend);
    /// - [`Error::Incompatible`] when it is a redb database with other tables, or a braincache
    ///   file of another format version;
    /// - [`Error::Io`] when it cannot be read (a missing file is an error, not an empty cache);
    /// - [`Error::Backend`] when another process holds it in `single_process` mode.
    pub fn read_entries(path: impl AsRef<Path>) -> Result<Vec<(String, Record)>> {
        let path = path.as_ref();
        // redb may panic on pages damaged outside redb: that must reach the caller as an error.
        let read = catch_unwind(AssertUnwindSafe(|| read_all_entries(path)))
            .unwrap_or_else(|p| Err(errors::read_panicked(path, None, p.as_ref())));
        read.map_err(|e| truncated(path, e))
    }
}

impl RedbBackend {
    /// The cached snapshot, when a read may reuse it without the state lock: two atomic
    /// instructions borrow it, and nothing else is shared with other threads. `None` when the
    /// locked path must read instead: no snapshot to reuse (none cached, a commit announced
    /// since it began, closed), or write-behind (queued writes come first).
    ///
    /// Visibility is the locked path's: the stamp is read before the snapshot is chosen (see
    /// the `reader` module). `close` waits for these reads through the count of live snapshots
    /// ([`SnapshotCache::release_and_wait`]).
    #[inline]
    fn reusable(&self) -> Option<reader::SnapshotRef> {
        if self.writes_behind {
            return None;
        }
        self.engine.reader.reusable(&self.engine.db)
    }
}

/// Why [`lend_from`] gave no answer. Boxed, so that the answer travels in registers.
enum Unlent {
    /// redb failed, before `f` ran: the read may be tried again.
    Redb(redb::Error),
    /// The answer is this error.
    Failed(Error),
}

/// Looks `key` up in `snap` and lends its record to `f`; true when found, and the read is
/// recorded for the bound.
///
/// redb panics on pages damaged outside redb: such a panic is caught and returned as
/// [`Error::Corrupt`]. A panic of `f` is the caller's: it is carried on as it is.
#[inline]
fn lend_from(
    engine: &Engine,
    snap: &Snapshot,
    key: &str,
    f: &mut dyn FnMut(RecordRef<'_>),
) -> std::result::Result<bool, Box<Unlent>> {
    let lending = std::cell::Cell::new(false);
    let read = catch_unwind(AssertUnwindSafe(|| {
        let entry =
            ReadableTable::get(&snap.entries, key).map_err(|e| Box::new(Unlent::Redb(e.into())))?;
        let Some(entry) = entry else {
            return Ok(false);
        };
        let record = format::view_entry(key, entry.value())
            .map_err(|e| Box::new(Unlent::Failed(e.with_path(&engine.path))))?;
        lending.set(true);
        f(record);
        lending.set(false);
        Ok(true)
    }));
    match read {
        Ok(Ok(found)) => {
            if found {
                engine.bound.read(key);
            }
            Ok(found)
        }
        Ok(Err(e)) => Err(e),
        Err(p) if lending.get() => std::panic::resume_unwind(p),
        Err(p) => Err(Box::new(Unlent::Failed(errors::read_panicked(
            &engine.path,
            Some(key),
            p.as_ref(),
        )))),
    }
}

impl Open {
    /// Runs a read, turning a panic inside redb (which it does on pages damaged outside redb)
    /// into [`Error::Corrupt`]. Costs nothing when nothing panics.
    fn guarded<T>(&self, key: Option<&str>, read: impl FnOnce() -> Result<T>) -> Result<T> {
        catch_unwind(AssertUnwindSafe(read))
            .unwrap_or_else(|p| Err(errors::read_panicked(&self.shared.path, key, p.as_ref())))
    }

    /// Runs `read` on a snapshot, inside [`guarded`](Self::guarded). redb errors are `read`'s
    /// outer result, braincache's (a damaged entry) its inner one. A read that finds the
    /// database latched by an earlier I/O error (a commit that found the disk full: redb then
    /// fails every call on that `Database`) has the writer thread reopen it, and runs once more.
    fn read<T>(
        &self,
        op: Operation,
        key: Option<&str>,
        read: impl Fn(&Snapshot) -> std::result::Result<Result<T>, redb::Error>,
    ) -> Result<T> {
        self.guarded(key, || {
            let mut reopened = false;
            loop {
                let attempt = self
                    .shared
                    .reader
                    .snapshot(&self.shared.db)
                    .and_then(|snap| read(&snap));
                match attempt {
                    Ok(answer) => return answer,
                    Err(e) if !reopened && writer::latches(&e) => {
                        self.shared.db.note(&e);
                        self.writer.submit(Command::Reopen(op))?;
                        reopened = true;
                    }
                    Err(e) => return Err(errors::map(op, &self.shared.path, key, e)),
                }
            }
        })
    }

    /// Finds `key` in the snapshot a read uses now and lends its record to `f`; true when
    /// found. As [`read`](Self::read), a read that finds the database latched by an earlier I/O
    /// error has the writer thread reopen it and runs once more (`f` runs once at most: redb
    /// fails before it runs).
    fn lend(&self, key: &str, f: &mut dyn FnMut(RecordRef<'_>)) -> Result<bool> {
        let mut reopened = false;
        loop {
            let snapshot = self.guarded(Some(key), || {
                Ok(self.shared.reader.snapshot(&self.shared.db))
            })?;
            let e = match snapshot {
                Ok(snap) => match lend_from(&self.shared, &snap, key, f) {
                    Ok(found) => return Ok(found),
                    Err(e) => match *e {
                        Unlent::Failed(e) => return Err(e),
                        Unlent::Redb(e) => e,
                    },
                },
                Err(e) => e,
            };
            if reopened || !writer::latches(&e) {
                return Err(errors::map(Operation::Get, &self.shared.path, Some(key), e));
            }
            self.shared.db.note(&e);
            self.writer.submit(Command::Reopen(Operation::Get))?;
            reopened = true;
        }
    }

    /// The snapshot a read would use now (tests).
    #[cfg(test)]
    fn snapshot(&self, op: Operation, key: Option<&str>) -> Result<Arc<Snapshot>> {
        self.shared
            .reader
            .snapshot(&self.shared.db)
            .map(reader::SnapshotRef::into_arc)
            .map_err(|e| errors::map(op, &self.shared.path, key, e))
    }

    fn read_entry(
        &self,
        snap: &Snapshot,
        key: &str,
    ) -> std::result::Result<Result<Option<Record>>, redb::Error> {
        Ok(match ReadableTable::get(&snap.entries, key)? {
            Some(g) => decode_entry(key, g.value())
                .map(Some)
                .map_err(|e| e.with_path(&self.shared.path)),
            None => Ok(None),
        })
    }
}

impl fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbBackend")
            .field("path", &self.path)
            .field("single_process", &self.single_process)
            .field(
                "closed",
                &self
                    .state
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_none(),
            )
            .finish_non_exhaustive()
    }
}

impl Backend for RedbBackend {
    type Codec = MsgPack;

    fn get(&self, key: &str) -> Result<Option<Record>> {
        let mut found = None;
        self.get_with(key, &mut |r| found = Some(r.to_record()))?;
        Ok(found)
    }

    /// Lends `f` the value from redb's page (no copy), while the snapshot `get` would use is
    /// borrowed; queued writes (write-behind) are lent from their copy. [`close`](Self::close)
    /// waits for `f` to return; `f` may call the backend meanwhile (it gets [`Error::Closed`]),
    /// but must not call `close` itself, which would then never return.
    fn get_with(&self, key: &str, f: &mut dyn FnMut(RecordRef<'_>)) -> Result<bool> {
        // The cached snapshot without the state lock; a redb error there (before `f` ran) is
        // left to the locked path, which reads again and reopens a database it latched.
        if let Some(snap) = self.reusable() {
            match lend_from(&self.engine, &snap, key, f) {
                Ok(found) => return Ok(found),
                Err(e) => {
                    if let Unlent::Failed(e) = *e {
                        return Err(e);
                    }
                }
            }
        }
        let this = self.open_ref(Operation::Get)?;
        if let Some(pending) = this.behind.as_ref().and_then(|b| b.lookup(key)) {
            return Ok(pending.is_some_and(|r| {
                f(RecordRef::from(&r));
                true
            }));
        }
        this.lend(key, f)
    }

    fn set(&self, key: &str, record: Record) -> Result<()> {
        let this = self.open_ref(Operation::Set)?;
        if let Some(b) = &this.behind {
            b.push(Write::Set(key.to_owned(), record));
            return Ok(());
        }
        this.writer
            .submit(Command::Set(key.to_owned(), record))
            .map(drop)
    }

    fn delete(&self, key: &str) -> Result<bool> {
        let this = self.open_ref(Operation::Delete)?;
        if let Some(b) = &this.behind {
            let found = match b.lookup(key) {
                Some(pending) => pending.is_some(),
                None => this.read(Operation::Delete, Some(key), |snap| {
                    Ok(Ok(ReadableTable::get(&snap.entries, key)?.is_some()))
                })?,
            };
            b.push(Write::Delete(key.to_owned()));
            return Ok(found);
        }
        Ok(matches!(
            this.writer.submit(Command::Delete(key.to_owned()))?,
            Answer::Found(true)
        ))
    }

    fn clear(&self) -> Result<()> {
        let this = self.open_ref(Operation::Clear)?;
        if let Some(b) = &this.behind {
            b.push(Write::Clear);
            return Ok(());
        }
        this.writer.submit(Command::Clear).map(drop)
    }

    fn len(&self) -> Result<usize> {
        let this = self.open_ref(Operation::Len)?;
        // The pending writes are copied before the snapshot is taken: see the `overlay` module.
        let pending = this.behind.as_ref().map(overlay::Behind::copy);
        this.read(Operation::Len, None, |snap| {
            let Some(p) = &pending else {
                let n = snap.entries.len()?;
                return Ok(Ok(usize::try_from(n).unwrap_or(usize::MAX)));
            };
            let sets = p.keys.iter().filter(|(_, d)| d.is_some()).count();
            if p.cleared {
                return Ok(Ok(sets));
            }
            let mut n = usize::try_from(snap.entries.len()?).unwrap_or(usize::MAX);
            for (k, d) in &p.keys {
                let stored = ReadableTable::get(&snap.entries, k.as_str())?.is_some();
                match (stored, d.is_some()) {
                    (false, true) => n = n.saturating_add(1),
                    (true, false) => n = n.saturating_sub(1),
                    _ => {}
                }
            }
            Ok(Ok(n))
        })
    }

    fn purge_expired(&self, now: Timestamp) -> Result<usize> {
        let this = self.open_ref(Operation::Purge)?;
        if let Some(b) = &this.behind {
            b.flush()?;
        }
        match this.writer.submit(Command::Purge(now))? {
            Answer::Count(n) => Ok(n),
            Answer::Unit | Answer::Found(_) => Ok(0),
        }
    }

    fn next_expiry(&self) -> Result<Option<Timestamp>> {
        let this = self.open_ref(Operation::NextExpiry)?;
        let pending = this.behind.as_ref().map(overlay::Behind::copy);
        let stored = this.read(Operation::NextExpiry, None, |snap| {
            if pending.as_ref().is_some_and(|p| p.cleared) {
                return Ok(Ok(None));
            }
            let first = snap.expiry.first()?;
            Ok(Ok(
                first.map(|(k, _)| Timestamp::from_unix_nanos(k.value().0))
            ))
        })?;
        // With writes queued, the earliest of the stored and the queued deadlines: possibly
        // earlier than the true first (a queued write may replace the stored one), never later.
        let queued = pending
            .iter()
            .flat_map(|p| p.keys.iter().filter_map(|(_, d)| d.flatten()))
            .min();
        Ok(match (stored, queued) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Record>>> {
        let this = self.open_ref(Operation::Get)?;
        // Queued writes first, the snapshot after: see the `overlay` module.
        let pending: Vec<Option<Option<Record>>> = match &this.behind {
            Some(b) => keys.iter().map(|k| b.lookup(k)).collect(),
            None => Vec::new(),
        };
        this.read(Operation::Get, None, |snap| {
            let mut out = Vec::with_capacity(keys.len());
            for (i, k) in keys.iter().enumerate() {
                if let Some(Some(p)) = pending.get(i) {
                    out.push(p.clone());
                    continue;
                }
                match this.read_entry(snap, k)? {
                    Ok(r) => {
                        if r.is_some() {
                            this.shared.bound.read(k);
                        }
                        out.push(r);
                    }
                    Err(e) => return Ok(Err(e)),
                }
            }
            Ok(Ok(out))
        })
    }

    /// By default every write is durable when it returns: nothing to flush. With
    /// [`write_behind`](RedbBackendBuilder::write_behind), commits every write queued before
    /// the call and waits for it; the error is the first of a queued write that failed to
    /// commit since the previous `flush`. After [`close`](RedbBackend::close),
    /// [`Error::Closed`].
    fn flush(&self) -> Result<()> {
        let this = self.open_ref(Operation::Flush)?;
        match &this.behind {
            Some(b) => b.flush(),
            None => Ok(()),
        }
    }

    fn set_many(&self, entries: Vec<(String, Record)>) -> Result<()> {
        let this = self.open_ref(Operation::Set)?;
        if let Some(b) = &this.behind {
            b.push(Write::SetMany(entries));
            return Ok(());
        }
        this.writer.submit(Command::SetMany(entries)).map(drop)
    }

    /// A row of the `leases` table, taken in its own durable write transaction (one fsync).
    fn try_lease(
        &self,
        key: &str,
        token: LeaseToken,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease> {
        let this = self.open_ref(Operation::Lease)?;
        this.guarded(Some(key), || {
            lease::try_lease(&this.shared, key, token, ttl, now)
        })
    }

    fn release_lease(&self, key: &str, token: LeaseToken) -> Result<()> {
        let this = self.open_ref(Operation::Lease)?;
        this.guarded(Some(key), || lease::release(&this.shared, key, token))
    }

    fn delete_many(&self, keys: &[&str]) -> Result<usize> {
        let this = self.open_ref(Operation::Delete)?;
        if let Some(b) = &this.behind {
            // Each distinct key found, as the writer would count the removals.
            let mut distinct: Vec<&str> = keys.to_vec();
            distinct.sort_unstable();
            distinct.dedup();
            let pending: Vec<Option<bool>> = distinct
                .iter()
                .map(|k| b.lookup(k).map(|p| p.is_some()))
                .collect();
            let found = this.read(Operation::Delete, None, |snap| {
                let mut n = 0;
                for (k, p) in distinct.iter().zip(&pending) {
                    let present = match p {
                        Some(present) => *present,
                        None => ReadableTable::get(&snap.entries, *k)?.is_some(),
                    };
                    n += usize::from(present);
                }
                Ok(Ok(n))
            })?;
            b.push(Write::DeleteMany(
                keys.iter().map(|k| (*k).to_owned()).collect(),
            ));
            return Ok(found);
        }
        let keys = keys.iter().map(|k| (*k).to_owned()).collect();
        match this.writer.submit(Command::DeleteMany(keys))? {
            Answer::Count(n) => Ok(n),
            Answer::Unit | Answer::Found(_) => Ok(0),
        }
    }

    /// Entries this handle's commits evicted to keep the file within its bound (0 once
    /// closed).
    fn evictions(&self) -> u64 {
        self.open_ref(Operation::Len)
            .map_or(0, |o| o.shared.bound.evictions.load(Ordering::Relaxed))
    }
}

/// Options of a [`RedbBackend`]. Made by [`RedbBackend::builder`].
///
/// | option | default |
/// |---|---|
/// | processes | several (redb `MultiWriter`); [`single_process`](Self::single_process) for one |
/// | [`cache_size`](Self::cache_size) | 64 MiB of redb page cache per process |
/// | [`max_batch`](Self::max_batch) | 1024 requests per commit |
/// | [`max_batch_bytes`](Self::max_batch_bytes) | 16 MiB per commit |
/// | [`group_commit_wait`](Self::group_commit_wait) | 1 ms (and never longer than a commit takes) |
/// | [`snapshot_max_age`](Self::snapshot_max_age) | 100 ms |
/// | [`verify_on_open`](Self::verify_on_open) | off: a cleanly closed file is trusted |
/// | [`write_behind`](Self::write_behind) | off: every write is durable when it returns |
/// | [`max_bytes`](Self::max_bytes) / [`max_entries`](Self::max_entries) | 1 GiB ([`DEFAULT_MAX_BYTES`]) / none; [`unbounded`](Self::unbounded) for no bound |
///
/// ```
/// use braincache::backend::RedbBackend;
/// use std::time::Duration;
///
/// # fn main() -> braincache::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let backend = RedbBackend::builder(dir.path().join("cache.redb"))
///     .single_process() // this process owns the file
///     .cache_size(16 << 20)
///     .group_commit_wait(Duration::ZERO)
///     .build()?;
/// assert!(backend.is_single_process());
/// # Ok(())
/// # }
/// ```
#[must_use]
#[derive(Clone, Debug)]
pub struct RedbBackendBuilder {
    path: PathBuf,
    single_process: bool,
    cache_size: usize,
    max_batch: usize,
    max_batch_bytes: usize,
    group_commit_wait: Duration,
    snapshot_max_age: Duration,
    verify_on_open: bool,
    write_behind: Option<Duration>,
    limit: bound::Limit,
}

impl RedbBackendBuilder {
    fn new(path: &Path) -> RedbBackendBuilder {
        RedbBackendBuilder {
            path: path.to_path_buf(),
            single_process: false,
            cache_size: 64 << 20,
            max_batch: 1024,
            max_batch_bytes: 16 << 20,
            group_commit_wait: Duration::from_millis(1),
            snapshot_max_age: Duration::from_millis(100),
            verify_on_open: false,
            write_behind: None,
            limit: bound::Limit {
                max_bytes: Some(DEFAULT_MAX_BYTES),
                max_entries: None,
            },
        }
    }

    /// Opens the file in redb's `ExclusiveWriter` mode: no other process may open it while this
    /// backend lives (its open fails), and in exchange a durable commit costs about half as much
    /// and a read snapshot is cheap to begin. For a file one process owns. Durability and
    /// visibility promises are the same as in the default mode.
    pub fn single_process(mut self) -> Self {
        self.single_process = true;
        self
    }

    /// Verifies the checksum of every page when the file is opened (redb's
    /// `set_check_integrity_on_open`), and refuses a damaged file with [`Error::Corrupt`].
    ///
    /// redb trusts a file it closed cleanly. A file damaged outside redb (a bad copy, bit rot,
    /// another program writing into it) then opens, and the damage shows later: as an error
    /// (braincache turns redb's panics into [`Error::Corrupt`]) or, in a few places inside redb,
    /// as a panic while unwinding, which aborts the process. With this on, the open reads the
    /// whole file and commits once, so it costs time in proportion to the file's size; worth it
    /// where the file may come from elsewhere. A file that needs crash recovery is checked this
    /// way in any case.
    ///
    /// A file that is not braincache's (not redb, other tables, a newer format) is refused
    /// before redb opens it for writing, and stays byte for byte as it was, when redb can open
    /// it read-only to tell; one that needs crash recovery or is damaged is told only after the
    /// writable open. A damaged file refused by the check may have had its header marked by
    /// that open (the recovery flag is set before the check runs).
    ///
    /// ```
    /// use braincache::backend::RedbBackend;
    ///
    /// # fn main() -> braincache::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let backend = RedbBackend::builder(dir.path().join("cache.redb"))
    ///     .check_integrity_on_open()
    ///     .build()?;
    /// # drop(backend);
    /// # Ok(())
    /// # }
    /// ```
    pub fn check_integrity_on_open(mut self) -> Self {
        self.verify_on_open = true;
        self
    }

    /// [`check_integrity_on_open`](Self::check_integrity_on_open) when `on` is true.
    #[deprecated(
        note = "use `check_integrity_on_open()`: switches take no argument, like `single_process()`"
    )]
    pub fn verify_on_open(mut self, on: bool) -> Self {
        self.verify_on_open = on;
        self
    }

    /// redb's page cache of this process, in bytes (read and write cache together).
    pub fn cache_size(mut self, bytes: usize) -> Self {
        self.cache_size = bytes;
        self
    }

    /// The most requests one commit applies (at least 1). A `set_many` counts as one request.
    pub fn max_batch(mut self, requests: usize) -> Self {
        self.max_batch = requests.max(1);
        self
    }

    /// Stops adding requests to a commit once they hold this many bytes of keys and values. A
    /// larger request is still committed, alone.
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes;
        self
    }

    /// How long the writer thread may wait, after the first request of a commit arrived, for as
    /// many requests as the previous commit held; it never waits longer than the previous commit
    /// took. Concurrent writers send their next request shortly after their previous one was
    /// answered (how shortly depends on how busy the CPUs are); waiting for them turns several
    /// commits into one. A single writer thread never waits (its previous commit held one
    /// request), and when fewer writers come back the wait happens once, then the expectation
    /// drops. `Duration::ZERO` commits whatever is queued at once.
    pub fn group_commit_wait(mut self, wait: Duration) -> Self {
        self.group_commit_wait = wait;
        self
    }

    /// How long a read snapshot may be reused while no process commits. The writer thread drops
    /// an older one after each batch and at least every `age` (every second at most), so a
    /// snapshot serves reads for less than `age` plus that interval; reads do not check the
    /// clock. Longer saves a little read time; shorter frees old pages sooner (a live snapshot
    /// keeps writers in every process from reusing the pages it reads, so the file grows while
    /// one is held). `Duration::ZERO` begins a new read transaction for every read. Visibility
    /// does not depend on it: a commit always ends reuse.
    pub fn snapshot_max_age(mut self, age: Duration) -> Self {
        self.snapshot_max_age = age;
        self
    }

    /// Write-behind: a write returns once it is queued, and a second thread commits what is
    /// queued every `interval` (all of it in one durable transaction, or a few), instead of
    /// every write waiting for its own commit. Off by default: every write is durable when it
    /// returns.
    ///
    /// - **Reads in this process** see a queued write at once (an in-memory overlay of the
    ///   pending sets, deletes and clears is consulted before the read snapshot). **Other
    ///   processes** see it once its commit is done, at most about `interval` later (plus the
    ///   commit's own time).
    /// - [`flush`](Backend::flush) commits everything queued before it and waits; so do
    ///   [`close`](RedbBackend::close) and dropping the backend. `purge_expired` flushes first.
    /// - **The trade-off**: a crash of the process (or the machine) loses the writes of the last
    ///   interval that were not committed yet. What was committed is intact and the file is
    ///   never torn: each commit is one durable redb transaction, applied whole or not at all.
    /// - A queued write that then fails to commit (a full disk) is dropped from the overlay; the
    ///   next `flush` returns its error. `delete` and `delete_many` answer from what this
    ///   process sees when they are queued.
    /// - While this process has a write of a key queued (or being committed), its reads of that
    ///   key return that write, even if another process commits the key meanwhile: the queued
    ///   write commits later and is the one the file keeps.
    ///
    /// A write made while 16 MiB of keys and values are queued waits for the thread to take
    /// them.
    ///
    /// ```
    /// use braincache::backend::{Backend, Record, RedbBackend};
    /// use std::time::Duration;
    ///
    /// # fn main() -> braincache::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let backend = RedbBackend::builder(dir.path().join("cache.redb"))
    ///     .write_behind(Duration::from_millis(50))
    ///     .build()?;
    /// backend.set("k", Record::new(b"v".to_vec(), None))?; // queued, not yet durable
    /// assert_eq!(backend.get("k")?.unwrap().value, b"v"); // seen here at once
    /// backend.flush()?; // durable, and seen by other processes
    /// # Ok(())
    /// # }
    /// ```
    pub fn write_behind(mut self, interval: Duration) -> Self {
        self.write_behind = Some(interval);
        self
    }

    /// Bounds the bytes stored in the file: key, record header and value of every entry
    /// ([`Usage::bytes`]). The default is [`DEFAULT_MAX_BYTES`] (1 GiB); see
    /// [`unbounded`](Self::unbounded). The bound holds for the file, whichever processes write
    /// it: each commit that stores something evicts, in the same transaction, until the file is
    /// within the bound of the handle that commits. Expired entries go first, then entries by
    /// S3-FIFO (entries read since they were stored survive a flood of one-time writes). An
    /// entry larger than the bound is not kept (`set` succeeds, and the drop counts as an
    /// eviction).
    ///
    /// ```
    /// use braincache_core::{Backend, Record};
    /// use braincache_redb::RedbBackend;
    ///
    /// # fn main() -> braincache_core::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let b = RedbBackend::builder(dir.path().join("c.redb"))
    ///     .max_bytes(64 << 10)
    ///     .max_entries(100)
    ///     .build()?;
    /// for i in 0..1000 {
    ///     b.set(&format!("k{i}"), Record::new(vec![0; 100], None))?;
    /// }
    /// assert!(b.len()? <= 100 && b.bytes()? <= 64 << 10);
    /// assert!(b.evictions() >= 900);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// At least 1 (zero is clamped, like every zero limit of the builders).
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.limit.max_bytes = Some(bytes.max(1));
        self
    }

    /// Bounds the number of entries in the file, as [`max_bytes`](Self::max_bytes) bounds the
    /// bytes. Both may be set; the default byte bound stays unless
    /// [`unbounded`](Self::unbounded) comes first.
    ///
    /// At least 1 (zero is clamped, like every zero limit of the builders).
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.limit.max_entries = Some(entries.max(1));
        self
    }

    /// No bound at all (and no read hints): entries stay until they expire or are deleted, and
    /// the file grows with them. The usage bookkeeping is kept all the same, so other handles
    /// may bound the same file.
    pub fn unbounded(mut self) -> Self {
        self.limit = bound::Limit::default();
        self
    }

    /// Opens (or creates, with its missing parent folders) the file and starts the writer thread.
    ///
    /// # Errors
    /// As [`RedbBackend::open`].
    pub fn build(self) -> Result<RedbBackend> {
        let path = self.path.clone();
        // A CLI's cache lives in a folder (`~/.cache/app/`) that is missing on its first run:
        // create it and its parents, as diskcache does.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::io(
                    Operation::Open,
                    &path,
                    braincache_core::in_step("cannot create its folder", dir, e),
                )
            })?;
        }
        // redb may panic on a file damaged outside redb (its open trusts a cleanly closed file):
        // that must reach the caller as an error, not unwind through it.
        let db = catch_unwind(AssertUnwindSafe(|| self.open_database()))
            .map_err(|p| errors::read_panicked(&path, None, p.as_ref()))??;
        let max_age = self.snapshot_max_age;
        let reader = if self.single_process {
            SnapshotCache::local(max_age)
        } else {
            SnapshotCache::shared(&path, max_age)
                .map_err(|e| Error::io(Operation::Open, reader::stamp_path(&path), e))?
        };
        let tick = if max_age.is_zero() {
            Duration::from_secs(1)
        } else {
            max_age.clamp(Duration::from_millis(1), Duration::from_secs(1))
        };
        let limits = Limits {
            max_requests: self.max_batch,
            max_bytes: self.max_batch_bytes,
            wait: self.group_commit_wait,
            tick,
        };
        // A reopen after an I/O error skips the integrity check: the file is the one this
        // handle had open, and the check commits, which a full disk would refuse.
        let mut opener = self.clone();
        opener.verify_on_open = false;
        let shared = Arc::new(Engine {
            reader,
            db: writer::Db::new(db),
            path,
            commits: AtomicU64::new(0),
            reopen: Box::new(move || {
                catch_unwind(AssertUnwindSafe(|| opener.open_database()))
                    .unwrap_or_else(|p| Err(errors::read_panicked(&opener.path, None, p.as_ref())))
            }),
            single_process: self.single_process,
            bound: bound::Bound::new(self.limit),
        });
        let writer = Writer::spawn(Arc::clone(&shared), limits)
            .map_err(|e| Error::io(Operation::Open, &shared.path, e))?;
        let behind = match (self.write_behind, writer.queue()) {
            (Some(interval), Some(queue)) => Some(
                overlay::Behind::start(queue, interval)
                    .map_err(|e| Error::io(Operation::Open, &shared.path, e))?,
            ),
            _ => None,
        };
        Ok(RedbBackend {
            engine: Arc::clone(&shared),
            writes_behind: behind.is_some(),
            path: shared.path.clone(),
            closing: Mutex::new(()),
            state: RwLock::new(Some(Open {
                behind,
                writer,
                shared,
            })),
            single_process: self.single_process,
            commits_at_close: AtomicU64::new(0),
            limit: self.limit,
        })
    }

    fn open_database(&self) -> Result<Database> {
        let path = &self.path;
        let fail = |e: redb::Error| errors::map(Operation::Open, path, None, e);
        let mode = if self.single_process {
            ConcurrencyMode::ExclusiveWriter
        } else {
            ConcurrencyMode::MultiWriter
        };
        // A file that is already there is first checked through a read-only handle: opening it
        // for writing rewrites its header, and a file that turns out to belong to someone else
        // (or to a newer braincache) must be left byte for byte as it was. A read-only open that
        // fails for another reason (the file needs crash recovery, another process holds it
        // exclusively) leaves the verdict to the open below.
        let exists = std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
        if exists {
            let ro = redb::Builder::new()
                .set_concurrency_mode(ConcurrencyMode::MultiWriter)
                .set_cache_size(1 << 20)
                .open_read_only(path);
            // Only the verdicts "not a redb database" and "not braincache's" are final here;
            // anything else (damage a writable open may repair) is left to the open below.
            match ro {
                Ok(ro) => {
                    if let Err(e @ Error::Incompatible { .. }) = check_format(&ro, path) {
                        return Err(e);
                    }
                }
                Err(e) => {
                    let e: redb::Error = e.into();
                    let not_redb = matches!(
                        &e,
                        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData
                    );
                    if not_redb || matches!(e, redb::Error::UpgradeRequired(_)) {
                        return Err(fail(e));
                    }
                }
            }
        }
        let db = redb::Builder::new()
            .set_concurrency_mode(mode)
            .set_cache_size(self.cache_size)
            .set_check_integrity_on_open(self.verify_on_open)
            .create(path)
            .map_err(|e| fail(e.into()))?;
        // Two rounds at most: a file that another process initializes between our check and our
        // write transaction is checked again.
        for _ in 0..2 {
            match check_format(&db, path)? {
                Layout::Ready => return Ok(db),
                Layout::Empty => {
                    let txn = db.begin_write().map_err(|e| fail(e.into()))?;
                    let empty = txn
                        .list_tables()
                        .map_err(|e| fail(e.into()))?
                        .next()
                        .is_none()
                        && txn
                            .list_multimap_tables()
                            .map_err(|e| fail(e.into()))?
                            .next()
                            .is_none();
                    if empty {
                        {
                            let mut meta = txn.open_table(META).map_err(|e| fail(e.into()))?;
                            meta.insert(FORMAT_VERSION_KEY, FORMAT_VERSION)
                                .map_err(|e| fail(e.into()))?;
                            txn.open_table(ENTRIES).map_err(|e| fail(e.into()))?;
                            txn.open_table(EXPIRY).map_err(|e| fail(e.into()))?;
                        }
                        txn.commit().map_err(|e| fail(e.into()))?;
                        return Ok(db);
                    }
                    txn.abort().map_err(|e| fail(e.into()))?;
                }
            }
        }
        match check_format(&db, path)? {
            Layout::Ready => Ok(db),
            Layout::Empty => Err(incompatible(
                path,
                "the file stays empty after initialization",
            )),
        }
    }
}

/// A read past the end of a file read-only: the file ends before the pages its header points
/// to (and nothing writes it meanwhile: writers only grow the file), so it is damaged.
fn truncated(path: &Path, e: Error) -> Error {
    match e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::corrupt_file(path, None, format!("truncated redb database: {source}"))
        }
        e => e,
    }
}

/// [`RedbBackend::compact`], without its panic guard.
fn compact_file(path: &Path) -> Result<bool> {
    let fail = |e: redb::Error| errors::map(Operation::Compact, path, None, e);
    let mut db = redb::Builder::new()
        .set_concurrency_mode(ConcurrencyMode::ExclusiveWriter)
        .open(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::InUse {
                op: Operation::Compact,
                path: path.to_owned(),
                detail: "another handle (in this process or another) has the file open; \
                         compact it when every process has closed it"
                    .to_owned(),
            },
            e => errors::map(Operation::Open, path, None, e),
        })?;
    check_format(&db, path)?;
    db.compact().map_err(|e| fail(e.into()))
}

/// Opens `path` read-only in the multi-process mode, for tools.
fn open_read_only(path: &Path) -> Result<redb::ReadOnlyDatabase> {
    redb::Builder::new()
        .set_concurrency_mode(ConcurrencyMode::MultiWriter)
        .set_cache_size(16 << 20)
        .open_read_only(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::backend(
                Operation::Open,
                errors::BACKEND,
                None,
                "another process has the file open in single-process mode (redb ExclusiveWriter), \
                 which excludes every other process; read it when that process has closed it",
            )
            .with_path(path),
            e => errors::map(Operation::Open, path, None, e),
        })
}

/// [`RedbBackend::read_entries`], without its panic guard.
fn read_all_entries(path: &Path) -> Result<Vec<(String, Record)>> {
    let db = open_read_only(path)?;
    if let Layout::Empty = check_format(&db, path)? {
        return Ok(Vec::new());
    }
    let fail = |e: redb::Error| errors::map(Operation::Get, path, None, e);
    let txn = db.begin_read().map_err(|e| fail(e.into()))?;
    let table = txn.open_table(ENTRIES).map_err(|e| fail(e.into()))?;
    let damaged = |key: &str, detail: String| Error::Corrupt {
        path: Some(path.to_owned()),
        key: Some(key.to_owned()),
        position: None,
        detail,
    };
    let mut entries: Vec<(String, Record)> = Vec::new();
    for row in table.iter().map_err(|e| fail(e.into()))? {
        let (k, v) = row.map_err(|e| fail(e.into()))?;
        let key = k.value();
        // redb does not verify page checksums on reads, so a damaged leaf can list keys a lookup
        // never finds; keys out of order are the visible sign, and a listing that `get` would
        // contradict must not be handed out.
        if let Some((prev, _)) = entries.last()
            && prev.as_str() >= key
        {
            return Err(damaged(
                key,
                format!("entries table out of order (key after {prev:?}): a damaged B-tree page"),
            ));
        }
        let record = decode_entry(key, v.value()).map_err(|e| e.with_path(path))?;
        entries.push((key.to_owned(), record));
    }
    // Order alone does not catch every damaged leaf: branch pages hold shortened separators, so
    // a key damaged to sort past its separator (but before the next leaf) stays in order while
    // lookups descend into the other leaf. Looking every listed key up again catches that; it
    // doubles the cost of a call made by tools, not by the cache.
    for (key, record) in &entries {
        let found = table.get(key.as_str()).map_err(|e| fail(e.into()))?;
        let same = found.is_some_and(|g| decode_entry(key, g.value()).is_ok_and(|r| r == *record));
        if !same {
            return Err(damaged(
                key,
                "the entries table lists the key, but a lookup does not find it there: a \
                 damaged B-tree page"
                    .to_owned(),
            ));
        }
    }
    Ok(entries)
}

enum Layout {
    /// No table at all: a new file.
    Empty,
    /// A braincache file of this format version.
    Ready,
}

fn incompatible(path: &Path, detail: impl Into<String>) -> Error {
    Error::Incompatible {
        path: Some(path.to_path_buf()),
        detail: detail.into(),
    }
}

/// Checks, without writing, that the file holds exactly braincache's tables at this format
/// version (or no table at all).
fn check_format(db: &impl ReadableDatabase, path: &Path) -> Result<Layout> {
    let fail = |e: redb::Error| errors::map(Operation::Open, path, None, e);
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
        return Ok(Layout::Empty);
    }
    names.extend(multimap.iter().cloned());
    let mut foreign: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| {
            !(TABLE_NAMES.contains(n) || bound::TABLE_NAMES.contains(n) || *n == lease::TABLE)
                || multimap.iter().any(|m| m == n)
        })
        .collect();
    if !foreign.is_empty() {
        foreign.sort_unstable();
        return Err(incompatible(
            path,
            format!(
                "the redb file holds tables braincache does not use ({}): it belongs to another \
                 program",
                foreign.join(", ")
            ),
        ));
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
        Some(FORMAT_VERSION) => {}
        Some(v) if v > FORMAT_VERSION => {
            return Err(incompatible(
                path,
                format!(
                    "format version {v} was written by a newer braincache; this one reads \
                     version {FORMAT_VERSION}"
                ),
            ));
        }
        Some(v) => {
            return Err(incompatible(
                path,
                format!("format version {v} is not supported (this build reads {FORMAT_VERSION})"),
            ));
        }
        None => return Err(incompatible(path, "no format version in the `meta` table")),
    }
    txn.open_table(ENTRIES)
        .map_err(|e| table_error("entries", e))?;
    txn.open_table(EXPIRY)
        .map_err(|e| table_error("expiry", e))?;
    Ok(Layout::Ready)
}

#[cfg(test)]
mod tests;
