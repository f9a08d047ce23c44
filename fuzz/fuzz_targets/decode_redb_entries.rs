//! The redb entry header and expiry index, damaged: rows planted with redb's own API (raw entry
//! bytes, expiry rows that match nothing) must read as the entry format says or as
//! `Error::Corrupt` naming the key, and purges, overwrites and deletes must cope with them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: braincache_fuzz::quiet_panic_hook(),
    |bytes: &[u8]| {
        let single = bytes.first().is_some_and(|b| b & 0x80 != 0);
        let plan = braincache_fuzz::redb_files::plan(bytes);
        braincache_fuzz::redb_files::check_planted(braincache_fuzz::scratch_dir(), &plan, single);
    }
);
