//! One computation per key at a time, for `get_or_insert_with`.
//!
//! The first caller for a missing key becomes the *leader*: it runs the closure while later
//! callers for the same key wait on a slot. The leader publishes the encoded value (so waiters
//! need not read the cache again, which matters for a zero TTL) or its shared error. If the leader
//! panics or fails in a way it cannot share, its guard marks the slot abandoned and a waiter takes
//! over: nobody waits forever on a dead leader.
//!
//! Sync and async callers (`braincache::future::BrainCache`) share one map of slots, so they
//! coalesce on a key whichever face they call through: threads wait on the slot's condition
//! variable, tasks on its `Notify` (feature `async`), and a leader of either kind wakes both. An
//! async leader whose future is dropped abandons its slot as a panicking sync leader does; an
//! async leader whose loader panics publishes `Panicked`, which async waiters turn into an
//! error (sync waiters take over, as they always have).

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

pub(crate) type SharedError = Arc<dyn Any + Send + Sync>;

/// Whether, and how, waiters receive the leader's error.
pub(crate) trait ErrorSharing<E> {
    /// What waiters receive; `None`: they compute themselves.
    fn share(e: &Arc<E>) -> Option<SharedError>;
    /// Recovers the error a leader shared; `None` if it is of another type.
    fn receive(shared: SharedError) -> Option<Arc<E>>;
}

/// Waiters compute themselves after a failure (errors that are not `Send + Sync`).
pub(crate) struct NoSharing;

impl<E> ErrorSharing<E> for NoSharing {
    fn share(_: &Arc<E>) -> Option<SharedError> {
        None
    }
    fn receive(_: SharedError) -> Option<Arc<E>> {
        None
    }
}

/// Waiters receive the leader's error.
pub(crate) struct Sharing;

impl<E: Send + Sync + 'static> ErrorSharing<E> for Sharing {
    fn share(e: &Arc<E>) -> Option<SharedError> {
        Some(Arc::new(Arc::clone(e)))
    }
    fn receive(shared: SharedError) -> Option<Arc<E>> {
        shared.downcast::<Arc<E>>().ok().map(|e| Arc::clone(&*e))
    }
}

#[derive(Clone)]
pub(crate) enum Outcome {
    /// The encoded value the leader computed.
    Value(Arc<[u8]>),
    /// The leader's error, shared with waiters.
    Failed(SharedError),
    /// The leader panicked (sync) or was cancelled (async): try again (one waiter becomes the
    /// next leader).
    Abandoned,
    /// An async leader's loader panicked: async waiters fail, sync waiters try again.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    Panicked,
    /// The leader failed with an error it does not share, or computed a value the codec cannot
    /// encode: each waiter computes by itself, at once. (Electing one new leader at a time would
    /// run N failing calls one after another.)
    ComputeAlone,
}

#[derive(Default)]
pub(crate) struct Flight {
    outcome: Mutex<Option<Outcome>>,
    ready: Condvar,
    #[cfg(feature = "async")]
    ready_async: tokio::sync::Notify,
}

impl Flight {
    pub(crate) fn wait(&self) -> Outcome {
        let mut guard = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(o) = guard.as_ref() {
                return o.clone();
            }
            guard = self
                .ready
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Waits without blocking the thread (a task on an async runtime).
    #[cfg(feature = "async")]
    pub(crate) async fn wait_async(&self) -> Outcome {
        loop {
            // Registered before the check, so a publish between the check and the await is
            // not missed.
            let notified = self.ready_async.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let current = self
                .outcome
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(o) = current {
                return o;
            }
            notified.await;
        }
    }

    fn publish(&self, outcome: Outcome) {
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
        self.ready.notify_all();
        #[cfg(feature = "async")]
        self.ready_async.notify_waiters();
    }
}

/// The slots of the loads under way, by key.
#[derive(Default)]
pub(crate) struct Loads {
    slots: Mutex<HashMap<String, Arc<Flight>>>,
}

pub(crate) enum Role<'a> {
    Leader(LeaderGuard<'a>),
    Waiter(Arc<Flight>),
}

impl Loads {
    pub(crate) fn join(&self, key: &str) -> Role<'_> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get(key) {
            return Role::Waiter(Arc::clone(slot));
        }
        let slot = Arc::new(Flight::default());
        slots.insert(key.to_owned(), Arc::clone(&slot));
        Role::Leader(LeaderGuard {
            loads: self,
            key: key.to_owned(),
            slot,
            done: false,
        })
    }
}

/// Held by the leader; publishes an outcome exactly once, `Abandoned` if dropped unfinished
/// (a panic unwinding through the closure, an async leader's future dropped).
pub(crate) struct LeaderGuard<'a> {
    loads: &'a Loads,
    key: String,
    slot: Arc<Flight>,
    done: bool,
}

impl LeaderGuard<'_> {
    pub(crate) fn finish(mut self, outcome: Outcome) {
        self.release(outcome);
    }

    fn release(&mut self, outcome: Outcome) {
        if self.done {
            return;
        }
        self.done = true;
        // Leave the map first, so a waiter that retries after `Abandoned` can lead.
        self.loads
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
        self.slot.publish(outcome);
    }
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        self.release(Outcome::Abandoned);
    }
}
