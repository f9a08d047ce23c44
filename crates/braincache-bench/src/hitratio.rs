//! Hit ratios of bounded memory caches on three traces, against moka, quick_cache and Bélády's
//! optimum (computed offline on the same trace: the ceiling no policy can pass).
//!
//! Every cache sees the same requests in the same order and inserts a key when it misses
//! ("insert on miss", what `get_or_insert_with` does). Keys are `u64` ids rendered to strings once.

use crate::Config;
use crate::report::{Better, Row};
use braincache::BrainCache;
use braincache::backend::MemoryBackend;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Zipf};
use std::collections::{BTreeSet, HashMap};

/// Distinct keys of the Zipf traces.
pub const UNIVERSE: usize = 100_000;

/// The three traces the issue names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trace {
    /// Zipf(0.99) over `UNIVERSE` keys.
    Zipf,
    /// The Zipf trace with a one-time scan of 2x the cache size every 50,000 requests.
    ZipfScan,
    /// A loop over 1.2x the capacity: LRU's worst case (LRU hits nothing).
    Loop,
}

impl Trace {
    /// Every trace, in table order.
    pub const ALL: [Trace; 3] = [Trace::Zipf, Trace::ZipfScan, Trace::Loop];

    /// The name used in rows and charts.
    pub fn name(self) -> &'static str {
        match self {
            Trace::Zipf => "Zipf(0.99)",
            Trace::ZipfScan => "Zipf(0.99) + scans of 2x the cache every 50k",
            Trace::Loop => "loop over 1.2x the capacity",
        }
    }

    /// `requests` key ids for a cache of `capacity` entries. Deterministic (fixed seed).
    pub fn generate(self, requests: usize, capacity: usize) -> Vec<u64> {
        let zipf = Zipf::new(UNIVERSE as f64, 0.99).expect("valid zipf");
        let mut rng = StdRng::seed_from_u64(42);
        match self {
            Trace::Zipf => (0..requests)
                .map(|_| zipf.sample(&mut rng) as u64)
                .collect(),
            Trace::ZipfScan => {
                // Scan keys live above the Zipf universe and are never requested again.
                let mut next_scan_key = UNIVERSE as u64 + 1;
                let mut out = Vec::with_capacity(requests);
                let mut since_scan = 0;
                while out.len() < requests {
                    if since_scan == 50_000 {
                        since_scan = 0;
                        for _ in 0..2 * capacity {
                            out.push(next_scan_key);
                            next_scan_key += 1;
                        }
                    }
                    out.push(zipf.sample(&mut rng) as u64);
                    since_scan += 1;
                }
                out.truncate(requests);
                out
            }
            Trace::Loop => {
                let span = (capacity as u64 * 12).div_ceil(10);
                (0..requests as u64).map(|i| i % span).collect()
            }
        }
    }
}

/// Hit ratios of one trace at one capacity.
#[derive(Debug, Clone, Copy)]
pub struct Ratios {
    /// braincache's `MemoryBackend` bounded by entries.
    pub braincache: f64,
    /// moka `sync::Cache` with the same capacity.
    pub moka: f64,
    /// quick_cache `sync::Cache` with the same capacity.
    pub quick_cache: f64,
    /// Bélády's optimum.
    pub optimum: f64,
}

/// Runs every policy on `trace` at `capacity` entries.
pub fn measure(trace: &[u64], capacity: usize) -> Ratios {
    let names: HashMap<u64, String> = trace.iter().map(|&k| (k, format!("k{k}"))).collect();
    let keys: Vec<&str> = trace.iter().map(|k| names[k].as_str()).collect();
    let n = trace.len() as f64;

    let ours = BrainCache::new(MemoryBackend::builder().max_entries(capacity).build());
    let mut hits = 0usize;
    for k in &keys {
        if ours.get::<u8>(k).expect("memory get").is_some() {
            hits += 1;
        } else {
            ours.set(k, &1u8, None).expect("memory set");
        }
    }
    let braincache = hits as f64 / n;

    let moka: moka::sync::Cache<String, u8> = moka::sync::Cache::new(capacity as u64);
    let mut hits = 0usize;
    for &k in &keys {
        if moka.get(k).is_some() {
            hits += 1;
        } else {
            moka.insert(k.to_owned(), 1);
        }
    }
    let moka = hits as f64 / n;

    let qc: quick_cache::sync::Cache<String, u8> = quick_cache::sync::Cache::new(capacity);
    let mut hits = 0usize;
    for &k in &keys {
        if qc.get(k).is_some() {
            hits += 1;
        } else {
            qc.insert(k.to_owned(), 1);
        }
    }
    let quick_cache = hits as f64 / n;

    Ratios {
        braincache,
        moka,
        quick_cache,
        optimum: belady(trace, capacity) as f64 / n,
    }
}

/// Hits of Bélády's optimal policy with bypass: on a miss, the cache keeps the `capacity` keys
/// whose next request comes soonest, and does not store a key requested later than all of them
/// (or never again). No policy, with or without admission control, can hit more often.
pub fn belady(trace: &[u64], capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    // next[i]: the index of the next request of trace[i]'s key, or usize::MAX.
    let mut next = vec![usize::MAX; trace.len()];
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for i in (0..trace.len()).rev() {
        if let Some(&j) = seen.get(&trace[i]) {
            next[i] = j;
        }
        seen.insert(trace[i], i);
    }
    // The cache: key -> its next request; ordered by next request to find the farthest.
    let mut cached: HashMap<u64, usize> = HashMap::with_capacity(capacity);
    let mut by_next: BTreeSet<(usize, u64)> = BTreeSet::new();
    let mut hits = 0;
    for (i, &k) in trace.iter().enumerate() {
        let nu = next[i];
        if let Some(old) = cached.get_mut(&k) {
            hits += 1;
            by_next.remove(&(*old, k));
            if nu == usize::MAX {
                cached.remove(&k);
            } else {
                *old = nu;
                by_next.insert((nu, k));
            }
            continue;
        }
        if nu == usize::MAX {
            continue; // never requested again: storing it cannot help
        }
        if cached.len() == capacity {
            let &(far, victim) = by_next.last().expect("a full cache has entries");
            if far <= nu {
                continue; // every cached key comes back before this one: bypass
            }
            by_next.remove(&(far, victim));
            cached.remove(&victim);
        }
        cached.insert(k, nu);
        by_next.insert((nu, k));
    }
    hits
}

/// The table rows: each trace at 1 % and 10 % of the key space; the goal is braincache ≥ the
/// better of moka and quick_cache, and the optimum is shown beside them.
pub fn run(cfg: &Config, rows: &mut Vec<Row>) {
    let requests = if cfg.quick { 300_000 } else { 1_000_000 };
    for trace in Trace::ALL {
        for percent in [1usize, 10] {
            let capacity = UNIVERSE * percent / 100;
            let ids = trace.generate(requests, capacity);
            let r = measure(&ids, capacity);
            let (peer, peer_ratio) = if r.moka >= r.quick_cache {
                ("moka", r.moka)
            } else {
                ("quick_cache", r.quick_cache)
            };
            rows.push(
                Row::new(
                    format!(
                        "bounded hit ratio, {percent} % of {UNIVERSE} keys, {}, {requests} requests",
                        trace.name()
                    ),
                    r.braincache,
                    peer,
                    peer_ratio,
                    "hit ratio",
                    Some(1.0),
                    Better::Higher,
                )
                .note(format!(
                    "moka {:.3}, quick_cache {:.3}, Bélády optimum {:.3}",
                    r.moka, r.quick_cache, r.optimum
                )),
            );
        }
    }
}

/// Hit-ratio curves for the charts: for each trace, (bound as % of the key space, ratios).
pub fn curves(cfg: &Config) -> Vec<(Trace, Vec<(f64, Ratios)>)> {
    let requests = if cfg.quick { 200_000 } else { 1_000_000 };
    let percents = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0];
    Trace::ALL
        .iter()
        .map(|&trace| {
            let points = percents
                .iter()
                .map(|&p| {
                    let capacity = ((UNIVERSE as f64) * p / 100.0) as usize;
                    let ids = trace.generate(requests, capacity);
                    (p, measure(&ids, capacity))
                })
                .collect();
            (trace, points)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn belady_matches_hand_worked_traces() {
        // Capacity 1: a b a b a — every other key comes back next, bypass keeps `a`.
        assert_eq!(belady(&[1, 2, 1, 2, 1], 1), 2);
        // Capacity 2 on a loop of 3: OPT keeps two of three and hits on them.
        assert_eq!(belady(&[1, 2, 3, 1, 2, 3], 2), 2);
        // Everything fits: every repeat hits.
        assert_eq!(belady(&[1, 2, 1, 2, 3, 3], 3), 3);
        assert_eq!(belady(&[1, 1, 1], 0), 0);
    }

    #[test]
    fn belady_is_a_ceiling_for_lru() {
        // A small LRU simulated by hand never beats the optimum.
        let trace: Vec<u64> = Trace::Zipf.generate(20_000, 100);
        let mut lru: Vec<u64> = Vec::new();
        let mut lru_hits = 0;
        for &k in &trace {
            if let Some(p) = lru.iter().position(|&x| x == k) {
                lru_hits += 1;
                lru.remove(p);
            } else if lru.len() == 100 {
                lru.remove(0);
            }
            lru.push(k);
        }
        assert!(belady(&trace, 100) >= lru_hits);
    }

    #[test]
    fn traces_have_the_asked_shape() {
        let l = Trace::Loop.generate(10_000, 1_000);
        assert_eq!(*l.iter().max().unwrap(), 1_199);
        let s = Trace::ZipfScan.generate(200_000, 1_000);
        let scan_keys = s.iter().filter(|&&k| k > UNIVERSE as u64).count();
        assert!(
            (3 * 2_000..=4 * 2_000).contains(&scan_keys),
            "scans present: {scan_keys}"
        );
    }
}
