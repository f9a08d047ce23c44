//! `braincache.BrainCache`: the Python original's five methods, and more, over a Rust cache.

use crate::backends::engine_of;
use crate::engine::{Engine, Kind, to_py_err, with_cache};
use crate::value::PyValue;
use braincache::LoadError;
use braincache::backend::MemoryBackend;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use std::time::Duration;

/// The key as `&str`; anything but a `str` is a `TypeError`, as in the original's docs.
pub fn key_str<'a>(key: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    match key.cast::<PyString>() {
        Ok(s) => s.to_str(),
        Err(_) => {
            let name = key
                .get_type()
                .name()
                .map_or_else(|_| "?".to_owned(), |n| n.to_string());
            Err(PyTypeError::new_err(format!(
                "cache keys must be str, not '{name}'"
            )))
        }
    }
}

/// Seconds (int or float) as a `Duration`; `None` is forever.
pub fn seconds(value: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<Duration>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let secs: f64 = value.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} must be a number of seconds or None, not '{}'",
            value
                .get_type()
                .name()
                .map_or_else(|_| "?".to_owned(), |n| n.to_string())
        ))
    })?;
    Duration::try_from_secs_f64(secs).map(Some).map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be a non-negative, finite number of seconds, not {secs}"
        ))
    })
}

/// A cache of JSON-shaped values with per-entry TTL, over a memory, file, redb, Redis or memcached
/// backend.
///
/// The Python original's API (`set`, `get`, `has`, `delete`, `clear`), with braincache's
/// semantics where the original was wrong: a stored `None` is a value (`has` is true), and
/// `ttl=0` is already expired unless the cache was made with `zero_ttl_means_forever=True`.
#[pyclass(module = "braincache", name = "BrainCache", frozen)]
pub struct PyBrainCache {
    pub(crate) engine: Engine,
    zero_ttl_means_forever: bool,
}

impl PyBrainCache {
    fn ttl(&self, ttl: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Duration>> {
        Ok(seconds(ttl, "ttl")?.filter(|d| !(self.zero_ttl_means_forever && d.is_zero())))
    }

    /// Converts a value to store, refusing NaN and infinities where the codec is JSON.
    fn value(&self, value: &Bound<'_, PyAny>) -> PyResult<PyValue> {
        let v = PyValue::from_py(value)?;
        check_finite(&self.engine, &v)?;
        Ok(v)
    }
}

fn check_finite(engine: &Engine, v: &PyValue) -> PyResult<()> {
    if !engine.non_finite && v.has_non_finite() {
        return Err(PyValueError::new_err(format!(
            "NaN and infinite floats cannot be stored with the {} codec: it would not read them \
             back",
            engine.codec
        )));
    }
    Ok(())
}

#[pymethods]
impl PyBrainCache {
    /// `BrainCache(backend=None, *, zero_ttl_means_forever=False)`: a cache over `backend`
    /// (a new `MemoryBackend` when `None`).
    #[new]
    #[pyo3(signature = (backend = None, *, zero_ttl_means_forever = false))]
    fn new(backend: Option<&Bound<'_, PyAny>>, zero_ttl_means_forever: bool) -> PyResult<Self> {
        let engine = match backend.filter(|b| !b.is_none()) {
            Some(b) => engine_of(b)?,
            None => Engine::new(MemoryBackend::new(), Kind::Memory, Kind::MemoryJson),
        };
        Ok(PyBrainCache {
            engine,
            zero_ttl_means_forever,
        })
    }

    /// Stores `value` under `key` for `ttl` seconds (`None`: forever).
    #[pyo3(signature = (key, value, ttl = None))]
    fn set(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let key = key_str(key)?;
        let value = self.value(value)?;
        let ttl = self.ttl(ttl)?;
        py.detach(|| with_cache!(self.engine, c => c.set(key, &value, ttl)))
            .map_err(to_py_err)
    }

    /// The value under `key`, or `None` when absent or expired.
    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.engine.get(py, key_str(key)?)
    }

    /// True when a live entry is stored under `key`, whatever its value (`None` included).
    fn has(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.engine.has(py, key_str(key)?)
    }

    /// Removes `key`; returns whether an entry was there.
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = key_str(key)?;
        py.detach(|| with_cache!(self.engine, c => c.delete(key)))
            .map_err(to_py_err)
    }

    /// Removes every entry.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| with_cache!(self.engine, c => c.clear()))
            .map_err(to_py_err)
    }

    /// The value under `key`; when absent or expired, calls `func()`, stores its result for
    /// `ttl` seconds and returns it. Threads asking for the same key at once call `func` once:
    /// the others wait for its result (or its exception, which they raise too).
    #[pyo3(signature = (key, func, ttl = None))]
    fn get_or_set(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        func: Py<PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let key = key_str(key)?;
        let ttl = self.ttl(ttl)?;
        let engine = &self.engine;
        let loaded = py.detach(|| {
            with_cache!(engine, c => c.try_get_or_insert_with::<PyValue, PyErr, _>(key, ttl, || {
                Python::attach(|py| {
                    let out = func.bind(py).call0()?;
                    let v = PyValue::from_py(&out)?;
                    check_finite(engine, &v)?;
                    Ok(v)
                })
            }))
        });
        match loaded {
            Ok(v) => v.to_py(py),
            Err(LoadError::Init(e)) => Err(e.clone_ref(py)),
            Err(LoadError::Cache(e)) => Err(to_py_err(e)),
            Err(other) => Err(pyo3::exceptions::PyRuntimeError::new_err(other.to_string())),
        }
    }

    /// Removes every expired entry now; returns how many (what `CacheCleaner` does).
    fn purge_expired(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| with_cache!(self.engine, c => c.purge_expired()))
            .map_err(to_py_err)
    }

    /// The earliest deadline of a stored entry as Unix time in seconds, or `None` when no entry
    /// has one. Memcached cannot list deadlines: `braincache.UnsupportedOperation` there.
    fn next_expiry(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        py.detach(|| with_cache!(self.engine, c => c.next_expiry()))
            .map(|t| t.map(braincache::Timestamp::as_unix_secs_f64))
            .map_err(to_py_err)
    }

    /// Writes out whatever the backend buffers.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| with_cache!(self.engine, c => c.flush()))
            .map_err(to_py_err)
    }

    /// Counters since the cache was made: hits, misses, sets, evictions, expired, errors.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.engine.stats();
        let d = PyDict::new(py);
        d.set_item("hits", s.hits)?;
        d.set_item("misses", s.misses)?;
        d.set_item("sets", s.sets)?;
        d.set_item("evictions", s.evictions)?;
        d.set_item("expired", s.expired)?;
        d.set_item("errors", s.errors)?;
        Ok(d)
    }

    /// The codec values are stored with (`"json"` for the file backend).
    #[getter]
    fn codec(&self) -> &'static str {
        self.engine.codec
    }

    /// Whether `ttl=0` means forever (the original's behaviour) instead of already expired.
    #[getter]
    fn zero_ttl_means_forever(&self) -> bool {
        self.zero_ttl_means_forever
    }

    /// The number of stored entries, expired-but-unpurged ones included. Memcached cannot count
    /// them: `braincache.UnsupportedOperation` there.
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| with_cache!(self.engine, c => c.len()))
            .map_err(to_py_err)
    }

    /// Same as `has(key)`.
    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.has(py, key)
    }

    fn __repr__(&self) -> String {
        format!(
            "BrainCache({}, codec={:?})",
            self.engine.backend_name(),
            self.engine.codec
        )
    }
}
