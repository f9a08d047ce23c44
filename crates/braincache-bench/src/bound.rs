//! The size bound of the redb backend: hit ratio against Python diskcache at the same byte
//! bound, the cost of the bound on gets and sets, and the eviction policies it was chosen from,
//! simulated on the same traces.

use crate::Config;
use crate::report::{Better, Row};
use crate::stats::{paired, throughput};
use braincache::backend::{Backend, Record, RedbBackend};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Zipf};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::Instant;

const VALUE_LEN: usize = 1024;

fn key(i: u64) -> String {
    format!("key:{i:08}")
}

/// A Zipf(0.99) trace over `keys` keys.
fn zipf_trace(keys: usize, requests: usize, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(keys as f64, 0.99).expect("valid zipf");
    let mut rng = StdRng::seed_from_u64(seed);
    (0..requests)
        .map(|_| zipf.sample(&mut rng) as u64 - 1)
        .collect()
}

/// What one entry of the trace counts for in the redb bound: key, record header, value.
fn entry_bytes() -> u64 {
    (key(0).len() + 1 + VALUE_LEN) as u64
}

pub fn run(cfg: &Config, rows: &mut Vec<Row>) {
    let dir = tempfile::tempdir_in(".").expect("temp dir in the current folder");
    policies(cfg, rows);
    let keys = if cfg.quick { 2_000 } else { 50_000 };
    let requests = if cfg.quick { 8_000 } else { 40_000 };
    let trace = zipf_trace(keys, requests, 7);
    for percent in [1, 10] {
        hit_ratio(rows, dir.path(), &trace, keys, percent);
    }
    get_cost(cfg, rows, dir.path());
    set_cost(cfg, rows, dir.path());
}

/// Replays `trace` on a redb cache bounded at `percent` % of the key space's bytes (get; set on
/// a miss), and the same trace on diskcache with `size_limit` at the same bytes and
/// `eviction_policy='least-recently-used'`.
fn hit_ratio(rows: &mut Vec<Row>, dir: &Path, trace: &[u64], keys: usize, percent: u64) {
    let bound = keys as u64 * entry_bytes() * percent / 100;
    let path = dir.join(format!("hit{percent}.redb"));
    let b = RedbBackend::builder(&path)
        .max_bytes(bound)
        .build()
        .expect("open redb backend");
    // Four threads replay interleaved quarters of the trace (so misses share commits); the
    // order is close to the trace's.
    let hits = std::sync::atomic::AtomicU64::new(0);
    let threads = 4;
    throughput(threads, trace.len(), |t| {
        for (i, k) in trace.iter().enumerate() {
            if i % threads != t {
                continue;
            }
            let k = key(*k);
            if b.get(&k).expect("get").is_some() {
                hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            } else {
                b.set(&k, Record::new(vec![7; VALUE_LEN], None))
                    .expect("set");
            }
        }
    });
    let ours = hits.into_inner() as f64 / trace.len() as f64;
    let used = b.bytes().unwrap_or(0);
    drop(b);
    let workload = format!(
        "bounded hit ratio, redb, {percent} % of {keys} keys x 1 KiB ({bound} bytes), \
         Zipf(0.99), {} requests",
        trace.len()
    );
    match diskcache(dir, trace, bound, percent) {
        Ok(peer) => rows.push(
            Row::new(
                workload,
                ours,
                "diskcache LRU, same size_limit",
                peer,
                "hit ratio",
                Some(1.0),
                Better::Higher,
            )
            .note(format!("redb stored {used} bytes at the end")),
        ),
        Err(why) => rows.push(
            Row::new(
                workload,
                ours,
                "diskcache",
                f64::NAN,
                "hit ratio",
                Some(1.0),
                Better::Higher,
            )
            .note(format!("skipped: {why}")),
        ),
    }
}

/// diskcache's hit ratio on the same trace, through `benches/peers/diskcache_bounded_peer.py`.
fn diskcache(dir: &Path, trace: &[u64], bound: u64, percent: u64) -> Result<f64, String> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/peers/diskcache_bounded_peer.py");
    let trace_file = dir.join(format!("trace{percent}.txt"));
    let text: String = trace.iter().map(|k| format!("{}\n", key(*k))).collect();
    std::fs::write(&trace_file, text).map_err(|e| e.to_string())?;
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(dir.join(format!("diskcache{percent}")))
        .arg(&trace_file)
        .arg(bound.to_string())
        .arg(VALUE_LEN.to_string())
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("peer output: {e}"))?;
    v["hit_ratio"]
        .as_f64()
        .ok_or_else(|| "peer output has no hit_ratio".to_owned())
}

/// ns per get on a bounded cache (read hints on) against an unbounded one, same data.
fn get_cost(cfg: &Config, rows: &mut Vec<Row>, dir: &Path) {
    let keys = if cfg.quick { 10_000 } else { 50_000 };
    let reads = if cfg.quick { 50_000 } else { 200_000 };
    let bounded = RedbBackend::builder(dir.join("get-bounded.redb"))
        .max_bytes(1 << 30)
        .build()
        .expect("open");
    let unbounded = RedbBackend::builder(dir.join("get-unbounded.redb"))
        .unbounded()
        .build()
        .expect("open");
    for b in [&bounded, &unbounded] {
        let records: Vec<(String, Record)> = (0..keys as u64)
            .map(|i| (key(i), Record::new(vec![7; 64], None)))
            .collect();
        for chunk in records.chunks(5_000) {
            b.set_many(chunk.to_vec()).expect("fill");
        }
    }
    let visit: Vec<String> = (0..reads)
        .map(|i| key(((i * 7919 + 13) % keys) as u64))
        .collect();
    let ns = |b: &RedbBackend| {
        let t = Instant::now();
        for k in &visit {
            std::hint::black_box(b.get(k).expect("get"));
        }
        t.elapsed().as_nanos() as f64 / visit.len() as f64
    };
    let (ours, peer) = paired(cfg.reps, || ns(&bounded), || ns(&unbounded));
    rows.push(Row::new(
        "redb get, bounded (read hints) vs unbounded, 1 thread",
        ours,
        "same, .unbounded()",
        peer,
        "ns/get",
        Some(1.1),
        Better::Lower,
    ));
}

/// µs per set, 4 threads, on a full bounded cache (every set evicts) against an unbounded one.
fn set_cost(cfg: &Config, rows: &mut Vec<Row>, dir: &Path) {
    let per_thread = if cfg.quick { 100 } else { 400 };
    let threads = 4;
    let bounded = RedbBackend::builder(dir.join("set-bounded.redb"))
        .max_entries(2_000)
        .build()
        .expect("open");
    let unbounded = RedbBackend::builder(dir.join("set-unbounded.redb"))
        .unbounded()
        .build()
        .expect("open");
    let fill: Vec<(String, Record)> = (0..2_000)
        .map(|i| (format!("fill{i}"), Record::new(vec![7; 256], None)))
        .collect();
    bounded.set_many(fill.clone()).expect("fill");
    unbounded.set_many(fill).expect("fill");
    let round = std::cell::Cell::new(0);
    let rate = |b: &RedbBackend, round: usize| {
        throughput(threads, threads * per_thread, |t| {
            for i in 0..per_thread {
                b.set(
                    &format!("r{round}-t{t}-{i}"),
                    Record::new(vec![7; 256], None),
                )
                .expect("set");
            }
        })
    };
    let (ours, peer) = paired(
        cfg.reps,
        || {
            round.set(round.get() + 1);
            1e6 / rate(&bounded, round.get())
        },
        || 1e6 / rate(&unbounded, 1_000_000 + round.get()),
    );
    rows.push(
        Row::new(
            "redb set while evicting (every set evicts) vs unbounded, 4 threads",
            ours,
            "same, .unbounded()",
            peer,
            "µs/set",
            Some(1.3),
            Better::Lower,
        )
        .note(format!("{} evictions", bounded.evictions())),
    );
}

// ---------------------------------------------------------------------------------------------
// The candidates, simulated by entry count on the same traces.

trait Policy {
    /// Looks `k` up; stores it on a miss. Returns whether it was a hit.
    fn access(&mut self, k: u64) -> bool;
}

struct Fifo {
    cap: usize,
    order: VecDeque<u64>,
    set: std::collections::HashSet<u64>,
}

impl Policy for Fifo {
    fn access(&mut self, k: u64) -> bool {
        if self.set.contains(&k) {
            return true;
        }
        if self.order.len() >= self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.order.push_back(k);
        self.set.insert(k);
        false
    }
}

/// LRU, as diskcache's 'least-recently-used' (every hit is a write there).
struct Lru {
    cap: usize,
    tick: u64,
    last: HashMap<u64, u64>,
    by_tick: std::collections::BTreeMap<u64, u64>,
}

impl Policy for Lru {
    fn access(&mut self, k: u64) -> bool {
        self.tick += 1;
        let hit = if let Some(t) = self.last.insert(k, self.tick) {
            self.by_tick.remove(&t);
            true
        } else {
            if self.last.len() > self.cap
                && let Some((_, old)) = self.by_tick.pop_first()
            {
                self.last.remove(&old);
            }
            false
        };
        self.by_tick.insert(self.tick, k);
        hit
    }
}

/// S3-FIFO as `braincache_redb` implements it: small queue of a tenth, main queue, ghosts (a
/// quarter of the entries, or as many as entries), frequency 0..=3 raised by hits.
struct S3Fifo {
    cap: usize,
    ghost_share: usize,
    small: VecDeque<u64>,
    main: VecDeque<u64>,
    ghost: VecDeque<u64>,
    freq: HashMap<u64, u8>,
    ghosts: std::collections::HashSet<u64>,
}

impl S3Fifo {
    fn new(cap: usize, ghost_share: usize) -> S3Fifo {
        S3Fifo {
            cap,
            ghost_share,
            small: VecDeque::new(),
            main: VecDeque::new(),
            ghost: VecDeque::new(),
            freq: HashMap::new(),
            ghosts: std::collections::HashSet::new(),
        }
    }

    fn evict(&mut self) {
        while self.small.len() + self.main.len() > self.cap {
            if !self.small.is_empty() && (self.small.len() > self.cap / 10 || self.main.is_empty())
            {
                let Some(k) = self.small.pop_front() else {
                    return;
                };
                if self.freq.get(&k).copied().unwrap_or(0) > 0 {
                    self.freq.insert(k, 0);
                    self.main.push_back(k);
                } else {
                    self.freq.remove(&k);
                    self.ghost.push_back(k);
                    self.ghosts.insert(k);
                    while self.ghost.len() > (self.cap / self.ghost_share).max(1) {
                        if let Some(g) = self.ghost.pop_front() {
                            self.ghosts.remove(&g);
                        }
                    }
                }
            } else {
                let Some(k) = self.main.pop_front() else {
                    return;
                };
                let f = self.freq.get(&k).copied().unwrap_or(0);
                if f > 0 {
                    self.freq.insert(k, f - 1);
                    self.main.push_back(k);
                } else {
                    self.freq.remove(&k);
                }
            }
        }
    }
}

impl Policy for S3Fifo {
    fn access(&mut self, k: u64) -> bool {
        if let Some(f) = self.freq.get_mut(&k) {
            *f = (*f + 1).min(3);
            return true;
        }
        self.freq.insert(k, 0);
        if self.ghosts.remove(&k) {
            self.main.push_back(k);
        } else {
            self.small.push_back(k);
        }
        self.evict();
        false
    }
}

fn replay(p: &mut dyn Policy, trace: &[u64]) -> f64 {
    let hits = trace.iter().filter(|k| p.access(**k)).count();
    hits as f64 / trace.len() as f64
}

/// One-time keys flood a cache while hot keys are read every round: the share of hot reads
/// that hit.
fn scan_trace(cap: usize) -> Vec<u64> {
    let hot = (cap / 10) as u64;
    let mut next = 1_000_000;
    let mut trace = Vec::new();
    for _ in 0..200 {
        trace.extend(0..hot);
        for _ in 0..cap / 10 {
            trace.push(next);
            next += 1;
        }
    }
    trace
}

fn policies(cfg: &Config, rows: &mut Vec<Row>) {
    let keys = 100_000;
    let trace = zipf_trace(keys, if cfg.quick { 300_000 } else { 1_000_000 }, 11);
    for percent in [1, 10] {
        let cap = keys * percent / 100;
        let s3 = replay(&mut S3Fifo::new(cap, 4), &trace);
        let s3_full_ghosts = replay(&mut S3Fifo::new(cap, 1), &trace);
        let lru = replay(
            &mut Lru {
                cap,
                tick: 0,
                last: HashMap::new(),
                by_tick: Default::default(),
            },
            &trace,
        );
        let fifo = replay(
            &mut Fifo {
                cap,
                order: VecDeque::new(),
                set: Default::default(),
            },
            &trace,
        );
        let name = format!("policy simulation, Zipf(0.99), {percent} % of {keys} keys");
        rows.push(
            Row::new(
                name.clone(),
                s3,
                "LRU",
                lru,
                "hit ratio",
                Some(1.0),
                Better::Higher,
            )
            .note(format!(
                "S3-FIFO as built (ghosts = entries/4); with ghosts = entries {s3_full_ghosts:.3}"
            )),
        );
        rows.push(Row::new(
            name,
            s3,
            "FIFO",
            fifo,
            "hit ratio",
            Some(1.0),
            Better::Higher,
        ));
    }
    let cap = 1_000;
    let trace = scan_trace(cap);
    let s3 = replay(&mut S3Fifo::new(cap, 4), &trace);
    let fifo = replay(
        &mut Fifo {
            cap,
            order: VecDeque::new(),
            set: Default::default(),
        },
        &trace,
    );
    rows.push(
        Row::new(
            "policy simulation, 100 hot keys read each round, 100 one-time keys written",
            s3,
            "FIFO",
            fifo,
            "hit ratio",
            Some(1.0),
            Better::Higher,
        )
        .note("1,000 entries; the one-time keys always miss"),
    );
}
