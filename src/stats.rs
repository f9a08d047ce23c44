//! Counters of what a cache did.

use std::sync::atomic::{AtomicU64, Ordering};

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
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) sets: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) refresh_failures: AtomicU64,
    pub(crate) lease_waits: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, evictions: u64) -> Stats {
        Stats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            sets: self.sets.load(Ordering::Relaxed),
            evictions,
            expired: self.expired.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            stale_served: self.stale_served.load(Ordering::Relaxed),
            refreshes: self.refreshes.load(Ordering::Relaxed),
            refresh_failures: self.refresh_failures.load(Ordering::Relaxed),
            lease_waits: self.lease_waits.load(Ordering::Relaxed),
        }
    }
}
