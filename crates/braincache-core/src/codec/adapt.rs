//! Serde adapters that fix what a format cannot say.
//!
//! - [`NestedOption`], for MessagePack: MessagePack has one `nil`, and rmp-serde writes
//!   `Some(v)` as `v`, so `None` and `Some(None)` are the same bytes. The adapter wraps
//!   rmp-serde's serializer and deserializer so that a `None` inside `n >= 1` `Some`s is written as one extension value `[0xd4, EXT_TYPE, n]` (fixext 1)
//!   and read back as `Some^n(None)`. Everything else passes through unchanged: the bytes of a
//!   value without nested options are plain rmp-serde output. Reading needs to look at the next
//!   bytes before rmp-serde does, so the input is shared between rmp-serde's reader and the
//!   wrappers through a [`Cursor`]. `MsgPack::decode` reads with braincache's own reader
//!   (`msgpack::de`), which makes the same visitor calls; the wrapped rmp-serde reader serves
//!   `MsgPack::to_json` and is the reference the reader is tested against.
//! - [`NonFinite`], for JSON: serde_json writes NaN and the infinities as `null`. The adapter
//!   writes them as marker strings that [`NonFinite::finish`] turns into Python's `NaN`,
//!   `Infinity` and `-Infinity` tokens.

use serde::de::{self, DeserializeSeed, Deserializer, Visitor};
use serde::ser::{self, Serialize, Serializer};
use std::cell::Cell;
use std::fmt;
use std::io;

/// The MessagePack extension type of a nested `None`.
pub(super) const EXT_TYPE: i8 = 0x42;
/// The fixext 1 marker.
const FIXEXT1: u8 = 0xd4;

// ---------------------------------------------------------------------------------------------
// Writing

/// What an adapter changes in serialization; the state is what it knows of the position.
pub(super) trait Hook: Copy {
    /// The state for a child value (an element, a field, a map value).
    fn child(self) -> Self;
    /// The state for a map key.
    fn key(self) -> Self {
        self.child()
    }
    /// Writes `None`.
    fn none<S: Serializer>(self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_none()
    }
    /// The state inside a `Some`.
    fn some<E: ser::Error>(self) -> Result<Self, E> {
        Ok(self.child())
    }
    /// Writes an `f64`.
    fn f64<S: Serializer>(self, s: S, v: f64) -> Result<S::Ok, S::Error> {
        s.serialize_f64(v)
    }
    /// Writes an `f32`.
    fn f32<S: Serializer>(self, s: S, v: f32) -> Result<S::Ok, S::Error> {
        s.serialize_f32(v)
    }
    /// Writes a string.
    fn str<S: Serializer>(self, s: S, v: &str) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }
    /// Writes a `char`.
    fn char<S: Serializer>(self, s: S, v: char) -> Result<S::Ok, S::Error> {
        s.serialize_char(v)
    }
}

/// A value to serialize through the adapter `H`.
pub(super) struct Wrap<'a, T: ?Sized, H> {
    value: &'a T,
    hook: H,
}

impl<'a, T: ?Sized, H> Wrap<'a, T, H> {
    pub(super) fn new(value: &'a T, hook: H) -> Self {
        Wrap { value, hook }
    }
}

impl<T: Serialize + ?Sized, H: Hook> Serialize for Wrap<'_, T, H> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Ser {
            inner: s,
            hook: self.hook,
        })
    }
}

/// The state of [`NestedOption`]: how many `Some`s directly around the value.
#[derive(Clone, Copy, Default)]
pub(super) struct NestedOption {
    somes: u8,
}

impl Hook for NestedOption {
    fn child(self) -> Self {
        NestedOption { somes: 0 }
    }

    fn none<S: Serializer>(self, s: S) -> Result<S::Ok, S::Error> {
        if self.somes == 0 {
            s.serialize_none()
        } else {
            s.serialize_newtype_struct(
                rmp_serde::MSGPACK_EXT_STRUCT_NAME,
                &(EXT_TYPE, ExtBody(self.somes)),
            )
        }
    }

    fn some<E: ser::Error>(self) -> Result<Self, E> {
        let somes = self
            .somes
            .checked_add(1)
            .ok_or_else(|| E::custom("more than 255 nested `Option`s cannot be encoded"))?;
        Ok(NestedOption { somes })
    }
}

/// The state of [`NonFinite`]: whether the value is a map key (keys are left to serde_json).
#[derive(Clone, Copy, Default)]
pub(super) struct NonFinite {
    in_key: bool,
}

/// Marks a string as standing for a non-finite float. No escape serde_json writes contains `~`,
/// so the marker appears in the output only where a string holding it was written, and strings
/// holding it are refused.
pub(crate) const NON_FINITE: &str = "~braincache:non-finite~";

impl NonFinite {
    fn special<S: Serializer>(self, s: S, v: f64) -> Result<S::Ok, S::Error> {
        let token = if v.is_nan() {
            "NaN"
        } else if v > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        };
        s.serialize_str(&format!("{NON_FINITE}{token}"))
    }

    /// Turns the marker strings of serde_json's `out` into `NaN`, `Infinity` and `-Infinity`.
    pub(super) fn finish(out: Vec<u8>) -> Vec<u8> {
        let marker = NON_FINITE.as_bytes();
        if !out.windows(marker.len()).any(|w| w == marker) {
            return out;
        }
        let mut fixed = Vec::with_capacity(out.len());
        let mut rest = &out[..];
        while let Some(at) = rest.windows(marker.len()).position(|w| w == marker) {
            // `"` + marker + token + `"`: keep what precedes the quote, write the bare token.
            fixed.extend_from_slice(&rest[..at - 1]);
            let after = &rest[at + marker.len()..];
            let end = after.iter().position(|&b| b == b'"').unwrap_or(after.len());
            fixed.extend_from_slice(&after[..end]);
            rest = after.get(end + 1..).unwrap_or_default();
        }
        fixed.extend_from_slice(rest);
        fixed
    }
}

impl Hook for NonFinite {
    fn child(self) -> Self {
        NonFinite { in_key: false }
    }

    fn key(self) -> Self {
        NonFinite { in_key: true }
    }

    fn f64<S: Serializer>(self, s: S, v: f64) -> Result<S::Ok, S::Error> {
        if v.is_finite() || self.in_key {
            s.serialize_f64(v)
        } else {
            self.special(s, v)
        }
    }

    fn f32<S: Serializer>(self, s: S, v: f32) -> Result<S::Ok, S::Error> {
        if v.is_finite() || self.in_key {
            s.serialize_f32(v)
        } else {
            self.special(s, f64::from(v))
        }
    }

    fn str<S: Serializer>(self, s: S, v: &str) -> Result<S::Ok, S::Error> {
        if v.contains(NON_FINITE) {
            return Err(ser::Error::custom(format_args!(
                "strings containing {NON_FINITE:?} are reserved"
            )));
        }
        s.serialize_str(v)
    }
}

/// The payload of the extension value: its one data byte.
struct ExtBody(u8);

impl Serialize for ExtBody {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&[self.0])
    }
}

struct Ser<S, H> {
    inner: S,
    hook: H,
}

macro_rules! forward_ser {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $method(self, $($arg: $ty),*) -> Result<S::Ok, S::Error> {
            self.inner.$method($($arg),*)
        })*
    };
}

impl<S: Serializer, H: Hook> Serializer for Ser<S, H> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<S::SerializeSeq, H>;
    type SerializeTuple = Compound<S::SerializeTuple, H>;
    type SerializeTupleStruct = Compound<S::SerializeTupleStruct, H>;
    type SerializeTupleVariant = Compound<S::SerializeTupleVariant, H>;
    type SerializeMap = Compound<S::SerializeMap, H>;
    type SerializeStruct = Compound<S::SerializeStruct, H>;
    type SerializeStructVariant = Compound<S::SerializeStructVariant, H>;

    forward_ser! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_bytes(v: &[u8]);
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
        self.hook.f32(self.inner, v)
    }

    fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
        self.hook.f64(self.inner, v)
    }

    fn serialize_char(self, v: char) -> Result<S::Ok, S::Error> {
        self.hook.char(self.inner, v)
    }

    fn serialize_str(self, v: &str) -> Result<S::Ok, S::Error> {
        self.hook.str(self.inner, v)
    }

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.hook.none(self.inner)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        let hook = self.hook.some()?;
        self.inner.serialize_some(&Wrap { value, hook })
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.inner
            .serialize_newtype_struct(name, &Wrap::new(value, self.hook))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.inner.serialize_newtype_variant(
            name,
            index,
            variant,
            &Wrap::new(value, self.hook.child()),
        )
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.inner
            .serialize_seq(len)
            .map(|c| Compound(c, self.hook.child()))
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.inner
            .serialize_tuple(len)
            .map(|c| Compound(c, self.hook.child()))
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.inner
            .serialize_tuple_struct(name, len)
            .map(|c| Compound(c, self.hook.child()))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.inner
            .serialize_tuple_variant(name, index, variant, len)
            .map(|c| Compound(c, self.hook.child()))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.inner
            .serialize_map(len)
            .map(|c| Compound(c, self.hook.child()))
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        self.inner
            .serialize_struct(name, len)
            .map(|c| Compound(c, self.hook.child()))
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.inner
            .serialize_struct_variant(name, index, variant, len)
            .map(|c| Compound(c, self.hook.child()))
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A sequence, tuple, map or struct being written: each element is wrapped.
struct Compound<C, H>(C, H);

/// The sequence-like compounds: each element is wrapped.
macro_rules! compound_elements {
    ($($trait:ident::$method:ident;)*) => {
        $(impl<C: ser::$trait, H: Hook> ser::$trait for Compound<C, H> {
            type Ok = C::Ok;
            type Error = C::Error;
            fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), C::Error> {
                self.0.$method(&Wrap::new(v, self.1))
            }
            fn end(self) -> Result<C::Ok, C::Error> {
                self.0.end()
            }
        })*
    };
}

compound_elements! {
    SerializeSeq::serialize_element;
    SerializeTuple::serialize_element;
    SerializeTupleStruct::serialize_field;
    SerializeTupleVariant::serialize_field;
}

/// The struct-like compounds: each field's value is wrapped.
macro_rules! compound_fields {
    ($($trait:ident;)*) => {
        $(impl<C: ser::$trait, H: Hook> ser::$trait for Compound<C, H> {
            type Ok = C::Ok;
            type Error = C::Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                v: &T,
            ) -> Result<(), C::Error> {
                self.0.serialize_field(key, &Wrap::new(v, self.1))
            }
            fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
                self.0.skip_field(key)
            }
            fn end(self) -> Result<C::Ok, C::Error> {
                self.0.end()
            }
        })*
    };
}

compound_fields! {
    SerializeStruct;
    SerializeStructVariant;
}

impl<C: ser::SerializeMap, H: Hook> ser::SerializeMap for Compound<C, H> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), C::Error> {
        self.0.serialize_key(&Wrap::new(k, self.1.key()))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), C::Error> {
        self.0.serialize_value(&Wrap::new(v, self.1))
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

/// The unread input, shared by rmp-serde's reader and the wrappers that peek at it.
pub(super) struct Cursor<'b> {
    rest: Cell<&'b [u8]>,
    /// Set when an extension value was read (a nested `None`, or another extension type).
    saw_extension: Cell<bool>,
}

impl<'b> Cursor<'b> {
    pub(super) fn new(bytes: &'b [u8]) -> Self {
        Cursor {
            rest: Cell::new(bytes),
            saw_extension: Cell::new(false),
        }
    }

    /// True when an extension value was read: JSON has nothing to say it with.
    pub(super) fn saw_extension(&self) -> bool {
        self.saw_extension.get()
    }

    /// How many bytes are left.
    pub(super) fn remaining(&self) -> usize {
        self.rest.get().len()
    }
}

/// Reads from a [`Cursor`] (what rmp-serde's deserializer is given).
pub(super) struct Reader<'c, 'b>(pub(super) &'c Cursor<'b>);

impl io::Read for Reader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = self.0.rest.get();
        let n = buf.len().min(rest.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.0.rest.set(&rest[n..]);
        Ok(n)
    }
}

/// What the wrappers need of the cursor, without its lifetime.
trait Peek {
    /// The `n` of a nested-`None` extension value at the front of the input, consuming it.
    fn take_nested_none(&self) -> Option<u8>;
    /// Notes that a newtype struct was visited: read through `deserialize_any`, as when
    /// transcoding, only extension values are.
    fn newtype_visited(&self);
}

impl Peek for Cursor<'_> {
    fn take_nested_none(&self) -> Option<u8> {
        match self.rest.get() {
            [FIXEXT1, ty, n, rest @ ..] if *ty as i8 == EXT_TYPE && *n > 0 => {
                let n = *n;
                self.rest.set(rest);
                self.saw_extension.set(true);
                Some(n)
            }
            _ => None,
        }
    }

    fn newtype_visited(&self) {
        self.saw_extension.set(true);
    }
}

/// Writes the value rmp-serde's deserializer `de` reads (from `cursor`) to `s`, as it is.
pub(super) fn transcode<'de, D, S>(de: D, cursor: &Cursor<'_>, s: S) -> Result<S::Ok, S::Error>
where
    D: Deserializer<'de>,
    S: Serializer,
{
    serde_transcode::Transcoder::new(De {
        inner: de,
        peek: cursor,
        marker_taken: false,
    })
    .serialize(s)
}

/// Deserializes a `T` from rmp-serde's deserializer `de`, which reads from `cursor`.
#[cfg(any(test, feature = "testkit"))]
pub(super) fn deserialize<'de, T, D>(de: D, cursor: &Cursor<'_>) -> Result<T, D::Error>
where
    T: de::Deserialize<'de>,
    D: Deserializer<'de>,
{
    T::deserialize(De {
        inner: de,
        peek: cursor,
        marker_taken: false,
    })
}

/// A wrapped deserializer. `marker_taken`: rmp-serde has already read the next value's marker
/// (it keeps it after `deserialize_option` finds a value), so the cursor is past it and must not
/// be peeked at.
struct De<'p, D> {
    inner: D,
    peek: &'p dyn Peek,
    marker_taken: bool,
}

impl<'p, D> De<'p, D> {
    fn nested_none(&self) -> Option<u8> {
        if self.marker_taken {
            None
        } else {
            self.peek.take_nested_none()
        }
    }
}

/// `Some^n(None)`, as read from one extension value.
pub(super) struct NestedNone<E> {
    somes: u8,
    error: std::marker::PhantomData<E>,
}

impl<E> NestedNone<E> {
    /// `Some^somes(None)`.
    pub(super) fn new(somes: u8) -> Self {
        NestedNone {
            somes,
            error: std::marker::PhantomData,
        }
    }
}

impl<'de, E: de::Error> Deserializer<'de> for NestedNone<E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.somes.checked_sub(1) {
            None => visitor.visit_none(),
            Some(somes) => visitor.visit_some(NestedNone {
                somes,
                error: self.error,
            }),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, E> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// Calls `$callback!` with every `deserialize_*` method of serde's `Deserializer` but
/// `deserialize_any` and `deserialize_option` (the two the nested-`None` adapters look at), each
/// with its arguments.
macro_rules! deserialize_methods {
    ($callback:ident) => {
        $callback! {
            deserialize_bool();
            deserialize_i8();
            deserialize_i16();
            deserialize_i32();
            deserialize_i64();
            deserialize_i128();
            deserialize_u8();
            deserialize_u16();
            deserialize_u32();
            deserialize_u64();
            deserialize_u128();
            deserialize_f32();
            deserialize_f64();
            deserialize_char();
            deserialize_str();
            deserialize_string();
            deserialize_bytes();
            deserialize_byte_buf();
            deserialize_unit();
            deserialize_unit_struct(name: &'static str);
            deserialize_newtype_struct(name: &'static str);
            deserialize_seq();
            deserialize_tuple(len: usize);
            deserialize_tuple_struct(name: &'static str, len: usize);
            deserialize_map();
            deserialize_struct(name: &'static str, fields: &'static [&'static str]);
            deserialize_enum(name: &'static str, variants: &'static [&'static str]);
            deserialize_identifier();
            deserialize_ignored_any();
        }
    };
}
pub(super) use deserialize_methods;

macro_rules! forward_de {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method($($arg,)* Wrapped { inner: visitor, peek: self.peek, marker_taken: self.marker_taken })
        })*
    };
}

impl<'de, 'p, D: Deserializer<'de>> Deserializer<'de> for De<'p, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        if let Some(somes) = self.nested_none() {
            return visitor.visit_some(NestedNone {
                somes: somes - 1,
                error: std::marker::PhantomData,
            });
        }
        self.inner.deserialize_any(Wrapped {
            inner: visitor,
            peek: self.peek,
            marker_taken: self.marker_taken,
        })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        if let Some(somes) = self.nested_none() {
            return visitor.visit_some(NestedNone {
                somes: somes - 1,
                error: std::marker::PhantomData,
            });
        }
        self.inner.deserialize_option(Wrapped {
            inner: visitor,
            peek: self.peek,
            marker_taken: self.marker_taken,
        })
    }

    deserialize_methods!(forward_de);

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A wrapped visitor: whatever rmp-serde hands it (a deserializer, a sequence, a map, an enum)
/// is wrapped in turn. `marker_taken` is that of the deserializer it was given to: a newtype
/// struct's content is the same value.
struct Wrapped<'p, V> {
    inner: V,
    peek: &'p dyn Peek,
    marker_taken: bool,
}

impl<'p, V> Wrapped<'p, V> {
    fn de<D>(&self, inner: D, marker_taken: bool) -> De<'p, D> {
        De {
            inner,
            peek: self.peek,
            marker_taken,
        }
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {
        $(fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        })*
    };
}

impl<'de, 'p, V: Visitor<'de>> Visitor<'de> for Wrapped<'p, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        // rmp-serde calls this from `deserialize_option` only, keeping the marker it read.
        let de = self.de(d, true);
        self.inner.visit_some(de)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.peek.newtype_visited();
        let de = self.de(d, self.marker_taken);
        self.inner.visit_newtype_struct(de)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(Access {
            inner: seq,
            peek: self.peek,
        })
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(Access {
            inner: map,
            peek: self.peek,
        })
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(Access {
            inner: data,
            peek: self.peek,
        })
    }
}

/// A wrapped seed: the value it deserializes gets a wrapped deserializer.
struct Seed<'p, S> {
    inner: S,
    peek: &'p dyn Peek,
}

impl<'de, 'p, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'p, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(De {
            inner: d,
            peek: self.peek,
            marker_taken: false,
        })
    }
}

/// A wrapped sequence, map, enum or variant.
struct Access<'p, A> {
    inner: A,
    peek: &'p dyn Peek,
}

impl<'p, A> Access<'p, A> {
    fn seed<S>(&self, inner: S) -> Seed<'p, S> {
        Seed {
            inner,
            peek: self.peek,
        }
    }

    fn visitor<V>(&self, inner: V) -> Wrapped<'p, V> {
        Wrapped {
            inner,
            peek: self.peek,
            marker_taken: false,
        }
    }
}

impl<'de, 'p, A: de::SeqAccess<'de>> de::SeqAccess<'de> for Access<'p, A> {
    type Error = A::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        let seed = self.seed(seed);
        self.inner.next_element_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, 'p, A: de::MapAccess<'de>> de::MapAccess<'de> for Access<'p, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let seed = self.seed(seed);
        self.inner.next_key_seed(seed)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        let seed = self.seed(seed);
        self.inner.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, 'p, A: de::EnumAccess<'de>> de::EnumAccess<'de> for Access<'p, A> {
    type Error = A::Error;
    type Variant = Access<'p, A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let peek = self.peek;
        let (value, variant) = self.inner.variant_seed(Seed { inner: seed, peek })?;
        Ok((
            value,
            Access {
                inner: variant,
                peek,
            },
        ))
    }
}

impl<'de, 'p, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Access<'p, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        let seed = self.seed(seed);
        self.inner.newtype_variant_seed(seed)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let visitor = self.visitor(visitor);
        self.inner.tuple_variant(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let visitor = self.visitor(visitor);
        self.inner.struct_variant(fields, visitor)
    }
}
