//! Criterion benches: the same operations on every backend in the workspace, grouped per
//! operation and value size so the report shows the backends side by side.
//!
//! `cargo bench --bench backends` (add `--features redis` and set `BRAINCACHE_BENCH_REDIS_URL`
//! to include a running Redis server).

use braincache::BrainCache;
use braincache::backend::{Backend, MemoryBackend};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

const KEYS: usize = 10_000;
const SIZES: [usize; 2] = [64, 4096];

/// A named cache under test, plus whatever must outlive it (a temp folder).
struct Subject {
    run: BenchFn,
}

/// Runs every operation's bench for one backend at one value size.
type BenchFn = Box<dyn Fn(&mut Criterion, usize)>;

fn subject<B: Backend>(
    name: &'static str,
    make: impl Fn() -> (BrainCache<B>, Box<dyn std::any::Any>) + 'static,
) -> Subject {
    Subject {
        run: Box::new(move |c, size| bench_backend(c, name, size, &make)),
    }
}

fn bench_backend<B: Backend>(
    c: &mut Criterion,
    name: &str,
    size: usize,
    make: &dyn Fn() -> (BrainCache<B>, Box<dyn std::any::Any>),
) {
    let (cache, _guard) = make();
    let value = vec![0xA5u8; size];
    let keys: Vec<String> = (0..KEYS).map(|i| format!("bench:{i:06}")).collect();
    for k in &keys {
        cache.set(k, &value, None).expect("populate");
    }
    let id = |op: &str| (format!("{op}/{size}B"), BenchmarkId::from_parameter(name));
    let mut i = 0usize;
    let mut next = || {
        i = (i + 7919) % KEYS;
        i
    };

    let (group, bid) = id("get-hit");
    c.benchmark_group(group).bench_function(bid, |b| {
        b.iter(|| black_box(cache.get::<Vec<u8>>(&keys[next()]).expect("get")))
    });
    let (group, bid) = id("get-miss");
    c.benchmark_group(group).bench_function(bid, |b| {
        b.iter(|| black_box(cache.get::<Vec<u8>>("bench:missing").expect("get")))
    });
    let (group, bid) = id("set");
    c.benchmark_group(group).bench_function(bid, |b| {
        b.iter(|| cache.set(&keys[next()], &value, None).expect("set"))
    });
    let (group, bid) = id("set-ttl");
    c.benchmark_group(group).bench_function(bid, |b| {
        b.iter(|| {
            cache
                .set(&keys[next()], &value, Duration::from_secs(3600))
                .expect("set")
        })
    });
    let (group, bid) = id("delete");
    c.benchmark_group(group).bench_function(bid, |b| {
        b.iter(|| black_box(cache.delete(&keys[next()]).expect("delete")))
    });
    let (group, bid) = id("get_or_insert_with");
    c.benchmark_group(group).bench_function(bid, |b| {
        b.iter(|| {
            let v: Vec<u8> = cache
                .get_or_insert_with(&keys[next()], None, || value.clone())
                .expect("get_or_insert_with");
            black_box(v)
        })
    });
}

fn subjects() -> Vec<Subject> {
    #[allow(unused_mut)] // only pushed to when a durable backend's feature is on
    let mut v = vec![subject("memory", || {
        (BrainCache::new(MemoryBackend::new()), Box::new(()))
    })];
    #[cfg(feature = "file")]
    v.push(subject("file-batched", || {
        let dir = tempfile::tempdir().expect("temp dir");
        let backend = braincache::backend::FileBackend::builder(dir.path().join("bench.json"))
            .flush_every(Duration::from_millis(100))
            .build()
            .expect("open file backend");
        (BrainCache::new(backend), Box::new(dir))
    }));
    #[cfg(feature = "redb")]
    v.push(subject("redb", || {
        let dir = tempfile::tempdir().expect("temp dir");
        let backend = braincache::backend::RedbBackend::open(dir.path().join("bench.redb"))
            .expect("open redb backend");
        (BrainCache::new(backend), Box::new(dir))
    }));
    #[cfg(feature = "redis")]
    if let Ok(url) = std::env::var("BRAINCACHE_BENCH_REDIS_URL") {
        v.push(subject("redis", move || {
            let backend = braincache::backend::RedisBackend::connect(&url).expect("connect");
            (BrainCache::new(backend), Box::new(()))
        }));
    }
    v
}

fn benches(c: &mut Criterion) {
    for size in SIZES {
        for s in subjects() {
            (s.run)(c, size);
        }
    }
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(group);
