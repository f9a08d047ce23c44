//! The document in memory, its link to the file, and the write protocol.
//!
//! # Invariants
//! - `State::view` is the document as this handle sees it: the file as last read or written
//!   (`State::seen`), with `State::pending` applied on top. Pending is empty in durable mode
//!   except inside [`Store::write_through`].
//! - The file is only ever replaced whole, by `rename` of a fully written and fsynced temp file,
//!   and only by a writer holding the exclusive lock on the sidecar `<file>.lock`. So a reader
//!   needs no lock: whatever it opens is a complete document.
//! - Lock order: `Store::writer` (this process's writers, one at a time), then the sidecar file
//!   lock, then `Store::state`. `state` is never held while waiting for the file lock, and is
//!   released during the slow part of a write (write, fsync, rename, fsync the folder).

use crate::format::{self, Entry};
use braincache_core::{Error, Operation, Result, Timestamp};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
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
    File { id: FileId, _pin: File },
}

/// The document in memory with an expiry index.
#[derive(Debug, Default)]
pub(crate) struct View {
    entries: BTreeMap<String, Entry>,
    /// `(deadline, key)` of every entry with a deadline, so purges and `next_expiry` do not scan.
    expiry: BTreeSet<(Timestamp, String)>,
}

impl View {
    fn from_entries(entries: BTreeMap<String, Entry>) -> View {
        let expiry = entries
            .iter()
            .filter_map(|(k, e)| e.expires_at.map(|d| (d, k.clone())))
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
        self.expiry.first().map(|(d, _)| *d)
    }

    fn insert(&mut self, key: String, entry: Entry) {
        let new = entry.expires_at;
        let old = self
            .entries
            .insert(key.clone(), entry)
            .and_then(|old| old.expires_at);
        if old != new {
            if let Some(d) = old {
                self.expiry.remove(&(d, key.clone()));
            }
            if let Some(d) = new {
                self.expiry.insert((d, key));
            }
        }
    }

    fn remove(&mut self, key: &str) -> bool {
        match self.entries.remove(key) {
            Some(old) => {
                if let Some(d) = old.expires_at {
                    self.expiry.remove(&(d, key.to_owned()));
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

    /// Removes entries whose deadline is at or before `now`, in deadline order.
    fn purge(&mut self, now: Timestamp) -> usize {
        let mut n = 0;
        while let Some((d, _)) = self.expiry.first()
            && *d <= now
        {
            if let Some((_, key)) = self.expiry.pop_first() {
                self.entries.remove(&key);
                n += 1;
            }
        }
        n
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Set(k, e) => self.insert(k.clone(), e.clone()),
            Op::Delete(k) => {
                self.remove(k);
            }
            Op::Clear => self.clear(),
            Op::Purge(t) => {
                self.purge(*t);
            }
        }
    }
}

/// A change not yet in the file.
#[derive(Debug, Clone)]
enum Op {
    Set(String, Entry),
    Delete(String),
    Clear,
    Purge(Timestamp),
}

/// Changes made since the last write, in order. Replayed on top of the file when another
/// process changed it, so their writes and ours both survive (ours win on the same key).
///
/// Sets and deletes of one key between two barriers (clear, purge) collapse into the last one:
/// they commute with changes to other keys, so memory is bounded by the distinct keys touched.
#[derive(Debug, Default)]
struct Pending {
    ops: Vec<Op>,
    /// Index in `ops` of each key's change since the last barrier.
    slots: HashMap<String, usize>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn push(&mut self, op: Op) {
        match &op {
            Op::Set(k, _) | Op::Delete(k) => {
                if let Some(&i) = self.slots.get(k) {
                    self.ops[i] = op;
                    return;
                }
                self.slots.insert(k.clone(), self.ops.len());
            }
            Op::Clear => {
                // Nothing before a clear matters.
                self.ops.clear();
                self.slots.clear();
            }
            Op::Purge(t) => {
                if let Some(Op::Purge(prev)) = self.ops.last_mut() {
                    *prev = (*prev).max(*t);
                    return;
                }
                self.slots.clear();
            }
        }
        self.ops.push(op);
    }

    /// `self` followed by `later`.
    fn then(mut self, later: Pending) -> Pending {
        for op in later.ops {
            self.push(op);
        }
        self
    }
}

/// Everything behind the state lock.
#[derive(Debug)]
pub(crate) struct State {
    view: View,
    pending: Pending,
    seen: Seen,
    /// This process holds the file lock and is replacing the file: no other cooperating writer
    /// can change it meanwhile, so readers answer from memory without `stat`.
    writing: bool,
}

impl State {
    pub(crate) fn set(&mut self, key: &str, entry: Entry) {
        self.view.insert(key.to_owned(), entry.clone());
        self.pending.push(Op::Set(key.to_owned(), entry));
    }

    pub(crate) fn delete(&mut self, key: &str) -> bool {
        let found = self.view.remove(key);
        if found {
            self.pending.push(Op::Delete(key.to_owned()));
        }
        found
    }

    pub(crate) fn clear(&mut self) {
        if self.view.len() > 0 {
            self.view.clear();
            self.pending.push(Op::Clear);
        }
    }

    pub(crate) fn purge(&mut self, now: Timestamp) -> usize {
        let n = self.view.purge(now);
        if n > 0 {
            self.pending.push(Op::Purge(now));
        }
        n
    }

    fn rebase(&mut self, base: BTreeMap<String, Entry>, seen: Seen) {
        let mut view = View::from_entries(base);
        for op in &self.pending.ops {
            view.apply(op);
        }
        self.view = view;
        self.seen = seen;
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

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.file_name().unwrap_or_default().to_owned();
    name.push(suffix);
    path.with_file_name(name)
}

impl Store {
    /// Opens (creating when missing) the file at `path` and loads it.
    pub(crate) fn open(path: &Path, durable: bool) -> Result<Store> {
        let path = resolve(path).map_err(|e| Error::io(Operation::Open, path, e))?;
        let (Some(dir), Some(_)) = (path.parent(), path.file_name()) else {
            return Err(Error::io(
                Operation::Open,
                path,
                io::Error::new(io::ErrorKind::InvalidInput, "not a path to a file"),
            ));
        };
        let dir = dir.to_path_buf();
        let lock_path = sibling(&path, ".lock");
        let tmp_path = sibling(&path, ".tmp");
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io(Operation::Open, &lock_path, e))?;
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
                pending: Pending::default(),
                seen: Seen::Unknown,
                writing: false,
            }),
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
                _pin: file,
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

    /// Applies `f` (a change) to the document. Durable: under the file lock, on the freshest
    /// file, written before returning. Batched: in memory, written by the next flush; `fresh`
    /// says whether `f`'s answer depends on the file's current content (a delete's "was it
    /// there") so the view must be brought up to date first.
    pub(crate) fn write<R>(
        &self,
        op: Operation,
        fresh: bool,
        f: impl FnOnce(&mut State) -> R,
    ) -> Result<R> {
        if self.durable {
            return self.write_through(op, f);
        }
        let mut st = self.state();
        if fresh {
            self.sync(&mut st, op)?;
        }
        Ok(f(&mut st))
    }

    /// Writes pending changes, if any.
    pub(crate) fn flush(&self, op: Operation) -> Result<()> {
        if self.state().pending.is_empty() {
            return Ok(());
        }
        self.write_through(op, |_| ())
    }

    /// The write protocol: lock, reload if another process wrote, apply `f`, write the whole
    /// document to a temp file, fsync it, rename it over the file, fsync the folder, unlock.
    fn write_through<R>(&self, op: Operation, f: impl FnOnce(&mut State) -> R) -> Result<R> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.lock_file
            .lock()
            .map_err(|e| Error::io(op, &self.lock_path, e))?;
        let _lock = FileLock(&self.lock_file);

        let mut st = self.state();
        self.sync(&mut st, op)?;
        let answer = f(&mut st);
        if st.pending.is_empty() {
            return Ok(answer);
        }
        let bytes = format::write(&st.view.entries);
        let in_flight = mem::take(&mut st.pending);
        st.writing = true;
        drop(st);

        let written = self.replace_file(&bytes);

        let mut st = self.state();
        st.writing = false;
        match written {
            Ok((id, pin)) => {
                st.seen = Seen::File { id, _pin: pin };
                Ok(answer)
            }
            Err((path, e)) => {
                if self.durable {
                    // The change was refused: forget it, and read the file again next time
                    // (which also covers a rename that happened before a failed folder fsync).
                    st.seen = Seen::Unknown;
                    drop(in_flight);
                } else {
                    // Keep the changes for the next flush, before any made since.
                    let later = mem::take(&mut st.pending);
                    st.pending = in_flight.then(later);
                }
                Err(Error::io(op, path, e))
            }
        }
    }

    /// Atomically replaces the file with `bytes`; returns the new version's id and an open
    /// handle on it. The caller holds the file lock.
    fn replace_file(
        &self,
        bytes: &[u8],
    ) -> std::result::Result<(FileId, File), (PathBuf, io::Error)> {
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
        sync_dir(&self.dir).map_err(at(&self.dir))?;
        // After the rename: it changes the inode's ctime on some systems, and what we compare
        // with later is the renamed file's `stat`.
        let meta = file.metadata().map_err(at(&self.path))?;
        Ok((FileId::of(&meta), file))
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
    use crate::format::StoredValue;

    fn e(v: &str, d: Option<u64>) -> Entry {
        Entry {
            value: StoredValue::Json(v.into()),
            expires_at: d.map(Timestamp::from_unix_millis),
        }
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
        assert_eq!(v.purge(Timestamp::from_unix_millis(19)), 0);
        assert_eq!(v.purge(Timestamp::from_unix_millis(20)), 1);
        assert!(v.expiry.is_empty());
        assert_eq!(v.len(), 1);
        assert!(v.remove("b"));
        assert!(!v.remove("b"));
    }

    #[test]
    fn pending_replays_in_order_and_stays_small() {
        let mut p = Pending::default();
        for i in 0..100 {
            p.push(Op::Set("k".into(), e(&i.to_string(), None)));
        }
        p.push(Op::Set("x".into(), e("1", Some(5))));
        p.push(Op::Purge(Timestamp::from_unix_millis(5)));
        p.push(Op::Purge(Timestamp::from_unix_millis(7)));
        p.push(Op::Set("x".into(), e("2", Some(6))));
        p.push(Op::Delete("k".into()));
        assert_eq!(p.ops.len(), 5, "{:?}", p.ops);

        let mut base = BTreeMap::new();
        base.insert("k".to_owned(), e("old", None));
        base.insert("other".to_owned(), e("o", Some(1)));
        base.insert("kept".to_owned(), e("o", Some(100)));
        let mut view = View::from_entries(base);
        for op in &p.ops {
            view.apply(op);
        }
        let keys: Vec<&str> = view.entries.keys().map(String::as_str).collect();
        // x set again after the purge survives it; other (deadline 1) was purged.
        assert_eq!(keys, ["kept", "x"]);

        let mut later = Pending::default();
        later.push(Op::Clear);
        later.push(Op::Set("z".into(), e("1", None)));
        let merged = p.then(later);
        assert!(matches!(merged.ops[0], Op::Clear));
        assert_eq!(merged.ops.len(), 2);
    }
}
