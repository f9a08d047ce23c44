//! `CacheCleaner::spawn`: the cleaner as a task on the current tokio runtime.
//!
//! The same plan as the thread (`src/cleaner.rs`): sleep until the earlier of the interval and
//! the next deadline, wake early for an earlier deadline, purges at least `interval / 100`
//! apart; the waits are tokio timers and the purge is the async backend call, so the task never
//! holds a worker thread.

use super::{BrainCache, catch_panic};
use crate::CacheCleaner;
use crate::cleaner::{Msg, Notifier, Schedule, Woken};
use braincache_core::{AsyncBackend, Codec};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

impl CacheCleaner {
    /// Starts a cleaner for `cache` as a task on the current tokio runtime, purging at least
    /// every `interval`: the async counterpart of [`start`](Self::start), with the same
    /// behaviour. [`stop`](Self::stop) (or dropping the cleaner) ends the task at its next
    /// `.await`.
    ///
    /// ```
    /// use braincache::CacheCleaner;
    /// use braincache::future::BrainCache;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> braincache::Result<()> {
    /// let cache = BrainCache::default();
    /// let cleaner = CacheCleaner::spawn(&cache, Duration::from_secs(3600));
    /// cache.set("short", &1u8, Duration::from_millis(5)).await?;
    /// // The earlier deadline wakes the task; no `get` is needed to remove the entry.
    /// for _ in 0..5000 {
    ///     if cache.is_empty().await? { break; }
    ///     tokio::time::sleep(Duration::from_millis(1)).await;
    /// }
    /// assert!(cache.is_empty().await?);
    /// cleaner.stop();
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Panics
    /// Outside a tokio runtime, or on one built without timers (`enable_time`).
    pub fn spawn<B: AsyncBackend, C: Codec>(cache: &BrainCache<B, C>, interval: Duration) -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (id, plan) = cache
            .sync_face()
            .inner()
            .wake
            .register(Notifier::Task(tx.clone()));
        // Owned by the task's future, so the cleaner leaves the hub however the task ends,
        // aborted before its first poll included.
        let registration = Registration {
            cache: cache.clone(),
            id,
        };
        let task = tokio::spawn(async move {
            run(&registration.cache, interval, &plan, rx).await;
            drop(registration);
        });
        CacheCleaner::from_task(tx, task)
    }
}

/// A cleaner task's place in its cache's wake hub, given up on drop.
struct Registration<B: AsyncBackend, C: Codec> {
    cache: BrainCache<B, C>,
    id: u64,
}

impl<B: AsyncBackend, C: Codec> Drop for Registration<B, C> {
    fn drop(&mut self) {
        self.cache.sync_face().inner().wake.unregister(self.id);
    }
}

/// The cleaner task's loop: the thread's (`src/cleaner.rs`) with tokio's timer and the async
/// backend calls.
async fn run<B: AsyncBackend, C: Codec>(
    cache: &BrainCache<B, C>,
    interval: Duration,
    plan: &Arc<AtomicU64>,
    mut rx: UnboundedReceiver<Msg>,
) {
    let inner = cache.sync_face().inner();
    let mut schedule = Schedule::new(interval);
    loop {
        inner.wake.planning(plan);
        let now = inner.now();
        let answer = match schedule.wants_next_expiry() {
            true => Some(cache.backend_arc().next_expiry_async().await),
            false => None,
        };
        let wake = schedule.plan_wake(cache.sync_face(), plan, now, answer);
        let msg = match tokio::time::timeout_at(wake.into(), rx.recv()).await {
            Ok(msg) => Some(msg.unwrap_or(Msg::Stop)),
            Err(_) => None,
        };
        match schedule.woken(msg, wake, Instant::now()) {
            Woken::Stop => return,
            Woken::Replan => continue,
            Woken::Purge => {}
        }
        let result = catch_panic(|| cache.purge_expired()).await;
        schedule.purged(result, &inner.counters, "cleaner task");
    }
}
