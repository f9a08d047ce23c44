//! The async `get_or_refresh` with a lease across processes: 3 processes × 4 tokio tasks (on a
//! current-thread runtime, so a lease wait that blocked the thread would stall its process) miss
//! one key with a 300 ms async loader on a shared redb file. The loader appends a line per run
//! to a file (O_APPEND), so the test counts runs across processes: one.
//!
//! The processes are this test binary run again with `BRAINCACHE_ASYNC_LEASE_CHILD` set.
#![cfg(all(feature = "async", feature = "redb"))]

use braincache::Freshness;
use braincache::backend::RedbBackend;
use braincache::future::BrainCache;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PROCESSES: usize = 3;
const TASKS: usize = 4;
const LOADER: Duration = Duration::from_millis(300);
const KEY: &str = "hot";

fn unix_millis() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

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
    let now = unix_millis();
    if start_at > now {
        tokio::time::sleep(Duration::from_millis(start_at - now)).await;
    }
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (cache, freshness, runs) = (cache.clone(), freshness.clone(), runs.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let v: String = cache
                    .get_or_refresh(KEY, &freshness, move || async move {
                        let mut f = std::fs::OpenOptions::new()
                            .append(true)
                            .create(true)
                            .open(&runs)
                            .unwrap();
                        writeln!(f, "{}", std::process::id()).unwrap();
                        tokio::time::sleep(LOADER).await;
                        format!("computed by {}", std::process::id())
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
    let mut stdout = std::io::stdout().lock();
    for (v, took) in out {
        writeln!(stdout, "got {v:?} {}", took.as_millis()).unwrap();
    }
    writeln!(stdout, "stats {:?}", cache.stats()).unwrap();
}

fn spawn(target: &Path, runs: &Path, start_at: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "async_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("BRAINCACHE_ASYNC_LEASE_CHILD", target)
        .env("BRAINCACHE_ASYNC_LEASE_RUNS", runs)
        .env("BRAINCACHE_ASYNC_LEASE_START", start_at.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn results(child: Child) -> Vec<(String, u64)> {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "child failed: {:?}", out.status);
    BufReader::new(&out.stdout[..])
        .lines()
        .map(Result::unwrap)
        .inspect(|l| {
            if l.contains("stats Stats") {
                eprintln!("{l}");
            }
        })
        .filter_map(|l| {
            let rest = &l[l.find("got \"")? + 4..];
            let (v, ms) = rest.rsplit_once(' ')?;
            Some((v.to_owned(), ms.parse().unwrap()))
        })
        .collect()
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
    let lines: Vec<String> = std::fs::read_to_string(&runs)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 1, "the loader ran {} times", lines.len());
    let expected = format!("\"computed by {}\"", lines[0]);
    assert_eq!(got.len(), PROCESSES * TASKS);
    assert!(got.iter().all(|(v, _)| *v == expected), "{got:?}");
    let mut ms: Vec<u64> = got.iter().map(|g| g.1).collect();
    ms.sort_unstable();
    eprintln!("async redb lease: loader ran once; call times (ms, sorted): {ms:?}");
}
