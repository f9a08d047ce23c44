//! The async `get_or_refresh` with a lease across processes: 3 processes × 4 tokio tasks (on a
//! current-thread runtime, so a lease wait that blocked the thread would stall its process) miss
//! one key with a 300 ms async loader on a shared redb file. The loader appends a line per run
//! to a file (O_APPEND), so the test counts runs across processes: one.
//!
//! The processes are this test binary run again with `BRAINCACHE_ASYNC_LEASE_CHILD` set.
#![cfg(all(feature = "async", feature = "redb"))]

mod support;

use braincache::Freshness;
use braincache::backend::RedbBackend;
use braincache::future::BrainCache;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};
use support::procs::{
    assert_loader_ran_once, print_results, record_run, results, spawn_test, unix_millis, until,
};

const PROCESSES: usize = 3;
const TASKS: usize = 4;
const LOADER: Duration = Duration::from_millis(300);
const KEY: &str = "hot";

/// Runs in a child process: 4 tasks at the agreed wall-clock time, one `got <value> <ms>` line
/// per task.
#[tokio::test(flavor = "current_thread")]
async fn async_child() {
    let Ok(target) = std::env::var("BRAINCACHE_ASYNC_LEASE_CHILD") else {
        return;
    };
    let runs = PathBuf::from(std::env::var("BRAINCACHE_ASYNC_LEASE_RUNS").unwrap());
    let start_at: u64 = std::env::var("BRAINCACHE_ASYNC_LEASE_START")
        .unwrap()
        .parse()
        .unwrap();
    let cache = BrainCache::new(RedbBackend::open(&target).unwrap());
    let freshness = Freshness::new(Duration::from_secs(600)).lease(Duration::from_secs(10));
    tokio::time::sleep(until(start_at)).await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (cache, freshness, runs) = (cache.clone(), freshness.clone(), runs.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let v: String = cache
                    .get_or_refresh(KEY, &freshness, move || async move {
                        let v = record_run(&runs);
                        tokio::time::sleep(LOADER).await;
                        v
                    })
                    .await
                    .unwrap();
                (v, started.elapsed())
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    print_results(out, cache.stats());
}

fn spawn(target: &Path, runs: &Path, start_at: u64) -> Child {
    spawn_test(
        "async_child",
        &[
            ("BRAINCACHE_ASYNC_LEASE_CHILD", target.display().to_string()),
            ("BRAINCACHE_ASYNC_LEASE_RUNS", runs.display().to_string()),
            ("BRAINCACHE_ASYNC_LEASE_START", start_at.to_string()),
        ],
    )
}

#[test]
fn redb_one_async_computation_across_processes() {
    if std::env::var_os("BRAINCACHE_ASYNC_LEASE_CHILD").is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.redb");
    drop(RedbBackend::open(&path).unwrap());
    let runs = dir.path().join("runs.log");
    let start_at = unix_millis() + 1_500; // time for the processes to start
    let children: Vec<Child> = (0..PROCESSES)
        .map(|_| spawn(&path, &runs, start_at))
        .collect();
    let got: Vec<(String, u64)> = children.into_iter().flat_map(results).collect();
    assert_loader_ran_once("async redb lease", &runs, &got, PROCESSES * TASKS);
}
