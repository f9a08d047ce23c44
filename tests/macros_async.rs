//! `#[cache]` on `async fn` (feature `async`): hits and misses, `Result` (only `Ok` stored),
//! `skip_none`, `&self` methods, the key scheme shared with sync functions, one computation
//! across tasks, a renamed crate, and a redb cache.

#![cfg(all(feature = "macros", feature = "async"))]

use braincache::backend::MemoryBackend;
use braincache::cache;
use braincache::future::BrainCache;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

macro_rules! counter {
    ($($name:ident),* $(,)?) => {
        $(static $name: AtomicUsize = AtomicUsize::new(0);)*
    };
}

fn runs(c: &AtomicUsize) -> usize {
    c.load(Ordering::SeqCst)
}

static CACHE: LazyLock<BrainCache<MemoryBackend>> = LazyLock::new(BrainCache::default);

counter!(
    HEAVY,
    FALLIBLE,
    MAYBE,
    SLOW,
    PRICE,
    SHARED_SYNC,
    SHARED_ASYNC,
    DEFAULT
);

#[cache(ttl = 60, cache = CACHE)]
async fn heavy(x: u64, y: u64) -> u64 {
    HEAVY.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    x * y
}

#[tokio::test(flavor = "current_thread")]
async fn hits_and_misses() {
    assert_eq!(heavy(6, 7).await, 42);
    assert_eq!(heavy(6, 7).await, 42);
    assert_eq!(runs(&HEAVY), 1, "the second call is served from the cache");
    assert_eq!(heavy(7, 6).await, 42);
    assert_eq!(runs(&HEAVY), 2, "other arguments, other entry");
    // The same key scheme as sync functions.
    assert_eq!(
        CACHE
            .get::<u64>("fn:v1:macros_async::heavy:0607")
            .await
            .unwrap(),
        Some(42)
    );
}

#[derive(Debug, PartialEq)]
struct Offline;

#[cache(cache = CACHE)]
async fn fallible(x: u32) -> Result<u32, Offline> {
    FALLIBLE.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    if x == 0 {
        return Err(Offline);
    }
    let doubled: u32 = x.checked_mul(2).ok_or(Offline)?;
    Ok(doubled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_stores_only_ok() {
    assert_eq!(fallible(0).await, Err(Offline));
    assert_eq!(fallible(0).await, Err(Offline));
    assert_eq!(runs(&FALLIBLE), 2, "errors are not cached");
    assert_eq!(fallible(4).await, Ok(8));
    assert_eq!(fallible(4).await, Ok(8));
    assert_eq!(runs(&FALLIBLE), 3);
}

#[cache(cache = CACHE, skip_none)]
async fn maybe(x: u32) -> Option<u32> {
    MAYBE.fetch_add(1, Ordering::SeqCst);
    (x > 0).then_some(x)
}

#[tokio::test(flavor = "current_thread")]
async fn skip_none_stores_only_some() {
    assert_eq!(maybe(0).await, None);
    assert_eq!(maybe(0).await, None);
    assert_eq!(maybe(3).await, Some(3));
    assert_eq!(maybe(3).await, Some(3));
    assert_eq!(runs(&MAYBE), 3);
}

#[cache(cache = CACHE)]
async fn slow(x: u32) -> u32 {
    SLOW.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    x + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_compute_once() {
    let tasks: Vec<_> = (0..32).map(|_| tokio::spawn(slow(1))).collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 2);
    }
    assert_eq!(runs(&SLOW), 1);
}

#[derive(Serialize, Deserialize)]
struct Shop {
    currency: String,
}

impl Shop {
    #[cache(cache = CACHE)]
    async fn price(&self, cents: u64) -> String {
        PRICE.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        format!("{} {}.{:02}", self.currency, cents / 100, cents % 100)
    }
}

#[tokio::test(flavor = "current_thread")]
async fn methods_key_on_self() {
    let eur = Shop {
        currency: "EUR".into(),
    };
    let usd = Shop {
        currency: "USD".into(),
    };
    assert_eq!(eur.price(150).await, "EUR 1.50");
    assert_eq!(eur.price(150).await, "EUR 1.50");
    assert_eq!(usd.price(150).await, "USD 1.50");
    assert_eq!(runs(&PRICE), 2, "self is part of the key");
}

// A sync and an async function with the same `name` share entries (in one store: the async
// function's cache is the sync one's async face).
static SYNC_FACE: LazyLock<braincache::BrainCache<MemoryBackend>> =
    LazyLock::new(|| CACHE.to_sync());

#[cache(cache = SYNC_FACE, name = "app::shared")]
fn shared_sync(x: u32) -> u32 {
    SHARED_SYNC.fetch_add(1, Ordering::SeqCst);
    x * 10
}

#[cache(cache = CACHE, name = "app::shared")]
async fn shared_async(x: u32) -> u32 {
    SHARED_ASYNC.fetch_add(1, Ordering::SeqCst);
    x * 10
}

#[tokio::test(flavor = "current_thread")]
async fn sync_and_async_functions_with_one_name_share_entries() {
    assert_eq!(shared_sync(5), 50);
    assert_eq!(shared_async(5).await, 50);
    assert_eq!((runs(&SHARED_SYNC), runs(&SHARED_ASYNC)), (1, 0));
    assert_eq!(shared_async(6).await, 60);
    assert_eq!(shared_sync(6), 60);
    assert_eq!((runs(&SHARED_SYNC), runs(&SHARED_ASYNC)), (1, 1));
}

#[cache]
async fn in_default_cache(x: u64) -> u64 {
    DEFAULT.fetch_add(1, Ordering::SeqCst);
    x + 1
}

#[tokio::test(flavor = "current_thread")]
async fn no_cache_option_uses_the_process_wide_memory_cache() {
    assert_eq!(in_default_cache(1).await, 2);
    assert_eq!(in_default_cache(1).await, 2);
    assert_eq!(runs(&DEFAULT), 1);
}

extern crate braincache as renamed_braincache;

static RENAMED: LazyLock<renamed_braincache::future::BrainCache<MemoryBackend>> =
    LazyLock::new(renamed_braincache::future::BrainCache::default);

#[cache(crate = "renamed_braincache", cache = RENAMED)]
async fn through_renamed(x: u8) -> u8 {
    x
}

#[tokio::test(flavor = "current_thread")]
async fn crate_override() {
    assert_eq!(through_renamed(3).await, 3);
    assert!(
        RENAMED
            .has("fn:v1:macros_async::through_renamed:03")
            .await
            .unwrap()
    );
}

#[cfg(feature = "redb")]
mod on_redb {
    use super::*;
    use braincache::backend::RedbBackend;

    static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| tempfile::tempdir().unwrap());
    static DISK: LazyLock<BrainCache<RedbBackend>> =
        LazyLock::new(|| BrainCache::new(RedbBackend::open(DIR.path().join("fn.redb")).unwrap()));

    counter!(FETCH);

    #[cache(ttl = 3600, cache = DISK)]
    async fn fetch(url: String) -> Result<String, String> {
        FETCH.fetch_add(1, Ordering::SeqCst);
        Ok(format!("the body of {url}"))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn memoizes_in_redb() {
        let a = fetch("https://example.com/".into()).await.unwrap();
        let b = fetch("https://example.com/".into()).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(runs(&FETCH), 1);
        assert_eq!(DISK.len().await.unwrap(), 1);
    }
}

static VERSION: AtomicUsize = AtomicUsize::new(1);

#[cache(cache = CACHE)]
async fn page(id: u32) -> String {
    tokio::task::yield_now().await;
    format!("page {id} v{}", VERSION.load(Ordering::SeqCst))
}

/// `f_refresh` of an `async fn` runs the body and stores its result without looking the key up,
/// as for a sync function (it used to return the cached value).
#[tokio::test(flavor = "current_thread")]
async fn refresh_companion_recomputes_and_stores() {
    assert_eq!(page(1).await, "page 1 v1");
    VERSION.store(2, Ordering::SeqCst);
    assert_eq!(page(1).await, "page 1 v1", "served from the cache");
    assert_eq!(page_refresh(1).await, "page 1 v2", "the refresh recomputes");
    assert_eq!(page(1).await, "page 1 v2", "and stores what it computed");
}
