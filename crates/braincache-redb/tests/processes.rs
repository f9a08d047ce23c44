//! Several real processes on one file: concurrent writers, `kill -9`, and cross-process
//! visibility.
//!
//! The child processes are this test binary itself, re-run on one `child_*` test (the harness
//! is in `support`).

mod support;

use braincache_core::{Backend, Record};
use braincache_redb::RedbBackend;
use std::io::BufRead;
use std::time::{Duration, Instant};
use support::{Peer, Rng, child_role, say};

/// No single wait in these tests may last longer than this.
const PATIENCE: Duration = Duration::from_secs(20);

fn rec(v: &str) -> Record {
    Record::new(v.as_bytes().to_vec(), None)
}

// ---------------------------------------------------------------------------------------------
// 4 processes × 2 threads

const PROCS: usize = 4;
const THREADS: usize = 2;
const PER_THREAD: usize = 30;

fn mp_key(p: usize, t: usize, n: usize) -> String {
    format!("p{p}-t{t}-{n}")
}

#[test]
fn four_processes_two_threads_share_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.redb");
    // Opened before the children, and read from, so it holds a snapshot from before their writes.
    let observer = RedbBackend::builder(&path)
        .snapshot_max_age(Duration::from_secs(3600))
        .build()
        .unwrap();
    assert_eq!(observer.get("p0-t0-0").unwrap(), None);

    let peers: Vec<Peer> = (0..PROCS)
        .map(|p| {
            Peer::spawn(
                "child_multi_process_writer",
                &path,
                &p.to_string(),
                PATIENCE,
            )
        })
        .collect();
    let mut acked = Vec::new();
    for peer in peers {
        let lines = peer.finish();
        assert!(lines.iter().any(|l| l == "VERIFIED"), "{lines:?}");
        acked.extend(
            lines
                .into_iter()
                .filter_map(|l| l.strip_prefix("ACK ").map(str::to_owned)),
        );
    }
    assert_eq!(acked.len(), PROCS * THREADS * PER_THREAD);
    // The observer process sees every other process's acknowledged writes.
    for key in &acked {
        assert_eq!(
            observer.get(key).unwrap().map(|r| r.value),
            Some(key.clone().into_bytes()),
            "{key}"
        );
    }
    assert_eq!(
        observer.len().unwrap(),
        PROCS * THREADS * PER_THREAD + PROCS
    );
}

#[test]
fn child_multi_process_writer() {
    let Some((path, arg)) = child_role("child_multi_process_writer") else {
        return;
    };
    let me: usize = arg.parse().unwrap();
    let b = RedbBackend::open(&path).unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let b = &b;
            s.spawn(move || {
                for n in 0..PER_THREAD {
                    let key = mp_key(me, t, n);
                    b.set(&key, rec(&key)).unwrap();
                    say(&format!("ACK {key}"));
                    // Another process's key: absent yet, or exactly its value.
                    let other = mp_key((me + 1) % PROCS, t, n);
                    if let Some(r) = b.get(&other).unwrap() {
                        assert_eq!(r.value, other.as_bytes());
                    }
                }
            });
        }
    });
    b.set(&format!("done-{me}"), rec("done")).unwrap();
    // Once a process's `done` key is visible, all its keys must be: they were acknowledged first.
    let start = Instant::now();
    let mut pending: Vec<usize> = (0..PROCS).filter(|p| *p != me).collect();
    while !pending.is_empty() {
        assert!(
            start.elapsed() < PATIENCE,
            "never saw done keys {pending:?}"
        );
        pending.retain(|p| b.get(&format!("done-{p}")).unwrap().is_none());
        for p in (0..PROCS).filter(|p| *p != me && !pending.contains(p)) {
            for t in 0..THREADS {
                for n in 0..PER_THREAD {
                    let key = mp_key(p, t, n);
                    assert_eq!(
                        b.get(&key).unwrap().map(|r| r.value),
                        Some(key.clone().into_bytes()),
                        "process {me} misses {key} after seeing done-{p}"
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    say("VERIFIED");
}

// ---------------------------------------------------------------------------------------------
// kill -9

const CRASH_ROUNDS: usize = 20;

#[test]
fn kill_9_at_random_points_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let mut rng = Rng::seeded();
    let mut acked: Vec<String> = Vec::new();
    for round in 0..CRASH_ROUNDS {
        let peer = Peer::spawn("child_crash_writer", &path, &round.to_string(), PATIENCE);
        // Even rounds kill while the child writes; odd rounds from its start, which may fall in
        // its open (and the crash recovery of the previous round's kill).
        if round % 2 == 0 {
            assert_eq!(peer.next(), "READY");
        }
        std::thread::sleep(Duration::from_millis(rng.below(60)));
        let lines = peer.kill9();
        acked.extend(
            lines
                .into_iter()
                .filter_map(|l| l.strip_prefix("ACK ").map(str::to_owned)),
        );

        // redb opens the file and finds it consistent.
        {
            let mut db = redb::Database::builder()
                .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
                .open(&path)
                .unwrap_or_else(|e| panic!("round {round}: open failed: {e}"));
            assert!(
                db.check_integrity()
                    .unwrap_or_else(|e| panic!("round {round}: {e}")),
                "round {round}: integrity check repaired the file"
            );
        }
        // Every acknowledged key is there.
        let b = RedbBackend::open(&path).unwrap();
        for key in &acked {
            assert_eq!(
                b.get(key).unwrap().map(|r| r.value),
                Some(key.clone().into_bytes()),
                "round {round}: acknowledged {key} is missing"
            );
        }
    }
    // The kills hit writers that had acknowledged writes.
    assert!(
        acked.len() > CRASH_ROUNDS,
        "only {} acknowledged",
        acked.len()
    );
}

#[test]
fn child_crash_writer() {
    let Some((path, round)) = child_role("child_crash_writer") else {
        return;
    };
    let b = RedbBackend::open(&path).unwrap();
    say("READY");
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2 {
            let (b, round) = (&b, &round);
            s.spawn(move || {
                for n in 0..100_000 {
                    if start.elapsed() > PATIENCE {
                        break;
                    }
                    let key = format!("r{round}-t{t}-{n}");
                    b.set(&key, rec(&key)).unwrap();
                    say(&format!("ACK {key}"));
                }
            });
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Visibility across processes

const ROUNDS: u64 = 200;

/// Each round: this process reads (so its snapshot is warm), the child sets a value and says so
/// over its stdout, this process's next `get` must return that value; then the other way round.
/// Both keep snapshots for an hour, so only the commit stamps can tell them about the writes.
#[test]
fn an_acknowledged_write_is_visible_to_another_open_process_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("visible.redb");
    let b = RedbBackend::builder(&path)
        .snapshot_max_age(Duration::from_secs(3600))
        .build()
        .unwrap();
    let mut peer = Peer::spawn("child_echo", &path, "", PATIENCE);
    assert_eq!(peer.next(), "READY");
    let value = |b: &RedbBackend| -> Option<u64> {
        b.get("k")
            .unwrap()
            .map(|r| String::from_utf8(r.value).unwrap().parse().unwrap())
    };
    for i in 0..ROUNDS {
        // Child writes, this process reads.
        let _warm = value(&b);
        peer.send(&format!("set {}", 2 * i));
        assert_eq!(peer.next(), format!("OK {}", 2 * i));
        assert_eq!(
            value(&b),
            Some(2 * i),
            "round {i}: the child's write is not visible"
        );
        // This process writes, the child reads (its snapshot is warm from its own write).
        b.set("k", rec(&(2 * i + 1).to_string())).unwrap();
        peer.send("get");
        assert_eq!(
            peer.next(),
            format!("VALUE {}", 2 * i + 1),
            "round {i}: the parent's write is not visible to the child"
        );
    }
    peer.send("quit");
    peer.finish();
}

#[test]
fn child_echo() {
    let Some((path, _)) = child_role("child_echo") else {
        return;
    };
    let b = RedbBackend::builder(&path)
        .snapshot_max_age(Duration::from_secs(3600))
        .build()
        .unwrap();
    say("READY");
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("set"), Some(v)) => {
                b.set("k", rec(v)).unwrap();
                // Warm this process's snapshot, so the next `get` must notice the parent's write.
                assert_eq!(b.get("k").unwrap().unwrap().value, v.as_bytes());
                say(&format!("OK {v}"));
            }
            (Some("get"), None) => {
                let v = b
                    .get("k")
                    .unwrap()
                    .map(|r| String::from_utf8(r.value).unwrap());
                say(&format!("VALUE {}", v.unwrap_or_default()));
            }
            _ => break,
        }
    }
}
