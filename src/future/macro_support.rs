//! The `#[cache]` macro's support for `async fn` (re-exported through `__private`). Not a
//! stable API.
//!
//! The same keys as sync functions (`__private::KeyBuilder`), so a sync and an async function
//! with the same `name` share entries; the default cache is the async face of the sync
//! functions' process-wide memory cache. Cache errors never change the result, as for sync
//! functions.

use super::BrainCache;
use crate::cache::LoadError;
use crate::memo::{
    Fallible, KeyPlan, Optional, Plain, Policy, repair_value, unreachable_after_run,
};
use braincache_core::{AsyncBackend, Codec};
use std::time::Duration;

pub use super::freshness::call_fresh_async;
pub use crate::__private::{CacheValue, Key};

/// The process-wide memory cache of `#[cache]` without `cache = …`, as seen by `async fn`s:
/// the same store as the sync functions'.
#[cfg(feature = "memory")]
pub fn default_async_cache() -> &'static BrainCache<braincache_memory::MemoryBackend> {
    static CACHE: std::sync::OnceLock<BrainCache<braincache_memory::MemoryBackend>> =
        std::sync::OnceLock::new();
    CACHE.get_or_init(|| crate::__private::default_cache().to_async())
}

/// Lets `cache = expr` on an `async fn` accept anything that dereferences to a
/// `braincache::future::BrainCache`, and names the expected type in errors.
pub fn as_async_cache<B: AsyncBackend, C: Codec>(cache: &BrainCache<B, C>) -> &BrainCache<B, C> {
    cache
}

/// The generated body of an async `#[cache]` function returning a plain value.
pub async fn call_async<B, C, T, F>(
    cache: &BrainCache<B, C>,
    key: Key,
    ttl: Option<Duration>,
    f: F,
) -> T
where
    B: AsyncBackend,
    C: Codec,
    T: CacheValue,
    F: AsyncFnOnce() -> T,
{
    run::<Plain<T>, B, C>(cache, key, ttl, f).await
}

/// The generated body of an async `#[cache]` function returning `Result`: only `Ok` is stored.
pub async fn call_result_async<B, C, T, E, F>(
    cache: &BrainCache<B, C>,
    key: Key,
    ttl: Option<Duration>,
    f: F,
) -> Result<T, E>
where
    B: AsyncBackend,
    C: Codec,
    T: CacheValue,
    F: AsyncFnOnce() -> Result<T, E>,
{
    run::<Fallible<T, E>, B, C>(cache, key, ttl, f).await
}

/// The generated body of an async `#[cache(skip_none)]` function.
pub async fn call_option_async<B, C, T, F>(
    cache: &BrainCache<B, C>,
    key: Key,
    ttl: Option<Duration>,
    f: F,
) -> Option<T>
where
    B: AsyncBackend,
    C: Codec,
    T: CacheValue,
    F: AsyncFnOnce() -> Option<T>,
{
    run::<Optional<T>, B, C>(cache, key, ttl, f).await
}

/// The `call*_async` helpers' body: the sync `__private::run` and `memo::memoize` with
/// `.await`s; the decisions (the key's plan, the policy `P`, what to repair) are theirs.
async fn run<P, B, C>(
    cache: &BrainCache<B, C>,
    key: Key,
    ttl: Option<Duration>,
    f: impl AsyncFnOnce() -> P::Out,
) -> P::Out
where
    P: Policy,
    B: AsyncBackend,
    C: Codec,
{
    let key = match key.plan(cache.sync_face()) {
        KeyPlan::Memoize(key) => key,
        KeyPlan::Refresh(key) => {
            let out = f().await;
            if let Some(value) = P::storable(&out) {
                // A failure is counted and logged by `set`; the result stands.
                let _ = cache.set(&key, value, ttl).await;
            }
            return out;
        }
        KeyPlan::Uncached => return f().await,
    };
    let mut g = Some(move || async move { P::split(f().await) });
    match cache
        .load::<P::Stored, P::Miss, _, _, P::Sharing>(&key, ttl, &mut g)
        .await
    {
        Ok(loaded) => P::value(loaded.value),
        Err(LoadError::Init(miss)) => P::miss(miss),
        // Already counted and logged; the cache failed before the function ran (or the
        // computation this call waited for panicked).
        Err(LoadError::Cache(e)) => {
            let out = P::join(g.take().unwrap_or_else(|| unreachable_after_run())().await);
            if let Some(value) = repair_value::<P>(&e, &out) {
                let _ = cache.set(&key, value, ttl).await;
            }
            out
        }
    }
}

/// The generated `f_invalidate` of an async `#[cache]` function: deletes the entry of `key`.
///
/// # Errors
/// An invalid-key error when the arguments could not be encoded; the cache's errors.
pub async fn invalidate_async<B: AsyncBackend, C: Codec>(
    cache: &BrainCache<B, C>,
    key: Key,
) -> crate::Result<bool> {
    let key = key
        .into_result(braincache_core::Operation::Delete)
        .map_err(|e| cache.sync.failed(e))?;
    cache.delete(&key).await
}
