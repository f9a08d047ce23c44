//! The bytes stored in memcached for one record.
//!
//! Memcached keeps the bytes and a whole-second expiry; `Backend::get` must return the record
//! exactly as it was set, deadline and codec included, and a key stored under its digest must
//! carry the full key so a digest collision reads as a miss. So each value is stored as:
//!
//! ```text
//! byte 0      this frame's version, 2
//! byte 1      flags: bit 1 = the full key follows; other bits 0
//! 4 + n bytes the full key's length (u32 big-endian) and its UTF-8 bytes (bit 1 only)
//! then        the record as `braincache_core::wire` frames it for every byte-oriented
//!             backend: its versioned header (deadline, codec id) and the value bytes
//! ```
//!
//! [`encode`] and [`decode`] are the only two functions that know this layout.

use braincache_core::{Error, Record, Result, wire};

const VERSION: u8 = 2;
const HAS_KEY: u8 = 2;

/// The stored bytes for `record`, with `full_key` kept inside when given.
pub(crate) fn encode(full_key: Option<&str>, record: &Record) -> Vec<u8> {
    let key_len = full_key.map_or(0, |k| 4 + k.len());
    let framed = wire::encode(record);
    let mut out = Vec::with_capacity(2 + key_len + framed.len());
    let flags = if full_key.is_some() { HAS_KEY } else { 0 };
    out.extend_from_slice(&[VERSION, flags]);
    if let Some(k) = full_key {
        // Keys longer than 4 GiB cannot reach here: memcached values are far smaller.
        let len = u32::try_from(k.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(k.as_bytes());
    }
    out.extend_from_slice(&framed);
    out
}

/// Splits stored bytes into the full key kept inside (if any) and the record.
///
/// # Errors
/// [`Error::Corrupt`] naming `key` when the bytes are not in the format above.
pub(crate) fn decode(key: &str, mut stored: Vec<u8>) -> Result<(Option<String>, Record)> {
    let corrupt = |detail: String| Error::corrupt_entry(key, detail);
    let (Some(&version), Some(&flags)) = (stored.first(), stored.get(1)) else {
        return Err(corrupt(format!(
            "{} bytes: too short for a braincache header",
            stored.len()
        )));
    };
    if version != VERSION {
        return Err(corrupt(format!(
            "unknown frame version {version} (this build reads version {VERSION}): not written \
             by braincache, or by another version"
        )));
    }
    if flags & !HAS_KEY != 0 {
        return Err(corrupt(format!("unknown frame flags {flags:#04x}")));
    }
    let mut pos = 2;
    let full_key = if flags & HAS_KEY != 0 {
        let cut = |what: &str, end: usize| {
            corrupt(format!(
                "frame cut short: {} bytes, {what} needs {end}",
                stored.len()
            ))
        };
        let len = stored.get(2..6).ok_or_else(|| cut("the key length", 6))?;
        let mut b = [0u8; 4];
        b.copy_from_slice(len);
        let n = usize::try_from(u32::from_be_bytes(b)).unwrap_or(usize::MAX);
        let end = 6usize.saturating_add(n);
        let k = stored.get(6..end).ok_or_else(|| cut("the key", end))?;
        let k = std::str::from_utf8(k)
            .map_err(|e| corrupt(format!("the stored key is not UTF-8: {e}")))?;
        pos = end;
        Some(k.to_owned())
    } else {
        None
    };
    stored.drain(..pos);
    Ok((full_key, wire::decode_vec(key, stored)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use braincache_core::Timestamp;

    #[test]
    fn round_trips_key_value_and_deadline() {
        for deadline in [None, Some(Timestamp::EPOCH), Some(Timestamp::MAX)] {
            for key in [None, Some(""), Some("ключ with spaces")] {
                for value in [&b""[..], b"\0", &[0xff; 300]] {
                    let r = Record::new(value.to_vec(), deadline)
                        .with_codec(Some(braincache_core::CodecId::MSGPACK));
                    let (k, back) = decode("k", encode(key, &r)).unwrap();
                    assert_eq!(back, r);
                    assert_eq!(k.as_deref(), key);
                }
            }
        }
    }

    #[test]
    fn malformed_frames_are_corrupt_not_panics() {
        let cases: [&[u8]; 7] = [
            b"",
            b"\x01",
            b"\x02\x00",
            b"\x01\x04",
            b"\x01\x01\x00",
            b"\x01\x02\x00\x00\x00\x09abc",
            b"\x01\x02\x00\x00\x00\x01\xff",
        ];
        for bytes in cases {
            let e = decode("the-key", bytes.to_vec()).unwrap_err();
            assert!(e.is_corrupt(), "{bytes:?}: {e}");
            assert_eq!(e.key(), Some("the-key"));
        }
    }
}
