//! A small pool of blocking Redis connections.
//!
//! Why not `r2d2`: we want a call to fail at once with the server's own error (connection refused)
//! while it is down, rather than retry until a checkout timeout, and we want the one retry on a
//! stale connection described below; both are a few lines here. Connections are opened lazily,
//! up to `max`, and kept in a LIFO stack so the hot ones stay warm.
//!
//! # Faults
//! - Every [`Pool::run`] (one round trip) has one deadline, `connect_timeout +
//!   response_timeout` after it began, that covers waiting for a pooled connection, opening one
//!   and every read and write of the reply: none blocks past it, however many callers share
//!   the pool. Within it, opening a
//!   connection (TCP and the setup commands) takes at most `connect_timeout` and each socket
//!   read or write at most `response_timeout`.
//! - redis-rs sets the remaining connect time as the socket timeout of *each* setup reply, so a
//!   hung server costs one full timeout per reply. The pool sends no `CLIENT SETINFO` (two
//!   replies), and gives redis-rs the connect budget divided by the number of setup replies left
//!   (`AUTH`/`HELLO`, `SELECT`), so the set-up as a whole stays within its budget.
//! - A call that timed out after its command was sent has an unknown outcome (the server may
//!   apply it later): its error says so and is [`Error::is_timeout`].
//! - A connection that saw anything but a normal reply (an I/O error, a timeout, a reply that did
//!   not parse) is dropped, never reused: its stream may hold a late reply.
//! - When a connection taken from the idle stack turns out to be closed by the server (it was
//!   restarted while the connection sat idle), every idle connection is dropped (they share its
//!   fate) and the call is retried once on a fresh connection. So the first call after the server
//!   came back succeeds. The commands the backend sends are idempotent, with one imprecision: a
//!   `DEL` that reached the server before the connection broke reports the key as absent.

use crate::ClientError;
use crate::resp;
use braincache_core::net::NetOptions;
use braincache_core::{Error, Operation, Result};
use redis::{Client, Connection, ConnectionLike, RedisError, RedisResult, Value};
use std::fmt;
use std::io;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Send buffers grown past this by a large value are dropped after use rather than kept.
const KEEP_BUFFER: usize = 256 << 10;

pub(crate) struct Pool {
    client: Client,
    max: usize,
    connect_timeout: Duration,
    response_timeout: Duration,
    /// How many replies redis-rs reads while setting a connection up.
    setup_replies: usize,
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    idle: Vec<Conn>,
    /// Connections in existence: idle, checked out, or being opened.
    open: usize,
}

/// One connection, its send buffer and the deadline of the call using it.
pub(crate) struct Conn {
    con: Connection,
    buf: Vec<u8>,
    /// When the call holding the connection must end.
    deadline: Instant,
    /// The longest one read or write may block.
    response_timeout: Duration,
    /// The read and write timeout the socket has now.
    armed: Duration,
    /// Whether the call began sending a command on it (after which the outcome of a failure is
    /// unknown).
    sent: bool,
}

impl Conn {
    /// Sends the command `pack` writes and reads its reply.
    pub(crate) fn query(&mut self, pack: impl FnOnce(&mut Vec<u8>)) -> RedisResult<Value> {
        self.buf.clear();
        pack(&mut self.buf);
        let reply = self.arm().and_then(|()| {
            self.sent = true;
            self.con.req_packed_command(&self.buf)
        });
        self.trim();
        reply
    }

    /// Sends the `n` commands `pack` writes in one go (a pipeline) and reads their `n` replies.
    /// Stops at the first I/O error instead of waiting out a timeout for each reply.
    pub(crate) fn pipeline(
        &mut self,
        n: usize,
        pack: impl FnOnce(&mut Vec<u8>),
    ) -> RedisResult<Vec<Value>> {
        self.buf.clear();
        pack(&mut self.buf);
        let sent = self.arm().and_then(|()| {
            self.sent = true;
            self.con.send_packed_command(&self.buf)
        });
        self.trim();
        sent?;
        let mut replies = Vec::with_capacity(n);
        while replies.len() < n {
            self.arm()?;
            match self.con.recv_response()? {
                // RESP3 out-of-band data (only with `?protocol=resp3`): not a reply.
                Value::Push { .. } => {}
                v => replies.push(v),
            }
        }
        Ok(replies)
    }

    /// Sets the socket's timeout to what is left of the call's deadline, at most the response
    /// timeout. A call that did not wait makes no system call here: the socket keeps the
    /// response timeout.
    fn arm(&mut self) -> RedisResult<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(
                io::Error::new(io::ErrorKind::TimedOut, "the call's deadline passed").into(),
            );
        }
        let t = left.min(self.response_timeout);
        if t != self.armed {
            self.con.set_read_timeout(Some(t))?;
            self.con.set_write_timeout(Some(t))?;
            self.armed = t;
        }
        Ok(())
    }

    fn trim(&mut self) {
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = Vec::new();
        }
    }
}

impl Pool {
    pub(crate) fn new(client: Client, options: &NetOptions) -> Pool {
        let settings = client.get_connection_info().redis_settings();
        let setup_replies =
            usize::from(settings.password().is_some() || settings.protocol().supports_resp3())
                + usize::from(settings.db() != 0)
                + if settings.skip_set_lib_name() { 0 } else { 2 };
        Pool {
            setup_replies,
            client,
            max: options.pool_size(),
            connect_timeout: options.connect_timeout(),
            response_timeout: options.response_timeout(),
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// The deadline of a call that begins now: see the module docs.
    fn call_deadline(&self) -> Instant {
        Instant::now() + self.connect_timeout + self.response_timeout
    }

    /// Runs `f` on a pooled connection; see the module docs for what happens on errors.
    /// `f` may run twice (the stale-connection retry), so it must be idempotent. The whole call,
    /// the wait for a connection included, ends by one deadline.
    pub(crate) fn run<T>(
        &self,
        op: Operation,
        key: Option<&str>,
        f: impl FnMut(&mut Conn) -> RedisResult<T>,
    ) -> Result<T> {
        self.run_until(op, key, self.call_deadline(), f)
    }

    /// [`run`](Self::run), ending by `deadline`.
    fn run_until<T>(
        &self,
        op: Operation,
        key: Option<&str>,
        deadline: Instant,
        mut f: impl FnMut(&mut Conn) -> RedisResult<T>,
    ) -> Result<T> {
        let started = Instant::now();
        let mut retried = false;
        loop {
            let (mut conn, reused) = self
                .checkout(deadline)
                .map_err(|e| call_error(op, key, e, false, started))?;
            conn.deadline = deadline;
            conn.sent = false;
            match f(&mut conn) {
                Ok(v) => {
                    self.checkin(conn);
                    return Ok(v);
                }
                Err(e) => {
                    let sent = conn.sent;
                    self.discard(conn);
                    if reused && !retried && e.is_connection_dropped() && !e.is_timeout() {
                        self.discard_idle();
                        retried = true;
                        continue;
                    }
                    return Err(call_error(op, key, e, sent, started));
                }
            }
        }
    }

    /// An idle connection (`true`: it was reused) or a new one, by `deadline`.
    fn checkout(&self, deadline: Instant) -> RedisResult<(Conn, bool)> {
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok((conn, true));
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return match self.connect(deadline) {
                    Ok(conn) => Ok((conn, false)),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "all {} connections of the pool stayed busy until the call's deadline",
                        self.max
                    ),
                )
                .into());
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Opens a connection within `connect_timeout` and by `deadline`, whichever comes first.
    fn connect(&self, deadline: Instant) -> RedisResult<Conn> {
        let budget = self
            .connect_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        // redis-rs waits up to the time left after TCP for each setup reply: divided this way,
        // TCP plus every reply stays within the budget (see the module docs).
        let replies = u32::try_from(self.setup_replies).unwrap_or(u32::MAX).max(1);
        let step = budget / replies;
        if step.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no time left to open a connection before the call's deadline",
            )
            .into());
        }
        let con = self.client.get_connection_with_timeout(step)?;
        con.set_read_timeout(Some(self.response_timeout))?;
        con.set_write_timeout(Some(self.response_timeout))?;
        Ok(Conn {
            con,
            buf: Vec::new(),
            deadline,
            response_timeout: self.response_timeout,
            armed: self.response_timeout,
            sent: false,
        })
    }

    /// Opens a connection now and checks that the server answers `PING`, keeping the
    /// connection for later calls. Connecting and the `PING` together take at most the connect
    /// timeout: this is how a backend is set up.
    pub(crate) fn ping(&self, op: Operation) -> Result<()> {
        let deadline = Instant::now() + self.connect_timeout;
        self.run_until(op, None, deadline, |c| {
            let reply = c.query(|buf| resp::command(buf, &[&[b"PING"]]))?;
            match reply {
                Value::SimpleString(s) if s == "PONG" => Ok(()),
                Value::ServerError(e) => Err(e.into()),
                other => Err(RedisError::from(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the server answered PING with {other:?}, not PONG"),
                ))),
            }
        })
    }

    fn checkin(&self, conn: Conn) {
        if conn.con.is_open() {
            self.lock().idle.push(conn);
            self.freed.notify_one();
        } else {
            self.discard(conn);
        }
    }

    fn discard(&self, conn: Conn) {
        drop(conn);
        self.lock().open -= 1;
        self.freed.notify_one();
    }

    fn discard_idle(&self) {
        let idle = {
            let mut state = self.lock();
            let idle = std::mem::take(&mut state.idle);
            state.open -= idle.len();
            idle
        };
        drop(idle); // closes the sockets outside the lock
        self.freed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, the state is still coherent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Pool")
            .field("max", &self.max)
            .field("open", &state.open)
            .field("idle", &state.idle.len())
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish_non_exhaustive()
    }
}

/// The error of a failed call. A timeout becomes an I/O error of kind `TimedOut` (so
/// [`Error::is_timeout`] is true) whose message says what is known of the outcome: nothing was
/// applied when the command was never sent; a write that was sent may have been applied.
pub(crate) fn call_error(
    op: Operation,
    key: Option<&str>,
    e: RedisError,
    sent: bool,
    started: Instant,
) -> Error {
    if !e.is_timeout() {
        return Error::backend(op, crate::BACKEND_NAME, key, ClientError::new(e));
    }
    let took = started.elapsed();
    let what = if !sent {
        format!("timed out after {took:.0?} before the command was sent (nothing was applied)")
    } else if matches!(op, Operation::Set | Operation::Delete | Operation::Clear) {
        format!(
            "no reply within {took:.0?}: outcome unknown, the server may have applied the write \
             (or may still apply it)"
        )
    } else {
        format!("no reply within {took:.0?}")
    };
    Error::backend(
        op,
        crate::BACKEND_NAME,
        key,
        io::Error::new(
            io::ErrorKind::TimedOut,
            TimedOut {
                what,
                cause: ClientError::new(e),
            },
        ),
    )
}

/// A call that ran out of time, and the client's own error.
#[derive(Debug)]
struct TimedOut {
    what: String,
    cause: ClientError,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client's error is the source, not part of this message: a chain printer shows
        // each once.
        f.write_str(&self.what)
    }
}

impl std::error::Error for TimedOut {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}
