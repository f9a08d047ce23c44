//! The async side (feature `async`): every call answers inline, on the polling thread. Nothing
//! here waits on I/O; a call takes a shard lock for the time of a table lookup or insert.

use crate::MemoryBackend;
use braincache_core::{AsyncBackend, Backend, Record, Result, Timestamp};
use std::future::{Future, ready};
use std::sync::Arc;

impl AsyncBackend for MemoryBackend {
    fn get_async(
        self: &Arc<Self>,
        key: &str,
    ) -> impl Future<Output = Result<Option<Record>>> + Send {
        ready(Backend::get(&**self, key))
    }

    fn set_async(
        self: &Arc<Self>,
        key: &str,
        record: Record,
    ) -> impl Future<Output = Result<()>> + Send {
        ready(Backend::set(&**self, key, record))
    }

    fn delete_async(self: &Arc<Self>, key: &str) -> impl Future<Output = Result<bool>> + Send {
        ready(Backend::delete(&**self, key))
    }

    fn clear_async(self: &Arc<Self>) -> impl Future<Output = Result<()>> + Send {
        ready(Backend::clear(&**self))
    }

    fn len_async(self: &Arc<Self>) -> impl Future<Output = Result<usize>> + Send {
        ready(Backend::len(&**self))
    }

    fn is_empty_async(self: &Arc<Self>) -> impl Future<Output = Result<bool>> + Send {
        ready(Backend::is_empty(&**self))
    }

    fn purge_expired_async(
        self: &Arc<Self>,
        now: Timestamp,
    ) -> impl Future<Output = Result<usize>> + Send {
        ready(Backend::purge_expired(&**self, now))
    }

    fn next_expiry_async(
        self: &Arc<Self>,
    ) -> impl Future<Output = Result<Option<Timestamp>>> + Send {
        ready(Backend::next_expiry(&**self))
    }

    fn flush_async(self: &Arc<Self>) -> impl Future<Output = Result<()>> + Send {
        ready(Ok(()))
    }
}
