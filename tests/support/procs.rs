//! Several processes on one store: a test binary runs itself again as children (one test name,
//! told what to do through environment variables), starts them at one wall-clock time, and
//! reads back what each printed.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, the time children agree to start at.
pub fn unix_millis() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// How long until `start_at` (zero when it is past).
pub fn until(start_at: u64) -> Duration {
    Duration::from_millis(start_at.saturating_sub(unix_millis()))
}

/// Runs this test binary's test `test` alone in a child, with `envs`, its stdout piped.
pub fn spawn_test(test: &str, envs: &[(&str, String)]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// A loader's run, seen from every process: appends this process's id to `runs` (O_APPEND: one
/// line per run, whichever process) and returns the value it computes.
pub fn record_run(runs: &Path) -> String {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(runs)
        .unwrap();
    writeln!(f, "{}", std::process::id()).unwrap();
    format!("computed by {}", std::process::id())
}

/// The runs recorded in `runs`: one process id per line.
pub fn run_lines(runs: &Path) -> Vec<String> {
    std::fs::read_to_string(runs)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Prints, in a child, one `got <value> <ms>` line per call and the cache's stats.
pub fn print_results(
    got: impl IntoIterator<Item = (String, Duration)>,
    stats: impl std::fmt::Debug,
) {
    let mut out = std::io::stdout().lock();
    for (v, took) in got {
        writeln!(out, "got {v:?} {}", took.as_millis()).unwrap();
    }
    writeln!(out, "stats {stats:?}").unwrap();
}

/// The `got` lines of a child: (value, milliseconds the call took).
pub fn results(child: Child) -> Vec<(String, u64)> {
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

/// Checks that the loader ran once (`runs`) and that all `calls` callers got its value; prints
/// the call times.
pub fn assert_loader_ran_once(what: &str, runs: &Path, got: &[(String, u64)], calls: usize) {
    let lines = run_lines(runs);
    assert_eq!(
        lines.len(),
        1,
        "{what}: the loader ran {} times",
        lines.len()
    );
    let expected = format!("\"computed by {}\"", lines[0]);
    assert_eq!(got.len(), calls);
    assert!(got.iter().all(|(v, _)| *v == expected), "{what}: {got:?}");
    let mut ms: Vec<u64> = got.iter().map(|g| g.1).collect();
    ms.sort_unstable();
    eprintln!("{what}: loader ran once; call times (ms, sorted): {ms:?}");
}
