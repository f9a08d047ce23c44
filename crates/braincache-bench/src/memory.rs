//! Memory backend against moka.

use crate::Config;
use crate::report::{Better, Row};
use crate::stats::{paired, throughput};
use braincache::BrainCache;
use braincache::backend::MemoryBackend;
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
    let qc: quick_cache::sync::Cache<String, Vec<u8>> = quick_cache::sync::Cache::new(KEYS * 2);
    for k in &keys {
        ours.set(k, &value, None).expect("memory set");
        moka.insert(k.clone(), value.clone());
        qc.insert(k.clone(), value.clone());
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
        let (ours_rate, qc_rate) =
            gets_against_quick_cache::<Vec<u8>>(cfg, &ours, &qc, &keys, &orders);
        rows.push(Row::new(
            format!("memory get-hit, {threads} thread(s), 100k keys, 64 B"),
            ours_rate,
            "quick_cache",
            qc_rate,
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
        let (ours_rate, qc_rate) = paired(
            cfg.reps,
            || {
                throughput(threads, total, |t| {
                    for &i in &orders[t] {
                        ours.set(&keys[i], &value, None).expect("memory set");
                    }
                })
            },
            || {
                throughput(threads, total, |t| {
                    for &i in &orders[t] {
                        qc.insert(keys[i].clone(), value.clone());
                    }
                })
            },
        );
        rows.push(
            Row::new(
                format!("memory set, {threads} thread(s), 100k keys, 64 B"),
                ours_rate,
                "quick_cache",
                qc_rate,
                "ops/s",
                (threads == 2).then_some(1.0),
                Better::Higher,
            )
            .note("no TTL on either side"),
        );
    }
}

/// Get-hit with a 64-character `String` value, against quick_cache holding the same `String`s.
///
/// The `Vec<u8>` rows above are the worst case of a serde codec (serde writes a `Vec<u8>` as 64
/// integers, decoded one visitor call each); a string decodes as one length and one copy. Both
/// rows carry the goal, so the table shows which value shapes meet it.
pub fn string_rows(cfg: &Config, rows: &mut Vec<Row>) {
    let keys = keys();
    let value = "v".repeat(64);
    let ops_per_thread = if cfg.quick { 300_000 } else { 2_000_000 };
    let ours = BrainCache::new(MemoryBackend::new());
    let qc: quick_cache::sync::Cache<String, String> = quick_cache::sync::Cache::new(KEYS * 2);
    for k in &keys {
        ours.set(k, &value, None).expect("memory set");
        qc.insert(k.clone(), value.clone());
    }
    let threads = 2;
    let orders: Vec<Vec<usize>> = (0..threads)
        .map(|t| order(ops_per_thread, 17 + t as u64))
        .collect();
    let (ours_rate, qc_rate) = gets_against_quick_cache::<String>(cfg, &ours, &qc, &keys, &orders);
    rows.push(Row::new(
        "memory get-hit, 2 thread(s), 100k keys, 64-char String",
        ours_rate,
        "quick_cache",
        qc_rate,
        "ops/s",
        Some(1.0),
        Better::Higher,
    ));
}

/// Get-hit rates of `ours` and of `qc` (values of type `V` in both), each thread reading the
/// keys in its own order, measured alternately.
fn gets_against_quick_cache<V>(
    cfg: &Config,
    ours: &BrainCache<MemoryBackend>,
    qc: &quick_cache::sync::Cache<String, V>,
    keys: &[String],
    orders: &[Vec<usize>],
) -> (f64, f64)
where
    V: serde::de::DeserializeOwned + Clone + Send + Sync,
{
    let threads = orders.len();
    let total = orders.iter().map(Vec::len).sum();
    paired(
        cfg.reps,
        || {
            throughput(threads, total, |t| {
                for &i in &orders[t] {
                    let v: Option<V> = ours.get(&keys[i]).expect("memory get");
                    std::hint::black_box(v);
                }
            })
        },
        || {
            throughput(threads, total, |t| {
                for &i in &orders[t] {
                    std::hint::black_box(qc.get(&keys[i]));
                }
            })
        },
    )
}
