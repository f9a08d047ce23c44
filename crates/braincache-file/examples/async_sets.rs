//! Durable sets from 64 tasks: `set_async` (the writer thread's group commit) against the
//! blocking `set` on tokio's blocking pool (`run_blocking`, the trait's default), same run.
//!
//! `cargo run --release -p braincache-file --features async --example async_sets`

use braincache_core::{AsyncBackend, Backend, Operation, Record, run_blocking};
use braincache_file::FileBackend;
use std::sync::Arc;
use std::time::Instant;

const TASKS: usize = 64;
const SETS_PER_TASK: usize = 20;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> braincache_core::Result<()> {
    let dir = std::env::temp_dir().join(format!("braincache-async-sets-{}", std::process::id()));
    for round in 0..2 {
        let a = run(&dir, round, true).await?;
        let s = run(&dir, round, false).await?;
        println!(
            "round {round}: set_async (writer) {a:.0} sets/s, spawn_blocking set {s:.0} sets/s, ratio {:.2}",
            a / s
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn run(dir: &std::path::Path, round: usize, native: bool) -> braincache_core::Result<f64> {
    let b = Arc::new(FileBackend::open(
        dir.join(format!("{round}-{native}.json")),
    )?);
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let b = Arc::clone(&b);
            tokio::spawn(async move {
                for i in 0..SETS_PER_TASK {
                    let key = format!("t{t}:{i}");
                    let record = Record::new(b"\"value\"".to_vec(), None);
                    if native {
                        b.set_async(&key, record).await?;
                    } else {
                        run_blocking(&b, Operation::Set, move |b| b.set(&key, record)).await?;
                    }
                }
                braincache_core::Result::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task panicked")?;
    }
    Ok((TASKS * SETS_PER_TASK) as f64 / start.elapsed().as_secs_f64())
}
