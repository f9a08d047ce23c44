//! `get_or_refresh` for the async front end: stale-while-revalidate with the refresh as a spawned
//! tokio task, early refresh (XFetch, decided by [`Freshness`] as in the sync API) and leases
//! across processes, taken and released on tokio's blocking pool; waiting for another process's
//! lease sleeps with `tokio::time`, never blocking a worker thread.
//!
//! The states of a record and the counters are those of `src/freshness.rs`; this module only
//! replaces threads and `thread::sleep` by tasks and `.await`.

use super::{BrainCache, catch_panic};
use crate::cache::LoadError;
use crate::freshness::Freshness;
use crate::load::{ErrorSharing, Outcome, Role, Sharing};
use crate::log::{debug_event, warn_event};
use crate::memo::Loaded;
use crate::stats::Counters;
use braincache_core::{
    AsyncBackend, Codec, Error, Lease, LeaseToken, Operation, Record, run_blocking,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one background refresh did.
enum Refreshed {
    Stored,
    Failed,
    /// Another process holds the key's lease: it is refreshing.
    Skipped,
}

type Computed<T> = (Loaded<T>, Option<Arc<[u8]>>);

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
        match self.refresh_load(key, freshness, &mut f).await {
            Ok(Loaded {
                store_error: Some(e),
                ..
            }) => Err(e),
            Ok(loaded) => Ok(loaded.value),
            Err(LoadError::Cache(e)) => Err(e),
            Err(LoadError::Init(never)) => match *never {},
        }
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
    /// (and [`Error::Task`] when the loader this call waited for panicked).
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
        let mut f = Some(loader);
        match self.refresh_load(key, freshness, &mut f).await {
            Ok(Loaded {
                store_error: Some(e),
                ..
            }) => Err(LoadError::Cache(e)),
            Ok(loaded) => Ok(loaded.value),
            Err(e) => Err(e),
        }
    }

    /// The machinery of `get_or_refresh`; `f` is taken only when it runs (here or in a task).
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
        let inner = sync.inner();
        let record = self
            .backend_arc()
            .get_async(key)
            .await
            .map_err(|e| sync.failed(e))?;
        let now = inner.now();
        if let Some(r) = record.filter(|r| !r.is_expired(now)) {
            let value = sync.decode_record(key, &r)?;
            if r.is_stale(now) {
                Counters::bump(&inner.counters.stale_served, 1);
                debug_event!("get_or_refresh {key:?}: stale, refreshing in a task");
                self.refresh_in_background(key, freshness, f);
            } else {
                Counters::bump(&inner.counters.hits, 1);
                if freshness.refresh_early(&r, now) {
                    debug_event!("get_or_refresh {key:?}: early refresh in a task");
                    self.refresh_in_background(key, freshness, f);
                }
            }
            return Ok(Loaded {
                value,
                store_error: None,
            });
        }
        Counters::bump(&inner.counters.misses, 1);
        self.load_leased(key, freshness, f).await
    }

    /// A miss: one computation per key in this process (the others await its value) and, with
    /// a lease, across processes. A leader whose future is dropped abandons its slot (its
    /// guard's `Drop`) and one waiter computes instead.
    async fn load_leased<T, E, F, Fut>(
        &self,
        key: &str,
        freshness: &Freshness,
        f: &mut Option<F>,
    ) -> std::result::Result<Loaded<T>, LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        let sync = self.sync_face();
        loop {
            // The role is taken and the slot awaited with no other `.await` in between.
            let slot = match sync.inner().loads().join(key) {
                Role::Waiter(slot) => slot,
                Role::Leader(guard) => {
                    return match self.lead(key, freshness, f).await {
                        Ok((loaded, Some(bytes))) => {
                            guard.finish(Outcome::Value(bytes));
                            Ok(loaded)
                        }
                        Ok((loaded, None)) => {
                            guard.finish(Outcome::ComputeAlone);
                            Ok(loaded)
                        }
                        Err(LoadError::Init(e)) => {
                            let shared = <Sharing as ErrorSharing<E>>::share(&e);
                            guard.finish(shared.map_or(Outcome::ComputeAlone, Outcome::Failed));
                            Err(LoadError::Init(e))
                        }
                        Err(e) => {
                            guard.finish(Outcome::ComputeAlone);
                            Err(e)
                        }
                    };
                }
            };
            match slot.wait_async().await {
                Outcome::Value(bytes) => {
                    return Ok(Loaded {
                        value: sync.decode(key, &bytes)?,
                        store_error: None,
                    });
                }
                Outcome::Failed(shared) => {
                    if let Some(e) = <Sharing as ErrorSharing<E>>::receive(shared) {
                        return Err(LoadError::Init(e));
                    }
                    return self
                        .compute_and_store(key, freshness, f)
                        .await
                        .map(|(l, _)| l);
                }
                Outcome::ComputeAlone => {
                    return self
                        .compute_and_store(key, freshness, f)
                        .await
                        .map(|(l, _)| l);
                }
                Outcome::Abandoned => {}
                Outcome::Panicked => {
                    return Err(LoadError::Cache(
                        sync.failed(Error::Task {
                            op: Operation::Get,
                            key: Some(key.to_owned()),
                            detail: "the loader computing this value panicked in another caller \
                                 (the next call computes it again)"
                                .into(),
                        }),
                    ));
                }
            }
        }
    }

    /// The leader of this process: takes the lease (or waits, sleeping with `tokio::time`, for
    /// the process holding it), then computes. Returns the encoded value for the waiters.
    async fn lead<T, E, F, Fut>(
        &self,
        key: &str,
        freshness: &Freshness,
        f: &mut Option<F>,
    ) -> std::result::Result<Computed<T>, LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        let sync = self.sync_face();
        let inner = sync.inner();
        let token = LeaseToken(fastrand::u64(..));
        let lease = freshness.lease;
        // A bound in real time, for clocks that do not move (a manual clock), as in the sync
        // leader: past it the leader computes whatever the store says.
        let give_up =
            Instant::now() + lease.unwrap_or_default().saturating_mul(2) + Duration::from_secs(1);
        let poll = lease.map_or(Duration::ZERO, |d| {
            (d / 50).clamp(Duration::from_millis(2), Duration::from_millis(25))
        });
        let mut waited = false;
        loop {
            // Another process (or an earlier leader here) may have stored it meanwhile.
            if let Some(found) = self.fresh_stored(key).await? {
                return Ok(found);
            }
            let Some(duration) = lease else {
                return self.compute_and_store(key, freshness, f).await;
            };
            let taken = self.try_lease(key, token, duration).await;
            match taken {
                Lease::Held { .. } if Instant::now() < give_up => {
                    if !waited {
                        waited = true;
                        Counters::bump(&inner.counters.lease_waits, 1);
                        debug_event!("get_or_refresh {key:?}: waiting for another process's lease");
                    }
                    tokio::time::sleep(poll).await;
                }
                Lease::Acquired => {
                    // The previous holder may have stored the value and released its lease
                    // between our read and our lease: look once more before computing.
                    let out = match self.fresh_stored(key).await {
                        Ok(Some(found)) => Ok(found),
                        Ok(None) => self.compute_and_store(key, freshness, f).await,
                        Err(e) => Err(e),
                    };
                    self.release_lease(key, token).await;
                    return out;
                }
                _ => return self.compute_and_store(key, freshness, f).await,
            }
        }
    }

    /// The stored value under `key` if it is fresh, decoded, with its bytes.
    async fn fresh_stored<T, E>(
        &self,
        key: &str,
    ) -> std::result::Result<Option<Computed<T>>, LoadError<E>>
    where
        T: DeserializeOwned,
    {
        let sync = self.sync_face();
        let record = self
            .backend_arc()
            .get_async(key)
            .await
            .map_err(|e| sync.failed(e))?;
        let now = sync.inner().now();
        match record.filter(|r| !r.is_expired(now) && !r.is_stale(now)) {
            Some(r) => {
                let value = sync.decode_record(key, &r)?;
                Ok(Some((
                    Loaded {
                        value,
                        store_error: None,
                    },
                    Some(Arc::from(r.value.as_slice())),
                )))
            }
            None => Ok(None),
        }
    }

    /// Takes the lease on the blocking pool. Coordination is an optimization: an error
    /// computes rather than fails the call.
    async fn try_lease(&self, key: &str, token: LeaseToken, duration: Duration) -> Lease {
        let now = self.sync_face().inner().now();
        let owned = key.to_owned();
        run_blocking(self.backend_arc(), Operation::Lease, move |b| {
            b.try_lease(&owned, token, duration, now)
        })
        .await
        .unwrap_or_else(|e| {
            warn_event!("braincache: lease on {key:?} not taken, computing anyway: {e}");
            Lease::Uncoordinated
        })
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

    /// Runs the loader in this task and stores its value with the freshness fields.
    async fn compute_and_store<T, E, F, Fut>(
        &self,
        key: &str,
        freshness: &Freshness,
        f: &mut Option<F>,
    ) -> std::result::Result<Computed<T>, LoadError<E>>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        let sync = self.sync_face();
        let Some(compute) = f.take() else {
            // Unreachable: each call computes at most once.
            return Err(LoadError::Cache(Error::Closed {
                op: Operation::Set,
                backend: "front end",
            }));
        };
        let started = Instant::now();
        let value = compute().await.map_err(|e| LoadError::Init(Arc::new(e)))?;
        let took = started.elapsed();
        match sync.encode(key, &value) {
            Ok(bytes) => {
                let shared: Arc<[u8]> = Arc::from(bytes.as_slice());
                let record: Record = sync.fresh_record(freshness, bytes, took);
                let expires_at = record.expires_at;
                let store_error = match self.backend_arc().set_async(key, record).await {
                    Ok(()) => {
                        sync.stored(key, expires_at);
                        None
                    }
                    Err(e) => Some(sync.failed(e)),
                };
                Ok((Loaded { value, store_error }, Some(shared)))
            }
            // The value is good even if the codec cannot store it: hand it back.
            Err(e) => Ok((
                Loaded {
                    value,
                    store_error: Some(e),
                },
                None,
            )),
        }
    }

    /// Spawns one refresh task for `key` (none if one is running for it in this cache, or no
    /// tokio runtime is current).
    fn refresh_in_background<T, E, F, Fut>(
        &self,
        key: &str,
        freshness: &Freshness,
        f: &mut Option<F>,
    ) where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    {
        let inner = self.sync_face().inner();
        if f.is_none() || !inner.refreshing.start(key) {
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
            let outcome =
                catch_panic(|| cache.refresh_now::<T, E, F, Fut>(&key, &freshness, &mut f))
                    .await
                    .unwrap_or(Refreshed::Failed);
            let inner = cache.sync_face().inner();
            inner.refreshing.finish(&key);
            match outcome {
                Refreshed::Stored => Counters::bump(&inner.counters.refreshes, 1),
                Refreshed::Failed => Counters::bump(&inner.counters.refresh_failures, 1),
                Refreshed::Skipped => {}
            }
        });
    }

    /// One background refresh: under the lease when the freshness has one.
    async fn refresh_now<T, E, F, Fut>(
        &self,
        key: &str,
        freshness: &Freshness,
        f: &mut Option<F>,
    ) -> Refreshed
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        let token = LeaseToken(fastrand::u64(..));
        let leased = match freshness.lease {
            None => false,
            Some(d) => match self.try_lease(key, token, d).await {
                Lease::Held { .. } => return Refreshed::Skipped,
                Lease::Acquired => true,
                _ => false,
            },
        };
        let outcome = match self.compute_and_store(key, freshness, f).await {
            Ok((
                Loaded {
                    store_error: None, ..
                },
                _,
            )) => Refreshed::Stored,
            Ok(_) | Err(_) => Refreshed::Failed,
        };
        if leased {
            self.release_lease(key, token).await;
        }
        outcome
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
