//! Write-behind (`RedbBackendBuilder::write_behind`): read-your-writes in this process, other
//! processes after the commit, `flush`/`close`/drop commit at once, and a `kill -9` loses at
//! most the uncommitted tail of the writes, never the file.
//!
//! The child process is this test binary itself, re-run on `child_write_behind_writer` with
//! `BRAINCACHE_REDB_ROLE` set; without it that test returns at once.

use braincache_core::{Backend, Record, Timestamp};
use braincache_redb::RedbBackend;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROLE: &str = "BRAINCACHE_REDB_ROLE";
const PATH: &str = "BRAINCACHE_REDB_PATH";
/// No single wait in these tests may last longer than this.
const PATIENCE: Duration = Duration::from_secs(20);
/// Long enough that nothing commits by itself while a test runs.
const NEVER: Duration = Duration::from_secs(3600);

fn rec(v: &str) -> Record {
    Record::new(v.as_bytes().to_vec(), None)
}

fn value(b: &RedbBackend, key: &str) -> Option<String> {
    b.get(key)
        .unwrap()
        .map(|r| String::from_utf8(r.value).unwrap())
}

fn behind(path: &Path, interval: Duration) -> RedbBackend {
    RedbBackend::builder(path)
        .write_behind(interval)
        .build()
        .unwrap()
}

/// Two handles on one file in one process work like two processes (own writer thread, own
/// snapshots, commits seen through the stamp file only).
#[test]
fn writes_are_seen_here_at_once_and_elsewhere_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let w = behind(&path, NEVER);
    let other = RedbBackend::open(&path).unwrap();
    let commits = w.commits();

    w.set("a", rec("1")).unwrap();
    w.set_many(vec![("b".into(), rec("2")), ("c".into(), rec("3"))])
        .unwrap();
    assert_eq!(value(&w, "a").as_deref(), Some("1"));
    assert_eq!(
        w.get_many(&["a", "b", "c", "d"])
            .unwrap()
            .into_iter()
            .map(|r| r.is_some())
            .collect::<Vec<_>>(),
        [true, true, true, false]
    );
    assert_eq!(w.len().unwrap(), 3);
    // Nothing committed yet: the other handle sees nothing.
    assert_eq!(w.commits(), commits);
    assert_eq!(value(&other, "a"), None);
    assert_eq!(other.len().unwrap(), 0);

    w.flush().unwrap();
    // One round: the three writes in one commit.
    assert_eq!(w.commits(), commits + 1);
    assert_eq!(value(&other, "a").as_deref(), Some("1"));
    assert_eq!(value(&other, "c").as_deref(), Some("3"));
    assert_eq!(value(&w, "b").as_deref(), Some("2"));
    assert_eq!(w.len().unwrap(), 3);
}

#[test]
fn deletes_and_clears_are_in_the_overlay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let w = behind(&path, NEVER);
    let other = RedbBackend::open(&path).unwrap();
    for k in ["a", "b", "c"] {
        w.set(k, rec(k)).unwrap();
    }
    w.flush().unwrap();

    assert!(w.delete("a").unwrap());
    assert!(!w.delete("a").unwrap(), "already deleted in the overlay");
    assert!(!w.delete("zz").unwrap());
    assert_eq!(value(&w, "a"), None);
    assert_eq!(w.len().unwrap(), 2);
    assert_eq!(w.delete_many(&["b", "b", "a", "nope"]).unwrap(), 1);
    assert_eq!(w.len().unwrap(), 1);
    assert_eq!(
        value(&other, "a").as_deref(),
        Some("a"),
        "not committed yet"
    );

    w.set("a", rec("again")).unwrap();
    assert_eq!(value(&w, "a").as_deref(), Some("again"));
    assert_eq!(w.len().unwrap(), 2);

    w.clear().unwrap();
    assert_eq!(value(&w, "c"), None, "the pending clear hides the snapshot");
    assert_eq!(w.len().unwrap(), 0);
    assert_eq!(w.next_expiry().unwrap(), None);
    let soon = Timestamp::now() + Duration::from_secs(60);
    w.set("d", Record::new(b"d".to_vec(), Some(soon))).unwrap();
    assert_eq!(w.len().unwrap(), 1);
    assert_eq!(w.next_expiry().unwrap(), Some(soon));
    assert_eq!(
        value(&other, "c").as_deref(),
        Some("c"),
        "not committed yet"
    );

    w.flush().unwrap();
    for k in ["a", "b", "c"] {
        assert_eq!(value(&other, k), None, "{k}");
        assert_eq!(value(&w, k), None, "{k}");
    }
    assert_eq!(value(&other, "d").as_deref(), Some("d"));
    assert_eq!(other.len().unwrap(), 1);
    assert_eq!(other.next_expiry().unwrap(), Some(soon));
}

#[test]
fn the_interval_commits_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let w = behind(&path, Duration::from_millis(20));
    let other = RedbBackend::open(&path).unwrap();
    let commits = w.commits();
    for i in 0..50 {
        w.set(&format!("k{i}"), rec("v")).unwrap();
    }
    let start = Instant::now();
    while other.len().unwrap() < 50 {
        assert!(start.elapsed() < PATIENCE, "never committed");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Group commit: fewer commits than writes (usually one or two).
    assert!(
        w.commits() - commits < 10,
        "{} commits",
        w.commits() - commits
    );
}

#[test]
fn drop_and_close_commit_what_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let w = behind(&path, NEVER);
    w.set("dropped", rec("1")).unwrap();
    drop(w);
    let w = behind(&path, NEVER);
    assert_eq!(value(&w, "dropped").as_deref(), Some("1"));
    w.set("closed", rec("2")).unwrap();
    w.close().unwrap();
    assert_eq!(
        RedbBackend::read_entries(&path)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>(),
        ["closed", "dropped"]
    );
}

#[test]
fn purge_commits_the_queue_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let w = behind(&path, NEVER);
    w.set("old", Record::new(vec![1], Some(Timestamp::EPOCH)))
        .unwrap();
    w.set("new", rec("2")).unwrap();
    assert_eq!(w.purge_expired(Timestamp::now()).unwrap(), 1);
    assert_eq!(value(&w, "old"), None);
    assert_eq!(w.len().unwrap(), 1);
}

/// A child writes keys `0, 1, 2, …` in order with write-behind, flushing every 50 and saying
/// which were flushed; this process kills it with SIGKILL. The file must open and pass redb's
/// integrity check, hold every flushed key, and hold a prefix of the sequence (commits are in
/// order: only the tail is lost).
#[test]
fn kill_9_loses_at_most_the_uncommitted_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    for round in 0..4u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_write_behind_writer",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(ROLE, "child_write_behind_writer")
            .env(PATH, &path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Kept open until the kill: a child writing to a closed pipe would fail and exit
        // (dropping its backend, which commits the tail) before the kill.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut flushed = 0u64;
        let start = Instant::now();
        // Kill after a few flushes, at a point that moves from round to round.
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(n) = line.split("@@FLUSHED ").nth(1) {
                flushed = n.trim().parse().unwrap();
                if flushed >= 200 + 50 * round || start.elapsed() > PATIENCE {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(3 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        drop(lines);
        assert!(flushed > 0, "round {round}: the child flushed nothing");

        {
            let mut db = redb::Database::builder()
                .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
                .open(&path)
                .unwrap_or_else(|e| panic!("round {round}: open failed: {e}"));
            assert!(
                db.check_integrity().unwrap(),
                "round {round}: the integrity check repaired the file"
            );
        }
        let b = RedbBackend::open(&path).unwrap();
        let present: Vec<u64> = RedbBackend::read_entries(&path)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k.parse().unwrap())
            .collect();
        let mut sorted = present.clone();
        sorted.sort_unstable();
        let n = sorted.len() as u64;
        assert!(
            n >= flushed,
            "round {round}: {n} keys, {flushed} were flushed"
        );
        assert_eq!(
            sorted,
            (0..n).collect::<Vec<_>>(),
            "round {round}: not a prefix"
        );
        b.clear().unwrap();
    }
}

#[test]
fn child_write_behind_writer() {
    if std::env::var(ROLE).ok().as_deref() != Some("child_write_behind_writer") {
        return;
    }
    let path = PathBuf::from(std::env::var_os(PATH).unwrap());
    let b = behind(&path, Duration::from_millis(2));
    let start = Instant::now();
    let mut out = std::io::stdout();
    for n in 0u64..1_000_000 {
        if start.elapsed() > PATIENCE {
            break;
        }
        b.set(&n.to_string(), rec("v")).unwrap();
        if (n + 1) % 50 == 0 {
            b.flush().unwrap();
            writeln!(out, "@@FLUSHED {}", n + 1).unwrap();
            out.flush().unwrap();
        }
    }
}

/// Another real process: it sets a key with write-behind (an hour-long interval) and says so;
/// this process does not see it until the child flushes, then sees it at once. Then the child
/// sets a second key through a handle with a 10 ms interval and never flushes: this process
/// sees it once the interval's commit is done.
#[test]
fn another_process_sees_the_writes_after_flush_and_after_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let here = RedbBackend::open(&path).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_write_behind_peer",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE, "child_write_behind_peer")
        .env(PATH, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| l.unwrap())
        .filter_map(|l| l.split("@@").nth(1).map(str::to_owned));
    assert_eq!(lines.next().as_deref(), Some("QUEUED"));
    // Queued in the child, read there (it checked), not committed: not here.
    assert_eq!(value(&here, "queued"), None);
    writeln!(stdin, "flush").unwrap();
    stdin.flush().unwrap();
    assert_eq!(lines.next().as_deref(), Some("FLUSHED"));
    assert_eq!(value(&here, "queued").as_deref(), Some("1"));
    assert_eq!(lines.next().as_deref(), Some("SOON"));
    let start = Instant::now();
    while value(&here, "soon").is_none() {
        assert!(start.elapsed() < PATIENCE, "the interval never committed");
        std::thread::sleep(Duration::from_millis(2));
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn child_write_behind_peer() {
    if std::env::var(ROLE).ok().as_deref() != Some("child_write_behind_peer") {
        return;
    }
    let path = PathBuf::from(std::env::var_os(PATH).unwrap());
    let say = |line: &str| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "@@{line}").unwrap();
        out.flush().unwrap();
    };
    let slow = behind(&path, NEVER);
    slow.set("queued", rec("1")).unwrap();
    assert_eq!(value(&slow, "queued").as_deref(), Some("1"));
    say("QUEUED");
    let mut cmd = String::new();
    std::io::stdin().read_line(&mut cmd).unwrap();
    assert_eq!(cmd.trim(), "flush");
    slow.flush().unwrap();
    say("FLUSHED");
    drop(slow);
    let fast = behind(&path, Duration::from_millis(10));
    fast.set("soon", rec("2")).unwrap();
    say("SOON");
    // Wait for the parent to close stdin, without flushing: only the interval commits.
    let _ = std::io::stdin().read_line(&mut cmd);
}

/// The async path queues in the same overlay: async and blocking writes stay in order.
#[cfg(feature = "async")]
#[tokio::test]
async fn async_writes_go_through_the_overlay() {
    use braincache_core::AsyncBackend;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let w = Arc::new(behind(&path, NEVER));
    let other = RedbBackend::open(&path).unwrap();
    w.set_async("a", rec("1")).await.unwrap();
    w.set("b", rec("2")).unwrap();
    assert!(w.delete_async("b").await.unwrap());
    assert_eq!(
        w.get_async("a").await.unwrap().map(|r| r.value),
        Some(b"1".to_vec())
    );
    assert_eq!(value(&w, "b"), None);
    assert_eq!(value(&other, "a"), None, "not committed yet");
    w.flush().unwrap();
    assert_eq!(value(&other, "a").as_deref(), Some("1"));
    w.clear_async().await.unwrap();
    assert_eq!(value(&w, "a"), None);
    assert_eq!(
        value(&other, "a").as_deref(),
        Some("1"),
        "not committed yet"
    );
    w.flush().unwrap();
    assert_eq!(value(&other, "a"), None);
}
