//! A throwaway `memcached` for tests: on a free loopback port, killed by pid when dropped.
//!
//! Shared by this crate's tests (`tests/*.rs`, and its unit tests through `#[path]`), so it uses
//! std only.
//!
//! When `memcached` is not on `PATH`, [`MemcachedServer::start_or_skip`] prints why the test is
//! skipped and returns `None`, unless `BRAINCACHE_REQUIRE_MEMCACHED=1` is set (as CI does), which
//! makes it a failure.

#![allow(dead_code)] // each test file uses a different part

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set to `1` to make a missing `memcached` a test failure instead of a skip.
pub const REQUIRE_ENV: &str = "BRAINCACHE_REQUIRE_MEMCACHED";

const STARTUP: Duration = Duration::from_secs(10);

/// The item limit test servers run with (`-I 2m`), so 1 MiB values plus a header fit.
pub const TEST_ITEM_LIMIT: usize = 2 << 20;

/// A running `memcached` child process.
pub struct MemcachedServer {
    child: Child,
    port: u16,
}

impl MemcachedServer {
    /// Starts a server on a free port, or prints a skip notice and returns `None` when
    /// `memcached` is not installed (panics instead when [`REQUIRE_ENV`] is set).
    pub fn start_or_skip() -> Option<MemcachedServer> {
        if !installed_or_skip() {
            return None;
        }
        // A port found free can be taken by another test before the server binds it: retry.
        let mut last = None;
        for _ in 0..5 {
            match MemcachedServer::start_on(free_port()) {
                Ok(s) => return Some(s),
                Err(e) => last = Some(e),
            }
        }
        panic!("could not start memcached: {last:?}");
    }

    /// Starts a server on `port` (to restart one on the same port) and waits until it answers
    /// `version`.
    pub fn start_on(port: u16) -> Result<MemcachedServer, String> {
        let mut cmd = Command::new("memcached");
        cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"])
            .args(["-I", "2m", "-m", "64"]);
        if is_root() {
            cmd.args(["-u", "root"]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn memcached: {e}"))?;
        let mut server = MemcachedServer { child, port };
        let start = Instant::now();
        for _ in 0..1000 {
            if answers(port) {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("memcached on port {port} exited: {status}"));
            }
            if start.elapsed() > STARTUP {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        server.kill();
        Err(format!(
            "memcached on port {port} did not answer within {STARTUP:?}"
        ))
    }

    /// The port it listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL, `memcache://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("memcache://127.0.0.1:{}", self.port)
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

    /// Sends a raw text-protocol command and returns the reply up to `END\r\n` or one line.
    pub fn command(&self, line: &str) -> String {
        raw(self.port, line).unwrap_or_default()
    }
}

impl Drop for MemcachedServer {
    fn drop(&mut self) {
        // A stopped server would not die from SIGKILL any later, but resume it anyway.
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -CONT {} 2>/dev/null", self.pid())])
            .status();
        self.kill();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// True when `memcached` is installed. Otherwise prints a skip notice naming the test and
/// returns false, or panics when [`REQUIRE_ENV`] is set.
pub fn installed_or_skip() -> bool {
    if installed() {
        return true;
    }
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "memcached not found on PATH, and {REQUIRE_ENV} is set: install the memcached package"
    );
    let test = std::thread::current()
        .name()
        .unwrap_or("memcached test")
        .to_owned();
    let line = format!(
        "{test}: skipped: memcached not found (install the memcached package; set \
         {REQUIRE_ENV}=1 to make this a failure)\n"
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    false
}

/// True when `memcached` can be run.
pub fn installed() -> bool {
    Command::new("memcached")
        .arg("-V")
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

/// True when a server on `port` answers `version`.
pub fn answers(port: u16) -> bool {
    raw(port, "version").is_some_and(|r| r.starts_with("VERSION"))
}

fn raw(port: u16, line: &str) -> Option<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.set_write_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(format!("{line}\r\n").as_bytes()).ok()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..1000 {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        let multi = line.starts_with("get") || line.starts_with("stats");
        if (multi && text.ends_with("END\r\n")) || (!multi && text.ends_with("\r\n")) {
            break;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}
