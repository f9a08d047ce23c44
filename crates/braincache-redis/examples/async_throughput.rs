//! Async GET/SET throughput from 64 tasks: the multiplexed async connection
//! (`AsyncBackend for RedisBackend`) against the blocking pool run on tokio's blocking
//! threads (`run_blocking`, what the trait's defaults do), in the same run.
//!
//! `cargo run --release -p braincache-redis --features async --example async_throughput -- [URL]`
//! (default: starts `redis-server` on a free port, and stops it at the end).

use braincache_core::{AsyncBackend, Backend, Operation, Record, run_blocking};
use braincache_redis::RedisBackend;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TASKS: usize = 64;
const OPS_PER_TASK: usize = 500;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> braincache_core::Result<()> {
    let mut server = None;
    let url = match std::env::args().nth(1) {
        Some(url) => url,
        None => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap_or(6399);
            let child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server in PATH");
            server = Some(child);
            std::thread::sleep(Duration::from_millis(300));
            format!("redis://127.0.0.1:{port}/0")
        }
    };
    let b = Arc::new(RedisBackend::builder(&url).key_prefix("bench:").build()?);
    for round in 0..2 {
        let a = run(&b, true).await?;
        let s = run(&b, false).await?;
        println!(
            "round {round}: async connection {a:.0} ops/s, spawn_blocking + pool {s:.0} ops/s, ratio {:.2}",
            a / s
        );
    }
    b.clear()?;
    if let Some(mut child) = server {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(())
}

/// Ops per second of `TASKS` tasks each doing `OPS_PER_TASK` SET then GET pairs (counted as
/// two ops each).
async fn run(b: &Arc<RedisBackend>, native: bool) -> braincache_core::Result<f64> {
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let b = Arc::clone(b);
            tokio::spawn(async move {
                for i in 0..OPS_PER_TASK {
                    let key = format!("t{t}:{}", i % 50);
                    let record = Record::new(vec![7u8; 100], None);
                    if native {
                        b.set_async(&key, record).await?;
                        b.get_async(&key).await?;
                    } else {
                        let k = key.clone();
                        run_blocking(&b, Operation::Set, move |b| b.set(&k, record)).await?;
                        run_blocking(&b, Operation::Get, move |b| b.get(&key)).await?;
                    }
                }
                braincache_core::Result::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task panicked")?;
    }
    Ok((TASKS * OPS_PER_TASK * 2) as f64 / start.elapsed().as_secs_f64())
}
