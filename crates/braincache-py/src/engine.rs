//! One Rust cache per Python backend object, whatever its backend type and codec, and the
//! lookups (`get`, `has`) that read it.
//!
//! # The GIL
//! Every call on the file, redb, Redis and memcached backends, and every memory call but `get`
//! and `has`, runs with the GIL released: those calls do I/O, wait for other threads or
//! processes, or walk the whole cache. A memory `get` or `has` keeps the GIL. Its work outside Python is a
//! hash lookup under one shard's read lock (tens of nanoseconds), less than releasing and
//! retaking the GIL costs (about 40 ns here), and far less than the microseconds a waiting
//! Python thread needs to wake up and use the GIL, so releasing it let no other thread run; it
//! only made the call slower than the original's dict. It cannot deadlock: a shard lock is held
//! only inside the memory backend, whose code never calls into Python or waits for the GIL (a
//! reader waits at most for one writer's `set`, `delete`, or its share of a `clear` or purge).
//! The value's bytes are read straight into Python objects ([`msgpack::to_py`]), which needs
//! the GIL anyway.

use crate::codec::{carries_non_finite, carries_python_values};
use crate::msgpack;
use crate::value::PyValue;
use braincache::BrainCache;
use braincache::backend::Record;
use braincache::backend::{
    Backend, FileBackend, MemcachedBackend, MemoryBackend, RedbBackend, RedisBackend,
};
use braincache::base::{Codec, CodecId, Json};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// The hits and misses of the lookups made with the GIL held (the memory backend's `get`
    /// and `has`), which read the backend directly and so are not in the cache's own counters.
    /// Shared by clones, as the cache's counters are.
    lookups: Arc<Lookups>,
}

/// Hit and miss counters of [`Engine::get`] and [`Engine::has`] on the memory backend.
#[derive(Debug, Default)]
struct Lookups {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Lookups {
    fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }
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
    /// `braincache.backend.memcached.MemcachedBackend`.
    Memcached(BrainCache<MemcachedBackend>),
    /// The same, with JSON.
    MemcachedJson(BrainCache<MemcachedBackend, Json>),
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
            $crate::engine::Kind::Memcached($c) => $body,
            $crate::engine::Kind::MemcachedJson($c) => $body,
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
                lookups: Arc::default(),
            }
        } else {
            Engine {
                cache: json(BrainCache::builder(backend).codec(Json).build()),
                codec: Json::NAME,
                non_finite: carries_non_finite::<Json>(),
                lookups: Arc::default(),
            }
        }
    }

    /// The value under `key` as a Python object, or `None` when absent or expired.
    ///
    /// On the memory backend the GIL stays held (see the module docs); elsewhere it is released
    /// around the backend call and the decoding.
    ///
    /// # Errors
    /// `BrainCacheError` when the backend fails or the stored bytes do not decode.
    pub fn get(&self, py: Python<'_>, key: &str) -> PyResult<Py<PyAny>> {
        match &self.cache {
            Kind::Memory(c) => attached_get(py, c, &self.lookups, key),
            Kind::MemoryJson(c) => attached_get(py, c, &self.lookups, key),
            Kind::File(c) => detached_get(py, c, key),
            Kind::Redb(c) => detached_get(py, c, key),
            Kind::RedbJson(c) => detached_get(py, c, key),
            Kind::Redis(c) => detached_get(py, c, key),
            Kind::RedisJson(c) => detached_get(py, c, key),
            Kind::Memcached(c) => detached_get(py, c, key),
            Kind::MemcachedJson(c) => detached_get(py, c, key),
        }
    }

    /// True when a live entry is stored under `key`; the GIL as for [`get`](Self::get).
    ///
    /// # Errors
    /// `BrainCacheError` when the backend fails.
    pub fn has(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        match &self.cache {
            Kind::Memory(c) => attached_has(py, c, &self.lookups, key),
            Kind::MemoryJson(c) => attached_has(py, c, &self.lookups, key),
            _ => py
                .detach(|| with_cache!(self, c => c.has(key)))
                .map_err(to_py_err),
        }
    }

    /// The cache's counters, with the hits and misses of the lookups made with the GIL held.
    pub fn stats(&self) -> braincache::Stats {
        let mut s = with_cache!(self, c => c.stats());
        s.hits += self.lookups.hits.load(Ordering::Relaxed);
        s.misses += self.lookups.misses.load(Ordering::Relaxed);
        s
    }

    /// The Python name of the backend class.
    pub fn backend_name(&self) -> &'static str {
        match &self.cache {
            Kind::Memory(_) | Kind::MemoryJson(_) => "MemoryBackend",
            Kind::File(_) => "FileBackend",
            Kind::Redb(_) | Kind::RedbJson(_) => "RedbBackend",
            Kind::Redis(_) | Kind::RedisJson(_) => "RedisBackend",
            Kind::Memcached(_) | Kind::MemcachedJson(_) => "MemcachedBackend",
        }
    }
}

/// `get` through the cache, with the GIL released around it; the value is built after.
fn detached_get<B: Backend, C: Codec>(
    py: Python<'_>,
    c: &BrainCache<B, C>,
    key: &str,
) -> PyResult<Py<PyAny>> {
    match py.detach(|| c.get::<PyValue>(key)) {
        Ok(Some(v)) => v.to_py(py),
        Ok(None) => Ok(py.None()),
        Err(e) => Err(to_py_err(e)),
    }
}

/// What a lookup made with the GIL held found.
enum Found {
    /// A live record.
    Live(Record),
    /// Nothing, or an expired or stale record: a miss (counted).
    Missing,
    /// The backend failed: the cache answers instead (and counts the error).
    Failed,
}

/// Reads `key` from the backend with the GIL held and decides, as `BrainCache::get` does,
/// whether the record is live. The clock is read only for a record with a deadline.
fn find<B: Backend, C: Codec>(c: &BrainCache<B, C>, lookups: &Lookups, key: &str) -> Found {
    match c.backend().get(key) {
        Ok(Some(r)) if c.is_live(&r) => Found::Live(r),
        Ok(_) => {
            lookups.count(false);
            Found::Missing
        }
        Err(_) => Found::Failed,
    }
}

/// `get` on an in-process backend, with the GIL held (see the module docs): a MessagePack
/// record's bytes are read straight into Python objects ([`msgpack::to_py`]). Anything but a
/// miss or a live record of this cache's codec that this reader takes is left to
/// `BrainCache::get` (which reads again and returns the value, or the error a Rust caller
/// would get, counted).
fn attached_get<B: Backend, C: Codec>(
    py: Python<'_>,
    c: &BrainCache<B, C>,
    lookups: &Lookups,
    key: &str,
) -> PyResult<Py<PyAny>> {
    if C::ID != CodecId::MSGPACK {
        return detached_get(py, c, key);
    }
    let record = match find(c, lookups, key) {
        Found::Live(r) => r,
        Found::Missing => return Ok(py.None()),
        Found::Failed => return detached_get(py, c, key),
    };
    // A record that states no codec was written with the backend's default (as the cache
    // reads it).
    if record.codec.unwrap_or(<B::Codec as Codec>::ID) != C::ID {
        return detached_get(py, c, key);
    }
    match msgpack::to_py(py, &record.value) {
        Some(value) => {
            lookups.count(true);
            Ok(value.unbind())
        }
        None => detached_get(py, c, key),
    }
}

/// `has` on an in-process backend, with the GIL held (see the module docs).
fn attached_has<B: Backend, C: Codec>(
    py: Python<'_>,
    c: &BrainCache<B, C>,
    lookups: &Lookups,
    key: &str,
) -> PyResult<bool> {
    match find(c, lookups, key) {
        Found::Live(_) => {
            lookups.count(true);
            Ok(true)
        }
        Found::Missing => Ok(false),
        Found::Failed => py.detach(|| c.has(key)).map_err(to_py_err),
    }
}

/// `braincache.UnsupportedOperation`, made once per interpreter ([`unsupported_operation`]).
static UNSUPPORTED: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `braincache.CacheTimeoutError`, made once per interpreter ([`cache_timeout_error`]).
static TIMEOUT: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// A subclass of `BrainCacheError` and the built-in exception `builtin`, in module
/// `braincache`: `class name(BrainCacheError, builtin)`. Two bases, which `create_exception!`
/// cannot make, so `except BrainCacheError` and `except builtin` both catch it.
fn subclass(py: Python<'_>, name: &str, builtin: &str, doc: &str) -> PyResult<Py<PyType>> {
    let bases = (
        py.get_type::<BrainCacheError>(),
        py.import("builtins")?.getattr(builtin)?,
    );
    let namespace = PyDict::new(py);
    namespace.set_item("__doc__", doc)?;
    namespace.set_item("__module__", "braincache")?;
    let made = py.get_type::<PyType>().call1((name, bases, namespace))?;
    Ok(made.cast_into::<PyType>()?.unbind())
}

/// `braincache.UnsupportedOperation(BrainCacheError, NotImplementedError)`: the backend cannot
/// answer this operation at all (memcached: `len`, `next_expiry`).
///
/// # Errors
/// Only if Python cannot make the class (out of memory).
pub fn unsupported_operation(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    let t = UNSUPPORTED.get_or_try_init(py, || {
        subclass(
            py,
            "UnsupportedOperation",
            "NotImplementedError",
            "The backend cannot answer this operation at all (memcached cannot count its entries \
             or list their deadlines: len() and next_expiry()). The message names the operation \
             and the backend; nothing was changed.",
        )
    })?;
    Ok(t.bind(py))
}

/// `braincache.CacheTimeoutError(BrainCacheError, TimeoutError)`: a server did not answer in
/// time.
///
/// # Errors
/// Only if Python cannot make the class (out of memory).
pub fn cache_timeout_error(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    let t = TIMEOUT.get_or_try_init(py, || {
        subclass(
            py,
            "CacheTimeoutError",
            "TimeoutError",
            "A server did not answer within the backend's timeout. The message names the \
             operation, the key and the server; for a write, the outcome is unknown.",
        )
    })?;
    Ok(t.bind(py))
}

/// The error's text followed by each of its causes (`": "` between them): a Rust `Display`
/// leaves its source out, as the Rust convention wants, but a Python exception has only its
/// message to say why (the server's address, "timed out", the size and the limit). A cause
/// whose text the message already holds is not repeated.
pub fn message(e: &braincache::Error) -> String {
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(e);
    // Bounded: a cause chain is finite, but a cyclic one must not loop forever.
    for _ in 0..16 {
        let Some(c) = cause else { break };
        let text = c.to_string();
        if !text.is_empty() && !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = c.source();
    }
    message
}

/// braincache's error as a Python exception: `braincache.UnsupportedOperation` when the
/// backend cannot answer the operation ([`braincache::Error::is_unsupported`]),
/// `braincache.CacheTimeoutError` when a server did not answer in time
/// ([`braincache::Error::is_timeout`]), else `braincache.BrainCacheError` (the base of both).
/// The message is the error's, which names the operation and the key or path, followed by its
/// causes ([`message`]).
pub fn to_py_err(e: braincache::Error) -> PyErr {
    let message = message(&e);
    let class: fn(Python<'_>) -> PyResult<&Bound<'_, PyType>> = if e.is_unsupported() {
        unsupported_operation
    } else if e.is_timeout() {
        cache_timeout_error
    } else {
        return BrainCacheError::new_err(message);
    };
    Python::attach(|py| match class(py) {
        Ok(t) => PyErr::from_type(t.clone(), message),
        Err(failed) => failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use braincache::Timestamp;
    use braincache::base::MsgPack;

    fn memory() -> (Engine, BrainCache<MemoryBackend>) {
        let engine = Engine::new(MemoryBackend::new(), Kind::Memory, Kind::MemoryJson);
        let Kind::Memory(c) = &engine.cache else {
            panic!("MessagePack carries Python values: the memory engine uses it")
        };
        let c = c.clone();
        (engine, c)
    }

    fn get(engine: &Engine, key: &str) -> PyResult<String> {
        Python::initialize();
        Python::attach(|py| Ok(engine.get(py, key)?.bind(py).repr()?.to_string()))
    }

    fn has(engine: &Engine, key: &str) -> bool {
        Python::initialize();
        Python::attach(|py| engine.has(py, key)).unwrap()
    }

    #[test]
    fn memory_lookups_count_hits_and_misses_with_the_caches_own() {
        let (engine, c) = memory();
        c.set("k", &PyValue::Str("v".into()), None).unwrap();
        assert_eq!(get(&engine, "k").unwrap(), "'v'");
        assert!(has(&engine, "k"));
        assert_eq!(get(&engine, "absent").unwrap(), "None");
        assert!(!has(&engine, "absent"));
        let _: Option<PyValue> = c.get("k").unwrap(); // the cache's own counters
        let s = engine.stats();
        assert_eq!((s.hits, s.misses, s.errors), (3, 2, 0));
        // Clones (a second `BrainCache` over the same backend object) share the counts.
        assert_eq!(engine.clone().stats(), s);
    }

    #[test]
    fn expired_and_stale_records_are_misses() {
        let (engine, c) = memory();
        let past = Timestamp::from_unix_millis(1);
        let value = MsgPack.encode(&1u8).unwrap();
        let expired = Record::new(value.clone(), Some(past)).with_codec(Some(MsgPack::ID));
        c.backend().set("expired", expired).unwrap();
        let stale = Record::new(value, None)
            .with_codec(Some(MsgPack::ID))
            .with_fresh_until(Some(past));
        c.backend().set("stale", stale).unwrap();
        for key in ["expired", "stale"] {
            assert_eq!(get(&engine, key).unwrap(), "None", "{key}");
            assert!(!has(&engine, key), "{key}");
            // As the cache itself says.
            assert_eq!(c.get::<PyValue>(key).unwrap(), None);
        }
        let s = engine.stats();
        assert_eq!((s.hits, s.misses), (0, 6));
    }

    #[test]
    fn what_the_reader_declines_is_answered_by_the_cache() {
        let (engine, c) = memory();
        // A nested `None` is an extension value the reader leaves to the codec.
        c.set("nested", &Some(None::<u8>), None).unwrap();
        assert_eq!(get(&engine, "nested").unwrap(), "None");
        // A record of another codec is the cache's decode error (a mismatch), counted once.
        let json = Record::new(b"1".to_vec(), None).with_codec(Some(Json::ID));
        c.backend().set("json", json).unwrap();
        let err = get(&engine, "json").unwrap_err().to_string();
        assert!(err.contains(r#"get of key "json""#), "{err}");
        assert!(has(&engine, "json"), "has does not decode");
        // Bytes that are not MessagePack: the cache's decode error.
        let junk = Record::new(vec![0xc1], None).with_codec(Some(MsgPack::ID));
        c.backend().set("junk", junk).unwrap();
        assert!(get(&engine, "junk").is_err());
        let s = engine.stats();
        assert_eq!((s.hits, s.misses, s.errors), (4, 0, 2));
    }

    #[test]
    fn python_errors_carry_the_causes_and_their_kind() {
        use braincache::{Error, Operation};
        use std::io;
        Python::initialize();
        Python::attach(|py| {
            let kind = |e: Error| {
                let err = to_py_err(e);
                (
                    err.get_type(py).name().unwrap().to_string(),
                    err.value(py).to_string(),
                )
            };
            // A timeout: its own class, and the causes in the message.
            let timed_out = io::Error::new(io::ErrorKind::TimedOut, "no answer within 200ms");
            let (name, text) = kind(Error::backend(
                Operation::Get,
                "memcached",
                Some("k"),
                timed_out,
            ));
            assert_eq!(name, "CacheTimeoutError");
            assert_eq!(
                text,
                r#"memcached error during get (key "k"): no answer within 200ms"#
            );
            let err = to_py_err(Error::backend(
                Operation::Set,
                "memcached",
                None,
                io::Error::other("x"),
            ));
            assert!(err.is_instance_of::<BrainCacheError>(py));
            assert!(!err.matches(py, cache_timeout_error(py).unwrap()).unwrap());
            // What the backend cannot answer.
            let e = Error::unsupported(Operation::Len, "memcached", "it cannot count");
            let err = to_py_err(e);
            assert!(err.is_instance_of::<BrainCacheError>(py));
            assert!(err.is_instance_of::<pyo3::exceptions::PyNotImplementedError>(py));
            assert_eq!(
                err.value(py).to_string(),
                "len: not supported by the memcached backend: it cannot count"
            );
            // Everything else stays a plain BrainCacheError, with its causes.
            let (name, text) = kind(Error::backend(
                Operation::Open,
                "redis",
                None,
                io::Error::other("connection refused"),
            ));
            assert_eq!(name, "BrainCacheError");
            assert!(text.ends_with(": connection refused"), "{text}");
        });
    }
}
