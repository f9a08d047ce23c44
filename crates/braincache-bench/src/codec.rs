//! Codecs: MessagePack (the default of memory, redb and Redis) against postcard (opt-in) on the
//! values the other workloads store, in encode time, decode time and encoded size.

use crate::Config;
use crate::report::{Better, Row};
use crate::stats::paired;
use braincache::base::{Codec, MsgPack, Postcard};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::time::Instant;

/// The file workload's value as a struct (about 60 bytes of JSON).
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
struct User {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: f64,
}

/// Nanoseconds per encode of `value` with `codec`, over `n` encodes.
fn encode_ns<C: Codec, T: Serialize>(codec: &C, value: &T, n: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        black_box(codec.encode(black_box(value)).expect("encode"));
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// Nanoseconds per decode of `bytes` as a `T` with `codec`, over `n` decodes.
fn decode_ns<C: Codec, T: DeserializeOwned>(codec: &C, bytes: &[u8], n: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        black_box(codec.decode::<T>(black_box(bytes)).expect("decode"));
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// Rows for `value`: MessagePack against postcard, measured alternately (see `paired`).
fn compare<T: Serialize + DeserializeOwned>(
    cfg: &Config,
    rows: &mut Vec<Row>,
    what: &str,
    value: &T,
) {
    let n = if cfg.quick { 50_000 } else { 500_000 };
    let m = MsgPack.encode(value).expect("encode");
    let p = Postcard.encode(value).expect("encode");
    let (me, pe) = paired(
        cfg.reps,
        || encode_ns(&MsgPack, value, n),
        || encode_ns(&Postcard, value, n),
    );
    let (md, pd) = paired(
        cfg.reps,
        || decode_ns::<_, T>(&MsgPack, &m, n),
        || decode_ns::<_, T>(&Postcard, &p, n),
    );
    for (kind, ours, peer, unit) in [
        ("encode", me, pe, "ns/op"),
        ("decode", md, pd, "ns/op"),
        ("size", m.len() as f64, p.len() as f64, "bytes"),
    ] {
        rows.push(Row::new(
            format!("codec {kind}, {what}: msgpack"),
            ours,
            "postcard",
            peer,
            unit,
            None,
            Better::Lower,
        ));
    }
}

pub fn run(cfg: &Config, rows: &mut Vec<Row>) {
    compare(
        cfg,
        rows,
        "64-byte Vec<u8> (memory, redb values)",
        &vec![7u8; 64],
    );
    let user = User {
        id: 1234,
        name: "user-001234".into(),
        tags: vec!["a".into(), "b".into()],
        score: 1234.5,
    };
    compare(cfg, rows, "small struct (file value)", &user);
    compare(cfg, rows, "u64", &1_700_000_000u64);
    compare(cfg, rows, "1 KiB String", &"x".repeat(1024));
}
