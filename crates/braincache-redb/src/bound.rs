//! The size bound: usage bookkeeping kept in the file, and eviction inside the write transaction.
//!
//! # Bookkeeping
//! Three tables beside `entries` and `expiry`, written in the same transaction as the entries
//! they describe, by every writer of the file (bounded or not), so a `kill -9` can never leave
//! them out of step with the entries:
//! - `usage`: `"usage"` → the [`Usage`] counters (bytes and entries stored, the small queue's
//!   share, the next queue sequence number, evictions so far, ghost rows, and the bound the last
//!   bounded handle opened the file with, for `braincache inspect`).
//! - `policy`: key → `(queue, frequency, sequence number, stored size)` (see [`POLICY`]).
//! - `queue`: (queue, sequence number) → key: the FIFO order of each queue.
//!
//! A file written before the bookkeeping existed gets it in its first write transaction
//! ([`begin`]), computed from its entries; until then usage is computed on reading it.
//!
//! # Policy: S3-FIFO with lazily folded read hints
//! New keys enter a small FIFO queue (a tenth of the bound); keys evicted from it are kept as
//! *ghosts* (key only); a key set again while it is a ghost goes straight to the main queue.
//! Eviction takes the small queue's head while it holds more than its tenth, else the main
//! queue's: an entry read since it entered (frequency > 0) is moved to the main queue (from the
//! small one) or re-queued with its frequency lowered (in the main one) instead of being
//! evicted. One-time writes thus leave through the small queue without touching the entries
//! read often. Expired entries go before any live one.
//!
//! Reads never write: a hit on a bounded handle records its key in a per-process hint buffer
//! ([`Hints`]), and the writer thread folds the buffer into its next commit (frequency + 1,
//! at most 3). A hint lost in a crash, or dropped because the buffer is full, only makes the
//! policy a little less informed.

use crate::writer::{Tables, remove};
use braincache_core::Timestamp;
use redb::{
    ReadableDatabase, ReadableTable, Table, TableDefinition, TableHandle, WriteTransaction,
};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// `"usage"` → the usage counters.
pub(crate) const USAGE: TableDefinition<&str, &[u8]> = TableDefinition::new("usage");
/// key → (queue, frequency, sequence, size).
pub(crate) const POLICY: TableDefinition<&str, (u8, u8, u64, u64)> = TableDefinition::new("policy");
/// (queue, sequence) → key.
pub(crate) const QUEUE: TableDefinition<(u8, u64), &str> = TableDefinition::new("queue");

/// The bookkeeping tables' names (allowed in a braincache file beside the data tables).
pub(crate) const TABLE_NAMES: [&str; 3] = ["usage", "policy", "queue"];

const USAGE_KEY: &str = "usage";

/// The small (probation) queue.
const SMALL: u8 = 0;
/// The main queue.
const MAIN: u8 = 1;
/// Ghosts: keys recently evicted from the small queue (no entry, size 0).
const GHOST: u8 = 2;

/// Highest frequency a key reaches.
const MAX_FREQ: u8 = 3;

/// The size one entry counts for: its key and its stored bytes (record header and value).
pub(crate) fn entry_size(key: &str, stored: usize) -> u64 {
    (key.len() + stored) as u64
}

/// A bound on the file's entries; `None` fields do not bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Limit {
    pub(crate) max_bytes: Option<u64>,
    pub(crate) max_entries: Option<u64>,
}

impl Limit {
    pub(crate) fn is_bounded(self) -> bool {
        self.max_bytes.is_some() || self.max_entries.is_some()
    }

    fn over(self, u: &Usage) -> bool {
        self.max_bytes.is_some_and(|m| u.bytes > m)
            || self.max_entries.is_some_and(|m| u.entries > m)
    }

    /// Above the level eviction brings the file down to: the bound less 1/64 of it, so that
    /// the evictions of several commits happen in one (their rows are neighbours in the queue
    /// table, and later commits skip eviction altogether).
    fn above_target(self, u: &Usage) -> bool {
        self.max_bytes.is_some_and(|m| u.bytes > m - m / 64)
            || self.max_entries.is_some_and(|m| u.entries > m - m / 64)
    }

    /// True when the small queue holds more than its tenth of the bound.
    fn small_full(self, u: &Usage) -> bool {
        self.max_bytes.is_some_and(|m| u.small_bytes > m / 10)
            || self.max_entries.is_some_and(|m| u.small_entries > m / 10)
    }
}

/// The counters of the `usage` table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes stored (key, record header and value of every entry).
    pub bytes: u64,
    /// Entries stored.
    pub entries: u64,
    /// Entries evicted to stay within a bound, by every process, since the file was created.
    pub evictions: u64,
    /// The byte bound of the last bounded handle that opened the file (0: none).
    pub max_bytes: u64,
    /// The entry bound of the last bounded handle that opened the file (0: none).
    pub max_entries: u64,
    small_bytes: u64,
    small_entries: u64,
    seq: u64,
    ghosts: u64,
}

impl Usage {
    const FIELDS: usize = 9;

    fn encode(&self) -> [u8; 8 * Usage::FIELDS] {
        let words = [
            self.bytes,
            self.entries,
            self.evictions,
            self.max_bytes,
            self.max_entries,
            self.small_bytes,
            self.small_entries,
            self.seq,
            self.ghosts,
        ];
        let mut out = [0; 8 * Usage::FIELDS];
        for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// `None` for a row of the wrong length (damage).
    fn decode(bytes: &[u8]) -> Option<Usage> {
        if bytes.len() < 8 * Usage::FIELDS {
            return None;
        }
        let w = |i: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&bytes[8 * i..8 * i + 8]);
            u64::from_le_bytes(b)
        };
        Some(Usage {
            bytes: w(0),
            entries: w(1),
            evictions: w(2),
            max_bytes: w(3),
            max_entries: w(4),
            small_bytes: w(5),
            small_entries: w(6),
            seq: w(7),
            ghosts: w(8),
        })
    }
}

fn damaged(detail: &str) -> redb::Error {
    redb::Error::Corrupted(format!("braincache usage bookkeeping: {detail}"))
}

/// The bookkeeping tables, open for writing.
struct BookTables<'txn> {
    usage_table: Table<'txn, &'static str, &'static [u8]>,
    policy: Table<'txn, &'static str, (u8, u8, u64, u64)>,
    queue: Table<'txn, (u8, u64), &'static str>,
}

impl<'txn> BookTables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<BookTables<'txn>, redb::Error> {
        Ok(BookTables {
            usage_table: txn.open_table(USAGE)?,
            policy: txn.open_table(POLICY)?,
            queue: txn.open_table(QUEUE)?,
        })
    }
}

/// The bookkeeping of one write transaction.
///
/// A file without it (new, or written before it existed) is not touched until the transaction
/// changes something: then [`enforce`] creates the tables and computes them from the entries,
/// after the batch's requests (which skip the bookkeeping meanwhile). So a transaction that
/// changes nothing creates nothing, as before the bookkeeping existed.
pub(crate) struct Book<'txn> {
    txn: &'txn WriteTransaction,
    tables: Option<BookTables<'txn>>,
    usage: Usage,
    dirty: bool,
    /// The file has no usage row yet.
    missing: bool,
}

impl<'txn> Book<'txn> {
    pub(crate) fn open(txn: &'txn WriteTransaction) -> Result<Book<'txn>, redb::Error> {
        let exists = txn.list_tables()?.any(|t| t.name() == "usage");
        let (tables, usage) = if exists {
            let tables = BookTables::open(txn)?;
            let usage = match tables.usage_table.get(USAGE_KEY)? {
                Some(g) => {
                    Some(Usage::decode(g.value()).ok_or_else(|| damaged("short usage row"))?)
                }
                None => None,
            };
            (Some(tables), usage)
        } else {
            (None, None)
        };
        Ok(Book {
            txn,
            tables,
            missing: usage.is_none(),
            usage: usage.unwrap_or_default(),
            dirty: false,
        })
    }

    /// The tables, created if need be.
    fn t(&mut self) -> Result<&mut BookTables<'txn>, redb::Error> {
        if self.tables.is_none() {
            self.tables = Some(BookTables::open(self.txn)?);
        }
        self.tables
            .as_mut()
            .ok_or_else(|| damaged("bookkeeping tables missing"))
    }

    /// Writes the counters back; the writer calls it before every commit.
    pub(crate) fn save(&mut self) -> Result<(), redb::Error> {
        if self.dirty && !self.missing {
            let row = self.usage.encode();
            self.t()?.usage_table.insert(USAGE_KEY, row.as_slice())?;
            self.dirty = false;
        }
        Ok(())
    }

    fn next_seq(&mut self) -> u64 {
        self.usage.seq += 1;
        self.usage.seq
    }

    fn enqueue(&mut self, key: &str, queue: u8, freq: u8, size: u64) -> Result<(), redb::Error> {
        let seq = self.next_seq();
        let t = self.t()?;
        t.policy.insert(key, (queue, freq, seq, size))?;
        t.queue.insert((queue, seq), key)?;
        Ok(())
    }

    fn account(&mut self, queue: u8, size: u64, add: bool) {
        let u = &mut self.usage;
        let apply = |v: &mut u64, d: u64| {
            *v = if add {
                v.saturating_add(d)
            } else {
                v.saturating_sub(d)
            };
        };
        match queue {
            GHOST => apply(&mut u.ghosts, 1),
            q => {
                apply(&mut u.bytes, size);
                apply(&mut u.entries, 1);
                if q == SMALL {
                    apply(&mut u.small_bytes, size);
                    apply(&mut u.small_entries, 1);
                }
            }
        }
        self.dirty = true;
    }

    /// `key` now holds `size` bytes (a new entry or a replaced one).
    pub(crate) fn on_set(&mut self, key: &str, size: u64) -> Result<(), redb::Error> {
        if self.missing {
            return Ok(());
        }
        let row = self.t()?.policy.get(key)?.map(|g| g.value());
        match row {
            Some((queue, freq, seq, old)) if queue != GHOST => {
                // A replaced value keeps its place and frequency.
                self.account(queue, old, false);
                self.account(queue, size, true);
                self.t()?.policy.insert(key, (queue, freq, seq, size))?;
            }
            Some((_, _, seq, _)) => {
                // Seen lately: it skips the small queue.
                self.t()?.queue.remove((GHOST, seq))?;
                self.account(GHOST, 0, false);
                self.enqueue(key, MAIN, 0, size)?;
                self.account(MAIN, size, true);
            }
            None => {
                self.enqueue(key, SMALL, 0, size)?;
                self.account(SMALL, size, true);
            }
        }
        Ok(())
    }

    /// `key`'s entry is gone (deleted, purged or evicted): drop its row.
    pub(crate) fn on_remove(&mut self, key: &str) -> Result<(), redb::Error> {
        if self.missing {
            return Ok(());
        }
        let row = self.t()?.policy.remove(key)?.map(|g| g.value());
        if let Some((queue, _, seq, size)) = row {
            self.t()?.queue.remove((queue, seq))?;
            self.account(queue, size, false);
        }
        Ok(())
    }

    /// Every entry is gone: empties the policy and queue tables; evictions and the sequence
    /// number carry on.
    pub(crate) fn on_clear(&mut self) -> Result<(), redb::Error> {
        if self.missing {
            return Ok(());
        }
        self.t()?.policy.retain(|_, _| false)?;
        self.t()?.queue.retain(|_, _| false)?;
        self.usage = Usage {
            evictions: self.usage.evictions,
            seq: self.usage.seq,
            max_bytes: self.usage.max_bytes,
            max_entries: self.usage.max_entries,
            ..Usage::default()
        };
        self.dirty = true;
        Ok(())
    }

    /// Folds read hints: each key still stored gains one frequency step.
    pub(crate) fn fold_hints(&mut self, keys: &[String]) -> Result<(), redb::Error> {
        if self.missing {
            return Ok(());
        }
        let t = self.t()?;
        for key in keys {
            let row = t.policy.get(key.as_str())?.map(|g| g.value());
            if let Some((queue, freq, seq, size)) = row
                && queue != GHOST
                && freq < MAX_FREQ
            {
                t.policy
                    .insert(key.as_str(), (queue, freq + 1, seq, size))?;
            }
        }
        Ok(())
    }

    /// Records the bound a handle opened the file with, for `inspect`.
    pub(crate) fn record_limit(&mut self, limit: Limit) {
        let (b, e) = (limit.max_bytes.unwrap_or(0), limit.max_entries.unwrap_or(0));
        if (self.usage.max_bytes, self.usage.max_entries) != (b, e) {
            self.usage.max_bytes = b;
            self.usage.max_entries = e;
            self.dirty = true;
        }
    }

    /// The oldest row of `queue`.
    fn head(&mut self, queue: u8) -> Result<Option<(u64, String)>, redb::Error> {
        let mut range = self.t()?.queue.range((queue, 0)..=(queue, u64::MAX))?;
        match range.next() {
            Some(row) => {
                let (k, v) = row?;
                Ok(Some((k.value().1, v.value().to_owned())))
            }
            None => Ok(None),
        }
    }

    /// Picks the next victim under S3-FIFO, moving entries read since they were queued out of
    /// its way. Returns the key to evict and whether it leaves a ghost.
    fn victim(&mut self, limit: Limit) -> Result<Option<(String, bool)>, redb::Error> {
        // Every step either evicts, moves an entry out of the small queue, or lowers a
        // frequency, so this ends; the cap only guards against damaged bookkeeping.
        for _ in 0..(4 * self.usage.entries + 16) {
            let from_small = self.usage.small_entries > 0
                && (limit.small_full(&self.usage)
                    || self.usage.entries == self.usage.small_entries);
            let queue = if from_small { SMALL } else { MAIN };
            let Some((seq, key)) = self.head(queue)? else {
                return Ok(None);
            };
            let Some((q, freq, _, size)) = self.t()?.policy.get(key.as_str())?.map(|g| g.value())
            else {
                // A queue row without its policy row: drop it.
                self.t()?.queue.remove((queue, seq))?;
                continue;
            };
            if freq == 0 || q != queue {
                return Ok(Some((key, queue == SMALL)));
            }
            self.t()?.queue.remove((queue, seq))?;
            self.account(queue, size, false);
            // Small → main, frequency reset; main → back of main, one step colder.
            let freq = if queue == SMALL { 0 } else { freq - 1 };
            self.enqueue(&key, MAIN, freq, size)?;
            self.account(MAIN, size, true);
        }
        Ok(None)
    }

    /// Keeps at most a quarter as many ghosts as entries (and at least a few). S3-FIFO's paper
    /// keeps as many as the main queue; here each ghost costs two rows in the file, and a
    /// quarter kept the 1 KiB churn example's file at 2.1x its bound instead of 4.25x (redb
    /// grows the file by doubling, and the full ghost list pushed it over a doubling).
    fn trim_ghosts(&mut self) -> Result<(), redb::Error> {
        while self.usage.ghosts > (self.usage.entries / 4).max(16) {
            let Some((seq, key)) = self.head(GHOST)? else {
                self.usage.ghosts = 0;
                self.dirty = true;
                break;
            };
            let t = self.t()?;
            t.queue.remove((GHOST, seq))?;
            t.policy.remove(key.as_str())?;
            self.account(GHOST, 0, false);
        }
        Ok(())
    }
}

/// What [`enforce`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Enforced {
    /// Expired entries removed to make room.
    pub(crate) expired: u64,
    /// Live entries evicted.
    pub(crate) evicted: u64,
}

/// When the file is over `limit`, removes entries until it is 1/64 below it: expired ones first
/// (earliest deadline first), then, if that was not enough to get within the bound, S3-FIFO
/// victims; each through the writer's own removal path (entry, expiry row and bookkeeping
/// together).
pub(crate) fn enforce(
    t: &mut Tables<'_>,
    limit: Limit,
    now: Timestamp,
    changed: bool,
) -> Result<Enforced, redb::Error> {
    let mut done = Enforced::default();
    if t.book.missing {
        if !changed {
            return Ok(done);
        }
        rebuild(t, limit)?;
    }
    if !limit.is_bounded() {
        return Ok(done);
    }
    let now = now.as_unix_nanos();
    if !limit.over(&t.book.usage) {
        return Ok(done);
    }
    while limit.above_target(&t.book.usage) {
        let first = t.expiry.first()?.map(|(k, _)| {
            let (d, key) = k.value();
            (d, key.to_owned())
        });
        let Some((d, key)) = first.filter(|(d, _)| *d <= now) else {
            break;
        };
        if !remove(t, &key)? {
            // A stale row (its entry was damaged or replaced): drop it alone.
            t.expiry.remove((d, key.as_str()))?;
        }
        done.expired += 1;
    }
    // Expired entries are garbage anyway; live ones go only when those were not enough.
    let live_too = limit.over(&t.book.usage);
    while live_too && limit.above_target(&t.book.usage) {
        let Some((key, ghost)) = t.book.victim(limit)? else {
            break;
        };
        if !remove(t, &key)? {
            // Bookkeeping for an entry that is not there: drop the row alone.
            t.book.on_remove(&key)?;
        }
        if ghost {
            t.book.enqueue(&key, GHOST, 0, 0)?;
            t.book.account(GHOST, 0, true);
        }
        done.evicted += 1;
    }
    if done.evicted > 0 {
        t.book.usage.evictions += done.evicted;
        t.book.dirty = true;
        t.book.trim_ghosts()?;
    }
    Ok(done)
}

/// Reads the usage counters of a file; `None` when it has no bookkeeping yet.
pub(crate) fn read_usage(txn: &redb::ReadTransaction) -> Result<Option<Usage>, redb::Error> {
    let table = match txn.open_table(USAGE) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match table.get(USAGE_KEY)? {
        Some(g) => Usage::decode(g.value())
            .map(Some)
            .ok_or_else(|| damaged("short usage row")),
        None => Ok(None),
    }
}

/// Prepares a write transaction's bookkeeping, before its requests: records the handle's
/// bound for `inspect` and folds in the read hints (nothing when the file has no bookkeeping
/// yet: see [`Book`]).
pub(crate) fn begin(t: &mut Tables<'_>, limit: Limit, hints: &[String]) -> Result<(), redb::Error> {
    if t.book.missing {
        return Ok(());
    }
    if limit.is_bounded() {
        t.book.record_limit(limit);
    }
    t.book.fold_hints(hints)
}

/// Computes the bookkeeping of a file that has none from its entries: every entry enters the
/// main queue, in key order.
fn rebuild(t: &mut Tables<'_>, limit: Limit) -> Result<(), redb::Error> {
    t.book.t()?.policy.retain(|_, _| false)?;
    t.book.t()?.queue.retain(|_, _| false)?;
    let old = t.book.usage;
    t.book.usage = Usage {
        evictions: old.evictions,
        seq: old.seq,
        ..Usage::default()
    };
    t.book.missing = false;
    for row in t.entries.iter()? {
        let (k, v) = row?;
        let size = entry_size(k.value(), v.value().len());
        t.book.enqueue(k.value(), MAIN, 0, size)?;
        t.book.account(MAIN, size, true);
    }
    if limit.is_bounded() {
        t.book.record_limit(limit);
    }
    t.book.dirty = true;
    Ok(())
}

/// The usage of a file as of `txn`: its usage row, or, for a file that has none yet, computed
/// from its entries.
fn usage_in(txn: &redb::ReadTransaction) -> Result<Usage, redb::Error> {
    if let Some(u) = read_usage(txn)? {
        return Ok(u);
    }
    let mut u = Usage::default();
    let entries = match txn.open_table(crate::format::ENTRIES) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(u),
        Err(e) => return Err(e.into()),
    };
    for row in entries.iter()? {
        let (k, v) = row?;
        u.bytes += entry_size(k.value(), v.value().len());
        u.entries += 1;
    }
    Ok(u)
}

/// Read hints of one process: keys read since the writer's last commit.
///
/// A read costs a hash and one atomic load when its key was hinted already (a hot key); else
/// one atomic store and a push under a mutex. At most [`Hints::CAP`] keys wait; more are dropped,
/// and while the list is full a read costs one atomic load (no hash, no lock).
pub(crate) struct Hints {
    seen: Box<[AtomicU64]>,
    keys: Mutex<Vec<String>>,
    /// Set when `keys` holds [`Hints::CAP`] keys, cleared when the writer takes them.
    full: AtomicBool,
    hasher: RandomState,
}

impl Hints {
    const SLOTS: usize = 4096;
    const CAP: usize = 8192;

    pub(crate) fn new() -> Hints {
        Hints {
            seen: (0..Hints::SLOTS).map(|_| AtomicU64::new(0)).collect(),
            keys: Mutex::new(Vec::new()),
            full: AtomicBool::new(false),
            hasher: RandomState::new(),
        }
    }

    /// Records a read of `key`.
    #[inline]
    pub(crate) fn hint(&self, key: &str) {
        // A full list drops the hint anyway: skip the hash and the lock (and the call).
        if !self.full.load(Ordering::Relaxed) {
            self.record(key);
        }
    }

    /// [`hint`](Self::hint) while the list has room.
    fn record(&self, key: &str) {
        let h = self.hasher.hash_one(key) | 1;
        let slot = &self.seen[(h as usize) % Hints::SLOTS];
        if slot.load(Ordering::Relaxed) == h {
            return;
        }
        slot.store(h, Ordering::Relaxed);
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.len() < Hints::CAP {
            keys.push(key.to_owned());
        }
        if keys.len() >= Hints::CAP {
            self.full.store(true, Ordering::Relaxed);
        }
    }

    /// Takes the waiting hints (the writer thread, before a commit).
    pub(crate) fn take(&self) -> Vec<String> {
        let keys = {
            let mut guard = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            // Cleared under the lock, so a `hint` that sets it again saw the emptied list.
            self.full.store(false, Ordering::Relaxed);
            std::mem::take(&mut *guard)
        };
        if !keys.is_empty() {
            for s in &self.seen {
                s.store(0, Ordering::Relaxed);
            }
        }
        keys
    }
}

/// The bound state of one handle, shared by its readers and its writer thread.
pub(crate) struct Bound {
    pub(crate) limit: Limit,
    pub(crate) hints: Hints,
    /// Entries this handle's commits evicted.
    pub(crate) evictions: AtomicU64,
}

impl Bound {
    pub(crate) fn new(limit: Limit) -> Bound {
        Bound {
            limit,
            hints: Hints::new(),
            evictions: AtomicU64::new(0),
        }
    }

    /// Records a read hit (nothing when unbounded).
    #[inline]
    pub(crate) fn read(&self, key: &str) {
        if self.limit.is_bounded() {
            self.hints.hint(key);
        }
    }
}

/// Reads the usage of the file behind `db` (a read transaction).
pub(crate) fn usage_of(db: &impl ReadableDatabase) -> Result<Usage, redb::Error> {
    usage_in(&db.begin_read()?)
}

/// Lines for `braincache inspect` about the bound of the redb file at `path`: the bound last
/// recorded, the usage and the evictions by every process, as `(label, value)` pairs. Reads
/// the file read-only, as [`crate::RedbBackend::read_entries`] does.
///
/// ```
/// use braincache_core::{Backend, Record};
/// use braincache_redb::{RedbBackend, usage_report};
///
/// # fn main() -> braincache_core::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("c.redb");
/// let b = RedbBackend::builder(&path).max_entries(1).build()?;
/// b.set("a", Record::new(vec![1], None))?;
/// b.set("b", Record::new(vec![2], None))?;
/// drop(b);
/// let lines = usage_report(&path)?;
/// assert!(lines.contains(&("evictions", "1".to_owned())));
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// As [`crate::RedbBackend::read_usage`].
pub fn usage_report(
    path: impl AsRef<std::path::Path>,
) -> braincache_core::Result<Vec<(&'static str, String)>> {
    let Some(u) = crate::RedbBackend::read_usage(path)? else {
        return Ok(vec![(
            "bound",
            "no usage bookkeeping yet (computed by the next write)".to_owned(),
        )]);
    };
    let mut bound = Vec::new();
    if u.max_bytes > 0 {
        bound.push(format!("{} bytes", u.max_bytes));
    }
    if u.max_entries > 0 {
        bound.push(format!("{} entries", u.max_entries));
    }
    let bound = if bound.is_empty() {
        "none recorded (unbounded)".to_owned()
    } else {
        format!("{} (as last opened)", bound.join(", "))
    };
    let percent = (u.max_bytes > 0).then(|| {
        format!(
            " ({:.1} % of the bound)",
            100.0 * u.bytes as f64 / u.max_bytes as f64
        )
    });
    Ok(vec![
        ("bound", bound),
        (
            "usage",
            format!(
                "{} bytes in {} entries{}",
                u.bytes,
                u.entries,
                percent.unwrap_or_default()
            ),
        ),
        ("evictions", u.evictions.to_string()),
    ])
}
