//! Memoization: how a computed value meets the cache. The `#[cache]` macro's generated code (in
//! `__private`, sync, and `future::macro_support`, async) and `BrainCache::get_or_insert_with`
//! and its siblings all come here.
//!
//! - [`BrainCache::load`]: the single flight. Within a process, one caller per key computes;
//!   the others wait for its value (or, as `S` says, its error).
//! - [`memoize`], [`memoize_result`], [`memoize_some`]: the policies of the macro, where a cache
//!   error never changes the function's result: a read error runs the function uncached, a
//!   decode error (the function's return type changed) rewrites the entry with the fresh value
//!   ([`repair`]), a store error still returns the value. `memoize_some` does not store `None`
//!   (the `Option` policy; `BrainCache::optionally_get_or_insert_with` is its public form).

use crate::BrainCache;
use crate::cache::LoadError;
use crate::load::{ErrorSharing, LeaderGuard, NoSharing, Outcome, Role, Sharing};
use braincache_core::{Backend, Codec, Error};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// What a memoizing load did, for callers (the `#[cache]` macro) that treat cache errors as
/// misses rather than failures.
pub(crate) struct Loaded<T> {
    pub(crate) value: T,
    /// Storing the computed value failed; the value is still good.
    pub(crate) store_error: Option<Error>,
}

impl<B: Backend, C: Codec> BrainCache<B, C> {
    /// The shared machinery of the memoizing calls. `f` is taken only when this caller computes,
    /// so a caller that gets a cache error before computing still has it. `S` says whether
    /// waiters receive the closure's error or compute themselves.
    pub(crate) fn load<T, E, F, S>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        f: &mut Option<F>,
    ) -> std::result::Result<Loaded<T>, LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> std::result::Result<T, E>,
        S: ErrorSharing<E>,
    {
        // One call counts one hit or one miss: the first lookup decides. Later lookups (after
        // an abandoned leader, or after winning the election) are not counted again.
        let mut first_lookup = true;
        // `None`: the leader told us to compute alone, without leading.
        let leader = loop {
            let found = self.lookup::<T>(key, first_lookup)?;
            first_lookup = false;
            if let Some(value) = found {
                return Ok(Loaded {
                    value,
                    store_error: None,
                });
            }
            match self.inner().loads().join(key) {
                Role::Leader(guard) => break Some(guard),
                Role::Waiter(slot) => match slot.wait() {
                    Outcome::Value(bytes) => {
                        return Ok(Loaded {
                            value: self.decode(key, &bytes)?,
                            store_error: None,
                        });
                    }
                    Outcome::Failed(err) => {
                        if let Some(e) = S::receive(err) {
                            return Err(LoadError::Init(e));
                        }
                        // Another call site with another error type: compute alone.
                        break None;
                    }
                    Outcome::ComputeAlone => break None,
                    // A sync caller takes over from a leader that panicked, as from one that
                    // was cancelled (an async leader's future dropped).
                    Outcome::Abandoned | Outcome::Panicked => {}
                },
            }
        };
        let finish = |leader: Option<LeaderGuard<'_>>, outcome: Outcome| {
            if let Some(leader) = leader {
                leader.finish(outcome);
            }
        };
        // A previous leader may have stored the value between our miss and our election.
        if leader.is_some()
            && let Some(value) = self.lookup::<T>(key, false)?
        {
            finish(leader, Outcome::Abandoned);
            return Ok(Loaded {
                value,
                store_error: None,
            });
        }
        let Some(compute) = f.take() else {
            // Unreachable: `f` is taken only here, and this point is reached once.
            return Err(LoadError::Cache(Error::Closed {
                op: braincache_core::Operation::Set,
                backend: "front end",
            }));
        };
        match compute() {
            Ok(value) => match self.encode(key, &value) {
                Ok(bytes) => {
                    let shared: Arc<[u8]> = Arc::from(bytes.as_slice());
                    let store_error = self.set_bytes(key, bytes, ttl).err();
                    finish(leader, Outcome::Value(shared));
                    Ok(Loaded { value, store_error })
                }
                // The value is good even if the codec cannot store it: hand it back.
                Err(e) => {
                    finish(leader, Outcome::ComputeAlone);
                    Ok(Loaded {
                        value,
                        store_error: Some(e),
                    })
                }
            },
            Err(e) => {
                let e = Arc::new(e);
                finish(
                    leader,
                    S::share(&e).map_or(Outcome::ComputeAlone, Outcome::Failed),
                );
                Err(LoadError::Init(e))
            }
        }
    }
}

/// Memoizes an infallible computation. Cache errors never change the result: on a read error
/// the function runs uncached; on a store error its value is returned anyway. Both are counted
/// in `Stats::errors` and logged with the `tracing` feature. When the stored value does not
/// decode (its type changed), the freshly computed value replaces it.
pub(crate) fn memoize<B, C, T, F>(
    cache: &BrainCache<B, C>,
    key: &str,
    ttl: Option<Duration>,
    f: F,
) -> T
where
    B: Backend,
    C: Codec,
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> T,
{
    let mut f = Some(f);
    let mut g = Some(|| match f.take() {
        Some(f) => Ok::<T, std::convert::Infallible>(f()),
        None => unreachable_after_run(),
    });
    let loaded = cache.load::<T, _, _, NoSharing>(key, ttl, &mut g);
    match loaded {
        Ok(Loaded { value, .. }) => value,
        Err(LoadError::Init(never)) => match *never {},
        // Already counted and logged; the cache failed before running the function.
        Err(LoadError::Cache(e)) => match f.take() {
            Some(f) => {
                let value = f();
                repair(cache, key, ttl, &e, &value);
                value
            }
            None => unreachable_after_run(),
        },
    }
}

/// Memoizes a fallible computation: only `Ok` is stored; an `Err` is returned as is and not
/// shared with concurrent callers (they compute themselves). Cache errors are handled as in
/// [`memoize`].
pub(crate) fn memoize_result<B, C, T, E, F>(
    cache: &BrainCache<B, C>,
    key: &str,
    ttl: Option<Duration>,
    f: F,
) -> Result<T, E>
where
    B: Backend,
    C: Codec,
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Result<T, E>,
{
    let mut f = Some(f);
    match cache.load::<T, E, F, NoSharing>(key, ttl, &mut f) {
        Ok(Loaded { value, .. }) => Ok(value),
        Err(LoadError::Init(e)) => match std::sync::Arc::try_unwrap(e) {
            Ok(e) => Err(e),
            // `load` keeps no other reference when the error is not shared.
            Err(_) => unreachable_after_run(),
        },
        Err(LoadError::Cache(e)) => match f.take() {
            Some(f) => {
                let result = f();
                if let Ok(value) = &result {
                    repair(cache, key, ttl, &e, value);
                }
                result
            }
            None => unreachable_after_run(),
        },
    }
}

/// The `None` of a `skip_none` function, handed to `load` as an "error" so it is not stored, and
/// shared with concurrent callers so they return `None` too instead of computing again.
pub(crate) struct SkipNone;

/// Memoizes a computation whose `None` is not stored. Concurrent callers share one computation,
/// `None` included. Cache errors are handled as in [`memoize`].
pub(crate) fn memoize_some<B, C, T, F>(
    cache: &BrainCache<B, C>,
    key: &str,
    ttl: Option<Duration>,
    f: F,
) -> Option<T>
where
    B: Backend,
    C: Codec,
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Option<T>,
{
    let mut g = Some(move || f().map(Some).ok_or(SkipNone));
    match cache.load::<Option<T>, SkipNone, _, Sharing>(key, ttl, &mut g) {
        Ok(Loaded { value, .. }) => value,
        Err(LoadError::Init(_)) => None,
        Err(LoadError::Cache(e)) => match g.take() {
            Some(g) => {
                let value = g().ok().flatten();
                if value.is_some() {
                    repair(cache, key, ttl, &e, &value);
                }
                value
            }
            None => unreachable_after_run(),
        },
    }
}

/// After a read failed with `e` and the function ran: when the stored bytes did not decode (the
/// function's return type changed), store the fresh value over them, so the function is cached
/// again instead of recomputing on every call. A failure here is counted and logged by `set`.
fn repair<B, C, T>(cache: &BrainCache<B, C>, key: &str, ttl: Option<Duration>, e: &Error, value: &T)
where
    B: Backend,
    C: Codec,
    T: Serialize,
{
    if matches!(e, Error::Decode { .. }) {
        let _ = cache.set(key, value, ttl);
    }
}

/// Stores a refreshed value. A failure is counted and logged by `set`, and never changes the
/// function's result, as for a memoized call.
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
    use braincache_core::{Operation, Postcard, Record, Result, Timestamp};
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

    #[test]
    fn computes_once_then_reads_the_cache() {
        let cache = BrainCache::new(Flaky::default());
        let calls = AtomicUsize::new(0);
        assert_eq!(memoize(&cache, "k", None, counted(&calls, 7u32)), 7);
        assert_eq!(memoize(&cache, "k", None, counted(&calls, 8u32)), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_read_error_runs_the_function_uncached_and_counts_the_error() {
        let cache = BrainCache::new(Flaky::default());
        cache.set("k", &1u32, None).unwrap();
        cache.backend().fail_reads.store(true, Ordering::SeqCst);
        let calls = AtomicUsize::new(0);
        assert_eq!(memoize(&cache, "k", None, counted(&calls, 2u32)), 2);
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
        assert!(memoize(&cache, "k", None, counted(&calls, true)));
        assert_eq!(cache.get::<bool>("k").unwrap(), Some(true));
        // Cached again: the next call reads it.
        assert!(memoize(&cache, "k", None, counted(&calls, false)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn only_ok_is_stored() {
        let cache = BrainCache::new(Flaky::default());
        let r: std::result::Result<u32, &str> = memoize_result(&cache, "k", None, || Err("no"));
        assert_eq!(r, Err("no"));
        assert!(!cache.has("k").unwrap());
        let r: std::result::Result<u32, &str> = memoize_result(&cache, "k", None, || Ok(3));
        assert_eq!(r, Ok(3));
        assert_eq!(cache.get::<u32>("k").unwrap(), Some(3));
    }

    #[test]
    fn the_option_policy_stores_some_as_an_option_and_never_none() {
        let cache = BrainCache::new(Flaky::default());
        assert_eq!(
            memoize_some::<_, _, u32, _>(&cache, "k", None, || None),
            None
        );
        assert!(!cache.has("k").unwrap());
        assert_eq!(memoize_some(&cache, "k", None, || Some(4u32)), Some(4));
        // The same bytes a plain `Option<T>` function stores.
        assert_eq!(cache.get::<Option<u32>>("k").unwrap(), Some(Some(4)));
        let calls = AtomicUsize::new(0);
        assert_eq!(
            memoize_some(&cache, "k", None, counted(&calls, None::<u32>)),
            Some(4)
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
