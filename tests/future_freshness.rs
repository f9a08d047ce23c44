//! `future::BrainCache::get_or_refresh` on current-thread and multi-thread runtimes:
//! stale-while-revalidate with the refresh as a spawned task, a failed refresh, early refresh
//! (XFetch) with a seeded random source, and waiting for another holder's lease without blocking
//! the runtime.
#![cfg(feature = "async")]

use braincache::backend::MemoryBackend;
use braincache::base::{Clock, ManualClock};
use braincache::future::BrainCache;
use braincache::{Freshness, LoadError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

const TTL: Duration = Duration::from_secs(10);
const WINDOW: Duration = Duration::from_secs(5);

fn cache() -> (BrainCache<MemoryBackend>, ManualClock) {
    let clock = ManualClock::starting_now();
    let cache = braincache::BrainCache::builder(MemoryBackend::new())
        .clock(clock.clone())
        .build()
        .to_async();
    (cache, clock)
}

/// Polls `done` for up to 10 s of real time, yielding to the runtime in between.
async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn stale_served_at_once_one_refresh_task() {
    let (cache, clock) = cache();
    let fresh = Freshness::new(TTL).stale_while_revalidate(WINDOW);
    let v: u32 = cache
        .get_or_refresh("k", &fresh, || async { 1 })
        .await
        .unwrap();
    assert_eq!(v, 1);
    clock.advance(TTL + Duration::from_secs(1));
    assert_eq!(
        cache.get::<u32>("k").await.unwrap(),
        None,
        "get never serves stale"
    );

    // The refresh waits on `gate` until all 50 tasks have their answer: nobody waited for it.
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (cache, fresh, runs, gate) = (
                cache.clone(),
                fresh.clone(),
                Arc::clone(&runs),
                Arc::clone(&gate),
            );
            tokio::spawn(async move {
                cache
                    .get_or_refresh("k", &fresh, move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let _permit = gate.acquire().await.unwrap();
                        2u32
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    assert_eq!(got, vec![1; 50], "every task gets the stale value at once");
    assert_eq!(cache.stats().refreshes, 0, "the refresh is still gated");
    gate.add_permits(1);
    wait_for("the refresh", || cache.stats().refreshes == 1).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one background refresh");
    let s = cache.stats();
    assert_eq!((s.stale_served, s.refresh_failures), (50, 0));
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(2));

    // Past the window of the refreshed value: a miss, computed by the caller.
    clock.advance(TTL + WINDOW + Duration::from_secs(1));
    let v: u32 = cache
        .get_or_refresh("k", &fresh, || async { 3 })
        .await
        .unwrap();
    assert_eq!(v, 3);
    // The first load, the plain `get` of the stale value, and this one.
    assert_eq!(cache.stats().misses, 3);
}

#[tokio::test(flavor = "current_thread")]
async fn stale_values_are_served_at_once_current_thread() {
    stale_served_at_once_one_refresh_task().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_values_are_served_at_once_multi_thread() {
    stale_served_at_once_one_refresh_task().await;
}

async fn failed_refresh_keeps_stale() {
    let (cache, clock) = cache();
    let fresh = Freshness::new(TTL).stale_while_revalidate(WINDOW);
    let one = cache
        .try_get_or_refresh("k", &fresh, || async { Ok::<u32, String>(1) })
        .await;
    assert_eq!(one.unwrap(), 1);
    let t0 = clock.now();
    let failing = || async { Err::<u32, String>("backend down".into()) };
    for (at, failures) in [(1, 1), (3, 2), (4, 3)] {
        clock.set(t0 + TTL + Duration::from_secs(at));
        let v = cache.try_get_or_refresh("k", &fresh, failing).await;
        assert_eq!(v.unwrap(), 1);
        wait_for("the failed refresh", || {
            cache.stats().refresh_failures == failures
        })
        .await;
    }
    // A refresh that panics is a failure too, and the stale value stays.
    let v = cache
        .try_get_or_refresh::<u32, String, _, _>("k", &fresh, || async { panic!("refresh bug") })
        .await;
    assert_eq!(v.unwrap(), 1);
    wait_for("the panicked refresh", || {
        cache.stats().refresh_failures == 4
    })
    .await;

    // Past the window: a miss, and the loader's error reaches the caller.
    clock.set(t0 + TTL + WINDOW + Duration::from_secs(1));
    let r = cache.try_get_or_refresh("k", &fresh, failing).await;
    assert!(matches!(r, Err(LoadError::Init(e)) if *e == "backend down"));
    let s = cache.stats();
    assert_eq!((s.stale_served, s.misses, s.refreshes), (4, 2, 0));
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_refresh_keeps_the_stale_value_current_thread() {
    failed_refresh_keeps_stale().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_keeps_the_stale_value_multi_thread() {
    failed_refresh_keeps_stale().await;
}

/// XFetch through the async face: with a 100 ms loader and beta 1, callers in the last second
/// start a refresh before the deadline, and only a few (one runs at a time per key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_refresh_starts_few_refreshes_before_the_deadline() {
    let mut counts = Vec::new();
    for seed in 0..4u64 {
        let (cache, clock) = cache();
        let fresh = Freshness::new(TTL).early_refresh(1.0).random_seed(seed);
        let starts = Arc::new(Mutex::new(Vec::new()));
        let load = {
            let (starts, clock) = (Arc::clone(&starts), clock.clone());
            move || async move {
                starts.lock().unwrap().push(clock.now());
                tokio::time::sleep(Duration::from_millis(100)).await;
                7u32
            }
        };
        let _: u32 = cache
            .get_or_refresh("k", &fresh, load.clone())
            .await
            .unwrap();
        let deadline = clock.now() + TTL;
        clock.advance(TTL - Duration::from_secs(1));
        for _ in 0..1_000 {
            let v: u32 = cache
                .get_or_refresh("k", &fresh, load.clone())
                .await
                .unwrap();
            assert_eq!(v, 7);
            clock.advance(Duration::from_millis(1));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let runs = starts.lock().unwrap().len();
        wait_for("the refreshes", || {
            let s = cache.stats();
            usize::try_from(s.refreshes + s.refresh_failures).unwrap() == runs - 1
        })
        .await;
        let early = starts.lock().unwrap()[1..]
            .iter()
            .filter(|t| **t < deadline)
            .count();
        assert!(early >= 1, "seed {seed}: no refresh before the deadline");
        assert!(early <= 3, "seed {seed}: {early} early refreshes");
        counts.push(early);
    }
    eprintln!("async early refresh, beta 1, 100 ms loader: refreshes per seed {counts:?}");
}

/// With no early refresh (beta 0) a fresh value never starts a refresh, whatever the seed.
#[tokio::test(flavor = "current_thread")]
async fn no_early_refresh_without_beta() {
    let (cache, clock) = cache();
    let fresh = Freshness::new(TTL).random_seed(1);
    let _: u32 = cache
        .get_or_refresh("k", &fresh, || async { 1 })
        .await
        .unwrap();
    clock.advance(TTL - Duration::from_millis(1));
    for _ in 0..100 {
        let v: u32 = cache
            .get_or_refresh("k", &fresh, || async { unreachable!("no refresh") })
            .await
            .unwrap();
        assert_eq!(v, 1);
    }
    tokio::task::yield_now().await;
    let s = cache.stats();
    assert_eq!((s.hits, s.refreshes, s.refresh_failures), (100, 0, 0));
}

/// Another holder's lease on a redb file: the async leader waits for it with `tokio::time`
/// (on a current-thread runtime, so the task that stores the value and releases the lease runs
/// on the same thread: a blocking wait would deadlock), then returns the stored value without
/// running its loader.
#[cfg(feature = "redb")]
#[tokio::test(flavor = "current_thread")]
async fn a_held_lease_is_awaited_without_blocking_the_runtime() {
    use braincache::backend::Backend;
    use braincache::backend::RedbBackend;
    use braincache::base::{Lease, LeaseToken};

    let dir = tempfile::tempdir().unwrap();
    let cache = BrainCache::new(RedbBackend::open(dir.path().join("leases.redb")).unwrap());
    let other = LeaseToken(42);
    let now = cache.clock().now();
    let taken = cache
        .backend()
        .try_lease("k", other, Duration::from_secs(5), now)
        .unwrap();
    assert!(matches!(taken, Lease::Acquired));

    let holder = {
        let cache = cache.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            cache.set("k", &9u32, TTL).await.unwrap();
            cache.backend().release_lease("k", other).unwrap();
        })
    };
    let fresh = Freshness::new(TTL).lease(Duration::from_secs(5));
    let v: u32 = cache
        .get_or_refresh("k", &fresh, || async {
            unreachable!("the holder computes")
        })
        .await
        .unwrap();
    assert_eq!(v, 9);
    holder.await.unwrap();
    let s = cache.stats();
    assert_eq!((s.misses, s.lease_waits), (1, 1));

    // The lease is free again: the next miss takes it and computes.
    cache.delete("k").await.unwrap();
    let v: u32 = cache
        .get_or_refresh("k", &fresh, || async { 10 })
        .await
        .unwrap();
    assert_eq!(v, 10);
    assert_eq!(cache.stats().lease_waits, 1);
}

#[cfg(feature = "macros")]
mod macro_on_async_fn {
    use super::{TTL, WINDOW, wait_for};
    use braincache::backend::MemoryBackend;
    use braincache::base::ManualClock;
    use braincache::future::BrainCache;
    use std::sync::LazyLock;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    static CLOCK: LazyLock<ManualClock> = LazyLock::new(ManualClock::starting_now);
    static CACHE: LazyLock<BrainCache<MemoryBackend>> = LazyLock::new(|| {
        braincache::BrainCache::builder(MemoryBackend::new())
            .clock(CLOCK.clone())
            .build()
            .to_async()
    });
    static RUNS: AtomicUsize = AtomicUsize::new(0);

    #[braincache::cache(ttl = 10, stale = 5, early_refresh = 1.0, lease = 10, cache = CACHE)]
    async fn square(x: u64) -> (u64, usize) {
        tokio::task::yield_now().await;
        (x * x, RUNS.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// `#[cache(ttl, stale, early_refresh, lease)]` on an `async fn` memoizes through the async
    /// `get_or_refresh`: a stale value is returned at once and refreshed by a spawned task.
    #[tokio::test(flavor = "current_thread")]
    async fn the_cache_attribute_on_async_fn_serves_stale_values_and_refreshes_them() {
        assert_eq!(square(3).await, (9, 1));
        assert_eq!(square(3).await, (9, 1));
        CLOCK.advance(TTL + Duration::from_secs(1));
        assert_eq!(square(3).await, (9, 1), "stale, served at once");
        wait_for("the refresh", || CACHE.stats().refreshes == 1).await;
        assert_eq!(square(3).await, (9, 2), "refreshed in the background");
        CLOCK.advance(TTL + WINDOW + Duration::from_secs(1));
        assert_eq!(
            square(3).await,
            (9, 3),
            "past the window: computed by the caller"
        );
        assert_eq!(CACHE.stats().stale_served, 1);
    }
}
