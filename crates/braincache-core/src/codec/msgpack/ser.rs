//! The MessagePack writer of [`MsgPack::encode`](crate::MsgPack): a serde `Serializer` into a
//! `Vec<u8>`.
//!
//! It writes, byte for byte, what rmp-serde 1.3's serializer (structs as maps,
//! `with_struct_map`) writes under the nested-`None` adapter (`adapt::NestedOption`): the same
//! smallest marker for every integer, length and string; `u128`/`i128` as 16 big-endian bytes
//! in a binary string; unit structs as `[]`, unit variants as their name, other variants as a
//! map of one entry; sequences and maps of unknown length counted and written after; and a
//! `None` inside `n >= 1` `Some`s as the extension value `[0xd4, 0x42, n]`. A value's
//! `Serialize` that writes rmp-serde's own extension struct (`_ExtStruct`) is handed to
//! rmp-serde. So stored bytes are unchanged (tests: `codec/msgpack/tests.rs`).
//!
//! Why by hand: rmp-serde writes through `io::Write` a marker and its data separately, and the
//! adapter wraps every value in two more layers; a 64-byte `Vec<u8>` took ~2,600 instructions
//! (the commit that added this module gives the figures).

use super::super::adapt::{self, EXT_TYPE};
use super::de::Error;
use serde::ser::{self, Serialize};

/// A serializer writing to `out`, the output `Vec` or a [`Chunk`] in front of it (the elements
/// of a sequence written by `collect_seq`); `somes` is how many `Some`s are directly around the
/// value. Scalars and strings go through `out`; compound values to the `Vec` behind it.
pub(in crate::codec) struct Serializer<'a, W: Sink = Vec<u8>> {
    out: &'a mut W,
    somes: u8,
}

impl<'a> Serializer<'a> {
    pub(in crate::codec) fn new(out: &'a mut Vec<u8>) -> Self {
        Serializer { out, somes: 0 }
    }
}

/// Where the writing functions below put bytes: the output `Vec`, or a [`Chunk`] in front of it.
pub(in crate::codec) trait Sink {
    fn push(&mut self, byte: u8);
    fn extend_from_slice(&mut self, bytes: &[u8]);
    /// The output `Vec`, with everything gathered in front of it written first.
    fn vec(&mut self) -> &mut Vec<u8>;
}

impl Sink for Vec<u8> {
    #[inline]
    fn push(&mut self, byte: u8) {
        Vec::push(self, byte);
    }

    #[inline]
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        Vec::extend_from_slice(self, bytes);
    }

    #[inline]
    fn vec(&mut self) -> &mut Vec<u8> {
        self
    }
}

#[inline]
fn uint<S: Sink>(out: &mut S, v: u64) {
    if v < 128 {
        out.push(v as u8);
    } else if v < 256 {
        out.extend_from_slice(&[0xcc, v as u8]);
    } else if v < 65536 {
        out.push(0xcd);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v < 1 << 32 {
        out.push(0xce);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

#[inline]
fn sint<S: Sink>(out: &mut S, v: i64) {
    if v >= 0 {
        uint(out, v as u64);
    } else if v >= -32 {
        out.push(v as u8);
    } else if v >= -128 {
        out.extend_from_slice(&[0xd0, v as u8]);
    } else if v >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// A length after a marker of the fixed form (`fix | len` below `fix_max`), or of 8 (when
/// `m8` is given), 16 or 32 bits.
#[inline]
fn len<S: Sink>(out: &mut S, len: u32, fix: u8, fix_max: u32, m8: Option<u8>, m16: u8) {
    if len < fix_max {
        out.push(fix | len as u8);
    } else if let Some(m8) = m8.filter(|_| len < 256) {
        out.extend_from_slice(&[m8, len as u8]);
    } else if len < 65536 {
        out.push(m16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m16 + 1);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

#[inline]
fn str<S: Sink>(out: &mut S, v: &str) {
    len(out, v.len() as u32, 0xa0, 32, Some(0xd9), 0xda);
    out.extend_from_slice(v.as_bytes());
}

#[inline]
fn bin<S: Sink>(out: &mut S, v: &[u8]) {
    // Binary strings have no fixed form: 8 bits from length 0.
    len(out, v.len() as u32, 0xc4, 0, Some(0xc4), 0xc5);
    out.extend_from_slice(v);
}

#[inline]
fn array_len<S: Sink>(out: &mut S, n: u32) {
    len(out, n, 0x90, 16, None, 0xdc);
}

/// `bytes` as serde writes a `Vec<u8>` or `[u8]` (an array of integers) when every byte is
/// below 0x80, so that each is a positive fixint, itself: the array's header and one copy, the
/// same bytes the [`Serializer`] writes one `serialize_u8` at a time, in a buffer of exactly
/// their size. `None` otherwise (a byte from 0x80 is written as `uint 8`, two bytes: the
/// serializer's element loop already does that as fast as a loop here did), or above
/// `u32::MAX` bytes.
///
/// [`MsgPack::encode`](crate::MsgPack) calls it for `T = Vec<u8>` and `T = [u8]`.
#[inline]
pub(in crate::codec) fn fixint_array(bytes: &[u8]) -> Option<Vec<u8>> {
    let n = u32::try_from(bytes.len()).ok()?;
    // Vectorizes (16 bytes an instruction).
    if bytes.iter().fold(0, |acc, &b| acc | b) >= 0x80 {
        return None;
    }
    let header = match n {
        0..16 => 1,
        16..65536 => 3,
        _ => 5,
    };
    let mut out = Vec::with_capacity(header + bytes.len());
    array_len(&mut out, n);
    out.extend_from_slice(bytes);
    debug_assert_eq!(out.len(), out.capacity());
    Some(out)
}

#[inline]
fn map_len<S: Sink>(out: &mut S, n: u32) {
    len(out, n, 0x80, 16, None, 0xde);
}

impl<'a, W: Sink> ser::Serializer for Serializer<'a, W> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Counted<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Counted<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.push(if v { 0xc3 } else { 0xc2 });
        Ok(())
    }

    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        sint(self.out, i64::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        sint(self.out, i64::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        sint(self.out, i64::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        sint(self.out, v);
        Ok(())
    }

    #[inline]
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        bin(self.out, &v.to_be_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        uint(self.out, u64::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        uint(self.out, u64::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        uint(self.out, u64::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        uint(self.out, v);
        Ok(())
    }

    #[inline]
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        bin(self.out, &v.to_be_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.out.push(0xca);
        self.out.extend_from_slice(&v.to_bits().to_be_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.out.push(0xcb);
        self.out.extend_from_slice(&v.to_bits().to_be_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_char(self, v: char) -> Result<(), Error> {
        str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        str(self.out, v);
        Ok(())
    }

    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        bin(self.out, v);
        Ok(())
    }

    #[inline]
    fn serialize_none(self) -> Result<(), Error> {
        match self.somes {
            0 => self.out.push(0xc0),
            n => self.out.extend_from_slice(&[0xd4, EXT_TYPE as u8, n]),
        }
        Ok(())
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        let somes = self
            .somes
            .checked_add(1)
            .ok_or_else(|| Error::new("more than 255 nested `Option`s cannot be encoded"))?;
        value.serialize(Serializer {
            out: self.out,
            somes,
        })
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.push(0xc0);
        Ok(())
    }

    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.out.push(0x90);
        Ok(())
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        str(self.out, variant);
        Ok(())
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        if name == rmp_serde::MSGPACK_EXT_STRUCT_NAME {
            // rmp-serde's own extension values: its serializer writes them.
            let mut ser = rmp_serde::Serializer::new(self.out.vec()).with_struct_map();
            let hook = adapt::NestedOption::default();
            return ser::Serializer::serialize_newtype_struct(
                &mut ser,
                name,
                &adapt::Wrap::new(value, hook),
            )
            .map_err(|e| Error::new(e.to_string()));
        }
        // The same value: a `None` in it is as deep in `Some`s as the struct.
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        map_len(self.out, 1);
        str(self.out, variant);
        value.serialize(Serializer {
            out: self.out,
            somes: 0,
        })
    }

    /// serde's `collect_seq` (`Vec`s, slices, sets...), with the same bytes as
    /// `serialize_seq`. When the length is known, numbers, booleans, nil and short strings
    /// among the elements are written through a [`Chunk`] (see there): ~9 instructions per
    /// small integer instead of ~14, and `MsgPack::encode` of a 64-byte `Vec<u8>` takes 1,011
    /// instructions instead of 1,303 (callgrind).
    #[inline]
    fn collect_seq<I>(self, iter: I) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        let iter = iter.into_iter();
        let out = self.out.vec();
        let len = match iter.size_hint() {
            (lo, Some(hi)) if lo == hi => lo,
            _ => {
                let mut seq = Counted::new(out, None, array_len);
                for item in iter {
                    ser::SerializeSeq::serialize_element(&mut seq, &item)?;
                }
                return ser::SerializeSeq::end(seq);
            }
        };
        array_len(out, len as u32);
        let mut buf = [0; CHUNK];
        let mut chunk = Chunk {
            buf: &mut buf,
            pos: 0,
            out,
        };
        for item in iter {
            item.serialize(Serializer {
                out: &mut chunk,
                somes: 0,
            })?;
        }
        chunk.flush();
        Ok(())
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Counted<'a>, Error> {
        Ok(Counted::new(self.out.vec(), len, array_len))
    }

    #[inline]
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, Error> {
        let out = self.out.vec();
        array_len(out, len as u32);
        Ok(Compound { out })
    }

    #[inline]
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Error> {
        let out = self.out.vec();
        array_len(out, len as u32);
        Ok(Compound { out })
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Error> {
        let out = self.out.vec();
        map_len(out, 1);
        str(out, variant);
        array_len(out, len as u32);
        Ok(Compound { out })
    }

    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Counted<'a>, Error> {
        Ok(Counted::new(self.out.vec(), len, map_len))
    }

    #[inline]
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a>, Error> {
        let out = self.out.vec();
        map_len(out, len as u32);
        Ok(Compound { out })
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Error> {
        let out = self.out.vec();
        map_len(out, 1);
        str(out, variant);
        map_len(out, len as u32);
        Ok(Compound { out })
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// A tuple, struct or variant being written: its length is already written.
pub(in crate::codec) struct Compound<'a> {
    out: &'a mut Vec<u8>,
}

impl Compound<'_> {
    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(Serializer::new(self.out))
    }

    #[inline]
    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        str(self.out, key);
        value.serialize(Serializer::new(self.out))
    }
}

macro_rules! compound {
    ($($trait:ident::$method:ident;)*) => {
        $(impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.element(value)
            }
            fn end(self) -> Result<(), Error> {
                Ok(())
            }
        })*
    };
}

compound! {
    SerializeTuple::serialize_element;
    SerializeTupleStruct::serialize_field;
    SerializeTupleVariant::serialize_field;
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

/// A sequence or map: written in place when its length is known; otherwise its items are
/// written to a buffer of their own, counted, and the length and the buffer written at the end.
pub(in crate::codec) struct Counted<'a> {
    out: &'a mut Vec<u8>,
    /// Items (keys and values) written so far, and where, when the length was not known.
    unknown: Option<(u32, Vec<u8>)>,
    header: fn(&mut Vec<u8>, u32),
}

impl<'a> Counted<'a> {
    fn new(out: &'a mut Vec<u8>, len: Option<usize>, header: fn(&mut Vec<u8>, u32)) -> Self {
        let unknown = match len {
            Some(len) => {
                header(out, len as u32);
                None
            }
            None => Some((0, Vec::with_capacity(128))),
        };
        Counted {
            out,
            unknown,
            header,
        }
    }

    #[inline]
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        match &mut self.unknown {
            None => value.serialize(Serializer::new(self.out)),
            Some((n, buf)) => {
                value.serialize(Serializer::new(buf))?;
                *n += 1;
                Ok(())
            }
        }
    }

    /// Writes the length (`items / per_entry` entries) and the items, when it was not known.
    fn finish(self, per_entry: u32) -> Result<(), Error> {
        if let Some((n, buf)) = self.unknown {
            (self.header)(self.out, n / per_entry);
            self.out.extend_from_slice(&buf);
        }
        Ok(())
    }
}

impl ser::SerializeSeq for Counted<'_> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.item(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish(1)
    }
}

impl ser::SerializeMap for Counted<'_> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.item(key)
    }
    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.item(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish(2)
    }
}

/// The size of a [`Chunk`]'s buffer.
const CHUNK: usize = 128;

/// Bytes on their way to `out`, gathered in a buffer on the stack: its fill level stays in a
/// register across a sequence's elements, where `out`'s length is reloaded from memory after
/// each byte written (a store through `out`'s buffer might alias `out` itself).
struct Chunk<'a> {
    /// A buffer outside the struct, so that handing it to `write_out` does not take the
    /// struct's address (which would keep `pos` in memory).
    buf: &'a mut [u8; CHUNK],
    /// The bytes of `buf` not yet written to `out`.
    pos: usize,
    out: &'a mut Vec<u8>,
}

impl Chunk<'_> {
    /// Writes what is gathered to `out`. (Inlined, with the work in a function that is not,
    /// which sees only the bytes: `pos` never has its address taken, so it lives in a register.)
    #[inline]
    fn flush(&mut self) {
        write_out(self.out, &self.buf[..self.pos]);
        self.pos = 0;
    }
}

/// [`Chunk::flush`]'s work.
#[inline(never)]
fn write_out(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes);
}

impl Sink for Chunk<'_> {
    #[inline]
    fn push(&mut self, byte: u8) {
        if self.pos >= CHUNK {
            self.flush();
        }
        self.buf[self.pos] = byte;
        self.pos += 1;
    }

    #[inline]
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        if bytes.len() > CHUNK - self.pos.min(CHUNK) {
            self.vec().extend_from_slice(bytes);
            return;
        }
        let end = self.pos + bytes.len();
        self.buf[self.pos..end].copy_from_slice(bytes);
        self.pos = end;
    }

    #[inline]
    fn vec(&mut self) -> &mut Vec<u8> {
        if self.pos > 0 {
            self.flush();
        }
        self.out
    }
}
