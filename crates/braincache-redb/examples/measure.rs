//! Measures what the redb backend costs against raw redb, on this machine, in one run.
//!
//! ```sh
//! cargo run --release -p braincache-redb --example measure [-- --dir DIR] [--quick] [--wait-us N]
//! ```
//!
//! - (a) raw redb, `ExclusiveWriter`: `begin_read + open_table + get` (value copied out) on
//!   100k keys × 64 B — the read floor;
//! - (b) `RedbBackend` in its default multi-process mode: `get` on the same data; goal b/a ≤ 0.6;
//! - (c) raw redb, `MultiWriter`: one insert per durable commit, one thread — the write baseline;
//! - (d) `RedbBackend`, multi-process mode, 8 writer threads calling `set`; goal d/c ≥ 5.
//!
//! A few more rows put these in context (single-process mode, a fresh read transaction per get,
//! raw `MultiWriter` reads). The files live in a temporary folder under `--dir` (default: the
//! system's temp folder), which must be on a real disk for the durable commits to mean anything.
//! `--wait-us` sets the backends' group-commit wait (default: the builder's).

use braincache_core::{Backend, Record};
use braincache_redb::RedbBackend;
use redb::{ConcurrencyMode, Database, Durability, ReadableDatabase, TableDefinition};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("data");

struct Config {
    keys: usize,
    reads: usize,
    /// Durable commits of row (c), in all; row (d) makes 8 times as many `set`s.
    commits: usize,
    rounds: usize,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut dir = std::env::temp_dir();
    let mut quick = false;
    let mut wait = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--wait-us" => {
                let us = args.next().and_then(|v| v.parse().ok());
                wait = Some(Duration::from_micros(us.expect("--wait-us needs a number")));
            }
            "--dir" => dir = args.next().expect("--dir needs a folder").into(),
            "--quick" => quick = true,
            other => panic!("unknown argument {other:?}"),
        }
    }
    let cfg = if quick {
        Config {
            keys: 10_000,
            reads: 50_000,
            commits: 100,
            rounds: 4,
        }
    } else {
        Config {
            keys: 100_000,
            reads: 400_000,
            commits: 500,
            rounds: 10,
        }
    };
    let tmp = tempfile::tempdir_in(&dir).expect("cannot create a temp folder");
    println!(
        "{} keys × 64 B, {} reads per row, files in {}",
        cfg.keys,
        cfg.reads,
        tmp.path().display()
    );
    let keys: Vec<String> = (0..cfg.keys).map(|i| format!("key-{i:08}")).collect();
    let order = shuffled(cfg.reads, cfg.keys);

    // --- reads: the rows take turns, three rounds, best of each
    let raw_excl = raw_db(
        &tmp.path().join("raw-excl.redb"),
        ConcurrencyMode::ExclusiveWriter,
        &keys,
    );
    let raw_multi = raw_db(
        &tmp.path().join("raw-multi.redb"),
        ConcurrencyMode::MultiWriter,
        &keys,
    );
    let multi = backend(&tmp.path().join("bc-multi.redb"), false, None, wait, &keys);
    let fresh = backend(
        &tmp.path().join("bc-fresh.redb"),
        false,
        Some(Duration::ZERO),
        wait,
        &keys,
    );
    let single = backend(&tmp.path().join("bc-single.redb"), true, None, wait, &keys);
    let raw_read = |db: &Database, copy: bool| {
        per_op(cfg.reads, || {
            for &i in &order {
                let txn = db.begin_read().unwrap();
                let t = txn.open_table(TABLE).unwrap();
                let g = t.get(keys[i].as_str()).unwrap().unwrap();
                if copy {
                    black_box(g.value().to_vec());
                } else {
                    black_box(g.value().len());
                }
            }
        })
    };
    let backend_read = |b: &RedbBackend| {
        per_op(cfg.reads, || {
            for &i in &order {
                black_box(b.get(&keys[i]).unwrap().unwrap());
            }
        })
    };
    let mut reads = [f64::INFINITY; 6];
    for _ in 0..3 {
        let round = [
            raw_read(&raw_excl, true),
            raw_read(&raw_excl, false),
            raw_read(&raw_multi, true),
            backend_read(&multi),
            backend_read(&fresh),
            backend_read(&single),
        ];
        for (best, r) in reads.iter_mut().zip(round) {
            *best = best.min(r);
        }
    }
    let [a, a_nocopy, raw_multi_read, b, b_fresh, b_single] = reads;
    drop(fresh);

    // --- writes: c and d take turns, three rounds, so that both see the same disk
    let value = vec![7u8; 64];
    // Each closure returns (operations, seconds).
    let raw_commits = |db: &Database, n: usize, round: usize| {
        timed(n, || {
            for i in 0..n {
                let mut txn = db.begin_write().unwrap();
                txn.set_durability(Durability::Immediate).unwrap();
                txn.open_table(TABLE)
                    .unwrap()
                    .insert(format!("w{round}-{i}").as_str(), value.as_slice())
                    .unwrap();
                txn.commit().unwrap();
            }
        })
    };
    let set_threads = |b: &RedbBackend, threads: usize, per: usize, round: usize| {
        timed(threads * per, || {
            std::thread::scope(|s| {
                for t in 0..threads {
                    let value = &value;
                    s.spawn(move || {
                        for i in 0..per {
                            let key = format!("r{round}-t{t}-{i}");
                            b.set(&key, Record::new(value.clone(), None)).unwrap();
                        }
                    });
                }
            });
        })
    };
    // The disk's fsync latency drifts (other work on the machine): short turns, many rounds.
    let per_round = cfg.commits / cfg.rounds;
    let mut rounds = Vec::new();
    let commits_before = multi.commits();
    for round in 0..cfg.rounds {
        let c = raw_commits(&raw_multi, per_round, round);
        let d = set_threads(&multi, 8, per_round, round);
        rounds.push((c, d));
    }
    let sets_per_commit =
        (8 * per_round * cfg.rounds) as f64 / (multi.commits() - commits_before) as f64;
    // Context, measured once each.
    let rate = |(n, secs): (usize, f64)| n as f64 / secs;
    // The ceiling of group commit: raw redb with 8 inserts (keys like row d's) per commit.
    let raw8 = rate(timed(8 * per_round * 2, || {
        for i in 0..per_round * 2 {
            let mut txn = raw_multi.begin_write().unwrap();
            txn.set_durability(Durability::Immediate).unwrap();
            {
                let mut t = txn.open_table(TABLE).unwrap();
                for th in 0..8 {
                    t.insert(format!("r99-t{th}-{i}").as_str(), value.as_slice())
                        .unwrap();
                }
            }
            txn.commit().unwrap();
        }
    }));
    let c_excl = rate(raw_commits(&raw_excl, per_round * 2, 99));
    let d1 = rate(set_threads(&multi, 1, per_round * 2, 99));
    let d_single1 = rate(set_threads(&single, 1, per_round * 2, 99));
    let d_single = rate(set_threads(&single, 8, per_round * 2, 99));
    drop((raw_excl, raw_multi));

    let total = |f: fn(&Round) -> Timed| {
        let (n, secs) = rounds
            .iter()
            .map(f)
            .fold((0, 0.0), |(n, t), (m, u)| (n + m, t + u));
        n as f64 / secs
    };
    let c = total(|r| r.0);
    let d = total(|r| r.1);
    let mut ratios: Vec<f64> = rounds.iter().map(|&(c, d)| rate(d) / rate(c)).collect();
    ratios.sort_by(f64::total_cmp);
    let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.1}")).collect();
    println!();
    println!("| row | what | result |");
    println!("|---|---|---|");
    println!("| a | raw redb ExclusiveWriter: begin_read + open_table + get + copy | {a:.0} ns |");
    println!("|   | same without copying the value out | {a_nocopy:.0} ns |");
    println!(
        "|   | raw redb MultiWriter: begin_read + open_table + get + copy | {raw_multi_read:.0} ns |"
    );
    println!("| b | RedbBackend get, multi-process (default) | {b:.0} ns |");
    println!("|   | RedbBackend get, multi-process, snapshot_max_age(0) | {b_fresh:.0} ns |");
    println!("|   | RedbBackend get, single_process() | {b_single:.0} ns |");
    println!("| c | raw redb MultiWriter, 1 insert per durable commit, 1 thread | {c:.0} ops/s |");
    println!(
        "|   | raw redb ExclusiveWriter, 1 insert per durable commit, 1 thread | {c_excl:.0} ops/s |"
    );
    println!(
        "|   | raw redb MultiWriter, 8 inserts per durable commit, 1 thread | {raw8:.0} ops/s |"
    );
    println!("|   | RedbBackend set, multi-process, 1 thread | {d1:.0} ops/s |");
    println!("| d | RedbBackend set, multi-process, 8 threads | {d:.0} ops/s |");
    println!("|   | sets per durable commit in row d | {sets_per_commit:.1} |");
    println!("|   | RedbBackend set, single_process(), 1 thread | {d_single1:.0} ops/s |");
    println!("|   | RedbBackend set, single_process(), 8 threads | {d_single:.0} ops/s |");
    println!();
    println!("b/a = {:.2} (goal ≤ 0.6)", b / a);
    println!(
        "d/c = {:.2} over {} alternating rounds (per round, sorted: {}) (goal ≥ 5)",
        d / c,
        cfg.rounds,
        shown.join(", ")
    );
}

/// Operations and the seconds they took.
type Timed = (usize, f64);
/// One round of rows (c) and (d).
type Round = (Timed, Timed);

/// A raw redb database holding `keys` with 64-byte values.
fn raw_db(path: &Path, mode: ConcurrencyMode, keys: &[String]) -> Database {
    let db = Database::builder()
        .set_concurrency_mode(mode)
        .set_cache_size(64 << 20)
        .create(path)
        .unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(TABLE).unwrap();
        for k in keys {
            t.insert(k.as_str(), [1u8; 64].as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
    db
}

/// A backend holding `keys` with 64-byte values.
fn backend(
    path: &Path,
    single: bool,
    max_age: Option<Duration>,
    wait: Option<Duration>,
    keys: &[String],
) -> RedbBackend {
    let mut b = RedbBackend::builder(path);
    if let Some(w) = wait {
        b = b.group_commit_wait(w);
    }
    if single {
        b = b.single_process();
    }
    if let Some(age) = max_age {
        b = b.snapshot_max_age(age);
    }
    let b = b.build().unwrap();
    for chunk in keys.chunks(10_000) {
        b.set_many(
            chunk
                .iter()
                .map(|k| (k.clone(), Record::new(vec![1; 64], None)))
                .collect(),
        )
        .unwrap();
    }
    b
}

fn shuffled(n: usize, range: usize) -> Vec<usize> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % range as u64) as usize
        })
        .collect()
}

/// Nanoseconds per operation of `f`, which runs `n` operations (after one warm-up run).
fn per_op(n: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64 / n as f64
}

/// Runs `f`, which makes `n` operations; returns `n` and the seconds it took.
fn timed(n: usize, f: impl FnOnce()) -> Timed {
    let t = Instant::now();
    f();
    (n, t.elapsed().as_secs_f64())
}
