//! `BrainCache` over `MemcachedBackend`, end to end against a real memcached: typed values, the
//! record's own deadline deciding expiry (memcached keeps whole seconds), `len` unsupported.
//!
//! Run with `cargo test --features memcached --test memcached`. Without `memcached` installed each
//! test prints a `skipped:` line, or fails when `BRAINCACHE_REQUIRE_MEMCACHED=1` (as in CI).
#![cfg(feature = "memcached")]

#[path = "../crates/braincache-memcached/tests/support/mod.rs"]
mod support;

use braincache::BrainCache;
use braincache::backend::{Backend, MemcachedBackend};
use braincache::base::ManualClock;
use std::time::Duration;
use support::MemcachedServer;

#[test]
fn the_records_deadline_decides_not_memcacheds_rounded_ttl() {
    let Some(server) = MemcachedServer::start_or_skip() else {
        return;
    };
    let clock = ManualClock::starting_now();
    let cache = BrainCache::builder(MemcachedBackend::connect(&server.url()).unwrap())
        .clock(clock.clone())
        .build();
    cache
        .set("k", &"v".to_string(), Duration::from_secs(10))
        .unwrap();
    assert_eq!(cache.get::<String>("k").unwrap().as_deref(), Some("v"));
    // Memcached still holds it (its TTL counts real seconds), but the deadline has passed.
    clock.advance(Duration::from_secs(10));
    assert!(cache.backend().get("k").unwrap().is_some());
    assert_eq!(cache.get::<String>("k").unwrap(), None);
    assert!(!cache.has("k").unwrap());
}

#[test]
fn typed_values_and_unsupported_len() {
    let Some(server) = MemcachedServer::start_or_skip() else {
        return;
    };
    let cache = BrainCache::new(MemcachedBackend::connect(&server.url()).unwrap());
    cache.set("n", &1234u32, None).unwrap();
    cache
        .set("a key with spaces", &vec![1u8, 2, 3], None)
        .unwrap();
    assert_eq!(cache.get::<u32>("n").unwrap(), Some(1234));
    assert_eq!(
        cache.get::<Vec<u8>>("a key with spaces").unwrap(),
        Some(vec![1, 2, 3])
    );
    let computed = cache.get_or_insert_with("lazy", None, || 7u8).unwrap();
    assert_eq!(computed, 7);
    assert!(cache.len().unwrap_err().is_unsupported());
    cache.clear().unwrap();
    assert_eq!(cache.get::<u32>("n").unwrap(), None);
}
