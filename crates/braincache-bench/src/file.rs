//! File backend: 1,000 sets into a 1,000-entry file, durable and batched.

use crate::Config;
use crate::report::{Better, Row};
use crate::stats::{latencies, median_of, paired};
use braincache::backend::{Backend, FileBackend, Record};
use std::fs::{self, File};
use std::io::Write;
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

/// p50 µs of the atomic-replace protocol alone, with the document already in memory: write a
/// temp file of `len` bytes, fdatasync it, rename it over the file, fsync the folder. The
/// replaced version is closed on another thread, as the backend closes it off the writer's
/// path. This is what a durable set costs before braincache does anything.
fn replace_floor_us(len: usize, sets: usize) -> f64 {
    let dir = tempfile::tempdir_in(".").expect("temp dir in the current folder");
    let (path, tmp) = (
        dir.path().join("cache.json"),
        dir.path().join("cache.json.tmp"),
    );
    let doc = vec![b' '; len];
    fs::write(&path, &doc).expect("first version");
    let (closer, retired) = std::sync::mpsc::channel::<File>();
    let closing = std::thread::spawn(move || retired.iter().for_each(drop));
    let mut previous = File::open(&path).expect("open");
    let (p50, _) = latencies(sets, |_| {
        let mut f = File::create(&tmp).expect("create temp");
        f.write_all(&doc).expect("write");
        f.sync_data().expect("fdatasync");
        fs::rename(&tmp, &path).expect("rename");
        File::open(dir.path())
            .and_then(|d| d.sync_all())
            .expect("fsync folder");
        closer
            .send(std::mem::replace(&mut previous, f))
            .expect("closing thread");
    });
    drop(closer);
    closing.join().expect("closing thread");
    p50
}

/// The size of the benchmark's document: 1,000 entries as the backend writes them.
fn document_len() -> usize {
    let dir = tempfile::tempdir_in(".").expect("temp dir in the current folder");
    let path = dir.path().join("cache.json");
    let b = FileBackend::open(&path).expect("open file backend");
    let entries = (0..ENTRIES)
        .map(|i| (format!("key-{i:05}"), value(i + 1)))
        .collect();
    b.set_many(entries).expect("fill");
    fs::metadata(&path).expect("stat").len() as usize
}

pub fn run(cfg: &Config, rows: &mut Vec<Row>, fsync_floor_us: f64) {
    let sets = if cfg.quick { 200 } else { SETS };
    let reps = cfg.reps.min(3);
    let len = document_len();
    let (durable, floor) = paired(
        reps,
        || per_set_us(None, sets),
        || replace_floor_us(len, sets),
    );
    let batched = median_of(reps, || per_set_us(Some(Duration::from_millis(100)), sets));
    // The goal is relative to the disk: at most 1.15x the replace protocol alone, measured in
    // the same run (an absolute 500 µs said more about the disk than about braincache).
    rows.push(
        Row::new(
            format!("file set, durable, {ENTRIES}-entry file (p50), vs the replace protocol alone ({len} B document)"),
            durable,
            "write+fdatasync+rename+fsync dir",
            floor,
            "µs",
            Some(1.15),
            Better::Lower,
        )
        .note(format!(
            "the physical floor of an atomic, durable JSON rewrite on this disk; {:.1}x the 4 KiB fsync floor",
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
