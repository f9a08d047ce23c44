//! The document in memory, its link to the file, and the write protocol.
//!
//! # Invariants
//! - `State::view` is the document as this handle sees it: the file as last read or written
//!   (`State::seen`), with `State::in_flight` and `State::pending` (batched sets) on top. It
//!   never holds a change that is not in the file yet except those sets: a write builds a
//!   [`Change`] against the view, writes the view merged with it, and applies it to the view
//!   only once the file has been renamed into place. Until then this handle's readers see the
//!   document as it was, and a write that fails leaves it so.
//! - Only sets wait in memory (batched mode). Removals (delete, clear, purge) are written under
//!   the file lock before they return, so they apply to the file as it is at the call and never
//!   to what another process writes later.
//! - The file is only ever replaced whole, by `rename` of a fully written and fsynced temp file,
//!   and only by a writer holding the exclusive lock on the sidecar `<file>.lock`. So a reader
//!   needs no lock: whatever it opens is a complete document.
//! - Lock order: `Store::writer` (this process's writers, one at a time), then the sidecar file
//!   lock, then `Store::state`. `state` is never held while waiting for the file lock, and is
//!   released during the slow part of a write (write, fsync, rename, fsync the folder).

use crate::format::{self, Entry};
use braincache_core::{Error, ExpiryIndex, Operation, Result, Timestamp, in_step, sidecar};
use crossbeam_channel::{Receiver, Sender};
use std::collections::{BTreeMap, HashMap, btree_map};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::iter::Peekable;
use std::mem;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::SystemTime;

/// Which version of the file a handle last read or wrote, cheap to compare with `stat`.
///
/// The inode changes on every write (each write renames a new temp file over the old one), so
/// `(dev, ino)` alone tells writes by cooperating handles apart even when two of them land in
/// the same modification-time tick with the same size — mtime granularity is coarse on many
/// file systems (ext4 stamps with the kernel tick, several milliseconds). Inode numbers are
/// reused once a file is freed, so [`Seen::File`] keeps the version it describes open: an open
/// file is not freed, so its inode number cannot be handed to a newer version while we compare
/// against it. Size and mtime are compared too, for writers that rewrite the file in place (the
/// Python original, an editor); for those, a change within one mtime tick that keeps the size
/// can go unnoticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    #[cfg(unix)]
    dev: u64,
    #[cfg(unix)]
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileId {
    fn of(m: &Metadata) -> FileId {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        FileId {
            #[cfg(unix)]
            dev: m.dev(),
            #[cfg(unix)]
            ino: m.ino(),
            len: m.len(),
            modified: m.modified().ok(),
        }
    }
}

/// What the view is based on.
#[derive(Debug)]
enum Seen {
    /// Nothing yet, or a failed write left it unknown: the next access reloads.
    Unknown,
    /// The file did not exist (an empty document).
    Missing,
    /// This version of the file; the open handle pins its inode (see [`FileId`]).
    File { id: FileId, pin: File },
}

impl Seen {
    /// Stops pinning this version because a newer one replaced it. The last close of a
    /// replaced version frees its inode and blocks: about 0.15 ms for a 100 kB file on ext4,
    /// longer than the rename and a third of a durable `set`. So that close happens on a
    /// background thread, off the writer's path, for at most [`MAX_PENDING_CLOSES`] versions at
    /// a time (each holds its disk space until closed). (Dropping a `Seen` instead closes at once: the
    /// version in use when a backend is dropped is still linked, cheap to close, and must be
    /// closed by the time `drop` returns.)
    fn retire(self) {
        if let Seen::File { pin, .. } = self {
            close_in_background(pin);
        }
    }
}

/// Replaced versions handed to the closing thread and not closed yet, at most. Each one still
/// holds its disk space (a deleted file's blocks are freed by its last close), so more would
/// let a burst of writes fill a small disk with old versions. Past this, a writer closes its
/// replaced version itself.
const MAX_PENDING_CLOSES: usize = 2;

/// The process-wide closing thread: a channel and a count of the files handed to it that are
/// not closed yet (queued or being closed).
struct Closer {
    pid: u32,
    tx: Sender<File>,
    /// A second receiver, so a writer can close queued files itself ([`close_pending`]).
    rx: Receiver<File>,
    pending: Arc<AtomicUsize>,
}

fn closer() -> Option<&'static Closer> {
    static CLOSER: OnceLock<Option<Closer>> = OnceLock::new();
    CLOSER
        .get_or_init(|| {
            let (tx, rx) = crossbeam_channel::bounded::<File>(MAX_PENDING_CLOSES);
            let pending = Arc::new(AtomicUsize::new(0));
            let (thread_rx, thread_pending) = (rx.clone(), Arc::clone(&pending));
            std::thread::Builder::new()
                .name("braincache-file-close".into())
                .spawn(move || {
                    for file in thread_rx.iter() {
                        drop(file);
                        thread_pending.fetch_sub(1, Ordering::AcqRel);
                    }
                })
                .ok()
                .map(|_| Closer {
                    pid: std::process::id(),
                    tx,
                    rx,
                    pending,
                })
        })
        .as_ref()
        // A forked child has the channel but not the thread.
        .filter(|c| c.pid == std::process::id())
}

/// Hands `file` to a process-wide closing thread, started on first use. Closes it here when
/// the thread cannot be started, already has [`MAX_PENDING_CLOSES`] files to close, or belongs
/// to the parent of this process (a forked child has the channel but not the thread).
fn close_in_background(file: File) {
    let Some(c) = closer() else {
        drop(file);
        return;
    };
    // Counted before it is sent, so the count never misses a file the thread holds.
    if c.pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING_CLOSES {
        c.pending.fetch_sub(1, Ordering::AcqRel);
        drop(file);
        return;
    }
    if let Err(e) = c.tx.try_send(file) {
        drop(e.into_inner());
        c.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Closes every replaced version still waiting for the closing thread, here, and waits (up to
/// a second) for the one it may be closing, so that their disk space is free when this
/// returns. A write that failed for lack of space calls it before its one retry.
fn close_pending() {
    let Some(c) = closer() else { return };
    while let Ok(file) = c.rx.try_recv() {
        drop(file);
        c.pending.fetch_sub(1, Ordering::AcqRel);
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while c.pending.load(Ordering::Acquire) > 0 && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// The document in memory with an expiry index.
#[derive(Debug, Default)]
pub(crate) struct View {
    entries: BTreeMap<String, Entry>,
    /// Every key with a deadline, so purges and `next_expiry` do not scan.
    expiry: ExpiryIndex<String>,
}

impl View {
    fn from_entries(entries: BTreeMap<String, Entry>) -> View {
        let expiry = entries
            .iter()
            .filter_map(|(k, e)| e.expires_at.map(|d| (d, k.clone(), ())))
            .collect();
        View { entries, expiry }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn next_expiry(&self) -> Option<Timestamp> {
        self.expiry.next_expiry()
    }

    fn insert(&mut self, key: String, entry: Entry) {
        let new = entry.expires_at;
        let old = self
            .entries
            .insert(key.clone(), entry)
            .and_then(|old| old.expires_at);
        self.expiry.replace(key, old, new, ());
    }

    fn remove(&mut self, key: &str) -> bool {
        match self.entries.remove(key) {
            Some(old) => {
                if let Some(d) = old.expires_at {
                    self.expiry.remove(d, key.to_owned());
                }
                true
            }
            None => false,
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.expiry.clear();
    }

    /// Applies a change: a clear first, then its sets and removals.
    fn apply(&mut self, change: Change) {
        if change.clear {
            self.clear();
        }
        for (key, entry) in change.keys {
            match entry {
                Some(entry) => self.insert(key, entry),
                None => {
                    self.remove(&key);
                }
            }
        }
    }

    /// The entries of this view with `change` applied, in key order, without applying it.
    pub(crate) fn merged<'a>(&'a self, change: &'a Change) -> Merged<'a> {
        let base = if change.clear { &EMPTY } else { &self.entries };
        let mut over = change.keys.iter().peekable();
        let first = over.peek().map(|(k, _)| k.as_str());
        Merged {
            base,
            segment: base.range::<str, _>((
                Bound::Unbounded,
                first.map_or(Bound::Unbounded, Bound::Excluded),
            )),
            over,
        }
    }
}

static EMPTY: BTreeMap<String, Entry> = BTreeMap::new();

/// [`View::merged`]: the base's entries between two keys of the change are walked as ranges
/// (no key comparisons), each key of the change is yielded in between unless it is a removal.
#[derive(Clone)]
pub(crate) struct Merged<'a> {
    base: &'a BTreeMap<String, Entry>,
    /// The base's entries before the change's next key (and after its previous one).
    segment: btree_map::Range<'a, String, Entry>,
    over: Peekable<btree_map::Iter<'a, String, Option<Entry>>>,
}

impl<'a> Iterator for Merged<'a> {
    type Item = (&'a str, &'a Entry);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((k, e)) = self.segment.next() {
                return Some((k.as_str(), e));
            }
            let (key, entry) = self.over.next()?;
            // The change's keys are distinct and sorted, so `key < upto`: a valid range.
            let upto = self.over.peek().map(|(k, _)| k.as_str());
            self.segment = self.base.range::<str, _>((
                Bound::Excluded(key.as_str()),
                upto.map_or(Bound::Unbounded, Bound::Excluded),
            ));
            if let Some(entry) = entry {
                return Some((key.as_str(), entry));
            }
            // A removal: nothing to yield for this key.
        }
    }
}

/// The net effect of one write on the document: first remove every entry when `clear`, then
/// set (`Some`) or remove (`None`) each of `keys`. Built against a [`View`] without changing it,
/// so the view can stay as the file is until the file holds the change.
#[derive(Debug, Default)]
pub(crate) struct Change {
    clear: bool,
    keys: BTreeMap<String, Option<Entry>>,
}

impl Change {
    /// True when applying the change would leave any document as it is.
    fn is_empty(&self) -> bool {
        !self.clear && self.keys.is_empty()
    }

    pub(crate) fn set(&mut self, key: String, entry: Entry) {
        self.keys.insert(key, Some(entry));
    }

    /// Whether `key` is in `view` with this change applied.
    fn has(&self, view: &View, key: &str) -> bool {
        match self.keys.get(key) {
            Some(entry) => entry.is_some(),
            None => !self.clear && view.entries.contains_key(key),
        }
    }

    /// Removes `key`; false (and no change) when it is not there.
    pub(crate) fn delete(&mut self, view: &View, key: &str) -> bool {
        let found = self.has(view, key);
        if found {
            self.keys.insert(key.to_owned(), None);
        }
        found
    }

    /// Removes every entry; no change when there is none.
    pub(crate) fn clear(&mut self, view: &View) {
        if view.merged(self).next().is_some() {
            self.clear = true;
            self.keys.clear();
        }
    }

    /// Removes the entries whose deadline is at or before `now`; returns how many.
    pub(crate) fn purge(&mut self, view: &View, now: Timestamp) -> usize {
        let mut n = 0;
        for entry in self.keys.values_mut() {
            if entry
                .as_ref()
                .is_some_and(|e| e.expires_at.is_some_and(|d| d <= now))
            {
                *entry = None;
                n += 1;
            }
        }
        if !self.clear {
            let expired: Vec<String> = view
                .expiry
                .due(now)
                .filter(|(_, k, _)| !self.keys.contains_key(*k))
                .map(|(_, k, _)| k.clone())
                .collect();
            n += expired.len();
            for key in expired {
                self.keys.insert(key, None);
            }
        }
        n
    }
}

/// Everything behind the state lock.
#[derive(Debug)]
pub(crate) struct State {
    /// The file as last read or written, with `in_flight` and `pending` on top.
    view: View,
    /// Batched mode: sets acknowledged but not yet given to a write, the latest per key. Sets
    /// of different keys commute, so their order does not matter.
    pending: HashMap<String, Entry>,
    /// Batched mode: sets taken from `pending` by the write under way; back to `pending` (under
    /// any newer set of the same key) if it fails before the rename.
    in_flight: HashMap<String, Entry>,
    seen: Seen,
    /// This process holds the file lock and is replacing the file: no other cooperating writer
    /// can change it meanwhile, so readers answer from memory without `stat`.
    writing: bool,
    /// A write renamed its file into place but could not fsync the folder: the rename may not
    /// survive a power loss until a later write or [`Store::flush`] fsyncs the folder.
    dir_unsynced: bool,
}

impl State {
    fn rebase(&mut self, base: BTreeMap<String, Entry>, seen: Seen) {
        let mut view = View::from_entries(base);
        for (key, entry) in self.in_flight.iter().chain(&self.pending) {
            view.insert(key.clone(), entry.clone());
        }
        self.view = view;
        mem::replace(&mut self.seen, seen).retire();
    }
}

/// Holds the sidecar lock; releases it when dropped.
struct FileLock<'a>(&'a File);

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// One cache file: its paths, the sidecar lock, and the state.
#[derive(Debug)]
pub(crate) struct Store {
    path: PathBuf,
    tmp_path: PathBuf,
    lock_path: PathBuf,
    dir: PathBuf,
    lock_file: File,
    durable: bool,
    /// This process's writers, one at a time (`File::lock` does not exclude threads sharing one
    /// handle, and the temp file has one name).
    writer: Mutex<()>,
    state: Mutex<State>,
    /// The size bound, applied inside every write (see [`crate::bound`]).
    pub(crate) bound: crate::bound::Bound,
    /// Tests: make every folder fsync fail.
    #[cfg(test)]
    pub(crate) fail_dir_sync: std::sync::atomic::AtomicBool,
}

/// Makes `path` absolute and, when it is a symbolic link, resolves it, so the file is replaced
/// where the link points rather than the link being replaced by a file.
fn resolve(path: &Path) -> io::Result<PathBuf> {
    let abs = std::path::absolute(path)?;
    match fs::symlink_metadata(&abs) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(&abs),
        _ => Ok(abs),
    }
}

impl Store {
    /// Opens (creating when missing) the file at `path` and loads it.
    pub(crate) fn open(path: &Path, durable: bool, bound: crate::bound::Bound) -> Result<Store> {
        let path = resolve(path).map_err(|e| Error::io(Operation::Open, path, e))?;
        let (Some(dir), Some(_)) = (path.parent(), path.file_name()) else {
            return Err(Error::io(
                Operation::Open,
                path,
                io::Error::new(io::ErrorKind::InvalidInput, "not a path to a file"),
            ));
        };
        let dir = dir.to_path_buf();
        let lock_path = sidecar(&path, ".lock");
        let tmp_path = sidecar(&path, ".tmp");
        // A CLI's cache lives in a folder (`~/.cache/app/`) that is missing on its first run:
        // create it, as diskcache does. The errors name the cache file the caller gave, and say
        // which step on which other path failed.
        fs::create_dir_all(&dir).map_err(|e| {
            Error::io(
                Operation::Open,
                &path,
                in_step("cannot create its folder", &dir, e),
            )
        })?;
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| {
                Error::io(
                    Operation::Open,
                    &path,
                    in_step("cannot open its lock file", &lock_path, e),
                )
            })?;
        // Create the file when missing, never touching an existing one: a zero-length file is an
        // empty cache.
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(Operation::Open, path, e)),
        }
        let store = Store {
            path,
            tmp_path,
            lock_path,
            dir,
            lock_file,
            durable,
            writer: Mutex::new(()),
            state: Mutex::new(State {
                view: View::default(),
                pending: HashMap::new(),
                in_flight: HashMap::new(),
                seen: Seen::Unknown,
                writing: false,
                dir_unsynced: false,
            }),
            bound,
            #[cfg(test)]
            fail_dir_sync: std::sync::atomic::AtomicBool::new(false),
        };
        {
            let mut st = store.state();
            store.sync(&mut st, Operation::Open)?;
        }
        Ok(store)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn is_durable(&self) -> bool {
        self.durable
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code path leaves the state half-changed when it panics; keep serving after one.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The number of entries in memory, without looking at the file.
    pub(crate) fn cached_len(&self) -> usize {
        self.state().view.len()
    }

    /// Brings the view up to date with the file when the file changed since we last saw it.
    fn sync(&self, st: &mut State, op: Operation) -> Result<()> {
        if st.writing && !matches!(st.seen, Seen::Unknown) {
            return Ok(());
        }
        let now = match fs::metadata(&self.path) {
            Ok(m) => Some(FileId::of(&m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(op, &self.path, e)),
        };
        let unchanged = match (&st.seen, now) {
            (Seen::Missing, None) => true,
            (Seen::File { id, .. }, Some(now)) => *id == now,
            _ => false,
        };
        if unchanged {
            return Ok(());
        }
        self.reload(st, op)
    }

    /// Reads and parses the file, then replays pending changes on top. On error the view is
    /// left as it was and the file untouched.
    fn reload(&self, st: &mut State, op: Operation) -> Result<()> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Deleted behind our back: an empty cache, created again on the next write.
                st.rebase(BTreeMap::new(), Seen::Missing);
                return Ok(());
            }
            Err(e) => return Err(Error::io(op, &self.path, e)),
        };
        // The id of what we actually read, not of what `stat` saw a moment earlier.
        let meta = file.metadata().map_err(|e| Error::io(op, &self.path, e))?;
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io(op, &self.path, e))?;
        let base = format::parse(&bytes)
            .map_err(|e| Error::corrupt_file(&self.path, Some(e.position()), e.detail.clone()))?;
        st.rebase(
            base,
            Seen::File {
                id: FileId::of(&meta),
                pin: file,
            },
        );
        Ok(())
    }

    /// Runs `f` on the view, fresh from the file.
    pub(crate) fn read<R>(&self, op: Operation, f: impl FnOnce(&View) -> R) -> Result<R> {
        let mut st = self.state();
        self.sync(&mut st, op)?;
        Ok(f(&st.view))
    }

    /// Sets entries. Durable: as [`change`](Self::change). Batched: in memory (seen at once by
    /// this handle's readers), written by the next write of this handle.
    pub(crate) fn set(
        &self,
        op: Operation,
        entries: impl IntoIterator<Item = (String, Entry)>,
    ) -> Result<()> {
        if self.durable {
            return self.write_through(op, false, |_, change| {
                for (key, entry) in entries {
                    change.set(key, entry);
                }
            });
        }
        let mut st = self.state();
        for (key, entry) in entries {
            st.view.insert(key.clone(), entry.clone());
            st.pending.insert(key, entry);
        }
        Ok(())
    }

    /// Makes the change `f` builds against the freshest file, under the file lock, and writes
    /// it (with this handle's pending sets, in batched mode) before returning, in both modes.
    /// A change that changes nothing writes nothing. Returns `f`'s answer.
    pub(crate) fn change<R>(
        &self,
        op: Operation,
        f: impl FnOnce(&View, &mut Change) -> R,
    ) -> Result<R> {
        self.write_through(op, false, f)
    }

    /// Writes pending sets, if any, and retries a folder fsync that failed. Returns once every
    /// set made before the call is on disk: a write under way (the flush thread's) holds some
    /// of them, so this waits for it.
    pub(crate) fn flush(&self, op: Operation) -> Result<()> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        {
            let st = self.state();
            if st.pending.is_empty() && !st.dir_unsynced {
                return Ok(());
            }
        }
        self.write_locked(op, true, |_, _| ())
    }

    /// The write protocol: lock, reload if another process wrote, build the change, write the
    /// whole document with it to a temp file, fsync it, rename it over the file, show the change
    /// to readers, fsync the folder, unlock. `flush` writes pending sets even when the change is
    /// empty.
    ///
    /// Readers of this handle see the change only once the file holds it: until the rename
    /// they see the document as it was (and a write that fails before the rename leaves it so).
    fn write_through<R>(
        &self,
        op: Operation,
        flush: bool,
        f: impl FnOnce(&View, &mut Change) -> R,
    ) -> Result<R> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.write_locked(op, flush, f)
    }

    /// [`write_through`](Self::write_through) for a caller holding `self.writer`.
    fn write_locked<R>(
        &self,
        op: Operation,
        flush: bool,
        f: impl FnOnce(&View, &mut Change) -> R,
    ) -> Result<R> {
        self.lock_file
            .lock()
            .map_err(|e| Error::io(op, &self.lock_path, e))?;
        let _lock = FileLock(&self.lock_file);

        let mut st = self.state();
        self.sync(&mut st, op)?;
        let mut change = Change::default();
        let answer = f(&st.view, &mut change);
        // Room for what this write stores, in the same document.
        let evicted = self.bound.evict(&st.view, &mut change, Timestamp::now());
        let writes_pending = flush && !st.pending.is_empty();
        if change.is_empty() && !writes_pending {
            if flush && st.dir_unsynced {
                drop(st);
                self.sync_dir().map_err(|e| Error::io(op, &self.dir, e))?;
                self.state().dir_unsynced = false;
            }
            return Ok(answer);
        }
        let bytes = format::write(st.view.merged(&change));
        st.in_flight = mem::take(&mut st.pending);
        st.writing = true;
        drop(st);

        let mut renamed = self.write_and_rename(&bytes);
        // Replaced versions waiting to be closed still hold their space: free it and try once
        // more, so that a full disk means the disk is full.
        // (The closing thread may have freed some while this write ran: retry in any case.)
        if matches!(&renamed, Err((_, e)) if e.kind() == io::ErrorKind::StorageFull) {
            close_pending();
            renamed = self.write_and_rename(&bytes);
        }

        let mut st = self.state();
        st.writing = false;
        let file = match renamed {
            Ok(file) => file,
            Err((path, e)) => {
                // The file is as it was: drop the change, keep the sets for the next write.
                let later = mem::take(&mut st.pending);
                st.pending = mem::take(&mut st.in_flight);
                st.pending.extend(later);
                return Err(Error::io(op, path, e));
            }
        };
        // The file holds the change and the sets that were in flight: so does the view, with
        // sets made meanwhile (batched) on top again.
        st.in_flight.clear();
        self.bound.committed(evicted);
        let State { view, pending, .. } = &mut *st;
        view.apply(change);
        for (key, entry) in pending.iter() {
            view.insert(key.clone(), entry.clone());
        }
        // The id after the rename: it changes the inode's ctime on some systems, and what we
        // compare with later is the renamed file's `stat`.
        let seen = match file.metadata() {
            Ok(meta) => Seen::File {
                id: FileId::of(&meta),
                pin: file,
            },
            // Read the file again next time.
            Err(_) => Seen::Unknown,
        };
        mem::replace(&mut st.seen, seen).retire();
        drop(st);

        let synced = self.sync_dir();
        // A failure is not undone: other processes may already have read the new file. The
        // change stands (it is not written again); a later write or `flush` retries the fsync.
        self.state().dir_unsynced = synced.is_err();
        synced.map_err(|e| Error::io(op, &self.dir, e))?;
        Ok(answer)
    }

    /// Writes `bytes` to the temp file, fsyncs it and renames it over the file; returns an open
    /// handle on the new version. On error the file is as it was and the temp file is removed.
    /// The caller holds the file lock.
    fn write_and_rename(&self, bytes: &[u8]) -> std::result::Result<File, (PathBuf, io::Error)> {
        let tmp = &self.tmp_path;
        // The temp file has a fixed name: only the lock holder writes it, and one left by a
        // writer killed mid-write is simply overwritten.
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)
            .map_err(at(tmp))?;
        let result = (|| {
            if let Ok(m) = fs::metadata(&self.path) {
                // Keep the file's permissions (a cache made private stays private).
                file.set_permissions(m.permissions()).map_err(at(tmp))?;
            }
            file.write_all(bytes).map_err(at(tmp))?;
            file.sync_data().map_err(at(tmp))?;
            fs::rename(tmp, &self.path).map_err(at(&self.path))?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(tmp);
            return Err(e);
        }
        Ok(file)
    }

    /// Makes the last rename durable.
    fn sync_dir(&self) -> io::Result<()> {
        #[cfg(test)]
        if self
            .fail_dir_sync
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(io::Error::other("injected folder fsync failure"));
        }
        sync_dir(&self.dir)
    }
}

/// Tags an I/O error with the path it happened on.
fn at(path: &Path) -> impl FnOnce(io::Error) -> (PathBuf, io::Error) + '_ {
    move |e| (path.to_path_buf(), e)
}

/// Makes a rename in `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Windows offers no way to fsync a folder; `MoveFileEx` with write-through is the closest,
/// and std's rename already asks for replacement semantics.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FileBackend;
    use crate::format::StoredValue;
    use braincache_core::{Backend, Record};
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    fn e(v: &str, d: Option<u64>) -> Entry {
        Entry {
            value: StoredValue::Json(v.into()),
            expires_at: d.map(Timestamp::from_unix_millis),
            fresh: None,
        }
    }

    fn keys(doc: &[u8]) -> Vec<String> {
        format::parse(doc).unwrap().into_keys().collect()
    }

    #[test]
    fn view_keeps_the_expiry_index_in_step() {
        let mut v = View::default();
        v.insert("a".into(), e("1", Some(10)));
        v.insert("b".into(), e("1", Some(10)));
        v.insert("a".into(), e("2", Some(20)));
        v.insert("b".into(), e("2", None));
        assert_eq!(v.expiry.len(), 1);
        assert_eq!(v.next_expiry(), Some(Timestamp::from_unix_millis(20)));
        let mut c = Change::default();
        assert_eq!(c.purge(&v, Timestamp::from_unix_millis(19)), 0);
        assert!(c.is_empty());
        assert_eq!(c.purge(&v, Timestamp::from_unix_millis(20)), 1);
        v.apply(c);
        assert!(v.expiry.is_empty());
        assert_eq!(v.len(), 1);
        assert!(v.remove("b"));
        assert!(!v.remove("b"));
    }

    /// A change answers as if applied, leaves the view alone, and writes what applying it gives.
    #[test]
    fn a_change_is_seen_through_the_view_without_changing_it() {
        let mut base = BTreeMap::new();
        base.insert("a".to_owned(), e("1", Some(5)));
        base.insert("c".to_owned(), e("3", None));
        base.insert("e".to_owned(), e("5", Some(50)));
        let view = View::from_entries(base.clone());
        let at = Timestamp::from_unix_millis;

        let mut c = Change::default();
        c.set("b".into(), e("2", Some(7)));
        c.set("c".into(), e("33", None));
        assert!(c.delete(&view, "e"));
        assert!(!c.delete(&view, "e"), "already removed by the change");
        assert!(!c.delete(&view, "z"));
        c.set("d".into(), e("4", None));
        assert!(c.delete(&view, "d"), "set by the change");
        assert_eq!(
            c.purge(&view, at(7)),
            2,
            "a from the view, b from the change"
        );
        assert_eq!(view.entries, base, "the view is unchanged");
        let written = format::write(view.merged(&c));
        assert_eq!(keys(&written), ["c"]);
        let mut applied = View::from_entries(base.clone());
        applied.apply(c);
        assert_eq!(format::write(&applied.entries), written);
        assert_eq!(applied.expiry.len(), 0);

        let mut c = Change::default();
        c.clear(&view);
        assert!(!c.delete(&view, "a"), "cleared");
        c.set("x".into(), e("9", Some(1)));
        assert_eq!(c.purge(&view, at(3)), 1);
        assert_eq!(format::write(view.merged(&c)), b"{}\n");
        let mut again = Change::default();
        again.clear(&View::default());
        assert!(again.is_empty(), "clearing nothing changes nothing");
    }

    /// Every view and change over six keys: the merge writes what applying the change gives.
    #[test]
    fn merged_agrees_with_applied_for_every_small_case() {
        const KEYS: [&str; 6] = ["", "a", "ab", "b", "ba", "c"];
        for base_mask in 0..1u32 << KEYS.len() {
            let base: BTreeMap<String, Entry> = (0..KEYS.len())
                .filter(|i| base_mask & (1 << i) != 0)
                .map(|i| (KEYS[i].to_owned(), e("0", Some(i as u64))))
                .collect();
            let view = View::from_entries(base.clone());
            for code in 0..3u32.pow(KEYS.len() as u32) * 2 {
                let mut c = Change {
                    clear: code % 2 == 1,
                    keys: BTreeMap::new(),
                };
                let mut rest = code / 2;
                for (i, key) in KEYS.iter().enumerate() {
                    match rest % 3 {
                        1 => c.set((*key).to_owned(), e("1", Some(10 + i as u64))),
                        2 => {
                            c.keys.insert((*key).to_owned(), None);
                        }
                        _ => {}
                    }
                    rest /= 3;
                }
                let merged = format::write(view.merged(&c));
                let mut applied = View::from_entries(base.clone());
                applied.apply(c);
                assert_eq!(
                    merged,
                    format::write(&applied.entries),
                    "{base_mask} {code}"
                );
                let want: std::collections::BTreeSet<_> = applied
                    .entries
                    .iter()
                    .filter_map(|(k, e)| e.expires_at.map(|d| (d, k.clone())))
                    .collect();
                let have: std::collections::BTreeSet<_> = applied
                    .expiry
                    .iter()
                    .map(|(d, k, _)| (d, k.clone()))
                    .collect();
                assert_eq!(have, want);
            }
        }
    }

    /// Review finding: when the rename succeeded but the folder fsync failed, a batched flush
    /// kept its changes pending and wrote them again at the next flush, over what other
    /// processes wrote in between.
    #[test]
    fn a_failed_folder_fsync_after_the_rename_does_not_write_the_change_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let rec = |v: &str| Record::new(v.as_bytes().to_vec(), None);
        let lazy = FileBackend::builder(&path)
            .flush_every(Duration::from_secs(3600))
            .build()
            .unwrap();
        let other = FileBackend::open(&path).unwrap();
        lazy.set("k", rec("1")).unwrap();
        lazy.store.fail_dir_sync.store(true, Relaxed);
        let err = lazy.flush().unwrap_err();
        assert_eq!(err.path(), Some(dir.path()), "{err}");
        assert!(lazy.store.state().dir_unsynced);
        assert_eq!(
            other.get("k").unwrap(),
            Some(rec("1")),
            "renamed into place"
        );
        other.set("k", rec("2")).unwrap();
        lazy.store.fail_dir_sync.store(false, Relaxed);
        lazy.flush().unwrap(); // retries the fsync only
        assert!(!lazy.store.state().dir_unsynced);
        assert_eq!(other.get("k").unwrap(), Some(rec("2")));
        assert_eq!(lazy.get("k").unwrap(), Some(rec("2")));

        // Durable: the error is returned, and the change, already in the file, is kept.
        other.store.fail_dir_sync.store(true, Relaxed);
        assert!(other.set("k", rec("3")).is_err());
        assert_eq!(other.get("k").unwrap(), Some(rec("3")));
        assert_eq!(lazy.get("k").unwrap(), Some(rec("3")));
        other.store.fail_dir_sync.store(false, Relaxed);
        other.flush().unwrap();
        assert!(!other.store.state().dir_unsynced);
    }
}
