//! The bytes in front of each stored value that carry its deadline.
//!
//! Redis keeps the TTL itself, but `Backend::get` must return the record exactly as it was set,
//! deadline included, and `PTTL` only has millisecond precision. So each value is stored as:
//!
//! ```text
//! byte 0      format version, 1
//! byte 1      0 = no deadline, 1 = a deadline follows
//! bytes 2..10 the deadline, nanoseconds since the Unix epoch, u64 big-endian (flag 1 only)
//! then        the value bytes, as the codec wrote them (may be empty)
//! ```
//!
//! Anything else under the prefix is [`Error::Corrupt`], never a panic.

use braincache_core::{Error, Record, Result, Timestamp};

/// The format version this crate writes and reads.
pub(crate) const VERSION: u8 = 1;
const NO_DEADLINE: u8 = 0;
const DEADLINE: u8 = 1;
const MAX_LEN: usize = 10;

/// An encoded header, ready to be written in front of the value.
pub(crate) struct Header {
    bytes: [u8; MAX_LEN],
    len: usize,
}

impl Header {
    pub(crate) fn new(deadline: Option<Timestamp>) -> Header {
        let mut bytes = [0u8; MAX_LEN];
        bytes[0] = VERSION;
        match deadline {
            None => {
                bytes[1] = NO_DEADLINE;
                Header { bytes, len: 2 }
            }
            Some(d) => {
                bytes[1] = DEADLINE;
                bytes[2..].copy_from_slice(&d.as_unix_nanos().to_be_bytes());
                Header {
                    bytes,
                    len: MAX_LEN,
                }
            }
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Splits stored bytes into a [`Record`].
///
/// # Errors
/// [`Error::Corrupt`] naming `key` when the bytes do not start with a valid header.
pub(crate) fn decode(key: &str, mut stored: Vec<u8>) -> Result<Record> {
    let corrupt = |detail: String| Error::corrupt_entry(key, detail);
    let (&version, rest) = stored
        .split_first()
        .ok_or_else(|| corrupt("empty value: no braincache header".into()))?;
    if version != VERSION {
        return Err(corrupt(format!(
            "unknown header version {version} (this build reads version {VERSION}): \
             not written by braincache, or by a newer version"
        )));
    }
    let (deadline, header_len) = match rest.first() {
        Some(&NO_DEADLINE) => (None, 2),
        Some(&DEADLINE) => {
            let nanos: [u8; 8] =
                rest.get(1..9)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| {
                        corrupt(format!(
                            "header cut short: {} bytes, a deadline needs {MAX_LEN}",
                            stored.len()
                        ))
                    })?;
            (
                Some(Timestamp::from_unix_nanos(u64::from_be_bytes(nanos))),
                MAX_LEN,
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
    Ok(Record::new(stored, deadline))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(deadline: Option<Timestamp>, value: &[u8]) -> Vec<u8> {
        let mut v = Header::new(deadline).as_bytes().to_vec();
        v.extend_from_slice(value);
        v
    }

    #[test]
    fn round_trips_value_and_deadline_exactly() {
        for deadline in [
            None,
            Some(Timestamp::EPOCH),
            Some(Timestamp::from_unix_nanos(1_700_000_000_123_456_789)),
            Some(Timestamp::MAX),
        ] {
            for value in [&b""[..], b"\0", b"hello", &[0xff; 300]] {
                let r = decode("k", stored(deadline, value)).unwrap();
                assert_eq!(r, Record::new(value.to_vec(), deadline));
            }
        }
    }

    #[test]
    fn malformed_headers_are_corrupt_not_panics() {
        let cases: [&[u8]; 6] = [
            b"",
            b"\x01",
            b"\x02\x00abc",
            b"\x01\x07abc",
            b"\x01\x01\x00\x00",
            b"plain text",
        ];
        for bytes in cases {
            let e = decode("the-key", bytes.to_vec()).unwrap_err();
            assert!(e.is_corrupt(), "{bytes:?}: {e}");
            assert_eq!(e.key(), Some("the-key"));
        }
    }
}
