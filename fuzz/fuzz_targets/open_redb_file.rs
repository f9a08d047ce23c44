//! A redb cache file made of arbitrary bytes, or a valid one damaged by patches:
//! `RedbBackend::read_entries` never panics nor writes; opening never panics, a refused file is
//! a typed error and is left unchanged, an opened one answers every call without panicking and
//! agrees with `read_entries` (see `braincache_fuzz::redb_files`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: braincache_fuzz::quiet_panic_hook(),
    |bytes: &[u8]| {
        let (file, single) = braincache_fuzz::redb_files::file_from_input(bytes);
        braincache_fuzz::redb_files::check_redb_file(braincache_fuzz::scratch_dir(), &file, single);
    }
);
