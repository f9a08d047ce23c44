//! The Redis backend of [braincache](https://docs.rs/braincache): one cache shared by every
//! process and machine that can reach a Redis server.
//!
//! [`RedisBackend`] stores each entry with `SET key value PX ttl` under a key prefix (default
//! `braincache:`), so Redis expires entries by itself: there is nothing to purge and no cleaner
//! is needed. Calls are blocking and go through a pool of connections, so many threads can use
//! one backend at once; batch operations are pipelined (`get_many` and `delete_many` take one
//! round trip, `set_many` one per 512 entries).
//! With feature `async`, its `AsyncBackend` calls share one multiplexed async connection
//! (redis-rs on tokio) instead, opened on first use: the same keys, values and deadlines.
//!
//! ```no_run
//! use braincache_core::{Backend, Record, Timestamp};
//! use braincache_redis::RedisBackend;
//! use std::time::Duration;
//!
//! # fn main() -> braincache_core::Result<()> {
//! let backend = RedisBackend::builder("redis://127.0.0.1:6379/0")
//!     .key_prefix("myapp:")
//!     .pool_size(8)
//!     .response_timeout(Duration::from_millis(500))
//!     .build()?; // connects and PINGs: an error here if the server is unreachable
//!
//! let deadline = Timestamp::now() + Duration::from_secs(60);
//! backend.set("k", Record::new(b"v".to_vec(), Some(deadline)))?; // SET myapp:k ... PX 60000
//! assert_eq!(backend.get("k")?, Some(Record::new(b"v".to_vec(), Some(deadline))));
//! # Ok(())
//! # }
//! ```
//!
//! Applications normally use it through the facade: `BrainCache::new(RedisBackend::connect(url)?)`
//! (feature `redis` of `braincache`).
//!
//! # Keys and values
//! - The Redis key is the prefix followed by the cache key, byte for byte. Every handle with the
//!   same prefix, in any process, sees the same entries; different prefixes are separate caches
//!   in one database.
//! - The Redis value is a small header followed by the encoded value, so [`Backend::get`]
//!   returns the record exactly as it was set, deadline included: byte 0 is the format version
//!   (1), byte 1 is 0 (no deadline) or 1 (a deadline follows), then for 1 the deadline as
//!   nanoseconds since the Unix epoch, 8 bytes big-endian. A string under the prefix without a
//!   valid header is [`Error::Corrupt`]; a key of another type (a list...) is the server's
//!   `WRONGTYPE` error as [`Error::Backend`]; neither panics.
//! - The TTL sent to Redis is the deadline minus the system clock's now, rounded up to the next
//!   millisecond. A deadline at or before now deletes the key instead (Redis refuses `PX 0`).
//!   Deadlines come from the `BrainCache`'s clock, so a manual clock far from the real time makes
//!   entries expire at the wrong time in Redis: use the system clock with this backend.
//!
//! # Clear and len
//! [`Backend::clear`] deletes only the prefix's keys (`SCAN MATCH prefix*` and `UNLINK` in
//! batches), never `FLUSHDB`; other data in the database stays. [`Backend::len`] counts the
//! prefix's keys with the same `SCAN`. Both walk the whole database (Redis has no index by
//! prefix), so they cost time in proportion to the database's size, and `len` holds the keys it
//! has seen (`SCAN` may return a key twice); `len` with an empty prefix uses `DBSIZE`. Keys
//! created or deleted while they run may or may not be seen.
//!
//! # Faults
//! - Every call fails with [`Error::Backend`] (backend `"redis"`, the operation and key, the
//!   cause) while the server is down or unreachable; none panics. A refused connection fails at
//!   once; a server that does not answer fails after the
//!   [connect](RedisBackendBuilder::connect_timeout) or
//!   [response](RedisBackendBuilder::response_timeout) timeout.
//! - **One deadline per call.** A call ends at the latest `connect_timeout + response_timeout`
//!   after it began (2 s by default), whatever it waits for: a free connection of the pool (when
//!   more threads call than there are connections), opening one, or the reply. Opening a
//!   connection, with its setup commands, takes at most `connect_timeout`; so does
//!   [`build`](RedisBackendBuilder::build) (connecting and the `PING`). The deadline is per
//!   round trip: `clear`, `len` (one per `SCAN` step) and `set_many` of more than 512 entries
//!   make several, each with its own.
//! - **What a timeout means.** A call that ran out of time is an error for which
//!   [`Error::is_timeout`] is true. A write (`set`, `delete`, `clear`, the batch forms) that
//!   timed out after its command was sent has an **unknown outcome**, and its message says so:
//!   the command may have reached the server, which may have applied it, or may still apply it
//!   when it wakes up (a server stopped with `SIGSTOP` applies the queued `SET` after
//!   `SIGCONT`). No backend can tell which: read the key again, or write it again (a `set` is
//!   idempotent), when it matters. A call that timed out before sending anything (waiting for
//!   a connection, or connecting) applied nothing, and says that instead.
//! - The backend recovers by itself: broken connections are dropped, and once the server is back
//!   the next call opens a new one. A connection closed while idle in the pool (the server
//!   restarted in between) is noticed and replaced within the same call.
//! - Durability is the server's: with persistence off, a restart of the server empties the
//!   cache.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

#[cfg(feature = "async")]
mod aio;
mod cluster;
mod cluster_lease;
mod header;
pub mod inspect;
mod lease;
mod pool;
mod resp;

pub use cluster::{RedisClusterBackend, RedisClusterBuilder};

use braincache_core::net::NetOptions;
use braincache_core::{
    Backend, Error, Lease, LeaseToken, MsgPack, Operation, Record, Result, Timestamp,
};
use header::Header;
use pool::{Conn, Pool};
use redis::{Client, IntoConnectionInfo, RedisError, Value};
use resp::Decimal;
use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

/// The key prefix used unless [`RedisBackendBuilder::key_prefix`] sets another (`braincache:`,
/// the default of every networked backend: [`braincache_core::net::DEFAULT_KEY_PREFIX`]).
pub const DEFAULT_KEY_PREFIX: &str = braincache_core::net::DEFAULT_KEY_PREFIX;

/// This backend's name in errors: the `backend` field of [`Error::Backend`] and
/// [`Error::Closed`] (`"redis"`).
pub const BACKEND_NAME: &str = "redis";

/// Entries per round trip in batch operations, and keys per `SCAN` step.
const BATCH: usize = 512;

/// A cache on a Redis server. See the [crate docs](crate).
///
/// ```no_run
/// use braincache::backend::RedisBackend;
///
/// # fn main() -> braincache::Result<()> {
/// let backend = RedisBackend::connect("redis://127.0.0.1:6379")?;
/// assert_eq!(backend.key_prefix(), "braincache:");
/// # Ok(())
/// # }
/// ```
pub struct RedisBackend {
    pool: Pool,
    prefix: String,
    /// `SCAN MATCH` pattern: the prefix with glob characters escaped, then `*`.
    pattern: Vec<u8>,
    /// The connection of the async calls, opened on first use.
    #[cfg(feature = "async")]
    aio: aio::AsyncConn,
}

impl RedisBackend {
    /// Connects to the server at `url` with the default settings (see [`RedisBackendBuilder`]).
    ///
    /// `url` is `redis://[user:password@]host[:port][/db]` (or `redis+unix:///path`).
    ///
    /// # Errors
    /// [`Error::Backend`] with [`Operation::Open`] when the URL is invalid or the server does
    /// not answer `PING` within the connect and response timeouts.
    pub fn connect(url: &str) -> Result<RedisBackend> {
        RedisBackend::builder(url).build()
    }

    /// A builder for the key prefix, the pool size and the timeouts.
    pub fn builder(url: &str) -> RedisBackendBuilder {
        RedisBackendBuilder::new(url)
    }

    /// The prefix in front of every key this backend stores.
    #[must_use]
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The most connections this backend keeps open.
    #[must_use]
    pub fn pool_size(&self) -> usize {
        self.pool.max()
    }

    fn redis_key<'a>(&'a self, key: &'a str) -> [&'a [u8]; 2] {
        [self.prefix.as_bytes(), key.as_bytes()]
    }

    /// Writes the command that stores `record` under `key` as of `now`: `SET` (with `PX` when
    /// there is a deadline), or `DEL` when the deadline has passed.
    fn pack_set(&self, buf: &mut Vec<u8>, key: &str, record: &Record, now: Timestamp) {
        let k = self.redis_key(key);
        let header = Header::of(record);
        let value: &[&[u8]] = &[header.as_bytes(), &record.value];
        match record.expires_at.map(|d| ttl_millis(d, now)) {
            None => resp::command(buf, &[&[b"SET"], &k, value]),
            Some(Some(ms)) => {
                let ms = Decimal::new(ms);
                resp::command(buf, &[&[b"SET"], &k, value, &[b"PX"], &[ms.as_bytes()]]);
            }
            Some(None) => resp::command(buf, &[&[b"DEL"], &k]),
        }
    }

    /// Writes `command` followed by the redis keys of `keys`.
    fn pack_keys(&self, buf: &mut Vec<u8>, command: &[u8], keys: &[&str]) {
        resp::array(buf, keys.len() + 1);
        resp::bulk(buf, &[command]);
        for k in keys {
            resp::bulk(buf, &self.redis_key(k));
        }
    }

    /// One `SCAN` step; returns the next cursor and the keys found.
    fn scan(&self, op: Operation, cursor: u64) -> Result<(u64, Vec<Vec<u8>>)> {
        let reply = self
            .pool
            .run(op, None, |c| c.query(|buf| self.pack_scan(buf, cursor)))?;
        parse_scan(reply).map_err(|reply| reply_error(op, None, "SCAN", reply))
    }

    fn pack_scan(&self, buf: &mut Vec<u8>, cursor: u64) {
        let cursor = Decimal::new(cursor);
        let count = Decimal::new(BATCH as u64);
        resp::command(
            buf,
            &[
                &[b"SCAN"],
                &[cursor.as_bytes()],
                &[b"MATCH"],
                &[&self.pattern],
                &[b"COUNT"],
                &[count.as_bytes()],
            ],
        );
    }
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.pool.client().get_connection_info();
        f.debug_struct("RedisBackend")
            .field("addr", &info.addr().to_string())
            .field("db", &info.redis_settings().db())
            .field("key_prefix", &self.prefix)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl Backend for RedisBackend {
    type Codec = MsgPack;

    fn get(&self, key: &str) -> Result<Option<Record>> {
        let reply = self.pool.run(Operation::Get, Some(key), |c| {
            c.query(|buf| resp::command(buf, &[&[b"GET"], &self.redis_key(key)]))
        })?;
        record_from(key, reply)
    }

    fn set(&self, key: &str, record: Record) -> Result<()> {
        self.set_at(key, record, Timestamp::now())
    }

    /// The time to live sent (`PX`) is the record's deadline minus `now`.
    fn set_at(&self, key: &str, record: Record, now: Timestamp) -> Result<()> {
        let reply = self.pool.run(Operation::Set, Some(key), |c| {
            c.query(|buf| self.pack_set(buf, key, &record, now))
        })?;
        check_stored(key, reply)
    }

    fn delete(&self, key: &str) -> Result<bool> {
        let reply = self.pool.run(Operation::Delete, Some(key), |c| {
            c.query(|buf| resp::command(buf, &[&[b"DEL"], &self.redis_key(key)]))
        })?;
        match reply {
            Value::Int(n) => Ok(n > 0),
            other => Err(reply_error(Operation::Delete, Some(key), "DEL", other)),
        }
    }

    fn clear(&self) -> Result<()> {
        // Each round trip unlinks what the previous SCAN step found and takes the next step.
        let op = Operation::Clear;
        let mut cursor = 0;
        let mut found: Vec<Vec<u8>> = Vec::new();
        loop {
            let unlink = !found.is_empty();
            let replies = self.pool.run(op, None, |c: &mut Conn| {
                c.pipeline(1 + usize::from(unlink), |buf| {
                    if unlink {
                        resp::array(buf, found.len() + 1);
                        resp::bulk(buf, &[b"UNLINK"]);
                        for k in &found {
                            resp::bulk(buf, &[k]);
                        }
                    }
                    self.pack_scan(buf, cursor);
                })
            })?;
            let mut replies = replies.into_iter();
            if unlink {
                match replies.next() {
                    Some(Value::Int(_)) => {}
                    other => {
                        return Err(reply_error(op, None, "UNLINK", other.unwrap_or_default()));
                    }
                }
            }
            let scan = replies.next().unwrap_or_default();
            (cursor, found) = parse_scan(scan).map_err(|r| reply_error(op, None, "SCAN", r))?;
            if cursor == 0 {
                break;
            }
        }
        if !found.is_empty() {
            let reply = self.pool.run(op, None, |c| {
                c.query(|buf| {
                    resp::array(buf, found.len() + 1);
                    resp::bulk(buf, &[b"UNLINK"]);
                    for k in &found {
                        resp::bulk(buf, &[k]);
                    }
                })
            })?;
            if !matches!(reply, Value::Int(_)) {
                return Err(reply_error(op, None, "UNLINK", reply));
            }
        }
        Ok(())
    }

    fn len(&self) -> Result<usize> {
        let op = Operation::Len;
        if self.prefix.is_empty() {
            let reply = self.pool.run(op, None, |c| {
                c.query(|buf| resp::command(buf, &[&[b"DBSIZE"]]))
            })?;
            return match reply {
                Value::Int(n) => Ok(usize::try_from(n).unwrap_or(0)),
                other => Err(reply_error(op, None, "DBSIZE", other)),
            };
        }
        // SCAN may return a key twice (when the table is resized during the walk): count once.
        let mut seen = HashSet::new();
        let mut cursor = 0;
        loop {
            let (next, keys) = self.scan(op, cursor)?;
            seen.extend(keys);
            cursor = next;
            if cursor == 0 {
                return Ok(seen.len());
            }
        }
    }

    /// Redis expires entries by itself: nothing to do, returns 0.
    fn purge_expired(&self, _now: Timestamp) -> Result<usize> {
        Ok(0)
    }

    /// Redis expires entries by itself: always `None`.
    fn next_expiry(&self) -> Result<Option<Timestamp>> {
        Ok(None)
    }

    fn expires_natively(&self) -> bool {
        true
    }

    /// `SET NX PX` on a lease key beside the entries (see the crate docs); `now` is not used:
    /// the server times the lease.
    fn try_lease(
        &self,
        key: &str,
        token: LeaseToken,
        ttl: Duration,
        _now: Timestamp,
    ) -> Result<Lease> {
        self.lease(key, token, ttl)
    }

    fn release_lease(&self, key: &str, token: LeaseToken) -> Result<()> {
        self.unlease(key, token)
    }

    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Record>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let op = Operation::Get;
        let chunks: Vec<&[&str]> = keys.chunks(BATCH).collect();
        let replies = self.pool.run(op, None, |c| {
            c.pipeline(chunks.len(), |buf| {
                for chunk in &chunks {
                    self.pack_keys(buf, b"MGET", chunk);
                }
            })
        })?;
        let mut out = Vec::with_capacity(keys.len());
        for (chunk, reply) in chunks.iter().zip(replies) {
            match reply {
                Value::Array(values) if values.len() == chunk.len() => {
                    for (key, v) in chunk.iter().zip(values) {
                        out.push(record_from(key, v)?);
                    }
                }
                other => return Err(reply_error(op, None, "MGET", other)),
            }
        }
        Ok(out)
    }

    fn set_many(&self, entries: Vec<(String, Record)>) -> Result<()> {
        for chunk in entries.chunks(BATCH) {
            let replies = self.pool.run(Operation::Set, None, |c| {
                let now = Timestamp::now();
                c.pipeline(chunk.len(), |buf| {
                    for (k, r) in chunk {
                        self.pack_set(buf, k, r, now);
                    }
                })
            })?;
            for ((k, _), reply) in chunk.iter().zip(replies) {
                check_stored(k, reply)?;
            }
        }
        Ok(())
    }

    fn delete_many(&self, keys: &[&str]) -> Result<usize> {
        if keys.is_empty() {
            return Ok(0);
        }
        let op = Operation::Delete;
        let chunks: Vec<&[&str]> = keys.chunks(BATCH).collect();
        let replies = self.pool.run(op, None, |c| {
            c.pipeline(chunks.len(), |buf| {
                for chunk in &chunks {
                    self.pack_keys(buf, b"DEL", chunk);
                }
            })
        })?;
        let mut n = 0;
        for reply in replies {
            match reply {
                Value::Int(d) => n += usize::try_from(d).unwrap_or(0),
                other => return Err(reply_error(op, None, "DEL", other)),
            }
        }
        Ok(n)
    }
}

/// Builds a [`RedisBackend`].
///
/// Defaults:
/// - key prefix [`DEFAULT_KEY_PREFIX`] (`braincache:`), the same for every handle, so processes
///   share entries unless they pick different prefixes;
/// - pool size 16 connections, opened as needed;
/// - connect timeout 1 s, response timeout 1 s (per read or write on the socket); each call
///   ends by one deadline, their sum (2 s);
/// - connects and checks the server with `PING` in [`build`](Self::build) (see
///   [`connect_lazily`](Self::connect_lazily)).
///
/// ```no_run
/// use braincache::backend::RedisBackend;
/// use std::time::Duration;
///
/// # fn main() -> braincache::Result<()> {
/// let backend = RedisBackend::builder("redis://cache.internal:6379/2")
///     .key_prefix("billing:")
///     .pool_size(32)
///     .connect_timeout(Duration::from_millis(300))
///     .response_timeout(Duration::from_millis(200))
///     .build()?;
/// # let _ = backend;
/// # Ok(())
/// # }
/// ```
#[must_use]
#[derive(Clone)]
pub struct RedisBackendBuilder {
    url: String,
    net: NetOptions,
}

impl RedisBackendBuilder {
    fn new(url: &str) -> RedisBackendBuilder {
        RedisBackendBuilder {
            url: url.to_owned(),
            net: NetOptions::default(),
        }
    }

    braincache_core::net_setters! {
        net;
        /// Puts `prefix` in front of every key (default `braincache:`). An empty prefix makes the
        /// whole database the cache: `clear` then deletes every key of the database.
        key_prefix;
        /// Keeps at most `n` connections (at least 1; default 16). A call waits for a free one when
        /// all are busy (within its deadline: see [`response_timeout`](Self::response_timeout));
        /// more connections than threads that use the backend at once do not help.
        pool_size(usize);
        /// How long opening a connection may take, TCP and setup commands (`AUTH`, `SELECT`)
        /// together (default 1 s; at least 1 ms). [`build`](Self::build) connects and checks the
        /// server with `PING` within this time. Part of each call's deadline: see
        /// [`response_timeout`](Self::response_timeout).
        connect_timeout;
        /// How long one read or write on a connection may block (default 1 s; at least 1 ms). A
        /// server that stops answering makes calls fail after about this long.
        ///
        /// Every call has one deadline, `connect_timeout + response_timeout` after it began, that
        /// covers waiting for a free pooled connection, connecting and the reply: no call takes
        /// longer, however many threads share the pool (calls of several round trips, `clear`,
        /// `len` and large `set_many`, have one deadline per round trip). A write that timed out
        /// has an unknown outcome ([`Error::is_timeout`]; see the [crate docs](crate#faults)).
        response_timeout;
        /// [`build`](Self::build) only checks the URL and connects on first use, so an application
        /// can start before its Redis server (calls fail until the server is up). By default
        /// `build` connects and fails if the server does not answer.
        connect_lazily;
    }

    /// Creates the backend.
    ///
    /// # Errors
    /// [`Error::Backend`] with [`Operation::Open`] when the URL is invalid, or (unless
    /// [`connect_lazily`](Self::connect_lazily)) when the server cannot be reached or does not answer `PING`.
    pub fn build(self) -> Result<RedisBackend> {
        let open_error = |e: RedisError| {
            Error::backend(Operation::Open, BACKEND_NAME, None, ClientError::new(e))
        };
        let info = self
            .url
            .as_str()
            .into_connection_info()
            .map_err(open_error)?;
        // Requests are single small writes answered before the next one: Nagle's algorithm
        // would only add latency.
        let tcp = info.tcp_settings().clone().set_nodelay(true);
        // No `CLIENT SETINFO`: its two replies would each wait out the connect timeout on a
        // hung server (see `pool`).
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        let client = Client::open(info.set_tcp_settings(tcp).set_redis_settings(settings))
            .map_err(open_error)?;
        #[cfg(feature = "async")]
        let aio = aio::AsyncConn::new(
            client.clone(),
            self.net.connect_timeout(),
            self.net.response_timeout(),
        );
        let pool = Pool::new(client, &self.net);
        let backend = RedisBackend {
            pool,
            pattern: scan_pattern(self.net.key_prefix()),
            prefix: self.net.key_prefix().to_owned(),
            #[cfg(feature = "async")]
            aio,
        };
        if !self.net.lazy() {
            backend.pool.ping(Operation::Open)?;
        }
        Ok(backend)
    }
}

impl fmt::Debug for RedisBackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.net
            .debug_fields(
                f.debug_struct("RedisBackendBuilder")
                    .field("url", &redact(&self.url)),
            )
            .finish()
    }
}

/// The URL without its credentials, for `Debug`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Milliseconds from `now` to `deadline`, rounded up; `None` when the deadline is not after now.
fn ttl_millis(deadline: Timestamp, now: Timestamp) -> Option<u64> {
    let nanos = deadline
        .as_unix_nanos()
        .checked_sub(now.as_unix_nanos())
        .filter(|&n| n > 0)?;
    Some(nanos.div_ceil(1_000_000))
}

/// `prefix*` with the prefix's glob characters escaped.
fn scan_pattern(prefix: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(prefix.len() + 1);
    for &b in prefix.as_bytes() {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            p.push(b'\\');
        }
        p.push(b);
    }
    p.push(b'*');
    p
}

/// The record in a `GET`/`MGET` reply.
fn record_from(key: &str, reply: Value) -> Result<Option<Record>> {
    match reply {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => header::decode(key, bytes).map(Some),
        other => Err(reply_error(Operation::Get, Some(key), "GET", other)),
    }
}

/// Checks the reply to what [`RedisBackend::pack_set`] sent.
fn check_stored(key: &str, reply: Value) -> Result<()> {
    match reply {
        Value::Okay | Value::Int(_) => Ok(()),
        other => Err(reply_error(Operation::Set, Some(key), "SET", other)),
    }
}

/// Splits a `SCAN` reply into the next cursor and the keys; gives the reply back if malformed.
fn parse_scan(reply: Value) -> std::result::Result<(u64, Vec<Vec<u8>>), Value> {
    let Value::Array(mut parts) = reply else {
        return Err(reply);
    };
    let well_formed = parts.len() == 2
        && matches!(&parts[0], Value::BulkString(_))
        && matches!(&parts[1], Value::Array(ks) if ks.iter().all(|k| matches!(k, Value::BulkString(_))));
    if !well_formed {
        return Err(Value::Array(parts));
    }
    let (Some(Value::Array(keys)), Some(Value::BulkString(cursor))) = (parts.pop(), parts.pop())
    else {
        return Err(Value::Nil);
    };
    let Some(cursor) = std::str::from_utf8(&cursor)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return Err(Value::BulkString(cursor));
    };
    let keys = keys
        .into_iter()
        .filter_map(|k| match k {
            Value::BulkString(k) => Some(k),
            _ => None,
        })
        .collect();
    Ok((cursor, keys))
}

/// A reply that is not what the command returns: the server's error, or something unexpected.
fn reply_error(op: Operation, key: Option<&str>, command: &'static str, reply: Value) -> Error {
    match reply {
        Value::ServerError(e) => {
            Error::backend(op, BACKEND_NAME, key, ClientError::new(RedisError::from(e)))
        }
        other => Error::backend(op, BACKEND_NAME, key, UnexpectedReply::new(command, &other)),
    }
}

/// The server answered a command with a reply of the wrong shape.
#[derive(Debug)]
struct UnexpectedReply {
    command: &'static str,
    reply: String,
}

impl UnexpectedReply {
    fn new(command: &'static str, reply: &Value) -> UnexpectedReply {
        let mut reply = format!("{reply:?}");
        if reply.len() > 200 {
            let mut end = 200;
            while !reply.is_char_boundary(end) {
                end -= 1;
            }
            reply.truncate(end);
            reply.push('…');
        }
        UnexpectedReply { command, reply }
    }
}

impl fmt::Display for UnexpectedReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unexpected reply to {}: {}", self.command, self.reply)
    }
}

impl std::error::Error for UnexpectedReply {}

/// redis-rs's error as the source of a braincache error: its message, and below it the error's
/// own source only where that adds something. redis-rs puts an I/O error's message in its own
/// and also returns that I/O error as the source, so a chain printer (`anyhow`'s `{:#}`,
/// `testkit::error_chain`) would say it twice.
#[derive(Debug)]
pub(crate) struct ClientError {
    inner: RedisError,
    /// Said before the client's message: which client failed, where it is not the plain one.
    what: Option<&'static str>,
}

impl ClientError {
    pub(crate) fn new(inner: RedisError) -> ClientError {
        ClientError { inner, what: None }
    }

    /// An error of the Redis Cluster client.
    pub(crate) fn cluster(inner: RedisError) -> ClientError {
        ClientError {
            inner,
            what: Some("Redis Cluster client"),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.what {
            Some(what) => write!(f, "{what}: {}", self.inner),
            None => write!(f, "{}", self.inner),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let below = std::error::Error::source(&self.inner)?;
        (!self.inner.to_string().contains(&below.to_string())).then_some(below)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_and_refuses_the_past() {
        let now = Timestamp::from_unix_millis(1_000);
        assert_eq!(ttl_millis(now, now), None);
        assert_eq!(ttl_millis(Timestamp::from_unix_millis(999), now), None);
        assert_eq!(
            ttl_millis(Timestamp::from_unix_nanos(now.as_unix_nanos() + 1), now),
            Some(1)
        );
        assert_eq!(
            ttl_millis(Timestamp::from_unix_millis(1_500), now),
            Some(500)
        );
        assert_eq!(
            ttl_millis(
                Timestamp::from_unix_nanos(now.as_unix_nanos() + 1_000_001),
                now
            ),
            Some(2)
        );
        assert!(ttl_millis(Timestamp::MAX, now).is_some());
    }

    #[test]
    fn scan_pattern_escapes_globs() {
        assert_eq!(scan_pattern("braincache:"), b"braincache:*");
        assert_eq!(scan_pattern("a*b?[c]\\"), b"a\\*b\\?\\[c\\]\\\\*");
        assert_eq!(scan_pattern(""), b"*");
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact("redis://u:pw@host:1/0"), "redis://***@host:1/0");
        assert_eq!(redact("redis://host:1"), "redis://host:1");
    }

    #[test]
    fn invalid_urls_are_open_errors() {
        let e = RedisBackend::builder("http://nope")
            .connect_lazily()
            .build()
            .unwrap_err();
        assert_eq!(e.operation(), Some(Operation::Open));
    }

    #[test]
    fn scan_replies_are_checked() {
        let ok = Value::Array(vec![
            Value::BulkString(b"17".to_vec()),
            Value::Array(vec![Value::BulkString(b"p:a".to_vec())]),
        ]);
        assert_eq!(parse_scan(ok).unwrap(), (17, vec![b"p:a".to_vec()]));
        assert!(parse_scan(Value::Nil).is_err());
        assert!(
            parse_scan(Value::Array(vec![
                Value::BulkString(b"x".to_vec()),
                Value::Array(vec![])
            ]))
            .is_err()
        );
    }
}
