//! Front-end behaviour on the memory backend: the Python original's faults, each as a test.

mod support;

use braincache::backend::{Backend, MemoryBackend};
use braincache::base::ManualClock;
use braincache::{BrainCache, LoadError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::{slow, together, together_results};

fn cache_with_clock() -> (BrainCache<MemoryBackend>, ManualClock) {
    support::with_manual_clock(MemoryBackend::new())
}

#[test]
fn default_needs_no_annotation_and_is_a_shared_send_sync_handle() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>(_: &T) {}
    let cache = BrainCache::default();
    assert_send_sync(&cache);
    let other = cache.clone();
    other.set("k", &1u8, None).unwrap();
    assert_eq!(cache.get::<u8>("k").unwrap(), Some(1));
    assert_eq!(cache.stats().sets, 1, "clones share counters");
}

/// The Python original read a stored `None` back as missing.
#[test]
fn falsy_values_round_trip_and_are_present() {
    let cache = BrainCache::default();
    cache.set("zero", &0u64, None).unwrap();
    cache.set("empty_str", &"", None).unwrap();
    cache.set("false", &false, None).unwrap();
    cache.set("empty_vec", &Vec::<u32>::new(), None).unwrap();
    cache.set("none", &None::<u32>, None).unwrap();
    cache.set("unit", &(), None).unwrap();
    assert_eq!(cache.get::<u64>("zero").unwrap(), Some(0));
    assert_eq!(
        cache.get::<String>("empty_str").unwrap(),
        Some(String::new())
    );
    assert_eq!(cache.get::<bool>("false").unwrap(), Some(false));
    assert_eq!(cache.get::<Vec<u32>>("empty_vec").unwrap(), Some(vec![]));
    assert_eq!(cache.get::<Option<u32>>("none").unwrap(), Some(None));
    assert_eq!(cache.get::<()>("unit").unwrap(), Some(()));
    for k in ["zero", "empty_str", "false", "empty_vec", "none", "unit"] {
        assert!(cache.has(k).unwrap(), "{k} must be present");
    }
    assert!(!cache.has("never-set").unwrap());
}

/// The Python original returned tuples as lists and integer map keys as strings.
#[test]
fn types_round_trip_exactly() {
    use std::collections::BTreeMap;
    let cache = BrainCache::default();
    let tuple = (1u8, "two".to_string(), 3.5f64);
    let map: BTreeMap<u32, String> = [(1, "a".into()), (2, "b".into())].into();
    cache.set("tuple", &tuple, None).unwrap();
    cache.set("map", &map, None).unwrap();
    assert_eq!(
        cache.get::<(u8, String, f64)>("tuple").unwrap(),
        Some(tuple)
    );
    assert_eq!(
        cache.get::<BTreeMap<u32, String>>("map").unwrap(),
        Some(map)
    );
}

/// The Python original treated `ttl=0` as "never expires".
#[test]
fn zero_ttl_is_already_expired_and_none_never_expires() {
    let (cache, clock) = cache_with_clock();
    cache.set("zero", &1u8, Duration::ZERO).unwrap();
    cache.set("forever", &2u8, None).unwrap();
    assert_eq!(cache.get::<u8>("zero").unwrap(), None);
    assert!(!cache.has("zero").unwrap());
    clock.advance(Duration::from_secs(100 * 365 * 24 * 3600));
    assert_eq!(cache.get::<u8>("forever").unwrap(), Some(2));
}

#[test]
fn expired_entries_are_never_returned_without_any_cleaner() {
    let (cache, clock) = cache_with_clock();
    cache.set("k", &"v", Duration::from_secs(10)).unwrap();
    clock.advance(Duration::from_millis(9_999));
    assert_eq!(cache.get::<String>("k").unwrap().as_deref(), Some("v"));
    clock.advance(Duration::from_millis(1)); // exactly at the deadline: expired
    assert_eq!(cache.get::<String>("k").unwrap(), None);
    assert!(!cache.has("k").unwrap());
    // Still stored until purged, and `len` says so.
    assert_eq!(cache.len().unwrap(), 1);
    assert_eq!(cache.purge_expired().unwrap(), 1);
    assert_eq!(cache.len().unwrap(), 0);
    assert_eq!(cache.stats().expired, 1);
}

#[test]
fn a_later_set_replaces_the_deadline() {
    let (cache, clock) = cache_with_clock();
    cache.set("k", &1u8, Duration::from_secs(1)).unwrap();
    cache.set("k", &2u8, None).unwrap();
    clock.advance(Duration::from_secs(5));
    assert_eq!(cache.purge_expired().unwrap(), 0);
    assert_eq!(cache.get::<u8>("k").unwrap(), Some(2));
}

#[test]
fn reading_another_type_is_a_decode_error_not_none_or_panic() {
    let cache = BrainCache::default();
    cache.set("s", &"hello world", None).unwrap();
    cache.set("n", &70_000u32, None).unwrap();
    let e = cache.get::<u32>("s").unwrap_err();
    assert!(e.is_decode(), "{e}");
    assert_eq!(e.key(), Some("s"));
    assert!(e.to_string().contains("u32"), "{e}");
    assert!(cache.get::<String>("n").unwrap_err().is_decode());
    assert!(cache.get::<bool>("n").unwrap_err().is_decode());
    // The entry is left as it was.
    assert_eq!(cache.get::<u32>("n").unwrap(), Some(70_000));
    assert_eq!(cache.stats().errors, 3);
}

#[test]
fn delete_and_clear() {
    let cache = BrainCache::default();
    cache.set("a", &1u8, None).unwrap();
    cache.set("b", &2u8, None).unwrap();
    assert!(cache.delete("a").unwrap());
    assert!(!cache.delete("a").unwrap());
    assert_eq!(cache.len().unwrap(), 1);
    cache.clear().unwrap();
    assert!(cache.is_empty().unwrap());
}

#[test]
fn stats_count_hits_misses_sets_and_evictions() {
    let cache = BrainCache::new(MemoryBackend::builder().max_entries(10).build());
    for i in 0..20 {
        cache.set(&format!("k{i}"), &i, None).unwrap();
    }
    // Which ten keys stayed is the policy's business (TinyLFU admission keeps the first ten
    // here: the later ones were no more popular); find one through the backend, which the
    // counters do not see, and read it through the cache.
    let kept = (0..20)
        .map(|i| format!("k{i}"))
        .find(|k| cache.backend().get(k).unwrap().is_some())
        .expect("a bounded cache keeps entries");
    let _ = cache.get::<i32>(&kept).unwrap();
    let _ = cache.get::<i32>("nope").unwrap();
    let s = cache.stats();
    assert_eq!((s.sets, s.hits, s.misses, s.evictions), (20, 1, 1, 10));
    assert!(cache.len().unwrap() <= 10);
}

#[test]
fn get_or_insert_with_computes_once_for_eight_concurrent_callers() {
    let cache = BrainCache::default();
    let calls = AtomicUsize::new(0);
    let got = together(8, || {
        let computed = slow(&calls, 200, "computed".to_string());
        cache
            .get_or_insert_with("slow", Duration::from_secs(60), computed)
            .unwrap()
    });
    assert_eq!(got, vec!["computed"; 8]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn waiters_receive_the_value_even_with_a_zero_ttl() {
    // The value is already expired in the cache, so waiters must get it from the leader.
    let cache = BrainCache::default();
    let calls = AtomicUsize::new(0);
    let got = together(4, || {
        let seven = slow(&calls, 200, 7u32);
        cache
            .get_or_insert_with("z", Duration::ZERO, seven)
            .unwrap()
    });
    assert_eq!(got, [7; 4]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_panicking_computation_does_not_wedge_the_waiters() {
    let cache = BrainCache::default();
    let calls = AtomicUsize::new(0);
    let results: Vec<std::thread::Result<u32>> = together_results(4, || {
        cache
            .get_or_insert_with("p", None, || {
                // The first computation panics; the next one succeeds.
                let n = calls.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
                assert!(n > 0, "first computation fails");
                9u32
            })
            .unwrap()
    });
    let panicked = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(panicked, 1, "only the panicking leader fails");
    assert!(results.iter().flatten().all(|v| *v == 9));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "one panic, then one computation"
    );
    assert_eq!(cache.get::<u32>("p").unwrap(), Some(9));
}

#[test]
fn try_get_or_insert_with_shares_errors_and_does_not_cache_them() {
    let cache = BrainCache::default();
    let calls = AtomicUsize::new(0);
    let results = together(4, || {
        let down = slow(
            &calls,
            200,
            Err(std::io::Error::other("backend of record is down")),
        );
        cache.try_get_or_insert_with::<u32, _, _>("e", None, down)
    });
    for r in results {
        match r {
            Err(LoadError::Init(e)) => assert_eq!(e.to_string(), "backend of record is down"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(!cache.has("e").unwrap());
    let v = cache.try_get_or_insert_with::<u32, std::io::Error, _>("e", None, || Ok(5));
    assert_eq!(v.unwrap(), 5);
}

#[test]
fn unencodable_values_are_typed_errors() {
    use braincache::base::Json;
    let cache = BrainCache::builder(MemoryBackend::new())
        .codec(Json)
        .build();
    let mut bad = std::collections::HashMap::new();
    bad.insert(vec![1u8], 1u8); // JSON map keys must be strings
    let e = cache.set("k", &bad, None).unwrap_err();
    assert!(matches!(e, braincache::Error::Encode { .. }), "{e}");
    assert!(!cache.has("k").unwrap());
    // `get_or_insert_with` still hands back the computed value's error as a cache error.
    let r = cache.get_or_insert_with("k", None, || bad.clone());
    assert!(r.is_err());
}

#[test]
fn bounded_cache_never_exceeds_its_bound_under_concurrent_inserts() {
    let cache = BrainCache::new(MemoryBackend::builder().max_entries(500).build());
    std::thread::scope(|s| {
        for t in 0..4 {
            let cache = &cache;
            s.spawn(move || {
                for i in 0..3_000 {
                    cache.set(&format!("{t}/{i}"), &i, None).unwrap();
                    if i % 50 == 0 {
                        assert!(cache.len().unwrap() <= 500);
                    }
                }
            });
        }
    });
    let n = cache.len().unwrap();
    assert!((250..=500).contains(&n), "{n}");
}

/// Regression (review finding): when a memoized function fails with an error that is not shared
/// (the `#[cache]` macro's `Result` functions), the waiters were re-elected one leader at a time,
/// so N concurrent failing calls ran one after another. Now they compute at once.
#[test]
fn waiters_of_a_failed_unshared_computation_compute_concurrently() {
    use std::sync::atomic::AtomicUsize as Counter;
    static ACTIVE: Counter = Counter::new(0);
    static MAX_ACTIVE: Counter = Counter::new(0);
    static CALLS: Counter = Counter::new(0);

    #[braincache::cache(name = "frontend::always_fails")]
    fn always_fails(x: u32) -> Result<u32, String> {
        CALLS.fetch_add(1, Ordering::SeqCst);
        let now = ACTIVE.fetch_add(1, Ordering::SeqCst) + 1;
        MAX_ACTIVE.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(150));
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
        Err(format!("no value for {x}"))
    }

    let got = together(6, || always_fails(3));
    assert_eq!(got, vec![Err("no value for 3".to_string()); 6]);
    assert_eq!(
        CALLS.load(Ordering::SeqCst),
        6,
        "errors are not cached nor shared"
    );
    assert!(
        MAX_ACTIVE.load(Ordering::SeqCst) >= 2,
        "after the first failure the others ran one at a time"
    );
}

/// `optionally_get_or_insert_with`: `Some` is stored as the value itself, `None` is returned and
/// not stored, and concurrent callers share one computation, `None` included.
#[test]
fn optionally_get_or_insert_with_stores_some_and_shares_none() {
    let cache = BrainCache::default();
    let calls = AtomicUsize::new(0);
    let v = cache
        .optionally_get_or_insert_with::<u32, _>("k", None, || {
            calls.fetch_add(1, Ordering::SeqCst);
            None
        })
        .unwrap();
    assert_eq!(v, None);
    assert!(!cache.has("k").unwrap());
    // Waiters on a computation that finds nothing get `None` without computing themselves.
    let shared_calls = AtomicUsize::new(0);
    let got = together(4, || {
        let nothing = slow(&shared_calls, 200, None);
        cache
            .optionally_get_or_insert_with::<u32, _>("shared", None, nothing)
            .unwrap()
    });
    assert_eq!(got, [None; 4]);
    assert_eq!(shared_calls.load(Ordering::SeqCst), 1);
    assert!(!cache.has("shared").unwrap());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let v = cache
        .optionally_get_or_insert_with("k", Duration::from_secs(60), || Some(5u32))
        .unwrap();
    assert_eq!(v, Some(5));
    assert_eq!(cache.get::<u32>("k").unwrap(), Some(5));
    let again = cache
        .optionally_get_or_insert_with::<u32, _>("k", None, || unreachable!())
        .unwrap();
    assert_eq!(again, Some(5));
}
