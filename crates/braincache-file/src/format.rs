//! The JSON document: parsing, writing, and the value representation (see `FORMAT.md`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use braincache_core::{CodecId, Timestamp};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The key of a tag object holding bytes that are not JSON text, as standard base64.
pub(crate) const BYTES_TAG: &str = "$bytes";
/// The key of a tag object holding JSON text that would otherwise read as a tag.
pub(crate) const JSON_TAG: &str = "$json";
/// The key, beside [`BYTES_TAG`], holding the codec id of bytes another codec than JSON wrote.
pub(crate) const CODEC_TAG: &str = "$codec";

/// One entry as kept in memory: what goes into the file, and what `get` returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) value: StoredValue,
    pub(crate) expires_at: Option<Timestamp>,
    /// The record's freshness fields, written as the entry's `braincache` member (which the
    /// Python original, reading only `value` and `expire_at`, ignores).
    pub(crate) fresh: Option<Box<Fresh>>,
}

/// A record's optional freshness fields (see `braincache_core::Record`), and the lease on its
/// key (see `lease.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fresh {
    pub(crate) fresh_until: Option<Timestamp>,
    pub(crate) computed_at: Option<Timestamp>,
    pub(crate) compute_time: Option<std::time::Duration>,
    /// The lease on the key: the holder's token and when the lease ends.
    pub(crate) lease: Option<(u64, Timestamp)>,
    /// The entry holds only a lease (its `value` is `null`): `get` does not see it.
    pub(crate) placeholder: bool,
}

impl Entry {
    /// True when the entry only holds a lease on a key that has no value.
    pub(crate) fn is_placeholder(&self) -> bool {
        self.fresh.as_ref().is_some_and(|f| f.placeholder)
    }
}

impl Fresh {
    /// The fields of a record, `None` when it has none.
    pub(crate) fn of(record: &braincache_core::Record) -> Option<Box<Fresh>> {
        let f = Fresh {
            fresh_until: record.fresh_until,
            computed_at: record.computed_at,
            compute_time: record.compute_time,
            ..Fresh::default()
        };
        (f != Fresh::default()).then(|| Box::new(f))
    }

    /// Writes the `braincache` member's object: `{"fresh_until": <Unix seconds>,
    /// "computed_at": <Unix seconds>, "compute_time": <seconds>, "lease": {"token": <u64>,
    /// "until": <Unix seconds>}, "placeholder": true}`, absent fields left out.
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        let took = self
            .compute_time
            .map(|d| Timestamp::from_unix_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)));
        let mut first = true;
        for (name, t) in [
            ("fresh_until", self.fresh_until),
            ("computed_at", self.computed_at),
            ("compute_time", took),
        ] {
            if let Some(t) = t {
                if !first {
                    out.extend_from_slice(b", ");
                }
                first = false;
                out.extend_from_slice(format!("\"{name}\": ").as_bytes());
                write_expire_at(Some(t), out);
            }
        }
        if let Some((token, until)) = self.lease {
            if !first {
                out.extend_from_slice(b", ");
            }
            first = false;
            out.extend_from_slice(
                format!("\"lease\": {{\"token\": {token}, \"until\": ").as_bytes(),
            );
            write_expire_at(Some(until), out);
            out.push(b'}');
        }
        if self.placeholder {
            if !first {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(b"\"placeholder\": true");
        }
        out.push(b'}');
    }

    /// Reads the `braincache` member. Unknown members inside it are ignored (later versions may
    /// add some; they are dropped when this version rewrites the entry).
    fn parse(raw: &RawValue) -> Result<Fresh, String> {
        #[derive(Deserialize)]
        struct Members<'a> {
            #[serde(borrow)]
            fresh_until: Option<&'a RawValue>,
            #[serde(borrow)]
            computed_at: Option<&'a RawValue>,
            #[serde(borrow)]
            compute_time: Option<&'a RawValue>,
            #[serde(borrow)]
            lease: Option<LeaseMember<'a>>,
            #[serde(default)]
            placeholder: bool,
        }
        #[derive(Deserialize)]
        struct LeaseMember<'a> {
            token: u64,
            #[serde(borrow)]
            until: &'a RawValue,
        }
        let m: Members<'_> = serde_json::from_str(raw.get())
            .map_err(|e| format!("`braincache` must be an object of times: {e}"))?;
        let time = |name: &str, v: Option<&RawValue>| -> Result<Option<Timestamp>, String> {
            match v {
                None => Ok(None),
                Some(v) => {
                    parse_expire_at(v.get()).map_err(|e| format!("`braincache.{name}`: {e}"))
                }
            }
        };
        Ok(Fresh {
            fresh_until: time("fresh_until", m.fresh_until)?,
            computed_at: time("computed_at", m.computed_at)?,
            compute_time: time("compute_time", m.compute_time)?
                .map(|t| std::time::Duration::from_nanos(t.as_unix_nanos())),
            lease: match m.lease {
                None => None,
                Some(l) => Some((
                    l.token,
                    time("lease.until", Some(l.until))?.unwrap_or(Timestamp::EPOCH),
                )),
            },
            placeholder: m.placeholder,
        })
    }
}

/// A record's bytes in the form the file holds them. Cheap to clone (pending writes share it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StoredValue {
    /// The bytes are exactly one JSON text: written as they are.
    Json(Arc<str>),
    /// JSON text that is itself a one-member object keyed `$bytes` or `$json`: written as
    /// `{"$json": <text>}` so it does not read back as a tag.
    Escaped(Arc<str>),
    /// Anything else (not UTF-8, not JSON, JSON with surrounding whitespace, empty): written as
    /// `{"$bytes": "<base64>"}`.
    Bytes(Arc<[u8]>),
    /// Bytes of a record that states a codec other than JSON: written as
    /// `{"$bytes": "<base64>", "$codec": <id>}`.
    Coded(Arc<[u8]>, CodecId),
}

impl StoredValue {
    /// Picks the representation of a record's bytes and codec. JSON is the file's own codec:
    /// a record stating it is stored as one stating none, and reads back so (the front end reads
    /// a record without a codec as written by the backend's default codec, JSON).
    pub(crate) fn from_record(bytes: Vec<u8>, codec: Option<CodecId>) -> StoredValue {
        match codec {
            None | Some(CodecId::JSON) => StoredValue::from_bytes(bytes),
            Some(codec) => StoredValue::Coded(bytes.into(), codec),
        }
    }

    /// The codec the value states, when not JSON.
    pub(crate) fn codec(&self) -> Option<CodecId> {
        match self {
            StoredValue::Coded(_, codec) => Some(*codec),
            _ => None,
        }
    }

    /// Picks the representation of `bytes`; every byte string has one, and it reads back exactly.
    pub(crate) fn from_bytes(bytes: Vec<u8>) -> StoredValue {
        match String::from_utf8(bytes) {
            Ok(text) if is_exact_json(&text) => match probe(&strict(&text)) {
                Ok(Probe::Plain) => StoredValue::Json(text.into()),
                Ok(Probe::Tag(..) | Probe::Coded(..)) => StoredValue::Escaped(text.into()),
                // Unreachable for text that just parsed; keeping the bytes is always lossless.
                Err(_) => StoredValue::Bytes(text.into_bytes().into()),
            },
            Ok(text) => StoredValue::Bytes(text.into_bytes().into()),
            Err(e) => StoredValue::Bytes(e.into_bytes().into()),
        }
    }

    /// The record bytes this value stands for.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        match self {
            StoredValue::Json(s) | StoredValue::Escaped(s) => s.as_bytes().to_vec(),
            StoredValue::Bytes(b) | StoredValue::Coded(b, _) => b.to_vec(),
        }
    }

    /// Appends the value as it appears in the file.
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            StoredValue::Json(s) => out.extend_from_slice(s.as_bytes()),
            StoredValue::Escaped(s) => {
                out.extend_from_slice(b"{\"");
                out.extend_from_slice(JSON_TAG.as_bytes());
                out.extend_from_slice(b"\": ");
                out.extend_from_slice(s.as_bytes());
                out.push(b'}');
            }
            StoredValue::Bytes(b) => {
                out.extend_from_slice(b"{\"");
                out.extend_from_slice(BYTES_TAG.as_bytes());
                out.extend_from_slice(b"\": \"");
                out.extend_from_slice(BASE64.encode(b).as_bytes());
                out.extend_from_slice(b"\"}");
            }
            StoredValue::Coded(b, codec) => {
                out.extend_from_slice(b"{\"");
                out.extend_from_slice(BYTES_TAG.as_bytes());
                out.extend_from_slice(b"\": \"");
                out.extend_from_slice(BASE64.encode(b).as_bytes());
                out.extend_from_slice(b"\", \"");
                out.extend_from_slice(CODEC_TAG.as_bytes());
                out.extend_from_slice(format!("\": {}}}", codec.get()).as_bytes());
            }
        }
    }

    /// The value as it appears in the file, as text.
    #[cfg(test)]
    pub(crate) fn to_json(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out);
        // Only UTF-8 goes in (JSON text that was a `str`, tag names, base64): nothing is replaced.
        String::from_utf8_lossy(&out).into_owned()
    }

    /// An estimate of the bytes this value takes in the file.
    fn file_len(&self) -> usize {
        match self {
            StoredValue::Json(s) => s.len(),
            StoredValue::Escaped(s) => s.len() + 12,
            StoredValue::Bytes(b) => b.len().div_ceil(3) * 4 + 14,
            StoredValue::Coded(b, _) => b.len().div_ceil(3) * 4 + 28,
        }
    }
}

/// True when `text` is one JSON value with nothing around it, so writing it into the document
/// and reading it back (which drops surrounding whitespace) gives the same bytes. Python's
/// `NaN`, `Infinity` and `-Infinity` count as JSON (see [`strict`]).
pub(crate) fn is_exact_json(text: &str) -> bool {
    let strict = strict(text);
    let text: &str = &strict;
    serde_json::from_str::<&RawValue>(text).is_ok_and(|raw| raw.get().len() == text.len())
}

/// Python's `json` writes non-finite floats as these tokens, and reads them back. Each has a
/// strict JSON number of the same length to stand in for it while serde_json parses the text.
const NON_FINITE: [(&str, &str); 3] = [
    ("-Infinity", "-0.000000"),
    ("Infinity", "0.000000"),
    ("NaN", "0.0"),
];

/// `text` with each `NaN`, `Infinity` and `-Infinity` token outside strings replaced by a JSON
/// number of the same length, so byte offsets into the result are offsets into `text`; `text`
/// itself when it holds none.
fn strict(text: &str) -> std::borrow::Cow<'_, str> {
    let b = text.as_bytes();
    // Cheap exit for the common case.
    if !text.contains("NaN") && !text.contains("Infinity") {
        return text.into();
    }
    let mut out: Option<Vec<u8>> = None;
    let mut in_string = false;
    let mut i = 0;
    'scan: while i < b.len() {
        let c = b[i];
        if in_string {
            match c {
                b'\\' => i += 2,
                b'"' => {
                    in_string = false;
                    i += 1;
                }
                _ => i += 1,
            }
            continue;
        }
        if c == b'"' {
            in_string = true;
        } else if matches!(c, b'N' | b'I' | b'-') {
            // A token only where a value starts, and not glued to a following name character.
            let starts_value =
                i == 0 || matches!(b[i - 1], b'[' | b',' | b':' | b' ' | b'\n' | b'\r' | b'\t');
            for (token, number) in NON_FINITE {
                let end = i + token.len();
                let ends = b
                    .get(end)
                    .is_none_or(|n| !n.is_ascii_alphanumeric() && *n != b'_' && *n != b'.');
                if starts_value && ends && b[i..].starts_with(token.as_bytes()) {
                    out.get_or_insert_with(|| b.to_vec())[i..end]
                        .copy_from_slice(number.as_bytes());
                    i = end;
                    continue 'scan;
                }
            }
        }
        i += 1;
    }
    // Only ASCII was replaced by ASCII: the bytes stay UTF-8.
    match out.map(String::from_utf8) {
        Some(Ok(s)) => s.into(),
        _ => text.into(),
    }
}

/// What a JSON value looks like to the tag scheme.
enum Probe<'a> {
    /// An ordinary value.
    Plain,
    /// A one-member object keyed `$bytes` or `$json`: the tag and the member's raw value.
    Tag(&'static str, &'a RawValue),
    /// A two-member object keyed `$bytes` and `$codec`: their raw values.
    Coded(&'a RawValue, &'a RawValue),
}

/// Classifies the JSON text `raw` (which must be valid JSON).
fn probe(raw: &str) -> Result<Probe<'_>, serde_json::Error> {
    // Only objects can be tags; this keeps the common case (strings, numbers, arrays) to one
    // byte comparison.
    if !raw.starts_with('{') {
        return Ok(Probe::Plain);
    }
    let mut de = serde_json::Deserializer::from_str(raw);
    let probe = de.deserialize_map(ProbeVisitor)?;
    de.end()?;
    Ok(probe)
}

struct ProbeVisitor;

impl<'de> Visitor<'de> for ProbeVisitor {
    type Value = Probe<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe<'de>, A::Error> {
        // Up to two members whose keys are tag names; anything else is an ordinary object.
        let mut members: [Option<(&'static str, &'de RawValue)>; 2] = [None, None];
        let mut count = 0;
        while let Some(key) = map.next_key::<String>()? {
            let tag = match key.as_str() {
                BYTES_TAG => Some(BYTES_TAG),
                JSON_TAG => Some(JSON_TAG),
                CODEC_TAG => Some(CODEC_TAG),
                _ => None,
            };
            match (tag, members.get_mut(count)) {
                (Some(tag), Some(slot)) => {
                    *slot = Some((tag, map.next_value()?));
                    count += 1;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                    return Ok(Probe::Plain);
                }
            }
        }
        Ok(match members {
            [Some((tag, raw)), None] if tag != CODEC_TAG => Probe::Tag(tag, raw),
            [Some((BYTES_TAG, bytes)), Some((CODEC_TAG, codec))]
            | [Some((CODEC_TAG, codec)), Some((BYTES_TAG, bytes))] => Probe::Coded(bytes, codec),
            _ => Probe::Plain,
        })
    }
}

/// Reads a value from the file into its stored form. `raw` is the value's JSON text as parsed
/// (with [`strict`] stand-ins), `original` maps it back to the file's own text.
fn decode_value(raw: &RawValue, original: &Original<'_>) -> Result<StoredValue, String> {
    let text = raw.get();
    let base64 = |inner: &RawValue| {
        let b64: String = serde_json::from_str(inner.get())
            .map_err(|_| format!("`{BYTES_TAG}` must hold a base64 string"))?;
        // The engine refuses every spelling but the canonical one: characters outside the
        // standard alphabet, missing or misplaced padding, non-zero trailing bits.
        BASE64
            .decode(&b64)
            .map_err(|e| format!("`{BYTES_TAG}` is not valid base64: {e}"))
    };
    match probe(text).map_err(|e| e.to_string())? {
        Probe::Plain => Ok(StoredValue::Json(original.text(text).into())),
        Probe::Tag(JSON_TAG, inner) => Ok(StoredValue::Escaped(original.text(inner.get()).into())),
        Probe::Tag(_, inner) => Ok(StoredValue::Bytes(base64(inner)?.into())),
        Probe::Coded(bytes, codec) => {
            let codec = serde_json::from_str::<u8>(codec.get())
                .ok()
                .and_then(CodecId::new)
                .ok_or_else(|| format!("`{CODEC_TAG}` must be a codec id from 1 to 255"))?;
            Ok(StoredValue::Coded(base64(bytes)?.into(), codec))
        }
    }
}

/// The document as the file holds it, when serde_json parsed a copy with stand-ins for Python's
/// non-finite tokens (see [`strict`]): maps text of the copy back to the file's text.
#[derive(Clone, Copy)]
struct Original<'a> {
    /// `(file text, start address of the parsed copy)`, or `None` when they are the same.
    texts: Option<(&'a str, usize)>,
}

impl Original<'_> {
    /// The file's text at the place of `parsed`, a slice of the parsed copy.
    fn text<'s>(&self, parsed: &'s str) -> &'s str
    where
        Self: 's,
    {
        match self.texts {
            None => parsed,
            Some((file, base)) => {
                let start = (parsed.as_ptr() as usize).wrapping_sub(base);
                file.get(start..start + parsed.len()).unwrap_or(parsed)
            }
        }
    }
}

/// Reads `expire_at`: `null`, or Unix seconds as a JSON number. Plain decimals are read exactly
/// (to the nanosecond); exponent forms go through `f64`. Times before the epoch read as the
/// epoch (long expired).
pub(crate) fn parse_expire_at(raw: &str) -> Result<Option<Timestamp>, String> {
    if raw == "null" {
        return Ok(None);
    }
    let bad = || format!("`expire_at` must be Unix seconds (a number) or null, found {raw}");
    if raw == "Infinity" {
        // Python's `float("inf")`: never reached.
        return Ok(Some(Timestamp::MAX));
    }
    match raw.as_bytes().first() {
        Some(b'-') => return Ok(Some(Timestamp::EPOCH)),
        Some(b'0'..=b'9') => {}
        _ => return Err(bad()),
    }
    if raw.contains(['e', 'E']) {
        let secs: f64 = raw.parse().map_err(|_| bad())?;
        // Finite non-negative values convert (saturating); beyond f64 is "as late as can be".
        return Ok(Some(if secs == f64::INFINITY {
            Timestamp::MAX
        } else {
            Timestamp::from_unix_secs_f64(secs).unwrap_or(Timestamp::EPOCH)
        }));
    }
    let (int, frac) = raw.split_once('.').unwrap_or((raw, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // Seconds beyond u64 saturate, like any deadline too late to represent.
    let secs: u64 = int.parse().unwrap_or(u64::MAX);
    let mut nanos: u64 = 0;
    for i in 0..9 {
        nanos = nanos * 10 + frac.as_bytes().get(i).map_or(0, |d| u64::from(d - b'0'));
    }
    Ok(Some(Timestamp::from_unix_nanos(
        secs.saturating_mul(1_000_000_000).saturating_add(nanos),
    )))
}

/// Writes `expire_at` as an exact decimal: whole seconds, a point, and the nanoseconds with
/// trailing zeros dropped (`1700000000.5`, `1700000000.0`). Python reads it as a float.
fn write_expire_at(at: Option<Timestamp>, out: &mut Vec<u8>) {
    let Some(t) = at else {
        out.extend_from_slice(b"null");
        return;
    };
    let nanos = t.as_unix_nanos();
    let secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    let mut digits = format!("{frac:09}");
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    out.extend_from_slice(format!("{secs}.{digits}").as_bytes());
}

/// One entry as the file spells it: an object with exactly `value` and `expire_at`, and
/// optionally `braincache` (the freshness fields). (serde's
/// derive would also accept `[value, expire_at]` arrays.) Unknown members are refused:
/// rewriting the file would drop them.
struct RawEntry<'a> {
    value: &'a RawValue,
    expire_at: &'a RawValue,
    /// braincache's own fields, which the Python original ignores.
    braincache: Option<&'a RawValue>,
}

impl<'de> Deserialize<'de> for RawEntry<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawEntry<'de>, D::Error> {
        d.deserialize_map(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = RawEntry<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an entry {"value": ..., "expire_at": ...}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEntry<'de>, A::Error> {
        const FIELDS: &[&str] = &["value", "expire_at", "braincache"];
        let (mut value, mut expire_at, mut braincache) = (None, None, None);
        while let Some(field) = map.next_key::<String>()? {
            let slot = match field.as_str() {
                "value" => &mut value,
                "expire_at" => &mut expire_at,
                "braincache" => &mut braincache,
                other => return Err(de::Error::unknown_field(other, FIELDS)),
            };
            if slot.is_some() {
                return Err(de::Error::custom(format_args!("duplicate field `{field}`")));
            }
            *slot = Some(map.next_value::<&'de RawValue>()?);
        }
        Ok(RawEntry {
            value: value.ok_or_else(|| de::Error::missing_field("value"))?,
            expire_at: expire_at.ok_or_else(|| de::Error::missing_field("expire_at"))?,
            braincache,
        })
    }
}

struct DocVisitor<'o> {
    original: Original<'o>,
}

impl<'de> Visitor<'de> for DocVisitor<'_> {
    type Value = BTreeMap<String, Entry>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a JSON object of entries {"key": {"value": ..., "expire_at": ...}}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let raw: RawEntry<'de> = map.next_value()?;
            let value = decode_value(raw.value, &self.original)
                .map_err(|e| de::Error::custom(format!("entry {key:?}: {e}")))?;
            let expires_at = parse_expire_at(self.original.text(raw.expire_at.get()))
                .map_err(|e| de::Error::custom(format!("entry {key:?}: {e}")))?;
            let fresh = match raw.braincache {
                None => None,
                Some(raw) => {
                    Some(Box::new(Fresh::parse(raw).map_err(|e| {
                        de::Error::custom(format!("entry {key:?}: {e}"))
                    })?))
                }
            };
            // A repeated key: the last one wins, as in Python's `json.load`.
            entries.insert(
                key,
                Entry {
                    value,
                    expires_at,
                    fresh,
                },
            );
        }
        Ok(entries)
    }
}

/// A parse failure: what is wrong, and where (1-based line and column).
#[derive(Debug)]
pub(crate) struct ParseError {
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) detail: String,
}

impl ParseError {
    pub(crate) fn position(&self) -> String {
        format!("line {}, column {}", self.line, self.column)
    }
}

/// Parses a whole document. A zero-length file is an empty cache.
pub(crate) fn parse(bytes: &[u8]) -> Result<BTreeMap<String, Entry>, ParseError> {
    if bytes.is_empty() {
        return Ok(BTreeMap::new());
    }
    // Python's `NaN`, `Infinity` and `-Infinity` are parsed through same-length stand-ins, and
    // the values keep the file's own text.
    let file = std::str::from_utf8(bytes).ok();
    let parsed = file.map(strict);
    let (bytes, original) = match (file, &parsed) {
        (Some(file), Some(std::borrow::Cow::Owned(copy))) => (
            copy.as_bytes(),
            Original {
                texts: Some((file, copy.as_ptr() as usize)),
            },
        ),
        _ => (bytes, Original { texts: None }),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = de.deserialize_map(DocVisitor { original }).and_then(|doc| {
        de.end()?;
        Ok(doc)
    });
    result.map_err(|e| {
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let detail = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
        ParseError {
            line: e.line(),
            column: e.column(),
            detail,
        }
    })
}

/// Writes a whole document: one entry per line, values as stored. `entries` must be in key
/// order, each key once (a map's iterator, or a view merged with a change).
pub(crate) fn write<'a, K: AsRef<str>>(
    entries: impl IntoIterator<Item = (K, &'a Entry)> + Clone,
) -> Vec<u8> {
    let size: usize = entries
        .clone()
        .into_iter()
        .map(|(k, e)| k.as_ref().len() + e.value.file_len() + 48)
        .sum();
    let mut out = Vec::with_capacity(size + 4);
    out.extend_from_slice(DOCUMENT_START);
    let mut empty = true;
    for (i, (key, entry)) in entries.into_iter().enumerate() {
        empty = false;
        write_entry(i == 0, key.as_ref(), entry, &mut out);
    }
    out.extend_from_slice(document_end(empty));
    out
}

/// The bytes that open a document.
pub(crate) const DOCUMENT_START: &[u8] = b"{";

/// The bytes that close a document of no entries (`empty`) or of some.
pub(crate) fn document_end(empty: bool) -> &'static [u8] {
    if empty { b"}\n" } else { b"\n}\n" }
}

/// Appends one entry as the document lays it out: on its own line, after a comma unless it is
/// the `first`.
pub(crate) fn write_entry(first: bool, key: &str, entry: &Entry, out: &mut Vec<u8>) {
    out.extend_from_slice(if first { b"\n  " } else { b",\n  " });
    write_str(key, out);
    out.extend_from_slice(b": {\"value\": ");
    entry.value.write_json(out);
    out.extend_from_slice(b", \"expire_at\": ");
    write_expire_at(entry.expires_at, out);
    if let Some(fresh) = &entry.fresh {
        out.extend_from_slice(b", \"braincache\": ");
        fresh.write_json(out);
    }
    out.push(b'}');
}

/// Writes `s` as a JSON string (escaping quotes, backslashes and control characters; other
/// characters are written as UTF-8).
fn write_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: StoredValue, expires_at: Option<Timestamp>) -> Entry {
        Entry {
            value,
            expires_at,
            fresh: None,
        }
    }

    fn round_trip(bytes: &[u8]) -> StoredValue {
        let stored = StoredValue::from_bytes(bytes.to_vec());
        assert_eq!(stored.to_bytes(), bytes, "in memory: {bytes:?}");
        let mut doc = BTreeMap::new();
        doc.insert("k".to_owned(), entry(stored.clone(), None));
        let text = write(&doc);
        let back = parse(&text).unwrap_or_else(|e| {
            panic!(
                "{bytes:?} wrote {:?}: {e:?}",
                String::from_utf8_lossy(&text)
            )
        });
        assert_eq!(
            back["k"].value,
            stored,
            "{}",
            String::from_utf8_lossy(&text)
        );
        assert_eq!(back["k"].value.to_bytes(), bytes);
        stored
    }

    /// Round-trips each of `values` and asserts it is stored as the variant `kind` accepts.
    fn assert_stored_as(values: &[&[u8]], kind: fn(&StoredValue) -> bool) {
        for v in values {
            assert!(kind(&round_trip(v)), "{}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn json_values_are_written_as_they_are() {
        assert_stored_as(
            &[
                b"1",
                b"-1.5e3",
                b"\"text\"",
                b"null",
                b"true",
                b"[1,2,{\"a\":null}]",
                b"{}",
                b"{\"a\": 1,  \"b\" : [ ]}",
                b"\"\\u00e9\xc3\xa9\"",
                b"{\"$bytes\":\"AA==\",\"other\":1}",
                b"{\"x\":{\"$bytes\":\"AA==\"}}",
            ],
            |s| matches!(s, StoredValue::Json(_)),
        );
    }

    #[test]
    fn values_that_look_like_tags_are_escaped() {
        assert_stored_as(
            &[
                b"{\"$bytes\":\"AA==\"}",
                b"{\"$json\":1}",
                b"{\"$json\":{\"$json\":2}}",
                b"{\"\\u0024bytes\": 5}",
                b"{\"$bytes\": null}",
            ],
            |s| matches!(s, StoredValue::Escaped(_)),
        );
    }

    #[test]
    fn other_bytes_are_base64() {
        let all: Vec<u8> = (0..=255).collect();
        assert_stored_as(
            &[
                b"",
                b"one",
                &[0],
                &all,
                b" 1",
                b"1 ",
                b"1 2",
                b"\xff",
                b"{",
                // (`NaN` alone is Python's JSON now: see the non-finite test.)
                b"nan",
                b"\"unterminated",
            ],
            |s| matches!(s, StoredValue::Bytes(_)),
        );
    }

    /// The document holding `text` (JSON string contents, escapes allowed) as a `$bytes` value.
    fn bytes_doc(text: &str) -> String {
        format!("{{\"k\": {{\"value\": {{\"$bytes\": \"{text}\"}}, \"expire_at\": null}}}}")
    }

    #[test]
    fn bytes_are_standard_padded_base64() {
        // RFC 4648 §10 (none of these is JSON text, so each is stored as bytes).
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let stored = round_trip(plain.as_bytes());
            assert_eq!(stored.to_json(), format!("{{\"$bytes\": \"{coded}\"}}"));
            let doc = parse(bytes_doc(coded).as_bytes()).unwrap();
            assert_eq!(doc["k"].value.to_bytes(), plain.as_bytes());
        }
        assert_eq!(
            StoredValue::Bytes(vec![0xfb, 0xff].into()).to_json(),
            r#"{"$bytes": "+/8="}"#
        );
        let all: Vec<u8> = (0..=255u8).rev().chain(0..=255).collect();
        for len in 0..all.len() {
            let mut doc = BTreeMap::new();
            let value = StoredValue::Bytes(all[..len].into());
            doc.insert("k".to_owned(), entry(value.clone(), None));
            assert_eq!(
                parse(&write(&doc)).unwrap()["k"].value,
                value,
                "length {len}"
            );
        }
    }

    #[test]
    fn bytes_that_are_not_canonical_base64_are_corrupt() {
        let doc = parse(bytes_doc("QQ==").as_bytes()).unwrap();
        assert_eq!(doc["k"].value, StoredValue::Bytes(b"A".to_vec().into()));
        for bad in [
            "QR==",     // non-zero trailing bits
            "Zh==",     // the same
            "Zm9=",     // the same, one padding character
            "Zg=",      // a short last group
            "Zg",       // padding missing
            "Zm9vYg",   // the same, after a full group
            "Zg==Zg==", // padding inside
            "Z===",     // too much padding
            "====",     // padding only
            "Zm9v=",    // padding after a full group
            "Zm 9",     // white space
            " Zm9v",    // the same, in front
            "Zm9v\\n",  // a newline (escaped in the document)
            "Zm-v",     // the URL-safe alphabet
            "Zm_v",     // the same
        ] {
            let e = parse(bytes_doc(bad).as_bytes()).unwrap_err();
            assert!(e.detail.contains("base64"), "{bad}: {e:?}");
        }
    }

    #[test]
    fn deep_values_survive_the_document_nesting() {
        // serde_json limits recursion to 128 levels when building values, but raw values are
        // skipped without recursion; a value this deep must still load inside the document.
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert!(matches!(round_trip(deep.as_bytes()), StoredValue::Json(_)));
    }

    #[test]
    fn keys_are_escaped_and_read_back() {
        let keys = [
            "",
            " ",
            "\"q\"",
            "a\\b",
            "line\nbreak",
            "tab\t",
            "\u{1}\u{1f}",
            "ключ",
            "🔑",
            "{}",
        ];
        let mut doc = BTreeMap::new();
        for (i, k) in keys.iter().enumerate() {
            doc.insert(
                (*k).to_owned(),
                entry(StoredValue::Json(i.to_string().into()), None),
            );
        }
        let text = write(&doc);
        assert_eq!(parse(&text).unwrap(), doc);
        // The same bytes serde_json would write for each key.
        for k in keys {
            let mut mine = Vec::new();
            write_str(k, &mut mine);
            assert_eq!(mine, serde_json::to_vec(k).unwrap());
        }
    }

    #[test]
    fn expire_at_is_exact_to_the_nanosecond() {
        for nanos in [
            0,
            1,
            999_999_999,
            1_000_000_000,
            1_700_000_000_123_456_789,
            1_700_000_000_500_000_000,
            u64::MAX,
        ] {
            let t = Timestamp::from_unix_nanos(nanos);
            let mut out = Vec::new();
            write_expire_at(Some(t), &mut out);
            let text = String::from_utf8(out).unwrap();
            assert_eq!(parse_expire_at(&text), Ok(Some(t)), "{text}");
            // Python (and serde_json) read it as a float close to the deadline.
            let f: f64 = serde_json::from_str(&text).unwrap();
            assert!((f - t.as_unix_secs_f64()).abs() < 1e-3 * f.max(1.0));
        }
        assert_eq!(parse_expire_at("null"), Ok(None));
        let exact = |s| parse_expire_at(s).unwrap().unwrap().as_unix_nanos();
        assert_eq!(exact("1700000000.5"), 1_700_000_000_500_000_000);
        assert_eq!(exact("1700000000"), 1_700_000_000_000_000_000);
        assert_eq!(exact("1.0000000019"), 1_000_000_001); // beyond nanoseconds: truncated
        assert_eq!(exact("1.7e9"), 1_700_000_000_000_000_000);
        assert_eq!(exact("-5.5"), 0);
        assert_eq!(exact("1e400"), u64::MAX);
        assert!(parse_expire_at("\"1\"").is_err());
        assert!(parse_expire_at("true").is_err());
        assert!(parse_expire_at("[]").is_err());
    }

    #[test]
    fn python_shaped_documents_parse() {
        let text = br#"{"a": {"value": {"n": [1, 2.5, null, "x"]}, "expire_at": 1700000000.25},
                        "b": {"expire_at": null, "value": "hi"}}"#;
        let doc = parse(text).unwrap();
        assert_eq!(
            doc["a"].value,
            StoredValue::Json(r#"{"n": [1, 2.5, null, "x"]}"#.into())
        );
        assert_eq!(
            doc["a"].expires_at,
            Some(Timestamp::from_unix_nanos(1_700_000_000_250_000_000))
        );
        assert_eq!(doc["b"].value, StoredValue::Json(r#""hi""#.into()));
        assert_eq!(doc["b"].expires_at, None);
    }

    #[test]
    fn pythons_non_finite_floats_read_and_are_written_back_as_they_were() {
        let text = b"{\"a\": {\"value\": [NaN, Infinity, -Infinity, \"NaN\", 1.5], \"expire_at\": null},\n\
                     \"b\": {\"value\": {\"x\": NaN}, \"expire_at\": Infinity},\n\
                     \"c\": {\"value\": -Infinity, \"expire_at\": -Infinity}}";
        let doc = parse(text).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            doc["a"].value,
            StoredValue::Json(r#"[NaN, Infinity, -Infinity, "NaN", 1.5]"#.into())
        );
        assert_eq!(doc["b"].value, StoredValue::Json(r#"{"x": NaN}"#.into()));
        assert_eq!(doc["b"].expires_at, Some(Timestamp::MAX));
        assert_eq!(doc["c"].value, StoredValue::Json("-Infinity".into()));
        assert_eq!(doc["c"].expires_at, Some(Timestamp::EPOCH));
        let written = write(&doc);
        let again = parse(&written).unwrap();
        assert_eq!(again, doc);
        // The codec's own output is JSON text to the file, not bytes.
        for v in [
            &b"NaN"[..],
            b"[NaN,Infinity,-Infinity]",
            br#"{"k":-Infinity}"#,
        ] {
            assert!(matches!(round_trip(v), StoredValue::Json(_)), "{v:?}");
        }
        // Tokens glued to other text, or inside strings, are not floats.
        for v in [&b"NaNa"[..], b"[1NaN]", b"Infinity1", b"nan"] {
            assert!(matches!(round_trip(v), StoredValue::Bytes(_)), "{v:?}");
        }
        assert!(matches!(round_trip(br#""NaN""#), StoredValue::Json(_)));
        assert!(parse(br#"{"a": {"value": NaNa, "expire_at": null}}"#).is_err());
        assert!(parse(br#"{"a": {"value": 1, "expire_at": NaN}}"#).is_err());
    }

    #[test]
    fn records_of_other_codecs_keep_their_codec_id() {
        let stored = StoredValue::from_record(b"1".to_vec(), Some(CodecId::MSGPACK));
        let mut doc = BTreeMap::new();
        doc.insert("k".to_owned(), entry(stored.clone(), None));
        let text = write(&doc);
        assert!(
            String::from_utf8_lossy(&text).contains(r#"{"$bytes": "MQ==", "$codec": 4}"#),
            "{}",
            String::from_utf8_lossy(&text)
        );
        let back = parse(&text).unwrap();
        assert_eq!(back["k"].value, stored);
        assert_eq!(back["k"].value.codec(), Some(CodecId::MSGPACK));
        assert_eq!(back["k"].value.to_bytes(), b"1");
        // JSON is the file's own codec: stated or not, a JSON value is stored as itself.
        assert_eq!(
            StoredValue::from_record(b"1".to_vec(), Some(CodecId::JSON)),
            StoredValue::Json("1".into())
        );
        // JSON text in the shape of a coded tag is escaped, and reads back as JSON text.
        for v in [
            &br#"{"$bytes": "MQ==", "$codec": 4}"#[..],
            br#"{"$codec": 4, "$bytes": ""}"#,
        ] {
            assert!(matches!(round_trip(v), StoredValue::Escaped(_)), "{v:?}");
        }
        // Other objects with these keys are ordinary values.
        for v in [&br#"{"$codec": 4}"#[..], br#"{"$bytes": "", "$json": 1}"#] {
            assert!(matches!(round_trip(v), StoredValue::Json(_)), "{v:?}");
        }
        for bad in [
            &br#"{"k": {"value": {"$bytes": "MQ==", "$codec": 0}, "expire_at": null}}"#[..],
            br#"{"k": {"value": {"$bytes": "MQ==", "$codec": "msgpack"}, "expire_at": null}}"#,
            br#"{"k": {"value": {"$bytes": "MQ=", "$codec": 4}, "expire_at": null}}"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn bad_documents_name_the_position() {
        let cases: [(&[u8], &str); 10] = [
            (b"{\"a\": ", "EOF"),
            (b"[1, 2]", "expected a JSON object"),
            (b"\"text\"", "expected a JSON object"),
            (b"{\"a\": {\"value\": 1}}", "missing field `expire_at`"),
            (b"{\"a\": {\"expire_at\": null}}", "missing field `value`"),
            (b"{\"a\": 5}", "invalid type"),
            (
                b"{\"a\": {\"value\": 1, \"expire_at\": \"soon\"}}",
                "expire_at",
            ),
            (
                b"{\"a\": {\"value\": 1, \"expire_at\": null, \"x\": 0}}",
                "unknown field",
            ),
            (
                b"{\"a\": {\"value\": {\"$bytes\": \"!!\"}, \"expire_at\": null}}",
                "base64",
            ),
            (b"{} {}", "trailing characters"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err();
            assert!(
                e.detail.contains(want),
                "{}: {e:?}",
                String::from_utf8_lossy(text)
            );
            assert!(e.line >= 1, "{e:?}");
            assert!(!e.detail.contains(" at line "), "{e:?}");
        }
        let e = parse(b"{\n  \"a\": {\"value\": 1, \"expire_at\": nul}\n}").unwrap_err();
        assert_eq!(e.line, 2, "{e:?}");
        assert!(parse(b"").unwrap().is_empty());
        assert!(parse(b"{}").unwrap().is_empty());
        assert!(parse(b"  {}\n").unwrap().is_empty());
    }

    #[test]
    fn the_written_document_is_valid_json_in_the_python_shape() {
        let mut doc = BTreeMap::new();
        doc.insert(
            "a".to_owned(),
            entry(
                StoredValue::Json("[1,2]".into()),
                Some(Timestamp::from_unix_millis(1_500)),
            ),
        );
        doc.insert(
            "b".to_owned(),
            entry(StoredValue::Bytes(vec![0, 1].into()), None),
        );
        let text = write(&doc);
        assert_eq!(
            String::from_utf8(text.clone()).unwrap(),
            "{\n  \"a\": {\"value\": [1,2], \"expire_at\": 1.5},\n  \"b\": {\"value\": {\"$bytes\": \"AAE=\"}, \"expire_at\": null}\n}\n"
        );
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v["a"]["value"], serde_json::json!([1, 2]));
        assert_eq!(write(&BTreeMap::<String, Entry>::new()), b"{}\n");
    }
}
