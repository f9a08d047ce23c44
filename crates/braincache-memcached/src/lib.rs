//! The Memcached backend of [braincache](https://docs.rs/braincache): one cache shared by every
//! process and machine that can reach a set of memcached servers.
//!
//! ```no_run
//! use braincache_core::{Backend, Record, Timestamp};
//! use braincache_memcached::MemcachedBackend;
//! use std::time::Duration;
//!
//! # fn main() -> braincache_core::Result<()> {
//! let backend = MemcachedBackend::builder("memcache://10.0.0.1:11211")
//!     .server("memcache://10.0.0.2:11211") // keys spread over both by consistent hashing
//!     .key_prefix("myapp:")
//!     .pool_size(8)
//!     .response_timeout(Duration::from_millis(500))
//!     .build()?; // connects to every server: an error here if one is unreachable
//!
//! let deadline = Timestamp::now() + Duration::from_secs(60);
//! backend.set("k", Record::new(b"v".to_vec(), Some(deadline)))?;
//! assert_eq!(backend.get("k")?, Some(Record::new(b"v".to_vec(), Some(deadline))));
//! assert!(backend.len().unwrap_err().is_unsupported()); // memcached cannot count
//! # Ok(())
//! # }
//! ```
//!
//! Applications normally use it through the facade:
//! `BrainCache::new(MemcachedBackend::connect(url)?)` (feature `memcached` of `braincache`).
//! The client is the [`memcache`](https://docs.rs/memcache) crate, over memcached's text
//! protocol; each server has its own pool of connections.
//!
//! # Several servers
//! Keys are spread by consistent hashing (ketama-like): each server, named by `host:port` as
//! given in its URL, owns 160 points on a 64-bit ring at `xxh3_64("host:port#i")`; a key goes to
//! the owner of the first point at or after `xxh3_64(prefix + key)`. Every process that lists the
//! same servers, in any order, sends a key to the same server, and adding a server to `n` moves
//! about `1/(n+1)` of the keys (they read as misses once). There is no replication: a key lives on
//! one server, and while that server is down its keys fail with errors and the others work.
//!
//! # Keys
//! The memcached key is `prefix + generation + "=" + key` when that is at most 250 bytes of
//! printable ASCII without spaces (memcached's rule). Any other key — longer, with spaces,
//! control characters or non-ASCII characters — is stored under `prefix + generation + "#" +` the
//! 128-bit `xxh3` digest of the key in hex, and the full key is kept in the stored record: a `get`
//! whose digest matches but whose full key differs (a collision) is a miss, never another key's
//! value, and `delete` leaves the other key alone.
//!
//! # Values and expiry
//! The stored value is a small header (format version, deadline in nanoseconds, the full key when
//! digested) followed by the encoded value, so [`Backend::get`] returns the record exactly as it
//! was set. Memcached keeps whole seconds: the TTL sent is the deadline minus the system clock's
//! now, **rounded up**, and a TTL over 30 days is sent as an absolute Unix time (memcached's
//! rule). So memcached may keep a record up to a second past its deadline; the front end
//! (`BrainCache::get`) compares the record's own deadline with its clock and never returns an
//! expired value. A deadline at or before now deletes the key. An item (header + value) larger
//! than [`item_limit`](MemcachedBackendBuilder::item_limit) (1 MiB, memcached's default) is refused
//! before it is sent with an [`Error::Backend`] whose source is [`ValueTooLarge`] naming the limit;
//! a server started with a smaller `-I` refuses it the same way.
//!
//! # Clear, len and next_expiry
//! Memcached cannot list or count keys by prefix, so [`Backend::clear`] never calls `flush_all`:
//! every key contains a namespace *generation* kept on the servers (under `prefix + "gen"`), and
//! `clear` increments it. Entries of older generations can no longer be read and are reclaimed by
//! memcached's LRU or their TTL; other prefixes are untouched. A handle re-reads the generation at
//! most every [`generation_refresh`](MemcachedBackendBuilder::generation_refresh) (1 s by
//! default): a `clear` by this handle is seen at once, by another handle or process within that
//! time. If the generation is lost (its server restarted, or LRU evicted it), a new random one is
//! made, which also empties the cache.
//!
//! [`Backend::len`] and [`Backend::next_expiry`] return [`Error::Unsupported`]: memcached cannot
//! answer them. Memcached expires entries by itself, so [`Backend::purge_expired`] returns 0.
//!
//! # Faults
//! - A server down: calls on its keys fail with [`Error::Backend`] (backend `"memcached"`, the
//!   operation and key, the server's address) after at most the
//!   [connect timeout](MemcachedBackendBuilder::connect_timeout); keys on other servers keep
//!   working.
//! - A server hung (`SIGSTOP`): calls fail after the
//!   [response timeout](MemcachedBackendBuilder::response_timeout) with an error for which
//!   [`Error::is_timeout`] is true; for a write the message says the outcome is unknown (the
//!   server may apply it when it wakes).
//! - Recovery needs no new backend: after an I/O error a server's connections are all replaced,
//!   and a call whose connection was found closed (the server restarted) is retried once on a
//!   new one. The commands are idempotent, with one imprecision: a `delete` that reached the
//!   server before its connection broke reports the key as absent on the retry.
//! - Durability is memcached's: none. A restarted server is empty.

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod frame;
mod lease;
mod ring;
mod server;

pub use server::ValueTooLarge;

use braincache_core::net::NetOptions;
use braincache_core::{
    Backend, Error, Lease, LeaseToken, MsgPack, Operation, Record, Result, Timestamp,
};
use ring::Ring;
use server::{Call, Server};
use std::collections::HashMap;
use std::fmt;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

/// The key prefix used unless [`MemcachedBackendBuilder::key_prefix`] sets another
/// (`braincache:`, the default of every networked backend:
/// [`braincache_core::net::DEFAULT_KEY_PREFIX`]).
pub const DEFAULT_KEY_PREFIX: &str = braincache_core::net::DEFAULT_KEY_PREFIX;

/// Memcached's default item size limit (its `-I` option), 1 MiB.
pub const DEFAULT_ITEM_LIMIT: usize = 1 << 20;

/// This backend's name in errors: the `backend` field of [`Error::Backend`] and
/// [`Error::Unsupported`] (`"memcached"`).
pub const BACKEND_NAME: &str = "memcached";

/// Memcached's longest key.
const MAX_KEY: usize = 250;

/// TTLs above this many seconds are absolute Unix times to memcached.
const RELATIVE_TTL_MAX: u64 = 30 * 24 * 3600;

/// Longest prefix: leaves room for the generation (20 digits), a marker and a 32-digit digest.
const MAX_PREFIX: usize = MAX_KEY - 20 - 1 - 32;

/// A cache on one or more memcached servers. See the [crate docs](crate).
pub struct MemcachedBackend {
    servers: Vec<Server>,
    ring: Ring,
    prefix: String,
    gen_key: String,
    item_limit: usize,
    refresh: Duration,
    /// The namespace generation and when it was last read from the server.
    generation: RwLock<Option<(u64, Instant)>>,
    digest: fn(&str) -> u128,
}

impl MemcachedBackend {
    /// Connects to the server at `url` (`memcache://host:port`) with the default settings (see
    /// [`MemcachedBackendBuilder`]).
    ///
    /// # Errors
    /// [`Error::Backend`] with [`Operation::Open`] when the URL is invalid or the server does
    /// not answer within the connect and response timeouts.
    pub fn connect(url: &str) -> Result<MemcachedBackend> {
        MemcachedBackend::builder(url).build()
    }

    /// A builder starting from the server at `url`; add more with
    /// [`server`](MemcachedBackendBuilder::server).
    pub fn builder(url: &str) -> MemcachedBackendBuilder {
        MemcachedBackendBuilder::new(url)
    }

    /// The prefix in front of every key this backend stores.
    #[must_use]
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The servers, as `host:port`, in the order they were given.
    #[must_use]
    pub fn servers(&self) -> Vec<&str> {
        self.servers.iter().map(|s| s.addr.as_str()).collect()
    }

    /// The server (`host:port`) that holds `key`.
    #[must_use]
    pub fn server_for(&self, key: &str) -> &str {
        &self.server_of(key).addr
    }

    fn server_of(&self, key: &str) -> &Server {
        &self.servers[self.ring.server(ring::key_hash(&self.prefix, key))]
    }

    /// The memcached key for `key` under generation `gen`, and whether it is a digest.
    fn store_key(&self, generation: u64, key: &str) -> (String, bool) {
        let plain = format!("{}{generation}={key}", self.prefix);
        if plain.len() <= MAX_KEY && key.bytes().all(|b| b.is_ascii_graphic()) {
            (plain, false)
        } else {
            (
                format!("{}{generation}#{:032x}", self.prefix, (self.digest)(key)),
                true,
            )
        }
    }

    /// The current namespace generation: cached, re-read every `refresh`, made when missing.
    fn generation(&self, op: Operation) -> Result<u64> {
        if let Some((g, at)) = *self
            .generation
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            && at.elapsed() < self.refresh
        {
            return Ok(g);
        }
        match self.read_generation(op) {
            Ok(g) => {
                self.set_generation(g);
                Ok(g)
            }
            Err(e) => {
                // Keep serving with the last known generation while its server is unreachable
                // (keys on other servers keep working), and try it again after `refresh`.
                let mut cached = self
                    .generation
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                match cached.as_mut() {
                    Some((g, at)) => {
                        *at = Instant::now();
                        Ok(*g)
                    }
                    None => Err(e),
                }
            }
        }
    }

    fn set_generation(&self, g: u64) {
        *self
            .generation
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some((g, Instant::now()));
    }

    fn gen_server(&self) -> &Server {
        &self.servers[self.ring.server(ring::key_hash("", &self.gen_key))]
    }

    fn read_generation(&self, op: Operation) -> Result<u64> {
        let server = self.gen_server();
        let call = Call {
            op,
            key: None,
            write: false,
            size: 0,
        };
        for _ in 0..3 {
            let got: Option<String> = server.run(call, |c| c.get(&self.gen_key))?;
            if let Some(s) = got {
                return s.trim().parse().map_err(|e| {
                    Error::corrupt_entry(
                        &self.gen_key,
                        format!("the namespace generation {s:?} is not a number: {e}"),
                    )
                });
            }
            // Missing (first use, server restarted, evicted): start a new random generation, so
            // entries of any earlier one stay unreadable. `add` loses to a concurrent creator.
            let fresh = random_generation();
            let added = server.run(
                Call {
                    write: true,
                    ..call
                },
                |c| match c.add(&self.gen_key, fresh.to_string().as_str(), 0) {
                    Ok(()) => Ok(true),
                    Err(memcache::MemcacheError::CommandError(
                        memcache::CommandError::KeyExists | memcache::CommandError::KeyNotFound,
                    )) => Ok(false),
                    Err(e) => Err(e),
                },
            )?;
            if added {
                return Ok(fresh);
            }
        }
        Err(Error::backend(
            op,
            BACKEND_NAME,
            None,
            format!(
                "the namespace generation {:?} on {} kept changing while being read",
                self.gen_key, server.addr
            ),
        ))
    }

    fn call(op: Operation, key: &str, write: bool, size: usize) -> Call<'_> {
        Call {
            op,
            key: Some(key),
            write,
            size,
        }
    }
}

impl fmt::Debug for MemcachedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedBackend")
            .field("servers", &self.servers)
            .field("key_prefix", &self.prefix)
            .field("item_limit", &self.item_limit)
            .field("generation_refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl Backend for MemcachedBackend {
    type Codec = MsgPack;

    fn get(&self, key: &str) -> Result<Option<Record>> {
        let generation = self.generation(Operation::Get)?;
        let (skey, digested) = self.store_key(generation, key);
        let call = Self::call(Operation::Get, key, false, 0);
        let got: Option<Vec<u8>> = self.server_of(key).run(call, |c| c.get(&skey))?;
        let Some(bytes) = got else {
            return Ok(None);
        };
        let (stored_key, record) = frame::decode(key, bytes)?;
        if digested && stored_key.as_deref() != Some(key) {
            return Ok(None); // another key with the same digest: a miss
        }
        Ok(Some(record))
    }

    fn set(&self, key: &str, record: Record) -> Result<()> {
        self.set_at(key, record, Timestamp::now())
    }

    /// The expiration time sent is computed from the record's deadline and `now`.
    fn set_at(&self, key: &str, record: Record, now: Timestamp) -> Result<()> {
        let generation = self.generation(Operation::Set)?;
        let (skey, digested) = self.store_key(generation, key);
        let server = self.server_of(key);
        let Some(exptime) = exptime(record.expires_at, now) else {
            // Already expired: memcached has no "expire now", so remove what is there.
            let call = Self::call(Operation::Set, key, true, 0);
            server.run(call, |c| c.delete(&skey))?;
            return Ok(());
        };
        let bytes = frame::encode(digested.then_some(key), &record);
        if bytes.len() > self.item_limit {
            return Err(Error::backend(
                Operation::Set,
                BACKEND_NAME,
                Some(key),
                ValueTooLarge::new(bytes.len(), self.item_limit),
            ));
        }
        let call = Self::call(Operation::Set, key, true, bytes.len());
        server.run(call, |c| c.set(&skey, bytes.as_slice(), exptime))
    }

    fn delete(&self, key: &str) -> Result<bool> {
        let generation = self.generation(Operation::Delete)?;
        let (skey, digested) = self.store_key(generation, key);
        let server = self.server_of(key);
        if digested {
            // Only remove the record if it is this key's, not a colliding one's.
            let call = Self::call(Operation::Delete, key, false, 0);
            let got: Option<Vec<u8>> = server.run(call, |c| c.get(&skey))?;
            match got.map(|b| frame::decode(key, b)).transpose()? {
                Some((Some(k), _)) if k == key => {}
                _ => return Ok(false),
            }
        }
        let call = Self::call(Operation::Delete, key, true, 0);
        server.run(call, |c| c.delete(&skey))
    }

    /// Bumps the namespace generation (see the crate docs): this handle sees an empty cache at
    /// once, other handles within their generation refresh. Never `flush_all`.
    fn clear(&self) -> Result<()> {
        let server = self.gen_server();
        let call = Call {
            op: Operation::Clear,
            key: None,
            write: true,
            size: 0,
        };
        for _ in 0..3 {
            let bumped = server.run(call, |c| match c.increment(&self.gen_key, 1) {
                Ok(g) => Ok(Some(g)),
                Err(memcache::MemcacheError::CommandError(memcache::CommandError::KeyNotFound)) => {
                    Ok(None)
                }
                Err(e) => Err(e),
            })?;
            if let Some(g) = bumped {
                self.set_generation(g);
                return Ok(());
            }
            // No generation yet (or lost): any new one clears.
            let g = self.read_generation(Operation::Clear)?;
            if self
                .generation
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .is_none_or(|(old, _)| old != g)
            {
                self.set_generation(g);
                return Ok(());
            }
        }
        Err(Error::backend(
            Operation::Clear,
            BACKEND_NAME,
            None,
            format!(
                "could not bump the namespace generation {:?} on {}",
                self.gen_key, server.addr
            ),
        ))
    }

    /// Always [`Error::Unsupported`]: memcached cannot count the keys of a prefix.
    fn len(&self) -> Result<usize> {
        Err(Error::unsupported(
            Operation::Len,
            BACKEND_NAME,
            "memcached cannot count or list keys",
        ))
    }

    /// Always [`Error::Unsupported`], like [`len`](Backend::len).
    fn is_empty(&self) -> Result<bool> {
        self.len().map(|n| n == 0)
    }

    /// Memcached expires entries by itself: nothing to do, returns 0.
    fn purge_expired(&self, _now: Timestamp) -> Result<usize> {
        Ok(0)
    }

    /// Always [`Error::Unsupported`]: memcached cannot list deadlines (it expires entries itself).
    fn next_expiry(&self) -> Result<Option<Timestamp>> {
        Err(Error::unsupported(
            Operation::NextExpiry,
            BACKEND_NAME,
            "memcached cannot list deadlines; it expires entries by itself",
        ))
    }

    /// `add` of a lease key beside the entry (see `lease.rs`); `now` is not used: the server
    /// times the lease.
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

    fn expires_natively(&self) -> bool {
        true
    }

    /// One `gets` round trip per server holding some of the keys.
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Record>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let generation = self.generation(Operation::Get)?;
        let skeys: Vec<(String, bool)> =
            keys.iter().map(|k| self.store_key(generation, k)).collect();
        let mut by_server: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            let s = self.ring.server(ring::key_hash(&self.prefix, k));
            by_server.entry(s).or_default().push(i);
        }
        let mut out = vec![None; keys.len()];
        for (s, idx) in by_server {
            let names: Vec<&str> = idx.iter().map(|&i| skeys[i].0.as_str()).collect();
            let call = Call {
                op: Operation::Get,
                key: None,
                write: false,
                size: 0,
            };
            let mut found: HashMap<String, Vec<u8>> =
                self.servers[s].run(call, |c| c.gets(&names))?;
            for i in idx {
                let Some(bytes) = found.remove(&skeys[i].0) else {
                    continue;
                };
                let (stored_key, record) = frame::decode(keys[i], bytes)?;
                if !skeys[i].1 || stored_key.as_deref() == Some(keys[i]) {
                    out[i] = Some(record);
                }
            }
        }
        Ok(out)
    }
}

/// The expiry to send for `deadline` as of `now`: 0 for none, whole seconds rounded up, an
/// absolute Unix time (rounded up) past 30 days; `None` when the deadline is not after now.
fn exptime(deadline: Option<Timestamp>, now: Timestamp) -> Option<u32> {
    let Some(d) = deadline else {
        return Some(0);
    };
    let nanos = d
        .as_unix_nanos()
        .checked_sub(now.as_unix_nanos())
        .filter(|&n| n > 0)?;
    let secs = nanos.div_ceil(1_000_000_000);
    if secs <= RELATIVE_TTL_MAX {
        return Some(u32::try_from(secs).unwrap_or(u32::MAX));
    }
    let at = d.as_unix_nanos().div_ceil(1_000_000_000);
    // memcached reads exptime as a signed 32-bit number: a deadline past 2038-01-19 would read
    // as negative, that is already expired. Such entries are stored without an expiry; the
    // record's own deadline still decides when they stop being returned.
    Some(
        u32::try_from(at)
            .ok()
            .filter(|&t| t <= i32::MAX as u32)
            .unwrap_or(0),
    )
}

/// A new namespace generation: random, below 2^62 so `incr` never wraps in practice.
fn random_generation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Timestamp::now().as_unix_nanos().into());
    h.finish() >> 2
}

fn xxh3_digest(key: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(key.as_bytes())
}

/// Builds a [`MemcachedBackend`].
///
/// Defaults:
/// - key prefix [`DEFAULT_KEY_PREFIX`] (`braincache:`), the same for every handle, so processes
///   share entries unless they pick different prefixes;
/// - pool size 16 connections per server, opened as needed;
/// - connect timeout 1 s, response timeout 1 s (per read or write on the socket);
/// - item limit [`DEFAULT_ITEM_LIMIT`] (1 MiB, memcached's default `-I`);
/// - generation refresh 1 s (how soon a `clear` by another handle is seen);
/// - connects to every server and checks it answers in [`build`](Self::build) (see
///   [`connect_lazily`](Self::connect_lazily)).
///
/// ```no_run
/// use braincache_memcached::MemcachedBackend;
/// use std::time::Duration;
///
/// # fn main() -> braincache_core::Result<()> {
/// let backend = MemcachedBackend::builder("memcache://cache-1.internal:11211")
///     .servers(["memcache://cache-2.internal:11211", "memcache://cache-3.internal:11211"])
///     .key_prefix("billing:")
///     .pool_size(32)
///     .connect_timeout(Duration::from_millis(300))
///     .response_timeout(Duration::from_millis(200))
///     .item_limit(4 << 20) // the servers run with -I 4m
///     .build()?;
/// # let _ = backend;
/// # Ok(())
/// # }
/// ```
#[must_use]
#[derive(Clone)]
pub struct MemcachedBackendBuilder {
    urls: Vec<String>,
    net: NetOptions,
    item_limit: usize,
    refresh: Duration,
    digest: fn(&str) -> u128,
}

impl MemcachedBackendBuilder {
    fn new(url: &str) -> MemcachedBackendBuilder {
        MemcachedBackendBuilder {
            urls: vec![url.to_owned()],
            net: NetOptions::default(),
            item_limit: DEFAULT_ITEM_LIMIT,
            refresh: Duration::from_secs(1),
            digest: xxh3_digest,
        }
    }

    /// Adds a server (`memcache://host:port`); keys are spread over all of them.
    pub fn server(mut self, url: &str) -> Self {
        self.urls.push(url.to_owned());
        self
    }

    /// Adds several servers.
    pub fn servers<'a>(mut self, urls: impl IntoIterator<Item = &'a str>) -> Self {
        self.urls.extend(urls.into_iter().map(str::to_owned));
        self
    }

    braincache_core::net_setters! {
        net;
        /// Puts `prefix` in front of every key (default `braincache:`). It must be printable ASCII
        /// without spaces, at most 197 bytes ([`build`](Self::build) refuses others).
        key_prefix;
        /// Keeps at most `n` connections per server (at least 1; default 16).
        pool_size(u32);
        /// How long getting a connection may take (default 1 s; at least 1 ms). A server that is
        /// down makes calls on its keys fail after about this long.
        connect_timeout;
        /// How long one read or write on a connection may block (default 1 s; at least 1 ms). A
        /// server that stops answering makes calls fail after about this long.
        response_timeout;
        /// [`build`](Self::build) only checks the URLs and connects on first use. By default
        /// `build` fails if a server does not answer.
        connect_lazily;
    }

    /// The largest item (braincache's header of at most 14 bytes plus the full key for long
    /// keys, plus the encoded value) a `set` sends (default [`DEFAULT_ITEM_LIMIT`], 1 MiB). Set it
    /// to the servers' `-I`; larger items are refused with [`ValueTooLarge`].
    pub fn item_limit(mut self, bytes: usize) -> Self {
        self.item_limit = bytes;
        self
    }

    /// How often the namespace generation is re-read from the server (default 1 s): a `clear`
    /// by another handle or process is seen within this time. `Duration::ZERO` reads it before
    /// every call (one more round trip per call).
    pub fn generation_refresh(mut self, every: Duration) -> Self {
        self.refresh = every;
        self
    }

    /// Replaces the key digest, to force collisions in tests.
    #[cfg(test)]
    pub(crate) fn digest(mut self, f: fn(&str) -> u128) -> Self {
        self.digest = f;
        self
    }

    /// Creates the backend.
    ///
    /// # Errors
    /// [`Error::Backend`] with [`Operation::Open`] when a URL or the prefix is invalid, or
    /// (unless [`connect_lazily`](Self::connect_lazily)) when a server cannot be reached.
    pub fn build(self) -> Result<MemcachedBackend> {
        let open_error = |msg: String| Error::backend(Operation::Open, "memcached", None, msg);
        let prefix = self.net.key_prefix();
        if prefix.len() > MAX_PREFIX || !prefix.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(open_error(format!(
                "invalid key prefix {prefix:?}: it must be printable ASCII without spaces, at \
                 most {MAX_PREFIX} bytes"
            )));
        }
        let mut servers = Vec::with_capacity(self.urls.len());
        for url in &self.urls {
            let s = Server::new(url, &self.net).map_err(open_error)?;
            if servers.iter().any(|o: &Server| o.addr == s.addr) {
                return Err(open_error(format!("server {} is listed twice", s.addr)));
            }
            servers.push(s);
        }
        let addrs: Vec<String> = servers.iter().map(|s| s.addr.clone()).collect();
        let backend = MemcachedBackend {
            ring: Ring::new(&addrs),
            servers,
            gen_key: format!("{prefix}gen"),
            prefix: prefix.to_owned(),
            item_limit: self.item_limit,
            refresh: self.refresh,
            generation: RwLock::new(None),
            digest: self.digest,
        };
        if !self.net.lazy() {
            for s in &backend.servers {
                let call = Call {
                    op: Operation::Open,
                    key: None,
                    write: false,
                    size: 0,
                };
                s.run(call, |c| c.version())?;
            }
            backend.generation(Operation::Open)?;
        }
        Ok(backend)
    }
}

impl fmt::Debug for MemcachedBackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.net
            .debug_fields(
                f.debug_struct("MemcachedBackendBuilder")
                    .field("servers", &self.urls),
            )
            .field("item_limit", &self.item_limit)
            .field("generation_refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
