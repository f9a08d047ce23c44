//! The async side of [`Backend`], for `braincache::future::BrainCache` (feature `async`).

use crate::{Backend, Error, Operation, Record, Result, Timestamp};
use std::future::Future;
use std::sync::Arc;

/// How an async front end (`braincache::future::BrainCache`) calls a [`Backend`] without
/// blocking a runtime worker thread.
///
/// Every method has a default that runs the blocking [`Backend`] method on tokio's blocking
/// thread pool ([`run_blocking`]) and awaits it, so a backend opts in with one line and keeps
/// its sync code as it is:
///
/// ```
/// # use braincache_core::{Backend, Postcard, Record, Result, Timestamp};
/// # struct MyBackend;
/// # impl Backend for MyBackend {
/// #     type Codec = Postcard;
/// #     fn get(&self, _: &str) -> Result<Option<Record>> { Ok(None) }
/// #     fn set(&self, _: &str, _: Record) -> Result<()> { Ok(()) }
/// #     fn delete(&self, _: &str) -> Result<bool> { Ok(false) }
/// #     fn clear(&self) -> Result<()> { Ok(()) }
/// #     fn len(&self) -> Result<usize> { Ok(0) }
/// #     fn purge_expired(&self, _: Timestamp) -> Result<usize> { Ok(0) }
/// #     fn next_expiry(&self) -> Result<Option<Timestamp>> { Ok(None) }
/// # }
/// use braincache_core::AsyncBackend;
///
/// impl AsyncBackend for MyBackend {} // every call runs on tokio's blocking pool
/// ```
///
/// Backends with a cheaper path override what they can: the memory backend answers inline
/// (its calls never wait on I/O), the redb backend hands writes to its writer thread and awaits
/// the acknowledgement through a oneshot channel, the Redis backend talks to the server over an
/// async connection.
///
/// # Contract
/// - Each method does what the [`Backend`] method of the same name (without `_async`) does,
///   with the same durability, visibility and errors.
/// - The returned futures are `Send`, and they never block the thread that polls them on I/O
///   or on a lock held across I/O (a few microseconds of CPU or of an uncontended lock are
///   fine).
/// - A future dropped before it completes may or may not have applied its change (as a
///   thread killed mid-call); it never leaves the store damaged, and it must not leave work
///   behind that blocks later calls.
/// - The futures need a tokio runtime only where they use one (the defaults do: called
///   outside a runtime they fail with [`Error::Task`], they do not panic).
pub trait AsyncBackend: Backend {
    /// [`Backend::get`].
    fn get_async(
        self: &Arc<Self>,
        key: &str,
    ) -> impl Future<Output = Result<Option<Record>>> + Send {
        let key = key.to_owned();
        run_blocking(self, Operation::Get, move |b| b.get(&key))
    }

    /// [`Backend::set`].
    fn set_async(
        self: &Arc<Self>,
        key: &str,
        record: Record,
    ) -> impl Future<Output = Result<()>> + Send {
        let key = key.to_owned();
        run_blocking(self, Operation::Set, move |b| b.set(&key, record))
    }

    /// [`Backend::set_at`].
    fn set_at_async(
        self: &Arc<Self>,
        key: &str,
        record: Record,
        now: Timestamp,
    ) -> impl Future<Output = Result<()>> + Send {
        let key = key.to_owned();
        run_blocking(self, Operation::Set, move |b| b.set_at(&key, record, now))
    }

    /// [`Backend::delete`].
    fn delete_async(self: &Arc<Self>, key: &str) -> impl Future<Output = Result<bool>> + Send {
        let key = key.to_owned();
        run_blocking(self, Operation::Delete, move |b| b.delete(&key))
    }

    /// [`Backend::clear`].
    fn clear_async(self: &Arc<Self>) -> impl Future<Output = Result<()>> + Send {
        run_blocking(self, Operation::Clear, |b| b.clear())
    }

    /// [`Backend::len`].
    fn len_async(self: &Arc<Self>) -> impl Future<Output = Result<usize>> + Send {
        run_blocking(self, Operation::Len, |b| b.len())
    }

    /// [`Backend::is_empty`].
    fn is_empty_async(self: &Arc<Self>) -> impl Future<Output = Result<bool>> + Send {
        run_blocking(self, Operation::Len, |b| b.is_empty())
    }

    /// [`Backend::purge_expired`].
    fn purge_expired_async(
        self: &Arc<Self>,
        now: Timestamp,
    ) -> impl Future<Output = Result<usize>> + Send {
        run_blocking(self, Operation::Purge, move |b| b.purge_expired(now))
    }

    /// [`Backend::next_expiry`].
    fn next_expiry_async(
        self: &Arc<Self>,
    ) -> impl Future<Output = Result<Option<Timestamp>>> + Send {
        run_blocking(self, Operation::NextExpiry, |b| b.next_expiry())
    }

    /// [`Backend::flush`].
    fn flush_async(self: &Arc<Self>) -> impl Future<Output = Result<()>> + Send {
        run_blocking(self, Operation::Flush, |b| b.flush())
    }
}

/// Runs `f` on `backend` on tokio's blocking thread pool and awaits its answer: the default of
/// every [`AsyncBackend`] method, for backends that override some methods and not others.
///
/// A panic in `f` resumes in the caller, as it would in a sync call.
///
/// # Errors
/// `f`'s error; [`Error::Task`] when there is no tokio runtime, or it shuts down before `f`
/// runs.
pub fn run_blocking<B, R, F>(
    backend: &Arc<B>,
    op: Operation,
    f: F,
) -> impl Future<Output = Result<R>> + Send + 'static
where
    B: ?Sized + Send + Sync + 'static,
    R: Send + 'static,
    F: FnOnce(&B) -> Result<R> + Send + 'static,
{
    let backend = Arc::clone(backend);
    async move {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::Task {
            op,
            key: None,
            detail: "no tokio runtime: async calls must run inside one".into(),
        })?;
        match runtime.spawn_blocking(move || f(&backend)).await {
            Ok(answer) => answer,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Error::Task {
                op,
                key: None,
                detail: "the tokio runtime shut down before the call ran".into(),
            }),
        }
    }
}
