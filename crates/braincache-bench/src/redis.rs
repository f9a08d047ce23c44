//! Redis backend against `redis-benchmark -c 1` on the same server, in the same run.

use crate::Config;
use crate::report::{Better, Row};
use crate::stats::{median_of, throughput};
use braincache::BrainCache;
use braincache::backend::RedisBackend;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` on a free loopback port, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Result<Server, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("redis-server not started ({e}); install the redis-server package"))?;
    let server = Server { child, port };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(10) {
            return Err("redis-server did not listen within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(server)
}

/// `redis-benchmark -c 1 -n N -t get,set -d 64 -q`: (set, get) requests per second.
fn redis_benchmark(port: u16, n: usize) -> Result<(f64, f64), String> {
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-c",
            "1",
            "-n",
            &n.to_string(),
        ])
        .args(["-t", "get,set", "-d", "64", "-q"])
        .output()
        .map_err(|e| format!("redis-benchmark not run ({e})"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = |name: &str| -> Option<f64> {
        // Lines look like "SET: 43745.00 requests per second, p50=0.015 msec"; progress
        // updates before them are separated by carriage returns.
        text.split(['\r', '\n'])
            .filter_map(|l| l.trim().strip_prefix(name))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .next_back()
    };
    match (rate("SET:"), rate("GET:")) {
        (Some(s), Some(g)) => Ok((s, g)),
        _ => Err(format!("cannot read redis-benchmark output: {text:?}")),
    }
}

/// The row that says why the Redis comparison did not run.
fn skipped(why: &str) -> Row {
    Row::new(
        "redis GET/SET, 1 connection",
        f64::NAN,
        "redis-benchmark",
        f64::NAN,
        "ops/s",
        Some(0.8),
        Better::Higher,
    )
    .note(format!("skipped: {why}"))
}

pub fn run(cfg: &Config, rows: &mut Vec<Row>) {
    let n = if cfg.quick { 20_000 } else { 100_000 };
    let server = match start_server() {
        Ok(s) => s,
        Err(why) => {
            rows.push(skipped(&why));
            return;
        }
    };
    let url = format!("redis://127.0.0.1:{}/0", server.port);
    let backend = RedisBackend::builder(&url)
        .pool_size(1)
        .build()
        .expect("connect to redis");
    let cache = BrainCache::new(backend);
    let value = vec![7u8; 64];
    let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    let (mut sets, mut gets, mut peer_sets, mut peer_gets) = (vec![], vec![], vec![], vec![]);
    // Alternate ours and the peer, so load changes on the shared machine hit both alike.
    let reps = cfg.reps;
    for _ in 0..reps {
        sets.push(throughput(1, n, |_| {
            for k in &keys {
                cache.set(k, &value, None).expect("redis set");
            }
        }));
        gets.push(throughput(1, n, |_| {
            for k in &keys {
                std::hint::black_box(cache.get::<Vec<u8>>(k).expect("redis get"));
            }
        }));
        match redis_benchmark(server.port, n) {
            Ok((s, g)) => {
                peer_sets.push(s);
                peer_gets.push(g);
            }
            Err(why) => {
                rows.push(skipped(&why));
                return;
            }
        }
    }
    let med = |v: Vec<f64>| {
        let mut it = v.into_iter();
        median_of(reps, || it.next().unwrap_or(f64::NAN))
    };
    rows.push(Row::new(
        "redis SET, 1 connection, 64 B",
        med(sets),
        "redis-benchmark -c 1",
        med(peer_sets),
        "ops/s",
        Some(0.8),
        Better::Higher,
    ));
    rows.push(Row::new(
        "redis GET, 1 connection, 64 B",
        med(gets),
        "redis-benchmark -c 1",
        med(peer_gets),
        "ops/s",
        Some(0.8),
        Better::Higher,
    ));
}
