//! What a backend stores for one key.

use crate::{CodecId, Timestamp};

/// One stored entry: the encoded value, its deadline, and the id of the codec that encoded it.
///
/// Backends store and return records as they are; they never look inside `value`. The front end
/// decides whether a record is expired (see [`Record::is_expired`]), so a backend that has not yet
/// purged an expired record may still return it.
///
/// New fields may be added in later releases (the struct is `#[non_exhaustive]`): build records
/// with [`Record::new`] and the `with_*` methods.
///
/// ```
/// use braincache_core::{Codec, CodecId, MsgPack, Record, Timestamp};
///
/// let r = Record::new(vec![1, 2, 3], Some(Timestamp::from_unix_millis(10)));
/// assert!(!r.is_expired(Timestamp::from_unix_millis(9)));
/// assert!(r.is_expired(Timestamp::from_unix_millis(10))); // at the deadline: expired
/// assert_eq!(r.codec, None);
///
/// let r = Record::new(MsgPack.encode(&7u8).unwrap(), None).with_codec(Some(MsgPack::ID));
/// assert_eq!(r.codec, Some(CodecId::MSGPACK));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The value as the codec encoded it. May be empty.
    pub value: Vec<u8>,
    /// When the entry expires; `None` means never.
    pub expires_at: Option<Timestamp>,
    /// The codec that encoded `value`. `None` means "not stated": the record was written through
    /// the backend API without one (or by a format that cannot hold one, see each backend), and
    /// the front end reads it as encoded with the backend's default codec (`Backend::Codec`).
    /// Backends keep this field as they keep the value.
    pub codec: Option<CodecId>,
}

impl Record {
    /// A record with the given bytes and deadline, and no codec stated.
    #[must_use]
    pub fn new(value: Vec<u8>, expires_at: Option<Timestamp>) -> Record {
        Record {
            value,
            expires_at,
            codec: None,
        }
    }

    /// The same record, stating `codec` as the codec of its value.
    #[must_use]
    pub fn with_codec(mut self, codec: Option<CodecId>) -> Record {
        self.codec = codec;
        self
    }

    /// True when the deadline is at or before `now`.
    #[must_use]
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|d| d <= now)
    }
}
