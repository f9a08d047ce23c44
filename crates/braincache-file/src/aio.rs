//! The async side (feature `async`).
//!
//! In durable mode a `set_async` parks no thread: it hands its entry to the backend's writer
//! thread (started on the first async set) and awaits the acknowledgement through a tokio
//! oneshot, sent once the file holds the entry (after the fsyncs, as a sync `set`). The writer
//! takes every set queued meanwhile into the same document rewrite (group commit), so many
//! tasks setting at once cost one rewrite per batch instead of one each. When that combined
//! write fails, the writer writes each set of the batch on its own, so each caller gets its
//! own result, with its key.
//!
//! Everything else (reads, removals, batched mode's sets) uses [`AsyncBackend`]'s defaults:
//! the call runs on tokio's blocking pool.

use crate::format::Entry;
use crate::store::Store;
use crate::{FileBackend, entry};
use braincache_core::{AsyncBackend, Error, Operation, Record, Result, Timestamp, run_blocking};
use crossbeam_channel::{Receiver, Sender};
use std::future::Future;
use std::sync::{Arc, Weak};

/// The writer thread's name (15 bytes at most: what Linux keeps of a thread name).
const WRITER_THREAD: &str = "bc-file-aiowr";

/// Sets queued per document rewrite, at most.
const MAX_BATCH: usize = 1024;

/// One queued `set_async`.
pub(crate) struct Job {
    key: String,
    entry: Entry,
    done: tokio::sync::oneshot::Sender<Result<()>>,
}

/// The queue to the writer thread, `None` when the thread could not be started.
pub(crate) type Writer = std::sync::OnceLock<Option<Sender<Job>>>;

/// Starts the writer thread of `store`; it ends when the backend (the queue's sender) is
/// dropped. It holds the store weakly, so the store closes with the backend.
fn start(store: Weak<Store>) -> Option<Sender<Job>> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name(WRITER_THREAD.into())
        .spawn(move || writer(&store, &rx))
        .ok()?;
    Some(tx)
}

fn writer(store: &Weak<Store>, rx: &Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let Some(store) = store.upgrade() else {
            return; // the backend is gone: its queue is closed too, the jobs' callers with it
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let all = jobs.iter().map(|j| (j.key.clone(), j.entry.clone()));
        if store.set(Operation::Set, all).is_ok() {
            for job in jobs {
                let _ = job.done.send(Ok(()));
            }
        } else {
            // Each caller gets its own answer: write its set alone.
            for job in jobs {
                let answer = store
                    .set(Operation::Set, [(job.key.clone(), job.entry)])
                    .map_err(|e| e.with_key(&job.key));
                let _ = job.done.send(answer);
            }
        }
    }
}

impl AsyncBackend for FileBackend {
    /// As [`set_async`](AsyncBackend::set_async): the file stores deadlines, not TTLs, so
    /// `now` changes nothing (as in the sync `set_at`).
    fn set_at_async(
        self: &Arc<Self>,
        key: &str,
        record: Record,
        _now: Timestamp,
    ) -> impl Future<Output = Result<()>> + Send {
        self.set_async(key, record)
    }

    fn set_async(
        self: &Arc<Self>,
        key: &str,
        record: Record,
    ) -> impl Future<Output = Result<()>> + Send {
        let this = Arc::clone(self);
        let key = key.to_owned();
        async move {
            let queue = if this.store.is_durable() {
                this.async_writer
                    .get_or_init(|| start(Arc::downgrade(&this.store)))
                    .clone()
            } else {
                None // batched mode: a set is in memory, its write comes later
            };
            let Some(queue) = queue else {
                return run_blocking(&this, Operation::Set, move |b| {
                    braincache_core::Backend::set(b, &key, record)
                })
                .await;
            };
            this.store.bound.set(&key);
            let (done, answer) = tokio::sync::oneshot::channel();
            let job = Job {
                key: key.clone(),
                entry: entry(record),
                done,
            };
            let task_error = |detail: &str| Error::Task {
                op: Operation::Set,
                key: Some(key.clone()),
                detail: detail.into(),
            };
            if queue.send(job).is_err() {
                return Err(task_error("the file backend's writer thread has stopped"));
            }
            answer.await.unwrap_or_else(|_| {
                Err(task_error(
                    "the file backend's writer thread stopped before acknowledging the set",
                ))
            })
        }
    }
}
