//! The async front end (feature `async`): [`BrainCache`] with `async fn`s, for tokio services.
//!
//! ```
//! use braincache::future::BrainCache;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> braincache::Result<()> {
//! let cache = BrainCache::default(); // in memory
//! cache.set("user_id", &1234u32, Duration::from_secs(3600)).await?;
//! assert_eq!(cache.get::<u32>("user_id").await?, Some(1234));
//!
//! // One loader run per key at a time, across tasks (and threads using the sync face).
//! let page: String = cache
//!     .get_or_insert_with("page:/", Duration::from_secs(60), async || {
//!         tokio::task::yield_now().await; // an HTTP call, a query...
//!         "expensive result".to_string()
//!     })
//!     .await?;
//! assert_eq!(page, "expensive result");
//!
//! // The same store, counters and in-flight loads through the sync API.
//! let sync_face = cache.to_sync();
//! assert_eq!(sync_face.get::<u32>("user_id")?, Some(1234));
//! # Ok(())
//! # }
//! ```
//!
//! # What runs where
//! No call blocks a runtime worker thread on I/O. Each backend says how through
//! [`AsyncBackend`]:
//! - **memory**: every call runs inline (no I/O; a shard lock held for a table operation).
//! - **redb**: writes go to the backend's writer thread, as sync writes do (they share its
//!   group commit), and the task awaits the acknowledgement of the durable commit through a
//!   oneshot channel. Reads run inline: they read an MVCC snapshot and never wait for a commit
//!   (figures in `crates/braincache-redb/src/aio.rs`).
//! - **file**, **Redis** and backends that use [`AsyncBackend`]'s defaults: every call runs on
//!   tokio's blocking thread pool (`spawn_blocking`) and is awaited.
//!
//! A future dropped before it completes (a cancelled request) may or may not have applied its
//! write, as a killed thread's call; it never damages the store. A `get_or_insert_with` leader
//! that is cancelled hands the computation to one of its waiters.
//!
//! [`AsyncBackend`]: crate::backend::AsyncBackend

mod cleaner;
mod freshness;
#[doc(hidden)]
pub mod macro_support;

use crate::cache::LoadError;
use crate::load::{ErrorSharing, NoSharing, Sharing};
use crate::memo::{Computed, Loaded, OnPanic, SingleFlight, Step, strict, strict_infallible};
use crate::stats::Stats;
#[cfg(doc)]
use braincache_core::Error;
use braincache_core::{AsyncBackend, Backend, Clock, Codec, Record, Result, Timestamp, Ttl};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

/// A typed cache with per-entry TTL over a [`Backend`], with `async` methods: the async face of
/// [`crate::BrainCache`].
///
/// It behaves as the sync type does — same TTL rules, same errors, same counters — and
/// [`to_sync`](Self::to_sync) / [`crate::BrainCache::to_async`] turn one face into the other
/// over the same store: both share the backend, the counters, the cleaners' wake-ups and the
/// loads under way, so a sync thread and an async task asking for one missing key run one
/// loader. Clones are cheap shared handles; the type is `Send + Sync` and its futures are
/// `Send`.
///
/// The backend must implement [`AsyncBackend`] (every backend of this crate does; a
/// third-party backend opts in with `impl AsyncBackend for MyBackend {}`).
///
/// [`AsyncBackend`]: crate::backend::AsyncBackend
///
/// ```
/// use braincache::backend::RedbBackend;
/// use braincache::future::BrainCache;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> braincache::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let cache = BrainCache::new(RedbBackend::open(dir.path().join("app.redb"))?);
/// cache.set("k", &1u32, None).await?; // awaits the durable commit; the worker thread is free
/// assert_eq!(cache.get::<u32>("k").await?, Some(1));
/// assert!(cache.delete("k").await?);
/// # Ok(())
/// # }
/// ```
pub struct BrainCache<B: Backend, C: Codec = <B as Backend>::Codec> {
    sync: crate::BrainCache<B, C>,
}

impl<B: Backend, C: Codec> Clone for BrainCache<B, C> {
    fn clone(&self) -> Self {
        BrainCache {
            sync: self.sync.clone(),
        }
    }
}

impl<B: Backend + fmt::Debug, C: Codec> fmt::Debug for BrainCache<B, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("future::BrainCache")
            .field(&self.sync)
            .finish()
    }
}

#[cfg(feature = "memory")]
impl Default for BrainCache<braincache_memory::MemoryBackend> {
    /// An unbounded in-memory cache.
    fn default() -> Self {
        crate::BrainCache::default().to_async()
    }
}

impl<B: AsyncBackend, C: Codec> From<crate::BrainCache<B, C>> for BrainCache<B, C> {
    fn from(sync: crate::BrainCache<B, C>) -> Self {
        BrainCache { sync }
    }
}

impl<B: AsyncBackend, C: Codec> crate::BrainCache<B, C> {
    /// The async face of this cache: the same store, counters and loads under way, with
    /// `async` methods (feature `async`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = braincache::BrainCache::default();
    /// cache.set("k", &1u8, None).unwrap();
    /// let async_face = cache.to_async();
    /// assert_eq!(async_face.get::<u8>("k").await.unwrap(), Some(1));
    /// # }
    /// ```
    #[must_use]
    pub fn to_async(&self) -> BrainCache<B, C> {
        BrainCache { sync: self.clone() }
    }
}

impl<B: AsyncBackend> BrainCache<B> {
    /// A cache over `backend`, with the backend's default codec and the system clock. For
    /// another codec or clock, build the sync cache with
    /// [`crate::BrainCache::builder`] and call [`to_async`](crate::BrainCache::to_async).
    pub fn new(backend: B) -> Self {
        crate::BrainCache::new(backend).to_async()
    }
}

impl<B: AsyncBackend, C: Codec> BrainCache<B, C> {
    /// The sync face of this cache: the same store, counters and loads under way.
    #[must_use]
    pub fn to_sync(&self) -> crate::BrainCache<B, C> {
        self.sync.clone()
    }

    pub(crate) fn backend_arc(&self) -> &Arc<B> {
        self.sync.inner().shared_backend()
    }

    /// A backend call's result, its error counted and logged on the way to the caller.
    async fn counted<R>(&self, call: impl Future<Output = Result<R>>) -> Result<R> {
        call.await.map_err(|e| self.sync.failed(e))
    }

    /// Stores `value` under `key` for `ttl` (`None`: forever; `Some(Duration::ZERO)`: already
    /// expired), replacing what was there. The value is encoded before the first `.await`, so
    /// the future does not borrow it.
    ///
    /// # Errors
    /// [`Error::Encode`] when the codec cannot represent the value; backend errors otherwise.
    pub fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: impl Into<Ttl>,
    ) -> impl Future<Output = Result<()>> + Send {
        let encoded = self.sync.encode(key, value);
        let ttl = ttl.into().duration();
        let key = key.to_owned();
        async move { self.set_bytes(&key, encoded?, ttl).await }
    }

    async fn set_bytes(&self, key: &str, bytes: Vec<u8>, ttl: Option<Duration>) -> Result<()> {
        let (record, now) = self.sync.new_record(bytes, ttl);
        let deadline = record.expires_at;
        self.counted(self.backend_arc().set_at_async(key, record, now))
            .await?;
        self.sync.stored(key, deadline);
        Ok(())
    }

    /// The live value under `key`, decoded as `T`; `None` when absent or expired.
    ///
    /// # Errors
    /// [`Error::Decode`] when the stored bytes are not a `T`; backend errors otherwise.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.lookup(key, true).await
    }

    /// The live value under `key`; counts a hit or a miss only when `count` is set, so a load
    /// that looks more than once counts once.
    async fn lookup<T: DeserializeOwned>(&self, key: &str, count: bool) -> Result<Option<T>> {
        match self.live_record(key, count).await? {
            Some(r) => self.sync.decode_record(key, &r).map(Some),
            None => Ok(None),
        }
    }

    async fn live_record(&self, key: &str, count: bool) -> Result<Option<Record>> {
        let record = self.counted(self.backend_arc().get_async(key)).await?;
        Ok(self.sync.live(key, record, count))
    }

    /// True when a live entry is stored under `key` (whatever its value, `None` included).
    ///
    /// # Errors
    /// Backend errors.
    pub async fn has(&self, key: &str) -> Result<bool> {
        Ok(self.live_record(key, true).await?.is_some())
    }

    /// Removes `key`; returns whether an entry (expired or not) was there.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        self.counted(self.backend_arc().delete_async(key)).await
    }

    /// Removes every entry of this cache.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn clear(&self) -> Result<()> {
        self.counted(self.backend_arc().clear_async()).await
    }

    /// The number of stored entries, expired-but-unpurged ones included.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn len(&self) -> Result<usize> {
        self.counted(self.backend_arc().len_async()).await
    }

    /// True when no entry is stored.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn is_empty(&self) -> Result<bool> {
        self.counted(self.backend_arc().is_empty_async()).await
    }

    /// Removes every expired entry now (what a cleaner does on each wake-up); returns how many
    /// were removed.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn purge_expired(&self) -> Result<usize> {
        let now = self.sync.inner().now();
        let n = self
            .counted(self.backend_arc().purge_expired_async(now))
            .await?;
        self.sync.purged(n);
        Ok(n)
    }

    /// The earliest deadline of a stored entry, if any.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn next_expiry(&self) -> Result<Option<Timestamp>> {
        self.counted(self.backend_arc().next_expiry_async()).await
    }

    /// Writes out whatever the backend buffers (see the backend's docs).
    ///
    /// # Errors
    /// Backend errors.
    pub async fn flush(&self) -> Result<()> {
        self.counted(self.backend_arc().flush_async()).await
    }

    /// The counters since the cache was created (shared with the sync face).
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.sync.stats()
    }

    /// The backend.
    #[must_use]
    pub fn backend(&self) -> &B {
        self.sync.backend()
    }

    /// The clock deadlines are computed with.
    #[must_use]
    pub fn clock(&self) -> &dyn Clock {
        self.sync.clock()
    }

    /// The value under `key`, or — when absent or expired — the value `loader` computes,
    /// stored for `ttl` and returned. `loader` is an async closure (`async || …`) or a closure
    /// returning a future (`|| async { … }`).
    ///
    /// Concurrent callers for the same key — tasks here, threads through the sync face — run
    /// one loader: the others wait without blocking their thread and receive its value.
    /// - If the leading task is cancelled (its future dropped) while its loader runs, one
    ///   waiter runs its own loader instead and the others wait for that one: nobody waits
    ///   forever, and the loader runs at most once more.
    /// - If the loader panics, the panic propagates to its caller, the tasks waiting for it
    ///   fail with [`Error::Task`], and the next call computes again.
    ///
    /// ```
    /// use braincache::future::BrainCache;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> braincache::Result<()> {
    /// let cache = BrainCache::default();
    /// let v: u64 = cache.get_or_insert_with("answer", Duration::from_secs(60), async || 42).await?;
    /// let again: u64 = cache.get_or_insert_with("answer", None, || async { unreachable!() }).await?;
    /// assert_eq!((v, again), (42, 42));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Errors reading, decoding or storing (the computed value is lost if storing fails);
    /// [`Error::Task`] when the loader this call waited for panicked.
    pub async fn get_or_insert_with<T, F>(
        &self,
        key: &str,
        ttl: impl Into<Ttl>,
        loader: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: AsyncFnOnce() -> T,
    {
        let mut f = Some(move || async move { Ok::<T, std::convert::Infallible>(loader().await) });
        let ttl = ttl.into().duration();
        strict_infallible(self.load::<T, _, _, _, NoSharing>(key, ttl, &mut f).await)
    }

    /// Like [`get_or_insert_with`](Self::get_or_insert_with) for a fallible loader: only `Ok`
    /// values are stored. Tasks waiting on the same loader share its error.
    ///
    /// ```
    /// use braincache::LoadError;
    /// use braincache::future::BrainCache;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = BrainCache::default();
    /// let r = cache.try_get_or_insert_with::<u32, _, _>("k", None, async || Err("offline")).await;
    /// assert!(matches!(r, Err(LoadError::Init(e)) if *e == "offline"));
    /// assert!(!cache.has("k").await.unwrap()); // errors are not cached
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`LoadError::Init`] with the loader's error, [`LoadError::Cache`] for cache errors
    /// (and [`Error::Task`] when the loader this call waited for panicked).
    pub async fn try_get_or_insert_with<T, E, F>(
        &self,
        key: &str,
        ttl: impl Into<Ttl>,
        loader: F,
    ) -> std::result::Result<T, LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        E: Send + Sync + 'static,
        F: AsyncFnOnce() -> std::result::Result<T, E>,
    {
        let mut f = Some(move || loader());
        strict(
            self.load::<T, E, _, _, Sharing>(key, ttl.into().duration(), &mut f)
                .await,
        )
    }

    /// The single flight, async: the sync face's `load` (`src/memo.rs`) with `.await`s, and a
    /// panic in the loader caught so that the tasks waiting for it fail instead of computing
    /// again.
    pub(crate) async fn load<T, E, F, Fut, S>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        f: &mut Option<F>,
    ) -> std::result::Result<Loaded<T>, LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        S: ErrorSharing<E>,
    {
        let loads = self.sync.inner().loads();
        // A leader's guard lives in `flight`, in this future: dropping the future abandons the
        // flight. A waiter awaits its slot with no other `.await` between joining and waiting.
        let mut flight = SingleFlight::<E, S>::new(loads, key, OnPanic::Fail);
        let mut step = flight.start();
        let lead = loop {
            step = match step {
                Step::Lookup { count } => match self.lookup::<T>(key, count).await? {
                    Some(value) => return Ok(Loaded::found(value)),
                    None => flight.missed(),
                },
                Step::Wait(slot) => flight.waited(slot.wait_async().await),
                Step::Received(bytes) => {
                    return Ok(Loaded::found(self.sync.decode(key, &bytes)?));
                }
                Step::Fail(e) => return Err(self.sync.failed_load(e)),
                Step::Compute(lead) => break lead,
            }
        };
        let compute = lead.take(f)?;
        let computed = match catch_panic(compute).await {
            Ok(computed) => computed,
            Err(panic) => lead.panicked(panic),
        };
        match lead.computed::<T, E, S>(computed, |v| self.sync.encode(key, v)) {
            Computed::Store(storing, bytes) => {
                Ok(storing.stored(self.set_bytes(key, bytes, ttl).await))
            }
            Computed::Done(result) => result,
        }
    }

    pub(crate) fn sync_face(&self) -> &crate::BrainCache<B, C> {
        &self.sync
    }
}

type Panic = Box<dyn std::any::Any + Send>;

/// Runs `compute` and awaits its future, catching a panic in either.
async fn catch_panic<F, Fut>(compute: F) -> std::result::Result<Fut::Output, Panic>
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    let fut = catch_unwind(AssertUnwindSafe(compute))?;
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        },
    )
    .await
}
