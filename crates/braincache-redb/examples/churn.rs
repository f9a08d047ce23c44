//! File size under churn: 1,000,000 sets of 1 KiB values, every key new, into a cache bounded at
//! 16 MiB (no TTL), from 8 threads. Prints the largest file size seen against the bound.
//!
//! `cargo run --release -p braincache-redb --example churn [-- SETS [BATCH]]`: with BATCH > 1
//! each thread writes with `set_many` of BATCH entries (faster, and larger commits).

use braincache_core::{Backend, Record};
use braincache_redb::RedbBackend;
use std::time::Instant;

const BOUND: u64 = 16 << 20;
const THREADS: usize = 8;

fn main() -> braincache_core::Result<()> {
    let sets: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let batch: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let dir = tempfile::tempdir().map_err(|e| {
        braincache_core::Error::io(braincache_core::Operation::Open, std::env::temp_dir(), e)
    })?;
    let path = dir.path().join("churn.redb");
    let b = RedbBackend::builder(&path).max_bytes(BOUND).build()?;
    let start = Instant::now();
    let per_thread = sets / THREADS;
    let largest = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (b, path, largest) = (&b, &path, &largest);
            s.spawn(move || -> braincache_core::Result<()> {
                let mut n = 0;
                while n < per_thread {
                    let items: Vec<(String, Record)> = (n..(n + batch).min(per_thread))
                        .map(|i| {
                            (
                                format!("t{t}-{i:08}"),
                                Record::new(vec![(i % 251) as u8; 1024], None),
                            )
                        })
                        .collect();
                    n += items.len();
                    if let [(k, r)] = items.as_slice() {
                        b.set(k, r.clone())?;
                    } else {
                        b.set_many(items)?;
                    }
                    if n % 10_000 < batch {
                        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                        largest.fetch_max(size, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                Ok(())
            });
        }
    });
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let largest = largest.into_inner().max(size);
    let u = b.usage()?;
    println!(
        "{sets} sets of 1 KiB in {:.1} s; bound {} MiB; stored {:.1} MiB in {} entries; \
         evictions {}; file now {:.1} MiB, largest seen {:.1} MiB = {:.2}x the bound",
        start.elapsed().as_secs_f64(),
        BOUND >> 20,
        u.bytes as f64 / 1048576.0,
        u.entries,
        u.evictions,
        size as f64 / 1048576.0,
        largest as f64 / 1048576.0,
        largest as f64 / BOUND as f64,
    );
    drop(b);
    if std::env::var_os("CHURN_STATS").is_some() {
        let db = redb::Database::builder()
            .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
            .open(&path)
            .expect("reopen");
        let txn = db.begin_write().expect("begin_write");
        println!("{:?}", txn.stats().expect("stats"));
    }
    Ok(())
}
