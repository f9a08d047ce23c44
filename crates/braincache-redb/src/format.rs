//! The file format: table definitions, the entry header, the format version.
//!
//! Format version 1:
//! - `entries`: key (`&str`) → entry bytes: a one-byte tag, then for tag [`TAG_DEADLINE`] the
//!   deadline as a little-endian `u64` of nanoseconds since the Unix epoch, then the value bytes.
//!   Tag [`TAG_FOREVER`] has no deadline field. Any other tag is damage.
//! - `expiry`: (deadline nanoseconds, key) → `()`, one row per entry that has a deadline, so
//!   purging walks only what is due.
//! - `meta`: `"format_version"` → `u64`.
//!
//! No other table may exist in a braincache file: a file with other tables belongs to someone
//! else, and is refused rather than written to.

use braincache_core::{Error, Record, Result, Timestamp};
use redb::TableDefinition;

/// key → header + value.
pub(crate) const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
/// (deadline, key) → ().
pub(crate) const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
/// Settings of the file itself.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The names of the tables a braincache file holds, and nothing else.
pub(crate) const TABLE_NAMES: [&str; 3] = ["entries", "expiry", "meta"];

/// The `meta` key holding the format version.
pub(crate) const FORMAT_VERSION_KEY: &str = "format_version";

/// The on-disk format version this build reads and writes.
pub const FORMAT_VERSION: u64 = 1;

/// Entry tag: no deadline follows.
const TAG_FOREVER: u8 = 0;
/// Entry tag: an 8-byte deadline follows.
const TAG_DEADLINE: u8 = 1;

/// Encodes a record as the `entries` value.
pub(crate) fn encode_entry(record: &Record) -> Vec<u8> {
    match record.expires_at {
        None => {
            let mut out = Vec::with_capacity(1 + record.value.len());
            out.push(TAG_FOREVER);
            out.extend_from_slice(&record.value);
            out
        }
        Some(d) => {
            let mut out = Vec::with_capacity(9 + record.value.len());
            out.push(TAG_DEADLINE);
            out.extend_from_slice(&d.as_unix_nanos().to_le_bytes());
            out.extend_from_slice(&record.value);
            out
        }
    }
}

/// Splits entry bytes into the deadline and the value; `Err` describes the damage.
pub(crate) fn split_entry(bytes: &[u8]) -> std::result::Result<(Option<u64>, &[u8]), String> {
    match bytes.split_first() {
        None => Err("empty entry (no header)".to_owned()),
        Some((&TAG_FOREVER, value)) => Ok((None, value)),
        Some((&TAG_DEADLINE, rest)) => match rest.split_first_chunk::<8>() {
            Some((deadline, value)) => Ok((Some(u64::from_le_bytes(*deadline)), value)),
            None => Err(format!(
                "entry header truncated: {} deadline bytes of 8",
                rest.len()
            )),
        },
        Some((tag, _)) => Err(format!("unknown entry header tag {tag}")),
    }
}

/// Decodes the `entries` value stored under `key`.
pub(crate) fn decode_entry(key: &str, bytes: &[u8]) -> Result<Record> {
    let (deadline, value) = split_entry(bytes).map_err(|d| Error::corrupt_entry(key, d))?;
    Ok(Record::new(
        value.to_vec(),
        deadline.map(Timestamp::from_unix_nanos),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damage_is_reported() {
        for rec in [
            Record::new(vec![], None),
            Record::new(vec![0, 1, 2], Some(Timestamp::from_unix_nanos(7))),
            Record::new(vec![9; 100], Some(Timestamp::MAX)),
        ] {
            assert_eq!(decode_entry("k", &encode_entry(&rec)).unwrap(), rec);
        }
        for bad in [&[][..], &[1, 2, 3][..], &[7, 0][..]] {
            let e = decode_entry("k", bad).unwrap_err();
            assert!(e.is_corrupt(), "{e}");
            assert_eq!(e.key(), Some("k"));
        }
    }
}
