//! The file format for tools: recognize a cache document, read its entries without opening it
//! as a cache, and write a document in this format (the Python original's) entry by entry.
//!
//! This is the one writer of the format outside the backend itself: the `braincache` command's
//! `export` of any backend's cache writes through [`DocumentWriter`], and its `import` reads
//! through [`read`]. A cache in use reads and writes through [`FileBackend`](crate::FileBackend).
//!
//! ```
//! use braincache_file::inspect::{self, DocumentWriter, Value};
//!
//! # fn main() -> braincache_core::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("export.json");
//! let mut doc = DocumentWriter::new(Vec::new()).unwrap();
//! doc.entry("user", None, &Value::Json(r#"{"id":1}"#.into())).unwrap();
//! doc.entry("blob", None, &Value::Bytes(vec![0, 255])).unwrap();
//! let (bytes, n) = doc.finish().unwrap();
//! assert_eq!(n, 2);
//! std::fs::write(&path, &bytes).unwrap();
//!
//! assert!(inspect::detect(&path)?);
//! let entries = inspect::read(&path)?; // sorted by key
//! assert_eq!(entries[0].key, "blob");
//! assert_eq!(entries[0].value, Value::Bytes(vec![0, 255]));
//! assert_eq!(entries[1].value.as_json(), Some(r#"{"id":1}"#));
//! # Ok(())
//! # }
//! ```

use crate::format::{self, StoredValue};
use braincache_core::{CodecId, Error, Operation, Result, Timestamp};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// A stored value as the document holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// JSON text: the entry's `value` is this JSON (escaped as `{"$json": ...}` in the file when
    /// it would otherwise read back as a tag). Text that is not exactly one JSON value is written
    /// as [`Value::Bytes`] of its bytes, so nothing is lost.
    Json(String),
    /// Bytes that the document holds as `{"$bytes": "<base64>"}`, even when they happen to be
    /// JSON text.
    Bytes(Vec<u8>),
    /// Bytes written by another codec than JSON, held as
    /// `{"$bytes": "<base64>", "$codec": <id>}`: they read back with their codec's id, so a cache
    /// reading them with another codec gets a typed codec-mismatch error, never garbage.
    Coded(Vec<u8>, CodecId),
}

impl Value {
    /// The value the file backend stores for a record holding `bytes`: [`Value::Json`] when
    /// they are exactly one JSON text, [`Value::Bytes`] otherwise.
    #[must_use]
    pub fn from_record(bytes: Vec<u8>) -> Value {
        match String::from_utf8(bytes) {
            Ok(text) if format::is_exact_json(&text) => Value::Json(text),
            Ok(text) => Value::Bytes(text.into_bytes()),
            Err(e) => Value::Bytes(e.into_bytes()),
        }
    }

    /// The JSON text, for [`Value::Json`].
    #[must_use]
    pub fn as_json(&self) -> Option<&str> {
        match self {
            Value::Json(text) => Some(text),
            Value::Bytes(_) | Value::Coded(..) => None,
        }
    }

    /// The codec the value's bytes were written with, when the document says (`$codec`).
    #[must_use]
    pub fn codec(&self) -> Option<CodecId> {
        match self {
            Value::Coded(_, id) => Some(*id),
            Value::Json(_) | Value::Bytes(_) => None,
        }
    }

    /// The record bytes this value stands for: what [`FileBackend`](crate::FileBackend)'s `get`
    /// returns for it.
    #[must_use]
    pub fn record_bytes(&self) -> &[u8] {
        match self {
            Value::Json(text) => text.as_bytes(),
            Value::Bytes(b) | Value::Coded(b, _) => b,
        }
    }

    /// [`record_bytes`](Self::record_bytes), owned.
    #[must_use]
    pub fn into_record(self) -> Vec<u8> {
        match self {
            Value::Json(text) => text.into_bytes(),
            Value::Bytes(b) | Value::Coded(b, _) => b,
        }
    }

    fn stored(&self) -> StoredValue {
        match self {
            Value::Json(text) => StoredValue::from_bytes(text.as_bytes().to_vec()),
            Value::Bytes(b) => StoredValue::Bytes(b.as_slice().into()),
            Value::Coded(b, id) => StoredValue::from_record(b.clone(), Some(*id)),
        }
    }

    fn from_stored(v: &StoredValue) -> Value {
        match v {
            StoredValue::Json(s) | StoredValue::Escaped(s) => Value::Json(s.to_string()),
            StoredValue::Bytes(b) => Value::Bytes(b.to_vec()),
            StoredValue::Coded(b, id) => Value::Coded(b.to_vec(), *id),
        }
    }
}

/// One entry of a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The cache key.
    pub key: String,
    /// The deadline; `None`: never expires.
    pub expires_at: Option<Timestamp>,
    /// The value.
    pub value: Value,
}

/// True when the file at `path` looks like a cache document: its first byte that is not JSON
/// white space is `{`, or it is empty (a zero-length file is an empty cache). Only the first
/// bytes are read; [`read`] tells whether the whole document is valid.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read.
pub fn detect(path: impl AsRef<Path>) -> Result<bool> {
    let path = path.as_ref();
    let fail = |e| Error::io(Operation::Open, path, e);
    let mut file = File::open(path).map_err(fail)?;
    let mut buf = [0u8; 512];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail(e)),
        };
        if let Some(&b) = buf[..n]
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            return Ok(b == b'{');
        }
    }
}

/// Reads every entry of the document at `path`, expired ones included, sorted by key, without
/// opening it as a cache: no lock is taken and nothing is created or written. Writers replace
/// the file whole, so the entries are one version of it. A zero-length file has no entries.
///
/// Unlike [`FileBackend::read_entries`](crate::FileBackend::read_entries), each value says in
/// which form the document holds it (JSON or `$bytes`).
///
/// # Errors
/// [`Error::Corrupt`] (with line and column) when the file is not a cache document;
/// [`Error::Io`] when it cannot be read (a missing file is an error, not an empty cache).
pub fn read(path: impl AsRef<Path>) -> Result<Vec<Entry>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(Operation::Open, path, e))?;
    let entries = format::parse(&bytes)
        .map_err(|e| Error::corrupt_file(path, Some(e.position()), e.detail.clone()))?;
    Ok(entries
        .into_iter()
        .map(|(key, e)| Entry {
            key,
            expires_at: e.expires_at,
            value: Value::from_stored(&e.value),
        })
        .collect())
}

/// Writes a document in this format, entry by entry, laid out as the file backend lays out its
/// own file (one entry per line). Entries are written in the order given; give each key once
/// (a repeated key reads back as its last entry, as in Python).
#[derive(Debug)]
pub struct DocumentWriter<W: Write> {
    out: W,
    entries: usize,
    buf: Vec<u8>,
}

impl<W: Write> DocumentWriter<W> {
    /// Starts a document on `out`.
    ///
    /// # Errors
    /// The writer's error.
    pub fn new(mut out: W) -> io::Result<DocumentWriter<W>> {
        out.write_all(format::DOCUMENT_START)?;
        Ok(DocumentWriter {
            out,
            entries: 0,
            buf: Vec::new(),
        })
    }

    /// Writes one entry.
    ///
    /// # Errors
    /// The writer's error.
    pub fn entry(
        &mut self,
        key: &str,
        expires_at: Option<Timestamp>,
        value: &Value,
    ) -> io::Result<()> {
        self.buf.clear();
        let entry = format::Entry {
            value: value.stored(),
            expires_at,
        };
        format::write_entry(self.entries == 0, key, &entry, &mut self.buf);
        self.out.write_all(&self.buf)?;
        self.entries += 1;
        Ok(())
    }

    /// Ends the document and flushes the writer; returns it and the number of entries written.
    ///
    /// # Errors
    /// The writer's error.
    pub fn finish(mut self) -> io::Result<(W, usize)> {
        self.out
            .write_all(format::document_end(self.entries == 0))?;
        self.out.flush()?;
        Ok((self.out, self.entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `value` member a document holds for `value`.
    fn written(value: &Value) -> String {
        let mut d = DocumentWriter::new(Vec::new()).unwrap();
        d.entry("k", None, value).unwrap();
        let (out, n) = d.finish().unwrap();
        assert_eq!(n, 1);
        let text = String::from_utf8(out).unwrap();
        text.strip_prefix("{\n  \"k\": {\"value\": ")
            .and_then(|s| s.strip_suffix(", \"expire_at\": null}\n}\n"))
            .unwrap()
            .to_owned()
    }

    #[test]
    fn values_follow_the_file_backends_rules() {
        let json = |s: &[u8]| Value::from_record(s.to_vec());
        assert_eq!(written(&json(b"42")), "42");
        assert_eq!(written(&json(br#"{"a":1}"#)), r#"{"a":1}"#);
        assert_eq!(written(&json(b" 42")), r#"{"$bytes": "IDQy"}"#);
        assert_eq!(written(&json(b"")), r#"{"$bytes": ""}"#);
        assert_eq!(written(&json(&[0xff])), r#"{"$bytes": "/w=="}"#);
        assert_eq!(
            written(&json(br#"{"$bytes":"x"}"#)),
            r#"{"$json": {"$bytes":"x"}}"#
        );
        assert_eq!(
            written(&json(br#"{"$json":1,"$json":2}"#)),
            r#"{"$json":1,"$json":2}"#
        );
        // Text given as JSON that is not exactly one JSON value: kept as bytes.
        assert_eq!(written(&Value::Json(" 42".into())), r#"{"$bytes": "IDQy"}"#);
        // Bytes stay bytes, even when they are JSON text.
        assert_eq!(
            written(&Value::Bytes(b"42".to_vec())),
            r#"{"$bytes": "NDI="}"#
        );
        assert_eq!(written(&Value::Bytes(Vec::new())), r#"{"$bytes": ""}"#);
        assert_eq!(
            written(&Value::Bytes(vec![0, 1, 2, 255])),
            r#"{"$bytes": "AAEC/w=="}"#
        );
    }

    #[test]
    fn documents_are_laid_out_like_the_file_backends_and_read_back() {
        let d = DocumentWriter::new(Vec::new()).unwrap();
        assert_eq!(d.finish().unwrap().0, b"{}\n");
        let mut d = DocumentWriter::new(Vec::new()).unwrap();
        d.entry(
            "a\n\"",
            Some(Timestamp::from_unix_millis(1_500)),
            &Value::Json("1".into()),
        )
        .unwrap();
        d.entry(
            "b",
            Some(Timestamp::from_unix_nanos(2_000_000_001)),
            &Value::Bytes(b"2".to_vec()),
        )
        .unwrap();
        let bytes = d.finish().unwrap().0;
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            "{\n  \"a\\n\\\"\": {\"value\": 1, \"expire_at\": 1.5},\n  \"b\": {\"value\": \
             {\"$bytes\": \"Mg==\"}, \"expire_at\": 2.000000001}\n}\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.json");
        std::fs::write(&path, &bytes).unwrap();
        assert!(detect(&path).unwrap());
        let back = read(&path).unwrap();
        assert_eq!(
            back,
            [
                Entry {
                    key: "a\n\"".into(),
                    expires_at: Some(Timestamp::from_unix_millis(1_500)),
                    value: Value::Json("1".into()),
                },
                Entry {
                    key: "b".into(),
                    expires_at: Some(Timestamp::from_unix_nanos(2_000_000_001)),
                    value: Value::Bytes(b"2".to_vec()),
                },
            ]
        );
        // The same bytes the backend's own reader gives.
        let records = crate::FileBackend::read_entries(&path).unwrap();
        for (e, (k, r)) in back.iter().zip(&records) {
            assert_eq!((&e.key, e.value.record_bytes()), (k, r.value.as_slice()));
        }
    }

    #[test]
    fn detect_looks_at_the_first_byte_that_is_not_white_space() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        for (content, want) in [
            (&b""[..], true),
            (b"{}", true),
            (b" \n\t\r{\"a\"", true),
            (b"   ", true),
            (b"[]", false),
            (b"redb\x1a\x0a", false),
            (b"\xff{", false),
        ] {
            std::fs::write(&path, content).unwrap();
            assert_eq!(detect(&path).unwrap(), want, "{content:?}");
        }
        let e = detect(dir.path().join("missing")).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }
}
