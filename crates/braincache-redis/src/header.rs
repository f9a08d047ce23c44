//! The bytes in front of each stored value that carry its codec and deadline.
//!
//! Redis keeps the TTL itself, but `Backend::get` must return the record exactly as it was set,
//! deadline and codec included, and `PTTL` only has millisecond precision. So each value is
//! stored framed by [`braincache_core::wire`] (header version 2: codec id, deadline, then the
//! value bytes).
//!
//! Values written before the codec id was stored (braincache 0.1, header version 1) still read,
//! as written with the postcard codec:
//!
//! ```text
//! byte 0      format version, 1
//! byte 1      0 = no deadline, 1 = a deadline follows
//! bytes 2..10 the deadline, nanoseconds since the Unix epoch, u64 big-endian (flag 1 only)
//! then        the value bytes
//! ```
//!
//! Anything else under the prefix is [`Error::Corrupt`], never a panic.

use braincache_core::{CodecId, Error, Record, Result, Timestamp, wire};

pub(crate) use braincache_core::wire::Header;

/// The version of the header braincache 0.1 wrote.
const LEGACY_VERSION: u8 = 1;
const LEGACY_NO_DEADLINE: u8 = 0;
const LEGACY_DEADLINE: u8 = 1;
const LEGACY_MAX_LEN: usize = 10;

/// Splits stored bytes into a [`Record`].
///
/// # Errors
/// [`Error::Corrupt`] naming `key` when the bytes do not start with a valid header.
pub(crate) fn decode(key: &str, stored: Vec<u8>) -> Result<Record> {
    match stored.first() {
        Some(&LEGACY_VERSION) => decode_legacy(key, stored),
        _ => wire::decode_vec(key, stored),
    }
}

/// Reads a version-1 value (braincache 0.1): postcard, no codec id.
fn decode_legacy(key: &str, mut stored: Vec<u8>) -> Result<Record> {
    let corrupt = |detail: String| Error::corrupt_entry(key, detail);
    let (deadline, header_len) = match stored.get(1) {
        Some(&LEGACY_NO_DEADLINE) => (None, 2),
        Some(&LEGACY_DEADLINE) => {
            let nanos: [u8; 8] = stored
                .get(2..LEGACY_MAX_LEN)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| {
                    corrupt(format!(
                        "header cut short: {} bytes, a deadline needs {LEGACY_MAX_LEN}",
                        stored.len()
                    ))
                })?;
            (
                Some(Timestamp::from_unix_nanos(u64::from_be_bytes(nanos))),
                LEGACY_MAX_LEN,
            )
        }
        Some(&flag) => {
            return Err(corrupt(format!(
                "unknown deadline flag {flag} in the header"
            )));
        }
        None => return Err(corrupt("header cut short: 1 byte".into())),
    };
    stored.drain(..header_len);
    Ok(Record::new(stored, deadline).with_codec(Some(CodecId::POSTCARD)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(record: &Record) -> Vec<u8> {
        let mut v = Header::of(record).as_bytes().to_vec();
        v.extend_from_slice(&record.value);
        v
    }

    #[test]
    fn round_trips_value_deadline_and_codec_exactly() {
        for deadline in [
            None,
            Some(Timestamp::EPOCH),
            Some(Timestamp::from_unix_nanos(1_700_000_000_123_456_789)),
            Some(Timestamp::MAX),
        ] {
            for value in [&b""[..], b"\0", b"hello", &[0xff; 300]] {
                for codec in [None, Some(CodecId::MSGPACK)] {
                    let r = Record::new(value.to_vec(), deadline).with_codec(codec);
                    assert_eq!(decode("k", stored(&r)).unwrap(), r);
                }
            }
        }
    }

    #[test]
    fn version_1_values_read_as_postcard() {
        let mut v = vec![1, 1];
        v.extend_from_slice(&7u64.to_be_bytes());
        v.extend_from_slice(b"old");
        assert_eq!(
            decode("k", v).unwrap(),
            Record::new(b"old".to_vec(), Some(Timestamp::from_unix_nanos(7)))
                .with_codec(Some(CodecId::POSTCARD))
        );
        assert_eq!(
            decode("k", b"\x01\x00x".to_vec()).unwrap(),
            Record::new(b"x".to_vec(), None).with_codec(Some(CodecId::POSTCARD))
        );
    }

    #[test]
    fn malformed_headers_are_corrupt_not_panics() {
        let cases: [&[u8]; 7] = [
            b"",
            b"\x01",
            b"\x03\x00abc",
            b"\x01\x07abc",
            b"\x01\x01\x00\x00",
            b"\x02\x04\x01\x04",
            b"plain text",
        ];
        for bytes in cases {
            let e = decode("the-key", bytes.to_vec()).unwrap_err();
            assert!(e.is_corrupt(), "{bytes:?}: {e}");
            assert_eq!(e.key(), Some("the-key"));
        }
    }
}
