//! The size bound across processes: several writers on one bounded file, and `kill -9` of a
//! writer in the middle of evictions.
//!
//! Children are this test binary re-run on one `child_*` test (as in `processes.rs`).

mod support;

use braincache_core::{Backend, Record};
use braincache_redb::RedbBackend;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{Peer, Rng, child_role, real_usage, say};

/// No single wait in these tests may last longer than this.
const PATIENCE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------

/// The bound of these tests: 64 KiB, about 60 entries of 1 KiB.
const BOUND: u64 = 64 << 10;
const VALUE: usize = 1024;
/// Per thread: 4 processes x 2 threads x 85 x ~1 KiB is about 10x the bound.
const PER_THREAD: usize = 85;

fn bounded(path: &Path) -> RedbBackend {
    RedbBackend::builder(path).max_bytes(BOUND).build().unwrap()
}

#[test]
fn four_processes_two_threads_keep_one_file_within_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bounded.redb");
    drop(bounded(&path));
    let peers: Vec<Peer> = (0..4)
        .map(|p| Peer::spawn("child_bounded_writer", &path, &p.to_string(), PATIENCE))
        .collect();
    let mut acks = 0;
    for peer in peers {
        for line in peer.finish() {
            assert!(!line.starts_with("OVER"), "{line}");
            acks += usize::from(line.starts_with("ACK"));
        }
    }
    assert_eq!(acks, 4 * 2 * PER_THREAD);
    let b = bounded(&path);
    let u = b.usage().unwrap();
    assert!(u.bytes <= BOUND, "{u:?}");
    assert_eq!((u.bytes, u.entries), real_usage(&path));
    assert!(u.evictions as usize >= acks - 64, "{u:?}");
    drop(b);
    let again = RedbBackend::builder(&path).unbounded().build().unwrap();
    let v = again.usage().unwrap();
    assert_eq!(
        (v.bytes, v.entries, v.evictions),
        (u.bytes, u.entries, u.evictions),
        "a reopen reports the same usage"
    );
}

#[test]
fn child_bounded_writer() {
    let Some((path, me)) = child_role("child_bounded_writer") else {
        return;
    };
    let b = bounded(&path);
    std::thread::scope(|s| {
        for t in 0..2 {
            let (b, me) = (&b, &me);
            s.spawn(move || {
                for n in 0..PER_THREAD {
                    let key = format!("p{me}-t{t}-{n}");
                    b.set(&key, Record::new(vec![1; VALUE], None)).unwrap();
                    // After the acknowledgement the file holds this commit (and maybe later
                    // ones): every one of them left it within the bound.
                    let bytes = b.bytes().unwrap();
                    if bytes > BOUND {
                        say(&format!("OVER {bytes} after {key}"));
                    }
                    say(&format!("ACK {key}"));
                }
            });
        }
    });
}

const CRASH_ROUNDS: usize = 20;

#[test]
fn kill_9_during_evictions_leaves_the_file_within_bound_and_its_bookkeeping_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let mut rng = Rng::seeded();
    let mut killed_mid_eviction = 0;
    let mut evictions_before = 0;
    for round in 0..CRASH_ROUNDS {
        let peer = Peer::spawn("child_evicting_writer", &path, &round.to_string(), PATIENCE);
        assert_eq!(peer.next(), "READY");
        // Kill once the file is full (about 60 entries; the first round fills it), so that
        // every commit evicts, at a random point of a later write.
        let wait_for = if round == 0 { 30 } else { 1 } + rng.below(30);
        let mut last = None;
        for _ in 0..wait_for {
            last = peer.next().strip_prefix("ACK ").map(str::to_owned);
        }
        std::thread::sleep(Duration::from_millis(rng.below(10)));
        let lines = peer.kill9();
        if let Some(l) = lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("ACK ").map(str::to_owned))
        {
            last = Some(l);
        }
        let b = RedbBackend::builder(&path)
            .max_bytes(BOUND)
            .check_integrity_on_open()
            .build()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let u = b.usage().unwrap();
        assert_eq!(
            (u.bytes, u.entries),
            real_usage(&path),
            "round {round}: bookkeeping differs from the entries"
        );
        assert!(u.bytes <= BOUND, "round {round}: {u:?}");
        if let Some(key) = last {
            killed_mid_eviction += usize::from(u.evictions > evictions_before);
            evictions_before = u.evictions;
            assert!(
                b.get(&key).unwrap().is_some(),
                "round {round}: the last acknowledged write {key} is missing"
            );
        }
    }
    assert_eq!(killed_mid_eviction, CRASH_ROUNDS);
}

#[test]
fn child_evicting_writer() {
    let Some((path, round)) = child_role("child_evicting_writer") else {
        return;
    };
    let b = bounded(&path);
    say("READY");
    let start = Instant::now();
    for n in 0..1_000_000 {
        if start.elapsed() > Duration::from_secs(10) {
            break;
        }
        let key = format!("r{round}-{n}");
        if n % 3 == 0 {
            // A batch: several evictions in one transaction.
            let batch = (0..5)
                .map(|i| (format!("{key}-{i}"), Record::new(vec![2; VALUE], None)))
                .collect();
            b.set_many(batch).unwrap();
            say(&format!("ACK {key}-4"));
        } else {
            b.set(&key, Record::new(vec![3; VALUE], None)).unwrap();
            say(&format!("ACK {key}"));
        }
    }
}
