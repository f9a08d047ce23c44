//! The reader and the writer against the reference (rmp-serde under the nested-`None` adapter,
//! as `MsgPack::decode` and `MsgPack::encode` were before): for values of the whole data model,
//! for those values read as every other type, for damaged copies of them and for arbitrary
//! bytes, both read the same value or both fail; every value is written to the same bytes.

use super::de::Deserializer;
use crate::codec::{Codec, MsgPack, msgpack_reference_decode, msgpack_reference_encode};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Debug;

#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(untagged)]
enum Untagged {
    N(u32),
    S(String),
    P { x: Option<Option<u8>> },
    L(Vec<i64>),
}

#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(tag = "t")]
enum Internal {
    A { a: u8, o: Option<Option<bool>> },
    B,
    C(Inner),
}

#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(tag = "t", content = "c")]
enum Adjacent {
    A(Option<Option<u8>>),
    B { s: String },
    C,
    D(u8, String),
}

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Flat {
    id: u32,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
enum Plain {
    Unit,
    New(Option<Option<i8>>),
    Tup(u8, Option<Option<u8>>),
    Str { f: Option<Option<Option<u8>>> },
    Bytes(Vec<u8>),
}

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Inner {
    x: i16,
    y: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
struct UnitStruct;

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Newtype(Option<u16>);

/// A sequence and a map whose lengths the serializer is not told (written counted).
#[derive(Debug, Clone)]
struct Unsized(
    Vec<Option<Option<u8>>>,
    BTreeMap<String, Option<Option<i32>>>,
);

impl Serialize for Unsized {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        struct Seq<'a>(&'a [Option<Option<u8>>]);
        impl Serialize for Seq<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().filter(|_| true))
            }
        }
        struct Map<'a>(&'a BTreeMap<String, Option<Option<i32>>>);
        impl Serialize for Map<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().filter(|_| true))
            }
        }
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&Seq(&self.0))?;
        t.serialize_element(&Map(&self.1))?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Unsized {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (a, b) = Deserialize::deserialize(d)?;
        Ok(Unsized(a, b))
    }
}

/// rmp-serde's own extension struct, written by a value's `Serialize`.
#[derive(Debug, Clone)]
struct RmpExt(i8, Vec<u8>);

impl Serialize for RmpExt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Body<'a>(&'a [u8]);
        impl Serialize for Body<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        s.serialize_newtype_struct(rmp_serde::MSGPACK_EXT_STRUCT_NAME, &(self.0, Body(&self.1)))
    }
}

/// A binary string (`serialize_bytes`).
#[derive(Debug, Clone)]
struct Raw(Vec<u8>);

impl Serialize for Raw {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

/// A struct holding a bit of everything, nested.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Everything {
    id: u64,
    name: String,
    score: f64,
    ratio: f32,
    bytes: Vec<u8>,
    big: u128,
    neg: i128,
    c: char,
    unit: (),
    unit_struct: UnitStruct,
    newtype: Newtype,
    pair: (i8, bool),
    keys: BTreeMap<(u8, i64), String>,
    option_keys: BTreeMap<Option<Option<u8>>, u8>,
    nested: Option<Option<Inner>>,
    inners: Vec<Inner>,
    plain: Plain,
    untagged: Untagged,
    internal: Internal,
    adjacent: Adjacent,
    flat: Flat,
    json: Value,
}

/// The value `bytes` decodes to with the reader and with the reference: both an error, or the
/// same value (compared by their encodings, so that NaN equals NaN). With `plain`, also the same
/// as rmp-serde alone when the bytes hold no nested `None`.
fn same<T: Serialize + DeserializeOwned + Debug>(bytes: &[u8]) -> Result<(), TestCaseError> {
    let ours = MsgPack.decode::<T>(bytes);
    let reference = msgpack_reference_decode::<T>(bytes);
    match (&ours, &reference) {
        (Ok(a), Ok(b)) => {
            let written = MsgPack.encode(a).unwrap();
            prop_assert_eq!(
                &written,
                &MsgPack.encode(b).unwrap(),
                "{} from {:x?}: {:?} vs {:?}",
                std::any::type_name::<T>(),
                bytes,
                a,
                b
            );
            prop_assert_eq!(written, msgpack_reference_encode(a).unwrap(), "{:?}", a);
        }
        (Err(_), Err(_)) => {}
        _ => prop_assert!(
            false,
            "{} from {:x?}: reader {:?}, reference {:?}",
            std::any::type_name::<T>(),
            bytes,
            ours,
            reference
        ),
    }
    Ok(())
}

/// [`same`] for `bytes` read as every type of the table.
fn same_for_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    same::<Value>(bytes)?;
    same::<Untagged>(bytes)?;
    same::<Internal>(bytes)?;
    same::<Adjacent>(bytes)?;
    same::<Flat>(bytes)?;
    same::<Plain>(bytes)?;
    same::<Everything>(bytes)?;
    same::<Option<Option<u8>>>(bytes)?;
    same::<Option<Option<Option<String>>>>(bytes)?;
    same::<Vec<Option<Option<u8>>>>(bytes)?;
    same::<u128>(bytes)?;
    same::<i128>(bytes)?;
    same::<f64>(bytes)?;
    same::<f32>(bytes)?;
    same::<u8>(bytes)?;
    same::<i64>(bytes)?;
    same::<bool>(bytes)?;
    same::<char>(bytes)?;
    same::<()>(bytes)?;
    same::<UnitStruct>(bytes)?;
    same::<Newtype>(bytes)?;
    same::<Vec<u8>>(bytes)?;
    same::<Vec<Option<u8>>>(bytes)?;
    same::<(u8, u8)>(bytes)?;
    same::<String>(bytes)?;
    same::<Vec<String>>(bytes)?;
    same::<BTreeMap<(u8, i64), String>>(bytes)?;
    same::<BTreeMap<String, Vec<u8>>>(bytes)?;
    same::<Inner>(bytes)?;
    Ok(())
}

/// The value read as its own type with the reader, the reference and (when no nested `None`
/// is written) rmp-serde alone: all the same.
fn round_trips<T: Serialize + DeserializeOwned + Debug>(v: &T) -> Result<(), TestCaseError> {
    let bytes = MsgPack.encode(v).unwrap();
    prop_assert_eq!(&bytes, &msgpack_reference_encode(v).unwrap(), "{:?}", v);
    let ours: T = MsgPack
        .decode(&bytes)
        .map_err(|e| TestCaseError::fail(format!("{v:?} ({bytes:x?}): {e}")))?;
    prop_assert_eq!(MsgPack.encode(&ours).unwrap(), bytes.clone());
    same::<T>(&bytes)?;
    // Without a nested `None` the bytes are rmp-serde's own, and rmp-serde alone reads them.
    if rmp_serde::to_vec_named(v).ok().as_deref() == Some(&bytes[..]) {
        let plain: T = rmp_serde::from_slice(&bytes)
            .map_err(|e| TestCaseError::fail(format!("rmp-serde: {v:?} ({bytes:x?}): {e}")))?;
        prop_assert_eq!(MsgPack.encode(&plain).unwrap(), bytes);
    }
    Ok(())
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 20, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn nested_option<T: Strategy>(t: T) -> impl Strategy<Value = Option<Option<T::Value>>>
where
    T::Value: Clone,
{
    prop_oneof![Just(None), Just(Some(None)), t.prop_map(|v| Some(Some(v)))]
}

fn untagged() -> impl Strategy<Value = Untagged> {
    prop_oneof![
        any::<u32>().prop_map(Untagged::N),
        ".{0,6}".prop_map(Untagged::S),
        nested_option(any::<u8>()).prop_map(|x| Untagged::P { x }),
        prop::collection::vec(any::<i64>(), 0..4).prop_map(Untagged::L),
    ]
}

fn inner() -> impl Strategy<Value = Inner> {
    (any::<i16>(), prop::option::of(".{0,4}")).prop_map(|(x, y)| Inner { x, y })
}

fn internal() -> impl Strategy<Value = Internal> {
    prop_oneof![
        (any::<u8>(), nested_option(any::<bool>())).prop_map(|(a, o)| Internal::A { a, o }),
        Just(Internal::B),
        inner().prop_map(Internal::C),
    ]
}

fn adjacent() -> impl Strategy<Value = Adjacent> {
    prop_oneof![
        nested_option(any::<u8>()).prop_map(Adjacent::A),
        ".{0,4}".prop_map(|s| Adjacent::B { s }),
        Just(Adjacent::C),
        (any::<u8>(), ".{0,4}").prop_map(|(a, b)| Adjacent::D(a, b)),
    ]
}

fn flat() -> impl Strategy<Value = Flat> {
    // Flattened keys must not collide with the struct's own field.
    (
        any::<u32>(),
        prop::collection::btree_map("[a-h]{1,3}", json(), 0..3),
    )
        .prop_map(|(id, rest)| Flat { id, rest })
}

fn plain() -> impl Strategy<Value = Plain> {
    prop_oneof![
        Just(Plain::Unit),
        nested_option(any::<i8>()).prop_map(Plain::New),
        (any::<u8>(), nested_option(any::<u8>())).prop_map(|(a, b)| Plain::Tup(a, b)),
        prop_oneof![
            Just(None),
            Just(Some(None)),
            Just(Some(Some(None))),
            any::<u8>().prop_map(|v| Some(Some(Some(v))))
        ]
        .prop_map(|f| Plain::Str { f }),
        prop::collection::vec(any::<u8>(), 0..20).prop_map(Plain::Bytes),
    ]
}

prop_compose! {
    fn everything()(
        (id, name, score, ratio, bytes, big, neg, c) in (
            any::<u64>(), ".{0,8}", any::<f64>(), any::<f32>(),
            prop::collection::vec(any::<u8>(), 0..70), any::<u128>(), any::<i128>(), any::<char>(),
        ),
        (newtype, pair, keys, option_keys) in (
            prop::option::of(any::<u16>()), any::<(i8, bool)>(),
            prop::collection::btree_map(any::<(u8, i64)>(), ".{0,3}", 0..3),
            prop::collection::btree_map(nested_option(any::<u8>()), any::<u8>(), 0..3),
        ),
        (nested, inners, plain, untagged) in (
            nested_option(inner()), prop::collection::vec(inner(), 0..3), plain(), untagged(),
        ),
        (internal, adjacent, flat, json) in (internal(), adjacent(), flat(), json()),
    ) -> Everything {
        Everything {
            id, name, score, ratio, bytes, big, neg, c, unit: (), unit_struct: UnitStruct,
            newtype: Newtype(newtype), pair, keys, option_keys, nested, inners, plain, untagged,
            internal, adjacent, flat, json,
        }
    }
}

/// Encodings of values of the whole table.
fn encoded() -> impl Strategy<Value = Vec<u8>> {
    let e = |bytes: Result<Vec<u8>, crate::CodecError>| bytes.unwrap();
    prop_oneof![
        json().prop_map(move |v| e(MsgPack.encode(&v))),
        untagged().prop_map(move |v| e(MsgPack.encode(&v))),
        internal().prop_map(move |v| e(MsgPack.encode(&v))),
        adjacent().prop_map(move |v| e(MsgPack.encode(&v))),
        flat().prop_map(move |v| e(MsgPack.encode(&v))),
        plain().prop_map(move |v| e(MsgPack.encode(&v))),
        everything().prop_map(move |v| e(MsgPack.encode(&v))),
        nested_option(any::<u8>()).prop_map(move |v| e(MsgPack.encode(&v))),
        any::<u128>().prop_map(move |v| e(MsgPack.encode(&v))),
        any::<i128>().prop_map(move |v| e(MsgPack.encode(&v))),
        any::<f64>().prop_map(move |v| e(MsgPack.encode(&v))),
        prop::collection::vec(any::<u8>(), 0..80).prop_map(move |v| e(MsgPack.encode(&v))),
        ".{0,40}".prop_map(move |v: String| e(MsgPack.encode(&v))),
    ]
}

/// A damaged copy of `bytes`: each edit cuts, replaces or inserts a byte.
fn damaged() -> impl Strategy<Value = Vec<u8>> {
    (
        encoded(),
        prop::collection::vec((any::<usize>(), any::<u8>(), 0..3u8), 1..4),
    )
        .prop_map(|(mut bytes, edits)| {
            for (at, b, op) in edits {
                let at = at % (bytes.len() + 1);
                match op {
                    0 => bytes.truncate(at),
                    1 if at < bytes.len() => bytes[at] = b,
                    _ => bytes.insert(at, b),
                }
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn values_round_trip_as_with_rmp_serde(
        (v, u, i, a, f, p, e) in (json(), untagged(), internal(), adjacent(), flat(), plain(), everything()),
        (o, big, neg, x, bytes, s) in (
            nested_option(nested_option(".{0,3}")), any::<u128>(), any::<i128>(), any::<f64>(),
            prop::collection::vec(any::<u8>(), 0..80), ".{0,40}",
        ),
    ) {
        round_trips(&v)?;
        round_trips(&u)?;
        round_trips(&i)?;
        round_trips(&a)?;
        round_trips(&f)?;
        round_trips(&p)?;
        round_trips(&e)?;
        round_trips(&o)?;
        round_trips(&big)?;
        round_trips(&neg)?;
        round_trips(&x)?;
        round_trips(&bytes)?;
        round_trips(&s)?;
    }

    #[test]
    fn values_of_unknown_length_and_extension_structs_are_written_as_rmp_serde_writes_them(
        seq in prop::collection::vec(nested_option(any::<u8>()), 0..40),
        map in prop::collection::btree_map(".{0,3}", nested_option(any::<i32>()), 0..20),
        (ty, data) in (any::<i8>(), prop::collection::vec(any::<u8>(), 0..300)),
    ) {
        round_trips(&Unsized(seq, map))?;
        let ext = RmpExt(ty, data);
        let bytes = MsgPack.encode(&ext).unwrap();
        prop_assert_eq!(bytes, msgpack_reference_encode(&ext).unwrap());
    }

    /// The writer's `collect_seq` gathers scalar and string elements in a 128-byte chunk before
    /// writing them out: elements of every kind, sequences long enough to fill it many times,
    /// elements larger than it, compound elements in between.
    #[test]
    fn sequences_of_every_element_type_are_written_as_rmp_serde_writes_them(
        (small, ints, wide, floats, big) in (
            prop::collection::vec(any::<u8>(), 0..400),
            prop::collection::vec(any::<i64>(), 0..100),
            prop::collection::vec(any::<u64>(), 0..100),
            prop::collection::vec((any::<f32>(), any::<f64>()), 0..40),
            prop::collection::vec((any::<u128>(), any::<i128>()), 0..20),
        ),
        (scalars, strings, options, deep) in (
            prop::collection::vec(
                (any::<bool>(), any::<char>(), any::<i8>(), any::<i16>(), any::<u16>(), any::<i32>(), any::<u32>()),
                0..30,
            ),
            prop::collection::vec(".{0,150}", 0..12),
            prop::collection::vec(nested_option(any::<u8>()), 0..200),
            prop::collection::vec(nested_option(nested_option(".{0,3}")), 0..40),
        ),
        (plains, inners, nested, units, exts) in (
            prop::collection::vec(plain(), 0..10),
            prop::collection::vec(inner(), 0..10),
            prop::collection::vec(prop::collection::vec(any::<u16>(), 0..40), 0..10),
            0..40usize,
            prop::collection::vec((any::<i8>(), prop::collection::vec(any::<u8>(), 0..200)), 0..5),
        ),
    ) {
        round_trips(&small)?;
        round_trips(&ints)?;
        round_trips(&wide)?;
        round_trips(&floats)?;
        round_trips(&big)?;
        round_trips(&scalars)?;
        round_trips(&strings)?;
        round_trips(&options)?;
        round_trips(&deep)?;
        round_trips(&plains)?;
        round_trips(&inners)?;
        round_trips(&nested)?;
        round_trips(&vec![(); units])?;
        round_trips(&vec![UnitStruct; units])?;
        round_trips(&vec![Newtype(Some(7)); units])?;
        // Mixed: chunked scalars, then a string and binary strings that go past the chunk.
        let mixed: Vec<(u8, String, Plain)> = strings
            .iter()
            .zip(&plains)
            .enumerate()
            .map(|(i, (s, p))| (i as u8, s.clone(), p.clone()))
            .collect();
        round_trips(&mixed)?;
        let exts: Vec<RmpExt> = exts.into_iter().map(|(ty, data)| RmpExt(ty, data)).collect();
        let bytes = MsgPack.encode(&exts).unwrap();
        prop_assert_eq!(bytes, msgpack_reference_encode(&exts).unwrap());
        let raw: Vec<Raw> = strings.iter().map(|s| Raw(s.as_bytes().to_vec())).collect();
        let bytes = MsgPack.encode(&raw).unwrap();
        prop_assert_eq!(bytes, msgpack_reference_encode(&raw).unwrap());
    }

    #[test]
    fn values_read_as_every_type_as_the_reference(bytes in encoded()) {
        same_for_all(&bytes)?;
    }

    #[test]
    fn damaged_values_read_as_the_reference(bytes in damaged()) {
        same_for_all(&bytes)?;
    }

    /// Strings are validated with simdutf8 (SIMD from 64 bytes): valid and broken UTF-8 of
    /// every length around its 64-byte blocks, broken anywhere, read as the reference reads it.
    #[test]
    fn strings_of_any_length_and_validity_read_as_the_reference(
        text in ".{0,150}",
        ascii in "[a-z]{0,300}",
        (at, bad) in (any::<prop::sample::Index>(), prop::sample::select(vec![0x80u8, 0xbf, 0xc0, 0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xf8, 0xff])),
        cut in any::<prop::sample::Index>(),
    ) {
        for body in [text.as_bytes(), ascii.as_bytes()] {
            let mut broken = body.to_vec();
            if !broken.is_empty() {
                let i = at.index(broken.len());
                broken[i] = bad;
            }
            let truncated = &body[..cut.index(body.len() + 1)];
            for b in [body, &broken[..], truncated] {
                let bytes = [&str_header(b.len())[..], b].concat();
                same::<String>(&bytes)?;
                same::<Value>(&bytes)?;
                same::<Vec<u8>>(&bytes)?;
                same::<char>(&bytes)?;
                same::<Plain>(&bytes)?;
            }
        }
    }

    #[test]
    fn arbitrary_bytes_read_as_the_reference(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        same_for_all(&bytes)?;
    }
}

/// The MessagePack string header of a `len`-byte string.
fn str_header(len: usize) -> Vec<u8> {
    match len {
        0..32 => vec![0xa0 | len as u8],
        32..256 => vec![0xd9, len as u8],
        _ => [&[0xda][..], &(len as u16).to_be_bytes()].concat(),
    }
}

/// Hand-made inputs on rmp-serde's and the adapter's odd paths, read as every type.
#[test]
fn odd_inputs_read_as_the_reference() {
    let mut cases: Vec<Vec<u8>> = vec![
        // 128-bit integers: a fixed array (never 16 long) of raw bytes, -1 as u128, a binary
        // string of another length than 16.
        [&[0x9f_u8][..], &[0xff; 15]].concat(),
        vec![0xff],
        vec![0xc4, 15, 0],
        [&[0xc4_u8, 16][..], &[0xab; 16]].concat(),
        // A binary string read as a sequence, followed by what looks like a nested `None`.
        vec![0x92, 0xc4, 2, 1, 2, 0xd4, 0x42, 1],
        vec![0xc4, 2, 1, 2, 0xd4, 0x42, 1, 0xd4, 0x42, 1],
        vec![0xc4, 3, 1, 2, 3],
        vec![0x92, 0xc4, 1, 9, 0xc0],
        // Extension values: a nested `None`, other types, inside arrays, and odd lengths.
        vec![0xd4, 0x42, 1],
        vec![0xd4, 0x42, 2],
        vec![0xd4, 0x42, 0],
        vec![0xd4, 0xd4, 0x42, 1],
        vec![0xd5, 0x01, 0xd4, 0x42],
        vec![0xc7, 0, 5],
        vec![0xc7, 3, 0x42, 0xd4, 0x42, 1],
        vec![0x92, 0xd4, 0x42, 1, 0xc0],
        vec![0x91, 0xd6, 1, 2, 3, 4, 5],
        // Enums: `{variant: content}` in a map 16, a unit variant as `{name: nil}`, as an index,
        // a map of two entries, a truncated map 16.
        vec![0xde, 0, 1, 0xa3, b'N', b'e', b'w', 5],
        vec![0x81, 0xa4, b'U', b'n', b'i', b't', 0xc0],
        vec![0x81, 0xa4, b'U', b'n', b'i', b't', 0x01],
        vec![0x00],
        vec![0x04],
        vec![0x82, 0xa1, b'A', 1, 0xa1, b'B', 2],
        vec![0xde, 0],
        vec![0x81, 0xa3, b'N', b'e', b'w', 0xd4, 0x42, 1],
        vec![0x81, 0xa3, b'T', b'u', b'p', 0x92, 1, 0xd4, 0x42, 1],
        // Unit structs and units: `[]` and nil.
        vec![0x90],
        vec![0xc0],
        // Strings that are not UTF-8, read as strings and as bytes.
        vec![0xa2, 0xff, 0xfe],
        vec![0xd9, 2, 0xc3, 0x28],
        // Lengths beyond the input.
        vec![0xdd, 0xff, 0xff, 0xff, 0xff, 1],
        vec![0xdf, 0xff, 0xff, 0xff, 0xff],
        vec![0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
        vec![0xc6, 0xff, 0xff, 0xff, 0xff],
        // Never used, and trailing bytes.
        vec![0xc1],
        vec![0x01, 0x02],
        vec![],
    ];
    // Nesting at rmp-serde's depth limit and past it.
    for depth in [1022, 1023, 1024] {
        let mut deep = vec![0x91; depth];
        deep.push(0x01);
        cases.push(deep);
    }
    // rmp-serde under the adapter takes more stack per level than the default test thread has
    // for 1023 levels.
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            for bytes in &cases {
                same_for_all(bytes).unwrap_or_else(|e| panic!("{e}"));
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

/// What rmp-serde alone cannot bound: options, enums and newtype structs nested without end
/// (rmp-serde overflows the stack on these). The reader refuses them with an error.
#[test]
fn nesting_that_rmp_serde_does_not_count_is_bounded() {
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    enum Tree {
        Leaf,
        Node(Box<Tree>),
    }
    let mut deep = Vec::new();
    for _ in 0..100_000 {
        deep.extend_from_slice(&[0x81, 0xa4, b'N', b'o', b'd', b'e']);
    }
    deep.extend_from_slice(&[0xa4, b'L', b'e', b'a', b'f']);
    let e = MsgPack.decode::<Tree>(&deep).unwrap_err();
    assert!(e.to_string().contains("nested"), "{e}");
    let mut ok = Vec::new();
    for _ in 0..100 {
        ok.extend_from_slice(&[0x81, 0xa4, b'N', b'o', b'd', b'e']);
    }
    ok.extend_from_slice(&[0xa4, b'L', b'e', b'a', b'f']);
    MsgPack.decode::<Tree>(&ok).unwrap();

    // A newtype of an option of itself reads no byte per level.
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Loop(Option<Box<Loop>>);
    assert!(MsgPack.decode::<Loop>(&[0x01]).is_err());
    assert!(MsgPack.decode::<Loop>(&[0xc0]).is_ok());
}

/// A `Deserialize` that swallows the reader's errors and reads on (as `serde_with`'s
/// `DefaultOnError` does) must find the nesting budgets as they were: each refused value
/// leaves them unspent, so they never run below zero (a panic in debug builds, and past the
/// 1023-level bound into the stack in release builds, before the fix).
#[test]
fn a_swallowed_depth_error_leaves_the_budget_whole() {
    struct Lenient;
    impl<'de> Deserialize<'de> for Lenient {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Lenient, D::Error> {
            let _ = serde::de::IgnoredAny::deserialize(d);
            Ok(Lenient)
        }
    }
    // 1,100 elements, each 1,100 arrays deep (past the 1023-level budget), then one 3 deep.
    let elements = 1_101u32;
    let mut bytes = vec![0xdd];
    bytes.extend_from_slice(&elements.to_be_bytes());
    for _ in 0..elements - 1 {
        bytes.extend(std::iter::repeat_n(0x91, 1_100));
        bytes.push(0x01);
    }
    bytes.extend_from_slice(&[0x91, 0x91, 0x91, 0x01]);
    // Each refused element stops mid-value, so what follows is read from inside it and the
    // whole may end as an error; what matters is that it ends, without a panic.
    let _ = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || MsgPack.decode::<Vec<Lenient>>(&bytes).map(|v| v.len()))
        .unwrap()
        .join()
        .expect("no panic");

    // The option/newtype budget: a newtype of an option of itself reads no byte per level, so
    // `0x01` runs it out; 1,100 of those refused and swallowed.
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Loop(Option<Box<Loop>>);
    struct LenientLoop;
    impl<'de> Deserialize<'de> for LenientLoop {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<LenientLoop, D::Error> {
            let _ = Loop::deserialize(d);
            Ok(LenientLoop)
        }
    }
    let mut loops = vec![0xdd];
    loops.extend_from_slice(&1_101u32.to_be_bytes());
    loops.extend(std::iter::repeat_n(0x01, 1_100));
    loops.push(0xc0);
    let _ = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || MsgPack.decode::<Vec<LenientLoop>>(&loops).map(|v| v.len()))
        .unwrap()
        .join()
        .expect("no panic");
    // And the budgets still bound what follows: a fresh read of a `Loop` is refused as before.
    assert!(MsgPack.decode::<Loop>(&[0x01]).is_err());
}

#[test]
fn size_hints_are_bounded_by_the_input() {
    // An array that claims 2^32 - 1 elements holds at most as many as bytes are left.
    struct Hint;
    impl<'de> Deserialize<'de> for Hint {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Hint, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Hint;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a sequence or a map")
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(self, s: A) -> Result<Hint, A::Error> {
                    Err(serde::de::Error::custom(format_args!(
                        "{:?}",
                        s.size_hint()
                    )))
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<Hint, A::Error> {
                    Err(serde::de::Error::custom(format_args!(
                        "{:?}",
                        m.size_hint()
                    )))
                }
            }
            d.deserialize_any(V)
        }
    }
    let hint = |bytes: &[u8]| {
        let mut de = Deserializer::new(bytes);
        Hint::deserialize(&mut de).err().unwrap().to_string()
    };
    assert_eq!(hint(&[0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]), "Some(3)");
    assert_eq!(hint(&[0xdf, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]), "Some(1)");
    assert_eq!(hint(&[0x93, 1, 2, 3]), "Some(3)");
}

/// Every marker's boundaries: integers, and lengths of strings, binary strings, arrays and maps
/// on each side of a change of marker, written as rmp-serde writes them.
#[test]
fn lengths_and_integers_at_marker_boundaries_are_written_as_rmp_serde_writes_them() {
    fn check<T: Serialize + DeserializeOwned + Debug>(v: &T) {
        let bytes = MsgPack.encode(v).unwrap();
        assert_eq!(bytes, msgpack_reference_encode(v).unwrap());
        let back: T = MsgPack.decode(&bytes).unwrap();
        assert_eq!(MsgPack.encode(&back).unwrap(), bytes);
    }
    let edges: [i128; 12] = [
        0,
        31,
        32,
        127,
        128,
        255,
        256,
        65535,
        65536,
        1 << 32,
        1 << 40,
        1 << 63,
    ];
    for e in edges {
        for v in [e, e - 1, -e, -e - 1, e + 1] {
            if let Ok(v) = i64::try_from(v) {
                check(&v);
            }
            if let Ok(v) = u64::try_from(v) {
                check(&v);
            }
            if let Ok(v) = i8::try_from(v) {
                check(&v);
            }
            check(&v);
        }
    }
    check(&u64::MAX);
    check(&i64::MIN);
    check(&u128::MAX);
    for n in [0usize, 1, 15, 16, 31, 32, 255, 256, 65535, 65536] {
        check(&"s".repeat(n));
        check(&vec![7u8; n]);
        check(&vec![-7i8; n.min(70_000)]);
        check(
            &(0..n as u32)
                .map(|i| (i, i % 3 == 0))
                .collect::<BTreeMap<u32, bool>>(),
        );
        struct Bytes(Vec<u8>);
        impl Serialize for Bytes {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
        let bin = Bytes(vec![1; n]);
        assert_eq!(
            MsgPack.encode(&bin).unwrap(),
            msgpack_reference_encode(&bin).unwrap()
        );
        check(&vec![1u8; n]);
    }
    check(&(
        1.5f32,
        -0.0f64,
        f64::INFINITY,
        'é',
        (),
        UnitStruct,
        Newtype(Some(3)),
    ));
    check(&Some(Some(None::<u8>)));
}

/// Every scalar marker as an element of a sequence (the reader's fast path for positive
/// fixints, strings read straight from the input, and the full path for the rest) reads as the
/// reference reads it, as every integer, float and string element type, whole and cut short.
#[test]
fn every_scalar_marker_as_an_element_reads_as_the_reference() {
    let elements: Vec<Vec<u8>> = vec![
        vec![0x00],
        vec![0x7f],
        vec![0xe0],
        vec![0xff],
        vec![0xcc, 0xc8],
        vec![0xcd, 0x12, 0x34],
        vec![0xce, 0x12, 0x34, 0x56, 0x78],
        vec![0xcf, 0, 0, 0, 1, 0, 0, 0, 0],
        vec![0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        vec![0xd0, 0x80],
        vec![0xd1, 0xff, 0x00],
        vec![0xd2, 0x80, 0, 0, 0],
        vec![0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0],
        vec![0xca, 0x3f, 0xc0, 0, 0],
        vec![0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0],
        vec![0xc0],
        vec![0xc2],
        vec![0xc3],
        vec![0xa1, b'x'],
        vec![0xa2, 0xc3, 0x28],
        vec![0xd9, 2, b'h', b'i'],
        vec![0xd4, 0x42, 1],
        vec![0x91, 0x05],
        vec![0xc1],
    ];
    for element in &elements {
        // Alone, behind a fixint, before a fixint, and with its last byte cut off.
        let mut inputs = vec![
            [&[0x91][..], element].concat(),
            [&[0x92, 0x01][..], element].concat(),
            [&[0x92][..], element, &[0x02]].concat(),
            [&[0x91][..], &element[..element.len() - 1]].concat(),
        ];
        // In a map, as a key and as a value.
        inputs.push([&[0x81, 0xa1, b'k'][..], element].concat());
        inputs.push([&[0x81][..], element, &[0x01]].concat());
        for bytes in &inputs {
            let check = || -> Result<(), TestCaseError> {
                same::<Vec<u8>>(bytes)?;
                same::<Vec<u16>>(bytes)?;
                same::<Vec<u32>>(bytes)?;
                same::<Vec<u64>>(bytes)?;
                same::<Vec<i8>>(bytes)?;
                same::<Vec<i16>>(bytes)?;
                same::<Vec<i32>>(bytes)?;
                same::<Vec<i64>>(bytes)?;
                same::<Vec<f32>>(bytes)?;
                same::<Vec<f64>>(bytes)?;
                same::<Vec<bool>>(bytes)?;
                same::<Vec<String>>(bytes)?;
                same::<Vec<Option<u8>>>(bytes)?;
                same::<(u8, i64)>(bytes)?;
                same::<BTreeMap<String, u32>>(bytes)?;
                same::<BTreeMap<u8, String>>(bytes)?;
                same_for_all(bytes)
            };
            if let Err(e) = check() {
                panic!("{bytes:x?}: {e}");
            }
        }
    }
}

/// The fast paths refuse what the full path refused, with the same messages.
#[test]
fn fast_path_errors_are_the_full_paths() {
    let err = |bytes: &[u8]| MsgPack.decode::<Vec<u8>>(bytes).unwrap_err().to_string();
    // A float where an integer is expected: the visitor's own refusal.
    assert_eq!(
        err(&[0x92, 0x01, 0xca, 0x3f, 0xc0, 0, 0]),
        "msgpack: invalid type: floating point `1.5`, expected u8"
    );
    // A wider integer that does not fit.
    assert_eq!(
        err(&[0x91, 0xcd, 0x01, 0x00]),
        "msgpack: invalid value: integer `256`, expected u8"
    );
    // A negative fixint.
    assert_eq!(
        err(&[0x91, 0xff]),
        "msgpack: invalid value: integer `-1`, expected u8"
    );
    // An element count larger than the bytes hold.
    assert_eq!(
        err(&[0x93, 0x01, 0x02]),
        "msgpack: the input ends inside a value (3 bytes, more were needed)"
    );
    // An integer cut short.
    assert_eq!(
        err(&[0x92, 0x01, 0xcc]),
        "msgpack: the input ends inside a value (3 bytes, more were needed)"
    );
    // A marker that is no number.
    assert_eq!(
        err(&[0x92, 0x01, 0xc1]),
        "msgpack: expected a number, a boolean or nil, found the never-used marker 0xc1 \
         (marker 0xc1) before byte 3"
    );
    // A string that is not UTF-8, read as a `String` element.
    assert_eq!(
        MsgPack
            .decode::<Vec<String>>(&[0x91, 0xa2, 0xc3, 0x28])
            .unwrap_err()
            .to_string(),
        "msgpack: a string is not valid UTF-8: invalid utf-8 sequence of 1 bytes from index 0"
    );
}

/// A `Vec<u8>` of fixints and `0xcc` values (the fast path and the full path taking turns)
/// reads back whole, and leaves no trailing bytes.
#[test]
fn byte_vectors_mixing_fixints_and_u8_markers_read_back() {
    let v: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let bytes = MsgPack.encode(&v).unwrap();
    assert!(bytes.contains(&0xcc) && bytes.contains(&0x7f));
    assert_eq!(MsgPack.decode::<Vec<u8>>(&bytes).unwrap(), v);
    // Cut anywhere inside, it is an error, never a shorter vector.
    for cut in 0..bytes.len() {
        assert!(
            MsgPack.decode::<Vec<u8>>(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

thread_local! {
    /// Values [`MsgPack::decode`] read with its bulk paths (`de::whole_bytes`,
    /// `de::whole_string`) on this thread.
    pub(in crate::codec) static FAST_READS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// Values [`MsgPack::encode`] wrote with its bulk path (`ser::fixint_array`) on this thread.
    pub(in crate::codec) static FAST_WRITES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Encodes `value`; the bytes, and true when the bulk path wrote them.
fn written_in_bulk<T: Serialize + ?Sized>(value: &T) -> (Vec<u8>, bool) {
    let before = FAST_WRITES.with(std::cell::Cell::get);
    let bytes = MsgPack.encode(value).unwrap();
    (bytes, FAST_WRITES.with(std::cell::Cell::get) > before)
}

/// A `Vec<u8>` or a `[u8]` of every length class of header, all below 0x80, is written in
/// bulk, byte for byte as rmp-serde writes it; one with a byte from 0x80 (anywhere) and other
/// sequences go through the serializer, byte for byte the same too.
#[test]
fn byte_vectors_are_written_in_bulk_as_rmp_serde_writes_them() {
    for len in [0, 1, 15, 16, 17, 255, 65_535, 65_536, 70_000] {
        let high: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
        let low: Vec<u8> = high.iter().map(|b| b & 0x7f).collect();
        let mut one_high = low.clone();
        if let Some(last) = one_high.last_mut() {
            *last = 0x80;
        }
        for v in [&high, &low, &one_high] {
            let reference = msgpack_reference_encode(v).unwrap();
            let bulk = !v.iter().any(|&b| b >= 0x80);
            let (bytes, written) = written_in_bulk(v);
            assert_eq!(written, bulk, "Vec<u8> of {len}");
            assert_eq!(bytes, reference, "Vec<u8> of {len}");
            assert_eq!(bytes.capacity(), bytes.len());
            let (bytes, written) = written_in_bulk(v.as_slice());
            assert_eq!(written, bulk, "[u8] of {len}");
            assert_eq!(bytes, reference, "[u8] of {len}");
            assert_eq!(MsgPack.decode::<Vec<u8>>(&bytes).unwrap(), *v);
        }
    }
    let (bytes, bulk) = written_in_bulk(&vec![1u16, 300]);
    assert!(!bulk);
    assert_eq!(bytes, msgpack_reference_encode(&vec![1u16, 300]).unwrap());
    assert!(
        !written_in_bulk(&[1u8, 2, 3]).1,
        "an array is a tuple to serde, not a slice"
    );
    assert!(!written_in_bulk("text").1);
}

/// Decodes `bytes` as `T`; true when the bulk path read it.
fn read_in_bulk<T: DeserializeOwned>(bytes: &[u8]) -> bool {
    let before = FAST_READS.with(std::cell::Cell::get);
    let _ = MsgPack.decode::<T>(bytes);
    FAST_READS.with(std::cell::Cell::get) > before
}

/// `Vec<u8>` and `String` values as this codec writes them (every length class of header, bytes
/// above 0x7f written as `uint 8`) are read in bulk, to the same value the reader and the
/// reference give; so are binary strings as a `Vec<u8>`. Other types, other integer encodings
/// and cut or padded inputs go to the reader, which says why they do not read.
#[test]
fn byte_vectors_and_strings_are_read_in_bulk() {
    for len in [0, 1, 15, 16, 31, 32, 64, 255, 256, 65_535, 65_536, 70_000] {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
        let encoded = MsgPack.encode(&bytes).unwrap();
        assert!(read_in_bulk::<Vec<u8>>(&encoded), "Vec<u8> of {len}");
        assert_eq!(MsgPack.decode::<Vec<u8>>(&encoded).unwrap(), bytes);
        assert_eq!(
            msgpack_reference_decode::<Vec<u8>>(&encoded).unwrap(),
            bytes
        );
        let ascii: Vec<u8> = bytes.iter().map(|b| b & 0x7f).collect();
        assert!(read_in_bulk::<Vec<u8>>(&MsgPack.encode(&ascii).unwrap()));
        for bin in [
            [&[0xc4, len as u8][..], &bytes].concat(),
            [&[0xc5][..], &(len as u16).to_be_bytes(), &bytes].concat(),
            [&[0xc6][..], &(len as u32).to_be_bytes(), &bytes].concat(),
        ] {
            let whole = match bin[0] {
                0xc4 => len < 256,
                0xc5 => len < 65_536,
                _ => true,
            };
            assert_eq!(read_in_bulk::<Vec<u8>>(&bin), whole, "bin of {len}");
            same::<Vec<u8>>(&bin).unwrap();
        }
        let text: String = (0..len).map(|i| ['a', 'é', '€', '😀'][i % 4]).collect();
        let encoded = MsgPack.encode(&text).unwrap();
        assert!(read_in_bulk::<String>(&encoded), "String of {} chars", len);
        assert_eq!(MsgPack.decode::<String>(&encoded).unwrap(), text);
    }
    let v: Vec<u8> = vec![1, 200, 3];
    let encoded = MsgPack.encode(&v).unwrap();
    assert!(!read_in_bulk::<Vec<u16>>(&encoded));
    assert!(!read_in_bulk::<Vec<i8>>(&encoded));
    assert!(!read_in_bulk::<Value>(&encoded));
    for other in [
        // Another encoding of 200 (`uint 16`), a negative fixint, a float.
        &[0x93, 0x01, 0xcd, 0x00, 0xc8, 0x03][..],
        &[0x91, 0xff],
        &[0x91, 0xca, 0, 0, 0, 0],
        // Cut, padded, a `uint 8` with no byte after it, a string.
        &[0x93, 0x01, 0xcc, 0xc8],
        &[0x92, 0x01, 0x02, 0x03],
        &[0x91, 0xcc],
        &[0xa1, b'a'],
        // A bin shorter or longer than it says.
        &[0xc4, 0x02, 0x01],
        &[0xc4, 0x01, 0x01, 0x02],
        // 0x80 (a map marker, not an integer); one element too many after a `uint 8`; a
        // length of 2^32 - 1 over one byte.
        &[0x91, 0x80],
        &[0x92, 0xcc, 0x80, 0x01, 0x02],
        &[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01],
        &[0xc6, 0xff, 0xff, 0xff, 0xff, 0x01],
    ] {
        assert!(!read_in_bulk::<Vec<u8>>(other), "{other:x?}");
        same::<Vec<u8>>(other).unwrap();
    }
    for other in [
        &[0xa2, b'a'][..],
        &[0xa1, b'a', b'b'],
        &[0xa1, 0xff],
        &[0xc4, 0x01, b'a'],
        &[0x91, 0x61],
        &[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
    ] {
        assert!(!read_in_bulk::<String>(other), "{other:x?}");
        same::<String>(other).unwrap();
    }
    // Invalid UTF-8 at 64 bytes and more (simdutf8's SIMD blocks), anywhere in the string.
    for len in [64, 65, 200] {
        for at in [0, len / 2, len - 1] {
            let mut text = vec![b'a'; len];
            text[at] = 0xff;
            let bytes = [&str_header(len)[..], &text].concat();
            assert!(!read_in_bulk::<String>(&bytes), "{len} bytes, 0xff at {at}");
            same::<String>(&bytes).unwrap();
        }
    }
    // Empty values are read in bulk too.
    for empty in [&[0x90][..], &[0xc4, 0x00], &[0xdc, 0x00, 0x00]] {
        assert!(read_in_bulk::<Vec<u8>>(empty), "{empty:x?}");
        assert_eq!(MsgPack.decode::<Vec<u8>>(empty).unwrap(), Vec::<u8>::new());
    }
    assert!(read_in_bulk::<String>(&[0xa0]));
    assert_eq!(MsgPack.decode::<String>(&[0xa0]).unwrap(), "");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random integer vectors round trip as with rmp-serde, and read as every other integer
    /// vector type as the reference reads them.
    #[test]
    fn integer_vectors_round_trip_as_with_rmp_serde(
        bytes in prop::collection::vec(any::<u8>(), 0..80),
        wide in prop::collection::vec(any::<i64>(), 0..40),
        small in prop::collection::vec(-40i64..200, 0..40),
        halves in prop::collection::vec(any::<u16>(), 0..40),
    ) {
        round_trips(&bytes)?;
        round_trips(&wide)?;
        round_trips(&small)?;
        round_trips(&halves)?;
        for encoded in [
            MsgPack.encode(&bytes).unwrap(),
            MsgPack.encode(&wide).unwrap(),
            MsgPack.encode(&small).unwrap(),
            MsgPack.encode(&halves).unwrap(),
        ] {
            same::<Vec<u8>>(&encoded)?;
            same::<Vec<u16>>(&encoded)?;
            same::<Vec<i64>>(&encoded)?;
            same::<Vec<i8>>(&encoded)?;
            same::<Vec<f64>>(&encoded)?;
        }
    }
}

/// A visitor that leaks its sequence or map access (`mem::forget`, so it is never dropped and
/// never hands its count back) gets an error, not a value read from an unknown position.
#[test]
fn a_leaked_access_is_an_error() {
    use serde::de::{MapAccess, SeqAccess, Visitor};

    #[derive(Debug)]
    struct Leaky;
    impl<'de> Deserialize<'de> for Leaky {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Leaky, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Leaky;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("anything")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Leaky, A::Error> {
                    while s.next_element::<u8>()?.is_some() {}
                    std::mem::forget(s);
                    Ok(Leaky)
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Leaky, A::Error> {
                    while m.next_entry::<u8, u8>()?.is_some() {}
                    std::mem::forget(m);
                    Ok(Leaky)
                }
            }
            d.deserialize_any(V)
        }
    }
    for bytes in [&[0x92, 0x01, 0x02][..], &[0x81, 0x01, 0x02], &[0x90]] {
        let e = MsgPack.decode::<Leaky>(bytes).unwrap_err().to_string();
        assert!(e.contains("leaked"), "{bytes:x?}: {e}");
    }
    // Dropped as usual, the same visitor reads them.
    assert!(MsgPack.decode::<Vec<u8>>(&[0x92, 0x01, 0x02]).is_ok());

    // An inner array whose visitor failed (its error swallowed by a lenient element) leaves no
    // count behind for the outer access's leak to be mistaken for a full read.
    #[derive(Debug)]
    struct Lenient;
    impl<'de> Deserialize<'de> for Lenient {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Lenient, D::Error> {
            let _ = Vec::<u8>::deserialize(d);
            Ok(Lenient)
        }
    }
    #[derive(Debug)]
    struct LeakyOuter;
    impl<'de> Deserialize<'de> for LeakyOuter {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<LeakyOuter, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = LeakyOuter;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an array")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<LeakyOuter, A::Error> {
                    s.next_element::<Lenient>()?;
                    std::mem::forget(s);
                    Ok(LeakyOuter)
                }
            }
            d.deserialize_seq(V)
        }
    }
    // The inner array fails with 3 elements left (more than the outer's 1), and with none.
    for bytes in [
        &[0x91, 0x95, 0x01, 0xc1, 0x02, 0x03, 0x04][..],
        &[0x91, 0x93, 0x01, 0x02, 0xc1],
    ] {
        let e = MsgPack.decode::<LeakyOuter>(bytes).unwrap_err().to_string();
        assert!(e.contains("leaked"), "{bytes:x?}: {e}");
    }
}

/// The one error a fast path gives itself: a positive fixint the visitor refuses, as the full
/// path's integer reader says it.
#[test]
fn a_refused_fixint_is_the_full_paths_error() {
    let expected = "invalid type: integer `5`, expected a boolean";
    // As an element and alone; the same value written as a `u8` takes the full path.
    let element = MsgPack.decode::<Vec<bool>>(&[0x91, 0x05]).unwrap_err();
    let element_full = MsgPack
        .decode::<Vec<bool>>(&[0x91, 0xcc, 0x05])
        .unwrap_err();
    let alone = MsgPack.decode::<bool>(&[0x05]).unwrap_err();
    let alone_full = MsgPack.decode::<bool>(&[0xcc, 0x05]).unwrap_err();
    for e in [&element, &element_full, &alone, &alone_full] {
        assert!(e.to_string().contains(expected), "{e}");
    }
    assert_eq!(element.to_string(), element_full.to_string());
    assert_eq!(alone.to_string(), alone_full.to_string());
}

/// A nested `None` right after a `Some` element, key or value (where the adapter's flag is set
/// again after the `Some`, not at each element) reads as written and as the reference reads it.
#[test]
fn nested_nones_after_somes_read_back() {
    let check = |r: Result<(), TestCaseError>| r.unwrap();
    let v: Vec<Option<Option<u8>>> =
        vec![Some(Some(1)), Some(None), None, Some(None), Some(Some(200))];
    check(round_trips(&v));
    let nested: Vec<Option<Vec<Option<Option<u8>>>>> = vec![
        Some(vec![Some(None), Some(Some(3))]),
        Some(vec![]),
        None,
        Some(vec![Some(None)]),
    ];
    check(round_trips(&nested));
    let m: BTreeMap<u8, Option<Option<Option<u8>>>> = BTreeMap::from([
        (1, Some(Some(None))),
        (2, Some(None)),
        (3, None),
        (4, Some(Some(Some(4)))),
        (5, Some(None)),
    ]);
    check(round_trips(&m));
    let t: (Option<Option<u8>>, Option<Option<u8>>, Option<u8>) = (Some(None), Some(None), Some(7));
    check(round_trips(&t));
}

/// A visitor that stops before the end of an array or map is an error saying how much it read.
#[test]
fn an_array_or_map_read_in_part_says_how_much() {
    use serde::de::{MapAccess, SeqAccess, Visitor};

    #[derive(Debug)]
    struct FirstOnly;
    impl<'de> Deserialize<'de> for FirstOnly {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<FirstOnly, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = FirstOnly;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an array or a map")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<FirstOnly, A::Error> {
                    s.next_element::<u8>()?;
                    Ok(FirstOnly)
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<FirstOnly, A::Error> {
                    m.next_entry::<u8, u8>()?;
                    Ok(FirstOnly)
                }
            }
            d.deserialize_any(V)
        }
    }
    let e = MsgPack
        .decode::<FirstOnly>(&[0x93, 1, 2, 3])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("an array of 3 elements was read as 1 elements"),
        "{e}"
    );
    let e = MsgPack
        .decode::<FirstOnly>(&[0x82, 1, 2, 3, 4])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("a map of 2 entries was read as 1 entries"),
        "{e}"
    );
}
