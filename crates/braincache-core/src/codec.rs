//! Turning values into bytes and back.

use crate::CodecError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;

/// Encodes any serde value to bytes and decodes it back.
///
/// # Contract
/// - `decode(encode(v))` equals `v` for every value the codec accepts, falsy ones included
///   (`0`, `""`, `false`, empty collections, `None`).
/// - `decode` never panics on any input: bytes that are not a value of the requested type are
///   `Err`. Decoders must also refuse trailing bytes, so a value of one type is less likely to be
///   read as a shorter value of another.
/// - Codecs are stateless values; clones behave alike.
pub trait Codec: Send + Sync + Clone + fmt::Debug + 'static {
    /// A short name for messages (`"postcard"`, `"json"`).
    const NAME: &'static str;

    /// Encodes `value`.
    ///
    /// # Errors
    /// When the value cannot be represented by this codec (for example a map with non-string
    /// keys in JSON).
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError>;

    /// Decodes a `T` from `bytes`.
    ///
    /// # Errors
    /// When `bytes` are not exactly one encoded `T`.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError>;
}

/// The default binary codec: [postcard](https://docs.rs/postcard), compact and fast.
///
/// postcard is not self-describing: it cannot tell a `u32` from a `u64`, so reading a value as
/// another type is refused only when the bytes do not fit that type. Types that need a
/// self-describing format (`serde_json::Value`, `#[serde(untagged)]` enums, `#[serde(flatten)]`)
/// are refused with an error; use [`Json`] for them.
///
/// ```
/// use braincache_core::{Codec, Postcard};
///
/// let bytes = Postcard.encode(&(1u8, "two")).unwrap();
/// let back: (u8, String) = Postcard.decode(&bytes).unwrap();
/// assert_eq!(back, (1, "two".to_string()));
/// assert!(Postcard.decode::<String>(&Postcard.encode(&7u32).unwrap()).is_err());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

impl Codec for Postcard {
    const NAME: &'static str = "postcard";

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        postcard::to_allocvec(value).map_err(|e| CodecError::new(Self::NAME, e))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let (value, rest) =
            postcard::take_from_bytes(bytes).map_err(|e| CodecError::new(Self::NAME, e))?;
        if rest.is_empty() {
            Ok(value)
        } else {
            Err(CodecError::new(
                Self::NAME,
                format_args!("{} trailing bytes after the value", rest.len()),
            ))
        }
    }
}

/// JSON through `serde_json`: self-describing and human-readable. The file backend's codec, so
/// `cat cache.json` shows real values.
///
/// JSON's limits apply: `Some(None)` reads back as `None` (there is one `null`), maps need string
/// (or integer) keys, and floats like NaN are refused.
///
/// ```
/// use braincache_core::{Codec, Json};
///
/// assert_eq!(Json.encode(&vec![1, 2]).unwrap(), b"[1,2]");
/// let v: Option<u8> = Json.decode(b"null").unwrap();
/// assert_eq!(v, None);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Codec for Json {
    const NAME: &'static str = "json";

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        serde_json::to_vec(value).map_err(|e| CodecError::new(Self::NAME, e))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        serde_json::from_slice(bytes).map_err(|e| CodecError::new(Self::NAME, e))
    }
}

/// bincode 2.0.1 with its standard configuration, for data already encoded with bincode.
///
/// **Unmaintained**: bincode's 3.0 release is a `compile_error!` and the project has stopped, so
/// this codec is pinned to 2.0.1 and exists only behind the off-by-default `bincode` feature.
/// Prefer [`Postcard`] for new data.
#[cfg(feature = "bincode")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

#[cfg(feature = "bincode")]
impl Codec for Bincode {
    const NAME: &'static str = "bincode";

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        bincode::serde::encode_to_vec(value, bincode::config::standard())
            .map_err(|e| CodecError::new(Self::NAME, e))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let (value, used) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map_err(|e| CodecError::new(Self::NAME, e))?;
        if used == bytes.len() {
            Ok(value)
        } else {
            Err(CodecError::new(
                Self::NAME,
                format_args!("{} trailing bytes after the value", bytes.len() - used),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn falsy_round_trip<C: Codec>(c: &C) {
        fn rt<C: Codec, T: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(c: &C, v: T) {
            let bytes = c.encode(&v).unwrap();
            assert_eq!(c.decode::<T>(&bytes).unwrap(), v, "{}", C::NAME);
        }
        rt(c, 0u64);
        rt(c, String::new());
        rt(c, false);
        rt(c, Vec::<u8>::new());
        rt(c, None::<u32>);
        if C::NAME != "json" {
            // JSON has one `null`: `Some(None)` reads back as `None` (documented on `Json`).
            rt(c, Some(None::<u32>));
        }
        rt(c, (1u8, 2u8));
    }

    #[test]
    fn codecs_round_trip_falsy_values() {
        falsy_round_trip(&Postcard);
        falsy_round_trip(&Json);
        #[cfg(feature = "bincode")]
        falsy_round_trip(&Bincode);
    }

    #[test]
    fn decoders_refuse_garbage_and_trailing_bytes() {
        assert!(Postcard.decode::<u8>(&[1, 2]).is_err());
        assert!(Postcard.decode::<String>(&[200]).is_err());
        assert!(Json.decode::<u8>(b"1 2").is_err());
        assert!(Json.decode::<String>(b"\xff").is_err());
    }
}
