//! The file format: table definitions, the entry header, the format version.
//!
//! Format version 1:
//! - `entries`: key (`&str`) → entry bytes: a record as [`braincache_core::wire`] frames it
//!   (header version 2: codec id, deadline, then the value bytes). Entries written before the
//!   codec id was stored (braincache 0.1) have a one-byte tag instead: [`LEGACY_FOREVER`], or
//!   [`LEGACY_DEADLINE`] followed by the deadline as a little-endian `u64` of nanoseconds since
//!   the Unix epoch; then the value. They were written with the postcard codec and read back as
//!   such. Any other first byte is damage.
//! - `expiry`: (deadline nanoseconds, key) → `()`, one row per entry that has a deadline, so
//!   purging walks only what is due.
//! - `meta`: `"format_version"` → `u64`.
//! - `leases` (created by the first lease): key → (token, end of the lease in nanoseconds), see
//!   `lease.rs`. Entries written by `get_or_refresh` carry the wire header's freshness fields.
//!
//! The file format version stays 1: the entry header carries its own version, and both kinds of
//! entries may share a file. (braincache 0.1 reads a version-2 entry as a damaged entry,
//! [`Error::Corrupt`] naming its key, never as a value.)
//!
//! No other table may exist in a braincache file: a file with other tables belongs to someone
//! else, and is refused rather than written to.

use braincache_core::{CodecId, Error, Record, RecordRef, Result, Timestamp, wire};
use redb::TableDefinition;

/// key → header + value.
pub(crate) const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
/// (deadline, key) → ().
pub(crate) const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
/// Settings of the file itself.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The names of the data tables a braincache file holds (beside the bound's bookkeeping tables,
/// and `leases` once a lease was taken: see `lease.rs`).
pub(crate) const TABLE_NAMES: [&str; 3] = ["entries", "expiry", "meta"];

/// The `meta` key holding the format version.
pub(crate) const FORMAT_VERSION_KEY: &str = "format_version";

/// The on-disk format version this build reads and writes.
pub const FORMAT_VERSION: u64 = 1;

/// Legacy entry tag: no deadline follows.
const LEGACY_FOREVER: u8 = 0;
/// Legacy entry tag: an 8-byte deadline follows.
const LEGACY_DEADLINE: u8 = 1;

/// Encodes a record as the `entries` value.
pub(crate) fn encode_entry(record: &Record) -> Vec<u8> {
    wire::encode(record)
}

/// A parsed entry header: deadline (nanoseconds), codec, and where the value starts.
struct EntryHeader {
    deadline: Option<u64>,
    codec: Option<CodecId>,
    len: usize,
}

fn parse_entry(bytes: &[u8]) -> std::result::Result<EntryHeader, String> {
    match bytes.split_first() {
        None => Err("empty entry (no header)".to_owned()),
        Some((&LEGACY_FOREVER, _)) => Ok(EntryHeader {
            deadline: None,
            codec: Some(CodecId::POSTCARD),
            len: 1,
        }),
        Some((&LEGACY_DEADLINE, rest)) => match rest.first_chunk::<8>() {
            Some(deadline) => Ok(EntryHeader {
                deadline: Some(u64::from_le_bytes(*deadline)),
                codec: Some(CodecId::POSTCARD),
                len: 9,
            }),
            None => Err(format!(
                "entry header truncated: {} deadline bytes of 8",
                rest.len()
            )),
        },
        Some(_) => wire::parse(bytes).map(|p| EntryHeader {
            deadline: p.expires_at.map(Timestamp::as_unix_nanos),
            codec: p.codec,
            len: p.len,
        }),
    }
}

/// Splits entry bytes into the deadline and the value; `Err` describes the damage.
pub(crate) fn split_entry(bytes: &[u8]) -> std::result::Result<(Option<u64>, &[u8]), String> {
    parse_entry(bytes).map(|h| (h.deadline, &bytes[h.len..]))
}

/// Decodes the `entries` value stored under `key`.
pub(crate) fn decode_entry(key: &str, bytes: &[u8]) -> Result<Record> {
    view_entry(key, bytes).map(|r| r.to_record())
}

/// Reads the `entries` value stored under `key` in place: the record's value borrows `bytes`.
///
/// The two headers nearly every entry has, a codec and nothing else or a codec and a deadline,
/// are read here directly (a `get` spends a few percent of its time in the general parse);
/// every other header, a damaged one included, goes through [`wire::parse`]. The unit test
/// `the_direct_reads_agree_with_the_wire_parse` holds both to the same answers.
#[inline]
pub(crate) fn view_entry<'a>(key: &str, bytes: &'a [u8]) -> Result<RecordRef<'a>> {
    match bytes {
        [wire::VERSION, codec, WIRE_PLAIN, 4, value @ ..] => {
            Ok(RecordRef::new(value, None).with_codec(CodecId::new(*codec)))
        }
        [wire::VERSION, codec, WIRE_DEADLINE, 12, rest @ ..] if rest.len() >= 8 => {
            let (deadline, value) = rest.split_at(8);
            let mut nanos = [0u8; 8];
            nanos.copy_from_slice(deadline);
            let deadline = Timestamp::from_unix_nanos(u64::from_le_bytes(nanos));
            Ok(RecordRef::new(value, Some(deadline)).with_codec(CodecId::new(*codec)))
        }
        _ => view_any_entry(key, bytes),
    }
}

/// The flags byte of a wire header without optional fields (4 bytes long)...
const WIRE_PLAIN: u8 = 0;
/// ... and of one with a deadline only (12 bytes long: the deadline follows the fixed part).
const WIRE_DEADLINE: u8 = 1;

/// [`view_entry`] of any header, through the general parse.
fn view_any_entry<'a>(key: &str, bytes: &'a [u8]) -> Result<RecordRef<'a>> {
    if !matches!(bytes.first(), Some(&(LEGACY_FOREVER | LEGACY_DEADLINE))) {
        // The wire header, freshness fields included.
        let p = wire::parse(bytes).map_err(|d| Error::corrupt_entry(key, d))?;
        return Ok(RecordRef::new(&bytes[p.len..], p.expires_at)
            .with_codec(p.codec)
            .with_fresh_until(p.fresh_until)
            .with_computed(p.computed_at, p.compute_time));
    }
    let h = parse_entry(bytes).map_err(|d| Error::corrupt_entry(key, d))?;
    Ok(
        RecordRef::new(&bytes[h.len..], h.deadline.map(Timestamp::from_unix_nanos))
            .with_codec(h.codec),
    )
}

/// The value of `record` as JSON text, for exporting a redb cache to the file backend's format
/// (`braincache export`): [`braincache_core::inspect::value_json`], as bytes. `Some` when the
/// record was written with the [`MsgPack`](braincache_core::MsgPack) codec (the redb backend's
/// default, also assumed for a record stating no codec) and JSON can hold the value exactly;
/// `FileBackend` with its default `Json` codec reads that text back as the same typed value, NaN
/// and the infinities included.
///
/// `None` for records of other codecs (postcard, among them every record of braincache 0.1) and
/// for values JSON cannot hold (a `None` nested in a `Some`, maps with keys that are not strings
/// or numbers): export those as bytes with their codec id.
///
/// ```
/// use braincache_core::{Codec, MsgPack, Postcard, Record};
///
/// let r = Record::new(MsgPack.encode(&(1u8, "two")).unwrap(), None).with_codec(Some(MsgPack::ID));
/// assert_eq!(braincache_redb::value_as_json(&r).unwrap(), br#"[1,"two"]"#);
/// let r = Record::new(Postcard.encode(&1u8).unwrap(), None).with_codec(Some(Postcard::ID));
/// assert_eq!(braincache_redb::value_as_json(&r), None);
/// ```
#[must_use]
pub fn value_as_json(record: &Record) -> Option<Vec<u8>> {
    braincache_core::inspect::value_json(record).map(String::into_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damage_is_reported() {
        for rec in [
            Record::new(vec![], None),
            Record::new(vec![0, 1, 2], Some(Timestamp::from_unix_nanos(7))),
            Record::new(vec![9; 100], Some(Timestamp::MAX)).with_codec(Some(CodecId::MSGPACK)),
        ] {
            assert_eq!(decode_entry("k", &encode_entry(&rec)).unwrap(), rec);
        }
        for bad in [&[][..], &[1, 2, 3][..], &[7, 0][..], &[2, 4, 1, 4][..]] {
            let e = decode_entry("k", bad).unwrap_err();
            assert!(e.is_corrupt(), "{e}");
            assert_eq!(e.key(), Some("k"));
        }
    }

    #[test]
    fn the_direct_reads_agree_with_the_wire_parse() {
        // Headers as `wire` writes them, with and without a codec, a deadline, freshness fields.
        let t = Some(Timestamp::from_unix_nanos(0x0102_0304_0506_0708));
        let mut entries = Vec::new();
        for codec in [None, Some(CodecId::MSGPACK), Some(CodecId::POSTCARD)] {
            for deadline in [None, t, Some(Timestamp::MAX)] {
                for value in [&b""[..], b"v", &[7; 70]] {
                    let r = Record::new(value.to_vec(), deadline).with_codec(codec);
                    entries.push(encode_entry(&r));
                    entries.push(encode_entry(&r.clone().with_fresh_until(t)));
                }
            }
        }
        // And every small header, well-formed or not: versions, codecs, flags, lengths, cut
        // short or not.
        for version in [1, wire::VERSION, 3] {
            for codec in [0, 4, 200] {
                for flags in [0, 1, 2, 3, 0x10, 0x80, 0x81] {
                    for len in [0, 3, 4, 5, 12, 13, 20, 255] {
                        for tail in [0, 3, 7, 8, 9, 16] {
                            let mut e = vec![version, codec, flags, len];
                            e.extend((0..tail).map(|i| i as u8));
                            entries.push(e);
                        }
                    }
                }
            }
        }
        entries.extend([vec![], vec![wire::VERSION], vec![wire::VERSION, 4, 0]]);
        for e in &entries {
            let direct = view_entry("k", e).map_err(|e| e.to_string());
            let general = view_any_entry("k", e).map_err(|e| e.to_string());
            assert_eq!(direct, general, "{e:?}");
        }
    }

    #[test]
    fn legacy_entries_read_as_postcard() {
        let mut with_deadline = vec![LEGACY_DEADLINE];
        with_deadline.extend_from_slice(&7u64.to_le_bytes());
        with_deadline.extend_from_slice(b"v");
        assert_eq!(
            decode_entry("k", &with_deadline).unwrap(),
            Record::new(b"v".to_vec(), Some(Timestamp::from_unix_nanos(7)))
                .with_codec(Some(CodecId::POSTCARD))
        );
        assert_eq!(split_entry(&with_deadline).unwrap(), (Some(7), &b"v"[..]));
        assert_eq!(
            decode_entry("k", &[LEGACY_FOREVER, 1]).unwrap(),
            Record::new(vec![1], None).with_codec(Some(CodecId::POSTCARD))
        );
    }
}
