//! The backend conformance suite: one set of checks every [`Backend`] must pass.
//!
//! **Not a stable API.** The test kit is a testing aid for backend crates: checks are added and
//! their signatures change in any release, semver notwithstanding. Pin the exact version of
//! `braincache-core` in the `dev-dependencies` that enable `testkit`.
//!
//! A backend crate runs all of them with one macro call in its tests, giving a factory that
//! returns a fresh, empty backend and a guard kept alive for the test (a temp folder, a server):
//!
//! ```ignore
//! braincache_core::conformance_tests!(|| (MemoryBackend::new(), ()));
//! ```
//!
//! Each check is also a public function, for backends that need to run them by hand. Deadlines
//! are placed around the real current time, so backends that expire entries by themselves (Redis,
//! memcached) see realistic TTLs; such a backend says so with [`Expiry::Native`]
//! (`conformance_tests!(make, Expiry::Native)`), and the checks of `purge_expired` and
//! `next_expiry` are skipped for it, as the contract allows.
//!
//! A backend whose store cannot answer `len` or `next_expiry` at all (memcached) returns
//! [`Error::Unsupported`](crate::Error::Unsupported) from them; the checks then skip what they
//! would have compared (see [`len_if_supported`]), and still check everything else. Any other
//! error fails the check, and a backend that answers is held to its answer.
//!
//! Beside the suite, what backend crates' tests share: [`bound`] (checks of a size bound, run
//! by hand), [`servers`] (a real `redis-server` or `memcached` on a free loopback port),
//! [`error_chain`] (an error and its causes as one string) and [`assert_agrees_with_listing`].

use crate::{Backend, Record, Timestamp};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// [`MsgPack::decode`](crate::MsgPack) as braincache did it through rmp-serde before it had its
/// own reader: the reference of the reader's differential tests (and fuzz target).
pub use crate::codec::msgpack_reference_decode;
/// [`MsgPack::encode`](crate::MsgPack) as braincache did it through rmp-serde before it had its
/// own writer: the bytes the writer must write.
pub use crate::codec::msgpack_reference_encode;

const HOUR: Duration = Duration::from_secs(3600);

fn rec(value: &[u8], deadline: Option<Timestamp>) -> Record {
    Record::new(value.to_vec(), deadline)
}

/// How a backend drops expired records, which decides what the checks may expect of
/// `purge_expired` and `next_expiry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expiry {
    /// The backend keeps expired records until `purge_expired` removes them, and reports the
    /// earliest deadline in `next_expiry` (memory, file, redb).
    #[default]
    ByPurge,
    /// The store deletes expired records by itself (Redis, memcached): `purge_expired` removes
    /// nothing and `next_expiry` is `None` (or unsupported).
    Native,
}

impl Expiry {
    fn is_native(self) -> bool {
        self == Expiry::Native
    }
}

/// `b.len()`, or `None` when the backend declares it unsupported
/// ([`Error::is_unsupported`](crate::Error::is_unsupported)).
///
/// # Panics
/// On any other error.
pub fn len_if_supported<B: Backend>(b: &B) -> Option<usize> {
    match b.len() {
        Ok(n) => Some(n),
        Err(e) if e.is_unsupported() => None,
        Err(e) => panic!("len failed: {e}"),
    }
}

/// `b.next_expiry()`, or `None` when the backend declares it unsupported.
///
/// # Panics
/// On any other error.
pub fn next_expiry_if_supported<B: Backend>(b: &B) -> Option<Option<Timestamp>> {
    match b.next_expiry() {
        Ok(d) => Some(d),
        Err(e) if e.is_unsupported() => None,
        Err(e) => panic!("next_expiry failed: {e}"),
    }
}

/// Asserts `b.next_expiry() == want` unless the backend declares `next_expiry` unsupported.
fn assert_next_expiry<B: Backend>(b: &B, want: Option<Timestamp>) {
    if let Some(d) = next_expiry_if_supported(b) {
        assert_eq!(d, want, "next_expiry");
    }
}

/// Asserts `b.len() == want` unless the backend declares `len` unsupported.
fn assert_len<B: Backend>(b: &B, want: usize) {
    if let Some(n) = len_if_supported(b) {
        assert_eq!(n, want, "len");
    }
}

/// A stored record reads back exactly, its deadline included; a missing key is `None`.
pub fn set_then_get_round_trips<B: Backend>(b: &B) {
    let deadline = Timestamp::now() + HOUR;
    b.set("alpha", rec(b"one", Some(deadline))).unwrap();
    b.set("beta", rec(b"two", None)).unwrap();
    assert_eq!(b.get("alpha").unwrap(), Some(rec(b"one", Some(deadline))));
    assert_eq!(b.get("beta").unwrap(), Some(rec(b"two", None)));
    assert_eq!(b.get("gamma").unwrap(), None);
}

/// Empty and zero-byte values are values, not absence (the Python original lost stored `None`s).
pub fn empty_and_zero_values_are_present<B: Backend>(b: &B) {
    b.set("empty", rec(b"", None)).unwrap();
    b.set("zero", rec(&[0], None)).unwrap();
    assert_eq!(b.get("empty").unwrap(), Some(rec(b"", None)));
    assert_eq!(b.get("zero").unwrap(), Some(rec(&[0], None)));
    assert_len(b, 2);
}

/// `set` replaces the value and the deadline.
pub fn overwrite_replaces_value_and_deadline<B: Backend>(b: &B, expiry: Expiry) {
    let d = Timestamp::now() + HOUR;
    b.set("k", rec(b"first", Some(d))).unwrap();
    b.set("k", rec(b"second", None)).unwrap();
    assert_eq!(b.get("k").unwrap(), Some(rec(b"second", None)));
    assert_len(b, 1);
    if !expiry.is_native() {
        // The old deadline must have left the expiry index with the old value.
        assert_next_expiry(b, None);
        assert_eq!(b.purge_expired(d + HOUR).unwrap(), 0);
        assert_eq!(b.get("k").unwrap(), Some(rec(b"second", None)));
    }
}

/// `delete` says whether the key was there and removes it.
pub fn delete_reports_presence<B: Backend>(b: &B, expiry: Expiry) {
    b.set("k", rec(b"v", Some(Timestamp::now() + HOUR)))
        .unwrap();
    assert!(b.delete("k").unwrap());
    assert!(!b.delete("k").unwrap());
    assert_eq!(b.get("k").unwrap(), None);
    assert_len(b, 0);
    if !expiry.is_native() {
        assert_next_expiry(b, None);
    }
}

/// `clear` empties the cache, and the cache works afterwards.
pub fn clear_removes_everything<B: Backend>(b: &B, expiry: Expiry) {
    for i in 0..50 {
        let d = (i % 2 == 0).then(|| Timestamp::now() + HOUR);
        b.set(&format!("key-{i}"), rec(b"v", d)).unwrap();
    }
    assert_len(b, 50);
    if len_if_supported(b).is_some() {
        assert!(!b.is_empty().unwrap());
    }
    b.clear().unwrap();
    assert_len(b, 0);
    if len_if_supported(b).is_some() {
        assert!(b.is_empty().unwrap());
    }
    assert_eq!(b.get("key-0").unwrap(), None);
    if !expiry.is_native() {
        assert_next_expiry(b, None);
    }
    b.set("after", rec(b"x", None)).unwrap();
    assert_eq!(b.get("after").unwrap(), Some(rec(b"x", None)));
}

/// `purge_expired(now)` removes exactly the records whose deadline is at or before `now`.
pub fn purge_removes_exactly_the_expired<B: Backend>(b: &B, expiry: Expiry) {
    if expiry.is_native() {
        assert_eq!(b.purge_expired(Timestamp::MAX).unwrap(), 0);
        return;
    }
    let base = Timestamp::now() + HOUR;
    for i in 0..20u64 {
        b.set(
            &format!("t{i}"),
            rec(b"v", Some(base + Duration::from_secs(i))),
        )
        .unwrap();
    }
    b.set("forever", rec(b"v", None)).unwrap();
    assert_next_expiry(b, Some(base));
    // Deadline exactly at `now` counts as expired: t0..=t9.
    assert_eq!(b.purge_expired(base + Duration::from_secs(9)).unwrap(), 10);
    assert_len(b, 11);
    assert_eq!(b.get("t9").unwrap(), None);
    assert!(b.get("t10").unwrap().is_some());
    assert_next_expiry(b, Some(base + Duration::from_secs(10)));
    assert_eq!(b.purge_expired(base + Duration::from_secs(9)).unwrap(), 0);
    assert_eq!(b.purge_expired(Timestamp::MAX).unwrap(), 10);
    assert_len(b, 1);
    assert!(b.get("forever").unwrap().is_some());
    assert_next_expiry(b, None);
}

/// Expired-but-unpurged records still count in `len` and are still returned by `get` (the
/// front end filters them), until purged.
pub fn expired_records_stay_until_purged<B: Backend>(b: &B, expiry: Expiry) {
    if expiry.is_native() {
        return;
    }
    let past = Timestamp::now() + HOUR; // "past" relative to the purge time used below
    b.set("old", rec(b"v", Some(past))).unwrap();
    assert_len(b, 1);
    assert_eq!(b.get("old").unwrap(), Some(rec(b"v", Some(past))));
    assert_eq!(b.purge_expired(past).unwrap(), 1);
    assert_eq!(b.get("old").unwrap(), None);
}

/// Keys are arbitrary strings: empty, Unicode, separators, quotes, control characters, long.
pub fn unusual_keys_are_distinct<B: Backend>(b: &B) {
    let long = "k".repeat(1000);
    let keys = [
        "",
        " ",
        "a:b",
        "a/b",
        "a\\b",
        "\"quoted\"",
        "line\nbreak",
        "tab\t",
        "ключ",
        "🔑",
        "{}",
        "null",
        "0",
        &long,
    ];
    for (i, k) in keys.iter().enumerate() {
        b.set(k, rec(format!("{i}").as_bytes(), None)).unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            b.get(k).unwrap(),
            Some(rec(format!("{i}").as_bytes(), None)),
            "key {k:?}"
        );
    }
    assert_len(b, keys.len());
}

/// Values of every byte and of 1 MiB survive.
pub fn binary_and_large_values_round_trip<B: Backend>(b: &B) {
    let all: Vec<u8> = (0..=255u8).collect();
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    b.set("all", Record::new(all.clone(), None)).unwrap();
    b.set("big", Record::new(big.clone(), None)).unwrap();
    assert_eq!(b.get("all").unwrap().unwrap().value, all);
    assert_eq!(b.get("big").unwrap().unwrap().value, big);
}

/// A record's codec id comes back as it was set, through the single and the batch forms. (A
/// backend may keep its default codec implied: records stating none, and records stating the
/// backend's default, may come back either way; see [`Record::codec`].)
pub fn codec_ids_are_kept<B: Backend>(b: &B) {
    use crate::CodecId;
    let default = <B::Codec as crate::Codec>::ID;
    let ids = [
        CodecId::POSTCARD,
        CodecId::MSGPACK,
        CodecId::JSON,
        CodecId::BINCODE,
    ]
    .into_iter()
    .chain(CodecId::new(200))
    .filter(|id| *id != default);
    let deadline = Some(Timestamp::from_unix_millis(4_102_444_800_000));
    for (i, id) in ids.enumerate() {
        for value in [&b""[..], b"1", b"\x00\xff"] {
            let r = Record::new(value.to_vec(), deadline).with_codec(Some(id));
            let key = format!("c{i}");
            b.set(&key, r.clone()).unwrap();
            assert_eq!(b.get(&key).unwrap(), Some(r.clone()), "{id}");
            b.set_many(vec![(key.clone(), r.clone())]).unwrap();
            assert_eq!(b.get_many(&[&key]).unwrap(), vec![Some(r)], "{id}");
        }
    }
    let unstated = b.set("none", Record::new(b"1".to_vec(), None));
    unstated.unwrap();
    let back = b.get("none").unwrap().unwrap();
    assert!(back.codec.is_none_or(|c| c == default), "{:?}", back.codec);
    b.set(
        "dflt",
        Record::new(b"1".to_vec(), None).with_codec(Some(default)),
    )
    .unwrap();
    let back = b.get("dflt").unwrap().unwrap();
    assert!(back.codec.is_none_or(|c| c == default), "{:?}", back.codec);
}

/// [`Backend::get_with`] lends exactly the record `get` returns (freshness fields, codec and
/// empty values included, an expired but unpurged record too), calls its callback once per
/// found record, and reports a missing key without calling it.
pub fn get_with_agrees_with_get<B: Backend>(b: &B, expiry: Expiry) {
    use crate::CodecId;
    let now = Timestamp::now();
    let mut records = vec![
        ("plain", rec(b"one", None)),
        ("empty", rec(b"", None)),
        ("deadline", rec(b"two", Some(now + HOUR))),
        (
            "fresh",
            rec(b"three", Some(now + HOUR))
                .with_codec(Some(CodecId::JSON))
                .with_fresh_until(Some(now + HOUR / 2))
                .with_computed(Some(now), Some(Duration::from_millis(7))),
        ),
    ];
    if !expiry.is_native() {
        records.push(("expired", rec(b"old", Some(Timestamp::from_unix_millis(1)))));
    }
    for (key, r) in &records {
        b.set(key, r.clone()).unwrap();
    }
    for (key, _) in &records {
        let mut lent = Vec::new();
        let found = b.get_with(key, &mut |r| lent.push(r.to_record())).unwrap();
        let got = b.get(key).unwrap();
        assert!(found, "{key}: get_with found nothing");
        assert_eq!(lent.len(), 1, "{key}: the callback runs once");
        assert_eq!(
            Some(lent.remove(0)),
            got,
            "{key}: get_with and get disagree"
        );
    }
    let mut called = false;
    assert!(!b.get_with("missing", &mut |_| called = true).unwrap());
    assert!(!called, "the callback ran for a missing key");
    b.delete("plain").unwrap();
    assert!(!b.get_with("plain", &mut |_| called = true).unwrap());
    assert!(!called, "the callback ran for a deleted key");
}

/// The batch forms agree with the single ones.
pub fn batch_operations_agree<B: Backend>(b: &B) {
    let entries: Vec<(String, Record)> = (0..10)
        .map(|i| (format!("b{i}"), rec(&[i], None)))
        .collect();
    b.set_many(entries).unwrap();
    let got = b.get_many(&["b0", "b9", "missing"]).unwrap();
    assert_eq!(
        got,
        vec![Some(rec(&[0], None)), Some(rec(&[9], None)), None]
    );
    assert_eq!(b.delete_many(&["b0", "b1", "missing"]).unwrap(), 2);
    assert_len(b, 8);
}

/// 4 writer threads and 2 reader threads at once: every write lands, and readers only ever see a
/// value some writer wrote for that key.
pub fn concurrent_readers_and_writers<B: Backend>(b: &B) {
    const WRITERS: u8 = 4;
    const PER: u32 = 100;
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            s.spawn(move || {
                for i in 0..PER {
                    let key = format!("w{w}-{i}");
                    b.set(&key, rec(key.as_bytes(), None)).unwrap();
                    // Read another writer's key: absent or exactly its value.
                    let other = format!("w{}-{i}", (w + 1) % WRITERS);
                    if let Some(r) = b.get(&other).unwrap() {
                        assert_eq!(r.value, other.as_bytes());
                    }
                }
            });
        }
        for _ in 0..2 {
            s.spawn(|| {
                for i in 0..PER {
                    let key = format!("w0-{i}");
                    if let Some(r) = b.get(&key).unwrap() {
                        assert_eq!(r.value, key.as_bytes());
                    }
                }
            });
        }
    });
    let mut seen = HashSet::new();
    for w in 0..WRITERS {
        for i in 0..PER {
            let key = format!("w{w}-{i}");
            assert_eq!(
                b.get(&key).unwrap().map(|r| r.value),
                Some(key.clone().into_bytes())
            );
            seen.insert(key);
        }
    }
    assert_len(b, seen.len());
}

/// Generates one `#[test]` per conformance check for a backend.
///
/// `$make` is a callable returning `(backend, guard)`: a fresh, empty backend and anything that
/// must live as long as the test (a temp folder, a server handle; `()` when nothing does). It is
/// called once per test. A second argument, [`Expiry::Native`], says the store expires records
/// by itself (the default is [`Expiry::ByPurge`]).
///
/// ```ignore
/// braincache_core::conformance_tests!(|| {
///     let dir = tempfile::tempdir().unwrap();
///     (MyBackend::open(dir.path().join("c.db")).unwrap(), dir)
/// });
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!($make, $crate::testkit::Expiry::ByPurge);
    };
    ($make:expr, $expiry:expr) => {
        $crate::conformance_tests!(@tests $make, $expiry;
            plain: set_then_get_round_trips,
            plain: empty_and_zero_values_are_present,
            expiry: overwrite_replaces_value_and_deadline,
            expiry: delete_reports_presence,
            expiry: clear_removes_everything,
            expiry: purge_removes_exactly_the_expired,
            expiry: expired_records_stay_until_purged,
            plain: unusual_keys_are_distinct,
            plain: binary_and_large_values_round_trip,
            plain: codec_ids_are_kept,
            expiry: get_with_agrees_with_get,
            plain: batch_operations_agree,
            plain: concurrent_readers_and_writers,
        );
    };
    (@tests $make:expr, $expiry:expr; $($kind:ident: $check:ident),* $(,)?) => {
        mod braincache_conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $check() {
                    let (backend, _guard) = ($make)();
                    $crate::conformance_tests!(@call $kind, $check, &backend, $expiry);
                }
            )*
        }
    };
    (@call plain, $check:ident, $backend:expr, $expiry:expr) => {
        $crate::testkit::$check($backend)
    };
    (@call expiry, $check:ident, $backend:expr, $expiry:expr) => {
        $crate::testkit::$check($backend, $expiry)
    };
}

/// One operation of a model-checking run (see [`check_against_model`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `set(keys[key], value, deadline = now + ttl_ms)` (`None`: no deadline).
    Set {
        /// Index into the key set (taken modulo its size).
        key: u8,
        /// The value bytes.
        value: Vec<u8>,
        /// Time to live in milliseconds; `Some(0)` is already expired.
        ttl_ms: Option<u16>,
    },
    /// `get(keys[key])`.
    Get {
        /// Index into the key set.
        key: u8,
    },
    /// `delete(keys[key])`.
    Delete {
        /// Index into the key set.
        key: u8,
    },
    /// `clear()`.
    Clear,
    /// `purge_expired(now)`.
    Purge,
    /// Moves the model's clock forward.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// `set_many` of two entries.
    SetMany {
        /// Index of the first key.
        a: u8,
        /// Index of the second key.
        b: u8,
        /// Time to live in milliseconds for both.
        ttl_ms: Option<u16>,
    },
}

/// Proptest strategies for [`Op`] sequences, shared by every backend's model tests.
///
/// [`op_arms`](strategy::op_arms) lists the weighted alternatives so a backend can add its own
/// (the file backend adds JSON-text values) and keep the others' weights;
/// [`op`](strategy::op) and [`ops`](strategy::ops) are the usual forms.
pub mod strategy {
    use super::Op;
    use proptest::prelude::*;
    use proptest::strategy::{BoxedStrategy, Union};

    /// The weighted alternatives of [`op`]: sets (weight 4), gets (3), deletes (2), clears (1),
    /// purges (2), clock advances (2) and two-entry `set_many`s (1). Keys are any `u8`, values
    /// up to 15 bytes, TTLs below 2 s or none, advances below 3 s.
    #[must_use]
    pub fn op_arms() -> Vec<(u32, BoxedStrategy<Op>)> {
        let key = any::<u8>();
        vec![
            (
                4,
                (key, proptest::collection::vec(any::<u8>(), 0..16), ttl())
                    .prop_map(|(key, value, ttl_ms)| Op::Set { key, value, ttl_ms })
                    .boxed(),
            ),
            (3, key.prop_map(|key| Op::Get { key }).boxed()),
            (2, key.prop_map(|key| Op::Delete { key }).boxed()),
            (1, Just(Op::Clear).boxed()),
            (2, Just(Op::Purge).boxed()),
            (2, (0u16..3_000).prop_map(|ms| Op::Advance { ms }).boxed()),
            (
                1,
                (key, key, ttl())
                    .prop_map(|(a, b, ttl_ms)| Op::SetMany { a, b, ttl_ms })
                    .boxed(),
            ),
        ]
    }

    /// A time to live for generated sets: below 2 s, or none.
    pub fn ttl() -> impl Strategy<Value = Option<u16>> + Clone {
        proptest::option::of(0u16..2_000)
    }

    /// One operation, drawn from [`op_arms`].
    pub fn op() -> impl Strategy<Value = Op> {
        Union::new_weighted(op_arms())
    }

    /// Sequences of 0 to `max_len - 1` operations drawn from `op`.
    pub fn ops<S: Strategy<Value = Op>>(op: S, max_len: usize) -> impl Strategy<Value = Vec<Op>> {
        proptest::collection::vec(op, 0..max_len)
    }
}

/// The keys model runs use: few, so operations collide, and odd, so encodings are exercised.
pub const MODEL_KEYS: [&str; 8] = ["a", "", "b:c", "\"q\"", "ключ", "line\nbreak", "{}", "k/8"];

/// Runs `ops` against `backend` and against a model (an ordered map with deadlines), comparing
/// every result; returns a description of the first disagreement.
///
/// The model's clock starts one hour after the real current time (so backends that look at the
/// real clock see only future deadlines) and moves only with [`Op::Advance`]. Generate sequences
/// with [`strategy`]. For a backend that expires records by itself, use
/// [`check_against_model_with`] and [`Expiry::Native`].
///
/// # Errors
/// A message naming the step, the operation and both answers, or a backend error.
pub fn check_against_model<B: Backend>(backend: &B, ops: &[Op]) -> Result<(), String> {
    check_against_model_with(backend, ops, Expiry::ByPurge)
}

/// [`check_against_model`] for a backend that drops expired records as `expiry` says.
///
/// # Errors
/// As [`check_against_model`].
pub fn check_against_model_with<B: Backend>(
    backend: &B,
    ops: &[Op],
    expiry: Expiry,
) -> Result<(), String> {
    let mut model: BTreeMap<&str, Record> = BTreeMap::new();
    let mut now = Timestamp::now() + HOUR;
    let key = |i: u8| MODEL_KEYS[usize::from(i) % MODEL_KEYS.len()];
    let deadline =
        |now: Timestamp, ttl: Option<u16>| ttl.map(|ms| now + Duration::from_millis(u64::from(ms)));
    let native = expiry.is_native();
    for (step, op) in ops.iter().enumerate() {
        let fail = |what: String| format!("step {step} ({op:?}): {what}");
        match op {
            Op::Set {
                key: k,
                value,
                ttl_ms,
            } => {
                let r = Record::new(value.clone(), deadline(now, *ttl_ms));
                backend
                    .set(key(*k), r.clone())
                    .map_err(|e| fail(e.to_string()))?;
                model.insert(key(*k), r);
            }
            Op::SetMany { a, b, ttl_ms } => {
                let d = deadline(now, *ttl_ms);
                let entries = vec![
                    (key(*a).to_owned(), Record::new(vec![*a], d)),
                    (key(*b).to_owned(), Record::new(vec![*b, *a], d)),
                ];
                backend.set_many(entries).map_err(|e| fail(e.to_string()))?;
                // In order: when both indices name one key, the second entry wins.
                model.insert(key(*a), Record::new(vec![*a], d));
                model.insert(key(*b), Record::new(vec![*b, *a], d));
            }
            Op::Get { key: k } => {
                let got = backend.get(key(*k)).map_err(|e| fail(e.to_string()))?;
                let want = model.get(key(*k)).cloned();
                if got != want {
                    return Err(fail(format!("get returned {got:?}, model has {want:?}")));
                }
            }
            Op::Delete { key: k } => {
                let got = backend.delete(key(*k)).map_err(|e| fail(e.to_string()))?;
                let want = model.remove(key(*k)).is_some();
                if got != want {
                    return Err(fail(format!("delete returned {got}, model says {want}")));
                }
            }
            Op::Clear => {
                backend.clear().map_err(|e| fail(e.to_string()))?;
                model.clear();
            }
            Op::Purge => {
                let got = backend
                    .purge_expired(now)
                    .map_err(|e| fail(e.to_string()))?;
                let before = model.len();
                model.retain(|_, r| !r.is_expired(now));
                let want = if native { 0 } else { before - model.len() };
                if got != want {
                    return Err(fail(format!("purge removed {got}, model removed {want}")));
                }
            }
            Op::Advance { ms } => now = now + Duration::from_millis(u64::from(*ms)),
        }
        match backend.len() {
            Ok(len) if len != model.len() => {
                return Err(fail(format!("len is {len}, model has {}", model.len())));
            }
            Err(e) if !e.is_unsupported() => return Err(fail(e.to_string())),
            _ => {}
        }
        if !native {
            let got = match backend.next_expiry() {
                Ok(got) => got,
                Err(e) if e.is_unsupported() => continue,
                Err(e) => return Err(fail(e.to_string())),
            };
            let want = model.values().filter_map(|r| r.expires_at).min();
            if got != want {
                return Err(fail(format!("next_expiry is {got:?}, model says {want:?}")));
            }
        }
    }
    // Finally every key agrees.
    for k in MODEL_KEYS {
        let got = backend.get(k).map_err(|e| e.to_string())?;
        if got.as_ref() != model.get(k) {
            return Err(format!(
                "at the end, key {k:?}: backend {got:?}, model {:?}",
                model.get(k)
            ));
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
mod tmpfs {
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    /// A tmpfs mounted on a temporary folder, unmounted (and the folder removed) on drop, also when
    /// the test fails: a real, small disk for full-disk tests.
    ///
    /// Needs the right to mount (root, as in CI). Without it [`mount_or_skip`](Self::mount_or_skip)
    /// prints a skip notice and returns `None`, unless `BRAINCACHE_REQUIRE_TMPFS=1`, when that is a
    /// failure.
    pub struct Tmpfs {
        dir: Option<tempfile::TempDir>,
    }

    impl Tmpfs {
        /// Mounts a tmpfs of `bytes`, or returns `None` (after a skip notice) when mounting is not
        /// permitted here.
        ///
        /// # Panics
        /// When mounting fails and `BRAINCACHE_REQUIRE_TMPFS` is set, or no temporary folder can be
        /// made.
        #[must_use]
        pub fn mount_or_skip(bytes: u64) -> Option<Tmpfs> {
            let dir = tempfile::tempdir().unwrap();
            let out = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
                .arg(dir.path())
                .stdin(Stdio::null())
                .output();
            match out {
                Ok(o) if o.status.success() => Some(Tmpfs { dir: Some(dir) }),
                other => {
                    let why = match other {
                        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                        Err(e) => e.to_string(),
                    };
                    let required = std::env::var("BRAINCACHE_REQUIRE_TMPFS")
                        .is_ok_and(|v| !v.is_empty() && v != "0");
                    assert!(
                        !required,
                        "BRAINCACHE_REQUIRE_TMPFS is set but mounting a tmpfs failed: {why}"
                    );
                    eprintln!("skipped: cannot mount a tmpfs here ({why}); run as root");
                    None
                }
            }
        }

        /// The mounted folder.
        #[must_use]
        pub fn path(&self) -> &Path {
            self.dir
                .as_ref()
                .map_or(Path::new("/nonexistent"), |d| d.path())
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let path = self.path().to_path_buf();
            // A file still being closed keeps the mount busy for a moment: retry, then detach it.
            let unmounted = (0..50).any(|_| {
                let ok = Command::new("umount")
                    .arg(&path)
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    std::thread::sleep(Duration::from_millis(20));
                }
                ok
            });
            if !unmounted {
                let _ = Command::new("umount").arg("-l").arg(&path).status();
            }
            drop(self.dir.take());
        }
    }
}

#[cfg(target_os = "linux")]
pub use tmpfs::Tmpfs;

pub mod bound;
mod helpers;
pub mod servers;
pub use helpers::{assert_agrees_with_listing, assert_each_cause_once, error_chain};
