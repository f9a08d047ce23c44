//! Timing helpers: repeat a measurement, keep the median.

use std::time::{Duration, Instant};

/// Runs `f` `reps` times and returns the median of what it reports.
pub fn median_of(reps: usize, mut f: impl FnMut() -> f64) -> f64 {
    let mut v: Vec<f64> = (0..reps.max(1)).map(|_| f()).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `ours` and `peer` alternately `reps` times and returns both medians, so a change of
/// load on a shared machine hits both sides alike.
pub fn paired(
    reps: usize,
    mut ours: impl FnMut() -> f64,
    mut peer: impl FnMut() -> f64,
) -> (f64, f64) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..reps.max(1) {
        a.push(ours());
        b.push(peer());
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(a), median(b))
}

/// Operations per second of `ops` operations done by `threads` threads, each running
/// `work(thread_index)` (which performs `ops / threads` operations).
pub fn throughput(threads: usize, ops: usize, work: impl Fn(usize) + Sync) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let work = &work;
            s.spawn(move || work(t));
        }
    });
    ops as f64 / start.elapsed().as_secs_f64()
}

/// Latency percentiles (p50, p99) of `n` calls to `op`, in microseconds.
pub fn latencies(n: usize, mut op: impl FnMut(usize)) -> (f64, f64) {
    let mut v: Vec<Duration> = (0..n)
        .map(|i| {
            let t = Instant::now();
            op(i);
            t.elapsed()
        })
        .collect();
    v.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    (
        us(v[v.len() / 2]),
        us(v[(v.len() * 99 / 100).min(v.len() - 1)]),
    )
}
