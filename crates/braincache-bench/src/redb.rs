//! redb backend against raw redb, the `cached` crate's `RedbCache`, and Python `diskcache`.

use crate::Config;
use crate::report::{Better, Row};
use crate::stats::{median_of, paired, throughput};
use braincache::BrainCache;
use braincache::backend::RedbBackend;
use braincache::base::ManualClock;
use cached::ConcurrentCached;
use redb::{ConcurrencyMode, Database, Durability, ReadableDatabase, TableDefinition};
use std::path::Path;
use std::time::{Duration, Instant};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("data");
const VALUE: [u8; 64] = [7; 64];

fn key(i: usize) -> String {
    format!("key:{i:08}")
}

/// A visiting order that defeats prefetching but is the same for every contender.
fn order(n: usize, keys: usize) -> Vec<usize> {
    (0..n).map(|i| (i * 7919 + 13) % keys).collect()
}

fn raw_db(path: &Path, mode: ConcurrencyMode) -> Database {
    Database::builder()
        .set_concurrency_mode(mode)
        .create(path)
        .expect("create raw redb")
}

fn fill_raw(db: &Database, keys: usize) {
    let tx = db.begin_write().expect("begin_write");
    {
        let mut t = tx.open_table(TABLE).expect("open_table");
        for i in 0..keys {
            t.insert(key(i).as_str(), VALUE.as_slice()).expect("insert");
        }
    }
    tx.commit().expect("commit");
}

/// ns per `begin_read + open_table + get` (value copied out) on raw redb.
fn raw_get_ns(db: &Database, order: &[usize]) -> f64 {
    let keys: Vec<String> = order.iter().map(|&i| key(i)).collect();
    let t = Instant::now();
    for k in &keys {
        let tx = db.begin_read().expect("begin_read");
        let table = tx.open_table(TABLE).expect("open_table");
        let v = table
            .get(k.as_str())
            .expect("get")
            .map(|g| g.value().to_vec());
        std::hint::black_box(v);
    }
    t.elapsed().as_nanos() as f64 / keys.len() as f64
}

/// ns per `BrainCache::get` on the redb backend.
fn ours_get_ns(cache: &BrainCache<RedbBackend>, order: &[usize]) -> f64 {
    let keys: Vec<String> = order.iter().map(|&i| key(i)).collect();
    let t = Instant::now();
    for k in &keys {
        let v: Option<Vec<u8>> = cache.get(k).expect("get");
        std::hint::black_box(v);
    }
    t.elapsed().as_nanos() as f64 / keys.len() as f64
}

/// ns per `Backend::get` on the redb backend (the stored bytes, no codec).
fn backend_get_ns(backend: &RedbBackend, order: &[usize]) -> f64 {
    let keys: Vec<String> = order.iter().map(|&i| key(i)).collect();
    let t = Instant::now();
    for k in &keys {
        let r = braincache::backend::Backend::get(backend, k).expect("get");
        std::hint::black_box(r);
    }
    t.elapsed().as_nanos() as f64 / keys.len() as f64
}

/// sets per second, `threads` threads each writing `per_thread` keys of its own, with a TTL
/// (each set also writes the expiry index) or without.
fn ours_set_rate(
    cache: &BrainCache<RedbBackend>,
    threads: usize,
    per_thread: usize,
    round: usize,
    ttl: Option<Duration>,
) -> f64 {
    throughput(threads, threads * per_thread, |t| {
        for i in 0..per_thread {
            cache
                .set(&format!("w{round}:{t}:{i}"), &VALUE.to_vec(), ttl)
                .expect("set");
        }
    })
}

pub fn run(cfg: &Config, rows: &mut Vec<Row>) {
    let keys = if cfg.quick { 10_000 } else { 100_000 };
    let reads = if cfg.quick { 50_000 } else { 200_000 };
    let per_thread = if cfg.quick { 50 } else { 250 };
    let dir = tempfile::tempdir_in(".").expect("temp dir in the current folder");
    let visit = order(reads, keys);

    // Reads: ours (multi-process mode) against the raw ExclusiveWriter floor, same data.
    let floor_db = raw_db(
        &dir.path().join("floor.redb"),
        ConcurrencyMode::ExclusiveWriter,
    );
    fill_raw(&floor_db, keys);
    let cache = BrainCache::new(
        RedbBackend::open(dir.path().join("ours.redb")).expect("open redb backend"),
    );
    let entries = (0..keys)
        .map(|i| (key(i), VALUE.to_vec()))
        .collect::<Vec<_>>();
    for chunk in entries.chunks(5_000) {
        // set_many through the backend: one transaction per chunk.
        let records = chunk
            .iter()
            .map(|(k, v)| {
                use braincache::base::{Codec, MsgPack};
                let bytes = MsgPack.encode(v).expect("encode");
                let record =
                    braincache::backend::Record::new(bytes, None).with_codec(Some(MsgPack::ID));
                (k.clone(), record)
            })
            .collect();
        braincache::backend::Backend::set_many(cache.backend(), records).expect("fill");
    }
    let (ours_ns, floor_ns) = paired(
        cfg.reps,
        || ours_get_ns(&cache, &visit),
        || raw_get_ns(&floor_db, &visit),
    );
    rows.push(Row::new(
        format!("redb get, multi-process mode, {keys} keys x 64 B"),
        ours_ns,
        "raw redb ExclusiveWriter begin_read+get",
        floor_ns,
        "ns/op",
        Some(0.6),
        Better::Lower,
    ));
    // The same gets one layer down: the backend's `get` returns the stored bytes, as the raw
    // floor does, without the codec's decoding and the facade's expiry check and counters.
    let (backend_ns, floor_ns) = paired(
        cfg.reps,
        || backend_get_ns(cache.backend(), &visit),
        || raw_get_ns(&floor_db, &visit),
    );
    rows.push(Row::new(
        format!("redb Backend::get (bytes), multi-process mode, {keys} keys x 64 B"),
        backend_ns,
        "raw redb ExclusiveWriter begin_read+get",
        floor_ns,
        "ns/op",
        Some(0.6),
        Better::Lower,
    ));
    drop(floor_db);

    // Writes: the naive baseline is one durable commit per insert, same (MultiWriter) mode,
    // measured alternately with ours.
    let naive_db = raw_db(&dir.path().join("naive.redb"), ConcurrencyMode::MultiWriter);
    let naive_commits = per_thread * 2;
    let mut naive_round = 0;
    let mut naive = || {
        naive_round += 1;
        throughput(1, naive_commits, |_| {
            for i in 0..naive_commits {
                let mut tx = naive_db.begin_write().expect("begin_write");
                tx.set_durability(Durability::Immediate)
                    .expect("durability");
                {
                    let mut t = tx.open_table(TABLE).expect("open_table");
                    t.insert(format!("n{naive_round}:{i}").as_str(), VALUE.as_slice())
                        .expect("insert");
                }
                tx.commit().expect("commit");
            }
        })
    };
    // The baseline stores the value only, so the goal is read on sets that do the same (no
    // TTL); sets with a TTL also write the expiry index, a second B-tree in every commit.
    let mut round = 0;
    let hour = Some(Duration::from_secs(3600));
    for (threads, ttl) in [(1, hour), (2, hour), (8, hour), (8, None)] {
        let (rate, naive_rate) = paired(
            cfg.reps,
            || {
                round += 1;
                ours_set_rate(&cache, threads, per_thread, round, ttl)
            },
            &mut naive,
        );
        let what = if ttl.is_some() { "with TTL" } else { "no TTL" };
        rows.push(Row::new(
            format!("redb set, durable, {threads} writer thread(s), {what}, group commit"),
            rate,
            "raw redb MultiWriter, 1 commit per insert",
            naive_rate,
            "sets/s",
            (threads == 8 && ttl.is_none()).then_some(5.0),
            Better::Higher,
        ));
    }
    drop(naive_db);

    let workload = Workload {
        dir: dir.path(),
        ours: &cache,
        keys,
        visit: &visit,
        per_thread,
    };
    cached_peer(cfg, rows, &workload);
    diskcache_peer(cfg, rows, &workload);
    write_behind_peer(cfg, rows, dir.path());
    drop(cache);
    purge(cfg, rows, dir.path());
}

/// What the peer comparisons share: our cache, filled with `keys` keys, and the access pattern.
#[derive(Clone, Copy)]
struct Workload<'a> {
    dir: &'a Path,
    ours: &'a BrainCache<RedbBackend>,
    keys: usize,
    visit: &'a [usize],
    per_thread: usize,
}

/// The `cached` crate's `RedbCache`: single-process (ExclusiveWriter), one fsync per set.
fn cached_peer(cfg: &Config, rows: &mut Vec<Row>, w: &Workload<'_>) {
    let Workload {
        dir,
        ours,
        keys,
        visit,
        per_thread,
    } = *w;
    let peer: cached::stores::RedbCache<String, Vec<u8>> =
        cached::stores::RedbCache::builder("peer")
            .disk_dir(dir.join("cached"))
            .ttl(Duration::from_secs(3600))
            .build()
            .expect("build cached RedbCache");
    for i in 0..keys {
        peer.cache_set(key(i), VALUE.to_vec()).expect("cached set");
    }
    let peer_keys: Vec<String> = visit.iter().map(|&i| key(i)).collect();
    let (ours_ns, peer_ns) = paired(
        cfg.reps,
        || ours_get_ns(ours, visit),
        || {
            let t = Instant::now();
            for k in &peer_keys {
                std::hint::black_box(peer.cache_get(k).expect("cached get"));
            }
            t.elapsed().as_nanos() as f64 / peer_keys.len() as f64
        },
    );
    // Report gets as throughput so "higher is better" reads the same as the goal.
    rows.push(Row::new(
        "redb get, 1 thread",
        1e9 / ours_ns,
        "cached RedbCache",
        1e9 / peer_ns,
        "gets/s",
        Some(1.5),
        Better::Higher,
    ));
    let mut round = 1_000;
    let mut peer_round = 0;
    let (ours_rate, peer_rate) = paired(
        cfg.reps,
        || {
            round += 1;
            ours_set_rate(ours, 8, per_thread, round, Some(Duration::from_secs(3600)))
        },
        || {
            peer_round += 1;
            throughput(8, 8 * per_thread, |t| {
                for i in 0..per_thread {
                    peer.cache_set(format!("w{peer_round}:{t}:{i}"), VALUE.to_vec())
                        .expect("cached set");
                }
            })
        },
    );
    rows.push(Row::new(
        "redb set, durable, 8 threads",
        ours_rate,
        "cached RedbCache",
        peer_rate,
        "sets/s",
        Some(2.0),
        Better::Higher,
    ));
}

/// Python `diskcache` through `benches/peers/diskcache_peer.py`, when it can run.
fn diskcache_peer(cfg: &Config, rows: &mut Vec<Row>, w: &Workload<'_>) {
    let Workload {
        dir,
        ours,
        keys,
        visit,
        per_thread,
    } = *w;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/peers/diskcache_peer.py");
    let skip = |rows: &mut Vec<Row>, why: String| {
        for w in ["redb get, 1 thread", "redb set, durable, 8 threads"] {
            rows.push(
                Row::new(
                    w,
                    f64::NAN,
                    "diskcache",
                    f64::NAN,
                    "ops/s",
                    None,
                    Better::Higher,
                )
                .note(format!("skipped: {why}")),
            );
        }
    };
    let importable = std::process::Command::new("python3")
        .args(["-c", "import diskcache"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !importable {
        skip(
            rows,
            "python3 cannot import diskcache (pip install diskcache)".into(),
        );
        return;
    }
    let gets = visit.len().min(100_000);
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(dir.join("diskcache"))
        .args([keys, gets, per_thread, 8].map(|n| n.to_string()))
        .output();
    let parsed = out.ok().filter(|o| o.status.success()).and_then(|o| {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
        Some((v["get_ops"].as_f64()?, v["set_ops"].as_f64()?))
    });
    let Some((peer_gets, peer_sets)) = parsed else {
        skip(rows, format!("{} failed", script.display()));
        return;
    };
    let ours_ns = median_of(cfg.reps, || ours_get_ns(ours, visit));
    rows.push(Row::new(
        "redb get, 1 thread",
        1e9 / ours_ns,
        "diskcache (SQLite)",
        peer_gets,
        "gets/s",
        Some(5.0),
        Better::Higher,
    ));
    let mut round = 2_000;
    let ours_rate = median_of(cfg.reps, || {
        round += 1;
        ours_set_rate(ours, 8, per_thread, round, Some(Duration::from_secs(3600)))
    });
    rows.push(
        Row::new(
            "redb set, durable, 8 threads",
            ours_rate,
            "diskcache (SQLite)",
            peer_sets,
            "sets/s",
            Some(1.0),
            Better::Higher,
        )
        .note("diskcache with sqlite_synchronous=FULL: every ack durable"),
    );
}

/// Write-behind sets on one thread against diskcache's single-thread sets with its default
/// settings (no fsync per commit), measured alternately. Each of our runs ends with a `flush`,
/// so the rate counts the commits of what it wrote.
fn write_behind_peer(cfg: &Config, rows: &mut Vec<Row>, dir: &Path) {
    let sets = if cfg.quick { 5_000 } else { 20_000 };
    let what = "redb set, write-behind 50 ms, 1 thread, with TTL";
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/peers/diskcache_peer.py");
    let peer_rate = |round: usize| -> Option<f64> {
        let out = std::process::Command::new("python3")
            .arg(&script)
            .arg("--single-sets")
            .arg(dir.join(format!("diskcache-single-{round}")))
            .arg(sets.to_string())
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["set1_ops"].as_f64()
    };
    if peer_rate(0).is_none() {
        rows.push(
            Row::new(
                what,
                f64::NAN,
                "diskcache",
                f64::NAN,
                "sets/s",
                None,
                Better::Higher,
            )
            .note("skipped: python3 cannot run diskcache (pip install diskcache)"),
        );
        return;
    }
    let cache = BrainCache::new(
        RedbBackend::builder(dir.join("behind.redb"))
            .write_behind(Duration::from_millis(50))
            .build()
            .expect("open write-behind backend"),
    );
    let ttl = Some(Duration::from_secs(3600));
    let (mut round, mut peer_round) = (0, 0);
    let (ours, peer) = paired(
        cfg.reps,
        || {
            round += 1;
            throughput(1, sets, |_| {
                for i in 0..sets {
                    cache
                        .set(&format!("b{round}:{i}"), &VALUE.to_vec(), ttl)
                        .expect("set");
                }
                braincache::backend::Backend::flush(cache.backend()).expect("flush");
            })
        },
        || {
            peer_round += 1;
            peer_rate(peer_round).unwrap_or(f64::NAN)
        },
    );
    rows.push(
        Row::new(
            what,
            ours,
            "diskcache (SQLite, default settings), 1 thread",
            peer,
            "sets/s",
            Some(10.0),
            Better::Higher,
        )
        .note(
            "neither is durable on return: ours is lost in a crash until the next commit \
             (<= 50 ms); diskcache's (WAL, synchronous=NORMAL) survives a process crash, \
             not a power loss, until SQLite syncs",
        ),
    );
}

/// `purge_expired` of 10k expired entries among 1k and among 100k live ones.
fn purge(cfg: &Config, rows: &mut Vec<Row>, dir: &Path) {
    let big = if cfg.quick { 20_000 } else { 100_000 };
    let mut n = 0;
    let mut time_ms = |live: usize| {
        median_of(cfg.reps.min(3), || {
            n += 1;
            let clock = ManualClock::starting_now();
            let backend = RedbBackend::open(dir.join(format!("purge{n}.redb"))).expect("open");
            let cache = BrainCache::builder(backend).clock(clock.clone()).build();
            let fill = |prefix: &str, count: usize, ttl: Duration| {
                let deadline = Some(clock.now_for_bench() + ttl);
                let records: Vec<_> = (0..count)
                    .map(|i| {
                        (
                            format!("{prefix}{i}"),
                            braincache::backend::Record::new(vec![1], deadline),
                        )
                    })
                    .collect();
                for chunk in records.chunks(10_000) {
                    braincache::backend::Backend::set_many(cache.backend(), chunk.to_vec())
                        .expect("fill");
                }
            };
            fill("live", live, Duration::from_secs(3600));
            fill("dead", 10_000, Duration::from_secs(1));
            clock.advance(Duration::from_secs(2));
            let t = Instant::now();
            let removed = cache.purge_expired().expect("purge");
            let ms = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!(removed, 10_000);
            ms
        })
    };
    let small = time_ms(1_000);
    let large = time_ms(big);
    rows.push(Row::new(
        format!("redb purge of 10k expired: among {big} live vs 1k live"),
        large,
        "same, 1k live",
        small,
        "ms",
        None,
        Better::Lower,
    ));
}

/// `Clock::now` under a name that reads well above.
trait NowForBench {
    fn now_for_bench(&self) -> braincache::Timestamp;
}

impl NowForBench for ManualClock {
    fn now_for_bench(&self) -> braincache::Timestamp {
        braincache::base::Clock::now(self)
    }
}
