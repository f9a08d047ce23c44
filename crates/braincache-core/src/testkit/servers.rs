//! Throwaway servers for tests that need a real one: `redis-server` and `memcached` on free
//! loopback ports, each killed by pid when dropped.
//!
//! When the program is not on `PATH`, `start_or_skip` prints why the test is skipped (naming the
//! test, straight to stderr so the harness does not swallow it) and returns `None`, unless the
//! server's `BRAINCACHE_REQUIRE_*` variable is set to something other than `0` (as CI does), which
//! makes it a failure. Every wait is bounded in time and count.
//!
//! ```ignore
//! use braincache_core::testkit::servers::RedisServer;
//!
//! let Some(server) = RedisServer::start_or_skip() else { return };
//! let backend = RedisBackend::builder(&server.url()).build().unwrap();
//! ```

use std::io::{Read, Write};
use std::marker::PhantomData;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server may take to answer.
const STARTUP: Duration = Duration::from_secs(10);
/// How many free ports [`RedisServer::start_or_skip`] and the others try: a port found free can be
/// taken by another test before the server binds it.
const PORT_TRIES: usize = 5;

/// A server program the tests can start.
struct Program {
    /// The executable, looked up on `PATH`.
    name: &'static str,
    /// An argument that makes it print its version and exit 0.
    version_arg: &'static str,
    /// The Debian package that installs it.
    package: &'static str,
    /// Set to `1` to make a missing program a failure instead of a skip.
    require_env: &'static str,
    /// What the readiness probe sends, for the error message.
    probe_name: &'static str,
    /// The process id of the server that answers on this port, if one does: a port found free
    /// can be taken by another test's server before ours binds it, and then that one answers
    /// while ours exits.
    probe: fn(u16) -> Option<u32>,
}

const REDIS: Program = Program {
    name: "redis-server",
    version_arg: "--version",
    package: "redis-server",
    require_env: REDIS_REQUIRE_ENV,
    probe_name: "INFO server",
    probe: redis_pid,
};

const MEMCACHED: Program = Program {
    name: "memcached",
    version_arg: "-V",
    package: "memcached",
    require_env: MEMCACHED_REQUIRE_ENV,
    probe_name: "stats",
    probe: memcached_pid,
};

/// Set to `1` to make a missing `redis-server` a test failure instead of a skip.
pub const REDIS_REQUIRE_ENV: &str = "BRAINCACHE_REQUIRE_REDIS";

/// Set to `1` to make a missing `memcached` a test failure instead of a skip.
pub const MEMCACHED_REQUIRE_ENV: &str = "BRAINCACHE_REQUIRE_MEMCACHED";

/// The item limit [`MemcachedServer`]s run with (`-I 2m`), so 1 MiB values plus a header fit.
pub const MEMCACHED_ITEM_LIMIT: usize = 2 << 20;

impl Program {
    fn installed(&self) -> bool {
        Command::new(self.name)
            .arg(self.version_arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn installed_or_skip(&self) -> bool {
        if self.installed() {
            return true;
        }
        let (name, package, env) = (self.name, self.package, self.require_env);
        let required = std::env::var(env).is_ok_and(|v| !v.is_empty() && v != "0");
        assert!(
            !required,
            "{name} not found on PATH, and {env} is set: install the {package} package"
        );
        let test = std::thread::current()
            .name()
            .map_or_else(|| format!("{name} test"), str::to_owned);
        // Straight to the file descriptor, in one write: the test harness captures `eprintln!`
        // of passing tests, and a skip must be seen.
        let line = format!(
            "{test}: skipped: {name} not found (install the {package} package; set {env}=1 to \
             make this a failure)\n"
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
        false
    }

    fn start_or_skip<K>(&self, command: fn(u16) -> Command) -> Option<Server<K>> {
        if !self.installed_or_skip() {
            return None;
        }
        let mut last = None;
        for _ in 0..PORT_TRIES {
            match self.start_on(command, free_port()) {
                Ok(s) => return Some(s),
                Err(e) => last = Some(e),
            }
        }
        panic!("could not start {}: {last:?}", self.name);
    }

    fn start_on<K>(&self, command: fn(u16) -> Command, port: u16) -> Result<Server<K>, String> {
        let child = command(port)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.name))?;
        let mut server = Server {
            child,
            port,
            kind: PhantomData,
        };
        let start = Instant::now();
        for _ in 0..1000 {
            match (self.probe)(port) {
                Some(pid) if pid == server.pid() => return Ok(server),
                Some(pid) => {
                    server.kill();
                    return Err(format!(
                        "port {port} is taken by another {} (pid {pid})",
                        self.name
                    ));
                }
                None => {}
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("{} on port {port} exited: {status}", self.name));
            }
            if start.elapsed() > STARTUP {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        server.kill();
        Err(format!(
            "{} on port {port} did not answer {} within {STARTUP:?}",
            self.name, self.probe_name
        ))
    }
}

/// A server child process on a loopback port, of the kind `K` ([`RedisServer`],
/// [`MemcachedServer`]). Dropping it resumes it (in case a test stopped it) and kills it.
#[derive(Debug)]
pub struct Server<K> {
    child: Child,
    port: u16,
    kind: PhantomData<K>,
}

/// The kind of a [`RedisServer`].
#[derive(Debug)]
pub struct Redis;

/// The kind of a [`MemcachedServer`].
#[derive(Debug)]
pub struct Memcached;

/// A running `redis-server`: no persistence, on 127.0.0.1.
pub type RedisServer = Server<Redis>;

/// A running `memcached` on 127.0.0.1, with a 64 MiB memory limit and
/// [`MEMCACHED_ITEM_LIMIT`] per item.
pub type MemcachedServer = Server<Memcached>;

impl<K> Server<K> {
    /// The port it listens on (127.0.0.1 only).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it (SIGKILL, by pid) and reaps it. Idempotent.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal by name (`STOP`, `CONT`) to the server, through `sh -c kill`.
    ///
    /// # Panics
    /// When `kill` fails (the name is not a signal, or the process is gone).
    pub fn signal(&self, name: &str) {
        let status = Command::new("sh")
            .args(["-c", &format!("kill -{name} {}", self.pid())])
            .status()
            .expect("run sh -c kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }
}

impl<K> Drop for Server<K> {
    fn drop(&mut self) {
        // A test may have stopped it (`SIGSTOP`): resume it, then kill it.
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -CONT {} 2>/dev/null", self.pid())])
            .status();
        self.kill();
    }
}

impl Server<Redis> {
    /// Starts a server on a free port, or prints a skip notice and returns `None` when
    /// `redis-server` is not installed.
    ///
    /// # Panics
    /// When it is not installed and [`REDIS_REQUIRE_ENV`] is set, or when no server starts on
    /// any of a few free ports.
    #[must_use]
    pub fn start_or_skip() -> Option<RedisServer> {
        REDIS.start_or_skip(redis_command)
    }

    /// Starts a server on `port` (to restart one on the same port) and waits until it answers
    /// `PING`.
    ///
    /// # Errors
    /// When it cannot be spawned, exits, or does not answer within 10 s.
    pub fn start_on(port: u16) -> Result<RedisServer, String> {
        REDIS.start_on(redis_command, port)
    }

    /// True when `redis-server` is installed. Otherwise prints a skip notice naming the test and
    /// returns false.
    ///
    /// # Panics
    /// When it is not installed and [`REDIS_REQUIRE_ENV`] is set.
    #[must_use]
    pub fn installed_or_skip() -> bool {
        REDIS.installed_or_skip()
    }

    /// Its URL, `redis://127.0.0.1:<port>/0`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

fn redis_command(port: u16) -> Command {
    let mut cmd = Command::new(REDIS.name);
    cmd.args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(["--daemonize", "no"])
        .args(["--dir", &std::env::temp_dir().to_string_lossy()]);
    cmd
}

impl Server<Memcached> {
    /// Starts a server on a free port, or prints a skip notice and returns `None` when
    /// `memcached` is not installed.
    ///
    /// # Panics
    /// When it is not installed and [`MEMCACHED_REQUIRE_ENV`] is set, or when no server starts on
    /// any of a few free ports.
    #[must_use]
    pub fn start_or_skip() -> Option<MemcachedServer> {
        MEMCACHED.start_or_skip(memcached_command)
    }

    /// Starts a server on `port` (to restart one on the same port) and waits until it answers
    /// `version`.
    ///
    /// # Errors
    /// When it cannot be spawned, exits, or does not answer within 10 s.
    pub fn start_on(port: u16) -> Result<MemcachedServer, String> {
        MEMCACHED.start_on(memcached_command, port)
    }

    /// True when `memcached` is installed. Otherwise prints a skip notice naming the test and
    /// returns false.
    ///
    /// # Panics
    /// When it is not installed and [`MEMCACHED_REQUIRE_ENV`] is set.
    #[must_use]
    pub fn installed_or_skip() -> bool {
        MEMCACHED.installed_or_skip()
    }

    /// Its URL, `memcache://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("memcache://127.0.0.1:{}", self.port)
    }

    /// Sends a raw text-protocol command and returns the reply up to `END\r\n` (`get`, `stats`)
    /// or one line; empty when the server does not answer within half a second.
    pub fn command(&self, line: &str) -> String {
        memcached_raw(self.port, line).unwrap_or_default()
    }
}

fn memcached_command(port: u16) -> Command {
    let mut cmd = Command::new(MEMCACHED.name);
    cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"])
        .args(["-I", "2m", "-m", "64"]);
    if is_root() {
        // memcached refuses to run as root without being told which user to be.
        cmd.args(["-u", "root"]);
    }
    cmd
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A loopback port nothing listens on right now.
///
/// # Panics
/// When no port on 127.0.0.1 can be bound.
#[must_use]
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A connection to `127.0.0.1:port` with short timeouts, or `None`.
fn connect(port: u16) -> Option<TcpStream> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.set_write_timeout(Some(Duration::from_millis(500))).ok()?;
    Some(s)
}

/// True when a server on `port` answers `PING` with `+PONG`.
#[must_use]
pub fn redis_ping(port: u16) -> bool {
    let Some(mut s) = connect(port) else {
        return false;
    };
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// True when a server on `port` answers memcached's `version`.
#[must_use]
pub fn memcached_answers(port: u16) -> bool {
    memcached_raw(port, "version").is_some_and(|r| r.starts_with("VERSION"))
}

/// The process id a memcached on `port` states in its `stats` (`STAT pid N`).
fn memcached_pid(port: u16) -> Option<u32> {
    let stats = memcached_raw(port, "stats")?;
    stats
        .lines()
        .find_map(|l| l.strip_prefix("STAT pid "))
        .and_then(|pid| pid.trim().parse().ok())
}

/// The process id a redis-server on `port` states in `INFO server` (`process_id:N`).
fn redis_pid(port: u16) -> Option<u32> {
    // A bulk string, `$<len>\r\n<len bytes>\r\n`: whole once the body is that long.
    let whole = |out: &[u8]| {
        let text = String::from_utf8_lossy(out);
        text.strip_prefix('$')
            .and_then(|t| t.split_once("\r\n"))
            .and_then(|(len, body)| Some(body.len() >= len.parse::<usize>().ok()?))
            .unwrap_or(false)
    };
    exchange(port, b"INFO server\r\n", whole)?
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

fn memcached_raw(port: u16, line: &str) -> Option<String> {
    let multi = line.starts_with("get") || line.starts_with("stats");
    let whole =
        |out: &[u8]| (multi && out.ends_with(b"END\r\n")) || (!multi && out.ends_with(b"\r\n"));
    exchange(port, format!("{line}\r\n").as_bytes(), whole)
}

/// Sends `request` to `127.0.0.1:port` and reads the reply until `whole(reply)` or the server
/// closes; `None` when it cannot connect or a read times out (half a second).
fn exchange(port: u16, request: &[u8], whole: impl Fn(&[u8]) -> bool) -> Option<String> {
    let mut s = connect(port)?;
    s.write_all(request).ok()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..1000 {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if whole(&out) {
            break;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}
