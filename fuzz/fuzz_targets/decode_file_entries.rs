//! The JSON file format's entries, built from fuzz input so the document around them is valid:
//! arbitrary keys, `value` texts (plain, `$bytes`, `$json`) and `expire_at` texts must open as
//! the format says or be refused untouched; and arbitrary records stored through the backend
//! (durable and batched) read back exactly after a reopen.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let dir = braincache_fuzz::scratch_dir();
    braincache_fuzz::json::check_json_file(dir, &braincache_fuzz::json::document(bytes));
    braincache_fuzz::json::check_records_round_trip(dir, bytes);
});
