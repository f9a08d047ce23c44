//! The size bound across processes: several writers on one bounded file, and `kill -9` of a
//! writer in the middle of evictions.
//!
//! Children are this test binary re-run on one `child_*` test (as in `processes.rs`).

use braincache_core::{Backend, Record};
use braincache_redb::RedbBackend;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ROLE: &str = "BRAINCACHE_REDB_ROLE";
const PATH: &str = "BRAINCACHE_REDB_PATH";
const ARG: &str = "BRAINCACHE_REDB_ARG";
/// No single wait in these tests may last longer than this.
const PATIENCE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Harness

/// A child process and its stdout lines (the part after `@@`), read on a thread.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Peer {
    fn spawn(child_test: &str, path: &Path, arg: &str) -> Peer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                child_test,
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(ROLE, child_test)
            .env(PATH, path)
            .env(ARG, arg)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find("@@")
                    && tx.send(line[i + 2..].to_owned()).is_err()
                {
                    break;
                }
            }
        });
        Peer {
            child,
            stdin,
            lines,
            reader: Some(reader),
        }
    }

    /// The next protocol line; panics after [`PATIENCE`].
    fn next(&self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .expect("the child process did not answer in time")
    }

    /// Waits for the child to exit successfully; returns every line it printed that was not
    /// read yet.
    fn finish(mut self) -> Vec<String> {
        drop(self.stdin.take());
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > PATIENCE {
                let _ = self.child.kill();
                panic!("child process did not exit in time");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(status.success(), "child process failed: {status}");
        self.drain()
    }

    /// SIGKILLs the child; returns every line it printed that was not read yet.
    fn kill9(mut self) -> Vec<String> {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
        self.drain()
    }

    fn drain(&mut self) -> Vec<String> {
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        self.lines.try_iter().collect()
    }
}

/// The child's side: its role's arguments, when this process is a child for `test`.
fn child_role(test: &str) -> Option<(PathBuf, String)> {
    (std::env::var(ROLE).ok()? == test).then(|| {
        (
            PathBuf::from(std::env::var_os(PATH).unwrap()),
            std::env::var(ARG).unwrap_or_default(),
        )
    })
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "@@{line}").unwrap();
    out.flush().unwrap();
}

/// A small xorshift generator, so runs differ without a dependency.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        Rng(u64::from(t.subsec_nanos()) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

// ---------------------------------------------------------------------------------------------

/// The bound of these tests: 64 KiB, about 60 entries of 1 KiB.
const BOUND: u64 = 64 << 10;
const VALUE: usize = 1024;
/// Per thread: 4 processes x 2 threads x 85 x ~1 KiB is about 10x the bound.
const PER_THREAD: usize = 85;

fn bounded(path: &Path) -> RedbBackend {
    RedbBackend::builder(path).max_bytes(BOUND).build().unwrap()
}

/// The real sum over the entries, as the bound counts them.
fn real_usage(path: &Path) -> (u64, u64) {
    let entries = RedbBackend::read_entries(path).unwrap();
    let bytes = entries
        .iter()
        .map(|(k, r)| {
            // What the record header takes (the codec id and deadline it states).
            let header = braincache_core::wire::Header::of(r).as_bytes().len();
            (k.len() + header + r.value.len()) as u64
        })
        .sum();
    (bytes, entries.len() as u64)
}

#[test]
fn four_processes_two_threads_keep_one_file_within_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bounded.redb");
    drop(bounded(&path));
    let peers: Vec<Peer> = (0..4)
        .map(|p| Peer::spawn("child_bounded_writer", &path, &p.to_string()))
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
        let peer = Peer::spawn("child_evicting_writer", &path, &round.to_string());
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
