//! A JSON cache file made of arbitrary bytes: `FileBackend::open` never panics; a refused file
//! is `Error::Corrupt` and stays byte for byte as it was; an accepted one reads as the format
//! says, and survives a rewrite and a reopen unchanged (see `braincache_fuzz::json`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    braincache_fuzz::json::check_json_file(braincache_fuzz::scratch_dir(), bytes);
});
