//! Counters of what a cache did.

use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A snapshot of a cache's counters since it was created, shared by all its clones.
///
/// `delete`, `clear` and `len` count nothing; an error returned by a `try_get_or_insert_with`
/// closure is the caller's, not the cache's, and is not in `errors`.
///
/// ```
/// use braincache::BrainCache;
///
/// let cache = BrainCache::default();
/// cache.set("k", &1u8, None).unwrap();
/// let _: Option<u8> = cache.get("k").unwrap();
/// let _: Option<u8> = cache.get("missing").unwrap();
/// let s = cache.stats();
/// assert_eq!((s.hits, s.misses, s.sets), (1, 1, 1));
/// assert_eq!(s.hit_ratio(), 0.5);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lookups that found a live entry: `get`, `has`, and `get_or_insert_with` (and the `try_`
    /// form, and `#[cache]` functions) served from the cache. Each call counts once.
    pub hits: u64,
    /// Lookups that found nothing, or only an expired entry: `get`, `has`, and
    /// `get_or_insert_with` calls that did not find the value stored (whether this call ran the
    /// closure or received a concurrent caller's value). Each call counts once.
    pub misses: u64,
    /// Successful `set` calls (including stores by `get_or_insert_with`).
    pub sets: u64,
    /// Entries the backend dropped to stay within a bound.
    pub evictions: u64,
    /// Expired entries removed by `purge_expired` (and so by the cleaner).
    pub expired: u64,
    /// Operations that returned an error (or, in `#[cache]` functions, were bypassed because of
    /// one).
    pub errors: u64,
    /// Stale values served by `get_or_refresh` while a refresh ran (stale-while-revalidate).
    pub stale_served: u64,
    /// Background refreshes that stored a new value (stale-while-revalidate and early refresh).
    pub refreshes: u64,
    /// Background refreshes whose loader failed or panicked (the old value stays).
    pub refresh_failures: u64,
    /// Misses that waited for another process's lease instead of computing.
    pub lease_waits: u64,
}

impl Stats {
    /// `hits / (hits + misses)`, or 0 when there were no lookups.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: Striped,
    pub(crate) misses: Striped,
    pub(crate) sets: Striped,
    pub(crate) expired: Striped,
    pub(crate) errors: Striped,
    pub(crate) stale_served: Striped,
    pub(crate) refreshes: Striped,
    pub(crate) refresh_failures: Striped,
    pub(crate) lease_waits: Striped,
}

/// Stripes per counter: a power of two, so a thread's stripe is its index masked.
const STRIPES: usize = 8;

/// A counter that threads bump on different cache lines: each thread adds to one of
/// [`STRIPES`] padded atomics (picked once per thread, round robin), and a read sums them.
///
/// One shared atomic was written by every `get` and `set` of every thread: two threads reading
/// the memory cache passed its cache line back and forth on each call (quick_cache, the peer
/// in the harness, keeps no shared counter on its hit path). A bump still is one relaxed
/// `fetch_add`, so no count is lost however many threads share a stripe.
#[derive(Debug, Default)]
pub(crate) struct Striped {
    stripes: [CachePadded<AtomicU64>; STRIPES],
}

impl Striped {
    pub(crate) fn bump(&self, n: u64) {
        self.stripes[stripe()].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn load(&self) -> u64 {
        self.stripes
            .iter()
            .fold(0u64, |sum, s| sum.wrapping_add(s.load(Ordering::Relaxed)))
    }
}

/// This thread's stripe, assigned on its first bump.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
            s.set(i);
        }
        i
    })
}

impl Counters {
    pub(crate) fn snapshot(&self, evictions: u64) -> Stats {
        Stats {
            hits: self.hits.load(),
            misses: self.misses.load(),
            sets: self.sets.load(),
            evictions,
            expired: self.expired.load(),
            errors: self.errors.load(),
            stale_served: self.stale_served.load(),
            refreshes: self.refreshes.load(),
            refresh_failures: self.refresh_failures.load(),
            lease_waits: self.lease_waits.load(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn striped_counts_lose_nothing_with_more_threads_than_stripes() {
        let c = Striped::default();
        let threads = STRIPES * 2 + 1;
        std::thread::scope(|s| {
            for t in 0..threads {
                let c = &c;
                s.spawn(move || {
                    for _ in 0..10_000 {
                        c.bump(1);
                    }
                    c.bump(t as u64);
                });
            }
        });
        let extra: u64 = (0..threads as u64).sum();
        assert_eq!(c.load(), threads as u64 * 10_000 + extra);
    }

    #[test]
    fn threads_spread_over_the_stripes() {
        let c = Striped::default();
        std::thread::scope(|s| {
            for _ in 0..STRIPES {
                s.spawn(|| c.bump(1));
            }
        });
        // Round robin: STRIPES new threads in a row take STRIPES different stripes (other
        // tests' threads may take turns in between, so only "more than one" is certain).
        let used = c
            .stripes
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) > 0)
            .count();
        assert!(used > 1, "all bumps went to one stripe");
        assert_eq!(c.load(), STRIPES as u64);
    }
}
