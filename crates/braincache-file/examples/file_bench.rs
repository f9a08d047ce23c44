//! Measures the file backend's write cost: 1,000 sets into a 1,000-entry file, durable and
//! batched, and 200 deletes in batched mode (which write through), beside the disk's fsync
//! floor.
//!
//! ```text
//! cargo run --release -p braincache-file --example file_bench [-- FOLDER]
//! ```
//!
//! FOLDER (default: the current one) picks the disk; a temp folder is made inside it.

use braincache_core::{Backend, Record};
use braincache_file::FileBackend;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const ENTRIES: usize = 1_000;
const SETS: usize = 1_000;

/// Per-operation latencies in microseconds: mean, p50, p99.
fn summary(mut us: Vec<f64>) -> (f64, f64, f64) {
    us.sort_by(f64::total_cmp);
    let mean = us.iter().sum::<f64>() / us.len() as f64;
    let at = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize];
    (mean, at(0.5), at(0.99))
}

fn time_each(n: usize, mut f: impl FnMut(usize)) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// A JSON value of about 60 bytes, as the Json codec would encode a small struct.
fn value(i: usize) -> Record {
    let json = format!(r#"{{"id":{i},"name":"user-{i:06}","tags":["a","b"],"score":{i}.5}}"#);
    Record::new(json.into_bytes(), None)
}

fn prefilled(path: &Path, batched: Option<Duration>) -> FileBackend {
    let _ = fs::remove_file(path);
    let b = match batched {
        Some(every) => FileBackend::builder(path).flush_every(every).build(),
        None => FileBackend::open(path),
    }
    .expect("open");
    let entries = (0..ENTRIES)
        .map(|i| (format!("key-{i:05}"), value(i)))
        .collect();
    b.set_many(entries).expect("prefill");
    b.flush().expect("flush");
    b
}

fn row(name: &str, (mean, p50, p99): (f64, f64, f64)) {
    println!("{name:<52} {mean:>9.1} {p50:>9.1} {p99:>9.1}");
}

fn main() {
    let folder = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let dir = tempfile::tempdir_in(&folder).expect("temp folder");
    let path = dir.path().join("cache.json");

    println!(
        "{:<52} {:>9} {:>9} {:>9}",
        "µs per operation", "mean", "p50", "p99"
    );

    // The floors: one 4 KiB write + fsync, and the replace protocol alone with a document of
    // the size the benchmark writes.
    let mut f = File::create(dir.path().join("floor")).expect("create");
    let block = [0u8; 4096];
    row(
        "floor: write 4 KiB + fsync",
        summary(time_each(SETS, |_| {
            f.write_all(&block).expect("write");
            f.sync_data().expect("fsync");
        })),
    );
    let doc = {
        prefilled(&path, None);
        fs::read(&path).expect("read")
    };
    let tmp = dir.path().join("floor.tmp");
    let target = dir.path().join("floor.json");
    // The two fsyncs of the protocol, apart.
    let (mut file_us, mut dir_us) = (Vec::new(), Vec::new());
    for _ in 0..SETS {
        let mut t = File::create(&tmp).expect("create");
        t.write_all(&doc).expect("write");
        let s = Instant::now();
        t.sync_data().expect("fsync");
        file_us.push(s.elapsed().as_secs_f64() * 1e6);
        fs::rename(&tmp, &target).expect("rename");
        let s = Instant::now();
        File::open(dir.path())
            .expect("dir")
            .sync_all()
            .expect("fsync dir");
        dir_us.push(s.elapsed().as_secs_f64() * 1e6);
    }
    row("floor parts: fsync of the new file", summary(file_us));
    row(
        "floor parts: fsync of the folder after the rename",
        summary(dir_us),
    );
    row(
        &format!(
            "floor: {} KB to temp + fsync + rename + fsync dir",
            doc.len() / 1000
        ),
        summary(time_each(SETS, |_| {
            let mut t = File::create(&tmp).expect("create");
            t.write_all(&doc).expect("write");
            t.sync_data().expect("fsync");
            fs::rename(&tmp, &target).expect("rename");
            File::open(dir.path())
                .expect("dir")
                .sync_all()
                .expect("fsync dir");
        })),
    );

    let durable = prefilled(&path, None);
    row(
        &format!("durable set, {ENTRIES} entries"),
        summary(time_each(SETS, |i| {
            durable
                .set(&format!("key-{:05}", (i * 7) % ENTRIES), value(i + 1))
                .expect("set");
        })),
    );
    row(
        &format!("get (hit), {ENTRIES} entries"),
        summary(time_each(SETS, |i| {
            durable
                .get(&format!("key-{:05}", (i * 7) % ENTRIES))
                .expect("get")
                .expect("hit");
        })),
    );
    drop(durable);

    for every in [Duration::from_millis(100), Duration::from_secs(1)] {
        let batched = prefilled(&path, Some(every));
        let t = Instant::now();
        let sets = time_each(SETS, |i| {
            batched
                .set(&format!("key-{:05}", (i * 7) % ENTRIES), value(i + 2))
                .expect("set");
        });
        let f0 = Instant::now();
        batched.flush().expect("flush");
        let flush_us = f0.elapsed().as_secs_f64() * 1e6;
        let total = t.elapsed().as_secs_f64() * 1e6;
        row(
            &format!("batched set (flush_every {every:?}), {ENTRIES} entries"),
            summary(sets),
        );
        println!(
            "{:<52} {:>9.1}   (1,000 sets + final flush: {:.1} ms in all)",
            "  the final flush() alone",
            flush_us,
            total / 1e3
        );
    }

    // A removal writes through in batched mode too (so it cannot erase later writes of other
    // processes): it costs a durable write.
    let batched = prefilled(&path, Some(Duration::from_millis(100)));
    row(
        &format!("batched delete (written at once), {ENTRIES} entries"),
        summary(time_each(SETS / 5, |i| {
            assert!(batched.delete(&format!("key-{i:05}")).expect("delete"));
        })),
    );
}
