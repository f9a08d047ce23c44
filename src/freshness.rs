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
//!
//! The decisions live here once, without I/O, and both faces drive them — this module with
//! blocking calls and a thread pool, `future::freshness` with `.await` and spawned tasks:
//! [`Freshness::verdict`] (fresh, early refresh, stale or miss, XFetch's draw), [`LeaderPlan`]
//! (the leader's lease: read, take, wait, compute) and [`RefreshStart`] / [`Refreshing`]
//! (whether a background refresh runs, and which process runs it). A miss goes through the
//! single flight of `memo` (`SingleFlight`, `Lead`), as `get_or_insert_with` does.

use crate::cache::{BrainCache, LoadError};
use crate::load::Sharing;
use crate::log::{debug_event, warn_event};
use crate::memo::{self, Lead, Loaded, OnPanic, SingleFlight, strict, strict_infallible};
use crate::stats::Counters;
use braincache_core::{Backend, Codec, Error, Lease, LeaseToken, Operation, Record, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, OnceLock, PoisonError};
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

    /// True when values may be refreshed in the background (a stale window or early refresh).
    pub(crate) fn refreshes(&self) -> bool {
        !self.window.is_zero() || self.beta > 0.0
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

/// What a `get_or_refresh` caller does with the record it read: the decision both faces (sync
/// and async) take, without I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Fresh: return it.
    Fresh,
    /// Fresh, and XFetch drew an early refresh: return it and refresh in the background.
    RefreshEarly,
    /// Past its fresh deadline, within the stale window: return it at once and refresh in the
    /// background.
    Stale,
    /// Absent, or past the window: compute it (under the single flight and the lease).
    Miss,
}

impl Freshness {
    /// The [`Verdict`] on `record` at `now`.
    pub(crate) fn verdict(&self, record: Option<&Record>, now: Timestamp) -> Verdict {
        match record {
            Some(r) if r.is_expired(now) => Verdict::Miss,
            Some(r) if r.is_stale(now) => Verdict::Stale,
            Some(r) if self.refresh_early(r, now) => Verdict::RefreshEarly,
            Some(_) => Verdict::Fresh,
            None => Verdict::Miss,
        }
    }
}

/// Which value a background refresh replaces: the fresh deadline of the record it was started
/// from. A lease held elsewhere holds back this process's refreshes only for the same round.
pub(crate) type Round = Option<Timestamp>;

/// Per key, a background refresh running in this process, or another process refreshing it.
enum Refresh {
    Running,
    /// Another process held the lease when this round's refresh tried to take it; until the
    /// lease ends, no caller here starts another refresh of the same round (each try would be
    /// a write transaction, a file lock or a round trip, only to find the lease held again).
    Elsewhere {
        round: Round,
        until: Timestamp,
        /// `until` is on the cache's clock, but a server-timed lease (Redis, memcached) ends in
        /// real time: with a manual clock standing still, `until` would never pass. A lease
        /// lasts at most the duration asked, so this process tries again by then either way.
        retry_by: Instant,
    },
}

/// How many entries the map may hold before the ended `Elsewhere` ones are dropped (then at
/// each doubling): keys another process refreshed and nobody here read again would otherwise
/// stay for good.
const PRUNE_FROM: usize = 1024;

/// The keys a background refresh is running for, per cache: one at a time per key, and none
/// while another process holds the key's lease for the same round.
#[derive(Default)]
pub(crate) struct Refreshing {
    keys: Mutex<HashMap<String, Refresh>>,
}

impl Refreshing {
    /// True when the caller should start a refresh of `key` (and is now the one running it).
    pub(crate) fn start(&self, key: &str, round: Round, now: Timestamp) -> bool {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        match keys.get(key) {
            Some(Refresh::Running) => false,
            Some(Refresh::Elsewhere {
                round: r,
                until,
                retry_by,
            }) if *r == round && now < *until && Instant::now() < *retry_by => false,
            _ => {
                keys.insert(key.to_owned(), Refresh::Running);
                true
            }
        }
    }

    /// The refresh of `key` ended; the next caller to find it stale may start another.
    pub(crate) fn finish(&self, key: &str) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// The refresh of `key` found its lease held by another process until `until` (on the
    /// cache's clock), for at most `hold` (the lease duration asked) in real time.
    fn elsewhere(&self, key: &str, round: Round, until: Timestamp, hold: Duration) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let retry_by = Instant::now() + hold;
        keys.insert(
            key.to_owned(),
            Refresh::Elsewhere {
                round,
                until,
                retry_by,
            },
        );
        if keys.len() >= PRUNE_FROM && keys.len().is_power_of_two() {
            let now = Instant::now();
            keys.retain(
                |_, r| !matches!(r, Refresh::Elsewhere { retry_by, .. } if *retry_by <= now),
            );
        }
    }
}

/// How a background refresh starts, given its attempt at the lease (none without one).
pub(crate) enum RefreshStart {
    /// Compute and store, then release the lease.
    Leased,
    /// Compute and store: no lease asked, or the store does not coordinate (or failed to).
    Unleased,
    /// Another process holds the lease until `until`, for at most `hold` (the duration asked)
    /// in real time: it is refreshing.
    Skip { until: Timestamp, hold: Duration },
}

impl RefreshStart {
    /// The decision on `taken`, the answer of `try_lease` for `duration` asked at `now`.
    pub(crate) fn from_lease(
        taken: Option<crate::Result<Lease>>,
        now: Timestamp,
        duration: Duration,
    ) -> RefreshStart {
        match taken {
            Some(Ok(Lease::Acquired)) => RefreshStart::Leased,
            Some(Ok(Lease::Held { until })) => RefreshStart::Skip {
                until: until.unwrap_or_else(|| now.saturating_add(duration)),
                hold: duration,
            },
            _ => RefreshStart::Unleased,
        }
    }
}

/// What one background refresh did.
pub(crate) enum Refreshed {
    Stored,
    Failed,
    /// Another process holds the key's lease: it is refreshing.
    Skipped {
        until: Timestamp,
        hold: Duration,
    },
}

impl Refreshed {
    /// A refresh that computed a value and stored it, or not.
    pub(crate) fn of(stored: bool) -> Refreshed {
        if stored {
            Refreshed::Stored
        } else {
            Refreshed::Failed
        }
    }
}

/// The next step of a process's leader on a miss: the state machine of the lease, driven by the
/// sync face with blocking calls and by the async face with `.await`s.
pub(crate) enum Step<T, E> {
    /// Read the store: a fresh value there ends the load.
    Read,
    /// Try to take the lease for this duration.
    TryLease(Duration),
    /// Another process holds the lease: wait this long, then read again.
    Wait(Duration),
    /// Compute the value and store it (then release the lease, if taken).
    Compute,
    /// The load's result (then release the lease, if taken).
    Done(Result<Loaded<T>, LoadError<E>>),
}

/// The leader's lease: taken or not, how long to poll another holder, when to give up.
pub(crate) struct LeaderPlan {
    lease: Option<Duration>,
    pub(crate) token: LeaseToken,
    acquired: bool,
    /// Counted once per load, however often it polls.
    waited: bool,
    /// A bound in real time, for clocks that do not move (a manual clock): past it the leader
    /// computes whatever the store says.
    give_up: Instant,
    poll: Duration,
}

impl LeaderPlan {
    pub(crate) fn new(freshness: &Freshness) -> LeaderPlan {
        let lease = freshness.lease;
        LeaderPlan {
            lease,
            token: LeaseToken(fastrand::u64(..)),
            acquired: false,
            waited: false,
            give_up: Instant::now()
                + lease.unwrap_or_default().saturating_mul(2)
                + Duration::from_secs(1),
            poll: lease.map_or(Duration::ZERO, |d| {
                (d / 50).clamp(Duration::from_millis(2), Duration::from_millis(25))
            }),
        }
    }

    /// After the leader's read of the store: a fresh value ends the load (as does an error).
    pub(crate) fn read<B: Backend, C: Codec, T: DeserializeOwned, E>(
        &self,
        cache: &BrainCache<B, C>,
        key: &str,
        read: crate::Result<Option<Record>>,
    ) -> Step<T, E> {
        let read = read.map_err(|e| cache.failed(e));
        match read.and_then(|record| cache.fresh_value(key, record)) {
            Ok(None) => self.not_found(),
            Ok(Some(value)) => Step::Done(Ok(Loaded::found(value))),
            Err(e) => Step::Done(Err(e.into())),
        }
    }

    /// After a read that found no fresh value.
    pub(crate) fn not_found<T, E>(&self) -> Step<T, E> {
        match self.lease {
            // With the lease taken, that read was the look after taking it: the previous holder
            // may have stored the value and released between our first read and our lease.
            Some(duration) if !self.acquired => Step::TryLease(duration),
            _ => Step::Compute,
        }
    }

    /// After `try_lease` answered `taken`; counts the first wait in `counters`.
    pub(crate) fn leased<T, E>(
        &mut self,
        key: &str,
        taken: crate::Result<Lease>,
        counters: &Counters,
    ) -> Step<T, E> {
        let taken = taken.unwrap_or_else(|e| {
            // Coordination is an optimization: compute rather than fail the call.
            warn_event!("braincache: lease on {key:?} not taken, computing anyway: {e}");
            Lease::Uncoordinated
        });
        match taken {
            Lease::Held { .. } if Instant::now() < self.give_up => {
                if !self.waited {
                    self.waited = true;
                    counters.lease_waits.bump(1);
                    debug_event!("get_or_refresh {key:?}: waiting for another process's lease");
                }
                Step::Wait(self.poll)
            }
            Lease::Acquired => {
                self.acquired = true;
                Step::Read
            }
            _ => Step::Compute,
        }
    }

    /// The token to release when the load ends, if the lease was taken.
    pub(crate) fn to_release(&self) -> Option<LeaseToken> {
        self.acquired.then_some(self.token)
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

impl<B: Backend, C: Codec> BrainCache<B, C> {
    /// The value under `key` as `freshness` keeps it: fresh, it is returned; stale (within the
    /// stale-while-revalidate window), it is returned at once and refreshed in the background;
    /// missing or past the window, `loader` computes it (once per key in this process, and once
    /// across processes with a [lease](Freshness::lease)), it is stored and returned.
    ///
    /// The loader runs on a thread of a small shared pool when it refreshes in the background,
    /// hence `Send + 'static`. A caller that finds a stale value only reads and hands the
    /// refresh to the pool: taking the lease, the loader and the write all happen there. A
    /// background refresh that panics counts as a failed refresh.
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
        let mut f = Some(move || Ok::<T, Infallible>(loader()));
        strict_infallible(self.refresh_load(key, freshness, &mut f))
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
        strict(self.refresh_load(key, freshness, &mut Some(loader)))
    }

    /// The first read's record judged, counted and decoded (both faces): `Some` is the value to
    /// return at once, with the round to refresh in the background if it needs one; `None` is
    /// a miss, for the caller to load.
    pub(crate) fn serve<T: DeserializeOwned>(
        &self,
        key: &str,
        freshness: &Freshness,
        record: Option<Record>,
    ) -> crate::Result<Option<(T, Option<Round>)>> {
        let inner = self.inner();
        let verdict = freshness.verdict(record.as_ref(), inner.now());
        let counter = match verdict {
            Verdict::Fresh | Verdict::RefreshEarly => &inner.counters.hits,
            Verdict::Stale => &inner.counters.stale_served,
            Verdict::Miss => &inner.counters.misses,
        };
        counter.bump(1);
        debug_event!("get_or_refresh {key:?}: {verdict:?}");
        let Some(r) = record.filter(|_| verdict != Verdict::Miss) else {
            return Ok(None);
        };
        let value = self.decode_record(key, &r)?;
        let refresh = (verdict != Verdict::Fresh).then(|| r.fresh_deadline());
        Ok(Some((value, refresh)))
    }

    /// The value of `record` when it is fresh, decoded (both faces: the single flight's and the
    /// leader's looks at the store).
    pub(crate) fn fresh_value<T: DeserializeOwned>(
        &self,
        key: &str,
        record: Option<Record>,
    ) -> crate::Result<Option<T>> {
        let now = self.inner().now();
        record
            .filter(|r| !r.is_stale(now))
            .map(|r| self.decode_record(key, &r))
            .transpose()
    }

    /// The result of storing a computed value's record (both faces): counted either way.
    pub(crate) fn after_store(
        &self,
        key: &str,
        deadline: Option<Timestamp>,
        stored: crate::Result<()>,
    ) -> crate::Result<()> {
        match stored {
            Ok(()) => {
                self.stored(key, deadline);
                Ok(())
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    /// The record of a value computed now in `took`: fresh for the TTL, kept by the backend for
    /// TTL + window.
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

    /// After a background refresh (both faces): count it, and let the next one start (or hold
    /// the round back while another process refreshes it).
    pub(crate) fn refresh_done(&self, key: &str, round: Round, outcome: Refreshed) {
        let inner = self.inner();
        match outcome {
            Refreshed::Stored => inner.counters.refreshes.bump(1),
            Refreshed::Failed => inner.counters.refresh_failures.bump(1),
            Refreshed::Skipped { until, hold } => {
                return inner.refreshing.elsewhere(key, round, until, hold);
            }
        }
        inner.refreshing.finish(key);
    }

    /// The machinery of `get_or_refresh`: the stored value served (and refreshed in the
    /// background when it needs it), or computed under the single flight and the lease. `f` is
    /// taken only when it runs (here or in the background), so a caller that gets a cache
    /// error before that still has it.
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
        if let Some((value, refresh)) = self.serve(key, freshness, record)? {
            if let Some(round) = refresh {
                self.refresh_in_background(key, freshness, round, f);
            }
            return Ok(Loaded {
                value,
                store_error: None,
            });
        }
        if freshness.refreshes() {
            // Started now, with the value's first load, so that the first stale read does not
            // pay for starting the pool's threads (about 0.1 ms).
            refresh_pool();
        }
        // A miss: one computation per key in this process (memo's single flight: the others
        // wait for its value) and, with a lease, across processes (the leader drives
        // `LeaderPlan`). The first look counted; the flight's looks do not.
        let mut flight = SingleFlight::<E, Sharing>::new(inner.loads(), key, OnPanic::TakeOver);
        let mut step = flight.missed();
        let lead = loop {
            step = match step {
                memo::Step::Lookup { .. } => {
                    let record = inner.backend().get(key).map_err(|e| self.failed(e))?;
                    match self.fresh_value(key, record)? {
                        Some(value) => return Ok(Loaded::found(value)),
                        None => flight.missed(),
                    }
                }
                memo::Step::Wait(slot) => flight.waited(slot.wait()),
                memo::Step::Received(bytes) => {
                    return Ok(Loaded::found(self.decode(key, &bytes)?));
                }
                memo::Step::Fail(e) => return Err(self.failed_load(e)),
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
                Step::Read => plan.read(self, key, inner.backend().get(key)),
                Step::TryLease(d) => {
                    let taken = inner.backend().try_lease(key, plan.token, d, inner.now());
                    plan.leased(key, taken, &inner.counters)
                }
                Step::Wait(d) => {
                    std::thread::sleep(d);
                    Step::Read
                }
                Step::Compute => Step::Done(match lead.take() {
                    Some(lead) => self.lead_compute(key, freshness, lead, f),
                    None => Err(ran_twice()),
                }),
                Step::Done(result) => break result,
            };
        };
        if let Some(token) = plan.to_release()
            && let Err(e) = inner.backend().release_lease(key, token)
        {
            // It ends by itself when its duration has passed.
            warn_event!("braincache: lease on {key:?} not released: {e}");
        }
        result
    }

    /// The leader computes on this thread and stores the value with the freshness fields; its
    /// waiters receive the value (or its error) through `lead`.
    fn lead_compute<T, E, F>(
        &self,
        key: &str,
        freshness: &Freshness,
        lead: Lead<'_>,
        f: &mut Option<F>,
    ) -> Result<Loaded<T>, LoadError<E>>
    where
        T: Serialize,
        E: Send + Sync + 'static,
        F: FnOnce() -> Result<T, E>,
    {
        let compute = lead.take(f)?;
        let started = Instant::now();
        let computed = compute();
        let took = started.elapsed();
        match lead.computed::<T, E, Sharing>(computed, |v| self.encode(key, v)) {
            memo::Computed::Store(storing, bytes) => {
                Ok(storing.stored(self.store_fresh(key, freshness, bytes, took)))
            }
            memo::Computed::Done(result) => result,
        }
    }

    /// Stores a value computed in `took`: fresh for the TTL, kept by the backend for TTL +
    /// window.
    fn store_fresh(
        &self,
        key: &str,
        freshness: &Freshness,
        bytes: Vec<u8>,
        took: Duration,
    ) -> crate::Result<()> {
        let record = self.fresh_record(freshness, bytes, took);
        let deadline = record.expires_at;
        // The time the record was made at: its TTL counts from there.
        let now = record.computed_at.unwrap_or_else(|| self.inner().now());
        let stored = self.inner().backend().set_at(key, record, now);
        self.after_store(key, deadline, stored)
    }

    /// Hands one refresh of `key` to the shared pool (none if one is running for it in this
    /// cache, another process is refreshing this round, or the pool's queue is full). The
    /// caller returns at once: the lease, the loader and the write all run on the pool.
    fn refresh_in_background<T, E, F>(
        &self,
        key: &str,
        freshness: &Freshness,
        round: Round,
        f: &mut Option<F>,
    ) where
        T: Serialize + Send + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Result<T, E> + Send + 'static,
    {
        let inner = self.inner();
        if f.is_none() || !inner.refreshing.start(key, round, inner.now()) {
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
                let backend = cache.inner().backend();
                let token = LeaseToken(fastrand::u64(..));
                let now = cache.inner().now();
                let taken = freshness
                    .lease
                    .map(|d| backend.try_lease(&key, token, d, now));
                let start =
                    RefreshStart::from_lease(taken, now, freshness.lease.unwrap_or_default());
                if let RefreshStart::Skip { until, hold } = start {
                    return Refreshed::Skipped { until, hold };
                }
                let started = Instant::now();
                let outcome = match f.take().map(|compute| compute()) {
                    Some(Ok(value)) => {
                        let took = started.elapsed();
                        let stored = cache
                            .encode(&key, &value)
                            .and_then(|bytes| cache.store_fresh(&key, &freshness, bytes, took));
                        Refreshed::of(stored.is_ok())
                    }
                    _ => Refreshed::Failed,
                };
                if let RefreshStart::Leased = start
                    && let Err(e) = backend.release_lease(&key, token)
                {
                    warn_event!("braincache: lease on {key:?} not released: {e}");
                }
                outcome
            }))
            .unwrap_or(Refreshed::Failed);
            cache.refresh_done(&key, round, outcome);
        });
        if let Err(e) = pool.try_send(job) {
            // Dropping the job drops its clone of the cache; a later caller tries again.
            drop(e);
            inner.refreshing.finish(key);
        }
    }
}

/// The error of a second computation in one call, which the code paths never make.
pub(crate) fn ran_twice<E>() -> LoadError<E> {
    LoadError::Cache(Error::Closed {
        op: Operation::Set,
        backend: "front end",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix_nanos(secs * 1_000_000_000)
    }

    /// A record computed at 100 s in 1 s: fresh until 110 s, kept until 115 s.
    fn record() -> Record {
        Record::new(vec![1], Some(at(115)))
            .with_fresh_until(Some(at(110)))
            .with_computed(Some(at(100)), Some(Duration::from_secs(1)))
    }

    #[test]
    fn verdicts_follow_the_record_s_age() {
        let f =
            Freshness::new(Duration::from_secs(10)).stale_while_revalidate(Duration::from_secs(5));
        let r = record();
        assert_eq!(f.verdict(None, at(100)), Verdict::Miss);
        assert_eq!(f.verdict(Some(&r), at(105)), Verdict::Fresh);
        assert_eq!(
            f.verdict(Some(&r), at(110)),
            Verdict::Stale,
            "at the deadline"
        );
        assert_eq!(f.verdict(Some(&r), at(114)), Verdict::Stale);
        assert_eq!(
            f.verdict(Some(&r), at(115)),
            Verdict::Miss,
            "past the window"
        );
        // Without a window, the deadline is the end: a miss, never stale.
        let plain = Record::new(vec![1], Some(at(110)));
        assert_eq!(f.verdict(Some(&plain), at(110)), Verdict::Miss);
    }

    #[test]
    fn xfetch_refreshes_early_only_near_the_deadline() {
        let f = Freshness::new(Duration::from_secs(10))
            .early_refresh(1.0)
            .random_seed(7);
        let r = record();
        // 1 s of compute time: −ln(u) ≥ 9 (9 s before the deadline) has odds e^−9 per call.
        let far = (0..1_000)
            .filter(|_| f.verdict(Some(&r), at(101)) == Verdict::RefreshEarly)
            .count();
        // At the deadline's very edge every draw refreshes (the gap is 0).
        let near = Timestamp::from_unix_nanos(110 * 1_000_000_000 - 1);
        assert!(far <= 2, "{far} early refreshes 9 s before the deadline");
        assert_eq!(f.verdict(Some(&r), near), Verdict::RefreshEarly);
        // A record without its compute time never refreshes early.
        let unknown = Record::new(vec![1], Some(at(110)));
        assert_eq!(f.verdict(Some(&unknown), near), Verdict::Fresh);
    }

    #[test]
    fn a_lease_held_elsewhere_holds_back_only_its_round_until_it_ends() {
        let r = Refreshing::default();
        let (round, next) = (Some(at(110)), Some(at(120)));
        assert!(r.start("k", round, at(111)));
        assert!(!r.start("k", round, at(111)), "one refresh at a time");
        r.elsewhere("k", round, at(113), HOLD);
        assert!(!r.start("k", round, at(112)));
        assert!(r.start("other", round, at(112)), "per key");
        assert!(
            r.start("k", next, at(112)),
            "a newer value's round is not held back"
        );
        r.finish("k");
        r.elsewhere("k", round, at(113), HOLD);
        assert!(r.start("k", round, at(113)), "the lease ended");
    }

    const HOLD: Duration = Duration::from_secs(600);

    #[test]
    fn a_lease_held_elsewhere_holds_back_no_longer_than_its_duration_in_real_time() {
        // A server-timed lease ends in real time even when the cache's clock stands still.
        let r = Refreshing::default();
        let round = Some(at(110));
        assert!(r.start("k", round, at(111)));
        r.elsewhere("k", round, at(1_000), Duration::ZERO);
        assert!(
            r.start("k", round, at(111)),
            "the lease's duration has passed in real time"
        );
    }

    #[test]
    fn ended_leases_held_elsewhere_are_dropped_as_the_map_grows() {
        let r = Refreshing::default();
        let round = Some(at(110));
        for i in 0..4 * PRUNE_FROM {
            r.elsewhere(&format!("ended-{i}"), round, at(111), Duration::ZERO);
        }
        r.elsewhere("held", round, at(1_000), HOLD);
        let keys = r.keys.lock().unwrap();
        assert!(
            keys.len() < PRUNE_FROM,
            "{} entries kept for leases that ended",
            keys.len()
        );
        assert!(keys.contains_key("held"), "a lease still held is kept");
    }

    #[test]
    fn a_refresh_skips_only_when_the_lease_is_held() {
        let d = Duration::from_secs(3);
        let start = |taken| RefreshStart::from_lease(taken, at(100), d);
        assert!(matches!(start(None), RefreshStart::Unleased));
        assert!(matches!(
            start(Some(Ok(Lease::Acquired))),
            RefreshStart::Leased
        ));
        assert!(matches!(
            start(Some(Ok(Lease::Uncoordinated))),
            RefreshStart::Unleased
        ));
        let held = start(Some(Ok(Lease::Held { until: None })));
        assert!(
            matches!(held, RefreshStart::Skip { until, hold } if until == at(103) && hold == d)
        );
        let closed = Error::Closed {
            op: Operation::Lease,
            backend: "test",
        };
        assert!(matches!(start(Some(Err(closed))), RefreshStart::Unleased));
    }

    #[test]
    fn the_leader_reads_takes_the_lease_reads_again_then_computes() {
        let counters = Counters::default();
        let f = Freshness::new(Duration::from_secs(10)).lease(Duration::from_secs(1));
        let mut plan = LeaderPlan::new(&f);
        assert!(
            matches!(plan.not_found::<(), ()>(), Step::TryLease(d) if d == Duration::from_secs(1))
        );
        let held = Ok(Lease::Held { until: None });
        assert!(
            matches!(plan.leased::<(), ()>("k", held, &counters), Step::Wait(d) if d == Duration::from_millis(20))
        );
        let held = Ok(Lease::Held { until: None });
        assert!(matches!(
            plan.leased::<(), ()>("k", held, &counters),
            Step::Wait(_)
        ));
        assert_eq!(counters.snapshot(0).lease_waits, 1, "one wait per load");
        assert_eq!(plan.to_release(), None);
        assert!(matches!(
            plan.leased::<(), ()>("k", Ok(Lease::Acquired), &counters),
            Step::Read
        ));
        assert!(
            matches!(plan.not_found::<(), ()>(), Step::Compute),
            "read again, then compute"
        );
        assert_eq!(plan.to_release(), Some(plan.token));

        // No lease: compute at once; a store that does not coordinate: compute.
        assert!(matches!(
            LeaderPlan::new(&Freshness::new(Duration::from_secs(1))).not_found::<(), ()>(),
            Step::Compute
        ));
        let mut plan = LeaderPlan::new(&f);
        assert!(matches!(
            plan.leased::<(), ()>("k", Ok(Lease::Uncoordinated), &counters),
            Step::Compute
        ));
        assert_eq!(plan.to_release(), None);
    }
}
