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
//! are placed around the real current time, so backends that expire entries by themselves (Redis)
//! see realistic TTLs; checks of `purge_expired` and `next_expiry` are skipped for those, as the
//! contract allows.
//!
//! A backend whose store cannot answer `len` or `next_expiry` at all (memcached) returns
//! [`Error::Unsupported`](crate::Error::Unsupported) from them; the checks then skip what they
//! would have compared (see [`len_if_supported`]), and still check everything else. Any other
//! error fails the check, and a backend that answers is held to its answer.

use crate::{Backend, Record, Timestamp};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

fn rec(value: &[u8], deadline: Option<Timestamp>) -> Record {
    Record::new(value.to_vec(), deadline)
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
pub fn overwrite_replaces_value_and_deadline<B: Backend>(b: &B) {
    let d = Timestamp::now() + HOUR;
    b.set("k", rec(b"first", Some(d))).unwrap();
    b.set("k", rec(b"second", None)).unwrap();
    assert_eq!(b.get("k").unwrap(), Some(rec(b"second", None)));
    assert_len(b, 1);
    if !b.expires_natively() {
        // The old deadline must have left the expiry index with the old value.
        assert_next_expiry(b, None);
        assert_eq!(b.purge_expired(d + HOUR).unwrap(), 0);
        assert_eq!(b.get("k").unwrap(), Some(rec(b"second", None)));
    }
}

/// `delete` says whether the key was there and removes it.
pub fn delete_reports_presence<B: Backend>(b: &B) {
    b.set("k", rec(b"v", Some(Timestamp::now() + HOUR)))
        .unwrap();
    assert!(b.delete("k").unwrap());
    assert!(!b.delete("k").unwrap());
    assert_eq!(b.get("k").unwrap(), None);
    assert_len(b, 0);
    if !b.expires_natively() {
        assert_next_expiry(b, None);
    }
}

/// `clear` empties the cache, and the cache works afterwards.
pub fn clear_removes_everything<B: Backend>(b: &B) {
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
    if !b.expires_natively() {
        assert_next_expiry(b, None);
    }
    b.set("after", rec(b"x", None)).unwrap();
    assert_eq!(b.get("after").unwrap(), Some(rec(b"x", None)));
}

/// `purge_expired(now)` removes exactly the records whose deadline is at or before `now`.
pub fn purge_removes_exactly_the_expired<B: Backend>(b: &B) {
    if b.expires_natively() {
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
pub fn expired_records_stay_until_purged<B: Backend>(b: &B) {
    if b.expires_natively() {
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
/// called once per test.
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
        $crate::conformance_tests!(@tests $make;
            set_then_get_round_trips,
            empty_and_zero_values_are_present,
            overwrite_replaces_value_and_deadline,
            delete_reports_presence,
            clear_removes_everything,
            purge_removes_exactly_the_expired,
            expired_records_stay_until_purged,
            unusual_keys_are_distinct,
            binary_and_large_values_round_trip,
            codec_ids_are_kept,
            batch_operations_agree,
            concurrent_readers_and_writers,
        );
    };
    (@tests $make:expr; $($check:ident),* $(,)?) => {
        mod braincache_conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $check() {
                    let (backend, _guard) = ($make)();
                    $crate::testkit::$check(&backend);
                }
            )*
        }
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

impl Op {
    /// Decodes a sequence of operations from arbitrary bytes (for fuzzers). Never panics; every
    /// byte string gives some (possibly empty) sequence.
    #[must_use]
    pub fn decode_all(mut bytes: &[u8]) -> Vec<Op> {
        let mut ops = Vec::new();
        fn take(n: usize, bytes: &mut &[u8]) -> Option<Vec<u8>> {
            if bytes.len() < n {
                return None;
            }
            let (head, rest) = bytes.split_at(n);
            *bytes = rest;
            Some(head.to_vec())
        }
        while let Some(h) = take(1, &mut bytes) {
            let tag = h[0];
            let op = match tag % 8 {
                0 | 1 => {
                    let Some(p) = take(4, &mut bytes) else { break };
                    let len = usize::from(p[1] % 24);
                    let Some(value) = take(len, &mut bytes) else {
                        break;
                    };
                    let ttl = u16::from_le_bytes([p[2], p[3]]);
                    Op::Set {
                        key: p[0],
                        value,
                        ttl_ms: (tag & 0x80 == 0).then_some(ttl % 2000),
                    }
                }
                2 => Op::Get {
                    key: take(1, &mut bytes).map_or(0, |b| b[0]),
                },
                3 => Op::Delete {
                    key: take(1, &mut bytes).map_or(0, |b| b[0]),
                },
                4 => Op::Clear,
                5 => Op::Purge,
                6 => {
                    let Some(p) = take(2, &mut bytes) else { break };
                    Op::Advance {
                        ms: u16::from_le_bytes([p[0], p[1]]) % 3000,
                    }
                }
                _ => {
                    let Some(p) = take(4, &mut bytes) else { break };
                    Op::SetMany {
                        a: p[0],
                        b: p[1],
                        ttl_ms: (tag & 0x80 == 0)
                            .then_some(u16::from_le_bytes([p[2], p[3]]) % 2000),
                    }
                }
            };
            ops.push(op);
        }
        ops
    }
}

/// The keys model runs use: few, so operations collide, and odd, so encodings are exercised.
pub const MODEL_KEYS: [&str; 8] = ["a", "", "b:c", "\"q\"", "ключ", "line\nbreak", "{}", "k/8"];

/// Runs `ops` against `backend` and against a model (an ordered map with deadlines), comparing
/// every result; returns a description of the first disagreement.
///
/// The model's clock starts one hour after the real current time (so backends that look at the
/// real clock see only future deadlines) and moves only with [`Op::Advance`].
///
/// # Errors
/// A message naming the step, the operation and both answers, or a backend error.
pub fn check_against_model<B: Backend>(backend: &B, ops: &[Op]) -> Result<(), String> {
    let mut model: BTreeMap<&str, Record> = BTreeMap::new();
    let mut now = Timestamp::now() + HOUR;
    let key = |i: u8| MODEL_KEYS[usize::from(i) % MODEL_KEYS.len()];
    let deadline =
        |now: Timestamp, ttl: Option<u16>| ttl.map(|ms| now + Duration::from_millis(u64::from(ms)));
    let native = backend.expires_natively();
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
