//! `CacheCleaner`: a background thread that purges expired entries.

use crate::BrainCache;
use crate::log::{debug_event, warn_event};
use crate::stats::Counters;
use braincache_core::{Backend, Codec, Timestamp};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Never sleep less than this between purges, so a deadline that a purge cannot clear (a backend
/// error, a clock far behind) cannot turn the cleaner into a busy loop.
const MIN_SLEEP: Duration = Duration::from_millis(1);

enum Msg {
    /// A `set` brought a deadline earlier than the cleaner's next wake-up.
    Wake,
    Stop,
}

/// How `set` reaches running cleaners. Lives in the cache, shared by its clones.
#[derive(Default)]
pub(crate) struct WakeHub {
    /// The earliest planned wake-up of any cleaner, in clock nanoseconds; 0 when none runs, so a
    /// `set` without cleaners costs one atomic load.
    next_wake: AtomicU64,
    senders: Mutex<Vec<(u64, Sender<Msg>)>>,
    next_id: AtomicU64,
}

impl WakeHub {
    pub(crate) fn deadline_added(&self, deadline: Timestamp) {
        let d = deadline.as_unix_nanos();
        if d < self.next_wake.load(Ordering::Relaxed) {
            self.next_wake.fetch_min(d, Ordering::Relaxed);
            for (_, tx) in self
                .senders
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
            {
                let _ = tx.send(Msg::Wake);
            }
        }
    }

    fn register(&self, tx: Sender<Msg>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.senders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id, tx));
        id
    }

    fn plan(&self, wake_at: Timestamp) {
        // At least 1: 0 means "no cleaner".
        self.next_wake
            .store(wake_at.as_unix_nanos().max(1), Ordering::Relaxed);
    }

    fn unregister(&self, id: u64) {
        let mut senders = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        senders.retain(|(i, _)| *i != id);
        if senders.is_empty() {
            self.next_wake.store(0, Ordering::Relaxed);
        }
    }
}

/// A background thread that removes expired entries from a cache.
///
/// It sleeps until the earlier of `interval` and the cache's next deadline, wakes early when a
/// `set` brings an earlier deadline, and purges. [`stop`](Self::stop) — or dropping the cleaner —
/// wakes it at once and waits for the thread to end, however long the interval. An error or a
/// panic inside a purge is logged (with the `tracing` feature), counted in
/// [`Stats::errors`](crate::Stats::errors), and the cleaner keeps running.
///
/// ```
/// use braincache::{BrainCache, CacheCleaner};
/// use std::time::Duration;
///
/// let cache = BrainCache::default();
/// let cleaner = CacheCleaner::start(&cache, Duration::from_secs(3600));
/// cache.set("short", &1u8, Duration::from_millis(5)).unwrap();
/// // The earlier deadline wakes the cleaner; no `get` is needed to remove the entry.
/// let t = std::time::Instant::now();
/// while cache.len().unwrap() > 0 && t.elapsed() < Duration::from_secs(5) {
///     std::thread::sleep(Duration::from_millis(1));
/// }
/// assert_eq!(cache.len().unwrap(), 0);
/// cleaner.stop(); // returns at once despite the one-hour interval
/// ```
#[must_use = "the cleaner stops when dropped"]
pub struct CacheCleaner {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl CacheCleaner {
    /// Starts a cleaner thread for `cache` that purges at least every `interval`.
    ///
    /// # Panics
    /// If the operating system cannot start a thread.
    pub fn start<B: Backend, C: Codec>(cache: &BrainCache<B, C>, interval: Duration) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        let id = cache.inner().wake.register(tx.clone());
        let cache = cache.clone();
        let thread = std::thread::Builder::new()
            .name("braincache-cleaner".into())
            .spawn(move || {
                run(&cache, interval.max(MIN_SLEEP), &rx);
                cache.inner().wake.unregister(id);
            })
            .expect("failed to spawn the braincache cleaner thread");
        CacheCleaner {
            tx,
            thread: Some(thread),
        }
    }

    /// Stops the thread and waits for it to end (at most one purge already under way).
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// True while the thread runs.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.tx.send(Msg::Stop);
            let _ = thread.join();
        }
    }
}

impl Drop for CacheCleaner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for CacheCleaner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheCleaner")
            .field("running", &self.is_running())
            .finish()
    }
}

fn run<B: Backend, C: Codec>(cache: &BrainCache<B, C>, interval: Duration, rx: &Receiver<Msg>) {
    let inner = cache.inner();
    let mut last_failed = false;
    loop {
        let now = inner.now();
        let sleep = if last_failed {
            // Back off to the interval after an error, rather than retrying at once.
            interval
        } else {
            match inner.backend().next_expiry() {
                Ok(Some(deadline)) => deadline.saturating_duration_since(now).min(interval),
                Ok(None) => interval,
                Err(e) => {
                    let _ = cache.failed(e);
                    interval
                }
            }
        }
        .max(MIN_SLEEP);
        inner.wake.plan(now + sleep);
        match rx.recv_timeout(sleep) {
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            // Re-plan with the new deadline; a due deadline makes the next sleep minimal.
            Ok(Msg::Wake) => {
                last_failed = false;
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        last_failed = match catch_unwind(AssertUnwindSafe(|| cache.purge_expired())) {
            Ok(Ok(n)) => {
                debug_event!("cleaner purged {n} entries");
                false
            }
            // Already counted and logged by `purge_expired`.
            Ok(Err(_)) => true,
            Err(_) => {
                Counters::bump(&inner.counters.errors, 1);
                warn_event!("braincache cleaner: a purge panicked; the cleaner keeps running");
                true
            }
        };
    }
}
