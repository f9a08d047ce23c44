//! What tools that show or move a cache's contents share, whatever the backend: a stored value
//! as JSON text, and back.
//!
//! A record says which codec wrote it ([`Record::codec`]); a [`MsgPack`] value (the default
//! codec of the binary backends) describes itself, so a tool can render it as JSON without
//! knowing its Rust type. The backends' `inspect` modules (`braincache_redb::inspect`,
//! `braincache_redis::inspect`) and the `braincache` command render every value through
//! [`value_json`], and store imported JSON through [`value_from_json`].
//!
//! ```
//! use braincache_core::inspect::{value_from_json, value_json};
//! use braincache_core::{Codec, MsgPack, Postcard, Record};
//!
//! let r = Record::new(MsgPack.encode(&(1u8, "two")).unwrap(), None).with_codec(Some(MsgPack::ID));
//! assert_eq!(value_json(&r).as_deref(), Some(r#"[1,"two"]"#));
//! let back = value_from_json(r#"[1,"two"]"#).unwrap();
//! assert_eq!(MsgPack.decode::<(u8, String)>(&back).unwrap(), (1, "two".to_owned()));
//!
//! let r = Record::new(Postcard.encode(&1u8).unwrap(), None).with_codec(Some(Postcard::ID));
//! assert_eq!(value_json(&r), None); // postcard does not describe itself: shown as bytes
//! ```

use crate::{Codec, MsgPack, Record};

/// A stored record's value as JSON text, when its codec says what it holds: `Some` for a
/// [`MsgPack`] record (also assumed for a record stating no codec) whose value JSON can hold
/// exactly (see [`MsgPack::to_json`]); the file backend's `Json` codec reads that text back as
/// the same typed value, NaN and the infinities included.
///
/// `None` for records of other codecs (postcard, among them every record of braincache 0.1)
/// and for values JSON cannot hold (a `None` nested in a `Some`, maps with keys that are not
/// strings or numbers): a tool shows or exports such a value as bytes with its codec id.
#[must_use]
pub fn value_json(record: &Record) -> Option<String> {
    if record.codec.is_some_and(|c| c != MsgPack::ID) {
        return None;
    }
    let json = MsgPack.to_json(&record.value).ok()?;
    String::from_utf8(json).ok()
}

/// The stored value for the JSON text `json`, as a tool that imports a JSON document writes it:
/// the inverse of [`value_json`], encoded with [`MsgPack`] (state
/// [`CodecId::MSGPACK`](crate::CodecId::MSGPACK) on the record). `None` when the text is not one
/// strict JSON value (Python's `NaN` tokens, say): the tool then stores the text itself,
/// stating the JSON codec.
#[must_use]
pub fn value_from_json(json: &str) -> Option<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    MsgPack.encode(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CodecId, Json, Postcard};

    #[test]
    fn msgpack_and_unstated_codecs_render_others_do_not() {
        let bytes = MsgPack.encode(&vec![Some(1.5f64), None]).unwrap();
        for codec in [Some(CodecId::MSGPACK), None] {
            let r = Record::new(bytes.clone(), None).with_codec(codec);
            assert_eq!(value_json(&r).as_deref(), Some("[1.5,null]"), "{codec:?}");
        }
        for codec in [CodecId::JSON, Postcard::ID] {
            let r = Record::new(bytes.clone(), None).with_codec(Some(codec));
            assert_eq!(value_json(&r), None, "{codec:?}");
        }
        // What JSON cannot hold, and what is not MessagePack at all.
        let nested = MsgPack.encode(&Some(None::<u8>)).unwrap();
        assert_eq!(value_json(&Record::new(nested, None)), None);
        assert_eq!(value_json(&Record::new(vec![0xc1], None)), None);
    }

    #[test]
    fn json_round_trips_through_the_stored_form() {
        for text in [r#"{"a":[1,2.5,"x",null,true]}"#, "-7", r#""é""#, "[]"] {
            let stored = value_from_json(text).unwrap();
            let r = Record::new(stored, None).with_codec(Some(MsgPack::ID));
            let shown = value_json(&r).unwrap();
            let a: serde_json::Value = serde_json::from_str(text).unwrap();
            let b: serde_json::Value = Json.decode(shown.as_bytes()).unwrap();
            assert_eq!(a, b, "{text}");
        }
        assert_eq!(value_from_json("NaN"), None);
        assert_eq!(value_from_json("1 2"), None);
    }
}
