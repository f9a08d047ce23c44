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
                run(&cache, interval, &plan, &rx);
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

/// When a cleaner wakes and what it makes of a wake-up or a purge, without I/O: the thread
/// (`start`, below) and the task (`spawn`, `future::cleaner`) each feed it their clock readings
/// and results, and do only the waiting and the calls.
pub(crate) struct Schedule {
    interval: Duration,
    /// The least time between two purges.
    gap: Duration,
    /// The last purge failed: back off to the interval rather than retrying at once.
    backing_off: bool,
    last_purge: Option<Instant>,
    /// The real time of the next purge: a wake-up may move it earlier, never later, so a
    /// stream of sets cannot postpone purging.
    due: Option<Instant>,
}

/// What a cleaner does after its wait.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Woken {
    /// Purge now.
    Purge,
    /// Plan again (an earlier deadline arrived before the purge is due).
    Replan,
    /// End.
    Stop,
}

impl Schedule {
    pub(crate) fn new(interval: Duration) -> Self {
        let interval = interval.max(MIN_SLEEP);
        Schedule {
            interval,
            gap: (interval / 100).clamp(MIN_SLEEP, MAX_PURGE_GAP),
            backing_off: false,
            last_purge: None,
            due: None,
        }
    }

    /// Whether to ask the backend for its next deadline before planning (not while backing
    /// off after a failed purge).
    pub(crate) fn wants_next_expiry(&self) -> bool {
        !self.backing_off
    }

    /// What `next_expiry` answered: the deadline to plan for, and the error to count, if any.
    /// A store that expires by itself and cannot list deadlines (memcached) is no error.
    pub(crate) fn next_expiry(
        answer: braincache_core::Result<Option<Timestamp>>,
    ) -> (Option<Timestamp>, Option<braincache_core::Error>) {
        match answer {
            Ok(deadline) => (deadline, None),
            Err(e) if e.is_unsupported() => (None, None),
            Err(e) => (None, Some(e)),
        }
    }

    /// The real time to wake at, planned at `started` (`now` on the cache's clock) for the next
    /// `deadline`, and that time on the cache's clock (for the wake hub).
    pub(crate) fn plan(
        &mut self,
        deadline: Option<Timestamp>,
        now: Timestamp,
        started: Instant,
    ) -> (Instant, Timestamp) {
        let sleep = deadline.map_or(self.interval, |d| {
            d.saturating_duration_since(now).min(self.interval)
        });
        let mut target = started + sleep.max(MIN_SLEEP);
        if let Some(last) = self.last_purge {
            target = target.max(last + self.gap);
        }
        let wake = self.due.map_or(target, |d| d.min(target));
        self.due = Some(wake);
        (wake, now + wake.saturating_duration_since(started))
    }

    /// Plans the next wake-up of the cleaner registered as `plan` in `cache`'s hub, planning
    /// since `now`, with the backend's `answer` to `next_expiry` (`None`: not asked); counts and
    /// logs an error answer. Returns the real time to wake at.
    pub(crate) fn plan_wake<B: Backend, C: Codec>(
        &mut self,
        cache: &BrainCache<B, C>,
        plan: &AtomicU64,
        now: Timestamp,
        answer: Option<braincache_core::Result<Option<Timestamp>>>,
    ) -> Instant {
        let (deadline, error) = answer.map_or((None, None), Schedule::next_expiry);
        if let Some(e) = error {
            let _ = cache.failed(e);
        }
        let (wake, wake_on_clock) = self.plan(deadline, now, Instant::now());
        cache.inner().wake.plan(plan, wake_on_clock);
        wake
    }

    /// The wait for `wake` ended at `at`: with a message (`Some`), or at its time (`None`).
    pub(crate) fn woken(&mut self, msg: Option<Msg>, wake: Instant, at: Instant) -> Woken {
        match msg {
            Some(Msg::Stop) => Woken::Stop,
            // Re-plan with the new deadline, unless the purge is due already.
            Some(Msg::Wake) if at < wake => {
                self.backing_off = false;
                Woken::Replan
            }
            Some(Msg::Wake) | None => {
                self.due = None;
                self.last_purge = Some(at);
                Woken::Purge
            }
        }
    }

    /// The purge ended: with a count, an error (already counted and logged by
    /// `purge_expired`), or a panic (counted and logged here). `who` names the cleaner in logs.
    pub(crate) fn purged(
        &mut self,
        result: std::thread::Result<braincache_core::Result<usize>>,
        counters: &Counters,
        who: &str,
    ) {
        self.backing_off = match result {
            Ok(Ok(n)) => {
                debug_event!("{who} purged {n} entries");
                false
            }
            Ok(Err(_)) => true,
            Err(_) => {
                counters.errors.bump(1);
                warn_event!("braincache {who}: a purge panicked; the cleaner keeps running");
                true
            }
        };
    }
}

/// The cleaner thread's loop.
fn run<B: Backend, C: Codec>(
    cache: &BrainCache<B, C>,
    interval: Duration,
    plan: &AtomicU64,
    rx: &Receiver<Msg>,
) {
    let inner = cache.inner();
    let mut schedule = Schedule::new(interval);
    loop {
        inner.wake.planning(plan);
        let now = inner.now();
        let answer = schedule
            .wants_next_expiry()
            .then(|| inner.backend().next_expiry());
        let wake = schedule.plan_wake(cache, plan, now, answer);
        let msg = match rx.recv_deadline(wake) {
            Ok(msg) => Some(msg),
            Err(RecvTimeoutError::Disconnected) => Some(Msg::Stop),
            Err(RecvTimeoutError::Timeout) => None,
        };
        match schedule.woken(msg, wake, Instant::now()) {
            Woken::Stop => return,
            Woken::Replan => continue,
            Woken::Purge => {}
        }
        let result = catch_unwind(AssertUnwindSafe(|| cache.purge_expired()));
        schedule.purged(result, &inner.counters, "cleaner");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn sleeps_until_the_earlier_of_the_interval_and_the_deadline() {
        let now = Timestamp::from_unix_millis(1_000);
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(10));
        let (wake, on_clock) = s.plan(Some(now + Duration::from_secs(2)), now, t0);
        assert_eq!(wake, at(t0, 2_000));
        assert_eq!(on_clock, now + Duration::from_secs(2));
        let mut s = Schedule::new(Duration::from_secs(10));
        assert_eq!(s.plan(None, now, t0).0, at(t0, 10_000));
        // A deadline already past still sleeps the least time, never zero.
        let mut s = Schedule::new(Duration::from_secs(10));
        assert_eq!(s.plan(Some(now), now, t0).0, t0 + MIN_SLEEP);
    }

    #[test]
    fn a_wake_up_brings_the_purge_forward_never_later() {
        let now = Timestamp::from_unix_millis(0);
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(10));
        let (wake, _) = s.plan(None, now, t0);
        assert_eq!(s.woken(Some(Msg::Wake), wake, at(t0, 5)), Woken::Replan);
        // A later deadline does not postpone the planned purge.
        assert_eq!(s.plan(None, now, at(t0, 5)).0, wake);
        let (wake, _) = s.plan(Some(Timestamp::from_unix_millis(100)), now, at(t0, 5));
        assert_eq!(wake, at(t0, 105));
        // A wake-up arriving once the purge is due purges.
        assert_eq!(s.woken(Some(Msg::Wake), wake, wake), Woken::Purge);
        assert_eq!(s.woken(Some(Msg::Stop), wake, t0), Woken::Stop);
    }

    #[test]
    fn purges_are_a_gap_apart_and_a_failure_backs_off_to_the_interval() {
        let now = Timestamp::from_unix_millis(0);
        let t0 = Instant::now();
        let counters = Counters::default();
        let mut s = Schedule::new(Duration::from_secs(10)); // gap: 100 ms
        let (wake, _) = s.plan(Some(now), now, t0);
        assert_eq!(s.woken(None, wake, wake), Woken::Purge);
        s.purged(Ok(Ok(3)), &counters, "test");
        assert!(s.wants_next_expiry());
        // Another deadline at once waits for the gap since the last purge.
        assert_eq!(
            s.plan(Some(now), now, wake).0,
            wake + Duration::from_millis(100)
        );
        let (wake, _) = s.plan(Some(now), now, wake);
        assert_eq!(s.woken(None, wake, wake), Woken::Purge);
        s.purged(Err(Box::new("boom")), &counters, "test");
        assert!(!s.wants_next_expiry());
        assert_eq!(counters.snapshot(0).errors, 1);
        // A wake-up (a new deadline) ends the back-off.
        let (wake, _) = s.plan(None, now, wake);
        assert_eq!(s.woken(Some(Msg::Wake), wake, t0), Woken::Replan);
        assert!(s.wants_next_expiry());
    }

    #[test]
    fn an_unsupported_next_expiry_is_no_error() {
        let unsupported =
            braincache_core::Error::unsupported(braincache_core::Operation::Len, "test", "no");
        assert!(matches!(
            Schedule::next_expiry(Err(unsupported)),
            (None, None)
        ));
        let t = Timestamp::from_unix_millis(5);
        assert!(matches!(Schedule::next_expiry(Ok(Some(t))), (Some(d), None) if d == t));
    }
}
