//! One Rust cache per Python backend object, whatever its backend type and codec.

use crate::codec::{carries_non_finite, carries_python_values};
use braincache::BrainCache;
use braincache::backend::{Backend, FileBackend, MemoryBackend, RedbBackend, RedisBackend};
use braincache::base::{Codec, Json};
use pyo3::PyErr;
use pyo3::create_exception;
use pyo3::exceptions::PyException;

create_exception!(
    braincache,
    BrainCacheError,
    PyException,
    "A cache operation failed: the message says which operation, which key or path, and why."
);

/// The cache behind a Python `BrainCache` or backend object, and facts about its codec. Clones
/// share the store.
#[derive(Clone)]
pub struct Engine {
    /// The cache.
    pub cache: Kind,
    /// The name of the codec values are stored with.
    pub codec: &'static str,
    /// Whether that codec keeps NaN and the infinities.
    pub non_finite: bool,
}

/// A cache of one of the backends, with the backend's default codec or, where that codec cannot
/// carry Python values (see [`carries_python_values`]), with JSON. The `*Json` variants are
/// used only while a backend's default codec is not self-describing.
#[derive(Clone)]
pub enum Kind {
    /// `braincache.backend.memory.MemoryBackend`.
    Memory(BrainCache<MemoryBackend>),
    /// The same, with JSON.
    MemoryJson(BrainCache<MemoryBackend, Json>),
    /// `braincache.backend.file.FileBackend` (its default codec is JSON).
    File(BrainCache<FileBackend>),
    /// `braincache.backend.redb.RedbBackend`.
    Redb(BrainCache<RedbBackend>),
    /// The same, with JSON.
    RedbJson(BrainCache<RedbBackend, Json>),
    /// `braincache.backend.redis.RedisBackend`.
    Redis(BrainCache<RedisBackend>),
    /// The same, with JSON.
    RedisJson(BrainCache<RedisBackend, Json>),
    // Memcached: add `Memcached(BrainCache<MemcachedBackend>)` (and a `MemcachedJson` if its
    // default codec is not self-describing) here, arms in `with_cache!`, `backend_name` and
    // `engine_of`, a class in backends.rs, and python/braincache/backend/memcached.py.
}

/// Runs `$body` with `$c` bound to the `BrainCache` of whichever backend `$engine` holds.
macro_rules! with_cache {
    ($engine:expr, $c:ident => $body:expr) => {
        match &$engine.cache {
            $crate::engine::Kind::Memory($c) => $body,
            $crate::engine::Kind::MemoryJson($c) => $body,
            $crate::engine::Kind::File($c) => $body,
            $crate::engine::Kind::Redb($c) => $body,
            $crate::engine::Kind::RedbJson($c) => $body,
            $crate::engine::Kind::Redis($c) => $body,
            $crate::engine::Kind::RedisJson($c) => $body,
        }
    };
}
pub(crate) use with_cache;

impl Engine {
    /// A cache over `backend` with its default codec when that codec carries Python values
    /// (`native` wraps it), else with JSON (`json` wraps it).
    pub fn new<B: Backend>(
        backend: B,
        native: fn(BrainCache<B>) -> Kind,
        json: fn(BrainCache<B, Json>) -> Kind,
    ) -> Engine {
        if carries_python_values::<B::Codec>() {
            Engine {
                cache: native(BrainCache::new(backend)),
                codec: <B::Codec as Codec>::NAME,
                non_finite: carries_non_finite::<B::Codec>(),
            }
        } else {
            Engine {
                cache: json(BrainCache::builder(backend).codec(Json).build()),
                codec: Json::NAME,
                non_finite: carries_non_finite::<Json>(),
            }
        }
    }

    /// The Python name of the backend class.
    pub fn backend_name(&self) -> &'static str {
        match &self.cache {
            Kind::Memory(_) | Kind::MemoryJson(_) => "MemoryBackend",
            Kind::File(_) => "FileBackend",
            Kind::Redb(_) | Kind::RedbJson(_) => "RedbBackend",
            Kind::Redis(_) | Kind::RedisJson(_) => "RedisBackend",
        }
    }
}

/// braincache's error as the Python exception `braincache.BrainCacheError`.
pub fn to_py_err(e: braincache::Error) -> PyErr {
    BrainCacheError::new_err(e.to_string())
}
