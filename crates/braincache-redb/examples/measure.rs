//! Measures what the redb backend costs against raw redb, on this machine, in one run.
//!
//! ```sh
//! cargo run --release -p braincache-redb --example measure [-- --dir DIR] [--quick]
//! ```
//!
//! - (a) raw redb, `ExclusiveWriter`: `begin_read + open_table + get` (value copied out) on
//!   100k keys × 64 B — the read floor;
//! - (b) `RedbBackend` in its default multi-process mode: `get` on the same data; goal b/a ≤ 1.5;
//! - (c) raw redb, `MultiWriter`: one insert per durable commit, one thread — the write baseline;
//! - (d) `RedbBackend`, multi-process mode, 8 writer threads calling `set`; goal d/c ≥ 5.
//!
//! A few more rows put these in context (single-process mode, a fresh read transaction per get,
//! raw `MultiWriter` reads). The files live in a temporary folder under `--dir` (default: the
//! system's temp folder), which must be on a real disk for the durable commits to mean anything.

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
    commits: usize,
    sets_per_thread: usize,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut dir = std::env::temp_dir();
    let mut quick = false;
    while let Some(a) = args.next() {
        match a.as_str() {
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
            sets_per_thread: 50,
        }
    } else {
        Config {
            keys: 100_000,
            reads: 400_000,
            commits: 400,
            sets_per_thread: 250,
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

    // --- reads
    let raw_excl = raw_db(
        &tmp.path().join("raw-excl.redb"),
        ConcurrencyMode::ExclusiveWriter,
        &keys,
    );
    let a = per_op(cfg.reads, || {
        for &i in &order {
            let txn = raw_excl.begin_read().unwrap();
            let t = txn.open_table(TABLE).unwrap();
            black_box(t.get(keys[i].as_str()).unwrap().unwrap().value().to_vec());
        }
    });
    let a_nocopy = per_op(cfg.reads, || {
        for &i in &order {
            let txn = raw_excl.begin_read().unwrap();
            let t = txn.open_table(TABLE).unwrap();
            black_box(t.get(keys[i].as_str()).unwrap().unwrap().value().len());
        }
    });
    drop(raw_excl);
    let raw_multi = raw_db(
        &tmp.path().join("raw-multi.redb"),
        ConcurrencyMode::MultiWriter,
        &keys,
    );
    let raw_multi_read = per_op(cfg.reads, || {
        for &i in &order {
            let txn = raw_multi.begin_read().unwrap();
            let t = txn.open_table(TABLE).unwrap();
            black_box(t.get(keys[i].as_str()).unwrap().unwrap().value().to_vec());
        }
    });

    let multi = backend(&tmp.path().join("bc-multi.redb"), false, None, &keys);
    let b = per_op(cfg.reads, || {
        for &i in &order {
            black_box(multi.get(&keys[i]).unwrap().unwrap());
        }
    });
    let fresh = backend(
        &tmp.path().join("bc-fresh.redb"),
        false,
        Some(Duration::ZERO),
        &keys,
    );
    let b_fresh = per_op(cfg.reads, || {
        for &i in &order {
            black_box(fresh.get(&keys[i]).unwrap().unwrap());
        }
    });
    drop(fresh);
    let single = backend(&tmp.path().join("bc-single.redb"), true, None, &keys);
    let b_single = per_op(cfg.reads, || {
        for &i in &order {
            black_box(single.get(&keys[i]).unwrap().unwrap());
        }
    });

    // --- writes
    let value = vec![7u8; 64];
    let c = ops_per_sec(cfg.commits, || {
        for n in 0..cfg.commits {
            let mut txn = raw_multi.begin_write().unwrap();
            txn.set_durability(Durability::Immediate).unwrap();
            txn.open_table(TABLE)
                .unwrap()
                .insert(format!("w-{n}").as_str(), value.as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
    });
    drop(raw_multi);
    let raw_excl = Database::builder()
        .create(tmp.path().join("raw-excl.redb"))
        .unwrap();
    let c_excl = ops_per_sec(cfg.commits, || {
        for n in 0..cfg.commits {
            let mut txn = raw_excl.begin_write().unwrap();
            txn.set_durability(Durability::Immediate).unwrap();
            txn.open_table(TABLE)
                .unwrap()
                .insert(format!("w-{n}").as_str(), value.as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
    });
    drop(raw_excl);

    let set_one = |b: &RedbBackend, n: usize| {
        ops_per_sec(n, || {
            for i in 0..n {
                b.set(&format!("s-{i}"), Record::new(value.clone(), None))
                    .unwrap();
            }
        })
    };
    let set_threads = |b: &RedbBackend, threads: usize, per: usize| {
        ops_per_sec(threads * per, || {
            std::thread::scope(|s| {
                for t in 0..threads {
                    let value = &value;
                    s.spawn(move || {
                        for i in 0..per {
                            b.set(&format!("t{t}-{i}"), Record::new(value.clone(), None))
                                .unwrap();
                        }
                    });
                }
            });
        })
    };
    let d1 = set_one(&multi, cfg.commits);
    let d = set_threads(&multi, 8, cfg.sets_per_thread);
    let d_single1 = set_one(&single, cfg.commits);
    let d_single = set_threads(&single, 8, cfg.sets_per_thread);

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
    println!("|   | RedbBackend set, multi-process, 1 thread | {d1:.0} ops/s |");
    println!("| d | RedbBackend set, multi-process, 8 threads | {d:.0} ops/s |");
    println!("|   | RedbBackend set, single_process(), 1 thread | {d_single1:.0} ops/s |");
    println!("|   | RedbBackend set, single_process(), 8 threads | {d_single:.0} ops/s |");
    println!();
    println!("b/a = {:.2} (goal ≤ 1.5)", b / a);
    println!("d/c = {:.2} (goal ≥ 5)", d / c);
}

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
fn backend(path: &Path, single: bool, max_age: Option<Duration>, keys: &[String]) -> RedbBackend {
    let mut b = RedbBackend::builder(path);
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

/// Nanoseconds per operation of `f`, which runs `n` operations; best of three runs.
fn per_op(n: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm the caches
    (0..3)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// Operations per second of `f`, which runs `n` operations.
fn ops_per_sec(n: usize, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    n as f64 / t.elapsed().as_secs_f64()
}
