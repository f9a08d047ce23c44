//! The "stampede" row: 4 processes × 8 threads read one hot key of a shared redb file whose TTL
//! ends every 100 ms, with a 20 ms loader. Reports loader runs per expiry and the p99 latency of
//! a call, for plain `get_or_insert_with` (the peer), `get_or_refresh` with a lease, and with
//! stale-while-revalidate plus a lease; and Python diskcache's `memoize_stampede` on the same
//! workload when it is installed.
//!
//! "A hit" is measured under the same load: the same 4 × 8 readers in the same run, on a key
//! that does not expire (mode `hit`), interleaved with the stale-while-revalidate runs so that
//! both see the same machine. The goal compares p99 with p99: on a loaded machine a call's tail
//! is mostly the scheduler's (32 readers on 2 cores), which a hit pays as much as a stale read;
//! the ratio to the hit's p50 is printed beside it.
//!
//! The key is written once, by the parent, just before the workers start, so the first calls
//! find a value as they would in a running service (otherwise every process's first call waits
//! for the loader and that start-up, not the stampede, sets the tail).
//!
//! The processes are this binary run again with `BRAINCACHE_STAMPEDE_WORKER` set (see
//! [`worker_main`]); each prints one latency in nanoseconds per line, then a line
//! `misses N` (its calls that found no value to serve: each waited for a loader).

use crate::Config;
use crate::report::{Better, Row};
use braincache::backend::RedbBackend;
use braincache::{BrainCache, Freshness};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PROCESSES: usize = 4;
const THREADS: usize = 8;
const TTL: Duration = Duration::from_millis(100);
const LOADER: Duration = Duration::from_millis(20);
/// Pause between one thread's calls: a steady read rate rather than a spin.
const PAUSE: Duration = Duration::from_millis(1);
const ENV: &str = "BRAINCACHE_STAMPEDE_WORKER";

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs a worker process when this binary was started as one; returns false otherwise.
pub fn worker_main() -> bool {
    let Ok(mode) = std::env::var(ENV) else {
        return false;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let path = var("BRAINCACHE_STAMPEDE_PATH");
    let runs = var("BRAINCACHE_STAMPEDE_RUNS");
    let start_at: u64 = var("BRAINCACHE_STAMPEDE_START").parse().unwrap_or(0);
    let millis: u64 = var("BRAINCACHE_STAMPEDE_MS").parse().unwrap_or(1_000);
    let cache = match RedbBackend::open(&path) {
        Ok(b) => BrainCache::new(b),
        Err(e) => {
            eprintln!("stampede worker: {e}");
            std::process::exit(2);
        }
    };
    let now = unix_millis();
    if start_at > now {
        std::thread::sleep(Duration::from_millis(start_at - now));
    }
    let end = Instant::now() + Duration::from_millis(millis);
    let freshness = freshness(&mode);
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (cache, freshness, runs) = (cache.clone(), freshness.clone(), runs.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                while Instant::now() < end {
                    let runs = runs.clone();
                    let load = move || {
                        if let Ok(mut f) = std::fs::OpenOptions::new()
                            .append(true)
                            .create(true)
                            .open(&runs)
                        {
                            let _ = writeln!(f, "{}", std::process::id());
                        }
                        std::thread::sleep(LOADER);
                        value()
                    };
                    let t = Instant::now();
                    let v: Result<Vec<u8>, _> = match &freshness {
                        Some(f) => cache.get_or_refresh("hot", f, load),
                        None => cache.get_or_insert_with("hot", TTL, load),
                    };
                    lat.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
                    if v.is_err() {
                        std::process::exit(3);
                    }
                    std::thread::sleep(PAUSE);
                }
                lat
            })
        })
        .collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for t in threads {
        for ns in t.join().unwrap_or_default() {
            let _ = writeln!(out, "{ns}");
        }
    }
    let _ = writeln!(out, "misses {}", cache.stats().misses);
    let _ = out.flush();
    true
}

/// The freshness of a mode (`None`: plain `get_or_insert_with`).
fn freshness(mode: &str) -> Option<Freshness> {
    let lease = Duration::from_secs(1);
    match mode {
        "lease" => Some(Freshness::new(TTL).lease(lease)),
        "swr" => Some(
            Freshness::new(TTL)
                .stale_while_revalidate(lease)
                .lease(lease),
        ),
        // The same options on a key that does not expire during the run: every call is a hit.
        "hit" => Some(
            Freshness::new(Duration::from_secs(3_600))
                .stale_while_revalidate(lease)
                .lease(lease),
        ),
        _ => None,
    }
}

fn value() -> Vec<u8> {
    vec![7u8; 64]
}

/// What one mode measured.
struct Measured {
    runs_per_expiry: f64,
    p50_us: f64,
    p99_us: f64,
    /// Calls that found no value to serve and waited for a loader (from the workers' stats).
    misses: u64,
    /// Calls that took at least as long as the loader.
    calls_over_loader: usize,
    calls: usize,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = (((sorted.len() - 1) as f64) * p).round() as usize;
    #[allow(clippy::cast_precision_loss)]
    let us = sorted[i] as f64 / 1e3;
    us
}

fn measure(dir: &Path, mode: &str, rep: usize, millis: u64) -> Option<Measured> {
    let path = dir.join(format!("{mode}-{rep}.redb"));
    let runs = dir.join(format!("{mode}-{rep}.runs"));
    // The value, stored before the workers start (not counted as a loader run): at the start it
    // is stale within the window (swr), fresh (hit) or expired (plain, lease: a first expiry).
    let warm = BrainCache::new(RedbBackend::open(&path).ok()?);
    match freshness(mode) {
        Some(f) => warm.get_or_refresh("hot", &f, value).map(drop),
        None => warm.set("hot", &value(), TTL),
    }
    .ok()?;
    drop(warm);
    let exe = std::env::current_exe().ok()?;
    let start_at = unix_millis() + 700;
    let children: Vec<_> = (0..PROCESSES)
        .filter_map(|_| {
            Command::new(&exe)
                .env(ENV, mode)
                .env("BRAINCACHE_STAMPEDE_PATH", &path)
                .env("BRAINCACHE_STAMPEDE_RUNS", &runs)
                .env("BRAINCACHE_STAMPEDE_START", start_at.to_string())
                .env("BRAINCACHE_STAMPEDE_MS", millis.to_string())
                .stdout(Stdio::piped())
                .spawn()
                .ok()
        })
        .collect();
    let mut lat: Vec<u64> = Vec::new();
    let mut misses = 0;
    for c in children {
        let out = c.wait_with_output().ok()?;
        if !out.status.success() {
            return None;
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            match line.strip_prefix("misses ") {
                Some(n) => misses += n.parse::<u64>().ok()?,
                None => lat.extend(line.parse::<u64>().ok()),
            }
        }
    }
    lat.sort_unstable();
    let loader_ns = u64::try_from(LOADER.as_nanos()).unwrap_or(u64::MAX);
    let n_runs = std::fs::read_to_string(&runs).map_or(0, |s| s.lines().count());
    #[allow(clippy::cast_precision_loss)]
    let expiries = millis as f64 / TTL.as_millis() as f64;
    #[allow(clippy::cast_precision_loss)]
    Some(Measured {
        runs_per_expiry: n_runs as f64 / expiries,
        p50_us: percentile(&lat, 0.5),
        p99_us: percentile(&lat, 0.99),
        misses,
        calls_over_loader: lat.iter().filter(|&&ns| ns >= loader_ns).count(),
        calls: lat.len(),
    })
}

/// The run of `runs` whose p99 is the median one.
fn median_p99(mut runs: Vec<Measured>) -> Option<Measured> {
    runs.sort_by(|a, b| a.p99_us.total_cmp(&b.p99_us));
    let mid = runs.len() / 2;
    runs.into_iter().nth(mid)
}

/// Python diskcache's `memoize_stampede` on the same workload (its own SQLite file).
fn diskcache(dir: &Path, millis: u64) -> Result<Measured, String> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/peers/diskcache_stampede.py");
    let importable = Command::new("python3")
        .args(["-c", "import diskcache"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !importable {
        return Err("python3 cannot import diskcache (pip install diskcache)".into());
    }
    let out = Command::new("python3")
        .arg(&script)
        .arg(dir.join("diskcache-stampede"))
        .args([PROCESSES, THREADS].map(|n| n.to_string()))
        .arg(millis.to_string())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let get = |k: &str| {
        v[k].as_f64()
            .ok_or_else(|| format!("no {k} in the script's output"))
    };
    Ok(Measured {
        runs_per_expiry: get("runs_per_expiry")?,
        p50_us: get("p50_us")?,
        p99_us: get("p99_us")?,
        misses: 0,
        calls_over_loader: 0,
        calls: 0,
    })
}

/// The "stampede" rows.
pub fn run(cfg: &Config, rows: &mut Vec<Row>) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let millis = if cfg.quick { 1_000 } else { 3_000 };
    let skip = |rows: &mut Vec<Row>, why: &str| {
        rows.push(
            Row::new(
                "stampede",
                f64::NAN,
                "-",
                f64::NAN,
                "-",
                None,
                Better::Lower,
            )
            .note(format!("skipped: {why}")),
        );
    };
    let (Some(plain), Some(lease)) = (
        measure(dir.path(), "plain", 0, millis),
        measure(dir.path(), "lease", 0, millis),
    ) else {
        skip(rows, "a worker process failed");
        return;
    };
    // Hit and stale-while-revalidate runs take turns, so that both meet the same machine.
    let (mut hits, mut swrs) = (Vec::new(), Vec::new());
    for rep in 0..cfg.reps {
        hits.extend(measure(dir.path(), "hit", rep, millis));
        swrs.extend(measure(dir.path(), "swr", rep, millis));
    }
    let all_swr = swrs
        .iter()
        .map(|m| format!("{:.1}", m.p99_us))
        .collect::<Vec<_>>();
    let all_hit = hits
        .iter()
        .map(|m| format!("{:.1}", m.p99_us))
        .collect::<Vec<_>>();
    let waited: u64 = swrs.iter().map(|m| m.misses).sum();
    let over: usize = swrs.iter().map(|m| m.calls_over_loader).sum();
    let calls: usize = swrs.iter().map(|m| m.calls).sum();
    let (Some(hit), Some(swr)) = (median_p99(hits), median_p99(swrs)) else {
        skip(rows, "a worker process failed");
        return;
    };
    let setup = format!(
        "redb, {PROCESSES} processes x {THREADS} threads, TTL 100 ms, 20 ms loader, {millis} ms"
    );
    rows.push(
        Row::new(
            "stampede: loader runs per expiry, lease",
            lease.runs_per_expiry,
            "get_or_insert_with",
            plain.runs_per_expiry,
            "runs/expiry",
            None,
            Better::Lower,
        )
        .note(format!("goal 1.0; {setup}")),
    );
    rows.push(
        Row::new(
            "stampede: loader runs per expiry, stale-while-revalidate + lease",
            swr.runs_per_expiry,
            "get_or_insert_with",
            plain.runs_per_expiry,
            "runs/expiry",
            None,
            Better::Lower,
        )
        .note(format!("goal 1.0; {setup}")),
    );
    rows.push(
        Row::new(
            "stampede: p99 call, stale-while-revalidate + lease, against a hit",
            swr.p99_us,
            "p99 of a hit under the same load",
            hit.p99_us,
            "µs",
            Some(10.0),
            Better::Lower,
        )
        .note(format!(
            "median of {} interleaved runs each, p99 per run: swr {} µs, hit {} µs; \
             p50 swr {:.2} µs, hit {:.2} µs; swr p99 / hit p50 {:.0}x; \
             calls that waited for a loader: {waited} misses, {over} of {calls} calls >= 20 ms",
            cfg.reps,
            all_swr.join(" "),
            all_hit.join(" "),
            swr.p50_us,
            hit.p50_us,
            swr.p99_us / hit.p50_us,
        )),
    );
    rows.push(
        Row::new(
            "stampede: p99 call, stale-while-revalidate + lease, against get_or_insert_with",
            swr.p99_us,
            "get_or_insert_with",
            plain.p99_us,
            "µs",
            None,
            Better::Lower,
        )
        .note(format!(
            "lease-only p99 {:.0} µs; get_or_insert_with p50 {:.1} µs",
            lease.p99_us, plain.p50_us
        )),
    );
    match diskcache(dir.path(), millis) {
        Ok(dc) => rows.push(
            Row::new(
                "stampede: loader runs per expiry, diskcache memoize_stampede",
                swr.runs_per_expiry,
                "diskcache memoize_stampede",
                dc.runs_per_expiry,
                "runs/expiry",
                None,
                Better::Lower,
            )
            .note(format!(
                "ours: stale-while-revalidate + lease; p99 ours {:.0} µs, diskcache {:.0} µs \
                 (p50 {:.0} µs)",
                swr.p99_us, dc.p99_us, dc.p50_us
            )),
        ),
        Err(why) => skip(rows, &format!("diskcache peer: {why}")),
    }
}
