//! Memory backend against moka.

use crate::Config;
use crate::report::{Better, Row};
use crate::stats::{paired, throughput};
use braincache::BrainCache;
use braincache::backend::MemoryBackend;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Zipf};
use std::time::Duration;

const KEYS: usize = 100_000;

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("key:{i:08}")).collect()
}

/// A fixed pseudo-random visiting order, so both sides read the same keys in the same order.
fn order(n: usize, seed: u64) -> Vec<usize> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            // xorshift64*: cheap, deterministic, good enough to defeat prefetching.
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % KEYS as u64) as usize
        })
        .collect()
}

pub fn run(cfg: &Config, rows: &mut Vec<Row>) {
    let keys = keys();
    let value = vec![7u8; 64];
    let ops_per_thread = if cfg.quick { 300_000 } else { 2_000_000 };

    let ours = BrainCache::new(MemoryBackend::new());
    let moka: moka::sync::Cache<String, Vec<u8>> = moka::sync::Cache::new(KEYS as u64 * 2);
    for k in &keys {
        ours.set(k, &value, None).expect("memory set");
        moka.insert(k.clone(), value.clone());
    }
    moka.run_pending_tasks();

    for threads in [1, 2] {
        let orders: Vec<Vec<usize>> = (0..threads)
            .map(|t| order(ops_per_thread, 7 + t as u64))
            .collect();
        let total = ops_per_thread * threads;
        let (ours_rate, moka_rate) = paired(
            cfg.reps,
            || {
                throughput(threads, total, |t| {
                    for &i in &orders[t] {
                        let v: Option<Vec<u8>> = ours.get(&keys[i]).expect("memory get");
                        std::hint::black_box(v);
                    }
                })
            },
            || {
                throughput(threads, total, |t| {
                    for &i in &orders[t] {
                        std::hint::black_box(moka.get(&keys[i]));
                    }
                })
            },
        );
        let goal = (threads == 2).then_some(1.0);
        rows.push(Row::new(
            format!("memory get-hit, {threads} thread(s), 100k keys, 64 B"),
            ours_rate,
            "moka",
            moka_rate,
            "ops/s",
            goal,
            Better::Higher,
        ));
    }

    for threads in [1, 2] {
        let per = ops_per_thread / 4;
        let orders: Vec<Vec<usize>> = (0..threads).map(|t| order(per, 99 + t as u64)).collect();
        let total = per * threads;
        let (ours_rate, moka_rate) = paired(
            cfg.reps,
            || {
                throughput(threads, total, |t| {
                    for &i in &orders[t] {
                        ours.set(&keys[i], &value, Duration::from_secs(3600))
                            .expect("memory set");
                    }
                })
            },
            || {
                throughput(threads, total, |t| {
                    for &i in &orders[t] {
                        moka.insert(keys[i].clone(), value.clone());
                    }
                })
            },
        );
        rows.push(Row::new(
            format!("memory set, {threads} thread(s), 100k keys, 64 B"),
            ours_rate,
            "moka",
            moka_rate,
            "ops/s",
            None,
            Better::Higher,
        ));
    }

    hit_ratio(cfg, rows);
}

/// Bounded cache of 1 % of the keys, Zipf(0.99) trace of 1M requests; insert on miss.
fn hit_ratio(cfg: &Config, rows: &mut Vec<Row>) {
    let requests = if cfg.quick { 300_000 } else { 1_000_000 };
    let universe = KEYS;
    let capacity = universe / 100;
    let zipf = Zipf::new(universe as f64, 0.99).expect("valid zipf");
    let mut rng = StdRng::seed_from_u64(42);
    let trace: Vec<String> = (0..requests)
        .map(|_| format!("z{}", zipf.sample(&mut rng) as u64))
        .collect();

    let ours = BrainCache::new(MemoryBackend::builder().max_entries(capacity).build());
    let mut ours_hits = 0usize;
    for k in &trace {
        if ours.get::<u8>(k).expect("get").is_some() {
            ours_hits += 1;
        } else {
            ours.set(k, &1u8, None).expect("set");
        }
    }
    let moka: moka::sync::Cache<String, u8> = moka::sync::Cache::new(capacity as u64);
    let mut moka_hits = 0usize;
    for k in &trace {
        if moka.get(k).is_some() {
            moka_hits += 1;
        } else {
            moka.insert(k.clone(), 1);
        }
    }
    let ours_ratio = ours_hits as f64 / requests as f64;
    let moka_ratio = moka_hits as f64 / requests as f64;
    rows.push(Row::new(
        format!("bounded hit ratio, 1 % of {universe} keys, Zipf(0.99), {requests} requests"),
        ours_ratio,
        "moka",
        moka_ratio,
        "hit ratio",
        Some(1.0),
        Better::Higher,
    ));
}
