//! The async front end (`braincache::future::BrainCache`): memory hits against moka's
//! `future::Cache`, redb sets from 64 tasks against the sync 8-thread figure, and the cost of
//! the async path on a memory hit against the sync path.

use crate::Config;
use crate::report::{Better, Row};
use crate::stats::paired;
use braincache::BrainCache;
use braincache::backend::{MemoryBackend, RedbBackend};
use std::sync::Arc;
use std::time::Instant;

const KEYS: usize = 100_000;
const VALUE: [u8; 64] = [7; 64];

fn keys() -> Arc<Vec<String>> {
    Arc::new((0..KEYS).map(|i| format!("key:{i:08}")).collect())
}

/// The same xorshift visiting order as the sync memory rows.
fn order(n: usize, seed: u64) -> Vec<usize> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % KEYS as u64) as usize
        })
        .collect()
}

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Operations per second of `tasks` tasks on `rt`, task `t` running `work(t)`, `ops` in all.
fn task_throughput<F, Fut>(rt: &tokio::runtime::Runtime, tasks: usize, ops: usize, work: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    rt.block_on(async {
        let handles: Vec<_> = (0..tasks).map(|t| tokio::spawn(work(t))).collect();
        for h in handles {
            h.await.expect("bench task");
        }
    });
    ops as f64 / start.elapsed().as_secs_f64()
}

pub fn run(cfg: &Config, rows: &mut Vec<Row>) {
    memory_hits(cfg, rows);
    redb_sets(cfg, rows);
}

fn memory_hits(cfg: &Config, rows: &mut Vec<Row>) {
    let keys = keys();
    let per_task = if cfg.quick { 300_000 } else { 2_000_000 };
    let rt = runtime(2);
    let ours = braincache::future::BrainCache::new(MemoryBackend::new());
    let moka: moka::future::Cache<String, Vec<u8>> = moka::future::Cache::new(KEYS as u64 * 2);
    rt.block_on(async {
        for k in keys.iter() {
            ours.set(k, &VALUE.to_vec(), None)
                .await
                .expect("memory set");
            moka.insert(k.clone(), VALUE.to_vec()).await;
        }
        moka.run_pending_tasks().await;
    });
    let orders: Arc<Vec<Vec<usize>>> = Arc::new((0..2).map(|t| order(per_task, 7 + t)).collect());
    let (ours_rate, moka_rate) = paired(
        cfg.reps,
        || {
            task_throughput(&rt, 2, 2 * per_task, |t| {
                let (ours, keys, orders) = (ours.clone(), Arc::clone(&keys), Arc::clone(&orders));
                async move {
                    for &i in &orders[t] {
                        let v: Option<Vec<u8>> = ours.get(&keys[i]).await.expect("memory get");
                        std::hint::black_box(v);
                    }
                }
            })
        },
        || {
            task_throughput(&rt, 2, 2 * per_task, |t| {
                let (moka, keys, orders) = (moka.clone(), Arc::clone(&keys), Arc::clone(&orders));
                async move {
                    for &i in &orders[t] {
                        std::hint::black_box(moka.get(&keys[i]).await);
                    }
                }
            })
        },
    );
    rows.push(Row::new(
        "async memory get-hit, 2 worker threads, 100k keys, 64 B",
        ours_rate,
        "moka future::Cache",
        moka_rate,
        "ops/s",
        Some(1.0),
        Better::Higher,
    ));

    // The async path's cost on a hit: one task awaiting gets against one thread calling the
    // sync API, over the same cache.
    let single = order(per_task, 11);
    let sync = ours.to_sync();
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let (async_rate, sync_rate) = paired(
        cfg.reps,
        || {
            let t = Instant::now();
            current.block_on(async {
                for &i in &single {
                    let v: Option<Vec<u8>> = ours.get(&keys[i]).await.expect("memory get");
                    std::hint::black_box(v);
                }
            });
            single.len() as f64 / t.elapsed().as_secs_f64()
        },
        || {
            let t = Instant::now();
            for &i in &single {
                let v: Option<Vec<u8>> = sync.get(&keys[i]).expect("memory get");
                std::hint::black_box(v);
            }
            single.len() as f64 / t.elapsed().as_secs_f64()
        },
    );
    rows.push(Row::new(
        "async memory get-hit, 1 task (overhead of the async path)",
        async_rate,
        "the sync get, 1 thread",
        sync_rate,
        "ops/s",
        None,
        Better::Higher,
    ));
}

fn redb_sets(cfg: &Config, rows: &mut Vec<Row>) {
    // 2,048 sets per figure (512 quick): 64 tasks × 32 against 8 threads × 256.
    let per_task = if cfg.quick { 8 } else { 32 };
    let per_thread = per_task * 8;
    let total = 64 * per_task;
    let dir = tempfile::tempdir_in(".").expect("temp dir in the current folder");
    let rt = runtime(2);
    let backend = RedbBackend::open(dir.path().join("async.redb")).expect("open redb backend");
    let sync: BrainCache<RedbBackend> = BrainCache::new(backend);
    let ours = sync.to_async();
    let mut round = 0usize;
    let mut sync_round = 0usize;
    let (async_rate, sync_rate) = paired(
        cfg.reps,
        || {
            round += 1;
            let r = round;
            task_throughput(&rt, 64, total, |t| {
                let ours = ours.clone();
                async move {
                    for i in 0..per_task {
                        ours.set(&format!("a{r}:{t}:{i}"), &VALUE.to_vec(), None)
                            .await
                            .expect("set");
                    }
                }
            })
        },
        || {
            sync_round += 1;
            let r = sync_round;
            crate::stats::throughput(8, total, |t| {
                for i in 0..per_thread {
                    sync.set(&format!("s{r}:{t}:{i}"), &VALUE.to_vec(), None)
                        .expect("set");
                }
            })
        },
    );
    rows.push(Row::new(
        "async redb set, durable, 64 tasks on 2 workers, no TTL",
        async_rate,
        "sync, 8 threads",
        sync_rate,
        "sets/s",
        Some(0.9),
        Better::Higher,
    ));
}
