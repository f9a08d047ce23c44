//! Cheap reads: one read snapshot reused for as long as no commit happened since.
//!
//! In `MultiWriter` mode redb's `begin_read` takes a byte-range lock on the header, reads the
//! header from the file and pins the snapshot with another byte-range lock: about 3 µs, against
//! about 260 ns for a lookup in an open table. So a `get` does not begin a read transaction of its
//! own: it reuses the last snapshot while a *commit stamp* says that nobody has committed since
//! that snapshot began, until the writer thread finds it older than `max_age` and drops it (a
//! snapshot pins the pages it reads, in every process, so writers cannot reuse them while it
//! lives). The age is not checked on the read path: a clock read costs about as much as the
//! stamp check, and the writer thread checks after every batch and every idle tick (at most
//! `max_age` apart, 1 s at the most), so a snapshot lives less than about twice `max_age`.
//!
//! # Where the stamp lives
//! - `MultiWriter` (several processes): a sidecar file `<db>.seq`. After each durable commit,
//!   and before it acknowledges anyone, a writer overwrites the file's first 24 bytes with a new
//!   stamp: its process nonce, its own commit counter and a check word. Every process maps those
//!   24 bytes shared and reads them with atomic loads, a few nanoseconds and no system call
//!   ([`crate::stamp`]; the `pread` this replaced cost about 0.3 µs, a quarter of a get). redb
//!   4.6 has no public API that says "a commit happened" more cheaply: its own check is the
//!   header read that makes `begin_read` cost what it costs.
//! - `ExclusiveWriter` (one process): an in-process atomic counter, bumped by the writer thread.
//!
//! # Why an acknowledged write is always seen
//! Let W be a commit whose `set` was acknowledged before a `get` G began. The writer made W
//! durable, *then* wrote W's stamp `s_W`, *then* acknowledged. G reads the stamp *first*, and
//! only then decides.
//! - If G reads a stamp other than the cached snapshot's, it begins a new read transaction, after
//!   W was committed: the snapshot holds W.
//! - If G reads the cached snapshot's stamp `s_C`: the cached snapshot S was begun after a read
//!   that returned `s_C` too. Stamps are unique (a random 64-bit nonce per process and a counter
//!   that never repeats within it), so both reads saw the same write X of the stamp file. `s_W`
//!   was written before G read, so X is `s_W` or a write that came after it in the file's
//!   modification order; either way `s_W`'s write had taken effect before S's read of X, and
//!   W's commit before that. S began after that read, so S holds W.
//!
//! A plain counter that writers increment would not do: two processes can both read N and both
//! write N + 1, and a reader that cached N + 1 after the first would miss the second commit.
//! A torn read (two writers' bytes mixed) fails the check word and counts as "unknown": the get
//! begins a fresh transaction and caches nothing. Writing a stamp that was never written before
//! can only make readers refresh, so a process may write one at any time (it does at open).
//!
//! The argument needs every process that writes the file to write stamps, that is, to go through
//! `RedbBackend`, and the stamp file to stay in place while the cache is in use.

use crate::format::{ENTRIES, EXPIRY};
use crate::stamp::SharedStamp;
use crate::writer::Db;
use arc_swap::ArcSwapOption;
use redb::{ReadOnlyTable, ReadableDatabase};
use std::hash::BuildHasher;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

/// The tables of one read snapshot.
pub(crate) struct Snapshot {
    /// The stamp read before the snapshot began, as the words that held it; `None` when they
    /// held no stamp (a torn read).
    stamp: Option<[u64; 3]>,
    /// The generation of the database it reads (see [`Db`]): after a reopen, snapshots of the
    /// old database are not reused.
    generation: u64,
    born: Instant,
    pub(crate) entries: ReadOnlyTable<&'static str, &'static [u8]>,
    pub(crate) expiry: ReadOnlyTable<(u64, &'static str), ()>,
    /// Declared last, so that it drops after the tables, which end the read transaction: a
    /// snapshot counts as live until nothing of its transaction is left.
    _live: Live,
}

/// One live [`Snapshot`] in its cache's count ([`SnapshotCache::release_and_wait`]).
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(count: &Arc<AtomicUsize>) -> Live {
        count.fetch_add(1, Ordering::Relaxed);
        Live(Arc::clone(count))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // Release: what the snapshot did (its transaction ended) happens before a close that
        // reads the count at zero.
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// Identifies one commit, for as long as any snapshot can live.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Stamp {
    nonce: u64,
    counter: u64,
}

impl Stamp {
    fn check(self) -> u64 {
        // Any fixed mixing function does: it only has to make a mix of two stamps' bytes fail.
        mix(self.nonce ^ mix(self.counter ^ 0x6272_6169_6e63_6163))
    }

    /// The stamp as the three words of the shared map.
    fn words(self) -> [u64; 3] {
        [self.nonce, self.counter, self.check()]
    }

    /// The stamp the three words hold, if their check word matches.
    fn from_words([nonce, counter, check]: [u64; 3]) -> Option<Stamp> {
        let s = Stamp { nonce, counter };
        (s.check() == check).then_some(s)
    }
}

/// splitmix64's finalizer.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Where commits are announced.
enum Signal {
    /// Only this process writes: a counter.
    Local(AtomicU64),
    /// Several processes write: the sidecar file.
    File {
        stamp: SharedStamp,
        path: PathBuf,
        nonce: u64,
        /// This process's commits; only the writer thread bumps it (the lock is uncontended).
        counter: Mutex<u64>,
    },
}

/// The path of the commit-stamp file of the database at `db`: `<db>.seq`.
pub(crate) fn stamp_path(db: &Path) -> PathBuf {
    braincache_core::sidecar(db, ".seq")
}

/// Shares read snapshots among the threads of one backend.
pub(crate) struct SnapshotCache {
    signal: Signal,
    max_age: std::time::Duration,
    /// The snapshot reads reuse. An `ArcSwapOption` rather than a lock around an `Arc`: a read
    /// borrows it with two atomic instructions on a slot of its own thread, where a lock and a
    /// reference count took four on lines every reader shares; and a writer that replaces it
    /// never waits for a read (the value a read lends is used while the snapshot is borrowed).
    cached: ArcSwapOption<Snapshot>,
    /// How many snapshots are alive: cached, borrowed by a read, or both. Changed only when one
    /// begins or ends (never by a read that reuses one), and read only by `close`, which waits
    /// for it to reach zero ([`release_and_wait`](Self::release_and_wait)).
    live: Arc<AtomicUsize>,
}

/// A snapshot borrowed for one read: the reused one, or one begun for this read.
pub(crate) struct SnapshotRef(SnapshotGuard);

enum SnapshotGuard {
    Cached(arc_swap::Guard<Option<Arc<Snapshot>>>),
    Fresh(Arc<Snapshot>),
}

impl std::ops::Deref for SnapshotRef {
    type Target = Snapshot;
    fn deref(&self) -> &Snapshot {
        match &self.0 {
            SnapshotGuard::Fresh(s) => s,
            // Invariant: only a guard holding `Some` is wrapped (`SnapshotCache::reusable_at`).
            SnapshotGuard::Cached(g) => g.as_deref().expect("a cached snapshot"),
        }
    }
}

#[cfg(test)]
impl SnapshotRef {
    /// The snapshot as an `Arc`, for tests that compare snapshots.
    pub(crate) fn into_arc(self) -> Arc<Snapshot> {
        match self.0 {
            SnapshotGuard::Fresh(s) => s,
            SnapshotGuard::Cached(g) => arc_swap::Guard::into_inner(g).expect("a cached snapshot"),
        }
    }
}

impl SnapshotCache {
    /// A reader for a database that only this process writes.
    pub(crate) fn local(max_age: std::time::Duration) -> SnapshotCache {
        SnapshotCache {
            signal: Signal::Local(AtomicU64::new(0)),
            max_age,
            cached: ArcSwapOption::empty(),
            live: Arc::default(),
        }
    }

    /// A reader for a database that several processes write: opens (or creates) the stamp file
    /// beside it.
    pub(crate) fn shared(db: &Path, max_age: std::time::Duration) -> io::Result<SnapshotCache> {
        let path = stamp_path(db);
        let stamp = SharedStamp::open(&path)?;
        let nonce = std::collections::hash_map::RandomState::new().hash_one((
            std::process::id(),
            SystemTime::now(),
            Instant::now(),
        ));
        let reader = SnapshotCache {
            signal: Signal::File {
                stamp,
                path,
                nonce,
                counter: Mutex::new(0),
            },
            max_age,
            cached: ArcSwapOption::empty(),
            live: Arc::default(),
        };
        // A file that never held a stamp would make every read begin a fresh transaction until
        // the first commit; a fresh stamp is always safe to write (see the module docs).
        if reader.signal.current().is_none() {
            reader.signal.announce()?;
        }
        Ok(reader)
    }

    /// The path of the stamp file, in multi-process mode.
    pub(crate) fn stamp_file(&self) -> Option<&Path> {
        match &self.signal {
            Signal::File { path, .. } => Some(path),
            Signal::Local(_) => None,
        }
    }

    /// The cached snapshot when it holds every commit announced before this call; `None` when
    /// a new one must begin (none is cached, or a commit was announced since it began).
    #[inline]
    pub(crate) fn reusable(&self, db: &Db) -> Option<SnapshotRef> {
        // The stamp is read first, before anything is decided: see the module docs.
        self.reusable_at(self.signal.words(), db)
    }

    /// The cached snapshot when it began at the stamp `words` hold, on the database open now.
    /// Its words passed the check word when it began, so words equal to them are the same stamp
    /// and the check need not be computed again.
    #[inline]
    fn reusable_at(&self, words: [u64; 3], db: &Db) -> Option<SnapshotRef> {
        let cached = self.cached.load();
        let reusable = cached
            .as_deref()
            .is_some_and(|s| s.stamp == Some(words) && s.generation == db.generation());
        reusable.then(|| SnapshotRef(SnapshotGuard::Cached(cached)))
    }

    /// A snapshot that holds every commit announced before this call.
    /// A database whose I/O error latched it (see [`Db`]) gives redb's `PreviousIo` here, and
    /// so does a database that could not be reopened after one.
    pub(crate) fn snapshot(&self, db: &Db) -> Result<SnapshotRef, redb::Error> {
        // The stamp is read first, before anything is decided: see the module docs.
        let words = self.signal.words();
        if let Some(snap) = self.reusable_at(words, db) {
            return Ok(snap);
        }
        let stamp = self.signal.valid(words);
        let born = Instant::now();
        let (database, generation) = db.current().ok_or(redb::Error::PreviousIo)?;
        let txn = database.begin_read()?;
        let snap = Arc::new(Snapshot {
            stamp,
            generation,
            born,
            entries: txn.open_table(ENTRIES)?,
            expiry: txn.open_table(EXPIRY)?,
            _live: Live::new(&self.live),
        });
        if stamp.is_some() && !self.max_age.is_zero() {
            // Replacing a newer snapshot with this one is harmless: it only costs a refresh.
            // Dropped here, not by the swap: ending a read transaction takes system calls.
            let old = self.cached.swap(Some(Arc::clone(&snap)));
            drop(old);
        }
        Ok(SnapshotRef(SnapshotGuard::Fresh(snap)))
    }

    /// Announces a durable commit of this process. The writer thread calls it after the commit
    /// and before acknowledging anyone.
    pub(crate) fn committed(&self) -> io::Result<()> {
        let result = self.signal.announce();
        // The cached snapshot predates the commit: release its pages now.
        self.release();
        result
    }

    /// Drops the cached snapshot if it is older than the maximum age, so that an idle process
    /// does not keep old pages pinned.
    pub(crate) fn release_if_stale(&self) {
        let stale = self
            .cached
            .load()
            .as_ref()
            .is_some_and(|s| s.born.elapsed() >= self.max_age);
        if stale {
            self.release();
        }
    }

    /// Drops the cached snapshot (reads that borrowed it keep it until they end).
    pub(crate) fn release(&self) {
        let old = self.cached.swap(None);
        drop(old);
    }

    /// Drops the cached snapshot and waits until no snapshot is left, so that every read
    /// transaction of the database has ended when this returns
    /// ([`RedbBackend::close`](crate::RedbBackend::close), before the database closes).
    ///
    /// Reads that reuse the cached snapshot take no lock that `close` could wait for, and the
    /// snapshot such a read borrowed may have left the cache before `close` began (a commit, its
    /// age or a reopen released it): so `close` waits for the count of live snapshots, not for
    /// the one cached now. Each read ends in microseconds, or as long as the caller's closure
    /// runs. The caller makes sure no snapshot begins meanwhile: the writer thread has stopped,
    /// and the backend is marked closed, so that the locked path begins none; reads that reuse
    /// the cached snapshot never begin one.
    pub(crate) fn release_and_wait(&self) {
        self.release();
        for round in 0u32.. {
            // Acquire: pairs with the release in `Live::drop`.
            if self.live.load(Ordering::Acquire) == 0 {
                return;
            }
            if round < 100 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
        }
    }
}

impl Signal {
    /// The words the stamp is read from now: the shared map's, or the local counter (which
    /// needs no check word: nothing tears it).
    fn words(&self) -> [u64; 3] {
        match self {
            Signal::Local(n) => [0, n.load(Ordering::Acquire), 0],
            Signal::File { stamp, .. } => stamp.load(),
        }
    }

    /// `words` when they hold a stamp, `None` for a torn read of the shared map (its check word
    /// does not match).
    fn valid(&self, words: [u64; 3]) -> Option<[u64; 3]> {
        match self {
            Signal::Local(_) => Some(words),
            Signal::File { .. } => Stamp::from_words(words).map(|_| words),
        }
    }

    /// The stamp of the shared map now (`None` when it holds none).
    fn current(&self) -> Option<Stamp> {
        Stamp::from_words(self.words())
    }

    fn announce(&self) -> io::Result<()> {
        match self {
            Signal::Local(n) => {
                n.fetch_add(1, Ordering::Release);
                Ok(())
            }
            Signal::File {
                stamp: shared,
                nonce,
                counter,
                ..
            } => {
                let mut c = counter.lock().unwrap_or_else(PoisonError::into_inner);
                *c += 1;
                let stamp = Stamp {
                    nonce: *nonce,
                    counter: *c,
                };
                shared.store(stamp.words());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_mixed_bytes_are_rejected() {
        let a = Stamp {
            nonce: 0x1111_2222_3333_4444,
            counter: 255,
        };
        let b = Stamp {
            nonce: 0x1111_2222_3333_4444,
            counter: 256,
        };
        assert_eq!(Stamp::from_words(a.words()), Some(a));
        assert_eq!(Stamp::from_words(b.words()), Some(b));
        // Every mix of a's and b's words (a read racing two writers) fails the check.
        let (wa, wb) = (a.words(), b.words());
        for pick in 0..8u8 {
            let mixed: [u64; 3] =
                std::array::from_fn(|i| if pick & (1 << i) == 0 { wa[i] } else { wb[i] });
            let got = Stamp::from_words(mixed);
            assert!(got.is_none() || got == Some(a) || got == Some(b), "{pick}");
        }
        // A file that never held a stamp (zeros) holds none.
        assert_eq!(Stamp::from_words([0; 3]), None);
    }
}
