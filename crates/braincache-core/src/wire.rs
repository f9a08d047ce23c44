//! The record header: the bytes a byte-oriented backend stores in front of each value.
//!
//! A backend that keeps records as byte strings (the redb and Redis backends do) writes
//! [`encode`]'s output and reads it back with [`decode`], so every such backend frames records the
//! same way and a new field is added once, here. Version 2 (this module's [`VERSION`]):
//!
//! ```text
//! byte 0     version, 2 (0 and 1 are taken by the headers the redb and Redis backends wrote
//!            before this one; each backend reads its own old records)
//! byte 1     codec id (`CodecId`), 0 when the record states none
//! byte 2     flags: bit 0 set = a deadline follows; bits 1 to 7 are reserved for optional
//!            fields of later versions (when the value was computed, how long that took)
//! byte 3     header length in bytes, from byte 0 to the value: 4, plus 8 with a deadline, plus
//!            whatever later optional fields take
//! bytes 4..  the optional fields, in the order of their flag bits; the deadline is nanoseconds
//!            since the Unix epoch, u64 little-endian
//! then       the value bytes, as the codec wrote them (may be empty)
//! ```
//!
//! Every integer is little-endian. A reader skips optional fields it does not know (their flag
//! bits are set and the header length covers them), so adding one is not an incompatible change;
//! a record needs a new version only when a field it does not know would be misread.
//!
//! Bytes that are not such a header are `Err` with a description, never a panic:
//!
//! ```
//! use braincache_core::{CodecId, Record, Timestamp, wire};
//!
//! let r = Record::new(b"v".to_vec(), Some(Timestamp::from_unix_nanos(7)))
//!     .with_codec(Some(CodecId::MSGPACK));
//! let bytes = wire::encode(&r);
//! assert_eq!(&bytes[..4], [wire::VERSION, 4, 1, 12]);
//! assert_eq!(wire::decode("k", &bytes).unwrap(), r);
//! assert!(wire::decode("k", b"\x02\x04").unwrap_err().is_corrupt());
//! ```

use crate::{CodecId, Error, Record, Result, Timestamp};

/// The header version this build writes and reads.
pub const VERSION: u8 = 2;

/// Flag bit: an 8-byte deadline follows.
const FLAG_DEADLINE: u8 = 1;
/// The fixed part: version, codec, flags, length.
const FIXED_LEN: usize = 4;
/// The longest header this build writes.
pub const MAX_LEN: usize = FIXED_LEN + 8;

/// An encoded header, ready to be written in front of the value.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    bytes: [u8; MAX_LEN],
    len: usize,
}

impl Header {
    /// The header of a record with this deadline and codec.
    #[must_use]
    pub fn new(expires_at: Option<Timestamp>, codec: Option<CodecId>) -> Header {
        let mut bytes = [0u8; MAX_LEN];
        bytes[0] = VERSION;
        bytes[1] = codec.map_or(0, CodecId::get);
        let len = match expires_at {
            None => FIXED_LEN,
            Some(d) => {
                bytes[2] = FLAG_DEADLINE;
                bytes[FIXED_LEN..].copy_from_slice(&d.as_unix_nanos().to_le_bytes());
                MAX_LEN
            }
        };
        bytes[3] = len as u8; // at most MAX_LEN (12)
        Header { bytes, len }
    }

    /// The header of `record`.
    #[must_use]
    pub fn of(record: &Record) -> Header {
        Header::new(record.expires_at, record.codec)
    }

    /// The header's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The header fields read from stored bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Parsed {
    /// The deadline, if any.
    pub expires_at: Option<Timestamp>,
    /// The codec, if stated.
    pub codec: Option<CodecId>,
    /// How many bytes the header takes: the value starts there.
    pub len: usize,
}

/// `record` as stored: its header, then its value.
#[must_use]
pub fn encode(record: &Record) -> Vec<u8> {
    let header = Header::of(record);
    let mut out = Vec::with_capacity(header.len + record.value.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&record.value);
    out
}

/// Reads the header at the start of `bytes`.
///
/// # Errors
/// A description of what is wrong when `bytes` do not start with a version-2 header.
pub fn parse(bytes: &[u8]) -> std::result::Result<Parsed, String> {
    let Some(&[version, codec, flags, len]) = bytes.first_chunk::<FIXED_LEN>() else {
        return Err(format!(
            "record header cut short: {} bytes, a header has at least {FIXED_LEN}",
            bytes.len()
        ));
    };
    if version != VERSION {
        return Err(format!(
            "unknown record header version {version} (this build reads version {VERSION}): not \
             written by braincache, or by a newer version"
        ));
    }
    let len = usize::from(len);
    let known = FIXED_LEN + if flags & FLAG_DEADLINE != 0 { 8 } else { 0 };
    if len < known || (flags & !FLAG_DEADLINE == 0 && len != known) {
        return Err(format!(
            "record header length {len} does not match its flags {flags:#04x}"
        ));
    }
    if bytes.len() < len {
        return Err(format!(
            "record header cut short: {} bytes of {len}",
            bytes.len()
        ));
    }
    let expires_at = (flags & FLAG_DEADLINE != 0).then(|| {
        let mut nanos = [0u8; 8];
        nanos.copy_from_slice(&bytes[FIXED_LEN..FIXED_LEN + 8]);
        Timestamp::from_unix_nanos(u64::from_le_bytes(nanos))
    });
    Ok(Parsed {
        expires_at,
        codec: CodecId::new(codec),
        len,
    })
}

/// Decodes the stored bytes of `key` into a [`Record`].
///
/// # Errors
/// [`Error::Corrupt`] naming `key` when the bytes do not start with a valid header.
pub fn decode(key: &str, bytes: &[u8]) -> Result<Record> {
    let p = parse(bytes).map_err(|d| Error::corrupt_entry(key, d))?;
    Ok(Record::new(bytes[p.len..].to_vec(), p.expires_at).with_codec(p.codec))
}

/// Decodes the stored bytes of `key` into a [`Record`], reusing their buffer for the value.
///
/// # Errors
/// As [`decode`].
pub fn decode_vec(key: &str, mut bytes: Vec<u8>) -> Result<Record> {
    let p = parse(&bytes).map_err(|d| Error::corrupt_entry(key, d))?;
    bytes.drain(..p.len);
    Ok(Record::new(bytes, p.expires_at).with_codec(p.codec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_exactly() {
        for expires_at in [
            None,
            Some(Timestamp::EPOCH),
            Some(Timestamp::from_unix_nanos(1_700_000_000_123_456_789)),
            Some(Timestamp::MAX),
        ] {
            for codec in [None, Some(CodecId::POSTCARD), CodecId::new(255)] {
                for value in [&b""[..], b"\0", b"hello", &[0xff; 300]] {
                    let r = Record::new(value.to_vec(), expires_at).with_codec(codec);
                    let bytes = encode(&r);
                    assert_eq!(decode("k", &bytes).unwrap(), r);
                    assert_eq!(decode_vec("k", bytes).unwrap(), r);
                }
            }
        }
    }

    #[test]
    fn the_layout_is_fixed() {
        let r = Record::new(vec![0xaa], Some(Timestamp::from_unix_nanos(0x0102)))
            .with_codec(Some(CodecId::JSON));
        assert_eq!(
            encode(&r),
            [2, 2, 1, 12, 0x02, 0x01, 0, 0, 0, 0, 0, 0, 0xaa]
        );
        assert_eq!(encode(&Record::new(vec![], None)), [2, 0, 0, 4]);
    }

    #[test]
    fn unknown_optional_fields_are_skipped() {
        // A later version's record: deadline, then an 8-byte field of flag bit 1.
        let mut bytes = vec![2, 4, 0b11, 20];
        bytes.extend_from_slice(&9u64.to_le_bytes());
        bytes.extend_from_slice(&[7; 8]);
        bytes.extend_from_slice(b"v");
        let r = decode("k", &bytes).unwrap();
        assert_eq!(r.value, b"v");
        assert_eq!(r.expires_at, Some(Timestamp::from_unix_nanos(9)));
        assert_eq!(r.codec, Some(CodecId::MSGPACK));
    }

    #[test]
    fn malformed_headers_are_corrupt_not_panics() {
        let cases: [&[u8]; 8] = [
            b"",
            b"\x02",
            b"\x02\x04\x00",
            b"\x01\x04\x00\x04",
            b"\x03\x04\x00\x04",
            b"\x02\x04\x01\x04abc",
            b"\x02\x04\x01\x0c\x00\x00",
            b"\x02\x04\x00\x0cabc",
        ];
        for bytes in cases {
            let e = decode("the-key", bytes).unwrap_err();
            assert!(e.is_corrupt(), "{bytes:?}: {e}");
            assert_eq!(e.key(), Some("the-key"));
        }
    }
}
