//! `CacheCleaner`: a background thread that purges expired entries.

use crate::BrainCache;
use crate::log::{debug_event, warn_event};
use crate::stats::Counters;
use braincache_core::{Backend, Codec, Timestamp, Worker};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Never sleep less than this between plans, so a deadline that a purge cannot clear (a backend
/// error, a clock far behind) cannot turn the cleaner into a busy loop.
pub(crate) const MIN_SLEEP: Duration = Duration::from_millis(1);
/// Purges are at least `interval / 100` apart (between 1 ms and 1 s), so many deadlines close
/// together are purged in one go rather than one commit each.
pub(crate) const MAX_PURGE_GAP: Duration = Duration::from_secs(1);

pub(crate) enum Msg {
    /// A `set` brought a deadline earlier than this cleaner's planned wake-up.
    Wake,
    Stop,
}

/// One running cleaner, as the hub sees it.
struct Registered {
    id: u64,
    tx: Notifier,
    /// The cleaner's planned wake-up in clock nanoseconds; `u64::MAX` while it is planning, so
    /// a deadline added meanwhile always wakes it.
    plan: Arc<AtomicU64>,
}

/// How `set` reaches running cleaners. Lives in the cache, shared by its clones.
#[derive(Default)]
pub(crate) struct WakeHub {
    /// The latest plan among running cleaners: a deadline before it may need to wake one. 0 when
    /// none runs, so a `set` without cleaners costs one atomic load.
    latest_plan: AtomicU64,
    slots: Mutex<Vec<Registered>>,
    next_id: AtomicU64,
}

impl WakeHub {
    pub(crate) fn deadline_added(&self, deadline: Timestamp) {
        let d = deadline.as_unix_nanos();
        if d >= self.latest_plan.load(Ordering::SeqCst) {
            return;
        }
        for slot in self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            if d < slot.plan.fetch_min(d, Ordering::SeqCst) {
                slot.tx.send(Msg::Wake);
            }
        }
    }

    pub(crate) fn register(&self, tx: Notifier) -> (u64, Arc<AtomicU64>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let plan = Arc::new(AtomicU64::new(u64::MAX));
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Registered {
                id,
                tx,
                plan: Arc::clone(&plan),
            });
        self.latest_plan.store(u64::MAX, Ordering::SeqCst);
        (id, plan)
    }

    /// Marks a cleaner as planning: every deadline added until `plan` wakes it.
    pub(crate) fn planning(&self, plan: &AtomicU64) {
        plan.store(u64::MAX, Ordering::SeqCst);
        self.latest_plan.store(u64::MAX, Ordering::SeqCst);
    }

    /// Records a cleaner's plan. A deadline added since `planning` already sent a wake-up, so
    /// overwriting it here loses nothing.
    pub(crate) fn plan(&self, plan: &AtomicU64, wake_at: Timestamp) {
        plan.store(wake_at.as_unix_nanos(), Ordering::SeqCst);
        self.refresh_latest();
    }

    fn refresh_latest(&self) {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let latest = slots.iter().map(|s| s.plan.load(Ordering::SeqCst)).max();
        self.latest_plan
            .store(latest.unwrap_or(0), Ordering::SeqCst);
    }

    pub(crate) fn unregister(&self, id: u64) {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|s| s.id != id);
        self.refresh_latest();
    }
}

/// How the hub reaches one cleaner: a thread's channel, or a task's (`CacheCleaner::spawn`).
pub(crate) enum Notifier {
    Thread(Sender<Msg>),
    #[cfg(feature = "async")]
    Task(tokio::sync::mpsc::UnboundedSender<Msg>),
}

impl Notifier {
    /// Sends without blocking; a cleaner that ended is not an error.
    pub(crate) fn send(&self, msg: Msg) {
        match self {
            Notifier::Thread(tx) => {
                let _ = tx.send(msg);
            }
            #[cfg(feature = "async")]
            Notifier::Task(tx) => {
                let _ = tx.send(msg);
            }
        }
    }
}

/// Unregisters a cleaner from its hub however its thread ends.
struct Registration<'a> {
    hub: &'a WakeHub,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
    }
}

/// A background thread that removes expired entries from a cache.
///
/// It sleeps until the earlier of `interval` and the cache's next deadline, wakes early when a
/// `set` brings an earlier deadline, and purges. Purges are at least `interval / 100` apart
/// (between 1 ms and 1 s), so deadlines close together cost one purge (one commit on durable
/// backends), not one each; wake-ups only ever bring a purge forward. [`stop`](Self::stop) — or dropping the cleaner —
/// wakes it at once and waits for the thread to end, however long the interval. An error or a
/// panic inside a purge is logged (with the `tracing` feature), counted in
/// [`Stats::errors`](crate::Stats::errors), and the cleaner keeps running.
///
/// ```
/// use braincache::{BrainCache, CacheCleaner};
/// use std::time::{Duration, Instant};
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
    /// The cleaner thread (`start`), stopped by a message; `None` for a task.
    thread: Option<Worker>,
    /// A cleaner started by `spawn` runs as this task instead of a thread, stopped through its
    /// channel.
    #[cfg(feature = "async")]
    task: Option<(
        tokio::sync::mpsc::UnboundedSender<Msg>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl CacheCleaner {
    /// Starts a cleaner thread for `cache` that purges at least every `interval`.
    ///
    /// # Panics
    /// If the operating system cannot start a thread.
    pub fn start<B: Backend, C: Codec>(cache: &BrainCache<B, C>, interval: Duration) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (id, plan) = cache.inner().wake.register(Notifier::Thread(tx.clone()));
        let cache = cache.clone();
        // The hub holds a clone of `tx`, so the channel never disconnects: stop by message.
        let stop = tx;
        let thread = Worker::spawn(
            "braincache-cleaner",
            move || {
                let _registration = Registration {
                    hub: &cache.inner().wake,
                    id,
                };
                run(&cache, interval.max(MIN_SLEEP), &plan, &rx);
            },
            move || {
                let _ = stop.send(Msg::Stop);
            },
        )
        .expect("failed to spawn the braincache cleaner thread");
        CacheCleaner {
            thread: Some(thread),
            #[cfg(feature = "async")]
            task: None,
        }
    }

    /// Stops the thread and waits for it to end (at most one purge already under way). A
    /// cleaner task (`spawn`) is told to stop and aborted at its next `.await`; this does not
    /// wait for it (a purge under way completes or is dropped, as a cancelled call).
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// True while the thread runs.
    #[must_use]
    pub fn is_running(&self) -> bool {
        #[cfg(feature = "async")]
        if let Some((_, task)) = &self.task {
            return !task.is_finished();
        }
        self.thread.as_ref().is_some_and(Worker::is_running)
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            thread.stop();
        }
        #[cfg(feature = "async")]
        if let Some((tx, task)) = self.task.take() {
            let _ = tx.send(Msg::Stop);
            task.abort();
        }
    }
}

#[cfg(feature = "async")]
impl CacheCleaner {
    /// A cleaner running as `task`, reached through `tx` (see `future::cleaner`).
    pub(crate) fn from_task(
        tx: tokio::sync::mpsc::UnboundedSender<Msg>,
        task: tokio::task::JoinHandle<()>,
    ) -> Self {
        CacheCleaner {
            thread: None,
            task: Some((tx, task)),
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

/// The cleaner's loop. `due` is the real time of the next purge: a wake-up may move it earlier,
/// never later, so a stream of sets cannot postpone purging.
fn run<B: Backend, C: Codec>(
    cache: &BrainCache<B, C>,
    interval: Duration,
    plan: &AtomicU64,
    rx: &Receiver<Msg>,
) {
    let inner = cache.inner();
    let gap = (interval / 100).clamp(MIN_SLEEP, MAX_PURGE_GAP);
    let mut last_failed = false;
    let mut last_purge: Option<Instant> = None;
    let mut due: Option<Instant> = None;
    loop {
        inner.wake.planning(plan);
        let now = inner.now();
        let sleep = if last_failed {
            // Back off to the interval after an error, rather than retrying at once.
            interval
        } else {
            match inner.backend().next_expiry() {
                Ok(Some(deadline)) => deadline.saturating_duration_since(now).min(interval),
                Ok(None) => interval,
                // A store that expires by itself and cannot list deadlines (memcached).
                Err(e) if e.is_unsupported() => interval,
                Err(e) => {
                    let _ = cache.failed(e);
                    interval
                }
            }
        };
        let started = Instant::now();
        let mut target = started + sleep.max(MIN_SLEEP);
        if let Some(last) = last_purge {
            target = target.max(last + gap);
        }
        let wake = due.map_or(target, |d| d.min(target));
        due = Some(wake);
        inner
            .wake
            .plan(plan, now + wake.saturating_duration_since(started));
        match rx.recv_deadline(wake) {
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            // Re-plan with the new deadline, unless the purge is due already.
            Ok(Msg::Wake) if Instant::now() < wake => {
                last_failed = false;
                continue;
            }
            Ok(Msg::Wake) | Err(RecvTimeoutError::Timeout) => {}
        }
        due = None;
        last_purge = Some(Instant::now());
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
