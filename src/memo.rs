//! Memoization: how a computed value meets the cache. The `#[cache]` macro's generated code (in
//! `__private`, sync, and `future::macro_support`, async) and `BrainCache::get_or_insert_with`
//! and its siblings all come here.
//!
//! Everything that decides is here, without I/O, and both faces drive it: the sync face with
//! blocking calls, the async face (`crate::future`) with `.await`. Only the calls differ.
//!
//! - [`SingleFlight`]: the single flight as a state machine. Within a process, one caller per
//!   key computes; the others wait for its value (or, as `S` says, its error). It says what to
//!   do next ([`Step`]): look up, wait, decode what the leader sent, fail, or compute; a
//!   computing caller gets a [`Lead`], which turns the computation's result into what to store
//!   and what the waiters receive.
//! - [`Policy`], [`Plain`], [`Fallible`], [`Optional`]: the return shapes of the macro, where a
//!   cache error never changes the function's result: a read error runs the function uncached,
//!   a decode error (the function's return type changed) rewrites the entry with the fresh
//!   value ([`repair_value`]), a store error still returns the value. [`Optional`] does not
//!   store `None` (the `Option` policy; `BrainCache::optionally_get_or_insert_with` is its
//!   public form).
//! - [`strict`], [`strict_infallible`], [`strict_optional`]: what the public memoizing calls
//!   return, where a failed store is the call's error.

use crate::BrainCache;
use crate::cache::LoadError;
use crate::load::{ErrorSharing, Flight, LeaderGuard, Loads, NoSharing, Outcome, Role, Sharing};
use braincache_core::{Backend, Codec, Error, Operation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// What a memoizing load did, for callers (the `#[cache]` macro) that treat cache errors as
/// misses rather than failures.
pub(crate) struct Loaded<T> {
    pub(crate) value: T,
    /// Storing the computed value failed; the value is still good.
    pub(crate) store_error: Option<Error>,
}

impl<T> Loaded<T> {
    /// A value read from the cache or received from the leader: nothing was stored.
    pub(crate) fn found(value: T) -> Self {
        Loaded {
            value,
            store_error: None,
        }
    }
}

/// What a waiter does when the computation it waited for panicked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum OnPanic {
    /// Look up again and compute if still missing (the sync face: a panicking sync leader is
    /// an abandoned one).
    TakeOver,
    /// Fail with [`Error::Task`] (the async face).
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    Fail,
}

/// One memoizing call's way through the single flight, without I/O. The caller starts with
/// [`start`](Self::start) and does what each [`Step`] says, reporting back with
/// [`missed`](Self::missed) or [`waited`](Self::waited), until it returns or computes.
///
/// A leader's guard lives in this value: dropping it (a `?` on a lookup error, a found value, a
/// cancelled async call) abandons the flight, and one waiter takes over.
pub(crate) struct SingleFlight<'a, E, S> {
    loads: &'a Loads,
    key: &'a str,
    on_panic: OnPanic,
    leader: Option<LeaderGuard<'a>>,
    sharing: PhantomData<fn() -> (E, S)>,
}

/// What a memoizing call does next.
pub(crate) enum Step<'a, E> {
    /// Look the key up, counting a hit or a miss only when `count` (one call counts once).
    /// Return a live value; report a miss with [`SingleFlight::missed`].
    Lookup { count: bool },
    /// Wait for another caller's computation; report its outcome with [`SingleFlight::waited`].
    Wait(Arc<Flight>),
    /// The leader's encoded value: decode and return it.
    Received(Arc<[u8]>),
    /// Return this error (the leader's shared error, or a panicked leader's).
    Fail(LoadError<E>),
    /// Compute the value: this caller leads, or computes alone.
    Compute(Lead<'a>),
}

impl<'a, E, S: ErrorSharing<E>> SingleFlight<'a, E, S> {
    pub(crate) fn new(loads: &'a Loads, key: &'a str, on_panic: OnPanic) -> Self {
        SingleFlight {
            loads,
            key,
            on_panic,
            leader: None,
            sharing: PhantomData,
        }
    }

    /// The first step: a lookup that counts.
    pub(crate) fn start(&self) -> Step<'a, E> {
        Step::Lookup { count: true }
    }

    /// The lookup found nothing. A new leader looks once more (a previous leader may have
    /// stored the value between our miss and our election), then computes.
    pub(crate) fn missed(&mut self) -> Step<'a, E> {
        if let Some(guard) = self.leader.take() {
            return Step::Compute(Lead { guard: Some(guard) });
        }
        match self.loads.join(self.key) {
            Role::Leader(guard) => {
                self.leader = Some(guard);
                Step::Lookup { count: false }
            }
            Role::Waiter(flight) => Step::Wait(flight),
        }
    }

    /// The computation this call waited for ended with `outcome`.
    pub(crate) fn waited(&mut self, outcome: Outcome) -> Step<'a, E> {
        match outcome {
            Outcome::Value(bytes) => Step::Received(bytes),
            Outcome::Failed(err) => match S::receive(err) {
                Some(e) => Step::Fail(LoadError::Init(e)),
                // Another call site with another error type: compute alone.
                None => Step::Compute(Lead { guard: None }),
            },
            Outcome::ComputeAlone => Step::Compute(Lead { guard: None }),
            Outcome::Abandoned => Step::Lookup { count: false },
            Outcome::Panicked => match self.on_panic {
                OnPanic::TakeOver => Step::Lookup { count: false },
                OnPanic::Fail => Step::Fail(LoadError::Cache(Error::Task {
                    op: Operation::Get,
                    key: Some(self.key.to_owned()),
                    detail: "the loader computing this value panicked in another caller \
                             (the next call computes it again)"
                        .into(),
                })),
            },
        }
    }
}

/// The right to compute: as the flight's leader (waiters receive what it computes) or alone.
pub(crate) struct Lead<'a> {
    guard: Option<LeaderGuard<'a>>,
}

/// What a [`Lead`] does with its computation's result.
pub(crate) enum Computed<'a, T, E> {
    /// Store these bytes (encoded from the value), then call [`Storing::stored`].
    Store(Storing<'a, T>, Vec<u8>),
    /// The call's result: nothing to store.
    Done(Result<Loaded<T>, LoadError<E>>),
}

/// A computed value on its way to the backend.
pub(crate) struct Storing<'a, T> {
    lead: Lead<'a>,
    shared: Arc<[u8]>,
    value: T,
}

impl<'a> Lead<'a> {
    fn finish(self, outcome: Outcome) {
        if let Some(guard) = self.guard {
            guard.finish(outcome);
        }
    }

    /// The caller's closure, taken only now, so a caller that got a cache error before
    /// computing still has it.
    pub(crate) fn take<F, E>(&self, f: &mut Option<F>) -> Result<F, LoadError<E>> {
        // `None` is unreachable: `f` is taken only here, and this point is reached once.
        f.take().ok_or(LoadError::Cache(Error::Closed {
            op: Operation::Set,
            backend: "front end",
        }))
    }

    /// The computation panicked (the async face catches it to say so): the waiters learn it,
    /// then the panic goes on to this caller.
    #[cfg(feature = "async")]
    pub(crate) fn panicked(self, panic: Box<dyn std::any::Any + Send>) -> ! {
        self.finish(Outcome::Panicked);
        std::panic::resume_unwind(panic)
    }

    /// The computation returned `computed`; `encode` turns a value into the bytes to store.
    pub(crate) fn computed<T, E, S: ErrorSharing<E>>(
        self,
        computed: Result<T, E>,
        encode: impl FnOnce(&T) -> braincache_core::Result<Vec<u8>>,
    ) -> Computed<'a, T, E> {
        match computed {
            Ok(value) => match encode(&value) {
                Ok(bytes) => Computed::Store(
                    Storing {
                        lead: self,
                        shared: Arc::from(bytes.as_slice()),
                        value,
                    },
                    bytes,
                ),
                // The value is good even if the codec cannot store it: hand it back.
                Err(e) => {
                    self.finish(Outcome::ComputeAlone);
                    Computed::Done(Ok(Loaded {
                        value,
                        store_error: Some(e),
                    }))
                }
            },
            Err(e) => {
                let e = Arc::new(e);
                self.finish(S::share(&e).map_or(Outcome::ComputeAlone, Outcome::Failed));
                Computed::Done(Err(LoadError::Init(e)))
            }
        }
    }
}

impl<T> Storing<'_, T> {
    /// The store ended with `result`: the waiters receive the value either way.
    pub(crate) fn stored(self, result: braincache_core::Result<()>) -> Loaded<T> {
        self.lead.finish(Outcome::Value(self.shared));
        Loaded {
            value: self.value,
            store_error: result.err(),
        }
    }
}

impl<B: Backend, C: Codec> BrainCache<B, C> {
    /// The single flight, sync: `f` is taken only when this caller computes. `S` says whether
    /// waiters receive the closure's error or compute themselves.
    pub(crate) fn load<T, E, F, S>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        f: &mut Option<F>,
    ) -> Result<Loaded<T>, LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T, E>,
        S: ErrorSharing<E>,
    {
        let mut flight = SingleFlight::<E, S>::new(self.inner().loads(), key, OnPanic::TakeOver);
        let mut step = flight.start();
        let lead = loop {
            step = match step {
                Step::Lookup { count } => match self.lookup::<T>(key, count)? {
                    Some(value) => return Ok(Loaded::found(value)),
                    None => flight.missed(),
                },
                Step::Wait(slot) => flight.waited(slot.wait()),
                Step::Received(bytes) => return Ok(Loaded::found(self.decode(key, &bytes)?)),
                Step::Fail(e) => return Err(self.failed_load(e)),
                Step::Compute(lead) => break lead,
            }
        };
        let compute = lead.take(f)?;
        match lead.computed::<T, E, S>(compute(), |v| self.encode(key, v)) {
            Computed::Store(storing, bytes) => Ok(storing.stored(self.set_bytes(key, bytes, ttl))),
            Computed::Done(result) => result,
        }
    }

    /// Counts and logs a cache error on its way to the caller (a closure's error is not the
    /// cache's).
    pub(crate) fn failed_load<E>(&self, e: LoadError<E>) -> LoadError<E> {
        match e {
            LoadError::Cache(e) => LoadError::Cache(self.failed(e)),
            e => e,
        }
    }
}

/// What `get_or_insert_with` and its siblings return: a failed store is the call's error (the
/// computed value is lost), unlike the macro's policies.
pub(crate) fn strict<T, E>(loaded: Result<Loaded<T>, LoadError<E>>) -> Result<T, LoadError<E>> {
    match loaded? {
        Loaded {
            store_error: Some(e),
            ..
        } => Err(LoadError::Cache(e)),
        Loaded { value, .. } => Ok(value),
    }
}

/// [`strict`] for a computation that cannot fail.
pub(crate) fn strict_infallible<T>(
    loaded: Result<Loaded<T>, LoadError<Infallible>>,
) -> braincache_core::Result<T> {
    match strict(loaded) {
        Ok(value) => Ok(value),
        Err(LoadError::Cache(e)) => Err(e),
        Err(LoadError::Init(never)) => match *never {},
    }
}

/// [`strict`] for a computation whose `None` is not stored (handed to `load` as [`SkipNone`]).
pub(crate) fn strict_optional<T>(
    loaded: Result<Loaded<T>, LoadError<SkipNone>>,
) -> braincache_core::Result<Option<T>> {
    match strict(loaded) {
        Ok(value) => Ok(Some(value)),
        Err(LoadError::Init(_)) => Ok(None),
        Err(LoadError::Cache(e)) => Err(e),
    }
}

/// The `None` of a `skip_none` function, handed to `load` as an "error" so it is not stored, and
/// shared with concurrent callers so they return `None` too instead of computing again.
pub(crate) struct SkipNone;

/// A memoized function's return shape, as the `#[cache]` macro's policies see it: what is
/// stored, what is returned without storing it (a *miss*), and whether concurrent callers share
/// a miss.
pub(crate) trait Policy {
    /// What the function returns.
    type Out;
    /// What is stored.
    type Stored: Serialize + DeserializeOwned;
    /// What is returned and not stored.
    type Miss;
    /// Whether callers waiting on the same computation receive its miss.
    type Sharing: ErrorSharing<Self::Miss>;
    /// The function's result, as `load` takes it.
    fn split(out: Self::Out) -> Result<Self::Stored, Self::Miss>;
    /// A value read from the cache or computed.
    fn value(stored: Self::Stored) -> Self::Out;
    /// A miss, this call's own or shared by the caller it waited for.
    fn miss(miss: Arc<Self::Miss>) -> Self::Out;
    /// What to store of a result computed outside `load` (a refresh, a repair); `None` for a
    /// miss.
    fn storable(out: &Self::Out) -> Option<&Self::Stored>;

    /// [`split`](Self::split) undone.
    fn join(split: Result<Self::Stored, Self::Miss>) -> Self::Out {
        match split {
            Ok(stored) => Self::value(stored),
            Err(miss) => Self::miss(Arc::new(miss)),
        }
    }
}

/// A function returning `T`: every value is stored.
pub(crate) struct Plain<T>(PhantomData<T>);

impl<T: Serialize + DeserializeOwned> Policy for Plain<T> {
    type Out = T;
    type Stored = T;
    type Miss = Infallible;
    type Sharing = NoSharing;
    fn split(out: T) -> Result<T, Infallible> {
        Ok(out)
    }
    fn value(stored: T) -> T {
        stored
    }
    fn miss(miss: Arc<Infallible>) -> T {
        match *miss {}
    }
    fn storable(out: &T) -> Option<&T> {
        Some(out)
    }
}

/// A function returning `Result<T, E>`: only `Ok` is stored; an `Err` is returned as is and not
/// shared with concurrent callers (they compute themselves).
pub(crate) struct Fallible<T, E>(PhantomData<(T, E)>);

impl<T: Serialize + DeserializeOwned, E> Policy for Fallible<T, E> {
    type Out = Result<T, E>;
    type Stored = T;
    type Miss = E;
    type Sharing = NoSharing;
    fn split(out: Result<T, E>) -> Result<T, E> {
        out
    }
    fn value(stored: T) -> Result<T, E> {
        Ok(stored)
    }
    fn miss(miss: Arc<E>) -> Result<T, E> {
        match Arc::try_unwrap(miss) {
            Ok(e) => Err(e),
            // `load` keeps no other reference when the error is not shared.
            Err(_) => unreachable_after_run(),
        }
    }
    fn storable(out: &Result<T, E>) -> Option<&T> {
        out.as_ref().ok()
    }
}

/// A `skip_none` function returning `Option<T>`: `Some` is stored as an `Option<T>` (the bytes
/// a plain `Option<T>` function stores), `None` is returned and not stored. Concurrent callers
/// share one computation, `None` included.
pub(crate) struct Optional<T>(PhantomData<T>);

impl<T: Serialize + DeserializeOwned> Policy for Optional<T> {
    type Out = Option<T>;
    type Stored = Option<T>;
    type Miss = SkipNone;
    type Sharing = Sharing;
    fn split(out: Option<T>) -> Result<Option<T>, SkipNone> {
        out.map(Some).ok_or(SkipNone)
    }
    fn value(stored: Option<T>) -> Option<T> {
        stored
    }
    fn miss(_: Arc<SkipNone>) -> Option<T> {
        None
    }
    fn storable(out: &Option<T>) -> Option<&Option<T>> {
        out.is_some().then_some(out)
    }
}

/// After a read failed with `e` and the function ran uncached: what to store over the entry.
/// When the stored bytes did not decode (the function's return type changed), the fresh value
/// replaces them, so the function is cached again instead of recomputing on every call; after
/// any other error, nothing.
pub(crate) fn repair_value<'o, P: Policy>(e: &Error, out: &'o P::Out) -> Option<&'o P::Stored> {
    match e {
        Error::Decode { .. } => P::storable(out),
        _ => None,
    }
}

/// What a `#[cache]` call does with its key.
pub(crate) enum KeyPlan {
    /// The arguments could not be encoded as a key: run the function uncached.
    Uncached,
    /// A `<fn>_refresh` companion: run the function and store what [`Policy::storable`] says,
    /// without looking the key up.
    Refresh(String),
    /// Memoize under this key.
    Memoize(String),
}

/// Memoizes `f` under `key` as `P` says (sync). Cache errors never change the result: on a read
/// error the function runs uncached; on a store error its value is returned anyway. Both are
/// counted in `Stats::errors` and logged with the `tracing` feature.
pub(crate) fn memoize<P, B, C>(
    cache: &BrainCache<B, C>,
    key: &str,
    ttl: Option<Duration>,
    f: impl FnOnce() -> P::Out,
) -> P::Out
where
    P: Policy,
    B: Backend,
    C: Codec,
{
    let mut g = Some(move || P::split(f()));
    match cache.load::<P::Stored, P::Miss, _, P::Sharing>(key, ttl, &mut g) {
        Ok(loaded) => P::value(loaded.value),
        Err(LoadError::Init(miss)) => P::miss(miss),
        // Already counted and logged; the cache failed before running the function.
        Err(LoadError::Cache(e)) => {
            let out = P::join(g.take().unwrap_or_else(|| unreachable_after_run())());
            if let Some(value) = repair_value::<P>(&e, &out) {
                store(cache, key, ttl, value);
            }
            out
        }
    }
}

/// Stores a refreshed or repaired value. A failure is counted and logged by `set`, and never
/// changes the function's result, as for a memoized call.
pub(crate) fn store<B, C, T>(cache: &BrainCache<B, C>, key: &str, ttl: Option<Duration>, value: &T)
where
    B: Backend,
    C: Codec,
    T: Serialize,
{
    let _ = cache.set(key, value, ttl);
}

/// A closure that `load` consumed without producing a result: cannot happen, `load` takes it
/// only to run it.
#[cold]
pub(crate) fn unreachable_after_run() -> ! {
    unreachable!("braincache: a memoized function's closure was consumed without a result")
}

#[cfg(test)]
mod tests {
    use super::*;
    use braincache_core::{Postcard, Record, Result, Timestamp};
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A map whose reads can be made to fail.
    #[derive(Default)]
    struct Flaky {
        map: Mutex<HashMap<String, Record>>,
        fail_reads: AtomicBool,
    }

    impl Backend for Flaky {
        type Codec = Postcard;
        fn get(&self, key: &str) -> Result<Option<Record>> {
            if self.fail_reads.load(Ordering::SeqCst) {
                return Err(Error::backend(Operation::Get, "flaky", Some(key), "down"));
            }
            Ok(self.map.lock().unwrap().get(key).cloned())
        }
        fn set(&self, key: &str, record: Record) -> Result<()> {
            self.map.lock().unwrap().insert(key.to_owned(), record);
            Ok(())
        }
        fn delete(&self, key: &str) -> Result<bool> {
            Ok(self.map.lock().unwrap().remove(key).is_some())
        }
        fn clear(&self) -> Result<()> {
            self.map.lock().unwrap().clear();
            Ok(())
        }
        fn len(&self) -> Result<usize> {
            Ok(self.map.lock().unwrap().len())
        }
        fn purge_expired(&self, _now: Timestamp) -> Result<usize> {
            Ok(0)
        }
        fn next_expiry(&self) -> Result<Option<Timestamp>> {
            Ok(None)
        }
    }

    fn counted<T: 'static>(calls: &AtomicUsize, v: T) -> impl FnOnce() -> T + '_ {
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            v
        }
    }

    /// Two calls for `key`, stepped by hand: the first is elected and computes, the second
    /// waits on the flight.
    fn leader_and_waiter<'a, E, S: ErrorSharing<E>>(
        loads: &'a Loads,
        key: &'a str,
        on_panic: OnPanic,
    ) -> (Lead<'a>, SingleFlight<'a, E, S>, Arc<Flight>) {
        let mut a = SingleFlight::<E, S>::new(loads, key, on_panic);
        let mut b = SingleFlight::<E, S>::new(loads, key, on_panic);
        assert!(matches!(a.start(), Step::Lookup { count: true }));
        // Elected: look once more (a previous leader may have stored it), then compute.
        assert!(matches!(a.missed(), Step::Lookup { count: false }));
        let Step::Wait(flight) = b.missed() else {
            panic!("the second caller waits");
        };
        let Step::Compute(lead) = a.missed() else {
            panic!("the leader computes");
        };
        (lead, b, flight)
    }

    #[test]
    fn single_flight_elects_one_leader_whose_value_reaches_the_waiter() {
        let loads = Loads::default();
        let (lead, mut waiter, flight) =
            leader_and_waiter::<&str, Sharing>(&loads, "k", OnPanic::TakeOver);
        match lead.computed::<u8, &str, Sharing>(Ok(7), |v| Ok(vec![*v])) {
            Computed::Store(storing, bytes) => {
                assert_eq!(bytes, [7]);
                let loaded = storing.stored(Ok(()));
                assert_eq!(loaded.value, 7);
                assert!(loaded.store_error.is_none());
            }
            Computed::Done(_) => panic!("a value is stored"),
        }
        assert!(matches!(waiter.waited(flight.wait()), Step::Received(bytes) if *bytes == [7]));
    }

    #[test]
    fn a_leader_error_is_shared_or_makes_the_waiters_compute() {
        let loads = Loads::default();
        let (lead, mut waiter, flight) =
            leader_and_waiter::<&str, Sharing>(&loads, "k", OnPanic::TakeOver);
        let done = lead.computed::<u8, &str, Sharing>(Err("down"), |_| unreachable!());
        assert!(matches!(done, Computed::Done(Err(LoadError::Init(e))) if *e == "down"));
        let shared = waiter.waited(flight.wait());
        assert!(matches!(shared, Step::Fail(LoadError::Init(e)) if *e == "down"));
        // Not shared: the waiter computes alone, at once.
        let (lead, mut waiter, flight) =
            leader_and_waiter::<&str, NoSharing>(&loads, "j", OnPanic::TakeOver);
        let _ = lead.computed::<u8, &str, NoSharing>(Err("down"), |_| unreachable!());
        assert!(matches!(waiter.waited(flight.wait()), Step::Compute(_)));
    }

    #[test]
    fn a_dropped_leader_abandons_and_a_panicked_one_fails_only_async_waiters() {
        let loads = Loads::default();
        let (lead, mut waiter, flight) =
            leader_and_waiter::<Infallible, NoSharing>(&loads, "k", OnPanic::Fail);
        drop(lead); // a found value, a `?`, a cancelled future
        assert!(matches!(
            waiter.waited(flight.wait()),
            Step::Lookup { count: false }
        ));
        let mut sync = SingleFlight::<Infallible, NoSharing>::new(&loads, "k", OnPanic::TakeOver);
        assert!(matches!(
            sync.waited(Outcome::Panicked),
            Step::Lookup { count: false }
        ));
        assert!(matches!(
            waiter.waited(Outcome::Panicked),
            Step::Fail(LoadError::Cache(Error::Task { key: Some(k), .. })) if k == "k"
        ));
    }

    #[test]
    fn a_decode_error_repairs_with_what_the_policy_stores() {
        let decode = Error::Decode {
            key: "k".into(),
            type_name: "u8",
            source: braincache_core::CodecError::mismatch(
                "json",
                braincache_core::CodecId::JSON,
                braincache_core::CodecId::POSTCARD,
            ),
        };
        let down = Error::backend(Operation::Get, "flaky", Some("k"), "down");
        assert_eq!(repair_value::<Plain<u8>>(&decode, &3), Some(&3));
        assert_eq!(repair_value::<Plain<u8>>(&down, &3), None);
        assert_eq!(repair_value::<Fallible<u8, ()>>(&decode, &Err(())), None);
        assert_eq!(
            repair_value::<Optional<u8>>(&decode, &Some(1)),
            Some(&Some(1))
        );
        assert_eq!(repair_value::<Optional<u8>>(&decode, &None), None);
    }

    #[test]
    fn computes_once_then_reads_the_cache() {
        let cache = BrainCache::new(Flaky::default());
        let calls = AtomicUsize::new(0);
        assert_eq!(
            memoize::<Plain<_>, _, _>(&cache, "k", None, counted(&calls, 7u32)),
            7
        );
        assert_eq!(
            memoize::<Plain<_>, _, _>(&cache, "k", None, counted(&calls, 8u32)),
            7
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_read_error_runs_the_function_uncached_and_counts_the_error() {
        let cache = BrainCache::new(Flaky::default());
        cache.set("k", &1u32, None).unwrap();
        cache.backend().fail_reads.store(true, Ordering::SeqCst);
        let calls = AtomicUsize::new(0);
        assert_eq!(
            memoize::<Plain<_>, _, _>(&cache, "k", None, counted(&calls, 2u32)),
            2
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(cache.stats().errors, 1);
        // The stored entry was not touched by a failed read.
        cache.backend().fail_reads.store(false, Ordering::SeqCst);
        assert_eq!(cache.get::<u32>("k").unwrap(), Some(1));
    }

    #[test]
    fn a_decode_error_rewrites_the_entry_with_the_fresh_value() {
        let cache = BrainCache::new(Flaky::default());
        cache.set("k", &"not a bool", None).unwrap();
        let calls = AtomicUsize::new(0);
        assert!(memoize::<Plain<_>, _, _>(
            &cache,
            "k",
            None,
            counted(&calls, true)
        ));
        assert_eq!(cache.get::<bool>("k").unwrap(), Some(true));
        // Cached again: the next call reads it.
        assert!(memoize::<Plain<_>, _, _>(
            &cache,
            "k",
            None,
            counted(&calls, false)
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn only_ok_is_stored() {
        let cache = BrainCache::new(Flaky::default());
        let r: std::result::Result<u32, &str> =
            memoize::<Fallible<_, _>, _, _>(&cache, "k", None, || Err("no"));
        assert_eq!(r, Err("no"));
        assert!(!cache.has("k").unwrap());
        let r: std::result::Result<u32, &str> =
            memoize::<Fallible<_, _>, _, _>(&cache, "k", None, || Ok(3));
        assert_eq!(r, Ok(3));
        assert_eq!(cache.get::<u32>("k").unwrap(), Some(3));
    }

    #[test]
    fn the_option_policy_stores_some_as_an_option_and_never_none() {
        let cache = BrainCache::new(Flaky::default());
        assert_eq!(
            memoize::<Optional<u32>, _, _>(&cache, "k", None, || None),
            None
        );
        assert!(!cache.has("k").unwrap());
        assert_eq!(
            memoize::<Optional<_>, _, _>(&cache, "k", None, || Some(4u32)),
            Some(4)
        );
        // The same bytes a plain `Option<T>` function stores.
        assert_eq!(cache.get::<Option<u32>>("k").unwrap(), Some(Some(4)));
        let calls = AtomicUsize::new(0);
        assert_eq!(
            memoize::<Optional<_>, _, _>(&cache, "k", None, counted(&calls, None::<u32>)),
            Some(4)
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
