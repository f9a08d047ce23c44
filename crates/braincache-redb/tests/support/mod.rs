//! What the redb backend's tests share: a harness for tests that run several real processes on
//! one file (`processes.rs`, `bound_processes.rs`), the size bound's reference count
//! (`real_usage`), and small file helpers.
//!
//! The child processes are the test binary itself, re-run on one `child_*` test with
//! `BRAINCACHE_REDB_ROLE` set to that test's name ([`Peer::spawn`]); without it those tests return
//! at once ([`child_role`]). Children speak a line protocol on stdout (every line starts with
//! `@@`, since libtest may print on the same line: [`say`]) and read commands on stdin.

#![allow(dead_code)] // each test file uses a different part

use braincache_core::{Backend, Record};
use braincache_redb::{RedbBackend, RedbBackendBuilder};
use redb::{Database, TableDefinition};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ROLE: &str = "BRAINCACHE_REDB_ROLE";
const PATH: &str = "BRAINCACHE_REDB_PATH";
const ARG: &str = "BRAINCACHE_REDB_ARG";

/// A child process and its stdout lines (the part after `@@`), read on a thread.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// No single wait on this child may last longer than this.
    patience: Duration,
}

impl Peer {
    /// Runs this test binary's test `child_test` alone in a child process, which finds `path`
    /// and `arg` with [`child_role`]. Waits on it (for a line, for its exit) fail after
    /// `patience`.
    pub fn spawn(child_test: &str, path: &Path, arg: &str, patience: Duration) -> Peer {
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
            patience,
        }
    }

    /// The next protocol line; panics after the patience given to [`Peer::spawn`].
    pub fn next(&self) -> String {
        self.lines
            .recv_timeout(self.patience)
            .expect("the child process did not answer in time")
    }

    /// Sends one command line to the child's stdin.
    pub fn send(&mut self, cmd: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for the child to exit successfully; returns every line it printed that was not
    /// read yet.
    pub fn finish(mut self) -> Vec<String> {
        drop(self.stdin.take());
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > self.patience {
                let _ = self.child.kill();
                panic!("child process did not exit in time");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(status.success(), "child process failed: {status}");
        self.drain()
    }

    /// SIGKILLs the child; returns every line it printed that was not read yet.
    pub fn kill9(mut self) -> Vec<String> {
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
pub fn child_role(test: &str) -> Option<(PathBuf, String)> {
    (std::env::var(ROLE).ok()? == test).then(|| {
        (
            PathBuf::from(std::env::var_os(PATH).unwrap()),
            std::env::var(ARG).unwrap_or_default(),
        )
    })
}

/// Prints one protocol line (`@@line`) for the parent, at once.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "@@{line}").unwrap();
    out.flush().unwrap();
}

/// A small xorshift generator, so runs differ without a dependency.
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock's nanoseconds.
    pub fn seeded() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        Rng(u64::from(t.subsec_nanos()) | 1)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The real sum over the entries table: (bytes as the bound counts them, entries), for files
/// whose records all have today's header.
pub fn real_usage(path: &Path) -> (u64, u64) {
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

/// The sequence file beside a cache file (`<path>.seq`).
pub fn seq_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".seq");
    s.into()
}

/// Writes `version` as the format version of the braincache file at `path` (closed), as a
/// newer release of braincache would.
pub fn write_format_version(path: &Path, version: u64) {
    const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
    let db = Database::builder()
        .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
        .open(path)
        .unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(META)
        .unwrap()
        .insert("format_version", version)
        .unwrap();
    txn.commit().unwrap();
}

/// Writes `entries` into a new cache file at `path` through the backend, closes it, and returns
/// the file's bytes.
pub fn write_entries(path: &Path, entries: &[(String, Record)]) -> Vec<u8> {
    RedbBackend::open(path)
        .unwrap()
        .set_many(entries.to_vec())
        .unwrap();
    std::fs::read(path).unwrap()
}

/// `builder` in single-process mode when `single`, in the default multi-process mode otherwise
/// (for tests that run in both).
pub fn in_mode(builder: RedbBackendBuilder, single: bool) -> RedbBackendBuilder {
    if single {
        builder.single_process()
    } else {
        builder
    }
}

/// After `b.close()`: a read on `b`, which still lives, says `Closed`, and the file is free (an
/// exclusive open succeeds); returns that exclusive handle, for the caller to check what the
/// file holds.
pub fn closed_and_file_free(b: &RedbBackend, path: &Path) -> RedbBackend {
    assert!(matches!(
        b.get("k"),
        Err(braincache_core::Error::Closed {
            op: braincache_core::Operation::Get,
            ..
        })
    ));
    RedbBackend::builder(path).single_process().build().unwrap()
}
