//! Leases: one computation per key across the processes that share a store.

use crate::Timestamp;

/// The answer of [`Backend::try_lease`](crate::Backend::try_lease).
///
/// A lease is a short-lived claim, kept in the store, that one process is computing the value of
/// a key. The other processes that miss the same key wait for the value (or serve a stale one)
/// instead of computing it too. A lease ends when its holder releases it or when its duration has
/// passed, so a holder that dies (`kill -9`) blocks the others only until then.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lease {
    /// The caller now holds the lease under its token, for the duration it asked (or until it
    /// releases it).
    Acquired,
    /// Another holder has the lease; it ends at `until` when the store can say.
    Held {
        /// When the other holder's lease ends, if the store reports it.
        until: Option<Timestamp>,
    },
    /// The backend does not coordinate processes (the default of
    /// [`Backend::try_lease`](crate::Backend::try_lease), and the right answer for a store only
    /// one process uses): the caller computes.
    Uncoordinated,
}

/// A lease holder's token: a random number chosen per lease, so that a holder releases only its
/// own lease, never one a later holder took after the first expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LeaseToken(pub u64);
