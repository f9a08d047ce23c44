//! Standard base64 (RFC 4648 §4, with `=` padding) for values that are not JSON text.
//!
//! Forty lines here instead of a dependency: the file backend needs exactly one alphabet, one
//! padding rule and strict decoding, and this keeps the crate's dependency set to the
//! workspace's.

use std::fmt;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends the base64 encoding of `bytes` to `out`.
pub(crate) fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len().div_ceil(3) * 4);
    let sextet = |n: u32, shift: u32| ALPHABET[((n >> shift) & 63) as usize];
    let mut chunks = bytes.chunks_exact(3);
    for c in &mut chunks {
        let n = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
        out.extend_from_slice(&[sextet(n, 18), sextet(n, 12), sextet(n, 6), sextet(n, 0)]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[sextet(n, 18), sextet(n, 12), b'=', b'=']);
        }
        [a, b] => {
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            out.extend_from_slice(&[sextet(n, 18), sextet(n, 12), sextet(n, 6), b'=']);
        }
        _ => {}
    }
}

/// Why a string is not canonical base64.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The length is not a multiple of 4.
    Length(usize),
    /// A character outside the alphabet, or padding in the wrong place, at this offset.
    Symbol(usize),
    /// The unused bits of the last group are not zero (not the canonical encoding).
    TrailingBits,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Length(n) => write!(f, "length {n} is not a multiple of 4"),
            DecodeError::Symbol(i) => write!(f, "invalid character at offset {i}"),
            DecodeError::TrailingBits => f.write_str("non-zero trailing bits"),
        }
    }
}

/// Decodes canonical, padded base64; anything else is an error (so each byte string has exactly
/// one spelling in the file).
pub(crate) fn decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    let s = text.as_bytes();
    if !s.len().is_multiple_of(4) {
        return Err(DecodeError::Length(s.len()));
    }
    let value = |i: usize| -> Result<u32, DecodeError> {
        match s[i] {
            b'A'..=b'Z' => Ok(u32::from(s[i] - b'A')),
            b'a'..=b'z' => Ok(u32::from(s[i] - b'a') + 26),
            b'0'..=b'9' => Ok(u32::from(s[i] - b'0') + 52),
            b'+' => Ok(62),
            b'/' => Ok(63),
            _ => Err(DecodeError::Symbol(i)),
        }
    };
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for start in (0..s.len()).step_by(4) {
        let last = start + 4 == s.len();
        let pad = if last {
            s[start + 2..]
                .iter()
                .rev()
                .take_while(|&&b| b == b'=')
                .count()
        } else {
            0
        };
        let mut n = 0u32;
        for i in start..start + 4 - pad {
            n = n << 6 | value(i)?;
        }
        n <<= 6 * pad as u32;
        #[allow(clippy::cast_possible_truncation)] // masked to a byte
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        match pad {
            0 => out.extend_from_slice(&bytes),
            1 if n & 0xff == 0 => out.extend_from_slice(&bytes[..2]),
            2 if n & 0xffff == 0 => out.push(bytes[0]),
            _ => return Err(DecodeError::TrailingBits),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        encode_into(bytes, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in vectors {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn every_length_and_byte_round_trips() {
        let all: Vec<u8> = (0..=255u8).rev().chain(0..=255).collect();
        for len in 0..all.len() {
            let bytes = &all[..len];
            assert_eq!(decode(&encode(bytes)).unwrap(), bytes, "length {len}");
        }
        assert_eq!(encode(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn non_canonical_input_is_refused() {
        assert_eq!(decode("Zg="), Err(DecodeError::Length(3)));
        assert_eq!(decode("Zh=="), Err(DecodeError::TrailingBits));
        assert_eq!(decode("Zm9=").unwrap_err(), DecodeError::TrailingBits);
        assert_eq!(decode("Zg==Zg=="), Err(DecodeError::Symbol(2)));
        assert_eq!(decode("Z==="), Err(DecodeError::Symbol(1)));
        assert_eq!(decode("===="), Err(DecodeError::Symbol(0)));
        assert_eq!(decode("Zm 9"), Err(DecodeError::Symbol(2)));
        assert_eq!(decode("Zm9v\n"), Err(DecodeError::Length(5)));
        assert!(decode("Zm-v").is_err());
    }
}
