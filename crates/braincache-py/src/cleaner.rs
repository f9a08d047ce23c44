//! `braincache.cleaner.CacheCleaner`: the original's background purger, on Rust's cleaner.

use crate::cache::{PyBrainCache, seconds};
use crate::engine::{Engine, with_cache};
use pyo3::prelude::*;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Purges expired entries of a cache in a background thread, at least every `interval` seconds
/// and as soon as an entry expires.
#[pyclass(module = "braincache.cleaner", name = "CacheCleaner", frozen)]
pub struct PyCacheCleaner {
    engine: Engine,
    interval: Duration,
    running: Mutex<Option<braincache::CacheCleaner>>,
}

#[pymethods]
impl PyCacheCleaner {
    /// `CacheCleaner(cache, interval=60)`: does nothing until `start()`.
    #[new]
    #[pyo3(signature = (cache, interval = None))]
    fn new(cache: &Bound<'_, PyBrainCache>, interval: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        Ok(PyCacheCleaner {
            engine: cache.get().engine.clone(),
            interval: seconds(interval, "interval")?.unwrap_or(Duration::from_secs(60)),
            running: Mutex::new(None),
        })
    }

    /// Starts the thread; does nothing when it already runs.
    fn start(&self) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if running.is_none() {
            *running = Some(
                with_cache!(self.engine, c => braincache::CacheCleaner::start(c, self.interval)),
            );
        }
    }

    /// Stops the thread and waits for it to end (unlike the original, which did not join).
    fn stop(&self, py: Python<'_>) {
        let cleaner = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(cleaner) = cleaner {
            py.detach(|| cleaner.stop());
        }
    }

    /// True while the thread runs.
    #[getter]
    fn is_running(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(braincache::CacheCleaner::is_running)
    }

    /// The purge interval in seconds.
    #[getter]
    fn interval(&self) -> f64 {
        self.interval.as_secs_f64()
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf.get().start();
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.stop(py);
        false
    }
}
