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

    /// [`Backend::set_at`]. The async front end sets through this method: a backend that
    /// overrides [`set_async`](Self::set_async) and ignores `now` (it stores deadlines, as
    /// [`Backend::set_at`]'s default does) forwards this one to it.
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

/// Implements the named [`AsyncBackend`] methods by calling the [`Backend`] method of the same
/// name on the polling thread and returning its answer as a ready future: for a backend whose
/// calls never wait on I/O, or on a lock held across I/O (a memory map, a read of an MVCC
/// snapshot), where a trip through the blocking pool would cost more than the call. Methods not
/// named keep [`AsyncBackend`]'s defaults (the call runs on tokio's blocking pool, for calls
/// that block) or the implementation's own.
///
/// Names: `get`, `set`, `set_at`, `delete`, `clear`, `len`, `is_empty`, `purge_expired`,
/// `next_expiry`, `flush`, or `all` for every method (a backend none of whose calls block);
/// another name is a compile error.
///
/// ```
/// # use braincache_core::{Backend, MsgPack, Record, Result, Timestamp};
/// # use std::sync::Arc;
/// # struct MyBackend;
/// # impl Backend for MyBackend {
/// #     type Codec = MsgPack;
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
/// /// Reads answer inline; writes run on the blocking pool (the defaults).
/// impl AsyncBackend for MyBackend {
///     braincache_core::answer_inline!(get, len, is_empty, next_expiry);
/// }
/// ```
#[macro_export]
macro_rules! answer_inline {
    (@one get) => {
        fn get_async(
            self: &::std::sync::Arc<Self>,
            key: &str,
        ) -> impl ::std::future::Future<
            Output = $crate::Result<::std::option::Option<$crate::Record>>,
        > + ::std::marker::Send {
            ::std::future::ready($crate::Backend::get(&**self, key))
        }
    };
    (@one set) => {
        fn set_async(
            self: &::std::sync::Arc<Self>,
            key: &str,
            record: $crate::Record,
        ) -> impl ::std::future::Future<Output = $crate::Result<()>> + ::std::marker::Send {
            ::std::future::ready($crate::Backend::set(&**self, key, record))
        }
    };
    (@one set_at) => {
        fn set_at_async(
            self: &::std::sync::Arc<Self>,
            key: &str,
            record: $crate::Record,
            now: $crate::Timestamp,
        ) -> impl ::std::future::Future<Output = $crate::Result<()>> + ::std::marker::Send {
            ::std::future::ready($crate::Backend::set_at(&**self, key, record, now))
        }
    };
    (@one delete) => {
        fn delete_async(
            self: &::std::sync::Arc<Self>,
            key: &str,
        ) -> impl ::std::future::Future<Output = $crate::Result<bool>> + ::std::marker::Send {
            ::std::future::ready($crate::Backend::delete(&**self, key))
        }
    };
    (@one clear) => {
        fn clear_async(
            self: &::std::sync::Arc<Self>,
        ) -> impl ::std::future::Future<Output = $crate::Result<()>> + ::std::marker::Send {
            ::std::future::ready($crate::Backend::clear(&**self))
        }
    };
    (@one len) => {
        fn len_async(
            self: &::std::sync::Arc<Self>,
        ) -> impl ::std::future::Future<Output = $crate::Result<usize>> + ::std::marker::Send {
            ::std::future::ready($crate::Backend::len(&**self))
        }
    };
    (@one is_empty) => {
        fn is_empty_async(
            self: &::std::sync::Arc<Self>,
        ) -> impl ::std::future::Future<Output = $crate::Result<bool>> + ::std::marker::Send {
            ::std::future::ready($crate::Backend::is_empty(&**self))
        }
    };
    (@one purge_expired) => {
        fn purge_expired_async(
            self: &::std::sync::Arc<Self>,
            now: $crate::Timestamp,
        ) -> impl ::std::future::Future<Output = $crate::Result<usize>> + ::std::marker::Send {
            ::std::future::ready($crate::Backend::purge_expired(&**self, now))
        }
    };
    (@one next_expiry) => {
        fn next_expiry_async(
            self: &::std::sync::Arc<Self>,
        ) -> impl ::std::future::Future<
            Output = $crate::Result<::std::option::Option<$crate::Timestamp>>,
        > + ::std::marker::Send {
            ::std::future::ready($crate::Backend::next_expiry(&**self))
        }
    };
    (@one flush) => {
        fn flush_async(
            self: &::std::sync::Arc<Self>,
        ) -> impl ::std::future::Future<Output = $crate::Result<()>> + ::std::marker::Send {
            ::std::future::ready($crate::Backend::flush(&**self))
        }
    };
    (@one $other:ident) => {
        ::std::compile_error!(::std::concat!(
            "answer_inline!: `",
            ::std::stringify!($other),
            "` is not a method of AsyncBackend (get, set, set_at, delete, clear, len, is_empty, \
             purge_expired, next_expiry, flush)"
        ));
    };
    (all) => {
        $crate::answer_inline!(
            get,
            set,
            set_at,
            delete,
            clear,
            len,
            is_empty,
            purge_expired,
            next_expiry,
            flush,
        );
    };
    ($($method:ident),+ $(,)?) => {
        $($crate::answer_inline!(@one $method);)+
    };
}

#[cfg(test)]
mod tests {
    use crate::{AsyncBackend, Backend, MsgPack, Record, Result, Timestamp};
    use std::future::Future;
    use std::pin::pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Waker};

    /// One key in a lock.
    #[derive(Default)]
    struct Cell(Mutex<Option<Record>>);

    impl Backend for Cell {
        type Codec = MsgPack;
        fn get(&self, _: &str) -> Result<Option<Record>> {
            Ok(self.0.lock().unwrap().clone())
        }
        fn set(&self, _: &str, record: Record) -> Result<()> {
            *self.0.lock().unwrap() = Some(record);
            Ok(())
        }
        fn delete(&self, _: &str) -> Result<bool> {
            Ok(self.0.lock().unwrap().take().is_some())
        }
        fn clear(&self) -> Result<()> {
            self.delete("").map(drop)
        }
        fn len(&self) -> Result<usize> {
            Ok(usize::from(self.0.lock().unwrap().is_some()))
        }
        fn purge_expired(&self, now: Timestamp) -> Result<usize> {
            let mut cell = self.0.lock().unwrap();
            let expired = cell.as_ref().is_some_and(|r| r.is_expired(now));
            if expired {
                *cell = None;
            }
            Ok(usize::from(expired))
        }
        fn next_expiry(&self) -> Result<Option<Timestamp>> {
            Ok(self.0.lock().unwrap().as_ref().and_then(|r| r.expires_at))
        }
    }

    /// `all` expands to the list of every method, so both forms are exercised.
    impl AsyncBackend for Cell {
        crate::answer_inline!(all);
    }

    /// Polls `f` once, with no runtime: an inline answer is ready at once (the blocking pool's
    /// default would fail here, there being no tokio runtime).
    fn now<T>(f: impl Future<Output = Result<T>>) -> T {
        match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(answer) => answer.unwrap(),
            Poll::Pending => panic!("an inline answer was not ready on its first poll"),
        }
    }

    #[test]
    fn inline_methods_answer_on_the_first_poll_without_a_runtime() {
        let b = Arc::new(Cell::default());
        let at = Timestamp::from_unix_nanos(10);
        let r = Record::new(vec![1], Some(at));
        now(b.set_async("k", r.clone()));
        assert_eq!(now(b.get_async("k")), Some(r.clone()));
        assert_eq!(now(b.len_async()), 1);
        assert!(!now(b.is_empty_async()));
        assert_eq!(now(b.next_expiry_async()), Some(at));
        assert_eq!(now(b.purge_expired_async(at)), 1);
        now(b.set_at_async("k", r, Timestamp::from_unix_nanos(0)));
        assert!(now(b.delete_async("k")));
        now(b.clear_async());
        now(b.flush_async());
        assert_eq!(now(b.get_async("k")), None);
    }
}
