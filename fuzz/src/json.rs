//! Checks of the JSON file backend on a file made of arbitrary bytes, against an independent
//! reading of the format (`crates/braincache-file/FORMAT.md`).

use braincache_core::{Backend, Record, Timestamp};
use braincache_file::FileBackend;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// One entry as the format spells it, read without the backend's code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OracleEntry<'a> {
    #[serde(borrow)]
    value: &'a RawValue,
    #[serde(borrow)]
    expire_at: &'a RawValue,
}

/// What the Python original reads: `expire_at` is a float or null.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read only to check the shape
struct PythonEntry<'a> {
    #[serde(borrow)]
    value: &'a RawValue,
    expire_at: Option<f64>,
}

/// The members of a JSON object in order, repeated keys included (a `BTreeMap` would merge them,
/// and `{"$json": 1, "$json": 2}` has two members, so it is not a tag).
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Members<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    out.push((k, m.next_value::<&'de RawValue>()?));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Strict standard base64 with padding, written independently of the backend's.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let s = s.as_bytes();
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let pad = s.iter().rev().take_while(|&&b| b == b'=').count();
    if pad > 2 {
        return None;
    }
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = Vec::new();
    for &c in &s[..s.len() - pad] {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        bits = bits << 6 | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    // Canonical: the bits left over after the last whole byte are zero.
    (bits == 0).then_some(out)
}

/// The record bytes the format says a `value` stands for; `None` when it is not valid (so the
/// backend must have refused the file).
fn expected_value(raw: &RawValue) -> Option<Vec<u8>> {
    let text = raw.get();
    if text.starts_with('{')
        && let Ok(Members(members)) = serde_json::from_str::<Members<'_>>(text)
        && let [(a, x), (b, y)] = members.as_slice()
    {
        // `{"$bytes": <base64>, "$codec": <id>}`, in either order: another codec's bytes.
        let bytes = match (a.as_str(), b.as_str()) {
            ("$bytes", "$codec") => Some(x),
            ("$codec", "$bytes") => Some(y),
            _ => None,
        };
        if let Some(bytes) = bytes {
            let s: String = serde_json::from_str(bytes.get()).ok()?;
            return base64_decode(&s);
        }
    }
    if text.starts_with('{')
        && let Ok(Members(members)) = serde_json::from_str::<Members<'_>>(text)
        && let [(key, inner)] = members.as_slice()
    {
        match key.as_str() {
            "$json" => return Some(inner.get().as_bytes().to_vec()),
            "$bytes" => {
                let s: String = serde_json::from_str(inner.get()).ok()?;
                return base64_decode(&s);
            }
            _ => {}
        }
    }
    Some(text.as_bytes().to_vec())
}

/// What the format says about `expire_at` where it is simple to say exactly: `null`, negative
/// numbers (long expired), and plain whole seconds. `Err` when the value is not a deadline.
fn expected_deadline(raw: &RawValue) -> Result<Option<Option<Timestamp>>, ()> {
    let t = raw.get();
    if t == "null" {
        return Ok(Some(None));
    }
    // The text is valid JSON (a raw value): it is a number exactly when it starts with one of
    // these (serde_json refuses some, such as 1e400, as f64: they are still numbers).
    if !t.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Err(());
    }
    if t.starts_with('-') {
        return Ok(Some(Some(Timestamp::EPOCH)));
    }
    if t.bytes().all(|b| b.is_ascii_digit())
        && let Ok(secs) = t.parse::<u64>()
        && let Some(n) = secs.checked_mul(1_000_000_000)
    {
        return Ok(Some(Some(Timestamp::from_unix_nanos(n))));
    }
    Ok(None) // a number, not checked exactly here
}

/// A key not in `keys`.
fn fresh_key(keys: &BTreeMap<String, Record>) -> String {
    let mut k = String::from("\u{0}fuzz-new");
    while keys.contains_key(&k) {
        k.push('+');
    }
    k
}

/// Writes `bytes` as the cache file in `dir` and opens it. The rules:
/// - `open` never panics; refused bytes are `Error::Corrupt` naming the file, and stay byte for
///   byte as they were;
/// - an accepted file reads back as the format says: every key, each `value` and `expire_at`
///   (where simple to say), `len` and `next_expiry` agree;
/// - after a `set` the backend rewrites the file: every record reads back the same after a
///   reopen, the new file is in the Python shape, and writing it again gives the same bytes.
pub fn check_json_file(dir: &Path, bytes: &[u8]) {
    let path = dir.join("cache.json");
    crate::remove(&dir.join("cache.json.tmp"));
    std::fs::write(&path, bytes).expect("scratch write");
    let backend = match FileBackend::open(&path) {
        Ok(b) => b,
        Err(e) => {
            assert!(e.is_corrupt(), "refused with a non-corrupt error: {e:?}");
            assert_eq!(e.path(), Some(path.as_path()), "{e}");
            assert!(
                std::fs::read(&path).expect("read back") == bytes,
                "a refused file was modified"
            );
            assert!(
                !dir.join("cache.json.tmp").exists(),
                "a refused file left a temp file"
            );
            return;
        }
    };
    check_accepted(&path, bytes, backend);
}

fn check_accepted(path: &Path, bytes: &[u8], backend: FileBackend) {
    // The format, read independently.
    let doc: BTreeMap<String, OracleEntry<'_>> = if bytes.is_empty() {
        BTreeMap::new()
    } else {
        match serde_json::from_slice(bytes) {
            Ok(doc) => doc,
            // Python's `NaN`, `Infinity` and `-Infinity` (not strict JSON) are accepted; such
            // documents are checked by the file crate's tests, not by this oracle.
            Err(_)
                if bytes.windows(3).any(|w| w == b"NaN")
                    || bytes.windows(8).any(|w| w == b"Infinity") =>
            {
                return;
            }
            Err(e) => panic!("the backend accepted a document serde_json refuses: {e}"),
        }
    };
    let keys: Vec<&str> = doc.keys().map(String::as_str).collect();
    assert_eq!(backend.len().expect("len"), doc.len(), "len");
    let got = backend.get_many(&keys).expect("get_many");
    let mut records = BTreeMap::new();
    for ((key, entry), record) in doc.iter().zip(got) {
        let Some(record) = record else {
            panic!("key {key:?} is in the file but get returns None")
        };
        let want = expected_value(entry.value)
            .unwrap_or_else(|| panic!("accepted an invalid value for {key:?}: {}", entry.value));
        assert_eq!(record.value, want, "value of {key:?}");
        match expected_deadline(entry.expire_at) {
            Ok(Some(d)) => assert_eq!(record.expires_at, d, "expire_at of {key:?}"),
            Ok(None) => assert!(record.expires_at.is_some(), "expire_at of {key:?}"),
            Err(()) => panic!(
                "accepted an invalid expire_at for {key:?}: {}",
                entry.expire_at
            ),
        }
        assert_eq!(
            backend.get(key).expect("get").as_ref(),
            Some(&record),
            "get {key:?}"
        );
        records.insert(key.clone(), record);
    }
    let next = records.values().filter_map(|r| r.expires_at).min();
    assert_eq!(
        backend.next_expiry().expect("next_expiry"),
        next,
        "next_expiry"
    );

    // Rewrite: one set makes the backend write the whole document in its own spelling.
    let new_key = fresh_key(&records);
    let new = Record::new(
        b"{\"$bytes\": 1}".to_vec(),
        Some(Timestamp::from_unix_millis(1)),
    );
    backend
        .set(&new_key, new.clone())
        .expect("set on an accepted file");
    drop(backend);
    let written = std::fs::read(path).expect("read the rewritten file");
    let shape: Result<BTreeMap<String, PythonEntry<'_>>, _> = serde_json::from_slice(&written);
    if let Err(e) = shape {
        panic!(
            "the rewritten file is not in the Python shape: {e}\n{}",
            String::from_utf8_lossy(&written)
        );
    }
    let again = FileBackend::open(path).expect("reopen the rewritten file");
    assert_eq!(
        again.len().expect("len"),
        records.len() + 1,
        "len after rewrite"
    );
    for (key, record) in &records {
        assert_eq!(
            again.get(key).expect("get").as_ref(),
            Some(record),
            "{key:?} changed through a rewrite"
        );
    }
    assert_eq!(again.get(&new_key).expect("get"), Some(new.clone()));
    // The spelling is canonical: writing the same document again gives the same bytes.
    again.set(&new_key, new).expect("set again");
    drop(again);
    let rewritten = std::fs::read(path).expect("read the file again");
    assert!(written == rewritten, "a second rewrite changed the bytes");

    // Purge at a fixed time removes exactly the records due then.
    let now = Timestamp::now();
    let due = records
        .values()
        .filter(|r| r.expires_at.is_some_and(|d| d <= now))
        .count()
        + 1; // the new record's deadline is 1 ms after the epoch
    let b = FileBackend::open(path).expect("reopen");
    assert_eq!(b.purge_expired(now).expect("purge"), due, "purge count");
    assert_eq!(b.len().expect("len"), records.len() + 1 - due);
    if let Some(d) = b.next_expiry().expect("next_expiry") {
        assert!(d > now, "next_expiry {d:?} is due after a purge at {now:?}");
    }
}

/// Builds a cache document from fuzz input: fields separated by `0x00`, taken three at a time
/// as key, value and `expire_at`. The key is written as a JSON string (lossy UTF-8); the value
/// is written raw, or as `{"$bytes": "<field>"}` when it starts with `0x01` and
/// `{"$json": <field>}` when it starts with `0x02`; an empty `expire_at` is `null`.
pub fn document(input: &[u8]) -> Vec<u8> {
    let f = crate::fields(input, 0);
    let mut out = b"{".to_vec();
    for (i, entry) in f.chunks(3).enumerate() {
        let key = String::from_utf8_lossy(entry[0]);
        let value = entry.get(1).copied().unwrap_or(b"null");
        let expire = match entry.get(2).copied() {
            None | Some(b"") => &b"null"[..],
            Some(e) => e,
        };
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(serde_json::to_string(&key).expect("a string").as_bytes());
        out.extend_from_slice(b": {\"value\": ");
        match value.split_first() {
            Some((1, rest)) => {
                out.extend_from_slice(b"{\"$bytes\": \"");
                out.extend_from_slice(rest);
                out.extend_from_slice(b"\"}");
            }
            Some((2, rest)) => {
                out.extend_from_slice(b"{\"$json\": ");
                out.extend_from_slice(rest);
                out.push(b'}');
            }
            _ => out.extend_from_slice(value),
        }
        out.extend_from_slice(b", \"expire_at\": ");
        out.extend_from_slice(expire);
        out.push(b'}');
    }
    out.extend_from_slice(b"}\n");
    out
}

/// Stores arbitrary records (fuzz input: fields separated by `0x00`, taken two at a time as key
/// and value bytes; a value's first byte picks a deadline) through the backend, in durable mode
/// and in batched mode, and checks they read back exactly after a reopen.
pub fn check_records_round_trip(dir: &Path, input: &[u8]) {
    let f = crate::fields(input, 0);
    let mut want: BTreeMap<String, Record> = BTreeMap::new();
    for pair in f.chunks(2) {
        let key = String::from_utf8_lossy(pair[0]).into_owned();
        let value = pair.get(1).copied().unwrap_or_default();
        let deadline = match value.first() {
            Some(&b) if b % 3 == 0 => None,
            Some(&b) => Some(Timestamp::from_unix_nanos(
                u64::from(b).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            )),
            None => None,
        };
        want.insert(key, Record::new(value.to_vec(), deadline));
    }
    for batched in [false, true] {
        let path = dir.join(if batched {
            "records-batched.json"
        } else {
            "records.json"
        });
        crate::remove(&path);
        let mut builder = FileBackend::builder(&path);
        if batched {
            builder = builder.flush_every(std::time::Duration::from_secs(3600));
        }
        let b = builder.build().expect("open a new file");
        let entries: Vec<(String, Record)> =
            want.iter().map(|(k, r)| (k.clone(), r.clone())).collect();
        b.set_many(entries).expect("set_many");
        drop(b);
        let again = FileBackend::open(&path).expect("reopen");
        assert_eq!(again.len().expect("len"), want.len());
        for (k, r) in &want {
            assert_eq!(
                again.get(k).expect("get").as_ref(),
                Some(r),
                "{k:?} (batched: {batched})"
            );
        }
        let text = std::fs::read(&path).expect("read");
        let shape: Result<BTreeMap<String, PythonEntry<'_>>, _> = serde_json::from_slice(&text);
        // Python's `NaN`, `Infinity` and `-Infinity` are written back as Python writes them (not
        // strict JSON): such documents are checked against Python by the file crate's tests.
        let python_tokens =
            text.windows(3).any(|w| w == b"NaN") || text.windows(8).any(|w| w == b"Infinity");
        assert!(
            shape.is_ok() || python_tokens,
            "not in the Python shape: {}",
            String::from_utf8_lossy(&text)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_oracle() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("Zg==").unwrap(), b"f");
        assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
        assert_eq!(base64_decode("Zm9v").unwrap(), b"foo");
        assert_eq!(base64_decode("Zm9vYmFy").unwrap(), b"foobar");
        assert!(base64_decode("Zh==").is_none());
        assert!(base64_decode("Zm9=").is_none());
        assert!(base64_decode("Z===").is_none());
        assert!(base64_decode("Zg==Zg==").is_none());
    }
}
