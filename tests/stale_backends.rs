//! Backends keep a stale record for its stale-while-revalidate window: redb's purge (and so the
//! cleaner) follows the backend deadline (TTL + window), and Redis's `PX` is TTL + window.

use braincache::backend::Backend;
use braincache::backend::RedbBackend;
use braincache::base::ManualClock;
use braincache::{BrainCache, Freshness};
use std::time::Duration;

#[test]
fn redb_purge_keeps_stale_records_until_the_window_ends() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_now();
    let cache = BrainCache::builder(RedbBackend::open(dir.path().join("c.redb")).unwrap())
        .clock(clock.clone())
        .build();
    let fresh =
        Freshness::new(Duration::from_secs(10)).stale_while_revalidate(Duration::from_secs(5));
    let _: u32 = cache.get_or_refresh("k", &fresh, || 1).unwrap();
    clock.advance(Duration::from_secs(11));
    assert_eq!(
        cache.purge_expired().unwrap(),
        0,
        "stale, inside the window"
    );
    assert_eq!(
        cache.get::<u32>("k").unwrap(),
        None,
        "plain get: stale is a miss"
    );
    let r = cache.backend().get("k").unwrap().unwrap();
    assert!(r.fresh_until.is_some() && r.compute_time.is_some());
    clock.advance(Duration::from_secs(5));
    assert_eq!(cache.purge_expired().unwrap(), 1, "past the window");
}

#[cfg(feature = "redis")]
#[path = "../crates/braincache-redis/tests/support/mod.rs"]
mod support;

#[cfg(feature = "redis")]
#[test]
fn redis_keeps_stale_records_for_ttl_plus_window() {
    let Some(server) = support::RedisServer::start_or_skip() else {
        return;
    };
    let cache = BrainCache::new(braincache::backend::RedisBackend::connect(&server.url()).unwrap());
    let fresh =
        Freshness::new(Duration::from_millis(200)).stale_while_revalidate(Duration::from_secs(30));
    let _: u32 = cache.get_or_refresh("k", &fresh, || 1).unwrap();
    std::thread::sleep(Duration::from_millis(400)); // past the TTL, on the server's clock too
    assert_eq!(
        cache.get::<u32>("k").unwrap(),
        None,
        "plain get: stale is a miss"
    );
    assert!(
        cache.backend().get("k").unwrap().is_some(),
        "Redis kept it: PX is TTL + window"
    );
    let v: u32 = cache.get_or_refresh("k", &fresh, || 2).unwrap();
    assert_eq!(v, 1, "served stale");
    assert_eq!(cache.stats().stale_served, 1);
}
