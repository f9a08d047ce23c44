//! **braincache**: durable, typed caching for Rust, with per-entry TTL and interchangeable
//! backends.
//!
//! A [`BrainCache`] stores any `Serialize + DeserializeOwned` value under a string key, with an
//! optional time to live, in a [backend] of your choice: in memory, in a JSON file, in a redb
//! database shared by several processes, or in Redis. [`CacheCleaner`] purges expired entries in
//! the background, and the `#[cache]` attribute memoizes functions.
//!
//! ```
//! use braincache::{BrainCache, CacheCleaner};
//! use std::time::Duration;
//!
//! # fn main() -> braincache::Result<()> {
//! let cache = BrainCache::default(); // memory; see `backend` for durable ones
//! let cleaner = CacheCleaner::start(&cache, Duration::from_secs(60));
//!
//! cache.set("user_id", &1234u32, Duration::from_secs(3600))?;
//! assert_eq!(cache.get::<u32>("user_id")?, Some(1234));
//! assert!(cache.has("user_id")?);
//!
//! let page: String = cache.get_or_insert_with("page:/", Duration::from_secs(60), || {
//!     "expensive result".to_string() // runs once per key at a time
//! })?;
//! assert_eq!(page, "expensive result");
//!
//! cache.delete("user_id")?;
//! cache.clear()?;
//! cleaner.stop();
//! # Ok(())
//! # }
//! ```
//!
//! # Architecture
//! The front end ([`BrainCache`]) encodes values with a [`Codec`](base::Codec) into a
//! [`Record`](backend::Record) (bytes, a deadline and the codec's id) and hands it to a
//! [`Backend`](backend::Backend); reads go the other way and the front end drops expired
//! records and refuses records of another codec. The default codec is
//! [`MsgPack`](base::MsgPack) (self-describing: the whole serde data model round-trips) for
//! memory, redb and Redis, and [`Json`](base::Json) for the file backend;
//! [`Postcard`](base::Postcard) is opt-in (`BrainCache::builder(backend).codec(Postcard)`). Backends never see your types. Each backend is its own crate, re-exported here under
//! [`backend`] when its feature is on.
//!
//! Where each concern lives in this crate (private modules; the names are for contributors):
//! `cache` holds [`BrainCache`] and its plain operations; `memo` memoization (the single-flight
//! `load` behind [`get_or_insert_with`](BrainCache::get_or_insert_with), and the policies of the
//! `#[cache]` macro: a read error runs uncached, a decode error rewrites the entry, `None` may
//! be skipped); `load` the per-key flight table; `cleaner` [`CacheCleaner`]; `stats` [`Stats`];
//! `future` the async face; `__private` only what the macro's expansion names. Shared building
//! blocks for backends (the expiry index, a background worker, sidecar paths) are in
//! [`base`].
//!
//! # One path per item
//! Each public item has one path: the front end's types at the root ([`BrainCache`],
//! [`Error`], [`Result`], [`Timestamp`], ...), the [`Backend`](backend::Backend) trait, its
//! [`Record`](backend::Record) and every backend under [`backend`], and the codecs, clocks and
//! backend building blocks of the `braincache-core` crate under [`base`]. No module is named
//! after a built-in crate, so `use braincache::*;` leaves `core` and `std` alone.
//!
//! # Crate features
//! - `memory` (default): [`backend::MemoryBackend`], and `BrainCache::default()`.
//! - `file` (default): the JSON file backend.
//! - `redb` (default): the redb backend, durable and multi-process.
//! - `macros` (default): the `#[cache]` attribute.
//! - `redis`: the Redis backend (one server, or a Redis Cluster).
//! - `memcached`: the Memcached backend (one or more memcached servers).
//! - `bincode`: a `Bincode` codec (bincode 2.0.1; unmaintained upstream).
//! - `async`: `future::BrainCache`, the async front end, `CacheCleaner::spawn` and
//!   `#[cache]` on `async fn` (tokio).
//! - `tracing`: debug events for operations and a warning for each error.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod cache;
mod cleaner;
mod freshness;
#[cfg(feature = "async")]
pub mod future;
mod load;
mod log;
mod memo;
mod stats;

#[doc(hidden)]
pub mod __private;

pub use braincache_core::{Error, Operation, Result, Timestamp, Ttl};
pub use cache::{BrainCache, BrainCacheBuilder, LoadError};
pub use cleaner::CacheCleaner;
pub use freshness::Freshness;
pub use stats::Stats;

/// The codecs, the clocks and the building blocks for writing a backend, from the
/// `braincache-core` crate. The [`Backend`](backend::Backend) trait and its
/// [`Record`](backend::Record) are under [`backend`], and the types the front end's signatures
/// use ([`Error`], [`Operation`], [`Result`], [`Timestamp`], [`Ttl`]) at the crate root: each item
/// has one path. (A backend crate that depends on `braincache-core` alone finds all of them at
/// that crate's root.)
pub mod base {
    #[cfg(feature = "bincode")]
    #[doc(inline)]
    pub use braincache_core::Bincode;
    #[cfg(feature = "async")]
    #[doc(inline)]
    pub use braincache_core::run_blocking;
    #[doc(inline)]
    pub use braincache_core::wire;
    #[doc(inline)]
    pub use braincache_core::{
        Clock, Codec, CodecError, CodecId, ExpiryIndex, Json, Lease, LeaseToken, ManualClock,
        MsgPack, Postcard, SystemClock, Worker, in_step, sidecar,
    };
}

/// The [`Backend`](backend::Backend) trait with its [`Record`](backend::Record), and the
/// backends, each behind its cargo feature.
pub mod backend {
    #[cfg(feature = "async")]
    #[doc(inline)]
    pub use braincache_core::AsyncBackend;
    #[doc(inline)]
    pub use braincache_core::{Backend, Record, RecordRef};
    #[cfg(feature = "file")]
    #[doc(inline)]
    pub use braincache_file::{FileBackend, FileBackendBuilder};
    #[cfg(feature = "memcached")]
    #[doc(inline)]
    pub use braincache_memcached::{MemcachedBackend, MemcachedBackendBuilder, ValueTooLarge};
    #[cfg(feature = "memory")]
    #[doc(inline)]
    pub use braincache_memory::{MemoryBackend, MemoryBackendBuilder};
    #[cfg(feature = "redb")]
    #[doc(inline)]
    pub use braincache_redb::{RedbBackend, RedbBackendBuilder};
    #[cfg(feature = "redis")]
    #[doc(inline)]
    pub use braincache_redis::{
        RedisBackend, RedisBackendBuilder, RedisClusterBackend, RedisClusterBuilder,
    };
}

/// Memoizes a function in a [`BrainCache`]: `#[cache(ttl = 60)]` uses a process-wide memory
/// cache, `#[cache(cache = MY_CACHE)]` any cache (redb or file: results survive restarts and are
/// shared across processes).
///
/// ```
/// use braincache::cache;
///
/// #[cache(ttl = 60)]
/// fn heavy(x: u64, y: u64) -> u64 { x * y }
///
/// assert_eq!(heavy(6, 7), 42); // computed
/// assert_eq!(heavy(6, 7), 42); // from the cache
/// ```
#[cfg(feature = "macros")]
pub use braincache_macros::cache;

#[cfg(feature = "memory")]
impl Default for BrainCache<braincache_memory::MemoryBackend> {
    /// An unbounded in-memory cache, like the Python original's default.
    fn default() -> Self {
        BrainCache::new(braincache_memory::MemoryBackend::new())
    }
}

// Runs the README's examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
