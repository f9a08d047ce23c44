//! `BrainCache`, the front end: typed values over any backend.

use crate::cleaner::WakeHub;
use crate::load::{Loads, NoSharing, Sharing};
use crate::log::{debug_event, warn_event};
use crate::memo::{SkipNone, strict, strict_infallible, strict_optional};
use crate::stats::{Counters, Stats};
use braincache_core::{
    Backend, Clock, Codec, CodecError, Error, Record, RecordRef, Result, SystemClock, Timestamp,
    Ttl,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A typed cache with per-entry TTL over a [`Backend`].
///
/// The five methods of the Python original — [`set`](Self::set), [`get`](Self::get),
/// [`has`](Self::has), [`delete`](Self::delete), [`clear`](Self::clear) — plus
/// [`get_or_insert_with`](Self::get_or_insert_with) (memoize one computation),
/// [`purge_expired`](Self::purge_expired) and [`stats`](Self::stats).
///
/// `BrainCache` is a cheap, shared handle: clones use the same backend, counters and clock, and
/// it is `Send + Sync`.
///
/// - A TTL of `None` never expires; `Some(Duration::ZERO)` is already expired. An entry whose
///   deadline is at or before now is never returned, whether or not it was purged.
/// - Values are any `Serialize + DeserializeOwned`; falsy values (`0`, `""`, `false`, empty
///   collections, a stored `None`) round-trip and count as present.
/// - Reading a value as a type its bytes do not decode as is [`Error::Decode`], never a panic
///   and never `None`.
///
/// ```
/// use braincache::BrainCache;
/// use std::time::Duration;
///
/// # fn main() -> braincache::Result<()> {
/// let cache = BrainCache::default(); // in memory
/// cache.set("user_id", &1234u32, Duration::from_secs(3600))?;
/// cache.set("nothing", &None::<u32>, None)?; // a stored None is a value
/// assert_eq!(cache.get::<u32>("user_id")?, Some(1234));
/// assert!(cache.has("nothing")?);
/// assert!(cache.get::<String>("user_id").is_err()); // wrong type: an error, not None
/// cache.delete("user_id")?;
/// assert_eq!(cache.get::<u32>("user_id")?, None);
/// # Ok(())
/// # }
/// ```
pub struct BrainCache<B: Backend, C: Codec = <B as Backend>::Codec> {
    inner: Arc<Inner<B, C>>,
}

pub(crate) struct Inner<B, C> {
    // In an `Arc` of its own so the async front end can hand it to a blocking task.
    backend: Arc<B>,
    codec: C,
    clock: Arc<dyn Clock>,
    pub(crate) counters: Counters,
    pub(crate) loads: Loads,
    pub(crate) wake: WakeHub,
    pub(crate) refreshing: crate::freshness::Refreshing,
}

impl<B: Backend, C: Codec> Clone for BrainCache<B, C> {
    fn clone(&self) -> Self {
        BrainCache {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<B: Backend + fmt::Debug, C: Codec> fmt::Debug for BrainCache<B, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrainCache")
            .field("backend", &self.inner.backend)
            .field("codec", &C::NAME)
            .field("clock", &self.inner.clock)
            .finish()
    }
}

/// The error of [`BrainCache::try_get_or_insert_with`]: the cache failed, or the closure did.
///
/// As the Rust API guidelines ask, `Display` describes this level only and `source()` returns
/// the cause: a cache error is shown as itself (its `Display` and `source()` are the wrapped
/// [`Error`]'s), a closure's error as "the value could not be computed" with the closure's error
/// (as the shared `Arc<E>`, whose `Display` and `source()` are `E`'s) as its source. `anyhow`'s
/// `{:#}` prints each cause once.
///
/// New variants may be added: match with a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError<E> {
    /// The cache failed (reading, decoding, or storing the computed value).
    #[error(transparent)]
    Cache(#[from] Error),
    /// The closure returned an error. Callers that waited on the same computation receive the
    /// same error, hence the `Arc`.
    #[error("the value could not be computed")]
    Init(#[source] Arc<E>),
}

impl<B: Backend> BrainCache<B> {
    /// A cache over `backend`, with the backend's default codec and the system clock.
    ///
    /// ```
    /// use braincache::{BrainCache, backend::MemoryBackend};
    ///
    /// let cache = BrainCache::new(MemoryBackend::builder().max_entries(10_000).build());
    /// # let _ = cache;
    /// ```
    pub fn new(backend: B) -> Self {
        BrainCache::builder(backend).build()
    }

    /// A builder to choose the codec or the clock.
    pub fn builder(backend: B) -> BrainCacheBuilder<B> {
        BrainCacheBuilder {
            backend,
            codec: B::Codec::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl<B: Backend, C: Codec> BrainCache<B, C> {
    /// Stores `value` under `key` for `ttl`, replacing what was there.
    ///
    /// `ttl` is anything that converts into a [`Ttl`]: a `Duration`, whole seconds as an
    /// integer (`60`), `None` (forever) or an `Option<Duration>`. A zero (or negative) TTL is
    /// already expired: the entry is stored but never returned.
    ///
    /// ```
    /// use braincache::BrainCache;
    /// use std::time::Duration;
    ///
    /// # fn main() -> braincache::Result<()> {
    /// let cache = BrainCache::default();
    /// cache.set("k", &"v", 60)?; // 60 seconds, as in Python
    /// cache.set("k", &"v", Duration::from_secs(60))?;
    /// cache.set("k", &"v", None)?; // forever
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Encode`] when the codec cannot represent the value; backend errors otherwise.
    pub fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: impl Into<Ttl>,
    ) -> Result<()> {
        let bytes = self.encode(key, value)?;
        self.set_bytes(key, bytes, ttl.into().duration())
    }

    pub(crate) fn encode<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<Vec<u8>> {
        self.inner.codec.encode(value).map_err(|source| {
            self.failed(Error::Encode {
                key: key.to_owned(),
                source,
            })
        })
    }

    pub(crate) fn set_bytes(&self, key: &str, bytes: Vec<u8>, ttl: Option<Duration>) -> Result<()> {
        let backend = &self.inner.backend;
        let (stored, deadline) = match ttl {
            Some(ttl) => {
                let (record, now) = self.new_record(bytes, Some(ttl));
                let deadline = record.expires_at;
                (backend.set_at(key, record, now), deadline)
            }
            // Nothing in a record without a deadline depends on the time (`set_at`'s `now`
            // only turns a deadline into a time to live), so the clock is not read: a system
            // clock read is ~30 ns, a fifth of a memory set.
            None => (
                backend.set(key, Record::new(bytes, None).with_codec(Some(C::ID))),
                None,
            ),
        };
        stored.map_err(|e| self.failed(e))?;
        self.stored(key, deadline);
        Ok(())
    }

    /// The record that stores `bytes` for `ttl` from now on this cache's clock, tagged with its
    /// codec, and that now.
    pub(crate) fn new_record(&self, bytes: Vec<u8>, ttl: Option<Duration>) -> (Record, Timestamp) {
        let now = self.inner.now();
        let deadline = ttl.map(|t| now + t);
        (Record::new(bytes, deadline).with_codec(Some(C::ID)), now)
    }

    /// Counts a successful set and tells the cleaners about its deadline.
    pub(crate) fn stored(&self, key: &str, deadline: Option<Timestamp>) {
        self.inner.counters.sets.bump(1);
        if let Some(d) = deadline {
            self.inner.wake.deadline_added(d);
        }
        debug_event!("set {key:?} (expires {deadline:?})");
    }

    /// The live value under `key`, decoded as `T`; `None` when absent or expired.
    ///
    /// # Errors
    /// [`Error::Decode`] when the stored bytes are not a `T`; backend errors otherwise.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.lookup(key, true)
    }

    /// The live value under `key`; counts a hit or a miss only when `count` is set, so a call
    /// that looks more than once (the memoizing loads) counts once.
    ///
    /// The value is decoded from what the backend lends ([`Backend::get_with`]: the memory
    /// backend a per-thread copy made under the shard's lock and lent after it, redb its page),
    /// and the clock is read only for a record that has a deadline: one without can be neither
    /// stale nor expired.
    pub(crate) fn lookup<T: DeserializeOwned>(&self, key: &str, count: bool) -> Result<Option<T>> {
        // The closure keeps the codec's error (smaller than `Error`): the error naming the key
        // and the type is built after, on the failure path only.
        let mut out: Option<std::result::Result<T, CodecError>> = None;
        self.inner
            .backend
            .get_with(key, &mut |r| {
                if self.is_live(r) {
                    out = Some(self.decode_value(r));
                }
            })
            .map_err(|e| self.failed(e))?;
        // Counted and logged here, after the backend let go of the record.
        self.counted(key, out.is_some(), count);
        match out {
            None => Ok(None),
            Some(Ok(value)) => Ok(Some(value)),
            Some(Err(source)) => Err(self.failed(decode_error::<T>(key, source))),
        }
    }

    /// Decodes a stored record, first checking that this cache's codec wrote it (a record that
    /// states no codec was written with the backend's default codec).
    pub(crate) fn decode_record<T: DeserializeOwned>(
        &self,
        key: &str,
        record: &Record,
    ) -> Result<T> {
        self.decode_value(RecordRef::from(record))
            .map_err(|source| self.failed(decode_error::<T>(key, source)))
    }

    /// [`decode_record`](Self::decode_record) of a borrowed record, with the codec's error (the
    /// caller names the key and the type, and counts the error).
    fn decode_value<T: DeserializeOwned>(
        &self,
        record: RecordRef<'_>,
    ) -> std::result::Result<T, CodecError> {
        let stored = record.codec.unwrap_or(<B::Codec as Codec>::ID);
        if stored == C::ID {
            self.inner.codec.decode(record.value)
        } else {
            Err(CodecError::mismatch(C::NAME, C::ID, stored))
        }
    }

    pub(crate) fn decode<T: DeserializeOwned>(&self, key: &str, bytes: &[u8]) -> Result<T> {
        self.inner
            .codec
            .decode(bytes)
            .map_err(|source| self.failed(decode_error::<T>(key, source)))
    }

    /// `record` when it is not expired, counting the hit or miss when `count` is set.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn live(&self, key: &str, record: Option<Record>, count: bool) -> Option<Record> {
        let live = record.filter(|r| self.is_live(r));
        self.counted(key, live.is_some(), count);
        live
    }

    /// True when [`get`](Self::get) would serve `record` now: it has no deadline, or its
    /// freshness ends after this cache's clock's now. An expired record is not live, nor is a
    /// stale one (past `fresh_until`, kept for [`get_or_refresh`](Self::get_or_refresh)'s
    /// stale-while-revalidate). The clock is read only for a record that has a deadline.
    ///
    /// For code that reads records from the backend itself (a tool, a binding that converts
    /// the bytes its own way) and must decide as `get` does.
    ///
    /// ```
    /// use braincache::BrainCache;
    /// use braincache::backend::Backend;
    /// use std::time::Duration;
    ///
    /// let cache = BrainCache::default();
    /// cache.set("k", &1u8, Duration::from_secs(60)).unwrap();
    /// cache.set("gone", &1u8, Duration::ZERO).unwrap();
    /// let k = cache.backend().get("k").unwrap().unwrap();
    /// let gone = cache.backend().get("gone").unwrap().unwrap(); // stored, not yet purged
    /// assert!(cache.is_live(&k));
    /// assert!(!cache.is_live(&gone));
    /// ```
    #[must_use]
    pub fn is_live<'a>(&self, record: impl Into<RecordRef<'a>>) -> bool {
        record
            .into()
            .fresh_deadline()
            .is_none_or(|d| d > self.inner.clock.now())
    }

    /// Counts a hit or a miss when `count` is set, and logs it.
    fn counted(&self, key: &str, hit: bool, count: bool) {
        if count {
            let counter = if hit {
                &self.inner.counters.hits
            } else {
                &self.inner.counters.misses
            };
            counter.bump(1);
        }
        debug_event!("get {key:?}: {}", if hit { "hit" } else { "miss" });
    }

    /// True when a live entry is stored under `key` (whatever its value, `None` included).
    ///
    /// # Errors
    /// Backend errors.
    pub fn has(&self, key: &str) -> Result<bool> {
        let mut live = false;
        self.inner
            .backend
            .get_with(key, &mut |r| live = self.is_live(r))
            .map_err(|e| self.failed(e))?;
        self.counted(key, live, true);
        Ok(live)
    }

    /// Removes `key`; returns whether an entry (expired or not) was there.
    ///
    /// # Errors
    /// Backend errors.
    pub fn delete(&self, key: &str) -> Result<bool> {
        let found = self.inner.backend.delete(key).map_err(|e| self.failed(e))?;
        debug_event!("delete {key:?}: {found}");
        Ok(found)
    }

    /// Removes every entry of this cache.
    ///
    /// # Errors
    /// Backend errors.
    pub fn clear(&self) -> Result<()> {
        self.inner.backend.clear().map_err(|e| self.failed(e))?;
        debug_event!("clear");
        Ok(())
    }

    /// The number of stored entries, expired-but-unpurged ones included.
    ///
    /// # Errors
    /// Backend errors.
    pub fn len(&self) -> Result<usize> {
        self.inner.backend.len().map_err(|e| self.failed(e))
    }

    /// True when no entry is stored.
    ///
    /// # Errors
    /// Backend errors.
    pub fn is_empty(&self) -> Result<bool> {
        self.inner.backend.is_empty().map_err(|e| self.failed(e))
    }

    /// Removes every expired entry now (what [`CacheCleaner`](crate::CacheCleaner) does on each
    /// wake-up); returns how many were removed.
    ///
    /// # Errors
    /// Backend errors.
    pub fn purge_expired(&self) -> Result<usize> {
        let now = self.inner.clock.now();
        let n = self
            .inner
            .backend
            .purge_expired(now)
            .map_err(|e| self.failed(e))?;
        self.purged(n);
        Ok(n)
    }

    /// Counts entries removed by a purge.
    pub(crate) fn purged(&self, n: usize) {
        self.inner.counters.expired.bump(n as u64);
        debug_event!("purge_expired: {n} removed");
    }

    /// The earliest deadline of a stored entry, if any.
    ///
    /// # Errors
    /// Backend errors.
    pub fn next_expiry(&self) -> Result<Option<Timestamp>> {
        self.inner.backend.next_expiry().map_err(|e| self.failed(e))
    }

    /// Writes out whatever the backend buffers (see the backend's docs).
    ///
    /// # Errors
    /// Backend errors.
    pub fn flush(&self) -> Result<()> {
        self.inner.backend.flush().map_err(|e| self.failed(e))
    }

    /// The counters since this cache was created.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot(self.inner.backend.evictions())
    }

    /// The backend.
    #[must_use]
    pub fn backend(&self) -> &B {
        &self.inner.backend
    }

    /// The clock deadlines are computed with.
    #[must_use]
    pub fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    /// The value under `key`, or — when absent or expired — the value `f` computes, stored for
    /// `ttl` and returned.
    ///
    /// Within a process, concurrent callers for the same key run `f` once: the others wait and
    /// receive its value. If `f` panics, the panic propagates to its caller and one of the waiters
    /// runs its own `f` instead. Across processes each may compute; the last write wins.
    ///
    /// ```
    /// use braincache::BrainCache;
    /// use std::time::Duration;
    ///
    /// let cache = BrainCache::default();
    /// let v: u64 = cache.get_or_insert_with("answer", Duration::from_secs(60), || 42).unwrap();
    /// let again: u64 = cache.get_or_insert_with("answer", None, || unreachable!()).unwrap();
    /// assert_eq!((v, again), (42, 42));
    /// ```
    ///
    /// # Errors
    /// Errors reading, decoding or storing; the computed value is lost if storing fails.
    pub fn get_or_insert_with<T, F>(&self, key: &str, ttl: impl Into<Ttl>, f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> T,
    {
        let mut f = Some(|| Ok::<T, std::convert::Infallible>(f()));
        strict_infallible(self.load::<T, _, _, NoSharing>(key, ttl.into().duration(), &mut f))
    }

    /// Like [`get_or_insert_with`](Self::get_or_insert_with) for a fallible computation: only
    /// `Ok` values are stored. Callers waiting on the same computation share its error.
    ///
    /// ```
    /// use braincache::{BrainCache, LoadError};
    ///
    /// let cache = BrainCache::default();
    /// let r = cache.try_get_or_insert_with::<u32, _, _>("k", None, || Err("offline"));
    /// assert!(matches!(r, Err(LoadError::Init(e)) if *e == "offline"));
    /// assert!(!cache.has("k").unwrap()); // errors are not cached
    /// ```
    ///
    /// # Errors
    /// [`LoadError::Init`] with the closure's error, [`LoadError::Cache`] for cache errors.
    pub fn try_get_or_insert_with<T, E, F>(
        &self,
        key: &str,
        ttl: impl Into<Ttl>,
        f: F,
    ) -> std::result::Result<T, LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        E: Send + Sync + 'static,
        F: FnOnce() -> std::result::Result<T, E>,
    {
        strict(self.load::<T, E, F, Sharing>(key, ttl.into().duration(), &mut Some(f)))
    }

    /// Like [`get_or_insert_with`](Self::get_or_insert_with) for a computation that may find
    /// nothing: `Some` is stored and returned, `None` is returned and not stored (the next call
    /// computes again). Concurrent callers for the same key share one computation, `None`
    /// included. moka's `optionally_get_with` is the model.
    ///
    /// ```
    /// use braincache::BrainCache;
    ///
    /// let cache = BrainCache::default();
    /// let v = cache.optionally_get_or_insert_with::<u32, _>("user:7", None, || None).unwrap();
    /// assert_eq!(v, None);
    /// assert!(!cache.has("user:7").unwrap()); // `None` is not cached
    /// let v = cache.optionally_get_or_insert_with("user:7", None, || Some(7u32)).unwrap();
    /// assert_eq!(v, Some(7));
    /// assert_eq!(cache.get::<u32>("user:7").unwrap(), Some(7)); // stored as the value itself
    /// ```
    ///
    /// # Errors
    /// Errors reading, decoding or storing; the computed value is lost if storing fails.
    pub fn optionally_get_or_insert_with<T, F>(
        &self,
        key: &str,
        ttl: impl Into<Ttl>,
        f: F,
    ) -> Result<Option<T>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Option<T>,
    {
        // `f`'s `None` goes to `load` as an error, so that it is not stored and is shared with
        // the callers waiting on this computation.
        let mut f = Some(move || f().ok_or(SkipNone));
        strict_optional(self.load::<T, SkipNone, _, Sharing>(key, ttl.into().duration(), &mut f))
    }

    /// Counts and logs an error on its way to the caller.
    pub(crate) fn failed(&self, e: Error) -> Error {
        self.inner.counters.errors.bump(1);
        warn_event!("braincache: {}", crate::log::Chain(&e));
        e
    }

    pub(crate) fn inner(&self) -> &Inner<B, C> {
        &self.inner
    }
}

/// Builds a [`BrainCache`] with another codec or clock. Defaults: the backend's codec
/// (`B::Codec`), the system clock.
///
/// ```
/// use braincache::{BrainCache, backend::MemoryBackend};
/// use braincache::base::{Json, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::starting_now();
/// let cache = BrainCache::builder(MemoryBackend::new())
///     .codec(Json)
///     .clock(clock.clone())
///     .build();
/// cache.set("k", &"v", Duration::from_secs(10)).unwrap();
/// clock.advance(Duration::from_secs(10));
/// assert_eq!(cache.get::<String>("k").unwrap(), None); // expired at its deadline
/// ```
#[must_use]
pub struct BrainCacheBuilder<B: Backend, C: Codec = <B as Backend>::Codec> {
    backend: B,
    codec: C,
    clock: Arc<dyn Clock>,
}

impl<B: Backend, C: Codec> BrainCacheBuilder<B, C> {
    /// Encodes values with `codec` instead of the backend's default.
    pub fn codec<C2: Codec>(self, codec: C2) -> BrainCacheBuilder<B, C2> {
        BrainCacheBuilder {
            backend: self.backend,
            codec,
            clock: self.clock,
        }
    }

    /// Reads the time from `clock` (a [`ManualClock`](braincache_core::ManualClock) in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the cache.
    pub fn build(self) -> BrainCache<B, C> {
        BrainCache {
            inner: Arc::new(Inner {
                backend: Arc::new(self.backend),
                codec: self.codec,
                clock: self.clock,
                counters: Counters::default(),
                loads: Loads::default(),
                wake: WakeHub::default(),
                refreshing: crate::freshness::Refreshing::default(),
            }),
        }
    }
}

/// The error of a value under `key` that does not decode as a `T`.
#[cold]
fn decode_error<T>(key: &str, source: CodecError) -> Error {
    Error::Decode {
        key: key.to_owned(),
        type_name: std::any::type_name::<T>(),
        source,
    }
}

impl<B: Backend, C: Codec> Inner<B, C> {
    pub(crate) fn backend(&self) -> &B {
        &self.backend
    }

    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn shared_backend(&self) -> &Arc<B> {
        &self.backend
    }

    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn loads(&self) -> &Loads {
        &self.loads
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }
}
