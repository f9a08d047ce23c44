//! How the writer thread answers: a blocked thread, or (feature `async`) a task awaiting a
//! oneshot channel; and the backend's [`AsyncBackend`](braincache_core::AsyncBackend) side.
//!
//! **Writes** go to the same writer thread as sync writes, so async and sync writers share the
//! group commit; the caller's task awaits the acknowledgement without holding a thread.
//!
//! **Reads run inline** on the polling thread, as the sync backend runs them. They never take
//! a lock that a commit holds: a `get` reads an MVCC snapshot (reused while the commit stamp is
//! unchanged), and opening a new snapshot costs a `pread` of the small stamp file and a
//! `begin_read`; the pages come from redb's cache or the OS page cache. Measured with
//! `cargo run --release -p braincache-redb --features async --example async_reads` (100k keys
//! × 64 B, 4 writer threads committing meanwhile so snapshots are renewed all the time; the
//! development machine, 2 cores at a load average of about 20, 2026-11-30):
//!
//! | | p50 | p99 | p99.9 | max |
//! |---|---:|---:|---:|---:|
//! | inline `get` | 1.5 µs | 3.2 µs | 32 µs | 84 ms |
//! | `spawn_blocking(get)`, awaited | 12.5 µs | 1.56 ms | 28 ms | 41 ms |
//!
//! The blocking pool's round trip alone costs 8× an inline read at the median and far more in
//! the tail; the maxima of both are the loaded machine's scheduler (a thread waiting for a
//! core), not I/O. A read that misses the OS page cache (a cold file on a slow disk) would
//! block the worker for one device read; a service whose cache file is much larger than its
//! memory should wrap the backend in one that uses the blocking pool for `get_async`.

use crate::writer::Answer;
use braincache_core::Result;

/// Where the writer thread sends a request's answer.
pub(crate) enum Reply {
    /// A thread blocked in `Writer::submit`.
    Blocking(crossbeam_channel::Sender<Result<Answer>>),
    /// A task awaiting the answer (the async path); nobody listens if its future was dropped.
    #[cfg(feature = "async")]
    Async(tokio::sync::oneshot::Sender<Result<Answer>>),
}

impl Reply {
    /// Sends the answer; a caller that stopped waiting is not an error.
    pub(crate) fn send(self, answer: Result<Answer>) {
        match self {
            Reply::Blocking(tx) => {
                let _ = tx.send(answer);
            }
            #[cfg(feature = "async")]
            Reply::Async(tx) => {
                let _ = tx.send(answer);
            }
        }
    }
}

#[cfg(feature = "async")]
mod backend {
    use super::Reply;
    use crate::RedbBackend;
    use crate::errors;
    use crate::writer::{Answer, Command};
    use braincache_core::{AsyncBackend, Backend, Record, Result, Timestamp};
    use std::future::Future;
    use std::sync::Arc;

    impl RedbBackend {
        /// Queues `op` on the writer thread and awaits its acknowledgement (after the durable
        /// commit). Dropping the future does not withdraw the request.
        fn submit_async(
            &self,
            op: Command,
        ) -> impl Future<Output = Result<Answer>> + Send + 'static {
            let operation = op.operation();
            let (tx, rx) = tokio::sync::oneshot::channel();
            // A closed backend (`close`) answers at once; otherwise the request is queued while
            // the open state is borrowed, and the borrow ends before the future is awaited.
            let queued = self
                .open_ref(operation)
                .and_then(|this| this.writer.enqueue(op, Reply::Async(tx)));
            async move {
                queued?;
                // A closed channel: the thread ended without answering.
                rx.await.map_err(|_| errors::closed(operation))?
            }
        }
    }

    /// A write's answer: known now (write-behind: queued in the overlay) or to be awaited.
    enum Pending<T, F> {
        Now(T),
        Later(F),
    }

    /// Writes await the writer thread's acknowledgement (with write-behind, sets, deletes and
    /// clears are answered once queued, as the blocking calls are; a purge goes straight to the
    /// writer thread and removes what was committed); reads run inline (see the module docs).
    impl AsyncBackend for RedbBackend {
        braincache_core::answer_inline!(get, len, is_empty, next_expiry);

        /// As [`set_async`](AsyncBackend::set_async): entries store deadlines, not TTLs, so
        /// `now` changes nothing (as in the sync `set_at`). The async front end sets through
        /// this method.
        fn set_at_async(
            self: &Arc<Self>,
            key: &str,
            record: Record,
            _now: Timestamp,
        ) -> impl Future<Output = Result<()>> + Send {
            self.set_async(key, record)
        }

        fn set_async(
            self: &Arc<Self>,
            key: &str,
            record: Record,
        ) -> impl Future<Output = Result<()>> + Send {
            // Write-behind: queued in the overlay and answered at once, as the blocking `set`.
            let done = if self.writes_behind() {
                Pending::Now(Backend::set(&**self, key, record))
            } else {
                Pending::Later(self.submit_async(Command::Set(key.to_owned(), record)))
            };
            async move {
                match done {
                    Pending::Now(r) => r,
                    Pending::Later(f) => f.await.map(drop),
                }
            }
        }

        fn delete_async(self: &Arc<Self>, key: &str) -> impl Future<Output = Result<bool>> + Send {
            let done = if self.writes_behind() {
                Pending::Now(Backend::delete(&**self, key))
            } else {
                Pending::Later(self.submit_async(Command::Delete(key.to_owned())))
            };
            async move {
                match done {
                    Pending::Now(r) => r,
                    Pending::Later(f) => Ok(matches!(f.await?, Answer::Found(true))),
                }
            }
        }

        fn clear_async(self: &Arc<Self>) -> impl Future<Output = Result<()>> + Send {
            let done = if self.writes_behind() {
                Pending::Now(Backend::clear(&**self))
            } else {
                Pending::Later(self.submit_async(Command::Clear))
            };
            async move {
                match done {
                    Pending::Now(r) => r,
                    Pending::Later(f) => f.await.map(drop),
                }
            }
        }

        fn purge_expired_async(
            self: &Arc<Self>,
            now: Timestamp,
        ) -> impl Future<Output = Result<usize>> + Send {
            let done = self.submit_async(Command::Purge(now));
            async move {
                match done.await? {
                    Answer::Count(n) => Ok(n),
                    Answer::Unit | Answer::Found(_) => Ok(0),
                }
            }
        }
    }
}

#[cfg(all(test, feature = "async"))]
mod tests {
    use crate::RedbBackend;
    use braincache_core::{AsyncBackend, Backend, Record, Result, Timestamp};
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::thread::Thread;
    use std::time::{Duration, Instant};

    struct Unpark(Thread);

    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    /// Drives `f` on this thread with no tokio runtime (for at most a minute), so a call that
    /// needed the blocking pool would fail instead of passing.
    fn block_on<T>(f: impl Future<Output = Result<T>>) -> T {
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = pin!(f);
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            if let Poll::Ready(answer) = f.as_mut().poll(&mut cx) {
                return answer.unwrap();
            }
            assert!(Instant::now() < give_up, "no answer within a minute");
            std::thread::park_timeout(Duration::from_millis(100));
        }
    }

    /// The async front end sets through `set_at_async`: it must reach the writer thread like
    /// `set_async` (awaiting its acknowledgement), not run a blocking `set` on tokio's pool.
    #[test]
    fn set_at_goes_to_the_writer_thread_and_reads_answer_inline() {
        let dir = tempfile::tempdir().unwrap();
        let b = Arc::new(RedbBackend::open(dir.path().join("c.redb")).unwrap());
        let deadline = Timestamp::now() + Duration::from_secs(3600);
        let r = Record::new(b"v".to_vec(), Some(deadline));
        block_on(b.set_at_async("k", r.clone(), Timestamp::now()));
        assert_eq!(b.get("k").unwrap(), Some(r.clone()));
        assert_eq!(block_on(b.get_async("k")), Some(r));
        assert_eq!(block_on(b.len_async()), 1);
        assert!(!block_on(b.is_empty_async()));
        assert_eq!(block_on(b.next_expiry_async()), Some(deadline));
    }
}
