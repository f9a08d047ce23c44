//! The Rust side of python/tests/test_shared.py: shares one cache file with a Python process.
//!
//! `share_peer <file|redb> PATH <CODEC> N` writes `rust:0..N` and reads `py:0..N` (written by
//! the Python process at the same time) as `serde_json::Value`, checking each value.
//! `share_peer memcached URL <CODEC> N` does the same on the memcached server at `URL`
//! (`memcache://host:port`), under the default key prefix. CODEC is
//! the codec the Python package reports for that backend (`BrainCache.codec`): the backend's
//! default codec when it is the same, else `json`. Prints `ok` and exits 0 when every value
//! matched.

use braincache::BrainCache;
use braincache::backend::{Backend, FileBackend, MemcachedBackend, RedbBackend};
use braincache::base::{Codec, Json};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn rust_value(i: u64) -> Value {
    json!({"from": "rust", "i": i, "list": [i, null, 1.5, "s", false], "empty": []})
}

fn python_value(i: u64) -> Value {
    json!({"from": "python", "i": i, "nested": {"xs": [i, i + 1]}, "none": null, "f": 0.25})
}

fn run<B: Backend, C: Codec>(cache: &BrainCache<B, C>, n: u64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut next_read = 0;
    for i in 0..n {
        cache
            .set(&format!("rust:{i}"), &rust_value(i), None)
            .map_err(|e| e.to_string())?;
        // Read whatever the Python process has written so far.
        while next_read < n {
            match cache
                .get::<Value>(&format!("py:{next_read}"))
                .map_err(|e| e.to_string())?
            {
                Some(v) if v == python_value(next_read) => next_read += 1,
                Some(v) => return Err(format!("py:{next_read} read as {v}")),
                None => break,
            }
        }
    }
    while next_read < n {
        if Instant::now() > deadline {
            return Err(format!("py:{next_read} never appeared"));
        }
        match cache
            .get::<Value>(&format!("py:{next_read}"))
            .map_err(|e| e.to_string())?
        {
            Some(v) if v == python_value(next_read) => next_read += 1,
            Some(v) => return Err(format!("py:{next_read} read as {v}")),
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    Ok(())
}

fn open<B: Backend>(backend: B, codec: &str, n: u64) -> Result<(), String> {
    if codec == <B::Codec as Codec>::NAME {
        run(&BrainCache::new(backend), n)
    } else if codec == Json::NAME {
        run(&BrainCache::builder(backend).codec(Json).build(), n)
    } else {
        Err(format!("unknown codec {codec:?}"))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, kind, path, codec, n] = args.as_slice() else {
        eprintln!("usage: share_peer <file|redb|memcached> PATH|URL CODEC N");
        std::process::exit(2);
    };
    let n: u64 = n.parse().unwrap_or(0);
    let result = match kind.as_str() {
        "file" => FileBackend::open(path)
            .map_err(|e| e.to_string())
            .and_then(|b| open(b, codec, n)),
        "redb" => RedbBackend::open(path)
            .map_err(|e| e.to_string())
            .and_then(|b| open(b, codec, n)),
        "memcached" => MemcachedBackend::connect(path)
            .map_err(|e| e.to_string())
            .and_then(|b| open(b, codec, n)),
        other => Err(format!("unknown backend {other:?}")),
    };
    match result {
        Ok(()) => println!("ok"),
        Err(e) => {
            eprintln!("share_peer: {e}");
            std::process::exit(1);
        }
    }
}
