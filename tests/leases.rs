//! One computation per key across processes: 4 processes × 4 threads miss one key with a 300 ms
//! loader on a shared redb file, JSON file or Redis server, with `Freshness::lease`. The loader
//! appends a line to a file per run (O_APPEND: one line per run, whichever process), so the test
//! counts runs across processes. Then the leader is `kill -9`ed in the middle of its load: one
//! survivor computes once the lease has ended, and every survivor gets the value.
//!
//! The processes are this test binary run again with `BRAINCACHE_LEASE_CHILD` set (see
//! [`child`]).

#[cfg(feature = "redis")]
use braincache_core::testkit::servers as support;

#[cfg(feature = "memcached")]
use braincache_core::testkit::servers as memcached_support;

use braincache::core::Backend;
use braincache::{BrainCache, Freshness};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PROCESSES: usize = 4;
const THREADS: usize = 4;
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
    B::Codec: braincache::core::Codec,
{
    // All processes start together: sleep until the agreed time.
    let now = unix_millis();
    if start_at > now {
        std::thread::sleep(Duration::from_millis(start_at - now));
    }
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (cache, freshness, runs) = (cache.clone(), freshness.clone(), runs.to_owned());
            std::thread::spawn(move || {
                let started = Instant::now();
                let v: String = cache
                    .get_or_refresh(KEY, &freshness, move || {
                        let mut f = std::fs::OpenOptions::new()
                            .append(true)
                            .create(true)
                            .open(&runs)
                            .unwrap();
                        writeln!(f, "{}", std::process::id()).unwrap();
                        std::thread::sleep(LOADER);
                        format!("computed by {}", std::process::id())
                    })
                    .unwrap();
                (v, started.elapsed())
            })
        })
        .collect();
    let mut out = std::io::stdout().lock();
    for t in threads {
        let (v, took) = t.join().unwrap();
        writeln!(out, "got {v:?} {}", took.as_millis()).unwrap();
    }
    writeln!(out, "stats {:?}", cache.stats()).unwrap();
}

fn spawn(kind: &str, target: &str, runs: &Path, start_at: u64, lease: Duration) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads", "1"])
        .env("BRAINCACHE_LEASE_CHILD", kind)
        .env("BRAINCACHE_LEASE_TARGET", target)
        .env("BRAINCACHE_LEASE_RUNS", runs)
        .env("BRAINCACHE_LEASE_START", start_at.to_string())
        .env("BRAINCACHE_LEASE_MS", lease.as_millis().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The `got` lines of a child: (value, milliseconds the call took).
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
            // libtest's "test child ... " may precede the first line.
            let rest = &l[l.find("got \"")? + 4..];
            let (v, ms) = rest.rsplit_once(' ')?;
            Some((v.to_owned(), ms.parse().unwrap()))
        })
        .collect()
}

fn run_lines(runs: &Path) -> Vec<String> {
    std::fs::read_to_string(runs)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
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
    let lines = run_lines(&runs);
    assert_eq!(
        lines.len(),
        1,
        "{kind}: the loader ran {} times",
        lines.len()
    );
    let expected = format!("\"computed by {}\"", lines[0]);
    assert_eq!(got.len(), PROCESSES * THREADS);
    assert!(got.iter().all(|(v, _)| *v == expected), "{kind}: {got:?}");
    let mut ms: Vec<u64> = got.iter().map(|g| g.1).collect();
    ms.sort_unstable();
    eprintln!("{kind}: loader ran once; call times (ms, sorted): {ms:?}");
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
    let Some(server) = support::RedisServer::start_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    loader_runs_once("redis", &server.url(), dir.path());
    let cache = BrainCache::new(braincache::backend::RedisBackend::connect(&server.url()).unwrap());
    cache.clear().unwrap();
    leader_killed("redis", &server.url(), dir.path());
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
    let dir = tempfile::tempdir().unwrap();
    loader_runs_once("memcached", &server.url(), dir.path());
    let cache =
        BrainCache::new(braincache::backend::MemcachedBackend::connect(&server.url()).unwrap());
    cache.clear().unwrap();
    leader_killed("memcached", &server.url(), dir.path());
}
