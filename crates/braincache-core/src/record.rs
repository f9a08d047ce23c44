//! What a backend stores for one key.

use crate::{CodecId, Timestamp};
use std::time::Duration;

/// One stored entry: the encoded value, its deadline, the id of the codec that encoded it, and
/// (for values computed through `get_or_refresh`) when it goes stale and what computing it cost.
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
///
/// // Fresh for 10 ms, then stale (servable while a refresh runs) until 20 ms.
/// let r = Record::new(vec![], Some(Timestamp::from_unix_millis(20)))
///     .with_fresh_until(Some(Timestamp::from_unix_millis(10)));
/// assert!(r.is_stale(Timestamp::from_unix_millis(10)));
/// assert!(!r.is_expired(Timestamp::from_unix_millis(10)));
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
    /// When the value stops being fresh, if earlier than `expires_at`: between the two the record
    /// is *stale* (served while a refresh runs, see `braincache::Freshness`). Backends purge and
    /// expire by `expires_at` alone, and keep this field as they keep the value.
    pub fresh_until: Option<Timestamp>,
    /// When the value was computed (kept for early refresh; informational otherwise).
    pub computed_at: Option<Timestamp>,
    /// How long computing the value took (early refresh scales its odds by it).
    pub compute_time: Option<Duration>,
}

impl Record {
    /// A record with the given bytes and deadline, and no codec stated.
    #[must_use]
    pub fn new(value: Vec<u8>, expires_at: Option<Timestamp>) -> Record {
        Record {
            value,
            expires_at,
            codec: None,
            fresh_until: None,
            computed_at: None,
            compute_time: None,
        }
    }

    /// The same record, fresh only until `fresh_until` (stale from then until `expires_at`).
    #[must_use]
    pub fn with_fresh_until(mut self, fresh_until: Option<Timestamp>) -> Record {
        self.fresh_until = fresh_until;
        self
    }

    /// The same record, stating when its value was computed and how long that took.
    #[must_use]
    pub fn with_computed(mut self, at: Option<Timestamp>, took: Option<Duration>) -> Record {
        self.computed_at = at;
        self.compute_time = took;
        self
    }

    /// When the value stops being fresh: `fresh_until` when set, else `expires_at`.
    #[must_use]
    pub fn fresh_deadline(&self) -> Option<Timestamp> {
        RecordRef::from(self).fresh_deadline()
    }

    /// True when the value is no longer fresh at `now` (at or past [`fresh_deadline`]); it may
    /// still be stored and served as stale until [`expires_at`](Self::expires_at).
    ///
    /// [`fresh_deadline`]: Self::fresh_deadline
    #[must_use]
    pub fn is_stale(&self, now: Timestamp) -> bool {
        RecordRef::from(self).is_stale(now)
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
        RecordRef::from(self).is_expired(now)
    }
}

/// A stored record, borrowed from the backend: what [`Backend::get_with`] hands its callback,
/// so a read can decode the value where it lies (under a shard's lock, from a database page)
/// instead of copying it into a [`Record`] first.
///
/// It has the fields of [`Record`], with `value` borrowed. Build one with [`RecordRef::new`] and
/// the `with_*` methods, or from a record with `RecordRef::from(&record)`; turn it into an owned
/// record with [`RecordRef::to_record`].
///
/// ```
/// use braincache_core::{Record, RecordRef, Timestamp};
///
/// let r = Record::new(vec![1, 2], Some(Timestamp::from_unix_millis(10)));
/// let view = RecordRef::from(&r);
/// assert_eq!(view.value, &[1, 2]);
/// assert!(view.is_expired(Timestamp::from_unix_millis(10)));
/// assert_eq!(view.to_record(), r);
/// ```
///
/// [`Backend::get_with`]: crate::Backend::get_with
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The value as the codec encoded it. May be empty.
    pub value: &'a [u8],
    /// When the entry expires; `None` means never.
    pub expires_at: Option<Timestamp>,
    /// The codec that encoded `value`, as in [`Record::codec`].
    pub codec: Option<CodecId>,
    /// When the value stops being fresh, as in [`Record::fresh_until`].
    pub fresh_until: Option<Timestamp>,
    /// When the value was computed, as in [`Record::computed_at`].
    pub computed_at: Option<Timestamp>,
    /// How long computing the value took, as in [`Record::compute_time`].
    pub compute_time: Option<Duration>,
}

impl<'a> RecordRef<'a> {
    /// A view of `value` with the given deadline, and no codec stated.
    #[must_use]
    pub fn new(value: &'a [u8], expires_at: Option<Timestamp>) -> RecordRef<'a> {
        RecordRef {
            value,
            expires_at,
            codec: None,
            fresh_until: None,
            computed_at: None,
            compute_time: None,
        }
    }

    /// The same view, stating `codec` as the codec of its value.
    #[must_use]
    pub fn with_codec(mut self, codec: Option<CodecId>) -> RecordRef<'a> {
        self.codec = codec;
        self
    }

    /// The same view, fresh only until `fresh_until`.
    #[must_use]
    pub fn with_fresh_until(mut self, fresh_until: Option<Timestamp>) -> RecordRef<'a> {
        self.fresh_until = fresh_until;
        self
    }

    /// The same view, stating when its value was computed and how long that took.
    #[must_use]
    pub fn with_computed(mut self, at: Option<Timestamp>, took: Option<Duration>) -> RecordRef<'a> {
        self.computed_at = at;
        self.compute_time = took;
        self
    }

    /// As [`Record::fresh_deadline`].
    #[must_use]
    pub fn fresh_deadline(&self) -> Option<Timestamp> {
        self.fresh_until.or(self.expires_at)
    }

    /// As [`Record::is_stale`].
    #[must_use]
    pub fn is_stale(&self, now: Timestamp) -> bool {
        self.fresh_deadline().is_some_and(|d| d <= now)
    }

    /// As [`Record::is_expired`].
    #[must_use]
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|d| d <= now)
    }

    /// The owned record (the value copied).
    #[must_use]
    pub fn to_record(&self) -> Record {
        Record {
            value: self.value.to_vec(),
            expires_at: self.expires_at,
            codec: self.codec,
            fresh_until: self.fresh_until,
            computed_at: self.computed_at,
            compute_time: self.compute_time,
        }
    }
}

impl<'a> From<&'a Record> for RecordRef<'a> {
    fn from(r: &'a Record) -> RecordRef<'a> {
        RecordRef {
            value: &r.value,
            expires_at: r.expires_at,
            codec: r.codec,
            fresh_until: r.fresh_until,
            computed_at: r.computed_at,
            compute_time: r.compute_time,
        }
    }
}
