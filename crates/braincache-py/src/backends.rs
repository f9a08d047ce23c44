//! The backend classes: `MemoryBackend`, `FileBackend`, `RedbBackend`, `RedisBackend`,
//! `MemcachedBackend`.
//!
//! Each holds a ready cache ([`Engine`]); `BrainCache(backend)` shares it, so two `BrainCache`
//! objects over one backend object see the same entries.

use crate::cache::seconds;
use crate::engine::{Engine, Kind, to_py_err};
use braincache::backend::{
    FileBackend, MemcachedBackend, MemoryBackend, RedbBackend, RedisBackend,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use std::path::PathBuf;

/// The in-process memory backend (the default): sharded, optionally bounded.
#[pyclass(module = "braincache.backend.memory", name = "MemoryBackend", frozen)]
pub struct PyMemoryBackend {
    engine: Engine,
}

#[pymethods]
impl PyMemoryBackend {
    /// `MemoryBackend(max_entries=None, max_bytes=None)`: unbounded unless a bound is given; a
    /// bounded cache evicts to stay within it.
    #[new]
    #[pyo3(signature = (max_entries = None, max_bytes = None))]
    fn new(max_entries: Option<usize>, max_bytes: Option<usize>) -> Self {
        let mut b = MemoryBackend::builder();
        if let Some(n) = max_entries {
            b = b.max_entries(n);
        }
        if let Some(n) = max_bytes {
            b = b.max_bytes(n);
        }
        PyMemoryBackend {
            engine: Engine::new(b.build(), Kind::Memory, Kind::MemoryJson),
        }
    }

    fn __repr__(&self) -> &'static str {
        "MemoryBackend()"
    }
}

/// The JSON file backend: the original's `{"key": {"value": ..., "expire_at": ...}}` document,
/// written atomically and fsynced on every change, shared safely between processes.
#[pyclass(module = "braincache.backend.file", name = "FileBackend", frozen)]
pub struct PyFileBackend {
    engine: Engine,
    path: PathBuf,
}

#[pymethods]
impl PyFileBackend {
    /// `FileBackend(path)`: opens the file, creating it when missing (its folder must exist).
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let backend = py.detach(|| FileBackend::open(&path)).map_err(to_py_err)?;
        Ok(PyFileBackend {
            engine: Engine::new(backend, Kind::File, Kind::File),
            path,
        })
    }

    /// The path the backend was opened with.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    fn __repr__(&self) -> String {
        format!("FileBackend({:?})", self.path)
    }
}

/// The redb backend: a durable database file that several processes may use at once.
#[pyclass(module = "braincache.backend.redb", name = "RedbBackend", frozen)]
pub struct PyRedbBackend {
    engine: Engine,
    path: PathBuf,
}

#[pymethods]
impl PyRedbBackend {
    /// `RedbBackend(path, write_behind=None)`: opens the database, creating it when missing.
    /// Every set is durable when it returns; `write_behind=0.05` (seconds) makes sets return
    /// once queued and commits them together every 50 ms instead (this process reads them at
    /// once, other processes after the commit; a crash loses the last uncommitted interval;
    /// `flush()` commits at once).
    #[new]
    #[pyo3(signature = (path, write_behind = None))]
    fn new(py: Python<'_>, path: PathBuf, write_behind: Option<f64>) -> PyResult<Self> {
        let mut builder = RedbBackend::builder(&path);
        if let Some(secs) = write_behind {
            let interval = std::time::Duration::try_from_secs_f64(secs).map_err(|_| {
                pyo3::exceptions::PyValueError::new_err(format!(
                    "write_behind must be a finite number of seconds >= 0, not {secs}"
                ))
            })?;
            builder = builder.write_behind(interval);
        }
        let backend = py.detach(|| builder.build()).map_err(to_py_err)?;
        Ok(PyRedbBackend {
            engine: Engine::new(backend, Kind::Redb, Kind::RedbJson),
            path,
        })
    }

    /// The path the backend was opened with.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    fn __repr__(&self) -> String {
        format!("RedbBackend({:?})", self.path)
    }
}

/// The Redis backend: entries under a key prefix on a Redis server, expired by Redis itself.
#[pyclass(module = "braincache.backend.redis", name = "RedisBackend", frozen)]
pub struct PyRedisBackend {
    engine: Engine,
    url: String,
}

#[pymethods]
impl PyRedisBackend {
    /// `RedisBackend(url, key_prefix=None)`: connects to `redis://host:port/db`; keys are stored
    /// under `key_prefix` (default `"braincache:"`, shared with Rust programs).
    #[new]
    #[pyo3(signature = (url, key_prefix = None))]
    fn new(py: Python<'_>, url: String, key_prefix: Option<String>) -> PyResult<Self> {
        let backend = py
            .detach(|| {
                let mut b = RedisBackend::builder(&url);
                if let Some(p) = key_prefix {
                    b = b.key_prefix(p);
                }
                b.build()
            })
            .map_err(to_py_err)?;
        Ok(PyRedisBackend {
            engine: Engine::new(backend, Kind::Redis, Kind::RedisJson),
            url,
        })
    }

    /// The URL the backend connected to.
    #[getter]
    fn url(&self) -> String {
        self.url.clone()
    }

    fn __repr__(&self) -> String {
        format!("RedisBackend({:?})", self.url)
    }
}

/// The memcached backend: entries under a key prefix on one or more memcached servers (keys
/// spread over them by consistent hashing), expired by memcached itself.
///
/// `MemcachedBackend(url, key_prefix=None, *, servers=(), pool_size=None,
/// connect_timeout=None, response_timeout=None, item_limit=None, generation_refresh=None,
/// connect_lazily=False)` connects to `memcache://host:port` and to each URL in `servers`; every
/// process listing the same servers, in any order, sends a key to the same one. Keys are stored
/// under `key_prefix` (default `"braincache:"`, shared with Rust programs; printable ASCII
/// without spaces). Defaults: 16 connections per server (`pool_size`, at least 1); connect and
/// response timeouts of 1 second each; `item_limit` 1 MiB (set it to the servers' `-I`); a
/// `clear()` by another process seen within `generation_refresh` (1 second; 0 re-reads before
/// every call). Every server must answer now unless `connect_lazily=True`. Times are seconds.
///
/// Memcached cannot count or list keys: `len(cache)` and `cache.next_expiry()` raise
/// `braincache.UnsupportedOperation` (a `BrainCacheError` and a `NotImplementedError`), and
/// `clear()` empties only this prefix (it moves the prefix to a new generation; never
/// `flush_all`). Values larger than `item_limit` are refused before they are sent. A server that
/// does not answer makes calls fail after the timeouts with `braincache.CacheTimeoutError` (a
/// `BrainCacheError` and a `TimeoutError`), or `BrainCacheError` when it refuses connections.
/// Memcached keeps nothing on disk: a restarted server is empty.
#[pyclass(
    module = "braincache.backend.memcached",
    name = "MemcachedBackend",
    frozen
)]
pub struct PyMemcachedBackend {
    engine: Engine,
    url: String,
    key_prefix: String,
    servers: Vec<String>,
}

#[pymethods]
impl PyMemcachedBackend {
    /// Connects (see the class docs for the arguments and their defaults).
    #[new]
    #[pyo3(signature = (
        url,
        key_prefix = None,
        *,
        servers = Vec::new(),
        pool_size = None,
        connect_timeout = None,
        response_timeout = None,
        item_limit = None,
        generation_refresh = None,
        connect_lazily = false,
    ), text_signature = "(url, key_prefix=None, *, servers=(), pool_size=None, \
        connect_timeout=None, response_timeout=None, item_limit=None, generation_refresh=None, \
        connect_lazily=False)")]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments, one per builder setting
    fn new(
        py: Python<'_>,
        url: String,
        key_prefix: Option<String>,
        servers: Vec<String>,
        pool_size: Option<u32>,
        connect_timeout: Option<&Bound<'_, PyAny>>,
        response_timeout: Option<&Bound<'_, PyAny>>,
        item_limit: Option<usize>,
        generation_refresh: Option<&Bound<'_, PyAny>>,
        connect_lazily: bool,
    ) -> PyResult<Self> {
        let mut b = MemcachedBackend::builder(&url).servers(servers.iter().map(String::as_str));
        if let Some(p) = key_prefix {
            b = b.key_prefix(p);
        }
        if let Some(n) = pool_size {
            b = b.pool_size(n); // 0 is taken as 1, as in Rust
        }
        if let Some(t) = seconds(connect_timeout, "connect_timeout")? {
            b = b.connect_timeout(t);
        }
        if let Some(t) = seconds(response_timeout, "response_timeout")? {
            b = b.response_timeout(t);
        }
        if let Some(n) = item_limit {
            b = b.item_limit(n);
        }
        if let Some(t) = seconds(generation_refresh, "generation_refresh")? {
            b = b.generation_refresh(t);
        }
        if connect_lazily {
            b = b.connect_lazily();
        }
        let backend = py.detach(|| b.build()).map_err(to_py_err)?;
        Ok(PyMemcachedBackend {
            key_prefix: backend.key_prefix().to_owned(),
            servers: backend.servers().into_iter().map(str::to_owned).collect(),
            engine: Engine::new(backend, Kind::Memcached, Kind::MemcachedJson),
            url,
        })
    }

    /// The URL the backend was made with (the first server).
    #[getter]
    fn url(&self) -> String {
        self.url.clone()
    }

    /// The prefix in front of every key this backend stores.
    #[getter]
    fn key_prefix(&self) -> String {
        self.key_prefix.clone()
    }

    /// The servers, as `host:port`, in the order given.
    #[getter]
    fn servers(&self) -> Vec<String> {
        self.servers.clone()
    }

    fn __repr__(&self) -> String {
        format!("MemcachedBackend({:?})", self.url)
    }
}

/// The cache of a backend object, for `BrainCache(backend)`.
pub fn engine_of(obj: &Bound<'_, PyAny>) -> PyResult<Engine> {
    if let Ok(b) = obj.cast::<PyMemoryBackend>() {
        return Ok(b.get().engine.clone());
    }
    if let Ok(b) = obj.cast::<PyFileBackend>() {
        return Ok(b.get().engine.clone());
    }
    if let Ok(b) = obj.cast::<PyRedbBackend>() {
        return Ok(b.get().engine.clone());
    }
    if let Ok(b) = obj.cast::<PyRedisBackend>() {
        return Ok(b.get().engine.clone());
    }
    if let Ok(b) = obj.cast::<PyMemcachedBackend>() {
        return Ok(b.get().engine.clone());
    }
    let name = obj
        .get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string());
    Err(PyTypeError::new_err(format!(
        "backend must be a braincache backend (MemoryBackend, FileBackend, RedbBackend, \
         RedisBackend, MemcachedBackend) or None, not '{name}'"
    )))
}
