//! The `#[cache]` macro's support for `async fn` (re-exported through `__private`). Not a
//! stable API.
//!
//! The same keys as sync functions (`__private::KeyBuilder`), so a sync and an async function
//! with the same `name` share entries; the default cache is the async face of the sync
//! functions' process-wide memory cache. Cache errors never change the result, as for sync
//! functions.

use super::BrainCache;
use crate::cache::LoadError;
use crate::load::{NoSharing, Sharing};
use crate::memo::{Loaded, SkipNone, unreachable_after_run};
use braincache_core::{AsyncBackend, Codec, Error};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

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
    let Some(key) = key.usable(cache.sync_face()) else {
        return f().await;
    };
    let mut g = Some(move || async move { Ok::<T, std::convert::Infallible>(f().await) });
    match cache.load::<T, _, _, _, NoSharing>(&key, ttl, &mut g).await {
        Ok(Loaded { value, .. }) => value,
        Err(LoadError::Init(never)) => match *never {},
        // Already counted and logged; the cache failed before the function ran (or the
        // computation this call waited for panicked).
        Err(LoadError::Cache(e)) => match g.take() {
            Some(g) => match g().await {
                Ok(value) => {
                    repair(cache, &key, ttl, &e, &value).await;
                    value
                }
                Err(never) => match never {},
            },
            None => unreachable_after_run(),
        },
    }
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
    let Some(key) = key.usable(cache.sync_face()) else {
        return f().await;
    };
    let mut g = Some(move || f());
    match cache.load::<T, E, _, _, NoSharing>(&key, ttl, &mut g).await {
        Ok(Loaded { value, .. }) => Ok(value),
        Err(LoadError::Init(e)) => match std::sync::Arc::try_unwrap(e) {
            Ok(e) => Err(e),
            // `load` keeps no other reference when the error is not shared.
            Err(_) => unreachable_after_run(),
        },
        Err(LoadError::Cache(e)) => match g.take() {
            Some(g) => {
                let result = g().await;
                if let Ok(value) = &result {
                    repair(cache, &key, ttl, &e, value).await;
                }
                result
            }
            None => unreachable_after_run(),
        },
    }
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
    let Some(key) = key.usable(cache.sync_face()) else {
        return f().await;
    };
    let mut g = Some(move || async move { f().await.map(Some).ok_or(SkipNone) });
    match cache
        .load::<Option<T>, SkipNone, _, _, Sharing>(&key, ttl, &mut g)
        .await
    {
        Ok(Loaded { value, .. }) => value,
        Err(LoadError::Init(_)) => None,
        Err(LoadError::Cache(e)) => match g.take() {
            Some(g) => {
                let value = g().await.ok().flatten();
                if value.is_some() {
                    repair(cache, &key, ttl, &e, &value).await;
                }
                value
            }
            None => unreachable_after_run(),
        },
    }
}

/// As the sync `repair`: a stored value that no longer decodes is replaced by the fresh one.
async fn repair<B, C, T>(
    cache: &BrainCache<B, C>,
    key: &str,
    ttl: Option<Duration>,
    e: &Error,
    value: &T,
) where
    B: AsyncBackend,
    C: Codec,
    T: Serialize + DeserializeOwned,
{
    if matches!(e, Error::Decode { .. }) {
        let _ = cache.set(key, value, ttl).await;
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
