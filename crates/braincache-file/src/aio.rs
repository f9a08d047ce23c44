//! The async side (feature `async`): [`AsyncBackend`]'s defaults, so every call runs on
//! tokio's blocking pool and none blocks a runtime worker thread.

use crate::FileBackend;
use braincache_core::AsyncBackend;

impl AsyncBackend for FileBackend {}
