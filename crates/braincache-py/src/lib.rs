//! The Python package `braincache`: the Python original's API over braincache's Rust caches.
//!
//! This crate is the extension module `braincache._native`; the Python modules under
//! `python/braincache/` re-export its classes under the original's module names. maturin builds
//! it from the repository's `pyproject.toml` (`pip install .`).
//!
//! - Values are what JSON holds ([`value::PyValue`]), stored with the backend's codec when it
//!   is self-describing, else JSON ([`codec::carries_python_values`]); Rust programs read them as
//!   `serde_json::Value` or matching types.
//! - The GIL is released around every backend call that can block (file, redb, Redis and
//!   memcached calls, and the memory backend's `set`, `delete`, `clear`, `len`,
//!   `purge_expired`, `next_expiry`, `get_or_set`). A memory `get` or `has` keeps it: see
//!   `engine` for why, and [`msgpack::to_py`] for how its value is read straight into Python
//!   objects.
//! - Errors are `braincache.BrainCacheError`, or its subclasses `UnsupportedOperation` (also a
//!   `NotImplementedError`: memcached's `len` and `next_expiry`) and `CacheTimeoutError` (also a
//!   `TimeoutError`): see `engine::to_py_err`.

mod backends;
mod cache;
mod cleaner;
pub mod codec;
mod engine;
mod key;
pub mod msgpack;
pub mod value;

use pyo3::prelude::*;

/// The extension module `braincache._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<cache::PyBrainCache>()?;
    m.add_class::<backends::PyMemoryBackend>()?;
    m.add_class::<backends::PyFileBackend>()?;
    m.add_class::<backends::PyRedbBackend>()?;
    m.add_class::<backends::PyRedisBackend>()?;
    m.add_class::<backends::PyMemcachedBackend>()?;
    m.add_class::<cleaner::PyCacheCleaner>()?;
    m.add_function(wrap_pyfunction!(key::call_key, m)?)?;
    m.add(
        "BrainCacheError",
        m.py().get_type::<engine::BrainCacheError>(),
    )?;
    m.add(
        "UnsupportedOperation",
        engine::unsupported_operation(m.py())?,
    )?;
    m.add("CacheTimeoutError", engine::cache_timeout_error(m.py())?)?;
    m.add("MAX_DEPTH", value::MAX_DEPTH)?;
    Ok(())
}
