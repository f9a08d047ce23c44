//! One Rust cache per Python backend object, whatever its backend type.

use crate::codec::PyCodec;
use braincache::BrainCache;
use braincache::backend::{Backend, FileBackend, MemoryBackend, RedbBackend, RedisBackend};
use braincache::core::Codec;
use pyo3::PyErr;
use pyo3::create_exception;
use pyo3::exceptions::PyException;

create_exception!(
    braincache,
    BrainCacheError,
    PyException,
    "A cache operation failed: the message says which operation, which key or path, and why."
);

/// A `BrainCache` over backend `B`, storing Python values with [`PyCodec`].
pub type Cache<B> = BrainCache<B, PyCodec<<B as Backend>::Codec>>;

/// The cache behind a Python `BrainCache` or backend object, and its codec's name. Clones share
/// the store.
#[derive(Clone)]
pub struct Engine {
    /// The cache.
    pub cache: Kind,
    /// The name of the codec values are stored with (see [`PyCodec::name`]).
    pub codec: &'static str,
}

/// A cache of one of the backends.
#[derive(Clone)]
pub enum Kind {
    /// `braincache.backend.memory.MemoryBackend`.
    Memory(Cache<MemoryBackend>),
    /// `braincache.backend.file.FileBackend`.
    File(Cache<FileBackend>),
    /// `braincache.backend.redb.RedbBackend`.
    Redb(Cache<RedbBackend>),
    /// `braincache.backend.redis.RedisBackend`.
    Redis(Cache<RedisBackend>),
    // Memcached: add `Memcached(Cache<MemcachedBackend>)` here, an arm in `with_cache!`, and a
    // class in backends.rs (with its module python/braincache/backend/memcached.py).
}

/// Runs `$body` with `$c` bound to the `Cache<B>` of whichever backend `$engine` holds.
macro_rules! with_cache {
    ($engine:expr, $c:ident => $body:expr) => {
        match &$engine.cache {
            $crate::engine::Kind::Memory($c) => $body,
            $crate::engine::Kind::File($c) => $body,
            $crate::engine::Kind::Redb($c) => $body,
            $crate::engine::Kind::Redis($c) => $body,
        }
    };
}
pub(crate) use with_cache;

impl Engine {
    /// A cache over `backend` with the Python codec for its default codec; `wrap` picks the
    /// [`Kind`] variant.
    pub fn new<B: Backend>(backend: B, wrap: fn(Cache<B>) -> Kind) -> Engine {
        let codec = PyCodec::<B::Codec>::detect();
        let name = codec.name();
        Engine {
            cache: wrap(BrainCache::builder(backend).codec(codec).build()),
            codec: name,
        }
    }

    /// True when the codec can hold NaN and infinite floats (JSON cannot).
    pub fn holds_non_finite(&self) -> bool {
        self.codec != braincache::core::Json::NAME
    }
}

/// braincache's error as the Python exception `braincache.BrainCacheError`.
pub fn to_py_err(e: braincache::Error) -> PyErr {
    BrainCacheError::new_err(e.to_string())
}
