//! A small pool of blocking Redis connections.
//!
//! Why not `r2d2`: we want a call to fail at once with the server's own error (connection refused)
//! while it is down, rather than retry until a checkout timeout, and we want the one retry on a
//! stale connection described below; both are a few lines here. Connections are opened lazily,
//! up to `max`, and kept in a LIFO stack so the hot ones stay warm.
//!
//! # Faults
//! - Every socket has read and write timeouts (`response_timeout`) and connecting has its own
//!   (`connect_timeout`), so no call blocks much longer than the sum when the server hangs.
//! - A connection that saw anything but a normal reply (an I/O error, a timeout, a reply that did
//!   not parse) is dropped, never reused: its stream may hold a late reply.
//! - When a connection taken from the idle stack turns out to be closed by the server (it was
//!   restarted while the connection sat idle), every idle connection is dropped (they share its
//!   fate) and the call is retried once on a fresh connection. So the first call after the server
//!   came back succeeds. The commands the backend sends are idempotent, with one imprecision: a
//!   `DEL` that reached the server before the connection broke reports the key as absent.

use crate::resp;
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
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    idle: Vec<Conn>,
    /// Connections in existence: idle, checked out, or being opened.
    open: usize,
}

/// One connection and its send buffer.
pub(crate) struct Conn {
    con: Connection,
    buf: Vec<u8>,
}

impl Conn {
    /// Sends the command `pack` writes and reads its reply.
    pub(crate) fn query(&mut self, pack: impl FnOnce(&mut Vec<u8>)) -> RedisResult<Value> {
        self.buf.clear();
        pack(&mut self.buf);
        let reply = self.con.req_packed_command(&self.buf);
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
        let sent = self.con.send_packed_command(&self.buf);
        self.trim();
        sent?;
        let mut replies = Vec::with_capacity(n);
        while replies.len() < n {
            match self.con.recv_response()? {
                // RESP3 out-of-band data (only with `?protocol=resp3`): not a reply.
                Value::Push { .. } => {}
                v => replies.push(v),
            }
        }
        Ok(replies)
    }

    fn trim(&mut self) {
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = Vec::new();
        }
    }
}

impl Pool {
    pub(crate) fn new(
        client: Client,
        max: usize,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Pool {
        Pool {
            client,
            max: max.max(1),
            connect_timeout,
            response_timeout,
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

    /// Runs `f` on a pooled connection; see the module docs for what happens on errors.
    /// `f` may run twice (the stale-connection retry), so it must be idempotent.
    pub(crate) fn run<T>(
        &self,
        op: Operation,
        key: Option<&str>,
        mut f: impl FnMut(&mut Conn) -> RedisResult<T>,
    ) -> Result<T> {
        let fail =
            |e: Box<dyn std::error::Error + Send + Sync>| Error::backend(op, "redis", key, e);
        let mut retried = false;
        loop {
            let (mut conn, reused) = self.checkout().map_err(fail)?;
            match f(&mut conn) {
                Ok(v) => {
                    self.checkin(conn);
                    return Ok(v);
                }
                Err(e) => {
                    self.discard(conn);
                    if reused && !retried && e.is_connection_dropped() && !e.is_timeout() {
                        self.discard_idle();
                        retried = true;
                        continue;
                    }
                    return Err(fail(Box::new(e)));
                }
            }
        }
    }

    /// An idle connection (`true`: it was reused) or a new one.
    fn checkout(
        &self,
    ) -> std::result::Result<(Conn, bool), Box<dyn std::error::Error + Send + Sync>> {
        // Waiting for a busy connection is bounded by what a busy call may take.
        let wait = self.connect_timeout + self.response_timeout * 2;
        let deadline = Instant::now() + wait;
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok((conn, true));
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(conn) => Ok((conn, false)),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(Box::new(e))
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Box::new(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "all {} connections of the pool stayed busy for {wait:?}",
                        self.max
                    ),
                )));
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn connect(&self) -> RedisResult<Conn> {
        let con = self
            .client
            .get_connection_with_timeout(self.connect_timeout)?;
        con.set_read_timeout(Some(self.response_timeout))?;
        con.set_write_timeout(Some(self.response_timeout))?;
        Ok(Conn {
            con,
            buf: Vec::new(),
        })
    }

    /// Opens a connection now and checks that the server answers `PING`, keeping the
    /// connection for later calls.
    pub(crate) fn ping(&self, op: Operation) -> Result<()> {
        self.run(op, None, |c| {
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
