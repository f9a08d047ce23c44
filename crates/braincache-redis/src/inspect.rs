//! What tools need beyond [`Backend`]: list the cache keys under a backend's prefix, read every
//! entry, and render stored values as JSON where the format allows.
//!
//! For the `braincache` command (`--redis URL --prefix P`); a cache in use goes through
//! [`Backend`]. Like [`Backend::clear`] and [`Backend::len`], listing walks the whole database
//! with `SCAN MATCH prefix*` (Redis has no index by prefix).
//!
//! ```no_run
//! use braincache_redis::{RedisBackend, inspect};
//!
//! # fn main() -> braincache_core::Result<()> {
//! let backend = RedisBackend::builder("redis://127.0.0.1:6379/0")
//!     .key_prefix("myapp:")
//!     .build()?;
//! for key in inspect::keys(&backend)? {
//!     println!("{key}"); // without the prefix
//! }
//! # Ok(())
//! # }
//! ```

use crate::RedisBackend;
use braincache_core::{Backend, Error, Operation, Record, Result};
use std::collections::BTreeSet;

/// Every cache key under `backend`'s prefix, without the prefix, sorted, each once (`SCAN` may
/// return a key twice). Keys created or deleted meanwhile may or may not be listed.
///
/// # Errors
/// [`Error::Backend`] when the server fails or is unreachable; [`Error::Corrupt`] naming the
/// key when a Redis key under the prefix is not UTF-8 (braincache never writes one).
pub fn keys(backend: &RedisBackend) -> Result<Vec<String>> {
    let op = Operation::Get;
    let mut seen = BTreeSet::new();
    let mut cursor = 0;
    loop {
        let (next, found) = backend.scan(op, cursor)?;
        for raw in found {
            let Some(key) = raw.strip_prefix(backend.key_prefix().as_bytes()) else {
                continue; // SCAN MATCH only returns the prefix's keys; be strict all the same
            };
            let key = String::from_utf8(key.to_vec()).map_err(|e| {
                Error::corrupt_entry(
                    &String::from_utf8_lossy(e.as_bytes()),
                    "a Redis key under the prefix is not UTF-8: not written by braincache",
                )
            })?;
            seen.insert(key);
        }
        cursor = next;
        if cursor == 0 {
            return Ok(seen.into_iter().collect());
        }
    }
}

/// Every entry under `backend`'s prefix, sorted by key: [`keys`], then their records in
/// pipelined batches. A key that expires or is deleted between the two is left out.
///
/// # Errors
/// As [`keys`], and [`Error::Corrupt`] naming the key when a value has no braincache header.
pub fn entries(backend: &RedisBackend) -> Result<Vec<(String, Record)>> {
    let keys = keys(backend)?;
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(crate::BATCH) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let records = backend.get_many(&refs)?;
        for (key, record) in chunk.iter().zip(records) {
            if let Some(r) = record {
                out.push((key.clone(), r));
            }
        }
    }
    Ok(out)
}

// How a tool renders a stored value as JSON text, and stores imported JSON: the same for every
// backend, so it lives in core.
#[doc(inline)]
pub use braincache_core::inspect::{value_from_json, value_json};
