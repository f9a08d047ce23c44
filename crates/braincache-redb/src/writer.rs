//! The writer thread: group commit.
//!
//! Every write of a process goes through one thread, over a crossbeam channel. The thread takes
//! the first request, adds whatever else is queued (up to the batch limits, waiting up to the
//! group-commit wait, and no longer than the previous commit took, for as many requests as the
//! previous batch held), applies them all in one
//! write transaction, commits it durably, announces the commit (see [`crate::reader`]), and only
//! then answers each caller. In multi-writer mode a durable commit costs about the same for 8
//! writes as for 1, so this is where write throughput comes from.
//!
//! **Failures.** When a batch fails (one request is refused, or the commit fails), the
//! transaction is dropped, which aborts it, and each request of the batch is retried alone in its
//! own transaction, so each caller gets its own result and one bad request fails no other.
//! An I/O error (a full disk) latches redb's `Database`; the thread then opens the file again
//! before it answers and before its next commit (see [`Db`]), so the handle heals by itself.

use crate::aio::Reply;
use crate::errors;
use crate::format::{ENTRIES, EXPIRY, encode_entry, split_entry};
use crate::reader::SnapshotCache;
use braincache_core::{Error, Operation, Record, Result, Timestamp, Worker};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use redb::{Database, Durability, ReadableTable, Table, WriteTransaction};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// The open database and what the writer thread and the readers share about it: the snapshot
/// cache, the commit count, the bound, how to reopen the file.
pub(crate) struct Engine {
    // Declared before `db`: cached snapshots end before the database closes.
    pub(crate) reader: SnapshotCache,
    pub(crate) db: Db,
    pub(crate) path: PathBuf,
    /// Durable commits made by this process's writer thread.
    pub(crate) commits: AtomicU64,
    /// The size bound, read hints and evictions (see [`crate::bound`]).
    pub(crate) bound: crate::bound::Bound,
    /// Opens the database file again, as the backend's builder opened it.
    pub(crate) reopen: Box<dyn Fn() -> Result<Database> + Send + Sync>,
    /// redb `ExclusiveWriter` mode: the old database must close before the file reopens.
    pub(crate) single_process: bool,
}

/// The open database, replaced by a fresh one after an I/O error.
///
/// redb latches the first I/O error of a `Database` (a commit that found the disk full, say):
/// every later call on it fails with "Previous I/O error occurred", reads included, until it is
/// closed and opened again. The last durable commit is intact in the file (redb's commit is
/// atomic), so the writer thread, which alone replaces the database, opens the file again
/// ([`heal`]) and carries on; reads move to the new database at their next snapshot.
///
/// Databases are closed inside `catch_unwind`: redb's `Database::drop` makes a final commit,
/// which panics on a file damaged outside redb (found by the `open_redb_file` fuzz target), and
/// that panic must not reach the thread that drops the last handle.
pub(crate) struct Db {
    /// `None` only while a single-process reopen is under way or after it failed.
    slot: RwLock<Option<Arc<Database>>>,
    /// Bumped by every reopen; a snapshot of an older database is never reused.
    generation: AtomicU64,
    /// An I/O error was met: the database may be latched and is reopened before its next use.
    poisoned: AtomicBool,
}

impl Db {
    pub(crate) fn new(db: Database) -> Db {
        Db {
            slot: RwLock::new(Some(Arc::new(db))),
            generation: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// The database now open and its generation; `None` when a reopen failed.
    pub(crate) fn current(&self) -> Option<(Arc<Database>, u64)> {
        let slot = self.slot.read().unwrap_or_else(PoisonError::into_inner);
        // Read under the lock, which a reopen holds while it swaps and bumps.
        let generation = self.generation.load(Ordering::Acquire);
        slot.as_ref().map(|db| (Arc::clone(db), generation))
    }

    /// The generation of the database now open.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Closes the database now ([`RedbBackend::close`](crate::RedbBackend::close), once no
    /// read holds a snapshot of it); later reads find none.
    pub(crate) fn close_now(&self) {
        let db = self
            .slot
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        close(db);
    }

    /// Marks the database for a reopen before its next use: `e` latched it, or may have.
    pub(crate) fn note(&self, e: &redb::Error) {
        if latches(e) {
            self.poisoned.store(true, Ordering::Release);
        }
    }

    fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    fn database(&self) -> std::result::Result<Arc<Database>, redb::Error> {
        self.current()
            .map(|(db, _)| db)
            .ok_or(redb::Error::PreviousIo)
    }

    /// A read transaction on the database now open (tests).
    #[cfg(test)]
    pub(crate) fn begin_read(&self) -> std::result::Result<redb::ReadTransaction, redb::Error> {
        Ok(redb::ReadableDatabase::begin_read(&*self.database()?)?)
    }

    /// A write transaction on the database now open (tests).
    #[cfg(test)]
    pub(crate) fn begin_write(&self) -> std::result::Result<WriteTransaction, redb::Error> {
        Ok(self.database()?.begin_write()?)
    }
}

/// True for the errors after which redb fails every later call on the same `Database`: an I/O
/// error, or redb's report of an earlier one.
pub(crate) fn latches(e: &redb::Error) -> bool {
    matches!(e, redb::Error::Io(_) | redb::Error::PreviousIo)
}

/// Closes `db`, catching a panic in redb's final commit (see [`Db`]).
fn close(db: Option<Arc<Database>>) {
    if let Some(db) = db {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(db)));
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let slot = self.slot.get_mut().unwrap_or_else(PoisonError::into_inner);
        close(slot.take());
    }
}

/// Reopens the database when an I/O error may have latched it; the writer thread calls it
/// before it uses the database. In multi-process mode the new database opens beside the old
/// one, so reads never find none; in single-process mode redb refuses a second open, so the old
/// one closes first and reads wait for the reopen (a few milliseconds). On failure the old
/// database (multi-process) or none (single-process) stays, still marked, and the next request
/// tries again; the error is the open's (a full disk is still [`Error::is_storage_full`]).
fn heal(shared: &Engine) -> Result<()> {
    let db = &shared.db;
    if !db.is_poisoned() {
        return Ok(());
    }
    let mut slot = db.slot.write().unwrap_or_else(PoisonError::into_inner);
    // The cached snapshot belongs to the old database (and, single-process, keeps it open).
    shared.reader.release();
    if shared.single_process {
        close(slot.take());
    }
    let mut tries = 0;
    let fresh = loop {
        match (shared.reopen)() {
            Ok(fresh) => break fresh,
            // A read that began on the old database still holds it open for a moment.
            Err(e) if shared.single_process && tries < 100 && already_open(&e) => {
                tries += 1;
                shared.reader.release();
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e),
        }
    };
    let old = slot.replace(Arc::new(fresh));
    db.generation.fetch_add(1, Ordering::AcqRel);
    db.poisoned.store(false, Ordering::Release);
    drop(slot);
    close(old);
    Ok(())
}

/// True for redb's refusal to open a file this process still has open in single-process mode.
fn already_open(e: &Error) -> bool {
    matches!(e, Error::Backend { source, .. }
        if source.downcast_ref::<redb::Error>().is_some_and(|e| matches!(e, redb::Error::DatabaseAlreadyOpen)))
}

/// The error for a request that could not run because the database could not be reopened
/// after an I/O error: the open's cause, with its I/O kind kept (so a full disk stays
/// [`Error::is_storage_full`]).
fn reopen_error(shared: &Engine, op: &Command, e: &Error) -> Error {
    let what = format!(
        "an earlier I/O error closed the database, and opening it again failed (the next call \
         tries again): {e}"
    );
    let err = match e.io_error() {
        Some(io) => Error::io(
            op.operation(),
            &shared.path,
            std::io::Error::new(io.kind(), what),
        ),
        None => {
            Error::backend(op.operation(), errors::BACKEND, op.key(), what).with_path(&shared.path)
        }
    };
    match op.key() {
        Some(k) => err.with_key(k),
        None => err,
    }
}

/// How many requests and bytes one commit takes, and how long it waits for company.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_requests: usize,
    pub(crate) max_bytes: usize,
    pub(crate) wait: Duration,
    /// How often an idle writer releases a stale read snapshot.
    pub(crate) tick: Duration,
}

/// One write request.
pub(crate) enum Command {
    Set(String, Record),
    SetMany(Vec<(String, Record)>),
    Delete(String),
    DeleteMany(Vec<String>),
    Clear,
    Purge(Timestamp),
    /// Nothing to write: a read met a latched database and asks for it to be reopened.
    Reopen(Operation),
}

impl Command {
    pub(crate) fn operation(&self) -> Operation {
        match self {
            Command::Set(..) | Command::SetMany(_) => Operation::Set,
            Command::Delete(_) | Command::DeleteMany(_) => Operation::Delete,
            Command::Clear => Operation::Clear,
            Command::Purge(_) => Operation::Purge,
            Command::Reopen(op) => *op,
        }
    }

    fn key(&self) -> Option<&str> {
        match self {
            Command::Set(k, _) | Command::Delete(k) => Some(k),
            _ => None,
        }
    }

    /// Roughly the bytes the request writes, for the batch limit.
    fn size(&self) -> usize {
        match self {
            Command::Set(k, r) => k.len() + r.value.len() + 16,
            Command::SetMany(v) => v.iter().map(|(k, r)| k.len() + r.value.len() + 16).sum(),
            Command::Delete(k) => k.len() + 16,
            Command::DeleteMany(v) => v.iter().map(|k| k.len() + 16).sum(),
            Command::Clear | Command::Purge(_) | Command::Reopen(_) => 16,
        }
    }
}

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Unit,
    Found(bool),
    Count(usize),
}

struct Request {
    op: Command,
    reply: Reply,
}

/// The handle on the writer thread. Dropping it lets the thread finish what is queued, then
/// joins it.
pub(crate) struct Writer {
    tx: Option<Sender<Request>>,
    thread: Option<Worker>,
}

impl Writer {
    pub(crate) fn spawn(shared: Arc<Engine>, limits: Limits) -> std::io::Result<Writer> {
        let (tx, rx) = crossbeam_channel::unbounded();
        // Closing the channel (dropping `tx`, below) is what stops the thread, once it has
        // served what is queued: the worker's own stop action has nothing to do.
        let thread = Worker::spawn(
            "braincache-redb-writer",
            move || run(&shared, &rx, limits),
            || {},
        )?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues `op` and waits until it is durable (or failed).
    pub(crate) fn submit(&self, op: Command) -> Result<Answer> {
        let operation = op.operation();
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.enqueue(op, Reply::Blocking(reply))?;
        // A disconnect here means the thread ended without answering (it panicked).
        answer.recv().map_err(|_| errors::closed(operation))?
    }

    /// Queues `op`; its answer goes to `reply` once it is durable (or failed).
    pub(crate) fn enqueue(&self, op: Command, reply: Reply) -> Result<()> {
        let operation = op.operation();
        let tx = self.tx.as_ref().ok_or_else(|| errors::closed(operation))?;
        tx.send(Request { op, reply })
            .map_err(|_| errors::closed(operation))
    }
}

/// Queues requests without waiting for their answers (write-behind, see [`crate::overlay`]).
/// Holding one keeps the writer thread alive: drop it before the [`Writer`].
#[derive(Clone)]
pub(crate) struct Queue(Sender<Request>);

impl Queue {
    /// Queues `op`; its answer arrives on the returned channel once it is durable (or failed).
    pub(crate) fn send(&self, op: Command) -> Result<Receiver<Result<Answer>>> {
        let operation = op.operation();
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.0
            .send(Request {
                op,
                reply: crate::aio::Reply::Blocking(reply),
            })
            .map_err(|_| errors::closed(operation))?;
        Ok(answer)
    }
}

impl Writer {
    /// A handle that queues requests without waiting; `None` once the writer is stopping.
    pub(crate) fn queue(&self) -> Option<Queue> {
        self.tx.clone().map(Queue)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has served what is queued.
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            thread.stop();
        }
    }
}

fn run(shared: &Engine, rx: &Receiver<Request>, limits: Limits) {
    // How many requests the next batch waits for: the requests that were queued when the
    // previous commit ended plus the callers it answered, since callers that write in a loop
    // come back shortly after their answer. Counting both keeps two groups of callers from
    // settling into alternate batches. A batch waits at most `limits.wait`, never longer than
    // the previous commit took (a longer wait would cost more than the commit it saves), and not
    // at all right after a wait that ran out (callers that do other work between writes do not
    // come back in time, and should not pay for a wait on every write). It also stops once no
    // request has come for an eighth of the previous commit's time: the callers that were about
    // to come are in, and a straggler (a caller the scheduler left waiting for a core) would
    // hold every other caller's answer. With a core taken by another process, 8 writer threads
    // got 20-30 % more sets per second this way (3.3-3.6x the one-commit-per-set baseline ->
    // 3.9-4.4x).
    let mut target = 1;
    let mut may_wait = false;
    let mut last_commit = Duration::ZERO;
    loop {
        let first = match rx.recv_timeout(limits.tick) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                shared.reader.release_if_stale();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let wait = if may_wait {
            limits.wait.min(last_commit)
        } else {
            Duration::ZERO
        };
        let deadline = Instant::now() + wait;
        let gap = last_commit / 8;
        let mut bytes = first.op.size();
        let mut batch = vec![first];
        let mut waited_out = false;
        while batch.len() < limits.max_requests && bytes < limits.max_bytes {
            let next = match rx.try_recv() {
                Ok(r) => r,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    if batch.len() >= target || wait.is_zero() {
                        break;
                    }
                    let until = deadline.min(Instant::now() + gap);
                    match rx.recv_deadline(until) {
                        Ok(r) => r,
                        Err(_) => {
                            // Only a wait that ran to its end says the callers are not coming
                            // back at once; a gap says the burst is over.
                            waited_out = until == deadline;
                            break;
                        }
                    }
                }
            };
            bytes += next.op.size();
            batch.push(next);
        }
        let answered = batch.len();
        let started = Instant::now();
        let queued = serve(shared, batch, rx);
        // Requests that commit nothing (no-op deletes, purges) keep the idle tick from coming:
        // the read snapshot's age is checked here too (see `crate::reader`).
        shared.reader.release_if_stale();
        last_commit = started.elapsed();
        target = (queued + answered).min(limits.max_requests);
        may_wait = !waited_out;
    }
}

/// Commits `batch` and answers every request in it. Returns how many requests were queued when
/// the commit ended, before the answers went out (callers answered may come back at once).
fn serve(shared: &Engine, batch: Vec<Request>, rx: &Receiver<Request>) -> usize {
    if let Err(e) = heal(shared) {
        let queued = rx.len();
        for req in batch {
            req.reply.send(Err(reopen_error(shared, &req.op, &e)));
        }
        return queued;
    }
    let ops: Vec<&Command> = batch.iter().map(|r| &r.op).collect();
    match guarded_commit(shared, &ops) {
        Ok(Committed { done, changed }) => {
            let announced = if changed { announce(shared) } else { Ok(()) };
            let queued = rx.len();
            for (req, d) in batch.into_iter().zip(done) {
                let answer = match &announced {
                    Ok(()) => Ok(d),
                    Err(e) => Err(announce_error(shared, &req.op, e)),
                };
                req.reply.send(answer);
            }
            queued
        }
        Err(e) if batch.len() == 1 => {
            // Reopen at once after an I/O error, so that reads made after this answer work
            // (a failed reopen is tried again by the next request).
            let _ = heal(shared);
            let queued = rx.len();
            if let Some(req) = batch.into_iter().next() {
                req.reply.send(Err(e));
            }
            queued
        }
        Err(_) => {
            // Retry one by one, so that each caller gets its own result.
            for req in batch {
                // The batch's failure may have latched the database: each retry first reopens it.
                if let Err(e) = heal(shared) {
                    req.reply.send(Err(reopen_error(shared, &req.op, &e)));
                    continue;
                }
                let answer = guarded_commit(shared, &[&req.op]).and_then(|mut c| {
                    if c.changed {
                        announce(shared).map_err(|e| announce_error(shared, &req.op, &e))?;
                    }
                    Ok(c.done.pop().unwrap_or(Answer::Unit))
                });
                let _ = heal(shared);
                req.reply.send(answer);
            }
            rx.len()
        }
    }
}

fn announce(shared: &Engine) -> std::io::Result<()> {
    shared.commits.fetch_add(1, Ordering::Relaxed);
    shared.reader.committed()
}

/// The commit is durable, but other processes may not see it until their snapshots expire.
fn announce_error(shared: &Engine, op: &Command, e: &std::io::Error) -> Error {
    let path = shared
        .reader
        .stamp_file()
        .map_or_else(|| shared.path.clone(), std::path::Path::to_path_buf);
    let mut err = Error::io(
        op.operation(),
        path,
        std::io::Error::new(
            e.kind(),
            format!(
                "the write is durable, but announcing it to other processes failed \
                 (they see it once their read snapshot expires): {e}"
            ),
        ),
    );
    if let Some(k) = op.key() {
        err = err.with_key(k);
    }
    err
}

/// [`commit`], with a panic inside redb turned into an error for the batch, so that the writer
/// thread (and every later caller) survives it.
fn guarded_commit(shared: &Engine, ops: &[&Command]) -> Result<Committed> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit(shared, ops))).unwrap_or_else(
        |payload| {
            let (op, key) = ops
                .first()
                .map_or((Operation::Set, None), |o| (o.operation(), o.key()));
            Err(errors::write_panicked(
                op,
                &shared.path,
                key,
                payload.as_ref(),
            ))
        },
    )
}

/// What a batch's transaction did.
struct Committed {
    /// Each request's answer, in order.
    done: Vec<Answer>,
    /// False when no request changed anything (a purge with nothing due, deletes of absent
    /// keys): the transaction was aborted, not committed, and there is nothing to announce.
    /// A cleaner waking for nothing then costs no fsync and ends no reader's snapshot.
    changed: bool,
}

/// Applies `ops` in one durable write transaction; returns each one's answer.
fn commit(shared: &Engine, ops: &[&Command]) -> Result<Committed> {
    // Errors not tied to one request are reported against the first (the only one, when the
    // batch is retried request by request).
    let (op, key) = ops
        .first()
        .map_or((Operation::Set, None), |o| (o.operation(), o.key()));
    let fail = |e: redb::Error| {
        shared.db.note(&e);
        errors::map(op, &shared.path, key, e)
    };
    let db = shared.db.database().map_err(fail)?;
    let mut txn = db.begin_write().map_err(|e| fail(e.into()))?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| fail(e.into()))?;
    let mut changed = false;
    let enforced;
    let done = {
        let mut tables = Tables::open(&txn).map_err(fail)?;
        // Read hints wait for a commit; a failed one drops them (they are only hints).
        let hints = shared.bound.hints.take();
        crate::bound::begin(&mut tables, shared.bound.limit, &hints).map_err(fail)?;
        let mut done = Vec::with_capacity(ops.len());
        for o in ops {
            let result = if let Command::Clear = o {
                // Deleting both tables frees their pages at once, cheaper than removing rows
                // one by one; a table must be closed before it is deleted.
                tables.book.save().map_err(fail)?;
                drop(tables);
                tables = clear(&txn).map_err(fail)?;
                Ok((Answer::Unit, true))
            } else {
                apply(&mut tables, o)
            };
            let (d, c) = result.map_err(|e| {
                shared.db.note(&e);
                errors::map(o.operation(), &shared.path, o.key(), e)
            })?;
            changed |= c;
            done.push(d);
        }
        // Room for what this batch stored, in the same transaction (see `crate::bound`).
        enforced =
            crate::bound::enforce(&mut tables, shared.bound.limit, Timestamp::now(), changed)
                .map_err(fail)?;
        changed |= enforced != crate::bound::Enforced::default();
        tables.book.save().map_err(fail)?;
        done
    };
    if changed {
        txn.commit().map_err(|e| fail(e.into()))?;
        shared
            .bound
            .evictions
            .fetch_add(enforced.evicted, Ordering::Relaxed);
    } else {
        txn.abort().map_err(|e| fail(e.into()))?;
    }
    Ok(Committed { done, changed })
}

/// The two data tables and the bookkeeping, open for writing.
pub(crate) struct Tables<'txn> {
    pub(crate) entries: Table<'txn, &'static str, &'static [u8]>,
    pub(crate) expiry: Table<'txn, (u64, &'static str), ()>,
    pub(crate) book: crate::bound::Book<'txn>,
}

impl<'txn> Tables<'txn> {
    pub(crate) fn open(txn: &'txn WriteTransaction) -> Result<Self, redb::Error> {
        Ok(Tables {
            entries: txn.open_table(ENTRIES)?,
            expiry: txn.open_table(EXPIRY)?,
            book: crate::bound::Book::open(txn)?,
        })
    }
}

/// Applies one request; returns its answer and whether it changed anything.
fn apply(t: &mut Tables<'_>, op: &Command) -> Result<(Answer, bool), redb::Error> {
    Ok(match op {
        Command::Set(k, r) => {
            #[cfg(test)]
            if k == tests::FAIL_KEY {
                return Err(redb::Error::ValueTooLarge(usize::MAX));
            }
            put(t, k, r)?;
            (Answer::Unit, true)
        }
        Command::SetMany(v) => {
            for (k, r) in v {
                put(t, k, r)?;
            }
            (Answer::Unit, !v.is_empty())
        }
        Command::Delete(k) => {
            let found = remove(t, k)?;
            (Answer::Found(found), found)
        }
        Command::DeleteMany(v) => {
            let mut n = 0;
            for k in v {
                n += usize::from(remove(t, k)?);
            }
            (Answer::Count(n), n > 0)
        }
        Command::Clear => {
            // `commit` clears by deleting the tables; this slower path is never taken there.
            t.entries.retain(|_, _| false)?;
            t.expiry.retain(|_, _| false)?;
            t.book.on_clear()?;
            (Answer::Unit, true)
        }
        Command::Purge(now) => {
            let stats = purge(t, now.as_unix_nanos())?;
            // Stale expiry rows removed without an entry are a change too.
            (Answer::Count(stats.removed), stats.visited > 0)
        }
        // The reopen happened before the batch ran (`heal`).
        Command::Reopen(_) => (Answer::Unit, false),
    })
}

/// The deadline recorded in stored entry bytes; `None` for no deadline or a damaged header (a
/// damaged entry's stale expiry row, if any, is dropped by `purge`, which checks entries).
fn stored_deadline(bytes: &[u8]) -> Option<u64> {
    split_entry(bytes).ok().and_then(|(d, _)| d)
}

fn put(t: &mut Tables<'_>, key: &str, record: &Record) -> Result<(), redb::Error> {
    let bytes = encode_entry(record);
    let old = t
        .entries
        .insert(key, bytes.as_slice())?
        .and_then(|g| stored_deadline(g.value()));
    t.book
        .on_set(key, crate::bound::entry_size(key, bytes.len()))?;
    let new = record.expires_at.map(Timestamp::as_unix_nanos);
    if old != new {
        if let Some(d) = old {
            t.expiry.remove((d, key))?;
        }
        if let Some(d) = new {
            t.expiry.insert((d, key), ())?;
        }
    }
    Ok(())
}

pub(crate) fn remove(t: &mut Tables<'_>, key: &str) -> Result<bool, redb::Error> {
    let old = t.entries.remove(key)?.map(|g| stored_deadline(g.value()));
    match old {
        None => Ok(false),
        Some(deadline) => {
            t.book.on_remove(key)?;
            if let Some(d) = deadline {
                t.expiry.remove((d, key))?;
            }
            Ok(true)
        }
    }
}

/// Deletes both data tables and creates them again, empty.
fn clear(txn: &WriteTransaction) -> Result<Tables<'_>, redb::Error> {
    txn.delete_table(ENTRIES)?;
    txn.delete_table(EXPIRY)?;
    let mut tables = Tables::open(txn)?;
    tables.book.on_clear()?;
    Ok(tables)
}

/// What one purge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PurgeStats {
    /// Rows of the expiry table read.
    pub(crate) visited: usize,
    /// Entries removed.
    pub(crate) removed: usize,
}

/// Removes the entries whose deadline is at or before `now`: walks the expiry table from its
/// start up to `now` only, so the cost follows the number due, not the table size.
pub(crate) fn purge(t: &mut Tables<'_>, now: u64) -> Result<PurgeStats, redb::Error> {
    let due: Vec<(u64, String)> = {
        let rows = match now.checked_add(1) {
            Some(end) => t.expiry.range((0, "")..(end, ""))?,
            None => t.expiry.range::<(u64, &str)>(..)?,
        };
        let mut due = Vec::new();
        for row in rows {
            let (k, _) = row?;
            let (d, key) = k.value();
            due.push((d, key.to_owned()));
        }
        due
    };
    let mut removed = 0;
    for (d, key) in &due {
        t.expiry.remove((*d, key.as_str()))?;
        // Only an entry that still carries this deadline goes; a row left stale (by a damaged
        // entry) goes alone.
        let current = t
            .entries
            .get(key.as_str())?
            .and_then(|g| stored_deadline(g.value()));
        if current == Some(*d) {
            t.entries.remove(key.as_str())?;
            t.book.on_remove(key)?;
            removed += 1;
        }
    }
    Ok(PurgeStats {
        visited: due.len(),
        removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedbBackend;
    use braincache_core::Backend;

    /// Setting this key fails inside the transaction (test builds only).
    pub(super) const FAIL_KEY: &str = "\u{0}fail";

    fn request(op: Command) -> (Request, Receiver<Result<Answer>>) {
        let (reply, answer) = crossbeam_channel::bounded(1);
        (
            Request {
                op,
                reply: Reply::Blocking(reply),
            },
            answer,
        )
    }

    #[test]
    fn one_failing_request_fails_alone_and_the_rest_of_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let b = RedbBackend::open(dir.path().join("c.redb")).unwrap();
        b.set("gone", Record::new(b"x".to_vec(), None)).unwrap();
        let ops = vec![
            Command::Set("a".into(), Record::new(b"1".to_vec(), None)),
            Command::Set(FAIL_KEY.into(), Record::new(b"2".to_vec(), None)),
            Command::Delete("gone".into()),
            Command::Set("c".into(), Record::new(b"3".to_vec(), None)),
        ];
        let (batch, answers): (Vec<_>, Vec<_>) = ops.into_iter().map(request).unzip();
        let (_tx, rx) = crossbeam_channel::unbounded();
        serve(&b.shared(), batch, &rx);
        let got: Vec<_> = answers.iter().map(|a| a.recv().unwrap()).collect();
        assert_eq!(got[0].as_ref().unwrap(), &Answer::Unit);
        let err = got[1].as_ref().unwrap_err();
        assert_eq!(err.key(), Some(FAIL_KEY), "{err}");
        assert_eq!(err.operation(), Some(Operation::Set));
        assert_eq!(got[2].as_ref().unwrap(), &Answer::Found(true));
        assert_eq!(got[3].as_ref().unwrap(), &Answer::Unit);
        assert_eq!(b.get("a").unwrap().unwrap().value, b"1");
        assert_eq!(b.get("c").unwrap().unwrap().value, b"3");
        assert_eq!(b.get("gone").unwrap(), None);
        assert_eq!(b.get(FAIL_KEY).unwrap(), None);
    }

    #[test]
    fn a_batch_is_one_transaction_and_answers_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let b = RedbBackend::open(dir.path().join("c.redb")).unwrap();
        let ops = vec![
            Command::Set("k".into(), Record::new(b"1".to_vec(), None)),
            Command::Delete("k".into()),
            Command::Delete("k".into()),
            Command::SetMany(vec![("m".into(), Record::new(vec![], None))]),
            Command::Clear,
            Command::Set("after".into(), Record::new(b"2".to_vec(), None)),
            Command::DeleteMany(vec!["after".into(), "m".into()]),
        ];
        let (batch, answers): (Vec<_>, Vec<_>) = ops.into_iter().map(request).unzip();
        let (_tx, rx) = crossbeam_channel::unbounded();
        serve(&b.shared(), batch, &rx);
        let got: Vec<_> = answers.iter().map(|a| a.recv().unwrap().unwrap()).collect();
        assert_eq!(
            got,
            [
                Answer::Unit,
                Answer::Found(true),
                Answer::Found(false),
                Answer::Unit,
                Answer::Unit,
                Answer::Unit,
                Answer::Count(1),
            ]
        );
        assert_eq!(b.len().unwrap(), 0);
    }
}
