//! Text the command prints: times, durations, hex, and the export document.

use braincache_core::{CodecId, Record, Timestamp};
use braincache_file::FileBackend;
use serde_json::value::RawValue;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

/// A UTC time in RFC 3339 form, to the millisecond when it has a fraction:
/// `2026-11-25T10:00:00Z`, `2026-11-25T10:00:00.250Z`.
pub(crate) fn rfc3339(t: Timestamp) -> String {
    let nanos = t.as_unix_nanos();
    let secs = nanos / 1_000_000_000;
    let millis = (nanos % 1_000_000_000) / 1_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    if millis != 0 {
        let _ = write!(s, ".{millis:03}");
    }
    s.push('Z');
    s
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// A duration for people, to its two largest units: `250ms`, `12s`, `4m 10s`, `1h 5m`, `3d 4h`.
pub(crate) fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.subsec_millis());
    }
    let units = [
        (secs / 86_400, "d"),
        (secs / 3600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
    ];
    let first = units.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    let mut s = format!("{}{}", units[first].0, units[first].1);
    if let Some((n, u)) = units.get(first + 1)
        && *n > 0
    {
        let _ = write!(s, " {n}{u}");
    }
    s
}

/// How long an entry has left: `never`, `4m 10s`, or `expired 3s ago`.
pub(crate) fn ttl_left(deadline: Option<Timestamp>, now: Timestamp) -> String {
    match deadline {
        None => "never".to_owned(),
        Some(d) if d <= now => format!("expired {} ago", human(now.saturating_duration_since(d))),
        Some(d) => human(d.saturating_duration_since(now)),
    }
}

/// A deadline with its distance from now: `2026-11-25T10:00:00Z (in 5m 3s)`.
pub(crate) fn deadline(d: Timestamp, now: Timestamp) -> String {
    if d <= now {
        format!(
            "{} ({} ago)",
            rfc3339(d),
            human(now.saturating_duration_since(d))
        )
    } else {
        format!(
            "{} (in {})",
            rfc3339(d),
            human(d.saturating_duration_since(now))
        )
    }
}

/// Lower-case hex, two digits per byte, nothing between.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A key as `inspect --keys` lists it: as it is, or quoted and escaped when it holds control
/// characters (a newline in a key would otherwise start a new row) or is empty.
pub(crate) fn display_key(key: &str) -> String {
    if key.is_empty() || key.chars().any(char::is_control) {
        format!("{key:?}")
    } else {
        key.to_owned()
    }
}

/// True when `bytes` are exactly one JSON text with nothing around it.
pub(crate) fn is_exact_json(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|text| {
        serde_json::from_str::<&RawValue>(text).is_ok_and(|raw| raw.get().len() == text.len())
    })
}

/// How a value's bytes are written into the export document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueForm {
    /// Keep JSON text as it is, with the file backend's rules for everything else: a JSON text
    /// that would read back as a tag goes in `{"$json": ...}`, anything that is not exactly one
    /// JSON text in `{"$bytes": "<base64>"}`. For the file backend's values.
    JsonWhenPossible,
    /// Always `{"$bytes": "<base64>", "$codec": <id>}`: for redb's values that are not JSON
    /// (another codec than MessagePack, or what JSON cannot hold), so bytes that happen to be
    /// JSON text are not exported as a JSON value, and read back with their codec id.
    Coded(CodecId),
}

/// The export document: the file backend's format (see `braincache-file`'s `FORMAT.md`), laid
/// out as the file backend writes it, one entry per line in the order given.
pub(crate) struct Document<W: Write> {
    out: W,
    entries: usize,
}

impl<W: Write> Document<W> {
    /// Starts a document.
    pub(crate) fn start(mut out: W) -> io::Result<Document<W>> {
        out.write_all(b"{")?;
        Ok(Document { out, entries: 0 })
    }

    /// Writes one entry.
    pub(crate) fn entry(
        &mut self,
        key: &str,
        expires_at: Option<Timestamp>,
        value: &[u8],
        form: ValueForm,
    ) -> io::Result<()> {
        let out = &mut self.out;
        out.write_all(if self.entries == 0 { b"\n  " } else { b",\n  " })?;
        serde_json::to_writer(&mut *out, key)?;
        out.write_all(b": {\"value\": ")?;
        match form {
            ValueForm::JsonWhenPossible => {
                out.write_all(FileBackend::value_json(value).as_bytes())?
            }
            // The tagged form the file backend reads back as these bytes (see `FORMAT.md`).
            ValueForm::Coded(codec) => out.write_all(
                FileBackend::record_json(
                    &Record::new(value.to_vec(), None).with_codec(Some(codec)),
                )
                .as_bytes(),
            )?,
        }
        out.write_all(b", \"expire_at\": ")?;
        match expires_at {
            None => out.write_all(b"null")?,
            Some(t) => out.write_all(expire_at(t).as_bytes())?,
        }
        out.write_all(b"}")?;
        self.entries += 1;
        Ok(())
    }

    /// Ends the document; returns the writer and the number of entries written.
    pub(crate) fn finish(mut self) -> io::Result<(W, usize)> {
        if self.entries > 0 {
            self.out.write_all(b"\n")?;
        }
        self.out.write_all(b"}\n")?;
        self.out.flush()?;
        Ok((self.out, self.entries))
    }
}

/// `expire_at` as the file backend writes it: an exact decimal of Unix seconds, nanoseconds with
/// trailing zeros dropped (`1700000000.5`, `1700000000.0`). Python reads it as a float.
pub(crate) fn expire_at(t: Timestamp) -> String {
    let nanos = t.as_unix_nanos();
    let mut digits = format!("{:09}", nanos % 1_000_000_000);
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    format!("{}.{digits}", nanos / 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339_utc() {
        assert_eq!(rfc3339(Timestamp::EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(Timestamp::from_unix_millis(1_767_225_600_250)),
            "2026-01-01T00:00:00.250Z"
        );
        // A leap day, and the end of a leap year.
        assert_eq!(
            rfc3339(Timestamp::from_unix_millis(951_782_400_000)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(Timestamp::from_unix_millis(1_735_689_599_999)),
            "2024-12-31T23:59:59.999Z"
        );
        assert_eq!(rfc3339(Timestamp::MAX), "2554-07-21T23:34:33.709Z");
    }

    #[test]
    fn durations_print_with_two_units_at_most() {
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_secs(12)), "12s");
        assert_eq!(human(Duration::from_secs(250)), "4m 10s");
        assert_eq!(human(Duration::from_secs(3600 + 5 * 60 + 7)), "1h 5m");
        assert_eq!(human(Duration::from_secs(3600)), "1h");
        assert_eq!(human(Duration::from_secs(3 * 86_400 + 4 * 3600)), "3d 4h");
        let now = Timestamp::from_unix_millis(10_000);
        assert_eq!(ttl_left(None, now), "never");
        assert_eq!(
            ttl_left(Some(Timestamp::from_unix_millis(7_000)), now),
            "expired 3s ago"
        );
        assert_eq!(ttl_left(Some(now), now), "expired 0ms ago");
        assert_eq!(
            ttl_left(Some(Timestamp::from_unix_millis(70_000)), now),
            "1m"
        );
    }

    #[test]
    fn hex_matches_known_vectors() {
        assert_eq!(hex(&[0, 1, 0xab, 0xff]), "0001abff");
    }

    #[test]
    fn export_values_follow_the_file_backends_rules() {
        let doc = |value: &[u8], form| {
            let mut d = Document::start(Vec::new()).unwrap();
            d.entry("k", None, value, form).unwrap();
            let (out, n) = d.finish().unwrap();
            assert_eq!(n, 1);
            let text = String::from_utf8(out).unwrap();
            text.strip_prefix("{\n  \"k\": {\"value\": ")
                .and_then(|s| s.strip_suffix(", \"expire_at\": null}\n}\n"))
                .unwrap()
                .to_owned()
        };
        use ValueForm::*;
        assert_eq!(doc(b"42", JsonWhenPossible), "42");
        assert_eq!(doc(br#"{"a":1}"#, JsonWhenPossible), r#"{"a":1}"#);
        assert_eq!(doc(b" 42", JsonWhenPossible), r#"{"$bytes": "IDQy"}"#);
        assert_eq!(doc(b"", JsonWhenPossible), r#"{"$bytes": ""}"#);
        assert_eq!(doc(&[0xff], JsonWhenPossible), r#"{"$bytes": "/w=="}"#);
        assert_eq!(
            doc(br#"{"$bytes":"x"}"#, JsonWhenPossible),
            r#"{"$json": {"$bytes":"x"}}"#
        );
        assert_eq!(
            doc(br#"{"$json":1,"$json":2}"#, JsonWhenPossible),
            r#"{"$json":1,"$json":2}"#
        );
        let postcard = Coded(CodecId::POSTCARD);
        assert_eq!(doc(b"42", postcard), r#"{"$bytes": "NDI=", "$codec": 1}"#);
        assert_eq!(doc(b"", postcard), r#"{"$bytes": "", "$codec": 1}"#);
        assert_eq!(
            doc(&[0, 1, 2, 255], postcard),
            r#"{"$bytes": "AAEC/w==", "$codec": 1}"#
        );
    }

    #[test]
    fn documents_are_laid_out_like_the_file_backends() {
        let d = Document::start(Vec::new()).unwrap();
        assert_eq!(d.finish().unwrap().0, b"{}\n");
        let mut d = Document::start(Vec::new()).unwrap();
        d.entry(
            "a\n\"",
            Some(Timestamp::from_unix_millis(1_500)),
            b"1",
            ValueForm::JsonWhenPossible,
        )
        .unwrap();
        d.entry(
            "b",
            Some(Timestamp::from_unix_nanos(2_000_000_000)),
            b"2",
            ValueForm::JsonWhenPossible,
        )
        .unwrap();
        let text = String::from_utf8(d.finish().unwrap().0).unwrap();
        assert_eq!(
            text,
            "{\n  \"a\\n\\\"\": {\"value\": 1, \"expire_at\": 1.5},\n  \"b\": {\"value\": 2, \
             \"expire_at\": 2.0}\n}\n"
        );
        assert_eq!(display_key("a b"), "a b");
        assert_eq!(display_key("a\nb"), "\"a\\nb\"");
        assert_eq!(display_key(""), "\"\"");
    }
}
