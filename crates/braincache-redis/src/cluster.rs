//! Redis Cluster: [`RedisBackend::connect_cluster`] and [`RedisClusterBackend`].
//!
//! Built on the `redis` crate's blocking cluster client (feature `cluster`): it fetches the slot
//! map from the nodes given, sends each command to the master that owns its key's slot (CRC16 of
//! the whole key, so no hash tags are needed and keys spread over every master), follows `MOVED`
//! (refreshing the slot map) and `ASK` redirections, and splits multi-key commands (`MGET`, `DEL`,
//! `UNLINK`) by slot.

use crate::ClientError;
use crate::header::Header;
use crate::{BATCH, RedisBackend, parse_scan, reply_error, scan_pattern};
use braincache_core::net::NetOptions;
use braincache_core::{Backend, Error, MsgPack, Operation, Record, Result, Timestamp};
use redis::cluster::{ClusterClient, ClusterConnection, cluster_pipe};
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, ConnectionLike, RedisError, RedisResult, Value};
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

impl RedisBackend {
    /// Connects to a Redis Cluster through any of its nodes (`redis://host:port` each; one is
    /// enough, more help when some are down), with the default settings (see
    /// [`RedisClusterBuilder`]).
    ///
    /// ```no_run
    /// use braincache_redis::RedisBackend;
    ///
    /// # fn main() -> braincache_core::Result<()> {
    /// let c = RedisBackend::connect_cluster(&["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"])?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Backend`] with [`Operation::Open`] when a URL is invalid or no node answers with
    /// the cluster's slot map within the timeouts.
    pub fn connect_cluster(nodes: &[&str]) -> Result<RedisClusterBackend> {
        RedisBackend::cluster_builder(nodes).build()
    }

    /// A builder for a Redis Cluster backend: key prefix, pool size, timeouts.
    pub fn cluster_builder(nodes: &[&str]) -> RedisClusterBuilder {
        RedisClusterBuilder {
            nodes: nodes.iter().map(|s| (*s).to_owned()).collect(),
            net: NetOptions::default(),
            retries: 2,
        }
    }
}

/// A cache on a Redis Cluster. Made by [`RedisBackend::connect_cluster`].
///
/// Keys and values are stored exactly as [`RedisBackend`] stores them (prefix + key, a header
/// with the deadline, `SET ... PX`), so the two read each other's entries.
///
/// - Keys are placed by the cluster's hash slots: CRC16 of the whole Redis key (prefix + key),
///   unless the key contains a `{hash tag}`, which Redis then honours. `MOVED` and `ASK` are
///   followed by the client.
/// - [`Backend::clear`] and [`Backend::len`] walk every master: `SCAN MATCH prefix*` on each,
///   and `UNLINK` of what was found (split by slot). Like [`RedisBackend`], they cost time in
///   proportion to the cluster's size. With a master down they fail with an error naming it,
///   after clearing or counting the others.
/// - A master down: commands for its slots fail with [`Error::Backend`] (after the connect
///   timeout and a bounded number of [retries](RedisClusterBuilder::retries)); keys of the
///   other masters keep working as long as the cluster serves them (set
///   `cluster-require-full-coverage no` on the servers, or the whole cluster refuses queries
///   once it marks the master as failed). When a replica takes over, the client follows the
///   new slot map.
/// - Batches: `get_many` is one `MGET` and `delete_many` one `DEL` (split by slot by the client);
///   `set_many` is a cluster pipeline, one per 512 entries.
pub struct RedisClusterBackend {
    client: ClusterClient,
    /// Connections, each opened on first use; a thread takes a free one or waits on one.
    conns: Vec<Mutex<Option<ClusterConnection>>>,
    next: AtomicUsize,
    prefix: String,
    pattern: Vec<u8>,
    response_timeout: Duration,
}

impl RedisClusterBackend {
    /// The prefix in front of every key this backend stores.
    #[must_use]
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The masters serving slots, as `host:port`, from the cluster's own view (`CLUSTER NODES`).
    ///
    /// # Errors
    /// [`Error::Backend`] when no node answers.
    pub fn masters(&self) -> Result<Vec<String>> {
        self.masters_for(Operation::Len)
    }

    fn masters_for(&self, op: Operation) -> Result<Vec<String>> {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("NODES");
        let reply = self.run(op, None, |c| {
            c.route_command(&cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random))
        })?;
        let text = match reply {
            Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            Value::VerbatimString { text, .. } => text,
            other => return Err(reply_error(op, None, "CLUSTER NODES", other)),
        };
        Ok(parse_masters(&text))
    }

    fn redis_key(&self, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(self.prefix.as_bytes());
        k.extend_from_slice(key.as_bytes());
        k
    }

    /// The command that stores `record` under `key` as of `now` (`DEL` when already expired).
    fn set_cmd(&self, key: &str, record: &Record, now: Timestamp) -> Cmd {
        let k = self.redis_key(key);
        match record.expires_at.map(|d| crate::ttl_millis(d, now)) {
            Some(None) => {
                let mut c = redis::cmd("DEL");
                c.arg(k);
                c
            }
            ttl => {
                let header = Header::of(record);
                let mut v = Vec::with_capacity(header.as_bytes().len() + record.value.len());
                v.extend_from_slice(header.as_bytes());
                v.extend_from_slice(&record.value);
                let mut c = redis::cmd("SET");
                c.arg(k).arg(v);
                if let Some(Some(ms)) = ttl {
                    c.arg("PX").arg(ms);
                }
                c
            }
        }
    }

    /// Runs `f` on a pooled cluster connection. A connection that saw a timeout is dropped (a
    /// node's socket may hold a late reply); the next call opens a new one. Other errors (a node
    /// refusing connections, a closed socket) are left to the client, which reconnects to that
    /// node on its next command, so a master down does not cost the healthy keys a reconnect.
    fn run<T>(
        &self,
        op: Operation,
        key: Option<&str>,
        f: impl FnOnce(&mut ClusterConnection) -> RedisResult<T>,
    ) -> Result<T> {
        let fail =
            |e: RedisError| Error::backend(op, crate::BACKEND_NAME, key, ClientError::cluster(e));
        let mut slot = self.checkout();
        if slot.is_none() {
            let conn = self.client.get_connection().map_err(fail)?;
            // The client sets read timeouts on the nodes' sockets; writes need one too, for a
            // node that stops reading (full socket buffers).
            conn.set_write_timeout(Some(self.response_timeout))
                .map_err(fail)?;
            *slot = Some(conn);
        }
        let Some(conn) = slot.as_mut() else {
            unreachable!("the slot was filled just above")
        };
        match f(conn) {
            Ok(v) => Ok(v),
            Err(e) => {
                if e.is_timeout() {
                    *slot = None;
                }
                Err(fail(e))
            }
        }
    }

    fn checkout(&self) -> MutexGuard<'_, Option<ClusterConnection>> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Ok(guard) = self.conns[(start + i) % n].try_lock() {
                return guard;
            }
        }
        self.conns[start]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn query(&self, op: Operation, key: Option<&str>, cmd: &Cmd) -> Result<Value> {
        self.run(op, key, |c| c.req_command(cmd))
    }

    /// One `SCAN` step on the master at `node`.
    fn scan(&self, op: Operation, node: &str, cursor: u64) -> Result<(u64, Vec<Vec<u8>>)> {
        let (host, port) = split_addr(node).ok_or_else(|| {
            Error::backend(
                op,
                crate::BACKEND_NAME,
                None,
                format!("bad node address {node:?}"),
            )
        })?;
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(&self.pattern)
            .arg("COUNT")
            .arg(BATCH);
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: host.to_owned(),
            port,
        });
        let reply = self
            .run(op, None, |c| c.route_command(&cmd, route))
            .map_err(|e| with_node(e, node))?;
        parse_scan(reply).map_err(|r| with_node(reply_error(op, None, "SCAN", r), node))
    }

    /// Walks every master, calling `found` with each batch of keys; returns the first error
    /// after visiting all the masters it could.
    fn walk(&self, op: Operation, mut found: impl FnMut(Vec<Vec<u8>>) -> Result<()>) -> Result<()> {
        let mut first_error = None;
        for node in self.masters_for(op)? {
            let mut cursor = 0;
            let walked = (|| {
                for _ in 0..u32::MAX {
                    let (next, keys) = self.scan(op, &node, cursor)?;
                    if !keys.is_empty() {
                        found(keys)?;
                    }
                    cursor = next;
                    if cursor == 0 {
                        break;
                    }
                }
                Ok(())
            })();
            if let Err(e) = walked {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl fmt::Debug for RedisClusterBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClusterBackend")
            .field("key_prefix", &self.prefix)
            .field("pool_size", &self.conns.len())
            .field("response_timeout", &self.response_timeout)
            .finish_non_exhaustive()
    }
}

impl Backend for RedisClusterBackend {
    type Codec = MsgPack;

    fn get(&self, key: &str) -> Result<Option<Record>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.redis_key(key));
        let reply = self.query(Operation::Get, Some(key), &cmd)?;
        crate::record_from(key, reply)
    }

    fn set(&self, key: &str, record: Record) -> Result<()> {
        self.set_at(key, record, Timestamp::now())
    }

    /// The time to live sent (`PX`) is the record's deadline minus `now`.
    fn set_at(&self, key: &str, record: Record, now: Timestamp) -> Result<()> {
        let cmd = self.set_cmd(key, &record, now);
        let reply = self.query(Operation::Set, Some(key), &cmd)?;
        crate::check_stored(key, reply)
    }

    fn delete(&self, key: &str) -> Result<bool> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.redis_key(key));
        match self.query(Operation::Delete, Some(key), &cmd)? {
            Value::Int(n) => Ok(n > 0),
            other => Err(reply_error(Operation::Delete, Some(key), "DEL", other)),
        }
    }

    fn clear(&self) -> Result<()> {
        let op = Operation::Clear;
        self.walk(op, |keys| {
            let mut cmd = redis::cmd("UNLINK");
            for k in &keys {
                cmd.arg(k);
            }
            match self.query(op, None, &cmd)? {
                Value::Int(_) => Ok(()),
                other => Err(reply_error(op, None, "UNLINK", other)),
            }
        })
    }

    fn len(&self) -> Result<usize> {
        // SCAN may return a key twice: count once.
        let mut seen = HashSet::new();
        self.walk(Operation::Len, |keys| {
            seen.extend(keys);
            Ok(())
        })?;
        Ok(seen.len())
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

    /// `SET NX PX` on the lease key's master (see `cluster_lease.rs`).
    fn try_lease(
        &self,
        key: &str,
        token: braincache_core::LeaseToken,
        ttl: Duration,
        _now: Timestamp,
    ) -> Result<braincache_core::Lease> {
        crate::cluster_lease::try_lease(self, key, token, ttl)
    }

    /// Deletes the lease while `token` holds it.
    fn release_lease(&self, key: &str, token: braincache_core::LeaseToken) -> Result<()> {
        crate::cluster_lease::release_lease(self, key, token)
    }

    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Record>>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH) {
            let mut cmd = redis::cmd("MGET");
            for k in chunk {
                cmd.arg(self.redis_key(k));
            }
            match self.query(Operation::Get, None, &cmd)? {
                Value::Array(values) if values.len() == chunk.len() => {
                    for (key, v) in chunk.iter().zip(values) {
                        out.push(crate::record_from(key, v)?);
                    }
                }
                other => return Err(reply_error(Operation::Get, None, "MGET", other)),
            }
        }
        Ok(out)
    }

    fn set_many(&self, entries: Vec<(String, Record)>) -> Result<()> {
        for chunk in entries.chunks(BATCH) {
            let now = Timestamp::now();
            let mut pipe = cluster_pipe();
            for (k, r) in chunk {
                pipe.add_command(self.set_cmd(k, r, now));
            }
            let replies: Vec<Value> = self.run(Operation::Set, None, |c| pipe.query(c))?;
            for ((k, _), reply) in chunk.iter().zip(replies) {
                crate::check_stored(k, reply)?;
            }
        }
        Ok(())
    }

    fn delete_many(&self, keys: &[&str]) -> Result<usize> {
        let mut n = 0;
        for chunk in keys.chunks(BATCH) {
            let mut cmd = redis::cmd("DEL");
            for k in chunk {
                cmd.arg(self.redis_key(k));
            }
            match self.query(Operation::Delete, None, &cmd)? {
                Value::Int(d) => n += usize::try_from(d).unwrap_or(0),
                other => return Err(reply_error(Operation::Delete, None, "DEL", other)),
            }
        }
        Ok(n)
    }
}

/// Builds a [`RedisClusterBackend`]; made by [`RedisBackend::cluster_builder`].
///
/// Defaults: key prefix [`DEFAULT_KEY_PREFIX`](crate::DEFAULT_KEY_PREFIX); 16 cluster
/// connections (each holds one socket per node), opened as needed; connect and response timeouts
/// 1 s; 2 retries of a failed command; connects and reads the slot map in [`build`](Self::build)
/// (see [`connect_lazily`](Self::connect_lazily)).
///
/// ```no_run
/// use braincache_redis::RedisBackend;
/// use std::time::Duration;
///
/// # fn main() -> braincache_core::Result<()> {
/// let backend = RedisBackend::cluster_builder(&["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
///     .key_prefix("billing:")
///     .pool_size(8)
///     .response_timeout(Duration::from_millis(200))
///     .build()?;
/// # let _ = backend;
/// # Ok(())
/// # }
/// ```
#[must_use]
#[derive(Clone)]
pub struct RedisClusterBuilder {
    nodes: Vec<String>,
    net: NetOptions,
    retries: u32,
}

impl RedisClusterBuilder {
    braincache_core::net_setters! {
        net;
        /// Puts `prefix` in front of every key (default `braincache:`).
        key_prefix;
        /// Keeps at most `n` cluster connections (at least 1; default 16).
        pool_size(usize);
        /// How long connecting to one node may take (default 1 s; at least 1 ms).
        connect_timeout;
        /// How long one read or write on a node's connection may block (default 1 s; at least 1
        /// ms).
        response_timeout;
        /// [`build`](Self::build) only checks the URLs and connects on first use. By default
        /// `build` connects and fails if no node answers.
        connect_lazily;
    }

    /// How many times the client retries a command that failed on a node (default 2): each
    /// retry reconnects, follows a redirection or refreshes the slot map. A master that is down
    /// fails its keys after about `(retries + 1) × connect timeout`.
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// Creates the backend.
    ///
    /// # Errors
    /// [`Error::Backend`] with [`Operation::Open`] when a URL is invalid, or (unless
    /// [`connect_lazily`](Self::connect_lazily)) when no node answers with the slot map.
    pub fn build(self) -> Result<RedisClusterBackend> {
        let open_error = |e: RedisError| {
            Error::backend(
                Operation::Open,
                crate::BACKEND_NAME,
                None,
                ClientError::cluster(e),
            )
        };
        let tcp = redis::io::tcp::TcpSettings::default().set_nodelay(true);
        let client = ClusterClient::builder(self.nodes.iter().map(String::as_str))
            .connection_timeout(self.net.connect_timeout())
            .response_timeout(self.net.response_timeout())
            .retries(self.retries)
            .tcp_settings(tcp)
            .build()
            .map_err(open_error)?;
        let backend = RedisClusterBackend {
            client,
            conns: (0..self.net.pool_size())
                .map(|_| Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
            pattern: scan_pattern(self.net.key_prefix()),
            prefix: self.net.key_prefix().to_owned(),
            response_timeout: self.net.response_timeout(),
        };
        if !self.net.lazy() {
            // Opening a cluster connection reads the slot map from the first node that answers
            // and connects to the masters that are up. (Not `PING`: the client sends it to every
            // node, so one master down would fail it.)
            backend.run(Operation::Open, None, |_| Ok(()))?;
        }
        Ok(backend)
    }
}

impl fmt::Debug for RedisClusterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes: Vec<String> = self.nodes.iter().map(|n| crate::redact(n)).collect();
        self.net
            .debug_fields(f.debug_struct("RedisClusterBuilder").field("nodes", &nodes))
            .field("retries", &self.retries)
            .finish()
    }
}

/// Names the node an error of a per-master step came from.
fn with_node(e: Error, node: &str) -> Error {
    match e {
        Error::Backend {
            op, key, source, ..
        } => Error::backend(
            op,
            crate::BACKEND_NAME,
            key.as_deref(),
            OnNode {
                node: node.to_owned(),
                source,
            },
        ),
        other => other,
    }
}

/// An error of a per-master step: which master, and the error (kept as the source, so its own
/// chain is not flattened into a string).
#[derive(Debug)]
struct OnNode {
    node: String,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl fmt::Display for OnNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "on master {}", self.node)
    }
}

impl std::error::Error for OnNode {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

fn split_addr(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    Some((
        host.trim_start_matches('[').trim_end_matches(']'),
        port.parse().ok()?,
    ))
}

/// The `host:port` of every master that serves slots, from `CLUSTER NODES` output. Masters
/// marked failed are kept: their slots are still theirs until a replica takes over, so walking
/// them reports the failure instead of skipping their keys.
fn parse_masters(nodes: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(addr), Some(flags)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        let serves_slots = fields.len() > 8;
        if flags.split(',').any(|f| f == "master") && serves_slots {
            // `ip:port@cport[,hostname]`
            let addr = addr.split(['@', ',']).next().unwrap_or(addr);
            out.push(addr.to_owned());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_are_parsed_from_cluster_nodes() {
        let text = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@40003,host3 master,fail - 0 1426238318243 3 disconnected 10923-16383
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
9999 127.0.0.1:30005@40005 master - 0 0 5 connected
";
        assert_eq!(
            parse_masters(text),
            ["127.0.0.1:30001", "127.0.0.1:30002", "127.0.0.1:30003"]
        );
        assert_eq!(split_addr("127.0.0.1:7000"), Some(("127.0.0.1", 7000)));
        assert_eq!(split_addr("[::1]:7000"), Some(("::1", 7000)));
        assert_eq!(split_addr("nope"), None);
    }
}
