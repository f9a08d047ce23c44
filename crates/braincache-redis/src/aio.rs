//! The async side (feature `async`): [`AsyncBackend`] over one multiplexed async connection
//! (redis-rs on tokio), so no call parks a thread while it waits for the server.
//!
//! - The connection is opened on the first async call and shared by every async call of the
//!   handle (and its clones' `Arc`): requests from many tasks are pipelined on it. The blocking
//!   calls keep their own pool; the two sides store the same bytes under the same keys.
//! - Same commands as the blocking side: `GET`, `SET … PX ttl` (a deadline at or before now
//!   sends `DEL`), `DEL`, `clear` = `SCAN MATCH prefix*` + `UNLINK`, `len` = `SCAN` (or
//!   `DBSIZE` with an empty prefix); the same record header ([`crate::header`]).
//! - Same deadline: each round trip ends by `connect_timeout + response_timeout` after it
//!   began, opening the connection included (a tokio timer, so the runtime needs its time
//!   driver, as `#[tokio::main]` has). A timed-out call is [`Error::is_timeout`], and a timed-out
//!   write says its outcome is unknown, as on the blocking side. A late reply never answers a
//!   later call: the multiplexer matches replies to requests in order.
//! - A connection the server closed (an I/O error other than a timeout) is forgotten; the call
//!   is retried once on a new connection when it was made on an older one, so the first call
//!   after a server restart succeeds, as with the pool.
//! - Called outside a tokio runtime, a call fails with [`Error::Task`]; it does not panic.

use crate::{
    BATCH, RedisBackend, check_stored, header::Header, parse_scan, record_from, ttl_millis,
};
use crate::{pool::call_error, reply_error};
use braincache_core::{AsyncBackend, Error, Operation, Record, Result, Timestamp};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, RedisResult, Value};
use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The async connection of a [`RedisBackend`], opened on first use.
pub(crate) struct AsyncConn {
    client: Client,
    connect_timeout: Duration,
    response_timeout: Duration,
    /// The shared connection and its generation (so a failed call forgets only the connection
    /// it used, not a newer one another task opened meanwhile).
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    /// Held while opening a connection, so concurrent first calls open one, not one each.
    opening: tokio::sync::Mutex<u64>,
}

impl AsyncConn {
    pub(crate) fn new(
        client: Client,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Self {
        AsyncConn {
            client,
            connect_timeout,
            response_timeout,
            current: Mutex::new(None),
            opening: tokio::sync::Mutex::new(0),
        }
    }

    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets connection `generation` if it is still the current one.
    fn forget(&self, generation: u64) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            *current = None;
        }
    }

    /// The shared connection (`true`: it was opened before this call), opening it if needed.
    async fn connection(
        &self,
        deadline: Instant,
    ) -> RedisResult<(u64, MultiplexedConnection, bool)> {
        if let Some((g, c)) = self.current() {
            return Ok((g, c, true));
        }
        let mut generation = self.opening.lock().await;
        if let Some((g, c)) = self.current() {
            return Ok((g, c, false));
        }
        let budget = self
            .connect_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        if budget.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no time left to open a connection before the call's deadline",
            )
            .into());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(budget))
            .set_response_timeout(Some(self.response_timeout));
        let con = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *generation += 1;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((*generation, con.clone()));
        Ok((*generation, con, false))
    }

    /// Sends `cmd` and awaits its reply, by one deadline; see the module docs.
    async fn run(&self, op: Operation, key: Option<&str>, cmd: &Cmd) -> Result<Value> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Task {
                op,
                key: key.map(str::to_owned),
                detail: "no tokio runtime: async calls must run inside one".into(),
            });
        }
        let started = Instant::now();
        let deadline = started + self.connect_timeout + self.response_timeout;
        let mut sent = false;
        let attempt = async {
            let mut retried = false;
            loop {
                sent = false;
                let (generation, mut con, reused) = self.connection(deadline).await?;
                sent = true;
                match con.send_packed_command(cmd).await {
                    Ok(v) => return Ok(v),
                    Err(e) => {
                        let dropped = e.is_connection_dropped() && !e.is_timeout();
                        if dropped || e.is_unrecoverable_error() {
                            self.forget(generation);
                        }
                        if dropped && reused && !retried {
                            retried = true;
                            continue;
                        }
                        return Err(e);
                    }
                }
            }
        };
        let outcome = tokio::time::timeout_at(deadline.into(), attempt).await;
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(call_error(op, key, e, sent, started)),
            Err(_elapsed) => {
                let e = io::Error::new(io::ErrorKind::TimedOut, "the call's deadline passed");
                Err(call_error(op, key, e.into(), sent, started))
            }
        }
    }
}

impl RedisBackend {
    /// The prefixed Redis key of `key`.
    fn key_bytes(&self, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(self.prefix.as_bytes());
        k.extend_from_slice(key.as_bytes());
        k
    }

    /// The command that stores `record` under `key` as of `now` (see `pack_set`).
    fn set_cmd(&self, key: &str, record: &Record, now: Timestamp) -> Cmd {
        let k = self.key_bytes(key);
        match record.expires_at.map(|d| ttl_millis(d, now)) {
            Some(None) => {
                let mut cmd = redis::cmd("DEL");
                cmd.arg(k);
                cmd
            }
            ttl => {
                let header = Header::of(record);
                let mut value = Vec::with_capacity(header.as_bytes().len() + record.value.len());
                value.extend_from_slice(header.as_bytes());
                value.extend_from_slice(&record.value);
                let mut cmd = redis::cmd("SET");
                cmd.arg(k).arg(value);
                if let Some(Some(ms)) = ttl {
                    cmd.arg("PX").arg(ms);
                }
                cmd
            }
        }
    }

    async fn scan_async(&self, op: Operation, cursor: u64) -> Result<(u64, Vec<Vec<u8>>)> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(&self.pattern[..])
            .arg("COUNT")
            .arg(BATCH);
        let reply = self.aio.run(op, None, &cmd).await?;
        parse_scan(reply).map_err(|reply| reply_error(op, None, "SCAN", reply))
    }

    async fn len_inner(&self) -> Result<usize> {
        let op = Operation::Len;
        if self.prefix.is_empty() {
            return match self.aio.run(op, None, &redis::cmd("DBSIZE")).await? {
                Value::Int(n) => Ok(usize::try_from(n).unwrap_or(0)),
                other => Err(reply_error(op, None, "DBSIZE", other)),
            };
        }
        // SCAN may return a key twice (when the table is resized during the walk): count once.
        let mut seen = HashSet::new();
        let mut cursor = 0;
        loop {
            let (next, keys) = self.scan_async(op, cursor).await?;
            seen.extend(keys);
            cursor = next;
            if cursor == 0 {
                return Ok(seen.len());
            }
        }
    }
}

impl AsyncBackend for RedisBackend {
    fn get_async(
        self: &Arc<Self>,
        key: &str,
    ) -> impl Future<Output = Result<Option<Record>>> + Send {
        let (this, key) = (Arc::clone(self), key.to_owned());
        async move {
            let mut cmd = redis::cmd("GET");
            cmd.arg(this.key_bytes(&key));
            let reply = this.aio.run(Operation::Get, Some(&key), &cmd).await?;
            record_from(&key, reply)
        }
    }

    fn set_async(
        self: &Arc<Self>,
        key: &str,
        record: Record,
    ) -> impl Future<Output = Result<()>> + Send {
        self.set_at_async(key, record, Timestamp::now())
    }

    /// `SET … PX` with the TTL from `now` (the front end's clock), as the sync `set_at`.
    fn set_at_async(
        self: &Arc<Self>,
        key: &str,
        record: Record,
        now: Timestamp,
    ) -> impl Future<Output = Result<()>> + Send {
        let (this, key) = (Arc::clone(self), key.to_owned());
        async move {
            let cmd = this.set_cmd(&key, &record, now);
            let reply = this.aio.run(Operation::Set, Some(&key), &cmd).await?;
            check_stored(&key, reply)
        }
    }

    fn delete_async(self: &Arc<Self>, key: &str) -> impl Future<Output = Result<bool>> + Send {
        let (this, key) = (Arc::clone(self), key.to_owned());
        async move {
            let op = Operation::Delete;
            let mut cmd = redis::cmd("DEL");
            cmd.arg(this.key_bytes(&key));
            match this.aio.run(op, Some(&key), &cmd).await? {
                Value::Int(n) => Ok(n > 0),
                other => Err(reply_error(op, Some(&key), "DEL", other)),
            }
        }
    }

    fn clear_async(self: &Arc<Self>) -> impl Future<Output = Result<()>> + Send {
        let this = Arc::clone(self);
        async move {
            let op = Operation::Clear;
            let mut cursor = 0;
            loop {
                let (next, found) = this.scan_async(op, cursor).await?;
                if !found.is_empty() {
                    let mut cmd = redis::cmd("UNLINK");
                    for k in &found {
                        cmd.arg(&k[..]);
                    }
                    let reply = this.aio.run(op, None, &cmd).await?;
                    if !matches!(reply, Value::Int(_)) {
                        return Err(reply_error(op, None, "UNLINK", reply));
                    }
                }
                cursor = next;
                if cursor == 0 {
                    return Ok(());
                }
            }
        }
    }

    fn len_async(self: &Arc<Self>) -> impl Future<Output = Result<usize>> + Send {
        let this = Arc::clone(self);
        async move { this.len_inner().await }
    }

    fn is_empty_async(self: &Arc<Self>) -> impl Future<Output = Result<bool>> + Send {
        let this = Arc::clone(self);
        async move { Ok(this.len_inner().await? == 0) }
    }

    /// Redis expires entries by itself: 0, at once.
    fn purge_expired_async(
        self: &Arc<Self>,
        _now: Timestamp,
    ) -> impl Future<Output = Result<usize>> + Send {
        std::future::ready(Ok(0))
    }

    /// Redis expires entries by itself: `None`, at once.
    fn next_expiry_async(
        self: &Arc<Self>,
    ) -> impl Future<Output = Result<Option<Timestamp>>> + Send {
        std::future::ready(Ok(None))
    }

    /// Nothing is buffered: `Ok`, at once.
    fn flush_async(self: &Arc<Self>) -> impl Future<Output = Result<()>> + Send {
        std::future::ready(Ok(()))
    }
}
