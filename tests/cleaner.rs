//! The background cleaner: it purges without any `get`, wakes for earlier deadlines, survives
//! failing purges, and stops promptly (the Python original's `stop()` did not wait, and its
//! cleaner read every key).

mod support;

use braincache::Timestamp;
use braincache::backend::{Backend, MemoryBackend, Record};
use braincache::base::{ManualClock, Postcard};
use braincache::{BrainCache, CacheCleaner, Result};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Waits up to `limit` for `cond`, polling; returns whether it became true.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    for _ in 0..100_000 {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// Counts `get`s, so a test can show the cleaner reads no entry.
#[derive(Default)]
struct Counting {
    inner: MemoryBackend,
    gets: AtomicUsize,
    purges: AtomicUsize,
    /// Purges numbered below this one panic; those from it up to `fail_until` fail.
    panic_until: usize,
    fail_until: usize,
    /// `next_expiry` answers, then takes this long to return (a file backend reloading a large
    /// file, say), so sets can land between its answer and the cleaner's plan.
    slow_next_expiry: Duration,
    /// Runs inside every `next_expiry`, i.e. while the cleaner plans.
    on_next_expiry: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Backend for Counting {
    type Codec = Postcard;
    fn get(&self, key: &str) -> Result<Option<Record>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }
    fn set(&self, key: &str, record: Record) -> Result<()> {
        self.inner.set(key, record)
    }
    fn delete(&self, key: &str) -> Result<bool> {
        self.inner.delete(key)
    }
    fn clear(&self) -> Result<()> {
        self.inner.clear()
    }
    fn len(&self) -> Result<usize> {
        self.inner.len()
    }
    fn purge_expired(&self, now: Timestamp) -> Result<usize> {
        let n = self.purges.fetch_add(1, Ordering::SeqCst);
        assert!(n >= self.panic_until, "injected purge panic");
        if n < self.fail_until {
            return Err(braincache::Error::backend(
                braincache::Operation::Purge,
                "test",
                None,
                std::io::Error::other("injected purge failure"),
            ));
        }
        self.inner.purge_expired(now)
    }
    fn next_expiry(&self) -> Result<Option<Timestamp>> {
        let answer = self.inner.next_expiry();
        std::thread::sleep(self.slow_next_expiry);
        if let Some(hook) = self.on_next_expiry.get() {
            hook();
        }
        answer
    }
}

#[test]
fn cleaner_removes_expired_entries_without_reading_any() {
    let (cache, clock) = support::with_manual_clock(Counting::default());
    for i in 0..100 {
        cache
            .set(&format!("k{i}"), &i, Duration::from_secs(30))
            .unwrap();
    }
    cache.set("forever", &1, None).unwrap();
    let cleaner = CacheCleaner::start(&cache, Duration::from_millis(20));
    clock.advance(Duration::from_secs(31));
    assert!(
        eventually(Duration::from_secs(10), || cache.len().unwrap() == 1),
        "cleaner did not purge: {} left",
        cache.len().unwrap()
    );
    cleaner.stop();
    assert_eq!(
        cache.backend().gets.load(Ordering::SeqCst),
        0,
        "the cleaner read entries"
    );
    assert_eq!(cache.stats().expired, 100);
}

#[test]
fn stop_returns_promptly_with_a_one_hour_interval() {
    let cache = BrainCache::default();
    let cleaner = CacheCleaner::start(&cache, Duration::from_secs(3600));
    std::thread::sleep(Duration::from_millis(50)); // let it go to sleep
    assert!(cleaner.is_running());
    let t = Instant::now();
    cleaner.stop();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "stop took {:?}",
        t.elapsed()
    );
}

#[test]
fn drop_stops_the_thread_too() {
    let cache = BrainCache::default();
    let t = Instant::now();
    {
        let _cleaner = CacheCleaner::start(&cache, Duration::from_secs(3600));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn an_earlier_deadline_wakes_a_sleeping_cleaner() {
    // Real clock: the cleaner sleeps for an hour unless a set brings a deadline.
    let cache = BrainCache::default();
    let cleaner = CacheCleaner::start(&cache, Duration::from_secs(3600));
    std::thread::sleep(Duration::from_millis(50));
    cache.set("soon", &1u8, Duration::from_millis(30)).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || cache.len().unwrap() == 0),
        "the set did not wake the cleaner"
    );
    cleaner.stop();
}

#[test]
fn the_cleaner_sleeps_until_the_next_deadline_not_the_interval() {
    let cache = BrainCache::default();
    cache.set("soon", &1u8, Duration::from_millis(100)).unwrap();
    let cleaner = CacheCleaner::start(&cache, Duration::from_secs(3600));
    assert!(eventually(Duration::from_secs(10), || cache.len().unwrap() == 0));
    cleaner.stop();
}

#[test]
fn failing_and_panicking_purges_are_counted_and_the_cleaner_keeps_running() {
    let clock = ManualClock::starting_now();
    let backend = Counting {
        panic_until: 2,
        fail_until: 4,
        ..Counting::default()
    };
    let cache = BrainCache::builder(backend).clock(clock.clone()).build();
    cache.set("k", &1u8, Duration::from_secs(1)).unwrap();
    clock.advance(Duration::from_secs(2));
    let cleaner = CacheCleaner::start(&cache, Duration::from_millis(5));
    assert!(
        eventually(Duration::from_secs(10), || cache.len().unwrap() == 0),
        "the cleaner stopped after a failing purge"
    );
    assert!(cleaner.is_running());
    cleaner.stop();
    assert!(cache.backend().purges.load(Ordering::SeqCst) >= 5);
    assert!(cache.stats().errors >= 4, "{:?}", cache.stats());
}

/// Regression (review finding): a stream of sets whose deadlines are earlier than the cleaner's
/// plan re-woke it, and it re-planned on every wake-up without purging, for as long as the stream
/// lasted. Here every plan is interrupted by such a set (made from inside `next_expiry`), which
/// is the worst case of that stream, deterministically.
#[test]
fn wake_ups_cannot_postpone_a_due_purge() {
    let (cache, clock) = support::with_manual_clock(Counting::default());
    let (writer, writer_clock) = (cache.clone(), clock.clone());
    let n = AtomicUsize::new(0);
    let hook: Box<dyn Fn() + Send + Sync> = Box::new(move || {
        // Each deadline is a little earlier than the last, so each one wakes the cleaner.
        let i = n.fetch_add(1, Ordering::SeqCst);
        writer_clock.set(Timestamp::from_unix_nanos(
            writer_clock.now_nanos().saturating_sub(1_000),
        ));
        writer.set(&format!("k{i}"), &1u8, Duration::ZERO).unwrap();
    });
    assert!(cache.backend().on_next_expiry.set(hook).is_ok());
    cache.set("due", &1u8, Duration::ZERO).unwrap();
    let cleaner = CacheCleaner::start(&cache, Duration::from_millis(20));
    // Purges are due every few milliseconds here; ask for several, not one lucky first.
    let purged = eventually(Duration::from_secs(5), || {
        cache.backend().purges.load(Ordering::SeqCst) >= 5
    });
    cleaner.stop();
    assert!(
        purged,
        "wake-ups kept the cleaner from purging: {} purges",
        cache.backend().purges.load(Ordering::SeqCst)
    );
}

trait NowNanos {
    fn now_nanos(&self) -> u64;
}

impl NowNanos for ManualClock {
    fn now_nanos(&self) -> u64 {
        braincache::base::Clock::now(self).as_unix_nanos()
    }
}

/// Regression (review finding): a deadline added while the cleaner was between reading
/// `next_expiry` and publishing its plan sent no wake-up, and waited a whole interval.
#[test]
fn a_deadline_added_while_the_cleaner_plans_still_wakes_it() {
    let backend = Counting {
        slow_next_expiry: Duration::from_millis(100),
        ..Counting::default()
    };
    let cache = BrainCache::new(backend);
    let cleaner = CacheCleaner::start(&cache, Duration::from_secs(3600));
    std::thread::sleep(Duration::from_millis(20)); // inside its first `next_expiry`
    cache.set("soon", &1u8, Duration::from_millis(50)).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || cache.len().unwrap() == 0),
        "the deadline set during planning was not purged"
    );
    cleaner.stop();
}

#[test]
fn with_two_cleaners_the_remaining_one_still_wakes_for_deadlines() {
    let cache = BrainCache::default();
    let first = CacheCleaner::start(&cache, Duration::from_secs(3600));
    let second = CacheCleaner::start(&cache, Duration::from_secs(3600));
    std::thread::sleep(Duration::from_millis(50));
    first.stop();
    cache.set("soon", &1u8, Duration::from_millis(30)).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || cache.len().unwrap() == 0),
        "the second cleaner was not woken"
    );
    second.stop();
}
