//! The async side (feature `async`): every call answers inline, on the polling thread. Nothing
//! here waits on I/O; a call takes a shard lock for the time of a table lookup or insert.

use crate::MemoryBackend;
use braincache_core::AsyncBackend;

impl AsyncBackend for MemoryBackend {
    braincache_core::answer_inline!(all);
}

#[cfg(test)]
mod tests {
    use crate::MemoryBackend;
    use braincache_core::{AsyncBackend, Record, Timestamp};
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    /// The front end's async `set` calls `set_at_async`: it too answers on the first poll, with
    /// no tokio runtime (the blocking pool's default would fail without one).
    #[test]
    fn set_at_answers_inline() {
        let b = Arc::new(MemoryBackend::new());
        let r = Record::new(vec![7], None);
        let set = b.set_at_async("k", r.clone(), Timestamp::from_unix_nanos(0));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(pin!(set).poll(&mut cx), Poll::Ready(Ok(()))));
        let get = pin!(b.get_async("k")).poll(&mut cx);
        assert!(matches!(get, Poll::Ready(Ok(Some(got))) if got == r));
    }
}
