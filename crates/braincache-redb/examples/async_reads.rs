//! Why the redb backend's async reads run inline: what a `get` costs on the polling thread,
//! while writers commit all the time (so read snapshots are renewed, the slow path), against
//! the round trip of handing the same `get` to tokio's blocking pool.
//!
//! ```sh
//! cargo run --release -p braincache-redb --features async --example async_reads
//! ```
//!
//! Prints p50 / p99 / p99.9 / max of: an inline `get` (100k keys × 64 B, 4 writer threads
//! committing meanwhile), and `spawn_blocking(get)` awaited from a current-thread runtime.

use braincache_core::{Backend, Record};
use braincache_redb::RedbBackend;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const KEYS: usize = 100_000;
const READS: usize = 100_000;

fn percentiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    format!(
        "p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        at(0.5),
        at(0.99),
        at(0.999),
        v[v.len() - 1]
    )
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let b = Arc::new(RedbBackend::open(dir.path().join("reads.redb")).expect("open"));
    let entries: Vec<(String, Record)> = (0..KEYS)
        .map(|i| (format!("key:{i:08}"), Record::new(vec![7; 64], None)))
        .collect();
    for chunk in entries.chunks(5_000) {
        b.set_many(chunk.to_vec()).expect("fill");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (b, stop) = (Arc::clone(&b), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    b.set(&format!("w{t}:{i}"), Record::new(vec![1; 64], None))
                        .expect("set");
                    i += 1;
                }
                i
            })
        })
        .collect();
    let mut x = 88172645463325252u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        format!("key:{:08}", x % KEYS as u64)
    };
    let inline: Vec<Duration> = (0..READS)
        .map(|_| {
            let k = next();
            let t = Instant::now();
            std::hint::black_box(b.get(&k).expect("get"));
            t.elapsed()
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let blocking: Vec<Duration> = rt.block_on(async {
        let mut v = Vec::with_capacity(READS / 10);
        for _ in 0..READS / 10 {
            let k = next();
            let b = Arc::clone(&b);
            let t = Instant::now();
            let r = tokio::task::spawn_blocking(move || b.get(&k))
                .await
                .expect("join");
            std::hint::black_box(r.expect("get"));
            v.push(t.elapsed());
        }
        v
    });
    stop.store(true, Ordering::Relaxed);
    let writes: u64 = writers.into_iter().map(|w| w.join().expect("writer")).sum();
    println!("inline get:          {}", percentiles(inline));
    println!("spawn_blocking(get): {}", percentiles(blocking));
    println!("({writes} sets in {} commits meanwhile)", b.commits());
}
