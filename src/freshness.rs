//! `get_or_refresh`: stale-while-revalidate, early refresh (XFetch) and one computation per key
//! across processes (leases).
//!
//! How a stored value ages, for `Freshness::new(ttl).stale_while_revalidate(window)`:
//!
//! ```text
//! computed ──── fresh ────► fresh_until ──── stale ────► expires_at ──── gone
//!              (hit; maybe an early refresh)  (served at once,         (a miss: the caller
//!                                              one background refresh)   computes, under a lease)
//! ```
//!
//! The backend only knows `expires_at` (= computed + ttl + window), so it keeps a stale record
//! (purge, Redis `PX`, memcached expiry all follow it); `fresh_until` travels in the record
//! (the wire header, or an extra field of the JSON entry) and only the front end reads it.

use crate::cache::{BrainCache, LoadError};
use crate::load::{ErrorSharing, Outcome, Role, Sharing};
use crate::log::{debug_event, warn_event};
use crate::memo::Loaded;
use crate::stats::Counters;
use braincache_core::{Backend, Codec, Error, Lease, LeaseToken, Operation, Record, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How `get_or_refresh` keeps a value fresh: its TTL, and optionally a stale-while-revalidate
/// window, early refresh and a cross-process lease.
///
/// | option | default | effect |
/// |---|---|---|
/// | `new(ttl)` | — | the value is fresh for `ttl` after it was computed |
/// | [`stale_while_revalidate`](Self::stale_while_revalidate) | off | for `window` after that, callers get the old value at once while one background refresh runs |
/// | [`early_refresh`](Self::early_refresh) | off | before the deadline, a caller starts a background refresh with a probability that grows as the deadline nears (XFetch) |
/// | [`lease`](Self::lease) | off | on shared stores, one process computes a missing key; the others wait for its value |
///
/// ```
/// use braincache::{BrainCache, Freshness};
/// use std::time::Duration;
///
/// let cache = BrainCache::default();
/// let freshness = Freshness::new(Duration::from_secs(60))
///     .stale_while_revalidate(Duration::from_secs(300))
///     .early_refresh(1.0)
///     .lease(Duration::from_secs(10));
/// let page: String = cache
///     .get_or_refresh("page:/", &freshness, || "rendered".to_string())
///     .unwrap();
/// assert_eq!(page, "rendered");
/// ```
#[must_use]
pub struct Freshness {
    pub(crate) ttl: Duration,
    pub(crate) window: Duration,
    beta: f64,
    pub(crate) lease: Option<Duration>,
    rng: Mutex<fastrand::Rng>,
}

impl Freshness {
    /// Values are fresh for `ttl` after they were computed; no stale window, no early refresh,
    /// no lease.
    pub fn new(ttl: Duration) -> Freshness {
        Freshness {
            ttl,
            window: Duration::ZERO,
            beta: 0.0,
            lease: None,
            rng: Mutex::new(fastrand::Rng::new()),
        }
    }

    /// For `window` after a value's TTL ends, `get_or_refresh` returns the old (stale) value at
    /// once and refreshes it in the background, one refresh per key at a time; after the window,
    /// the entry is a miss. A refresh that fails keeps the stale value served until the window
    /// ends. The backend keeps the record for `ttl + window`.
    pub fn stale_while_revalidate(mut self, window: Duration) -> Freshness {
        self.window = window;
        self
    }

    /// Probabilistic early refresh (XFetch, Vattani et al., VLDB 2015): a caller that finds a
    /// fresh value starts a background refresh when
    /// `now + compute_time × beta × −ln(u) ≥ fresh deadline`, `u` uniform in (0, 1], where
    /// `compute_time` is how long the value took to compute (kept with the entry). So refreshes
    /// start earlier for slow loaders and for larger `beta`, and rarely more than one before the
    /// deadline. `1.0` is the paper's default; `0` (or a value that is not a positive number)
    /// turns it off.
    pub fn early_refresh(mut self, beta: f64) -> Freshness {
        self.beta = if beta.is_finite() && beta > 0.0 {
            beta
        } else {
            0.0
        };
        self
    }

    /// On a miss, take a lease on the key in the store for `duration` before computing, so that
    /// of all the processes sharing the store one computes and the others wait for its value
    /// (polling the store) until the lease ends. A leader that dies blocks the others only until
    /// then; pick a duration longer than the loader takes. Backends that do not coordinate
    /// processes (memory) ignore it.
    pub fn lease(mut self, duration: Duration) -> Freshness {
        self.lease = Some(duration);
        self
    }

    /// Seeds the random source of early refresh, making its decisions reproducible (tests).
    pub fn random_seed(self, seed: u64) -> Freshness {
        *self.rng.lock().unwrap_or_else(PoisonError::into_inner) = fastrand::Rng::with_seed(seed);
        self
    }

    /// The TTL.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// True when XFetch says a caller finding `record` fresh at `now` should refresh it.
    pub(crate) fn refresh_early(&self, record: &Record, now: Timestamp) -> bool {
        if self.beta <= 0.0 {
            return false;
        }
        let (Some(deadline), Some(took)) = (record.fresh_deadline(), record.compute_time) else {
            return false;
        };
        let gap = deadline.saturating_duration_since(now).as_secs_f64();
        let u = 1.0
            - self
                .rng
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .f64();
        took.as_secs_f64() * self.beta * -u.ln() >= gap
    }
}

impl Clone for Freshness {
    fn clone(&self) -> Freshness {
        Freshness {
            ttl: self.ttl,
            window: self.window,
            beta: self.beta,
            lease: self.lease,
            rng: Mutex::new(
                self.rng
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
            ),
        }
    }
}

impl fmt::Debug for Freshness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Freshness")
            .field("ttl", &self.ttl)
            .field("stale_while_revalidate", &self.window)
            .field("early_refresh", &self.beta)
            .field("lease", &self.lease)
            .finish()
    }
}

/// The keys a background refresh is running for, per cache: one at a time per key.
#[derive(Default)]
pub(crate) struct Refreshing {
    keys: Mutex<HashSet<String>>,
}

impl Refreshing {
    pub(crate) fn start(&self, key: &str) -> bool {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.contains(key) {
            false
        } else {
            keys.insert(key.to_owned())
        }
    }

    pub(crate) fn finish(&self, key: &str) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Threads that run background refreshes of sync loaders, shared by every cache of the process.
const REFRESH_THREADS: usize = 4;
/// Refreshes queued beyond the running ones; more are dropped (a later caller tries again).
const REFRESH_QUEUE: usize = 1024;

fn refresh_pool() -> Option<&'static crossbeam_channel::Sender<Job>> {
    static POOL: OnceLock<Option<crossbeam_channel::Sender<Job>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(REFRESH_QUEUE);
        let mut started = 0;
        for i in 0..REFRESH_THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("braincache-refresh-{i}"))
                .spawn(move || {
                    for job in rx {
                        job();
                    }
                });
            started += usize::from(spawned.is_ok());
        }
        (started > 0).then_some(tx)
    })
    .as_ref()
}

/// What one background refresh did.
enum Refreshed {
    Stored,
    Failed,
    /// Another process holds the key's lease: it is refreshing.
    Skipped,
}

impl<B: Backend, C: Codec> BrainCache<B, C> {
    /// The value under `key` as `freshness` keeps it: fresh, it is returned; stale (within the
    /// stale-while-revalidate window), it is returned at once and refreshed in the background;
    /// missing or past the window, `loader` computes it (once per key in this process, and once
    /// across processes with a [lease](Freshness::lease)), it is stored and returned.
    ///
    /// The loader runs on a thread of a small shared pool when it refreshes in the background,
    /// hence `Send + 'static`. A background refresh that panics counts as a failed refresh.
    ///
    /// ```
    /// use braincache::{BrainCache, Freshness};
    /// use braincache::base::ManualClock;
    /// use braincache::backend::MemoryBackend;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::starting_now();
    /// let cache = BrainCache::builder(MemoryBackend::new()).clock(clock.clone()).build();
    /// let fresh = Freshness::new(Duration::from_secs(60))
    ///     .stale_while_revalidate(Duration::from_secs(300));
    /// let v: u32 = cache.get_or_refresh("k", &fresh, || 1).unwrap();
    /// clock.advance(Duration::from_secs(61)); // stale: the old value, a refresh starts
    /// let v2: u32 = cache.get_or_refresh("k", &fresh, || 2).unwrap();
    /// assert_eq!((v, v2), (1, 1));
    /// assert_eq!(cache.stats().stale_served, 1);
    /// ```
    ///
    /// # Errors
    /// Errors reading or decoding, and storing a value computed on the caller's thread (the
    /// computed value is lost then). Background refreshes report nothing to callers: they count
    /// in [`Stats::refresh_failures`](crate::Stats::refresh_failures).
    pub fn get_or_refresh<T, F>(
        &self,
        key: &str,
        freshness: &Freshness,
        loader: F,
    ) -> crate::Result<T>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let mut f = Some(move || Ok::<T, std::convert::Infallible>(loader()));
        match self.refresh_load(key, freshness, &mut f) {
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
    /// stored. Callers waiting on the same computation share its error; a background refresh
    /// that fails keeps the stale value.
    ///
    /// ```
    /// use braincache::{BrainCache, Freshness, LoadError};
    /// use std::time::Duration;
    ///
    /// let cache = BrainCache::default();
    /// let fresh = Freshness::new(Duration::from_secs(60));
    /// let r = cache.try_get_or_refresh::<u32, _, _>("k", &fresh, || Err("offline"));
    /// assert!(matches!(r, Err(LoadError::Init(e)) if *e == "offline"));
    /// ```
    ///
    /// # Errors
    /// [`LoadError::Init`] with the loader's error, [`LoadError::Cache`] for cache errors.
    pub fn try_get_or_refresh<T, E, F>(
        &self,
        key: &str,
        freshness: &Freshness,
        loader: F,
    ) -> Result<T, LoadError<E>>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Result<T, E> + Send + 'static,
    {
        let mut f = Some(loader);
        match self.refresh_load(key, freshness, &mut f) {
            Ok(Loaded {
                store_error: Some(e),
                ..
            }) => Err(LoadError::Cache(e)),
            Ok(loaded) => Ok(loaded.value),
            Err(e) => Err(e),
        }
    }

    /// The machinery of `get_or_refresh`. `f` is taken only when it runs (here or in the
    /// background), so a caller that gets a cache error before that still has it.
    pub(crate) fn refresh_load<T, E, F>(
        &self,
        key: &str,
        freshness: &Freshness,
        f: &mut Option<F>,
    ) -> Result<Loaded<T>, LoadError<E>>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Result<T, E> + Send + 'static,
    {
        let inner = self.inner();
        let record = inner.backend().get(key).map_err(|e| self.failed(e))?;
        let now = inner.now();
        if let Some(r) = record.filter(|r| !r.is_expired(now)) {
            let value = self.decode_record(key, &r)?;
            if r.is_stale(now) {
                Counters::bump(&inner.counters.stale_served, 1);
                debug_event!("get_or_refresh {key:?}: stale, refreshing");
                self.refresh_in_background(key, freshness, f);
            } else {
                Counters::bump(&inner.counters.hits, 1);
                if freshness.refresh_early(&r, now) {
                    debug_event!("get_or_refresh {key:?}: early refresh");
                    self.refresh_in_background(key, freshness, f);
                }
            }
            return Ok(Loaded {
                value,
                store_error: None,
            });
        }
        Counters::bump(&inner.counters.misses, 1);
        self.load_leased(key, freshness, f)
    }

    /// A miss: one computation per key in this process (the others wait for its value) and,
    /// with a lease, across processes.
    fn load_leased<T, E, F>(
        &self,
        key: &str,
        freshness: &Freshness,
        f: &mut Option<F>,
    ) -> Result<Loaded<T>, LoadError<E>>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Result<T, E> + Send + 'static,
    {
        // Each round either returns or follows a leader that panicked; `Loads` guarantees some
        // caller leads each round, so this ends.
        loop {
            match self.inner().loads.join(key) {
                Role::Waiter(slot) => match slot.wait() {
                    Outcome::Value(bytes) => {
                        return Ok(Loaded {
                            value: self.decode(key, &bytes)?,
                            store_error: None,
                        });
                    }
                    Outcome::Failed(shared) => {
                        if let Some(e) = <Sharing as ErrorSharing<E>>::receive(shared) {
                            return Err(LoadError::Init(e));
                        }
                        return self.compute_and_store(key, freshness, f).map(|(l, _)| l);
                    }
                    Outcome::ComputeAlone => {
                        return self.compute_and_store(key, freshness, f).map(|(l, _)| l);
                    }
                    Outcome::Abandoned | Outcome::Panicked => {}
                },
                Role::Leader(guard) => {
                    return match self.lead(key, freshness, f) {
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
            }
        }
    }

    /// The leader of this process: takes the lease (or waits for the process holding it), then
    /// computes. Returns the encoded value for this process's waiters.
    #[allow(clippy::type_complexity)]
    fn lead<T, E, F>(
        &self,
        key: &str,
        freshness: &Freshness,
        f: &mut Option<F>,
    ) -> Result<(Loaded<T>, Option<Arc<[u8]>>), LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T, E>,
    {
        let inner = self.inner();
        let token = LeaseToken(fastrand::u64(..));
        let lease = freshness.lease;
        // A safety bound in real time, for clocks that do not move (a manual clock): past it the
        // leader computes whatever the store says.
        let give_up =
            Instant::now() + lease.unwrap_or_default().saturating_mul(2) + Duration::from_secs(1);
        let poll = lease.map_or(Duration::ZERO, |d| {
            (d / 50).clamp(Duration::from_millis(2), Duration::from_millis(25))
        });
        let mut waited = false;
        loop {
            // Another process (or an earlier leader here) may have stored it meanwhile.
            let now = inner.now();
            let record = inner.backend().get(key).map_err(|e| self.failed(e))?;
            if let Some(r) = record.filter(|r| !r.is_stale(now)) {
                let value = self.decode_record(key, &r)?;
                return Ok((
                    Loaded {
                        value,
                        store_error: None,
                    },
                    Some(Arc::from(r.value.as_slice())),
                ));
            }
            let Some(duration) = lease else {
                return self.compute_and_store(key, freshness, f);
            };
            let taken = inner
                .backend()
                .try_lease(key, token, duration, now)
                .unwrap_or_else(|e| {
                    // Coordination is an optimization: compute rather than fail the call.
                    warn_event!("braincache: lease on {key:?} not taken, computing anyway: {e}");
                    Lease::Uncoordinated
                });
            match taken {
                Lease::Held { .. } if Instant::now() < give_up => {
                    if !waited {
                        waited = true;
                        Counters::bump(&inner.counters.lease_waits, 1);
                        debug_event!("get_or_refresh {key:?}: waiting for another process's lease");
                    }
                    std::thread::sleep(poll);
                }
                Lease::Acquired => {
                    // The previous holder may have stored the value and released its lease
                    // between our read and our lease: look once more before computing.
                    let now = inner.now();
                    let record = match inner.backend().get(key) {
                        Ok(r) => r.filter(|r| !r.is_stale(now)),
                        Err(e) => {
                            let _ = inner.backend().release_lease(key, token);
                            return Err(self.failed(e).into());
                        }
                    };
                    if let Some(r) = record {
                        let _ = inner.backend().release_lease(key, token);
                        let value = self.decode_record(key, &r)?;
                        return Ok((
                            Loaded {
                                value,
                                store_error: None,
                            },
                            Some(Arc::from(r.value.as_slice())),
                        ));
                    }
                    let out = self.compute_and_store(key, freshness, f);
                    if let Err(e) = inner.backend().release_lease(key, token) {
                        // It ends by itself when its duration has passed.
                        warn_event!("braincache: lease on {key:?} not released: {e}");
                    }
                    return out;
                }
                _ => return self.compute_and_store(key, freshness, f),
            }
        }
    }

    /// Runs the loader on this thread and stores its value with the freshness fields.
    #[allow(clippy::type_complexity)]
    fn compute_and_store<T, E, F>(
        &self,
        key: &str,
        freshness: &Freshness,
        f: &mut Option<F>,
    ) -> Result<(Loaded<T>, Option<Arc<[u8]>>), LoadError<E>>
    where
        T: Serialize,
        F: FnOnce() -> Result<T, E>,
    {
        let Some(compute) = f.take() else {
            // Unreachable: each call computes at most once.
            return Err(LoadError::Cache(Error::Closed {
                op: Operation::Set,
                backend: "front end",
            }));
        };
        let started = Instant::now();
        let value = compute().map_err(|e| LoadError::Init(Arc::new(e)))?;
        let took = started.elapsed();
        match self.encode(key, &value) {
            Ok(bytes) => {
                let shared: Arc<[u8]> = Arc::from(bytes.as_slice());
                let store_error = self.store_fresh(key, freshness, bytes, took).err();
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

    /// Stores a computed value: fresh for the TTL, kept by the backend for TTL + window.
    fn store_fresh(
        &self,
        key: &str,
        freshness: &Freshness,
        bytes: Vec<u8>,
        took: Duration,
    ) -> crate::Result<()> {
        let inner = self.inner();
        let record = self.fresh_record(freshness, bytes, took);
        let expires_at = record.expires_at;
        // The time the record was made at: its TTL counts from there.
        let now = record.computed_at.unwrap_or_else(|| inner.now());
        inner
            .backend()
            .set_at(key, record, now)
            .map_err(|e| self.failed(e))?;
        self.stored(key, expires_at);
        Ok(())
    }

    /// The record of a value computed now in `took`: fresh for the TTL, kept by the backend for
    /// TTL + window (shared with the async front end).
    pub(crate) fn fresh_record(
        &self,
        freshness: &Freshness,
        bytes: Vec<u8>,
        took: Duration,
    ) -> Record {
        let now = self.inner().now();
        let fresh_until = now.saturating_add(freshness.ttl);
        let expires_at = fresh_until.saturating_add(freshness.window);
        Record::new(bytes, Some(expires_at))
            .with_codec(Some(C::ID))
            .with_fresh_until((!freshness.window.is_zero()).then_some(fresh_until))
            .with_computed(Some(now), Some(took))
    }

    /// Starts one background refresh of `key` (none if one is running for it in this cache, or
    /// the pool's queue is full).
    fn refresh_in_background<T, E, F>(&self, key: &str, freshness: &Freshness, f: &mut Option<F>)
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Result<T, E> + Send + 'static,
    {
        let inner = self.inner();
        if f.is_none() || !inner.refreshing.start(key) {
            return;
        }
        let Some(pool) = refresh_pool() else {
            inner.refreshing.finish(key);
            return;
        };
        let mut f = f.take();
        let cache = self.clone();
        let freshness = freshness.clone();
        let owned = key.to_owned();
        let job: Job = Box::new(move || {
            let key = owned;
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                cache.refresh_now::<T, E, F>(&key, &freshness, &mut f)
            }))
            .unwrap_or(Refreshed::Failed);
            let inner = cache.inner();
            inner.refreshing.finish(&key);
            match outcome {
                Refreshed::Stored => Counters::bump(&inner.counters.refreshes, 1),
                Refreshed::Failed => Counters::bump(&inner.counters.refresh_failures, 1),
                Refreshed::Skipped => {}
            }
        });
        if let Err(e) = pool.try_send(job) {
            // Dropping the job drops its clone of the cache; a later caller tries again.
            drop(e);
            inner.refreshing.finish(key);
        }
    }

    /// One background refresh: under the lease when the freshness has one.
    fn refresh_now<T, E, F>(&self, key: &str, freshness: &Freshness, f: &mut Option<F>) -> Refreshed
    where
        T: Serialize,
        F: FnOnce() -> Result<T, E>,
    {
        let inner = self.inner();
        let token = LeaseToken(fastrand::u64(..));
        let leased = match freshness.lease {
            None => false,
            Some(d) => match inner.backend().try_lease(key, token, d, inner.now()) {
                Ok(Lease::Held { .. }) => return Refreshed::Skipped,
                Ok(Lease::Acquired) => true,
                Ok(_) | Err(_) => false,
            },
        };
        let outcome = match self.compute_and_store(key, freshness, f) {
            Ok((
                Loaded {
                    store_error: None, ..
                },
                _,
            )) => Refreshed::Stored,
            Ok(_) | Err(_) => Refreshed::Failed,
        };
        if leased && let Err(e) = inner.backend().release_lease(key, token) {
            warn_event!("braincache: lease on {key:?} not released: {e}");
        }
        outcome
    }
}
