//! The MessagePack reader of [`MsgPack::decode`](crate::MsgPack): a serde `Deserializer` over a
//! byte slice.
//!
//! It makes, call for call, the visitor calls that rmp-serde 1.3's `Deserializer` makes when
//! wrapped in the nested-`None` adapter ([`adapt`](super::super::adapt)), so every type reads
//! what it read before: the same value, or an error where there was one. The state is
//! rmp-serde's (the unread input, a marker read ahead by `deserialize_option` or
//! `deserialize_enum`, a depth budget for arrays, maps and extension values) plus the adapter's
//! (whether a nested `None` may be taken at this value). Differences, none of which changes a
//! result for values nested less than 1023 deep:
//! - errors say where the input ended or which marker was refused, in other words;
//! - options, enums and newtype structs have a nesting budget too ([`NESTING`]): rmp-serde
//!   recurses there without bound, so a hostile input (or `struct R(Option<Box<R>>)`) could
//!   overflow the stack;
//! - a sequence's or map's size hint is capped by the bytes left (each element takes at least
//!   one), so a hostile length cannot make a visitor preallocate more than the input justifies.
//!
//! Why by hand: rmp-serde reads markers through `io::Read` into an enum and carries 40-byte
//! errors through every call. Reading the slice directly takes 40 % fewer instructions for a
//! 64-byte `Vec<u8>` (3,676 → 2,219, callgrind) and about 20 % less time.
//!
//! The per-element path of arrays is kept short (a 64-byte `Vec<u8>`: 2,219 → 1,568
//! instructions per decode; serde's element loop: 19 instructions per fixint element, 6 of
//! them the `Vec` push): the integer `deserialize_*` methods take a positive fixint straight
//! from the input when no marker is read ahead (and `deserialize_str`/`deserialize_string` a
//! whole, valid string of up to 255 bytes), everything else and every error taking the full
//! path; the input is a slice iterator (a byte read is a compare and an increment); the
//! array or map access goes to the visitor by value, in registers, and hands its count back
//! when dropped; the adapter's flag is set once per array or map and after each `Some`, not
//! per element. The commits that made each change give its figures.

use super::super::adapt::{EXT_TYPE, NestedNone, deserialize_methods};
use serde::de::{self, DeserializeSeed, Visitor};
use std::fmt;

/// rmp-serde's depth budget: 1023 nested arrays, maps or extension values read, the next fails.
const DEPTH: u16 = 1024;
/// The budget of nested options, enums and newtype structs (which rmp-serde does not count).
const NESTING: u16 = 1024;

const FIXEXT1: u8 = 0xd4;

/// A decoding (or encoding, see `ser`) error: what failed, in words.
/// (A thin box: results stay two words, which keeps the per-element path in registers.)
pub(in crate::codec) struct Error(Box<Message>);

/// What an [`Error`] says.
struct Message(String);

impl Error {
    #[cold]
    pub(super) fn new(message: impl Into<String>) -> Self {
        Error(Box::new(Message(message.into())))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0.0, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    #[cold]
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::new(msg.to_string())
    }
}

impl serde::ser::Error for Error {
    #[cold]
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::new(msg.to_string())
    }
}

/// The MessagePack type a marker byte starts, for messages.
fn kind(marker: u8) -> &'static str {
    match marker {
        0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xd3 => "an integer",
        0x80..=0x8f | 0xde | 0xdf => "a map",
        0x90..=0x9f | 0xdc | 0xdd => "an array",
        0xa0..=0xbf | 0xd9..=0xdb => "a string",
        0xc0 => "nil",
        0xc1 => "the never-used marker 0xc1",
        0xc2 | 0xc3 => "a boolean",
        0xc4..=0xc6 => "a binary string",
        0xc7..=0xc9 | 0xd4..=0xd8 => "an extension value",
        0xca | 0xcb => "a float",
    }
}

/// A MessagePack deserializer over `bytes`; see the module docs.
pub(in crate::codec) struct Deserializer<'de> {
    /// The unread input (an iterator: a byte read is a pointer compare and increment, with no
    /// length to keep).
    input: std::slice::Iter<'de, u8>,
    /// The length of the whole input (positions in messages).
    len: usize,
    /// A marker already taken from the input whose value is still to be read.
    marker: Option<u8>,
    /// Arrays, maps and extension values that may still be entered (rmp-serde's `depth`).
    depth: u16,
    /// Options, enums and newtype structs that may still be entered.
    nesting: u16,
    /// True when the value about to be read may be a nested `None` (the adapter's
    /// `!marker_taken`): cleared inside `Some` until its value is read, true everywhere else
    /// (set when an array or map starts, after a `Some`'s value, and for every variant).
    may_nest: bool,
    /// The elements or entries the last array or map left unread, handed back when its access
    /// ([`Elements`], [`Entries`]) is dropped; `None` until then.
    left: Option<u32>,
}

impl<'de> Deserializer<'de> {
    pub(in crate::codec) fn new(bytes: &'de [u8]) -> Self {
        Deserializer {
            input: bytes.iter(),
            len: bytes.len(),
            marker: None,
            depth: DEPTH,
            nesting: NESTING,
            may_nest: true,
            left: None,
        }
    }

    /// How many bytes are left unread.
    pub(in crate::codec) fn remaining(&self) -> usize {
        self.input.len()
    }

    fn position(&self) -> usize {
        self.len - self.input.len()
    }

    #[cold]
    fn eof(&self) -> Error {
        Error::new(format!(
            "the input ends inside a value ({} bytes, more were needed)",
            self.len
        ))
    }

    #[cold]
    fn refused(&self, marker: u8, expected: &str) -> Error {
        Error::new(format!(
            "expected {expected}, found {} (marker {marker:#04x}) before byte {}",
            kind(marker),
            self.position()
        ))
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, Error> {
        match self.input.next() {
            Some(&b) => Ok(b),
            None => Err(self.eof()),
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8], Error> {
        match self.input.as_slice().split_at_checked(n) {
            Some((head, rest)) => {
                self.input = rest.iter();
                Ok(head)
            }
            None => {
                // As `Read::read_exact` on a slice: what is left is used up.
                self.input = [].iter();
                Err(self.eof())
            }
        }
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let head = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }

    /// A slice of `n` bytes; a length beyond the input uses nothing (as rmp-serde's
    /// `read_slice`).
    #[inline]
    fn slice(&mut self, n: usize) -> Result<&'de [u8], Error> {
        match self.input.as_slice().split_at_checked(n) {
            Some((head, rest)) => {
                self.input = rest.iter();
                Ok(head)
            }
            None => Err(self.eof()),
        }
    }

    #[inline]
    fn u8(&mut self) -> Result<u8, Error> {
        self.byte()
    }

    #[inline]
    fn u16(&mut self) -> Result<u16, Error> {
        self.array().map(u16::from_be_bytes)
    }

    #[inline]
    fn u32(&mut self) -> Result<u32, Error> {
        self.array().map(u32::from_be_bytes)
    }

    /// The marker read ahead, or the next byte.
    #[inline]
    fn marker(&mut self) -> Result<u8, Error> {
        match self.marker.take() {
            Some(m) => Ok(m),
            None => self.byte(),
        }
    }

    /// A nested `None` at the front of the input, when one may be here (see
    /// [`take_nested_none`](Self::take_nested_none)).
    #[inline]
    fn nested_none(&mut self) -> Option<u8> {
        if self.may_nest {
            self.take_nested_none()
        } else {
            None
        }
    }

    /// The `n` of a nested `None` at the front of the input, consumed: `[0xd4, 0x42, n]` with
    /// `n > 0` is `Some^n(None)`. As the adapter, looks at the input only (not at a marker
    /// read ahead).
    #[inline]
    fn take_nested_none(&mut self) -> Option<u8> {
        match self.input.as_slice() {
            [FIXEXT1, ty, n, rest @ ..] if *ty as i8 == EXT_TYPE && *n > 0 => {
                let n = *n;
                self.input = rest.iter();
                Some(n)
            }
            _ => None,
        }
    }

    /// Runs `f` one level deeper in rmp-serde's budget.
    #[inline]
    fn deeper<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, Error>) -> Result<T, Error> {
        // Refused before the budget is spent, so a caller that swallows the error (a lenient
        // `Deserialize`) and reads on finds the budget as it was, never below zero.
        if self.depth <= 1 {
            return Err(Error::new(
                "more than 1023 nested arrays, maps or extension values",
            ));
        }
        self.depth -= 1;
        let out = f(self);
        self.depth += 1;
        out
    }

    /// Runs `f` one level deeper in the option, enum and newtype budget.
    #[inline]
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, Error>) -> Result<T, Error> {
        // As in `deeper`: refused before the budget is spent.
        if self.nesting <= 1 {
            return Err(Error::new(
                "more than 1023 nested options, enums or newtype structs",
            ));
        }
        self.nesting -= 1;
        let out = f(self);
        self.nesting += 1;
        out
    }

    /// A number, a boolean or nil read from the marker on (the full path of [`fixint`]).
    #[inline]
    fn full_number<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Error> {
        let marker = self.marker()?;
        self.number(marker, visitor)
    }

    /// Any value, bytes allowed (the full path of [`short_str`]).
    fn full_any<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Error> {
        self.any(visitor, true)
    }

    /// A number, a boolean or nil, as rmp-serde's `any_num` visits them.
    #[inline]
    fn number<V: Visitor<'de>>(&mut self, marker: u8, visitor: V) -> Result<V::Value, Error> {
        match marker {
            0x00..=0x7f => visitor.visit_u8(marker),
            0xe0..=0xff => visitor.visit_i8(marker as i8),
            _ => self.other_number(marker, visitor),
        }
    }

    fn other_number<V: Visitor<'de>>(&mut self, marker: u8, visitor: V) -> Result<V::Value, Error> {
        match marker {
            0xc0 => visitor.visit_unit(),
            0xc2 => visitor.visit_bool(false),
            0xc3 => visitor.visit_bool(true),
            0xcc => visitor.visit_u8(self.u8()?),
            0xcd => visitor.visit_u16(self.u16()?),
            0xce => visitor.visit_u32(self.u32()?),
            0xcf => visitor.visit_u64(u64::from_be_bytes(self.array()?)),
            0xd0 => visitor.visit_i8(self.u8()? as i8),
            0xd1 => visitor.visit_i16(i16::from_be_bytes(self.array()?)),
            0xd2 => visitor.visit_i32(i32::from_be_bytes(self.array()?)),
            0xd3 => visitor.visit_i64(i64::from_be_bytes(self.array()?)),
            0xca => visitor.visit_f32(f32::from_bits(self.u32()?)),
            0xcb => visitor.visit_f64(f64::from_bits(u64::from_be_bytes(self.array()?))),
            m => Err(self.refused(m, "a number, a boolean or nil")),
        }
    }

    /// Any value (rmp-serde's `any_inner`); `allow_bytes: false` visits a binary string as a
    /// sequence of `u8`.
    fn any<V: Visitor<'de>>(&mut self, visitor: V, allow_bytes: bool) -> Result<V::Value, Error> {
        let marker = self.marker()?;
        match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 | 0xca..=0xd3 => {
                self.number(marker, visitor)
            }
            0xa0..=0xbf => self.str(usize::from(marker & 0x1f), visitor),
            0xd9 => {
                let n = self.u8()?;
                self.str(usize::from(n), visitor)
            }
            0xda => {
                let n = self.u16()?;
                self.str(usize::from(n), visitor)
            }
            0xdb => {
                let n = self.u32()?;
                self.str(n as usize, visitor)
            }
            0x90..=0x9f => self.seq(u32::from(marker & 0x0f), visitor),
            0xdc => {
                let n = self.u16()?;
                self.seq(u32::from(n), visitor)
            }
            0xdd => {
                let n = self.u32()?;
                self.seq(n, visitor)
            }
            0x80..=0x8f => self.map(u32::from(marker & 0x0f), visitor),
            0xde => {
                let n = self.u16()?;
                self.map(u32::from(n), visitor)
            }
            0xdf => {
                let n = self.u32()?;
                self.map(n, visitor)
            }
            0xc4..=0xc6 => {
                let n = match marker {
                    0xc4 => u32::from(self.u8()?),
                    0xc5 => u32::from(self.u16()?),
                    _ => self.u32()?,
                };
                let bytes = self.slice(n as usize)?;
                if allow_bytes {
                    visitor.visit_borrowed_bytes(bytes)
                } else {
                    visitor.visit_seq(BinElements {
                        de: self,
                        bytes: bytes.iter(),
                    })
                }
            }
            0xc7..=0xc9 | 0xd4..=0xd8 => {
                let len = self.ext_len(marker)?;
                self.deeper(|de| visitor.visit_newtype_struct(Ext::new(de, len)))
            }
            _ => Err(self.refused(marker, "a value")),
        }
    }

    fn str<V: Visitor<'de>>(&mut self, len: usize, visitor: V) -> Result<V::Value, Error> {
        let bytes = self.slice(len)?;
        // simdutf8: the same answer as `core::str::from_utf8`, with SIMD from 64 bytes up
        // (a 64-byte string: 185 instructions -> 39; below 64 bytes it is `core`'s).
        match simdutf8::basic::from_utf8(bytes) {
            Ok(s) => visitor.visit_borrowed_str(s),
            // As rmp-serde: invalid UTF-8 is offered as bytes; if those are refused too, the
            // error is the UTF-8 one (`core`'s, which says where).
            Err(_) => visitor.visit_borrowed_bytes::<Error>(bytes).map_err(|_| {
                let e = std::str::from_utf8(bytes).err();
                Error::new(format!(
                    "a string is not valid UTF-8: {}",
                    e.map_or_else(|| "invalid".to_owned(), |e| e.to_string())
                ))
            }),
        }
    }

    fn seq<V: Visitor<'de>>(&mut self, len: u32, visitor: V) -> Result<V::Value, Error> {
        self.container(len, ("an array", "elements"), |de| {
            visitor.visit_seq(Elements { de, left: len })
        })
    }

    fn map<V: Visitor<'de>>(&mut self, len: u32, visitor: V) -> Result<V::Value, Error> {
        self.container(len, ("a map", "entries"), |de| {
            visitor.visit_map(Entries { de, left: len })
        })
    }

    /// Runs `visit` on an array or map of `len` items (`what`: its name and its items' name),
    /// one level deeper, and checks that its visitor read every item.
    ///
    /// The access goes to the visitor by value (two words: passed in registers, where serde's
    /// element loop keeps its count) and hands the count back when dropped. Every item may be a
    /// nested `None`: `may_nest` is set here once, and `deserialize_option` sets it again after
    /// a `Some` (the only place it is cleared).
    #[inline]
    fn container<T>(
        &mut self,
        len: u32,
        (what, items): (&str, &str),
        visit: impl FnOnce(&mut Self) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.deeper(|de| {
            de.left = None;
            de.may_nest = true;
            let value = visit(de);
            // Taken before `?`: a failed visitor's nested access may have left its own count
            // here, which a later leak of an outer access must not find.
            let left = de.left.take();
            let value = value?;
            match left {
                Some(0) => Ok(value),
                Some(left) => Err(Error::new(format!(
                    "{what} of {len} {items} was read as {} {items}",
                    len.saturating_sub(left)
                ))),
                None => Err(Error::new(LEAKED)),
            }
        })
    }

    /// The data length of an extension value.
    fn ext_len(&mut self, marker: u8) -> Result<u32, Error> {
        Ok(match marker {
            0xd4 => 1,
            0xd5 => 2,
            0xd6 => 4,
            0xd7 => 8,
            0xd8 => 16,
            0xc7 => u32::from(self.u8()?),
            0xc8 => u32::from(self.u16()?),
            0xc9 => self.u32()?,
            m => return Err(self.refused(m, "an extension value")),
        })
    }

    /// A 128-bit integer (rmp-serde's `read_i128_marker`): any integer, or 16 big-endian bytes
    /// after a binary or fixed-array marker of length 16 (rmp-serde writes them as binary).
    fn i128(&mut self) -> Result<i128, Error> {
        let marker = self.marker()?;
        Ok(match marker {
            0x00..=0x7f => i128::from(marker),
            0xe0..=0xff => i128::from(marker as i8),
            0xcc => i128::from(self.u8()?),
            0xcd => i128::from(self.u16()?),
            0xce => i128::from(self.u32()?),
            0xcf => i128::from(u64::from_be_bytes(self.array()?)),
            0xd0 => i128::from(self.u8()? as i8),
            0xd1 => i128::from(i16::from_be_bytes(self.array()?)),
            0xd2 => i128::from(i32::from_be_bytes(self.array()?)),
            0xd3 => i128::from(i64::from_be_bytes(self.array()?)),
            0xc4 | 0x90..=0x9f => {
                let len = if marker == 0xc4 {
                    self.u8()?
                } else {
                    marker & 0x0f
                };
                if len != 16 {
                    return Err(Error::new(format!(
                        "a 128-bit integer takes 16 bytes, not {len}"
                    )));
                }
                let bytes = self.slice(16)?;
                let mut be = [0u8; 16];
                be.copy_from_slice(bytes);
                i128::from_be_bytes(be)
            }
            m => return Err(self.refused(m, "an integer")),
        })
    }
}

/// Forwards each `deserialize_*` method to `any`, bytes allowed (rmp-serde's
/// `forward_to_deserialize_any!`, which calls its own `deserialize_any`, past the adapter).
macro_rules! to_any {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.any(visitor, true)
        })*
    };
}

/// Each `deserialize_*` method of a scalar: `$fast` straight from the input when no marker is
/// read ahead, else (or when `$fast` hands the visitor back: another type, a value cut short)
/// `$full`, which reads it or says why not.
macro_rules! fast {
    ($fast:ident, $full:ident: $($method:ident)*) => {
        $(#[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let visitor = if self.marker.is_none() {
                match $fast(&mut self.input, visitor) {
                    Ok(out) => return out,
                    Err(visitor) => visitor,
                }
            } else {
                visitor
            };
            self.$full(visitor)
        })*
    };
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if let Some(n) = self.nested_none() {
            return visitor.visit_some(NestedNone::new(n - 1));
        }
        self.any(visitor, true)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if let Some(n) = self.nested_none() {
            return visitor.visit_some(NestedNone::new(n - 1));
        }
        let marker = self.marker()?;
        if marker == 0xc0 {
            visitor.visit_none()
        } else {
            // Kept until the value inside is read; no nested `None` can start there. Set again
            // after: the adapter's flag is set anew for every element, key and value, and
            // whatever follows this value is one of those (or the end).
            self.marker = Some(marker);
            self.may_nest = false;
            let out = self.nested(|de| visitor.visit_some(de));
            self.may_nest = true;
            out
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // A map of one entry is `{variant: content}`; anything else is a unit variant's name
        // (or index), read with the marker kept.
        let marker = self.marker()?;
        self.marker = Some(marker);
        let len = match marker {
            0x80..=0x8f => Some(u32::from(marker & 0x0f)),
            0xde => self.u16().ok().map(u32::from),
            0xdf => self.u32().ok(),
            _ => None,
        };
        match len {
            Some(1) => {
                self.marker = None;
                self.nested(|de| visitor.visit_enum(Variant { de }))
            }
            Some(n) => Err(Error::new(format!(
                "an enum is a map of one entry, not {n}"
            ))),
            None => self.nested(|de| visitor.visit_enum(UnitVariant { de })),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == rmp_serde::MSGPACK_EXT_STRUCT_NAME {
            let marker = self.marker()?;
            let len = self.ext_len(marker)?;
            return visitor.visit_newtype_struct(Ext::new(self, len));
        }
        self.nested(|de| visitor.visit_newtype_struct(de))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        // Unit structs are written as `[]`; nil reads too.
        match self.marker()? {
            0xc0 | 0x90 => visitor.visit_unit(),
            marker => {
                self.marker = Some(marker);
                self.any(visitor, true)
            }
        }
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i128(self.i128()?)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // As rmp-serde: the bits of the `i128` (a negative integer reads as a large `u128`).
        visitor.visit_u128(self.i128()? as u128)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.any(visitor, false)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.any(visitor, false)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.any(visitor, false)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.any(visitor, false)
    }

    fast! {
        fixint, full_number:
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_f32 deserialize_f64
    }

    fast! { short_str, full_any: deserialize_str deserialize_string }

    to_any! {
        deserialize_char deserialize_bytes
        deserialize_byte_buf deserialize_unit deserialize_map deserialize_identifier
        deserialize_ignored_any
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// A positive fixint at the front of `input`, visited as [`Deserializer::number`] visits it
/// (the byte is the value); anything else is handed back as `Err(visitor)` with nothing read.
/// (Only this case: inlined into serde's element loops, a wider fast path here costs the
/// fixint more than it saves the others.)
#[inline]
fn fixint<'de, V: Visitor<'de>>(
    input: &mut std::slice::Iter<'de, u8>,
    visitor: V,
) -> Result<Result<V::Value, Error>, V> {
    match input.as_slice().first() {
        Some(&b) if b < 0x80 => {
            input.next();
            Ok(visitor.visit_u8(b))
        }
        _ => Err(visitor),
    }
}

/// A string of up to 255 bytes at the front of `input` (fixstr or str 8), whole and valid
/// UTF-8, visited as [`Deserializer::str`] visits it; anything else is handed back as
/// `Err(visitor)` with nothing read.
#[inline]
fn short_str<'de, V: Visitor<'de>>(
    input: &mut std::slice::Iter<'de, u8>,
    visitor: V,
) -> Result<Result<V::Value, Error>, V> {
    let (len, rest) = match input.as_slice() {
        [m @ 0xa0..=0xbf, rest @ ..] => (usize::from(*m & 0x1f), rest),
        [0xd9, n, rest @ ..] => (usize::from(*n), rest),
        _ => return Err(visitor),
    };
    let Some((bytes, after)) = rest.split_at_checked(len) else {
        return Err(visitor);
    };
    match simdutf8::basic::from_utf8(bytes) {
        Ok(s) => {
            *input = after.iter();
            Ok(visitor.visit_borrowed_str(s))
        }
        Err(_) => Err(visitor),
    }
}

/// The marker at the front of `bytes` when it states a length (a fixarray, fixstr, array, str
/// or bin marker), that length (the fixed form's low bits, or the 8, 16 or 32 big-endian bits
/// after the marker) and the bytes after the header; `None` for any other marker or a header
/// cut short.
#[inline]
fn length_header(bytes: &[u8]) -> Option<(u8, usize, &[u8])> {
    let (&marker, rest) = bytes.split_first()?;
    let (width, fixed) = match marker {
        0x90..=0x9f => (0, usize::from(marker & 0x0f)),
        0xa0..=0xbf => (0, usize::from(marker & 0x1f)),
        0xc4 | 0xd9 => (1, 0),
        0xc5 | 0xda | 0xdc => (2, 0),
        0xc6 | 0xdb | 0xdd => (4, 0),
        _ => return None,
    };
    let (len, rest) = rest.split_at_checked(width)?;
    let len = len.iter().fold(fixed, |n, &b| n << 8 | usize::from(b));
    Some((marker, len, rest))
}

/// A whole input that is one string (fixstr, str 8, 16 or 32) of valid UTF-8, read as
/// `String::deserialize` reads it through [`Deserializer`] (same value); `None` for anything
/// else (another type, a cut or trailing byte, invalid UTF-8), which the caller then reads
/// with [`Deserializer`] to get its value or its error.
///
/// [`MsgPack::decode`](crate::MsgPack) calls it for `T = String`: one header check, one
/// validation and one copy instead of serde's visitor calls.
#[inline]
pub(in crate::codec) fn whole_string(bytes: &[u8]) -> Option<String> {
    match length_header(bytes)? {
        (0xa0..=0xbf | 0xd9..=0xdb, len, rest) if rest.len() == len => {
            simdutf8::basic::from_utf8(rest).ok().map(str::to_owned)
        }
        _ => None,
    }
}

/// A whole input that is one array of integers 0..=255 each written as a positive fixint or
/// a `uint 8` (how [`MsgPack`](crate::MsgPack) and rmp-serde write a `Vec<u8>`), or one binary
/// string (bin 8, 16 or 32), read as `Vec::<u8>::deserialize` reads it through
/// [`Deserializer`] (same value); `None` for anything else (another type, another integer
/// encoding, a cut or trailing byte), which the caller then reads with [`Deserializer`] to
/// get its value or its error.
///
/// [`MsgPack::decode`](crate::MsgPack) calls it for `T = Vec<u8>`: serde reads a `Vec<u8>`
/// as one visitor call per byte (19 instructions each here); this checks and copies the
/// bytes in bulk.
#[inline]
pub(in crate::codec) fn whole_bytes(bytes: &[u8]) -> Option<Vec<u8>> {
    let (marker, len, rest) = length_header(bytes)?;
    match marker {
        0x90..=0x9f | 0xdc | 0xdd => {}
        // A binary string reads as its bytes (`deserialize_seq` visits it as a sequence).
        0xc4..=0xc6 => return (rest.len() == len).then(|| rest.to_vec()),
        _ => return None,
    }
    // All fixints: the elements are the bytes themselves (checked without a branch per byte).
    if rest.len() == len && rest.iter().fold(0, |acc, &b| acc | b) < 0x80 {
        return Some(rest.to_vec());
    }
    // Some `uint 8` among them: at least one byte per element, at most two. The capacity is
    // bounded by the input, so a forged length cannot make it allocate more.
    if rest.len() < len || rest.len() > 2 * len {
        return None;
    }
    let mut out = Vec::with_capacity(len);
    let mut input = rest.iter();
    while let Some(&b) = input.next() {
        match b {
            0x00..=0x7f => out.push(b),
            0xcc => out.push(*input.next()?),
            _ => return None,
        }
    }
    (out.len() == len).then_some(out)
}

/// What `seq` or `map` says when a visitor leaked its access (`mem::forget`), so that how
/// much of the array or map was read is unknown.
const LEAKED: &str = "an array's or map's access was leaked by its visitor";

/// The elements of an array.
struct Elements<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    left: u32,
}

impl Drop for Elements<'_, '_> {
    #[inline]
    fn drop(&mut self) {
        self.de.left = Some(self.left);
    }
}

impl<'de> de::SeqAccess<'de> for Elements<'_, 'de> {
    type Error = Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        // Each element takes a byte at least.
        Some((self.left as usize).min(self.de.remaining()))
    }
}

/// The entries of a map.
struct Entries<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    left: u32,
}

impl Drop for Entries<'_, '_> {
    #[inline]
    fn drop(&mut self) {
        self.de.left = Some(self.left);
    }
}

impl<'de> de::MapAccess<'de> for Entries<'_, 'de> {
    type Error = Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(&mut *self.de)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        // Each entry takes two bytes at least.
        Some((self.left as usize).min(self.de.remaining() / 2))
    }
}

/// An enum written as `{variant: content}`.
struct Variant<'a, 'de> {
    de: &'a mut Deserializer<'de>,
}

impl<'de> de::EnumAccess<'de> for Variant<'_, 'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Error> {
        self.de.may_nest = true;
        Ok((seed.deserialize(&mut *self.de)?, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.de.marker()? {
            0xc0 => Ok(()),
            m => Err(self.de.refused(m, "nil (a unit variant's content)")),
        }
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        self.de.may_nest = true;
        seed.deserialize(self.de)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.de.may_nest = true;
        self.de.any(visitor, false)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.de.may_nest = true;
        self.de.any(visitor, false)
    }
}

/// A unit variant, written as its name (or index) alone; the marker is kept.
struct UnitVariant<'a, 'de> {
    de: &'a mut Deserializer<'de>,
}

impl<'de> de::EnumAccess<'de> for UnitVariant<'_, 'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Error> {
        self.de.may_nest = true;
        Ok((seed.deserialize(&mut *self.de)?, self))
    }
}

impl<'de> de::VariantAccess<'de> for UnitVariant<'_, 'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, _seed: S) -> Result<S::Value, Error> {
        Err(de::Error::invalid_type(
            de::Unexpected::UnitVariant,
            &"newtype variant",
        ))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, Error> {
        Err(de::Error::invalid_type(
            de::Unexpected::UnitVariant,
            &"tuple variant",
        ))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Error> {
        Err(de::Error::invalid_type(
            de::Unexpected::UnitVariant,
            &"struct variant",
        ))
    }
}

/// A deserializer that reads from the shared input: what a nested `None` is looked for in.
trait Shared<'de>: de::Deserializer<'de, Error = Error> {
    fn input(&mut self) -> &mut Deserializer<'de>;
}

/// The adapter around a deserializer other than the main one (an extension value, its parts,
/// the bytes of a binary string read as a sequence): as the adapter does, `deserialize_any` and
/// `deserialize_option` first take a nested `None` at the front of the input when `may_nest`.
struct Peeking<D> {
    inner: D,
    may_nest: bool,
}

impl<'de, D: Shared<'de>> Peeking<D> {
    fn nested_none(&mut self) -> Option<NestedNone<Error>> {
        if !self.may_nest {
            return None;
        }
        self.inner
            .input()
            .take_nested_none()
            .map(|n| NestedNone::new(n - 1))
    }
}

macro_rules! forward_peeking {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Error> {
            self.inner.$method($($arg,)* visitor)
        })*
    };
}

impl<'de, D: Shared<'de>> de::Deserializer<'de> for Peeking<D> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        match self.nested_none() {
            Some(none) => visitor.visit_some(none),
            None => self.inner.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        match self.nested_none() {
            Some(none) => visitor.visit_some(none),
            None => self.inner.deserialize_option(visitor),
        }
    }

    deserialize_methods!(forward_peeking);

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The bytes of a binary string read as a sequence of `u8` (serde's `SeqDeserializer`, each
/// element behind the adapter).
struct BinElements<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    bytes: std::slice::Iter<'de, u8>,
}

impl<'de> de::SeqAccess<'de> for BinElements<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.bytes.next() {
            Some(&value) => seed
                .deserialize(Peeking {
                    inner: Byte {
                        de: &mut *self.de,
                        value,
                    },
                    may_nest: true,
                })
                .map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.bytes.len())
    }
}

/// One byte of a binary string (serde's `U8Deserializer`: every method visits a `u8`).
struct Byte<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    value: u8,
}

impl<'de> Shared<'de> for Byte<'_, 'de> {
    fn input(&mut self) -> &mut Deserializer<'de> {
        self.de
    }
}

impl<'de> de::Deserializer<'de> for Byte<'_, 'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u8(self.value)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// Where an extension value is in its reading: its type byte, then its data, then done.
#[derive(Clone, Copy, PartialEq)]
enum ExtState {
    Type,
    Data,
    Done,
}

/// An extension value, read as a sequence of its type (`i8`) and its data (bytes), as
/// rmp-serde's `ExtDeserializer` reads it: from the shared input, and without `i128`/`u128`
/// (serde's default, an error).
struct Ext<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    len: u32,
    state: ExtState,
}

impl<'a, 'de> Ext<'a, 'de> {
    /// The extension value of data length `len`, behind the adapter (`may_nest` is that of
    /// the value that turned out to be this extension value).
    fn new(de: &'a mut Deserializer<'de>, len: u32) -> Peeking<Self> {
        let may_nest = de.may_nest;
        Peeking {
            inner: Ext {
                de,
                len,
                state: ExtState::Type,
            },
            may_nest,
        }
    }
}

impl<'de> Shared<'de> for Ext<'_, 'de> {
    fn input(&mut self) -> &mut Deserializer<'de> {
        self.de
    }
}

impl<'de> de::Deserializer<'de> for Ext<'_, 'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(&mut self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de> de::SeqAccess<'de> for &mut Ext<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.state == ExtState::Done {
            return Ok(None);
        }
        seed.deserialize(Peeking {
            inner: Part { ext: self },
            may_nest: true,
        })
        .map(Some)
    }
}

/// The next part of an extension value, as a deserializer.
struct Part<'e, 'a, 'de> {
    ext: &'e mut Ext<'a, 'de>,
}

impl<'de> Shared<'de> for Part<'_, '_, 'de> {
    fn input(&mut self) -> &mut Deserializer<'de> {
        self.ext.de
    }
}

impl<'de> de::Deserializer<'de> for Part<'_, '_, 'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let ext = self.ext;
        match ext.state {
            ExtState::Type => {
                let ty = ext.de.u8()? as i8;
                ext.state = ExtState::Data;
                visitor.visit_i8(ty)
            }
            ExtState::Data => {
                let data = ext.de.slice(ext.len as usize)?;
                ext.state = ExtState::Done;
                visitor.visit_borrowed_bytes(data)
            }
            ExtState::Done => Err(Error::new("an extension value has two parts")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}
