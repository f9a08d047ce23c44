//! Support for the `#[cache]` macro's generated code. Not a stable API: names and signatures here
//! change without notice.

pub use serde;

use crate::BrainCache;
use crate::cache::{LoadError, Loaded};
use crate::load::NoSharing;
use crate::stats::Counters;
use braincache_core::{Backend, Codec};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// The process-wide memory cache that `#[cache]` uses when no `cache = …` is given.
#[cfg(feature = "memory")]
pub fn default_cache() -> &'static BrainCache<braincache_memory::MemoryBackend> {
    static CACHE: std::sync::OnceLock<BrainCache<braincache_memory::MemoryBackend>> =
        std::sync::OnceLock::new();
    CACHE.get_or_init(BrainCache::default)
}

/// Memoizes an infallible computation. Cache errors never change the result: on a read error
/// the function runs uncached; on a store error its value is returned anyway. Both are counted
/// in `Stats::errors` and logged with the `tracing` feature.
pub fn memoize<B, C, T, F>(cache: &BrainCache<B, C>, key: &str, ttl: Option<Duration>, f: F) -> T
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
        Err(LoadError::Cache(_)) => match f.take() {
            Some(f) => f(),
            None => unreachable_after_run(),
        },
    }
}

/// Memoizes a fallible computation: only `Ok` is stored; an `Err` is returned as is and not
/// shared with concurrent callers (they compute themselves). Cache errors are handled as in
/// [`memoize`].
pub fn memoize_result<B, C, T, E, F>(
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
        Err(LoadError::Cache(_)) => match f.take() {
            Some(f) => f(),
            None => unreachable_after_run(),
        },
    }
}

/// Counts a cache error that the caller chose to bypass.
pub fn count_error<B: Backend, C: Codec>(cache: &BrainCache<B, C>) {
    Counters::bump(&cache.inner().counters.errors, 1);
}

#[cold]
fn unreachable_after_run() -> ! {
    unreachable!("braincache: a memoized function's closure was consumed without a result")
}
