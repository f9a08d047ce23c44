//! Every way of writing a TTL compiles and means what it says (issue 13, item 6): `Duration`,
//! `None`, `Some(d)`, an `Option<Duration>` variable, whole seconds as an untyped literal or any
//! integer type, a negative number (already expired) and `Ttl` itself, on `set`,
//! `get_or_insert_with` and `try_get_or_insert_with`.

mod support;

use braincache::backend::MemoryBackend;
use braincache::base::ManualClock;
use braincache::{BrainCache, Ttl};
use std::time::Duration;

fn cache() -> (BrainCache<MemoryBackend>, ManualClock) {
    support::with_manual_clock(MemoryBackend::new())
}

/// Seconds from now until the only deadline in `cache`; `None`: nothing expires.
fn ttl_secs(cache: &BrainCache<MemoryBackend>, clock: &ManualClock) -> Option<u64> {
    use braincache::base::Clock;
    cache
        .next_expiry()
        .unwrap()
        .map(|d| d.saturating_duration_since(clock.now()).as_secs())
}

/// Runs `set` on a fresh cache and returns the TTL it stored, in seconds.
fn stored_ttl(set: impl FnOnce(&BrainCache<MemoryBackend>)) -> Option<u64> {
    let (cache, clock) = cache();
    set(&cache);
    assert_eq!(cache.len().unwrap(), 1);
    assert!(cache.has("k").unwrap());
    ttl_secs(&cache, &clock)
}

#[test]
fn r13_set_accepts_every_form() {
    let secs: u64 = 7;
    let signed: i64 = 8;
    let configured: Option<Duration> = Some(Duration::from_secs(9));
    let unset: Option<Duration> = None;
    let got = [
        stored_ttl(|c| c.set("k", &1u8, 60).unwrap()),
        stored_ttl(|c| c.set("k", &1u8, secs).unwrap()),
        stored_ttl(|c| c.set("k", &1u8, signed).unwrap()),
        stored_ttl(|c| c.set("k", &1u8, 5u32).unwrap()),
        stored_ttl(|c| c.set("k", &1u8, Duration::from_secs(3600)).unwrap()),
        stored_ttl(|c| c.set("k", &1u8, None).unwrap()),
        stored_ttl(|c| c.set("k", &1u8, Some(Duration::from_secs(2))).unwrap()),
        stored_ttl(|c| c.set("k", &1u8, configured).unwrap()),
        stored_ttl(|c| c.set("k", &1u8, unset).unwrap()),
        stored_ttl(|c| c.set("k", &1u8, Ttl::secs(11)).unwrap()),
        stored_ttl(|c| c.set("k", &1u8, Ttl::FOREVER).unwrap()),
    ];
    assert_eq!(
        got,
        [
            Some(60),
            Some(7),
            Some(8),
            Some(5),
            Some(3600),
            None,
            Some(2),
            Some(9),
            None,
            Some(11),
            None
        ]
    );
}

/// Zero and negative seconds are already expired: stored, never returned (not "forever", as
/// the Python original read 0).
#[test]
fn r13_zero_and_negative_seconds_are_already_expired() {
    let (cache, _clock) = cache();
    cache.set("zero", &1u8, 0).unwrap();
    cache.set("negative", &1u8, -5).unwrap();
    cache.set("negative i64", &1u8, i64::MIN).unwrap();
    for key in ["zero", "negative", "negative i64"] {
        assert_eq!(cache.get::<u8>(key).unwrap(), None, "{key}");
    }
    assert_eq!(cache.len().unwrap(), 3, "stored, but expired");
    assert_eq!(cache.purge_expired().unwrap(), 3);
}

#[test]
fn r13_memoizing_calls_accept_every_form() {
    let opt: Option<Duration> = Some(Duration::from_secs(40));
    let got = [
        stored_ttl(|c| assert_eq!(c.get_or_insert_with("k", 60, || 1u32).unwrap(), 1)),
        stored_ttl(|c| assert_eq!(c.get_or_insert_with("k", None, || 2u32).unwrap(), 2)),
        stored_ttl(|c| {
            let v = c.get_or_insert_with("k", Duration::from_secs(30), || 3u32);
            assert_eq!(v.unwrap(), 3);
        }),
        stored_ttl(|c| assert_eq!(c.get_or_insert_with("k", opt, || 4u32).unwrap(), 4)),
        stored_ttl(|c| {
            let v = c.try_get_or_insert_with::<_, String, _>("k", 50, || Ok(5u32));
            assert_eq!(v.unwrap(), 5);
        }),
        stored_ttl(|c| {
            let v = c.try_get_or_insert_with::<_, String, _>("k", None, || Ok(6u32));
            assert_eq!(v.unwrap(), 6);
        }),
        stored_ttl(|c| {
            let ttl = Some(Duration::from_secs(70));
            let v = c.try_get_or_insert_with::<_, String, _>("k", ttl, || Ok(7u32));
            assert_eq!(v.unwrap(), 7);
        }),
    ];
    assert_eq!(
        got,
        [Some(60), None, Some(30), Some(40), Some(50), None, Some(70)]
    );

    // 60 means 60 seconds.
    let (cache, clock) = cache();
    let _: u32 = cache.get_or_insert_with("a", 60, || 1).unwrap();
    clock.advance(Duration::from_secs(59));
    assert_eq!(cache.get::<u32>("a").unwrap(), Some(1));
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.get::<u32>("a").unwrap(), None);
}
