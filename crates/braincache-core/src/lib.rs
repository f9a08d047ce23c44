//! The shared core of [braincache](https://docs.rs/braincache): the traits and types every backend
//! uses.
//!
//! **Applications should depend on `braincache`**, the facade, which adds the `BrainCache` front
//! end and the backends. Depend on this crate alone to write a backend: it is small, has no
//! backend code, and changes rarely.
//!
//! - [`Backend`]: where records live (memory, a JSON file, redb, Redis, or yours).
//! - [`Record`]: what a backend stores for one key — encoded bytes, a deadline, the codec's id.
//! - [`Codec`]: how values become bytes — [`MsgPack`] (the default binary codec,
//!   self-describing), [`Json`] (human-readable, the file backend's), [`Postcard`] (opt-in,
//!   compact, not self-describing), and `Bincode` behind the off-by-default `bincode` feature.
//!   Each has a stable [`CodecId`], stored with every record.
//! - [`wire`]: the record header byte-oriented backends store in front of each value.
//! - [`Clock`]: where the time comes from — [`SystemClock`], or [`ManualClock`] for tests.
//! - [`Error`]: one error type naming the operation, the key or path, and the cause.
//! - [`ExpiryIndex`]: keys ordered by deadline, so purges cost what expired, not the size.
//! - [`sidecar`]: the path of a file a backend keeps beside its own (a lock, a temp file).
//! - [`Worker`]: a background thread (a flusher, a writer) stopped and joined on drop.
//! - [`net`]: the settings every networked backend's builder shares (key prefix, pool size,
//!   timeouts, lazy connect), with one set of defaults and one clamping rule.
//! - [`inspect`]: a stored value as JSON text and back, for tools that show or move a cache.
//! - `answer_inline!` (feature `async`): the `AsyncBackend` methods of a backend whose calls
//!   never block, answered on the polling thread.
//!
//! ```
//! use braincache_core::{Backend, Codec, MsgPack, Record, Result, Timestamp};
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//!
//! /// A minimal backend: a map behind a lock.
//! #[derive(Default)]
//! struct MapBackend(Mutex<HashMap<String, Record>>);
//!
//! impl Backend for MapBackend {
//!     type Codec = MsgPack;
//!     fn get(&self, key: &str) -> Result<Option<Record>> {
//!         Ok(self.0.lock().unwrap().get(key).cloned())
//!     }
//!     fn set(&self, key: &str, record: Record) -> Result<()> {
//!         self.0.lock().unwrap().insert(key.to_owned(), record);
//!         Ok(())
//!     }
//!     fn delete(&self, key: &str) -> Result<bool> {
//!         Ok(self.0.lock().unwrap().remove(key).is_some())
//!     }
//!     fn clear(&self) -> Result<()> {
//!         self.0.lock().unwrap().clear();
//!         Ok(())
//!     }
//!     fn len(&self) -> Result<usize> {
//!         Ok(self.0.lock().unwrap().len())
//!     }
//!     fn purge_expired(&self, now: Timestamp) -> Result<usize> {
//!         let mut map = self.0.lock().unwrap();
//!         let before = map.len();
//!         map.retain(|_, r| !r.is_expired(now)); // O(size): real backends keep an index
//!         Ok(before - map.len())
//!     }
//!     fn next_expiry(&self) -> Result<Option<Timestamp>> {
//!         Ok(self.0.lock().unwrap().values().filter_map(|r| r.expires_at).min())
//!     }
//! }
//!
//! # fn main() -> Result<()> {
//! let b = MapBackend::default();
//! b.set("k", Record::new(MsgPack.encode(&42u32).unwrap(), None))?;
//! let v: u32 = MsgPack.decode(&b.get("k")?.unwrap().value).unwrap();
//! assert_eq!(v, 42);
//! # Ok(())
//! # }
//! ```
//!
//! # Builders
//! Every backend with options has a `builder` that consumes itself and ends in `build()`. The
//! same words mean the same thing in each: a switch that turns on a non-default behaviour takes
//! no argument (`single_process()`, `check_integrity_on_open()`, `connect_lazily()`); a limit or
//! an interval of zero is clamped to the smallest allowed value, stated on each setter, and no
//! setter panics.
//!
//! # Crate features
//! - `testkit`: the backend conformance suite (`conformance_tests!`, in `testkit`), for backend
//!   tests.
//! - `bincode`: the `Bincode` codec (bincode 2.0.1, unmaintained upstream).
//! - `tracing`: lets backends log through `tracing`.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod backend;
mod clock;
mod codec;
mod error;
mod expiry;
pub mod inspect;
mod lease;
pub mod net;
mod record;
mod sidecar;
mod time;
mod ttl;
pub mod wire;
mod worker;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use backend::Backend;
pub use clock::{Clock, ManualClock, SystemClock};
#[cfg(feature = "bincode")]
pub use codec::Bincode;
pub use codec::{Codec, CodecId, Json, MsgPack, Postcard};
pub use error::{CodecError, Error, Operation, Result};
pub use expiry::ExpiryIndex;
pub use lease::{Lease, LeaseToken};
pub use record::{Record, RecordRef};
pub use sidecar::{in_step, sidecar};
pub use time::Timestamp;
pub use ttl::Ttl;
pub use worker::Worker;

#[cfg(feature = "async")]
mod async_backend;
#[cfg(feature = "async")]
pub use async_backend::{AsyncBackend, run_blocking};
