//! `get_or_refresh` in one process, on the manual clock: stale-while-revalidate, a failed
//! refresh, early refresh (XFetch), and what plain `get` and the purge make of stale records.

use braincache::backend::MemoryBackend;
use braincache::base::{Clock, ManualClock};
use braincache::{BrainCache, Freshness, LoadError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(10);
const WINDOW: Duration = Duration::from_secs(5);

fn cache() -> (BrainCache<MemoryBackend>, ManualClock) {
    let clock = ManualClock::starting_now();
    let cache = BrainCache::builder(MemoryBackend::new())
        .clock(clock.clone())
        .build();
    (cache, clock)
}

/// Polls `done` for up to 10 s; background refreshes run on the pool's threads.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn stale_values_are_served_at_once_while_one_background_refresh_runs() {
    let (cache, clock) = cache();
    let fresh = Freshness::new(TTL).stale_while_revalidate(WINDOW);
    let v: u32 = cache.get_or_refresh("k", &fresh, || 1).unwrap();
    assert_eq!(v, 1);

    clock.advance(TTL + Duration::from_secs(1)); // deadline + 1 s
    // Plain reads never return a stale value, and the purge keeps it for the window.
    assert_eq!(cache.get::<u32>("k").unwrap(), None);
    assert_eq!(cache.purge_expired().unwrap(), 0);

    // The refresh blocks until all 50 callers have their answer: nobody waited for it.
    let runs = Arc::new(AtomicUsize::new(0));
    let (release, gate) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    let barrier = Arc::new(Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let (cache, fresh, runs, gate, barrier) = (
                cache.clone(),
                fresh.clone(),
                Arc::clone(&runs),
                Arc::clone(&gate),
                Arc::clone(&barrier),
            );
            std::thread::spawn(move || {
                barrier.wait();
                cache
                    .get_or_refresh("k", &fresh, move || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        gate.lock().unwrap().recv().unwrap();
                        2u32
                    })
                    .unwrap()
            })
        })
        .collect();
    let got: Vec<u32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        got,
        vec![1; 50],
        "every caller gets the stale value at once"
    );
    release.send(()).unwrap();
    wait_for("the refresh", || cache.stats().refreshes == 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one background refresh");
    let s = cache.stats();
    assert_eq!((s.stale_served, s.refresh_failures), (50, 0));
    // The refreshed value is fresh again, for plain reads too.
    assert_eq!(cache.get::<u32>("k").unwrap(), Some(2));
}

#[test]
fn a_failed_refresh_keeps_the_stale_value_until_the_window_ends_then_it_is_a_miss() {
    let (cache, clock) = cache();
    let fresh = Freshness::new(TTL).stale_while_revalidate(WINDOW);
    let load = |v: u32| move || Ok::<u32, String>(v);
    assert_eq!(cache.try_get_or_refresh("k", &fresh, load(1)).unwrap(), 1);

    let t0 = clock.now(); // the first value was computed now: fresh until t0 + TTL
    let failing = || Err::<u32, String>("backend down".into());
    for (at, failures) in [(1, 1), (3, 2), (4, 3)] {
        clock.set(t0 + TTL + Duration::from_secs(at));
        assert_eq!(cache.try_get_or_refresh("k", &fresh, failing).unwrap(), 1);
        wait_for("the failed refresh", || {
            cache.stats().refresh_failures == failures
        });
    }
    // Deadline + 6 s: past the 5 s window, a miss; the loader runs on the caller's thread.
    clock.set(t0 + TTL + Duration::from_secs(6));
    let caller = std::thread::current().id();
    let r = cache.try_get_or_refresh("k", &fresh, move || {
        assert_eq!(std::thread::current().id(), caller);
        Ok::<u32, String>(3)
    });
    assert_eq!(r.unwrap(), 3);
    let s = cache.stats();
    assert_eq!((s.stale_served, s.misses, s.refreshes), (3, 2, 0));

    // Past the window, a failing loader's error reaches the caller.
    clock.advance(TTL + WINDOW);
    let r = cache.try_get_or_refresh("k", &fresh, failing);
    assert!(matches!(r, Err(LoadError::Init(e)) if *e == "backend down"));
}

#[test]
fn a_panicking_refresh_is_a_failure_and_the_stale_value_stays() {
    let (cache, clock) = cache();
    let fresh = Freshness::new(TTL).stale_while_revalidate(WINDOW);
    let _: u32 = cache.get_or_refresh("k", &fresh, || 1).unwrap();
    clock.advance(TTL);
    let v: u32 = cache
        .get_or_refresh("k", &fresh, || panic!("loader bug"))
        .unwrap();
    assert_eq!(v, 1);
    wait_for("the failed refresh", || cache.stats().refresh_failures == 1);
    let v: u32 = cache.get_or_refresh("k", &fresh, || 2).unwrap();
    assert_eq!(v, 1, "still stale: the next caller starts the next refresh");
    wait_for("the refresh", || cache.stats().refreshes == 1);
    assert_eq!(cache.get::<u32>("k").unwrap(), Some(2));
}

/// XFetch with beta = 1 and a 100 ms loader, 1,000 calls spread over the last second before the
/// deadline (one per millisecond of the manual clock, a real millisecond apart so that a
/// background refresh runs as it would): at least one refresh starts before the deadline, and
/// few do. Prints the distribution over seeds (refreshes per trial, and how long before the
/// deadline each started).
#[test]
fn early_refresh_starts_few_refreshes_before_the_deadline() {
    let mut counts = Vec::new();
    let mut leads_ms = Vec::new();
    for seed in 0..8u64 {
        let (cache, clock) = cache();
        let fresh = Freshness::new(TTL).early_refresh(1.0).random_seed(seed);
        let starts = Arc::new(Mutex::new(Vec::new()));
        let load = {
            let (starts, clock) = (Arc::clone(&starts), clock.clone());
            move || {
                starts.lock().unwrap().push(clock.now());
                std::thread::sleep(Duration::from_millis(100));
                7u32
            }
        };
        let _: u32 = cache.get_or_refresh("k", &fresh, load.clone()).unwrap();
        let deadline = clock.now() + TTL;
        clock.advance(TTL - Duration::from_secs(1));
        for _ in 0..1_000 {
            let v: u32 = cache.get_or_refresh("k", &fresh, load.clone()).unwrap();
            assert_eq!(v, 7);
            clock.advance(Duration::from_millis(1));
            std::thread::sleep(Duration::from_millis(1));
        }
        let runs = starts.lock().unwrap().len();
        wait_for("the refreshes", || {
            let s = cache.stats();
            (s.refreshes + s.refresh_failures) as usize == runs - 1
        });
        let early: Vec<u128> = starts.lock().unwrap()[1..]
            .iter()
            .filter(|t| **t < deadline)
            .map(|t| deadline.saturating_duration_since(*t).as_millis())
            .collect();
        assert!(
            !early.is_empty(),
            "seed {seed}: no refresh before the deadline"
        );
        assert!(
            early.len() <= 3,
            "seed {seed}: {} refreshes: {early:?}",
            early.len()
        );
        counts.push(early.len());
        leads_ms.extend(early);
    }
    leads_ms.sort_unstable();
    eprintln!(
        "early refresh, beta 1, 100 ms loader, 8 seeds: refreshes in the last second per seed \
         {counts:?}; each started this many ms before the deadline (sorted): {leads_ms:?}"
    );
}

/// The JSON file keeps the Python original's shape: the freshness fields and a lease live in an
/// extra `braincache` member of the entry, which the original (reading `entry['value']` and
/// `entry['expire_at']`) ignores; a stale entry stays in the file for its window.
#[test]
fn the_json_file_keeps_the_python_shape_with_freshness_fields_and_leases() {
    use braincache::backend::Backend;
    use braincache::backend::FileBackend;
    use braincache::base::{Lease, LeaseToken};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    let clock = ManualClock::starting_now();
    let cache = BrainCache::builder(FileBackend::open(&path).unwrap())
        .clock(clock.clone())
        .build();
    let fresh = Freshness::new(TTL).stale_while_revalidate(WINDOW);
    let v: Vec<u32> = cache.get_or_refresh("page", &fresh, || vec![1, 2]).unwrap();
    assert_eq!(v, [1, 2]);
    // A lease on a key with no value: a placeholder that `get` does not see.
    let now = clock.now();
    let b = cache.backend();
    let lease = TTL * 3;
    assert_eq!(
        b.try_lease("other", LeaseToken(7), lease, now).unwrap(),
        Lease::Acquired
    );
    assert_eq!(
        b.try_lease("other", LeaseToken(8), lease, now).unwrap(),
        Lease::Held {
            until: Some(now + lease)
        }
    );
    assert_eq!(b.get("other").unwrap(), None);
    // Stale: the purge keeps it (and the placeholder, whose lease lasts), reopening the file keeps its fields, plain get misses.
    clock.advance(TTL + Duration::from_secs(1));
    assert_eq!(cache.purge_expired().unwrap(), 0);
    let again = BrainCache::builder(FileBackend::open(&path).unwrap())
        .clock(clock.clone())
        .build();
    assert_eq!(
        again.get::<Vec<u32>>("page").unwrap(),
        None,
        "stale is not fresh"
    );
    let r = again.backend().get("page").unwrap().unwrap();
    assert_eq!(r.fresh_until, Some(now + TTL));
    assert!(r.compute_time.is_some() && r.computed_at == Some(now));

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(r#""page": {"value": [1,2], "expire_at": "#),
        "{text}"
    );
    assert!(text.contains(r#""braincache": {"fresh_until": "#), "{text}");
    // Read as the original does.
    let read = r#"
import json, sys, time
data = json.load(open(sys.argv[1]))
entry = data["page"]
assert entry["value"] == [1, 2], entry
assert entry["expire_at"] > time.time(), entry
assert data["other"]["value"] is None, data["other"]
"#;
    match std::process::Command::new("python3")
        .arg("-c")
        .arg(read)
        .arg(&path)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => eprintln!("skipped: python3 is not installed"),
    }
    // Releasing the lease removes the placeholder.
    b.release_lease("other", LeaseToken(7)).unwrap();
    assert_eq!(b.len().unwrap(), 1);
}

static MACRO_CLOCK: std::sync::LazyLock<ManualClock> =
    std::sync::LazyLock::new(ManualClock::starting_now);
static MACRO_CACHE: std::sync::LazyLock<BrainCache<MemoryBackend>> =
    std::sync::LazyLock::new(|| {
        BrainCache::builder(MemoryBackend::new())
            .clock(MACRO_CLOCK.clone())
            .build()
    });
static MACRO_RUNS: AtomicUsize = AtomicUsize::new(0);

#[braincache::cache(ttl = 10, stale = 5, early_refresh = 1.0, lease = 10, cache = MACRO_CACHE)]
fn square(x: u64) -> (u64, usize) {
    (x * x, MACRO_RUNS.fetch_add(1, Ordering::SeqCst) + 1)
}

/// `#[cache(ttl, stale, early_refresh, lease)]` memoizes through `get_or_refresh`: a stale value
/// is returned at once and refreshed in the background.
#[test]
fn the_cache_attribute_serves_stale_values_and_refreshes_them() {
    assert_eq!(square(3), (9, 1));
    assert_eq!(square(3), (9, 1));
    MACRO_CLOCK.advance(TTL + Duration::from_secs(1));
    assert_eq!(square(3), (9, 1), "stale, served at once");
    wait_for("the refresh", || MACRO_CACHE.stats().refreshes == 1);
    assert_eq!(square(3), (9, 2), "refreshed in the background");
    MACRO_CLOCK.advance(TTL + WINDOW + Duration::from_secs(1));
    assert_eq!(square(3), (9, 3), "past the window: computed by the caller");
    assert_eq!(MACRO_CACHE.stats().stale_served, 1);
}

/// A store whose lease another process holds (until `held_until`, once `elsewhere` is set);
/// counts the attempts to take it.
struct LeasedElsewhere {
    inner: MemoryBackend,
    elsewhere: std::sync::atomic::AtomicBool,
    held_until: Mutex<Option<braincache::Timestamp>>,
    tries: AtomicUsize,
}

impl braincache::backend::Backend for LeasedElsewhere {
    type Codec = braincache::base::Postcard;
    fn get(&self, key: &str) -> braincache::Result<Option<braincache::backend::Record>> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, record: braincache::backend::Record) -> braincache::Result<()> {
        self.inner.set(key, record)
    }
    fn delete(&self, key: &str) -> braincache::Result<bool> {
        self.inner.delete(key)
    }
    fn clear(&self) -> braincache::Result<()> {
        self.inner.clear()
    }
    fn len(&self) -> braincache::Result<usize> {
        self.inner.len()
    }
    fn purge_expired(&self, now: braincache::Timestamp) -> braincache::Result<usize> {
        self.inner.purge_expired(now)
    }
    fn next_expiry(&self) -> braincache::Result<Option<braincache::Timestamp>> {
        self.inner.next_expiry()
    }
    fn try_lease(
        &self,
        _key: &str,
        _token: braincache::base::LeaseToken,
        _ttl: Duration,
        now: braincache::Timestamp,
    ) -> braincache::Result<braincache::base::Lease> {
        use braincache::base::Lease;
        self.tries.fetch_add(1, Ordering::SeqCst);
        let until = *self.held_until.lock().unwrap();
        Ok(match until {
            Some(until) if self.elsewhere.load(Ordering::SeqCst) && now < until => {
                Lease::Held { until: Some(until) }
            }
            _ => Lease::Acquired,
        })
    }
}

/// While another process holds the lease to refresh a stale value, the callers of this process
/// that find it stale do not each try the lease again (on redb each try is a write transaction
/// that queues behind the other process's commits; the stampede bench measured thousands of them
/// per second before this): one try per round until that lease ends, then one more.
#[test]
fn a_lease_held_elsewhere_is_tried_once_per_round_until_it_ends() {
    let clock = ManualClock::starting_now();
    let backend = LeasedElsewhere {
        inner: MemoryBackend::new(),
        elsewhere: false.into(),
        held_until: Mutex::new(None),
        tries: AtomicUsize::new(0),
    };
    let cache = BrainCache::builder(backend).clock(clock.clone()).build();
    let fresh = Freshness::new(TTL)
        .stale_while_revalidate(WINDOW)
        .lease(Duration::from_secs(3));
    let _: u32 = cache.get_or_refresh("k", &fresh, || 1).unwrap();
    let tries = || cache.backend().tries.load(Ordering::SeqCst);
    assert_eq!(tries(), 1, "the first load takes the lease");

    clock.advance(TTL + Duration::from_secs(1));
    *cache.backend().held_until.lock().unwrap() = Some(clock.now() + Duration::from_secs(2));
    cache.backend().elsewhere.store(true, Ordering::SeqCst);
    // 200 stale reads, a real millisecond apart: the first starts a refresh that finds the lease
    // held; none of the others tries again.
    for _ in 0..200 {
        let v: u32 = cache
            .get_or_refresh("k", &fresh, || unreachable!("another process refreshes"))
            .unwrap();
        assert_eq!(v, 1);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(tries(), 2, "one try for this round");
    let s = cache.stats();
    assert_eq!(
        (s.stale_served, s.refreshes, s.refresh_failures),
        (200, 0, 0)
    );

    // The other process's lease ended without a new value (it died): the next stale read tries
    // again, takes the lease and refreshes.
    clock.advance(Duration::from_secs(2));
    let v: u32 = cache.get_or_refresh("k", &fresh, || 2).unwrap();
    assert_eq!(v, 1);
    wait_for("the refresh", || cache.stats().refreshes == 1);
    assert_eq!(tries(), 3);
    assert_eq!(cache.get::<u32>("k").unwrap(), Some(2));
}
