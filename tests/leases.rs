//! One computation per key across processes: 4 processes × 4 threads miss one key with a 300 ms
//! loader on a shared redb file, JSON file or Redis server, with `Freshness::lease`. The loader
//! appends a line to a file per run (O_APPEND: one line per run, whichever process), so the test
//! counts runs across processes. Then the leader is `kill -9`ed in the middle of its load: one
//! survivor computes once the lease has ended, and every survivor gets the value.
//!
//! The processes are this test binary run again with `BRAINCACHE_LEASE_CHILD` set (see
//! [`child`]).

mod support;

#[cfg(feature = "redis")]
#[path = "../crates/braincache-redis/tests/support/mod.rs"]
mod redis_support;

#[cfg(feature = "memcached")]
#[path = "../crates/braincache-memcached/tests/support/mod.rs"]
mod memcached_support;

use braincache::backend::Backend;
use braincache::{BrainCache, Freshness};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};
use support::procs::{
    assert_loader_ran_once, print_results, record_run, results, run_lines, spawn_test, unix_millis,
    until,
};

const PROCESSES: usize = 4;
const THREADS: usize = 4;
const LOADER: Duration = Duration::from_millis(300);
const KEY: &str = "hot";

/// Runs in a child process: opens the store named by the environment, starts 4 threads at the
/// agreed wall-clock time, and prints one `got <value> <ms>` line per thread.
#[test]
fn child() {
    let Ok(kind) = std::env::var("BRAINCACHE_LEASE_CHILD") else {
        return;
    };
    let target = std::env::var("BRAINCACHE_LEASE_TARGET").unwrap();
    let runs = PathBuf::from(std::env::var("BRAINCACHE_LEASE_RUNS").unwrap());
    let start_at: u64 = std::env::var("BRAINCACHE_LEASE_START")
        .unwrap()
        .parse()
        .unwrap();
    let lease: u64 = std::env::var("BRAINCACHE_LEASE_MS")
        .unwrap()
        .parse()
        .unwrap();
    let freshness = Freshness::new(Duration::from_secs(600)).lease(Duration::from_millis(lease));
    match kind.as_str() {
        "redb" => run_child(
            BrainCache::new(braincache::backend::RedbBackend::open(&target).unwrap()),
            &freshness,
            &runs,
            start_at,
        ),
        "file" => run_child(
            BrainCache::new(braincache::backend::FileBackend::open(&target).unwrap()),
            &freshness,
            &runs,
            start_at,
        ),
        #[cfg(feature = "redis")]
        "redis" => run_child(
            BrainCache::new(braincache::backend::RedisBackend::connect(&target).unwrap()),
            &freshness,
            &runs,
            start_at,
        ),
        #[cfg(feature = "memcached")]
        "memcached" => run_child(
            BrainCache::new(braincache::backend::MemcachedBackend::connect(&target).unwrap()),
            &freshness,
            &runs,
            start_at,
        ),
        other => panic!("unknown store {other}"),
    }
}

fn run_child<B: Backend>(cache: BrainCache<B>, freshness: &Freshness, runs: &Path, start_at: u64)
where
    B::Codec: braincache::base::Codec,
{
    // All processes start together: sleep until the agreed time.
    std::thread::sleep(until(start_at));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (cache, freshness, runs) = (cache.clone(), freshness.clone(), runs.to_owned());
            std::thread::spawn(move || {
                let started = Instant::now();
                let v: String = cache
                    .get_or_refresh(KEY, &freshness, move || {
                        let v = record_run(&runs);
                        std::thread::sleep(LOADER);
                        v
                    })
                    .unwrap();
                (v, started.elapsed())
            })
        })
        .collect();
    let got: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    print_results(got, cache.stats());
}

fn spawn(kind: &str, target: &str, runs: &Path, start_at: u64, lease: Duration) -> Child {
    spawn_test(
        "child",
        &[
            ("BRAINCACHE_LEASE_CHILD", kind.to_owned()),
            ("BRAINCACHE_LEASE_TARGET", target.to_owned()),
            ("BRAINCACHE_LEASE_RUNS", runs.display().to_string()),
            ("BRAINCACHE_LEASE_START", start_at.to_string()),
            ("BRAINCACHE_LEASE_MS", lease.as_millis().to_string()),
        ],
    )
}

/// 16 callers in 4 processes: the loader runs once, everyone gets its value.
fn loader_runs_once(kind: &str, target: &str, dir: &Path) {
    let runs = dir.join(format!("{kind}-runs.log"));
    let start_at = unix_millis() + 1_500; // time for the processes to start
    let lease = Duration::from_secs(10);
    let children: Vec<Child> = (0..PROCESSES)
        .map(|_| spawn(kind, target, &runs, start_at, lease))
        .collect();
    let got: Vec<(String, u64)> = children.into_iter().flat_map(results).collect();
    assert_loader_ran_once(kind, &runs, &got, PROCESSES * THREADS);
}

/// The leader is killed during its load: after its lease ends another process computes, and
/// every survivor gets that value.
fn leader_killed(kind: &str, target: &str, dir: &Path) {
    let runs = dir.join(format!("{kind}-killed-runs.log"));
    let start_at = unix_millis() + 1_500;
    let lease = Duration::from_millis(1_500);
    let mut children: Vec<Child> = (0..PROCESSES)
        .map(|_| spawn(kind, target, &runs, start_at, lease))
        .collect();
    // Wait (bounded) for the first run to start, and kill -9 the process running it.
    let end = Instant::now() + Duration::from_secs(30);
    let leader: u32 = loop {
        if let Some(first) = run_lines(&runs).first() {
            break first.parse().unwrap();
        }
        assert!(Instant::now() < end, "{kind}: no loader started");
        std::thread::sleep(Duration::from_millis(2));
    };
    let pos = children.iter().position(|c| c.id() == leader).unwrap();
    let mut victim = children.remove(pos);
    victim.kill().unwrap(); // SIGKILL
    let _ = victim.wait();
    let got: Vec<(String, u64)> = children.into_iter().flat_map(results).collect();
    let lines = run_lines(&runs);
    assert_eq!(lines.len(), 2, "{kind}: runs {lines:?}");
    let expected = format!("\"computed by {}\"", lines[1]);
    assert_eq!(got.len(), (PROCESSES - 1) * THREADS);
    assert!(got.iter().all(|(v, _)| *v == expected), "{kind}: {got:?}");
    let slowest = got.iter().map(|g| g.1).max().unwrap();
    eprintln!(
        "{kind}: leader {leader} killed; survivors got the value after at most {slowest} ms \
         (lease {} ms + loader {} ms)",
        lease.as_millis(),
        LOADER.as_millis()
    );
    // Lease + loader, with room for a loaded machine (processes start, poll, fsync).
    let bound = lease + LOADER + Duration::from_secs(3);
    assert!(
        u128::from(slowest) <= bound.as_millis(),
        "{kind}: {slowest} ms"
    );
}

/// Both scenarios on the server at `url`, emptied by `clear` between them.
#[cfg(any(feature = "redis", feature = "memcached"))]
fn on_a_server(kind: &str, url: &str, clear: impl FnOnce()) {
    let dir = tempfile::tempdir().unwrap();
    loader_runs_once(kind, url, dir.path());
    clear();
    leader_killed(kind, url, dir.path());
}

#[test]
fn redb_one_computation_across_processes() {
    if std::env::var_os("BRAINCACHE_LEASE_CHILD").is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.redb");
    drop(braincache::backend::RedbBackend::open(&path).unwrap());
    loader_runs_once("redb", path.to_str().unwrap(), dir.path());
    let path = dir.path().join("killed.redb");
    drop(braincache::backend::RedbBackend::open(&path).unwrap());
    leader_killed("redb", path.to_str().unwrap(), dir.path());
}

#[test]
fn file_one_computation_across_processes() {
    if std::env::var_os("BRAINCACHE_LEASE_CHILD").is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    loader_runs_once("file", path.to_str().unwrap(), dir.path());
    let path = dir.path().join("killed.json");
    leader_killed("file", path.to_str().unwrap(), dir.path());
}

#[cfg(feature = "redis")]
#[test]
fn redis_one_computation_across_processes() {
    if std::env::var_os("BRAINCACHE_LEASE_CHILD").is_some() {
        return;
    }
    let Some(server) = redis_support::RedisServer::start_or_skip() else {
        return;
    };
    on_a_server("redis", &server.url(), || {
        BrainCache::new(braincache::backend::RedisBackend::connect(&server.url()).unwrap())
            .clear()
            .unwrap();
    });
}

#[cfg(feature = "memcached")]
#[test]
fn memcached_one_computation_across_processes() {
    if std::env::var_os("BRAINCACHE_LEASE_CHILD").is_some() {
        return;
    }
    let Some(server) = memcached_support::MemcachedServer::start_or_skip() else {
        return;
    };
    on_a_server("memcached", &server.url(), || {
        BrainCache::new(braincache::backend::MemcachedBackend::connect(&server.url()).unwrap())
            .clear()
            .unwrap();
    });
}
