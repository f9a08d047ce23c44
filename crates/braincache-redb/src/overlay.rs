//! Write-behind: writes return once queued, a flusher thread commits them every interval.
//!
//! [`RedbBackendBuilder::write_behind`](crate::RedbBackendBuilder::write_behind) turns it on.
//! A write is recorded in two places under one lock, in the order the writes were made:
//! - the **overlay**, a map from key to its pending value (or deletion), plus a pending clear,
//!   which reads of this process consult before their snapshot, so they see the write at once;
//! - the **buffer** of requests not yet sent to the writer thread.
//!
//! The flusher thread wakes when the first write lands in an empty buffer, waits `interval`
//! (or less, when `flush` is called, the buffer holds 16 MiB, or the backend closes), takes
//! the whole buffer, merges runs of sets into one `set_many` and runs of deletes into one
//! `delete_many`, sends them to the writer thread (which commits them together, durably, and
//! announces the commit to other processes) and waits for their answers. Only then does it
//! drop from the overlay the entries that round wrote (those not overwritten since).
//!
//! **Why a read sees the write it should.** A read looks at the overlay first and at its
//! snapshot after. An entry leaves the overlay only after its commit was announced, so a read
//! that no longer finds it there begins (or reuses) a snapshot that holds the commit. A read
//! that finds it there returns this process's latest write of the key, which is also what the
//! file will hold once it commits, unless another process commits that key in between.

use crate::writer::{Answer, Command, Queue};
use braincache_core::{Error, Record, Result, Timestamp};
use crossbeam_channel::Receiver;
use std::collections::HashMap;
use std::mem;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Buffered bytes (keys and values) at which a round starts at once, without waiting for the
/// interval; a writer that finds the buffer this full waits until the flusher took it.
const FULL_BYTES: usize = 16 << 20;

/// The pending writes, as reads see them.
#[derive(Default)]
struct View {
    /// Key → (sequence number of its latest pending write, its record or `None` for a delete).
    keys: HashMap<String, (u64, Option<Record>)>,
    /// Sequence number of a pending `clear`: keys not in `keys` read as absent.
    cleared: Option<u64>,
}

/// The requests not yet sent, and the flusher's progress.
#[derive(Default)]
struct Pending {
    buffer: Vec<Command>,
    bytes: usize,
    /// When the oldest request in `buffer` was queued.
    since: Option<Instant>,
    /// Sequence number of the next write.
    next: u64,
    /// Every write numbered below it has been committed (or failed).
    settled: u64,
    /// A `flush` waits: start the round now.
    hurry: bool,
    stop: bool,
    /// The first error of a round since the last `flush`.
    error: Option<Error>,
}

struct Inner {
    view: RwLock<View>,
    pending: Mutex<Pending>,
    /// Wakes the flusher.
    wake: Condvar,
    /// Wakes callers waiting for a round to end.
    settled: Condvar,
    interval: Duration,
}

/// Write-behind for one backend: the overlay, the buffer and the flusher thread. Dropping it
/// commits what is buffered and stops the thread; drop it before the writer thread's handle.
pub(crate) struct Behind {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

/// A write, as the overlay records it.
pub(crate) enum Write {
    Set(String, Record),
    SetMany(Vec<(String, Record)>),
    Delete(String),
    DeleteMany(Vec<String>),
    Clear,
}

/// The pending writes, copied for `len` and `next_expiry`.
pub(crate) struct PendingCopy {
    /// A clear is pending: the snapshot's entries do not count.
    pub(crate) cleared: bool,
    /// Each key with a pending write: its deadline if set (`Some(deadline)`), `None` if deleted.
    pub(crate) keys: Vec<(String, Option<Option<Timestamp>>)>,
}

impl Behind {
    /// Starts the flusher thread, which sends rounds through `queue`.
    pub(crate) fn start(queue: Queue, interval: Duration) -> std::io::Result<Behind> {
        let inner = Arc::new(Inner {
            view: RwLock::new(View::default()),
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            settled: Condvar::new(),
            interval,
        });
        let flusher = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("braincache-redb-write-behind".into())
            .spawn(move || flusher.run(&queue))?;
        Ok(Behind {
            inner,
            thread: Some(thread),
        })
    }

    /// What the overlay says about `key`: `Some(Some(record))` for a pending set, `Some(None)`
    /// for a pending delete (or a pending clear), `None` when the snapshot decides.
    pub(crate) fn lookup(&self, key: &str) -> Option<Option<Record>> {
        let view = self
            .inner
            .view
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        match view.keys.get(key) {
            Some((_, r)) => Some(r.clone()),
            None => view.cleared.map(|_| None),
        }
    }

    /// The pending writes, for counting.
    pub(crate) fn copy(&self) -> PendingCopy {
        let view = self
            .inner
            .view
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        PendingCopy {
            cleared: view.cleared.is_some(),
            keys: view
                .keys
                .iter()
                .map(|(k, (_, r))| (k.clone(), r.as_ref().map(|r| r.expires_at)))
                .collect(),
        }
    }

    /// Records `write` in the overlay and the buffer; returns once it is queued (or, when the
    /// buffer is full, once the flusher has taken it).
    pub(crate) fn push(&self, write: Write) {
        let inner = &*self.inner;
        let mut p = inner.lock();
        while p.bytes >= FULL_BYTES && !p.stop {
            p.hurry = true;
            inner.wake.notify_one();
            p = inner
                .settled
                .wait(p)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let seq = p.next;
        p.next += 1;
        let op = {
            let mut view = inner.view.write().unwrap_or_else(PoisonError::into_inner);
            match write {
                Write::Set(k, r) => {
                    view.keys.insert(k.clone(), (seq, Some(r.clone())));
                    Command::Set(k, r)
                }
                Write::SetMany(v) => {
                    for (k, r) in &v {
                        view.keys.insert(k.clone(), (seq, Some(r.clone())));
                    }
                    Command::SetMany(v)
                }
                Write::Delete(k) => {
                    view.keys.insert(k.clone(), (seq, None));
                    Command::Delete(k)
                }
                Write::DeleteMany(v) => {
                    for k in &v {
                        view.keys.insert(k.clone(), (seq, None));
                    }
                    Command::DeleteMany(v)
                }
                Write::Clear => {
                    view.keys.clear();
                    view.cleared = Some(seq);
                    Command::Clear
                }
            }
        };
        p.bytes += size(&op);
        p.buffer.push(op);
        if p.since.is_none() {
            p.since = Some(Instant::now());
            inner.wake.notify_one();
        } else if p.bytes >= FULL_BYTES {
            inner.wake.notify_one();
        }
    }

    /// Commits every write queued before the call and waits for it; returns the first error of
    /// a round since the previous `flush` (those writes were dropped from the overlay).
    pub(crate) fn flush(&self) -> Result<()> {
        let inner = &*self.inner;
        let mut p = inner.lock();
        let target = p.next;
        while p.settled < target && !p.stop {
            p.hurry = true;
            inner.wake.notify_one();
            p = inner
                .settled
                .wait(p)
                .unwrap_or_else(PoisonError::into_inner);
        }
        match p.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Behind {
    fn drop(&mut self) {
        {
            let mut p = self.inner.lock();
            p.stop = true;
            self.inner.wake.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The flusher thread: one round per interval while writes come, then sleeps.
    fn run(&self, queue: &Queue) {
        let mut p = self.lock();
        loop {
            // Wait for a reason to start a round.
            loop {
                if p.buffer.is_empty() {
                    p.hurry = false;
                    if p.stop {
                        return;
                    }
                    p = self.wake.wait(p).unwrap_or_else(PoisonError::into_inner);
                    continue;
                }
                if p.stop || p.hurry || p.bytes >= FULL_BYTES {
                    break;
                }
                let due = p.since.unwrap_or_else(Instant::now) + self.interval;
                let now = Instant::now();
                if now >= due {
                    break;
                }
                p = self
                    .wake
                    .wait_timeout(p, due - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            let ops = mem::take(&mut p.buffer);
            let upto = p.next;
            p.bytes = 0;
            p.since = None;
            p.hurry = false;
            // Writers blocked on a full buffer may go on.
            self.settled.notify_all();
            drop(p);
            let error = round(queue, ops).err();
            {
                // The round is committed and announced: its entries leave the overlay (those
                // written again since stay, with their newer sequence number).
                let mut view = self.view.write().unwrap_or_else(PoisonError::into_inner);
                view.keys.retain(|_, (seq, _)| *seq >= upto);
                if view.cleared.is_some_and(|seq| seq < upto) {
                    view.cleared = None;
                }
            }
            p = self.lock();
            p.settled = upto;
            if let Some(e) = error {
                p.error.get_or_insert(e);
            }
            self.settled.notify_all();
        }
    }
}

/// Sends `ops` to the writer thread, runs of sets and of deletes merged, and waits for every
/// answer; returns the first error.
fn round(queue: &Queue, ops: Vec<Command>) -> Result<()> {
    let mut requests: Vec<Command> = Vec::new();
    for op in ops {
        match (requests.last_mut(), op) {
            (Some(Command::SetMany(run)), Command::Set(k, r)) => run.push((k, r)),
            (Some(Command::SetMany(run)), Command::SetMany(v)) => run.extend(v),
            (Some(Command::DeleteMany(run)), Command::Delete(k)) => run.push(k),
            (Some(Command::DeleteMany(run)), Command::DeleteMany(v)) => run.extend(v),
            (_, Command::Set(k, r)) => requests.push(Command::SetMany(vec![(k, r)])),
            (_, Command::Delete(k)) => requests.push(Command::DeleteMany(vec![k])),
            (_, op) => requests.push(op),
        }
    }
    let answers: Vec<Result<Receiver<Result<Answer>>>> =
        requests.into_iter().map(|op| queue.send(op)).collect();
    let mut first = None;
    for a in answers {
        let answer = a.and_then(|rx| {
            rx.recv()
                .unwrap_or_else(|_| Err(crate::errors::closed(braincache_core::Operation::Set)))
        });
        if let Err(e) = answer {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// Roughly the bytes a request holds, for the buffer limit.
fn size(op: &Command) -> usize {
    match op {
        Command::Set(k, r) => k.len() + r.value.len() + 16,
        Command::SetMany(v) => v.iter().map(|(k, r)| k.len() + r.value.len() + 16).sum(),
        Command::Delete(k) => k.len() + 16,
        Command::DeleteMany(v) => v.iter().map(|k| k.len() + 16).sum(),
        _ => 16,
    }
}
