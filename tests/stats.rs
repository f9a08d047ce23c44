//! `stats()` counts each call once (issue 13, item 3): a scripted sequence of every operation,
//! with every counter checked after each step.

mod support;

use braincache::backend::MemoryBackend;
use braincache::{BrainCache, LoadError, Stats};
use std::time::Duration;

/// `(hits, misses, sets, evictions, expired, errors)`.
fn counters(s: Stats) -> (u64, u64, u64, u64, u64, u64) {
    (s.hits, s.misses, s.sets, s.evictions, s.expired, s.errors)
}

#[test]
fn r13_every_counter_after_every_operation() {
    let (cache, clock) = support::with_manual_clock(MemoryBackend::new());
    let step = |what: &str, want: (u64, u64, u64, u64, u64, u64)| {
        assert_eq!(
            counters(cache.stats()),
            want,
            "after {what}: (hits, misses, sets, evictions, expired, errors)"
        );
    };
    step("nothing", (0, 0, 0, 0, 0, 0));

    cache.set("a", &1u32, None).unwrap();
    step("set", (0, 0, 1, 0, 0, 0));

    assert_eq!(cache.get::<u32>("a").unwrap(), Some(1));
    step("get hit", (1, 0, 1, 0, 0, 0));

    assert_eq!(cache.get::<u32>("missing").unwrap(), None);
    step("get miss", (1, 1, 1, 0, 0, 0));

    assert!(cache.has("a").unwrap());
    step("has hit", (2, 1, 1, 0, 0, 0));

    assert!(!cache.has("missing").unwrap());
    step("has miss", (2, 2, 1, 0, 0, 0));

    cache.set("short", &2u32, Duration::from_secs(10)).unwrap();
    step("set with ttl", (2, 2, 2, 0, 0, 0));
    clock.advance(Duration::from_secs(10));
    assert_eq!(cache.get::<u32>("short").unwrap(), None);
    step("get of an expired entry", (2, 3, 2, 0, 0, 0));

    // The bug: a miss here counted two misses (the first lookup and the leader's re-check).
    let v: u32 = cache.get_or_insert_with("g", None, || 7).unwrap();
    assert_eq!(v, 7);
    step("get_or_insert_with miss", (2, 4, 3, 0, 0, 0));
    assert!((cache.stats().hit_ratio() - 2.0 / 6.0).abs() < 1e-12);

    let v: u32 = cache
        .get_or_insert_with("g", None, || unreachable!())
        .unwrap();
    assert_eq!(v, 7);
    step("get_or_insert_with hit", (3, 4, 3, 0, 0, 0));

    let v: u32 = cache
        .try_get_or_insert_with::<_, &str, _>("t", None, || Ok(8))
        .unwrap();
    assert_eq!(v, 8);
    step("try_get_or_insert_with miss, Ok", (3, 5, 4, 0, 0, 0));

    let v: u32 = cache
        .try_get_or_insert_with::<_, &str, _>("t", None, || unreachable!())
        .unwrap();
    assert_eq!(v, 8);
    step("try_get_or_insert_with hit", (4, 5, 4, 0, 0, 0));

    let r = cache.try_get_or_insert_with::<u32, _, _>("e", None, || Err("offline"));
    assert!(matches!(r, Err(LoadError::Init(e)) if *e == "offline"));
    step(
        "try_get_or_insert_with miss, Err (not a cache error)",
        (4, 6, 4, 0, 0, 0),
    );

    assert!(cache.get::<String>("a").is_err());
    step("get hit that does not decode", (5, 6, 4, 0, 0, 1));

    assert!(cache.delete("a").unwrap());
    assert!(!cache.delete("a").unwrap());
    step("delete", (5, 6, 4, 0, 0, 1));

    cache.set("p1", &1u8, Duration::from_secs(1)).unwrap();
    cache.set("p2", &1u8, Duration::from_secs(1)).unwrap();
    step("two sets", (5, 6, 6, 0, 0, 1));
    clock.advance(Duration::from_secs(1));
    // "short", "p1" and "p2" are due.
    assert_eq!(cache.purge_expired().unwrap(), 3);
    step("purge", (5, 6, 6, 0, 3, 1));

    cache.clear().unwrap();
    assert_eq!(cache.len().unwrap(), 0);
    step("clear and len", (5, 6, 6, 0, 3, 1));
}

/// A bounded backend's evictions reach `Stats::evictions`.
#[test]
fn r13_evictions_are_counted() {
    let cache = BrainCache::new(MemoryBackend::builder().max_entries(16).build());
    for i in 0..200u32 {
        cache.set(&format!("k{i}"), &i, None).unwrap();
    }
    let s = cache.stats();
    assert_eq!(s.sets, 200);
    assert!(s.evictions > 0, "{s:?}");
    assert_eq!(
        u64::try_from(cache.len().unwrap()).unwrap() + s.evictions,
        200
    );
    assert_eq!((s.hits, s.misses, s.errors), (0, 0, 0));
}
