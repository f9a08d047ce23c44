//! The durable floor: what one `write 4 KiB + fsync` costs on this disk, and purge scaling.

use crate::Config;
use crate::report::{Better, Row};
use crate::stats::{latencies, median_of};
use braincache::BrainCache;
use braincache::backend::MemoryBackend;
use braincache::base::ManualClock;
use std::io::Write;
use std::time::{Duration, Instant};

/// Median latency of `write 4 KiB + fsync`, in microseconds, in the folder the benches use.
pub fn fsync_us(cfg: &Config) -> f64 {
    let dir = tempfile::tempdir_in(".").expect("temp dir in the current folder");
    let mut f = std::fs::File::create(dir.path().join("floor")).expect("create");
    let block = [0u8; 4096];
    let n = if cfg.quick { 100 } else { 500 };
    let (p50, _) = latencies(n, |_| {
        f.write_all(&block).expect("write");
        f.sync_data().expect("fsync");
    });
    p50
}

pub fn run(_cfg: &Config, rows: &mut Vec<Row>, us: f64) {
    rows.push(
        Row::new(
            "write 4 KiB + fsync (the durable floor)",
            us,
            "-",
            f64::NAN,
            "µs p50",
            None,
            Better::Lower,
        )
        .note("same disk as the durable benches"),
    );
}

/// `purge_expired` of 10k expired entries among `live` live ones, in milliseconds.
fn memory_purge_ms(live: usize, reps: usize) -> f64 {
    median_of(reps, || {
        let clock = ManualClock::starting_now();
        let cache = BrainCache::builder(MemoryBackend::new())
            .clock(clock.clone())
            .build();
        for i in 0..live {
            cache
                .set(&format!("live{i}"), &1u8, Duration::from_secs(3600))
                .expect("set");
        }
        for i in 0..10_000 {
            cache
                .set(&format!("dead{i}"), &1u8, Duration::from_secs(1))
                .expect("set");
        }
        clock.advance(Duration::from_secs(2));
        let t = Instant::now();
        let n = cache.purge_expired().expect("purge");
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(n, 10_000);
        ms
    })
}

pub fn purge(cfg: &Config, rows: &mut Vec<Row>) {
    let big = if cfg.quick { 200_000 } else { 1_000_000 };
    let small_ms = memory_purge_ms(10_000, cfg.reps);
    let big_ms = memory_purge_ms(big, cfg.reps);
    rows.push(
        Row::new(
            format!("memory purge of 10k expired: among {big} live vs 10k live"),
            big_ms,
            "same, 10k live",
            small_ms,
            "ms",
            None,
            Better::Lower,
        )
        .note("information: how the purge scales with the cache size"),
    );
    let (ours_ms, moka_ms) =
        crate::stats::paired(cfg.reps, || memory_purge_ms(big, 1), || moka_purge_ms(big));
    rows.push(
        Row::new(
            format!("memory: drop 10k expired entries among {big}"),
            ours_ms,
            "moka run_pending_tasks",
            moka_ms,
            "ms",
            Some(1.0),
            Better::Lower,
        )
        .note("braincache purge_expired; moka with a per-entry expiry, after the entries expired"),
    );
}

/// moka's time to drop 10k expired entries among `live` live ones: entries with a 1 s or 1 h
/// expiry (moka's `Expiry`, per entry, as braincache's TTL is), then `run_pending_tasks` once
/// the short ones expired. moka's clock cannot be mocked from outside, so this waits 1.1 s.
fn moka_purge_ms(live: usize) -> f64 {
    struct PerEntry;
    impl moka::Expiry<String, (u8, Duration)> for PerEntry {
        fn expire_after_create(
            &self,
            _key: &String,
            value: &(u8, Duration),
            _created_at: Instant,
        ) -> Option<Duration> {
            Some(value.1)
        }
    }
    let cache: moka::sync::Cache<String, (u8, Duration)> =
        moka::sync::Cache::builder().expire_after(PerEntry).build();
    for i in 0..live {
        cache.insert(format!("live{i}"), (1, Duration::from_secs(3600)));
    }
    for i in 0..10_000 {
        cache.insert(format!("dead{i}"), (1, Duration::from_secs(1)));
    }
    cache.run_pending_tasks();
    std::thread::sleep(Duration::from_millis(1_100));
    let t = Instant::now();
    cache.run_pending_tasks();
    let ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(
        cache.entry_count(),
        live as u64,
        "moka dropped the expired entries"
    );
    ms
}
