//! File backend: 1,000 sets into a 1,000-entry file, durable and batched.

use crate::Config;
use crate::report::{Better, Row};
use crate::stats::{latencies, median_of};
use braincache::backend::{Backend, FileBackend, Record};
use std::time::Duration;

const ENTRIES: usize = 1_000;
const SETS: usize = 1_000;

/// A JSON value of about 60 bytes, as the Json codec encodes a small struct.
fn value(i: usize) -> Record {
    let json = format!(r#"{{"id":{i},"name":"user-{i:06}","tags":["a","b"],"score":{i}.5}}"#);
    Record::new(json.into_bytes(), None)
}

/// p50 µs per set over `SETS` sets into a prefilled file.
fn per_set_us(batched: Option<Duration>, sets: usize) -> f64 {
    let dir = tempfile::tempdir_in(".").expect("temp dir in the current folder");
    let path = dir.path().join("cache.json");
    let b = match batched {
        Some(every) => FileBackend::builder(&path).flush_every(every).build(),
        None => FileBackend::open(&path),
    }
    .expect("open file backend");
    let entries = (0..ENTRIES)
        .map(|i| (format!("key-{i:05}"), value(i)))
        .collect();
    b.set_many(entries).expect("prefill");
    b.flush().expect("flush");
    let (p50, _) = latencies(sets, |i| {
        b.set(&format!("key-{:05}", i % ENTRIES), value(i + 1))
            .expect("set");
    });
    b.flush().expect("final flush");
    p50
}

pub fn run(cfg: &Config, rows: &mut Vec<Row>, fsync_floor_us: f64) {
    let sets = if cfg.quick { 200 } else { SETS };
    let reps = cfg.reps.min(3);
    let durable = median_of(reps, || per_set_us(None, sets));
    let batched = median_of(reps, || per_set_us(Some(Duration::from_millis(100)), sets));
    rows.push(
        Row::new(
            format!("file set, durable, {ENTRIES}-entry file (p50)"),
            durable,
            "goal 500 µs",
            500.0,
            "µs",
            Some(1.0),
            Better::Lower,
        )
        .note(format!(
            "{:.1}x the 4 KiB fsync floor",
            durable / fsync_floor_us
        )),
    );
    rows.push(Row::new(
        format!("file set, batched every 100 ms, {ENTRIES}-entry file (p50)"),
        batched,
        "goal 20 µs",
        20.0,
        "µs",
        Some(1.0),
        Better::Lower,
    ));
}
