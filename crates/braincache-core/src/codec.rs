//! Turning values into bytes and back.

use crate::CodecError;
use serde::Serialize;
use serde::de::DeserializeOwned;

mod adapt;
mod msgpack;
use std::cell::Cell;
use std::fmt;
use std::num::NonZeroU8;

/// A codec's stable one-byte id, stored with every record so a value is never decoded by a codec
/// other than the one that encoded it.
///
/// The ids of the codecs braincache ships are fixed forever: [`CodecId::POSTCARD`] (1),
/// [`CodecId::JSON`] (2), [`CodecId::BINCODE`] (3), [`CodecId::MSGPACK`] (4). Ids 5 to 127 are
/// reserved for codecs braincache may add; a codec of your own takes an id from 128 to 255
/// ([`CodecId::new`]). Id 0 is never a codec: on disk it means "not stated" (see
/// [`Record::codec`](crate::Record::codec)).
///
/// ```
/// use braincache_core::{Codec, CodecId, MsgPack, Postcard};
///
/// assert_eq!(MsgPack::ID, CodecId::MSGPACK);
/// assert_eq!(Postcard::ID.get(), 1);
/// assert_eq!(CodecId::MSGPACK.to_string(), "msgpack (codec id 4)");
/// assert_eq!(CodecId::new(200).unwrap().to_string(), "codec id 200");
/// assert!(CodecId::new(0).is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct CodecId(NonZeroU8);

impl CodecId {
    /// [`Postcard`].
    pub const POSTCARD: CodecId = CodecId::known(1);
    /// [`Json`].
    pub const JSON: CodecId = CodecId::known(2);
    /// `Bincode` (the `bincode` feature).
    pub const BINCODE: CodecId = CodecId::known(3);
    /// [`MsgPack`].
    pub const MSGPACK: CodecId = CodecId::known(4);

    const fn known(id: u8) -> CodecId {
        match NonZeroU8::new(id) {
            Some(id) => CodecId(id),
            None => panic!("codec id 0 means \"not stated\""),
        }
    }

    /// The id `id`; `None` for 0, which means "no codec stated".
    #[must_use]
    pub const fn new(id: u8) -> Option<CodecId> {
        match NonZeroU8::new(id) {
            Some(id) => Some(CodecId(id)),
            None => None,
        }
    }

    /// The id as a byte (never 0).
    #[must_use]
    pub const fn get(self) -> u8 {
        self.0.get()
    }

    /// The name of a codec braincache ships (`"msgpack"`, `"postcard"`, ...), `None` for others.
    #[must_use]
    pub const fn name(self) -> Option<&'static str> {
        match self.0.get() {
            1 => Some("postcard"),
            2 => Some("json"),
            3 => Some("bincode"),
            4 => Some("msgpack"),
            _ => None,
        }
    }
}

impl fmt::Display for CodecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} (codec id {})", self.get()),
            None => write!(f, "codec id {}", self.get()),
        }
    }
}

/// Encodes any serde value to bytes and decodes it back.
///
/// # Contract
/// - `decode(encode(v))` equals `v` for every value the codec accepts, falsy ones included
///   (`0`, `""`, `false`, empty collections, `None`).
/// - `decode` never panics on any input: bytes that are not a value of the requested type are
///   `Err`. Decoders must also refuse trailing bytes, so a value of one type is less likely to be
///   read as a shorter value of another.
/// - Codecs are stateless values; clones behave alike.
/// - [`Codec::ID`] is unique among the codecs used on one store, and never changes: it is
///   stored with each record, and a record written with another id is refused on read.
pub trait Codec: Send + Sync + Clone + fmt::Debug + 'static {
    /// A short name for messages (`"msgpack"`, `"json"`).
    const NAME: &'static str;

    /// The id stored with every record this codec encodes (see [`CodecId`]).
    const ID: CodecId;

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

/// The default binary codec: [MessagePack](https://msgpack.org) through
/// [rmp-serde](https://docs.rs/rmp-serde), self-describing, so every value of the serde data
/// model reads back as it was written and a value read as another type is an error.
///
/// Structs are written as maps keyed by field name (never as arrays), so a struct does not read
/// as a tuple and fields can be added with `#[serde(default)]`. `serde_json::Value`, untagged,
/// internally and adjacently tagged enums, `#[serde(flatten)]`, maps with non-string keys,
/// `u128`/`i128` and every `f64` (NaN and the infinities included) round-trip.
/// `Option<Option<T>>` round-trips too: MessagePack has one `nil`, so an option nested in an
/// option that is `Some(None)` is written as a one-byte extension value (type 0x42, holding the
/// number of `Some` around the `None`); every other value is plain MessagePack.
///
/// Integers are read by value, not by width: a `u32` 1234 reads as the `i32` 1234, and a value
/// that does not fit the requested type (300 as `u8`, -1 as `u32`) is an error.
///
/// ```
/// use braincache_core::{Codec, MsgPack};
/// use std::collections::BTreeMap;
///
/// let v = serde_json::json!({"a": [1, 2.5, null, {"b": "c"}]});
/// assert_eq!(MsgPack.decode::<serde_json::Value>(&MsgPack.encode(&v).unwrap()).unwrap(), v);
///
/// let nested: Option<Option<u8>> = Some(None);
/// assert_eq!(MsgPack.decode::<Option<Option<u8>>>(&MsgPack.encode(&nested).unwrap()).unwrap(), nested);
///
/// let keys = BTreeMap::from([((1u8, 2u8), "pair")]);
/// let back: BTreeMap<(u8, u8), String> = MsgPack.decode(&MsgPack.encode(&keys).unwrap()).unwrap();
/// assert_eq!(back[&(1, 2)], "pair");
///
/// // Another type is an error, not another value.
/// assert!(MsgPack.decode::<Vec<u8>>(&MsgPack.encode("text").unwrap()).is_err());
/// assert_eq!(MsgPack.decode::<i32>(&MsgPack.encode(&1234u32).unwrap()).unwrap(), 1234);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MsgPack;

impl Codec for MsgPack {
    const NAME: &'static str = "msgpack";
    const ID: CodecId = CodecId::MSGPACK;

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        // Bytes all below 0x80, written in bulk (the same bytes as the writer below gives;
        // resolved at compile time as in `decode`).
        let bytes = match castaway::cast!(value, &Vec<u8>) {
            Ok(v) => Some(v.as_slice()),
            Err(value) => castaway::cast!(value, &[u8]).ok(),
        };
        // (`LAST_LEN` below is left as it is: it sizes the writer's buffers, this one is exact.)
        if let Some(out) = bytes.and_then(msgpack::ser::fixint_array) {
            #[cfg(test)]
            msgpack::tests::FAST_WRITES.with(|n| n.set(n.get() + 1));
            return Ok(out);
        }
        // braincache's own writer: rmp-serde's bytes under the nested-`None` adapter, byte for
        // byte (see `msgpack::ser`).
        let write = |out: &mut Vec<u8>| {
            value
                .serialize(msgpack::ser::Serializer::new(out))
                .map_err(|e| CodecError::new(Self::NAME, e))
        };
        // Written into a `Vec` as large as the last value this thread encoded: values of one
        // type mostly encode to one length, which then fits exactly and is handed over as it is
        // (one allocation, no copy). Otherwise the `Vec` grows as it must and is shrunk to fit.
        let mut out = Vec::with_capacity(LAST_LEN.with(Cell::get));
        write(&mut out)?;
        LAST_LEN.with(|last| last.set(out.len().min(START_MAX)));
        if out.capacity() != out.len() {
            out.shrink_to_fit();
        }
        Ok(out)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        // The two value types serde reads slowest for their size, read in bulk when the input
        // is in the forms this codec writes: the same value the reader below gives (which reads
        // anything else, and says why it cannot). `castaway` resolves the type at compile time:
        // for any other `T` this is no code at all.
        let mut fast: Option<T> = None;
        if let Ok(out) = castaway::cast!(&mut fast, &mut Option<Vec<u8>>) {
            *out = msgpack::de::whole_bytes(bytes);
        } else if let Ok(out) = castaway::cast!(&mut fast, &mut Option<String>) {
            *out = msgpack::de::whole_string(bytes);
        }
        if let Some(value) = fast {
            #[cfg(test)]
            msgpack::tests::FAST_READS.with(|n| n.set(n.get() + 1));
            return Ok(value);
        }
        // braincache's own reader: the same visitor calls as rmp-serde's deserializer under the
        // nested-`None` adapter (see `msgpack::de`), in one pass over the slice.
        let mut de = msgpack::de::Deserializer::new(bytes);
        let value = T::deserialize(&mut de).map_err(|e| CodecError::new(Self::NAME, e))?;
        match de.remaining() {
            0 => Ok(value),
            n => Err(CodecError::new(
                Self::NAME,
                format_args!("{n} trailing bytes after the value"),
            )),
        }
    }
}

thread_local! {
    /// The length of the last value [`MsgPack::encode`] wrote on this thread: the capacity it
    /// starts the next one with.
    static LAST_LEN: Cell<usize> = const { Cell::new(0) };
}

/// The largest capacity [`MsgPack::encode`] starts a value with (a larger value grows from
/// there, so a small value after a large one does not allocate much more than it needs).
const START_MAX: usize = 4 << 10;

/// [`MsgPack::encode`] as braincache did it before it had its own writer: rmp-serde's
/// serializer (structs as maps) under the nested-`None` adapter. The reference that the
/// writer's differential tests compare it with (`testkit`): the bytes must be the same.
#[cfg(any(test, feature = "testkit"))]
pub fn msgpack_reference_encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    let mut ser = rmp_serde::Serializer::new(&mut out).with_struct_map();
    adapt::Wrap::new(value, adapt::NestedOption::default())
        .serialize(&mut ser)
        .map_err(|e| CodecError::new(MsgPack::NAME, e))?;
    Ok(out)
}

/// [`MsgPack::decode`] as braincache did it before it had its own reader: rmp-serde's
/// deserializer, wrapped in the nested-`None` adapter, then a check that no byte is left. The
/// reference that the reader's differential tests compare it with (`testkit`).
#[cfg(any(test, feature = "testkit"))]
pub fn msgpack_reference_decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let name = MsgPack::NAME;
    let cursor = adapt::Cursor::new(bytes);
    let mut de = rmp_serde::Deserializer::new(adapt::Reader(&cursor));
    let value: T = adapt::deserialize(&mut de, &cursor).map_err(|e| CodecError::new(name, e))?;
    match cursor.remaining() {
        0 => Ok(value),
        n => Err(CodecError::new(
            name,
            format_args!("{n} trailing bytes after the value"),
        )),
    }
}

impl MsgPack {
    /// The JSON text of the MessagePack value in `bytes`, as [`Json`] writes it, so that a value
    /// [`MsgPack`] encoded reads back from it as the same typed value through [`Json`] (a
    /// redb cache exported to the file backend's format stays readable).
    ///
    /// # Errors
    /// When `bytes` are not one MessagePack value, or hold what JSON cannot say: a `None` nested
    /// in a `Some`, other extension values, map keys that are not strings or numbers.
    ///
    /// ```
    /// use braincache_core::{Codec, Json, MsgPack};
    /// use std::collections::BTreeMap;
    ///
    /// let v = BTreeMap::from([(1u32, vec![f64::NAN])]);
    /// let json = MsgPack.to_json(&MsgPack.encode(&v).unwrap()).unwrap();
    /// assert_eq!(json, br#"{"1":[NaN]}"#);
    /// let back: BTreeMap<u32, Vec<f64>> = Json.decode(&json).unwrap();
    /// assert!(back[&1][0].is_nan());
    /// assert!(MsgPack.to_json(&MsgPack.encode(&Some(None::<u8>)).unwrap()).is_err());
    /// ```
    pub fn to_json(&self, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        let cursor = adapt::Cursor::new(bytes);
        let mut de = rmp_serde::Deserializer::new(adapt::Reader(&cursor));
        let json = Json.encode(&Transcoded(std::cell::RefCell::new(Some((
            &mut de, &cursor,
        )))))?;
        if cursor.saw_extension() {
            return Err(CodecError::new(
                Self::NAME,
                "the value holds an extension value (such as a `None` nested in a `Some`), which \
                 JSON cannot hold",
            ));
        }
        match cursor.remaining() {
            0 => Ok(json),
            n => Err(CodecError::new(
                Self::NAME,
                format_args!("{n} trailing bytes after the value"),
            )),
        }
    }
}

/// A MessagePack value being transcoded, as a `Serialize` value (serialized once).
struct Transcoded<'a, 'c, 'b, R>(
    std::cell::RefCell<Option<(&'a mut rmp_serde::Deserializer<R>, &'c adapt::Cursor<'b>)>>,
);

impl<R: rmp_serde::decode::ReadSlice<'static>> Serialize for Transcoded<'_, '_, '_, R> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (de, cursor) = self
            .0
            .borrow_mut()
            .take()
            .ok_or_else(|| serde::ser::Error::custom("a value can be transcoded once"))?;
        adapt::transcode(de, cursor, s)
    }
}

/// [postcard](https://docs.rs/postcard): the most compact and fastest codec, opt-in (the default
/// binary codec is [`MsgPack`]).
///
/// postcard is not self-describing: it cannot tell a `u32` from a `u64` or a struct from a tuple,
/// so reading a value as another type is refused only when the bytes do not fit that type (a
/// `u32` 1234 reads as the `i32` 617). Types that need a self-describing format
/// (`serde_json::Value`, `#[serde(untagged)]` and internally tagged enums, `#[serde(flatten)]`)
/// encode but never decode. Choose it for values of plain, fixed types where size or speed
/// matters (`BrainCache::builder(backend).codec(Postcard)`).
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
    const ID: CodecId = CodecId::POSTCARD;

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
/// NaN and the infinities are written as Python's `json` module writes them (`NaN`, `Infinity`,
/// `-Infinity`: not strict JSON, but what Python reads and writes by default) and read back as
/// such, so a value holding them round-trips. Text holding these tokens is parsed as
/// [JSON5](https://json5.org) (through the `json5` crate), which they belong to. Strings
/// containing `~braincache:non-finite~` are refused (that marker is used while writing).
///
/// JSON's other limits apply: `Some(None)` reads back as `None` (there is one `null`), maps need
/// string (or integer) keys, and a struct and a map are the same thing.
///
/// ```
/// use braincache_core::{Codec, Json};
///
/// assert_eq!(Json.encode(&vec![1, 2]).unwrap(), b"[1,2]");
/// let v: Option<u8> = Json.decode(b"null").unwrap();
/// assert_eq!(v, None);
/// assert_eq!(Json.encode(&[f64::NAN, f64::NEG_INFINITY]).unwrap(), b"[NaN,-Infinity]");
/// let back: Vec<f64> = Json.decode(b"[Infinity, 1.5]").unwrap();
/// assert_eq!(back, [f64::INFINITY, 1.5]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Codec for Json {
    const NAME: &'static str = "json";
    const ID: CodecId = CodecId::JSON;

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        adapt::Wrap::new(value, adapt::NonFinite::default())
            .serialize(&mut serde_json::Serializer::new(&mut out))
            .map_err(|e| CodecError::new(Self::NAME, e))?;
        Ok(adapt::NonFinite::finish(out))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        // The marker `encode` refuses is refused here too, so whatever decodes re-encodes.
        let marker = adapt::NON_FINITE.as_bytes();
        if bytes.windows(marker.len()).any(|w| w == marker) {
            return Err(CodecError::new(
                Self::NAME,
                format_args!("strings containing {:?} are reserved", adapt::NON_FINITE),
            ));
        }
        match serde_json::from_slice(bytes) {
            Ok(value) => Ok(value),
            Err(e) => match std::str::from_utf8(bytes) {
                Ok(text) if has_non_finite(text) => {
                    json5::from_str(text).map_err(|e| CodecError::new(Self::NAME, e))
                }
                _ => Err(CodecError::new(Self::NAME, e)),
            },
        }
    }
}

/// True when `text` may hold Python's `NaN`, `Infinity` or `-Infinity` tokens.
fn has_non_finite(text: &str) -> bool {
    text.contains("NaN") || text.contains("Infinity")
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
    const ID: CodecId = CodecId::BINCODE;

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
        falsy_round_trip(&MsgPack);
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

#[cfg(test)]
mod msgpack_tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::{BTreeMap, HashMap};

    fn rt<T: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(v: T) {
        let bytes = MsgPack.encode(&v).unwrap();
        let back: T = MsgPack
            .decode(&bytes)
            .unwrap_or_else(|e| panic!("{v:?} ({bytes:x?}): {e}"));
        assert_eq!(back, v, "{bytes:x?}");
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    #[serde(untagged)]
    enum Untagged {
        N(u32),
        S(String),
        P { x: Option<Option<u8>> },
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    #[serde(tag = "t")]
    enum Internal {
        A { a: u8, o: Option<Option<bool>> },
        B,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    #[serde(tag = "t", content = "c")]
    enum Adjacent {
        A(Option<Option<u8>>),
        B { s: String },
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Flat {
        id: u32,
        #[serde(flatten)]
        rest: BTreeMap<String, serde_json::Value>,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    enum Plain {
        Unit,
        New(Option<Option<i8>>),
        Tup(u8, Option<Option<u8>>),
        Str { f: Option<Option<Option<u8>>> },
    }

    #[test]
    fn the_data_model_round_trips() {
        rt(serde_json::json!({"a": [1, -2, 2.5, null, true, {"b": "c"}], "u": u64::MAX}));
        rt(Untagged::N(3));
        rt(Untagged::S("x".into()));
        rt(Untagged::P { x: Some(None) });
        rt(Internal::A {
            a: 1,
            o: Some(None),
        });
        rt(Internal::A { a: 1, o: None });
        rt(Internal::B);
        rt(Adjacent::A(Some(None)));
        rt(Adjacent::A(Some(Some(4))));
        rt(Adjacent::B { s: "s".into() });
        rt(Flat {
            id: 7,
            rest: BTreeMap::from([("k".into(), serde_json::json!([1, "two"]))]),
        });
        for v in [None, Some(None), Some(Some(0u8)), Some(Some(9))] {
            rt(v);
        }
        for v in [None, Some(None), Some(Some(None)), Some(Some(Some(1u8)))] {
            rt(v);
        }
        rt(vec![Some(None), None, Some(Some("s".to_string()))]);
        rt(Plain::Unit);
        rt(Plain::New(Some(None)));
        rt(Plain::Tup(1, Some(None)));
        rt(Plain::Str {
            f: Some(Some(None)),
        });
        rt(HashMap::from([((1u8, -2i64), "pair".to_string())]));
        rt(BTreeMap::from([(Some(None::<u8>), 1u8), (None, 2)]));
        rt(u128::MAX);
        rt(i128::MIN);
        rt(f64::INFINITY);
        rt(f64::NEG_INFINITY);
        rt(((), 'é', -0.0f64, f32::MIN_POSITIVE));
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct W(Option<u8>);
        rt(Some(W(None)));
        rt(vec![Some(W(Some(5))), Some(W(None)), None]);
        rt(Some(Some(W(None))));
        let nan: f64 = MsgPack.decode(&MsgPack.encode(&f64::NAN).unwrap()).unwrap();
        assert!(nan.is_nan());
    }

    #[test]
    fn another_type_is_an_error_not_another_value() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct S {
            a: u32,
            b: String,
        }
        let e = |bytes: &[u8]| bytes.to_vec();
        let s = e(&MsgPack
            .encode(&S {
                a: 1,
                b: "b".into(),
            })
            .unwrap());
        assert!(MsgPack.decode::<(u32, String)>(&s).is_err());
        assert!(
            MsgPack
                .decode::<Vec<u8>>(&MsgPack.encode("text").unwrap())
                .is_err()
        );
        assert_eq!(
            MsgPack
                .decode::<i32>(&MsgPack.encode(&1234u32).unwrap())
                .unwrap(),
            1234
        );
        assert!(
            MsgPack
                .decode::<u8>(&MsgPack.encode(&300u32).unwrap())
                .is_err()
        );
        assert!(
            MsgPack
                .decode::<u32>(&MsgPack.encode(&-1i32).unwrap())
                .is_err()
        );
        assert!(
            MsgPack
                .decode::<String>(&MsgPack.encode(&7u32).unwrap())
                .is_err()
        );
        // `Some(None)` is not a plain `Option`'s value, nor an integer.
        let nested = MsgPack.encode(&Some(None::<u8>)).unwrap();
        assert!(MsgPack.decode::<Option<u8>>(&nested).is_err());
        assert!(MsgPack.decode::<u8>(&nested).is_err());
        // Trailing bytes and garbage.
        assert!(MsgPack.decode::<u8>(&[1, 2]).is_err());
        assert!(MsgPack.decode::<String>(&[0xc1]).is_err());
        assert!(MsgPack.decode::<u8>(&[]).is_err());
    }

    #[test]
    fn json_writes_and_reads_pythons_non_finite_floats() {
        let v = vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.5];
        let text = Json.encode(&v).unwrap();
        assert_eq!(text, b"[NaN,Infinity,-Infinity,1.5]");
        let back: Vec<f64> = Json.decode(&text).unwrap();
        assert!(back[0].is_nan());
        assert_eq!(back[1..], v[1..]);
        let m = BTreeMap::from([("x".to_string(), f32::NAN)]);
        assert_eq!(Json.encode(&m).unwrap(), br#"{"x":NaN}"#);
        let back: serde_json::Value = Json
            .decode(br#"{"a": [NaN, "NaN", 1]}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back["a"][1], "NaN");
        // The marker is reserved; strings that look like tokens are strings.
        assert!(Json.encode("~braincache:non-finite~NaN").is_err());
        // ... and refused when read, so what decodes re-encodes (found by decode_values).
        assert!(
            Json.decode::<String>(br#""~braincache:non-finite~""#)
                .is_err()
        );
        assert_eq!(Json.encode("NaN").unwrap(), br#""NaN""#);
        assert!(Json.decode::<f64>(b"NaNa").is_err());
        assert!(Json.decode::<String>(b"NaN").is_err());
    }

    /// The length of the one value at the start of `bytes`, as the reader consumes it; `None`
    /// when it cannot be read.
    fn value_len(bytes: &[u8]) -> Option<usize> {
        let mut de = msgpack::de::Deserializer::new(bytes);
        serde::de::IgnoredAny::deserialize(&mut de).ok()?;
        Some(bytes.len() - de.remaining())
    }

    #[test]
    fn value_len_agrees_with_the_encoder() {
        #[derive(Serialize)]
        struct S {
            a: Vec<u32>,
            b: BTreeMap<String, (u8, Option<f64>)>,
            c: String,
            d: u128,
        }
        let long = "x".repeat(70_000);
        let s = S {
            a: (0..300).map(|i| i * 1000).collect(),
            b: BTreeMap::from([("k".into(), (1, Some(1.5))), ("l".into(), (2, None))]),
            c: long.clone(),
            d: u128::MAX,
        };
        for bytes in [
            MsgPack.encode(&s).unwrap(),
            MsgPack.encode(&long).unwrap(),
            MsgPack.encode(&-5i64).unwrap(),
            MsgPack.encode(&vec![Some(None::<u8>); 3]).unwrap(),
            MsgPack
                .encode(&serde_json::json!({"a": [1, -1, 1e300, "s", null]}))
                .unwrap(),
        ] {
            assert_eq!(value_len(&bytes), Some(bytes.len()));
            assert_eq!(value_len(&bytes[..bytes.len() - 1]), None);
            let mut more = bytes.clone();
            more.push(0);
            assert_eq!(value_len(&more), Some(bytes.len()));
        }
        assert_eq!(value_len(&[0xdf, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(value_len(&[0xc1]), None);
        assert_eq!(value_len(&[]), None);
    }

    #[test]
    fn runs_of_fixints_are_read_exactly() {
        // Every byte among runs of fixints (the bytes of a `Vec<u8>`).
        for b in 0..=u8::MAX {
            for at in 0..12 {
                let mut v = vec![5i16; 12];
                v[at] = i16::from(b);
                let neg = vec![-3i16; 12];
                for value in [&v, &neg] {
                    let bytes = MsgPack.encode(value).unwrap();
                    assert_eq!(value_len(&bytes), Some(bytes.len()), "{value:?}");
                    assert_eq!(MsgPack.decode::<Vec<i16>>(&bytes).unwrap(), *value);
                }
            }
            // A raw array header of 16 values followed by 16 copies of one byte: whole when
            // the byte is a one-byte value (empty map, array and string too), else not well
            // formed or not complete.
            let mut raw = vec![0xdc, 0, 16];
            raw.extend([b; 16]);
            let one_byte =
                b <= 0x7f || b >= 0xe0 || matches!(b, 0x80 | 0x90 | 0xa0 | 0xc0 | 0xc2 | 0xc3);
            if one_byte {
                assert_eq!(value_len(&raw), Some(raw.len()), "{b:#x}");
            } else {
                assert_ne!(value_len(&raw), Some(raw.len()), "{b:#x}");
            }
        }
    }

    #[test]
    fn nested_nones_are_read_at_value_positions_only() {
        // A nested `None`, alone and deep in a value.
        assert_eq!(
            MsgPack
                .decode::<Option<Option<u8>>>(&MsgPack.encode(&Some(None::<u8>)).unwrap())
                .unwrap(),
            Some(None)
        );
        let deep = BTreeMap::from([("k".to_string(), vec![None, Some(Some(1u8)), Some(None)])]);
        let back: BTreeMap<String, Vec<Option<Option<u8>>>> =
            MsgPack.decode(&MsgPack.encode(&deep).unwrap()).unwrap();
        assert_eq!(back, deep);
        // The same two bytes inside a value (here `cc d4 42`: the integer 0xd4, then 0x42) are
        // data, not an extension.
        let looks_like = vec![0xd4u8, 0x42, 1];
        let bytes = MsgPack.encode(&looks_like).unwrap();
        assert!(bytes.windows(2).any(|w| w == [0xd4, 0x42]));
        assert_eq!(MsgPack.decode::<Vec<u8>>(&bytes).unwrap(), looks_like);
        // A fixext 1 of another type is not a nested `None`, and a cut one is an error.
        assert!(
            MsgPack
                .decode::<Option<Option<u8>>>(&[0xd4, 0x01, 0x01])
                .is_err()
        );
        assert_eq!(value_len(&[0xd4, 0x01, 0x00]), Some(3));
        assert_eq!(value_len(&[0xd4, 0x42]), None);
    }

    #[test]
    fn encodes_inside_a_serialize_and_after_a_large_value_are_whole() {
        // A value whose `Serialize` encodes another value: the per-thread buffer is in use.
        struct Encodes;
        impl Serialize for Encodes {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let inner = MsgPack
                    .encode(&vec![1u8, 2, 3])
                    .map_err(serde::ser::Error::custom)?;
                s.serialize_bytes(&inner)
            }
        }
        let bytes = MsgPack.encode(&(1u8, Encodes, "x")).unwrap();
        let (a, inner, c): (u8, Vec<u8>, String) = MsgPack.decode(&bytes).unwrap();
        assert_eq!((a, c.as_str()), (1, "x"));
        assert_eq!(MsgPack.decode::<Vec<u8>>(&inner).unwrap(), [1, 2, 3]);
        // A value larger than the buffer kept, then small ones.
        let large = "y".repeat(200_000);
        assert_eq!(
            MsgPack
                .decode::<String>(&MsgPack.encode(&large).unwrap())
                .unwrap(),
            large
        );
        for v in [0u64, 1 << 40] {
            assert_eq!(MsgPack.encode(&v).unwrap(), rmp_serde::to_vec(&v).unwrap());
        }
    }

    #[test]
    fn encoded_values_are_exactly_sized_whatever_came_before() {
        // Each encode starts with the capacity of the one before on this thread; what it hands
        // over (what a memory cache keeps) is shrunk to its length.
        for len in [0, 10, 10, 3, 5_000, 4_000, 100_000, 7, 7] {
            let v = vec![7u8; len];
            let bytes = MsgPack.encode(&v).unwrap();
            assert_eq!(
                bytes.capacity(),
                bytes.len(),
                "after a value of {len} bytes"
            );
            assert_eq!(bytes, msgpack_reference_encode(&v).unwrap());
        }
    }

    #[test]
    fn ids_are_distinct_and_stable() {
        assert_eq!(
            [Postcard::ID.get(), Json::ID.get(), MsgPack::ID.get()],
            [1, 2, 4]
        );
        #[cfg(feature = "bincode")]
        assert_eq!(Bincode::ID.get(), 3);
    }
}
