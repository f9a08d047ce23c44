//! What a backend stores for one key.

use crate::Timestamp;

/// One stored entry: the encoded value and its deadline.
///
/// Backends store and return records as they are; they never look inside `value`. The front end
/// decides whether a record is expired (see [`Record::is_expired`]), so a backend that has not yet
/// purged an expired record may still return it.
///
/// ```
/// use braincache_core::{Record, Timestamp};
///
/// let r = Record::new(vec![1, 2, 3], Some(Timestamp::from_unix_millis(10)));
/// assert!(!r.is_expired(Timestamp::from_unix_millis(9)));
/// assert!(r.is_expired(Timestamp::from_unix_millis(10))); // at the deadline: expired
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The value as the codec encoded it. May be empty.
    pub value: Vec<u8>,
    /// When the entry expires; `None` means never.
    pub expires_at: Option<Timestamp>,
}

impl Record {
    /// A record with the given bytes and deadline.
    #[must_use]
    pub fn new(value: Vec<u8>, expires_at: Option<Timestamp>) -> Record {
        Record { value, expires_at }
    }

    /// True when the deadline is at or before `now`.
    #[must_use]
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|d| d <= now)
    }
}
