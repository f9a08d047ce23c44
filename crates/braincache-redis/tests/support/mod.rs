//! A throwaway `redis-server` for tests: on a free loopback port, no persistence, killed by pid
//! when dropped.
//!
//! Shared by `crates/braincache-redis/tests/*.rs` and the facade's `tests/redis.rs` (through
//! `#[path]`), so it uses std only.
//!
//! When `redis-server` is not on `PATH`, [`RedisServer::start_or_skip`] prints why the test is
//! skipped and returns `None`, unless `BRAINCACHE_REQUIRE_REDIS=1` is set (as CI does), which
//! makes it a failure.

#![allow(dead_code)] // each test file uses a different part

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set to `1` to make a missing `redis-server` a test failure instead of a skip.
pub const REQUIRE_ENV: &str = "BRAINCACHE_REQUIRE_REDIS";

const STARTUP: Duration = Duration::from_secs(10);

/// A running `redis-server` child process.
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts a server on a free port, or prints a skip notice and returns `None` when
    /// `redis-server` is not installed (panics instead when [`REQUIRE_ENV`] is set).
    pub fn start_or_skip() -> Option<RedisServer> {
        if !installed_or_skip() {
            return None;
        }
        // A port found free can be taken by another test before the server binds it: retry.
        let mut last = None;
        for _ in 0..5 {
            match RedisServer::start_on(free_port()) {
                Ok(s) => return Some(s),
                Err(e) => last = Some(e),
            }
        }
        panic!("could not start redis-server: {last:?}");
    }

    /// Starts a server on `port` (to restart one on the same port) and waits until it answers
    /// `PING`.
    pub fn start_on(port: u16) -> Result<RedisServer, String> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn redis-server: {e}"))?;
        let mut server = RedisServer { child, port };
        let start = Instant::now();
        for _ in 0..1000 {
            if ping(port) {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("redis-server on port {port} exited: {status}"));
            }
            if start.elapsed() > STARTUP {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        server.kill();
        Err(format!(
            "redis-server on port {port} did not answer PING within {STARTUP:?}"
        ))
    }

    /// The port it listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL, `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it (SIGKILL, by pid) and reaps it. Idempotent.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal by name (`STOP`, `CONT`) to the server, through `sh -c kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("sh")
            .args(["-c", &format!("kill -{name} {}", self.pid())])
            .status()
            .expect("run sh -c kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// True when `redis-server` is installed. Otherwise prints a skip notice naming the test and
/// returns false, or panics when [`REQUIRE_ENV`] is set.
pub fn installed_or_skip() -> bool {
    if installed() {
        return true;
    }
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "redis-server not found on PATH, and {REQUIRE_ENV} is set: install the redis-server \
         package"
    );
    let test = std::thread::current()
        .name()
        .unwrap_or("redis test")
        .to_owned();
    // Straight to the file descriptor, in one write: the test harness captures `eprintln!` of
    // passing tests, and a skip must be seen.
    let line = format!(
        "{test}: skipped: redis-server not found (install the redis-server package; set \
         {REQUIRE_ENV}=1 to make this a failure)\n"
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    false
}

/// True when `redis-server` can be run.
pub fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// True when a server on `port` answers `PING` with `+PONG`.
pub fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
