//! `get_or_refresh` for the async front end: stale-while-revalidate with the refresh as a spawned
//! tokio task, early refresh (XFetch, decided by [`Freshness`] as in the sync API) and leases
//! across processes, taken and released on tokio's blocking pool; waiting for another process's
//! lease sleeps with `tokio::time`, never blocking a worker thread.
//!
//! The decisions (the verdict on a record, the leader's lease plan, whether a refresh runs, the
//! single flight's hand-over) and the counters are those of `src/freshness.rs`, taken without
//! I/O; this module only drives them with `.await` and tasks where the sync face blocks and
//! uses threads.

use super::{BrainCache, catch_panic};
use crate::cache::LoadError;
use crate::freshness::{Freshness, LeaderPlan, RefreshStart, Refreshed, Round, Step, ran_twice};
use crate::load::Sharing;
use crate::log::warn_event;
use crate::memo::{self, Lead, Loaded, OnPanic, SingleFlight, strict, strict_infallible};
use braincache_core::{AsyncBackend, Codec, Lease, LeaseToken, Operation, run_blocking};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::time::{Duration, Instant};

impl<B: AsyncBackend, C: Codec> BrainCache<B, C> {
    /// The value under `key` as `freshness` keeps it — the async twin of
    /// [`crate::BrainCache::get_or_refresh`]: fresh, it is returned; stale (within the
    /// stale-while-revalidate window), it is returned at once and refreshed by a spawned tokio
    /// task; missing or past the window, `loader` computes it (once per key in this process —
    /// tasks and sync threads alike — and once across processes with a
    /// [lease](Freshness::lease)), it is stored and returned.
    ///
    /// `loader` is a closure returning a future (`|| async { … }`, or an `async move || …`
    /// closure). Because a refresh runs as a task of its own (`tokio::spawn`), the closure and
    /// its future must be `Send + 'static`: capture owned data (clones, `Arc`s), not borrows.
    /// A background refresh that panics counts as a failed refresh. Waiting for another
    /// process's lease sleeps with `tokio::time`; the lease calls run on the blocking pool. A
    /// call cancelled (its future dropped) while it holds a lease leaves the lease to end by
    /// itself after its duration; its waiters in this process take over at once.
    ///
    /// ```
    /// use braincache::Freshness;
    /// use braincache::backend::MemoryBackend;
    /// use braincache::base::ManualClock;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> braincache::Result<()> {
    /// let clock = ManualClock::starting_now();
    /// let cache = braincache::BrainCache::builder(MemoryBackend::new())
    ///     .clock(clock.clone())
    ///     .build()
    ///     .to_async();
    /// let fresh = Freshness::new(Duration::from_secs(60))
    ///     .stale_while_revalidate(Duration::from_secs(300));
    /// let v: u32 = cache.get_or_refresh("k", &fresh, || async { 1 }).await?;
    /// clock.advance(Duration::from_secs(61)); // stale: the old value, a refresh task starts
    /// let v2: u32 = cache.get_or_refresh("k", &fresh, || async { 2 }).await?;
    /// assert_eq!((v, v2), (1, 1));
    /// assert_eq!(cache.stats().stale_served, 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Errors reading or decoding, and storing a value computed by this call (the computed
    /// value is lost then). Background refreshes report nothing to callers: they count in
    /// [`Stats::refresh_failures`](crate::Stats::refresh_failures).
    pub async fn get_or_refresh<T, F, Fut>(
        &self,
        key: &str,
        freshness: &Freshness,
        loader: F,
    ) -> braincache_core::Result<T>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let mut f = Some(move || async move { Ok::<T, std::convert::Infallible>(loader().await) });
        strict_infallible(self.refresh_load(key, freshness, &mut f).await)
    }

    /// Like [`get_or_refresh`](Self::get_or_refresh) for a fallible loader: only `Ok` values are
    /// stored. Tasks waiting on the same computation share its error; a background refresh
    /// that fails keeps the stale value served until the window ends.
    ///
    /// ```
    /// use braincache::{Freshness, LoadError};
    /// use braincache::future::BrainCache;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = BrainCache::default();
    /// let fresh = Freshness::new(Duration::from_secs(60));
    /// let r = cache
    ///     .try_get_or_refresh::<u32, _, _, _>("k", &fresh, || async { Err("offline") })
    ///     .await;
    /// assert!(matches!(r, Err(LoadError::Init(e)) if *e == "offline"));
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`LoadError::Init`] with the loader's error, [`LoadError::Cache`] for cache errors
    /// (and [`Error::Task`](crate::Error::Task) when the loader this call waited for panicked).
    pub async fn try_get_or_refresh<T, E, F, Fut>(
        &self,
        key: &str,
        freshness: &Freshness,
        loader: F,
    ) -> std::result::Result<T, LoadError<E>>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    {
        strict(self.refresh_load(key, freshness, &mut Some(loader)).await)
    }

    /// The machinery of `get_or_refresh` (see the sync face's); `f` is taken only when it runs
    /// (here or in a task).
    async fn refresh_load<T, E, F, Fut>(
        &self,
        key: &str,
        freshness: &Freshness,
        f: &mut Option<F>,
    ) -> std::result::Result<Loaded<T>, LoadError<E>>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    {
        let sync = self.sync_face();
        let record = self
            .backend_arc()
            .get_async(key)
            .await
            .map_err(|e| sync.failed(e))?;
        if let Some((value, refresh)) = sync.serve(key, freshness, record)? {
            if let Some(round) = refresh {
                self.refresh_in_background(key, freshness, round, f);
            }
            return Ok(Loaded {
                value,
                store_error: None,
            });
        }
        // A miss: one computation per key in this process (memo's single flight: the others
        // await its value) and, with a lease, across processes (the leader drives
        // `LeaderPlan`, waiting for another process's lease with `tokio::time`). A leader's
        // guard lives in `flight`, then `lead`, in this future: dropping the future abandons
        // the flight and one waiter computes instead.
        let inner = sync.inner();
        let mut flight = SingleFlight::<E, Sharing>::new(inner.loads(), key, OnPanic::Fail);
        let mut step = flight.missed();
        let lead = loop {
            step = match step {
                memo::Step::Lookup { .. } => {
                    let record = self
                        .backend_arc()
                        .get_async(key)
                        .await
                        .map_err(|e| sync.failed(e))?;
                    match sync.fresh_value(key, record)? {
                        Some(value) => return Ok(Loaded::found(value)),
                        None => flight.missed(),
                    }
                }
                memo::Step::Wait(slot) => flight.waited(slot.wait_async().await),
                memo::Step::Received(bytes) => {
                    return Ok(Loaded::found(sync.decode(key, &bytes)?));
                }
                memo::Step::Fail(e) => return Err(sync.failed_load(e)),
                memo::Step::Compute(lead) => break lead,
            };
        };
        // A value another process stores meanwhile ends the load: `lead` is dropped unused,
        // and this process's waiters look again and find it.
        let mut lead = Some(lead);
        let mut plan = LeaderPlan::new(freshness);
        let mut step = plan.not_found();
        let result = loop {
            step = match step {
                Step::Read => plan.read(sync, key, self.backend_arc().get_async(key).await),
                Step::TryLease(d) => {
                    let taken = self.try_lease(key, plan.token, d).await;
                    plan.leased(key, taken, &inner.counters)
                }
                Step::Wait(d) => {
                    tokio::time::sleep(d).await;
                    Step::Read
                }
                Step::Compute => Step::Done(match lead.take() {
                    Some(lead) => self.lead_compute(key, freshness, lead, f).await,
                    None => Err(ran_twice()),
                }),
                Step::Done(result) => break result,
            };
        };
        if let Some(token) = plan.to_release() {
            self.release_lease(key, token).await;
        }
        result
    }

    /// The leader computes in this task and stores the value with the freshness fields; its
    /// waiters receive the value, its error or its panic through `lead`.
    async fn lead_compute<T, E, F, Fut>(
        &self,
        key: &str,
        freshness: &Freshness,
        lead: Lead<'_>,
        f: &mut Option<F>,
    ) -> std::result::Result<Loaded<T>, LoadError<E>>
    where
        T: Serialize,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        let compute = lead.take(f)?;
        let started = Instant::now();
        let computed = match catch_panic(compute).await {
            Ok(computed) => computed,
            Err(panic) => lead.panicked(panic),
        };
        let took = started.elapsed();
        let sync = self.sync_face();
        match lead.computed::<T, E, Sharing>(computed, |v| sync.encode(key, v)) {
            memo::Computed::Store(storing, bytes) => {
                Ok(storing.stored(self.store_fresh(key, freshness, bytes, took).await))
            }
            memo::Computed::Done(result) => result,
        }
    }

    /// Stores a value computed in `took`: fresh for the TTL, kept by the backend for TTL +
    /// window.
    async fn store_fresh(
        &self,
        key: &str,
        freshness: &Freshness,
        bytes: Vec<u8>,
        took: Duration,
    ) -> braincache_core::Result<()> {
        let sync = self.sync_face();
        let record = sync.fresh_record(freshness, bytes, took);
        let deadline = record.expires_at;
        let stored = self.backend_arc().set_async(key, record).await;
        sync.after_store(key, deadline, stored)
    }

    /// Takes the lease on the blocking pool.
    async fn try_lease(
        &self,
        key: &str,
        token: LeaseToken,
        duration: Duration,
    ) -> braincache_core::Result<Lease> {
        let now = self.sync_face().inner().now();
        let owned = key.to_owned();
        run_blocking(self.backend_arc(), Operation::Lease, move |b| {
            b.try_lease(&owned, token, duration, now)
        })
        .await
    }

    /// Releases the lease on the blocking pool; one not released ends by itself.
    async fn release_lease(&self, key: &str, token: LeaseToken) {
        let owned = key.to_owned();
        if let Err(e) = run_blocking(self.backend_arc(), Operation::Lease, move |b| {
            b.release_lease(&owned, token)
        })
        .await
        {
            warn_event!("braincache: lease on {key:?} not released: {e}");
        }
    }

    /// Spawns one refresh task for `key` (none if one is running for it in this cache, another
    /// process is refreshing this round, or no tokio runtime is current). The caller returns at
    /// once: the lease, the loader and the write all run in the task.
    fn refresh_in_background<T, E, F, Fut>(
        &self,
        key: &str,
        freshness: &Freshness,
        round: Round,
        f: &mut Option<F>,
    ) where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    {
        let inner = self.sync_face().inner();
        if f.is_none() || !inner.refreshing.start(key, round, inner.now()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            inner.refreshing.finish(key);
            return;
        };
        let mut f = f.take();
        let cache = self.clone();
        let freshness = freshness.clone();
        let key = key.to_owned();
        runtime.spawn(async move {
            let outcome = catch_panic(|| async {
                let token = LeaseToken(fastrand::u64(..));
                let now = cache.sync_face().inner().now();
                let taken = match freshness.lease {
                    Some(d) => Some(cache.try_lease(&key, token, d).await),
                    None => None,
                };
                let start =
                    RefreshStart::from_lease(taken, now, freshness.lease.unwrap_or_default());
                if let RefreshStart::Skip { until, hold } = start {
                    return Refreshed::Skipped { until, hold };
                }
                let started = Instant::now();
                let stored = match f.take() {
                    Some(compute) => match compute().await {
                        Ok(value) => {
                            let took = started.elapsed();
                            match cache.sync_face().encode(&key, &value) {
                                Ok(bytes) => cache
                                    .store_fresh(&key, &freshness, bytes, took)
                                    .await
                                    .is_ok(),
                                Err(_) => false,
                            }
                        }
                        Err(_) => false,
                    },
                    None => false,
                };
                if let RefreshStart::Leased = start {
                    cache.release_lease(&key, token).await;
                }
                Refreshed::of(stored)
            })
            .await
            .unwrap_or(Refreshed::Failed);
            cache.sync_face().refresh_done(&key, round, outcome);
        });
    }
}

/// The generated body of an async `#[cache]` function with `stale`, `early_refresh` or `lease`:
/// memoized through [`BrainCache::get_or_refresh`]. Cache errors never change the result: on a
/// read error the function runs uncached. Not a stable API.
#[doc(hidden)]
pub async fn call_fresh_async<B, C, T, F, Fut>(
    cache: &BrainCache<B, C>,
    key: crate::__private::Key,
    freshness: &Freshness,
    f: F,
) -> T
where
    B: AsyncBackend,
    C: Codec,
    T: crate::__private::CacheValue + Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let Some(key) = key.usable(cache.sync_face()) else {
        return f().await;
    };
    let mut g = Some(move || async move { Ok::<T, std::convert::Infallible>(f().await) });
    match cache.refresh_load(&key, freshness, &mut g).await {
        Ok(Loaded { value, .. }) => value,
        Err(LoadError::Init(never)) => match *never {},
        // Already counted and logged; the cache failed before running the function.
        Err(LoadError::Cache(_)) => match g.take() {
            Some(g) => match g().await {
                Ok(value) => value,
                Err(never) => match never {},
            },
            None => unreachable!("braincache: a memoized function's closure ran twice"),
        },
    }
}
