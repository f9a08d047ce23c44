//! `RedbBackend::read_entries` on a braincache file whose pages were damaged outside redb: it
//! returns, `Ok` or a typed error naming the file, and no panic reaches the caller (redb panics
//! on some damaged pages; the function catches those). Alone in its binary, because it silences
//! the process-wide panic hook.

mod support;

use braincache_core::Record;
use braincache_redb::RedbBackend;
use std::panic::{AssertUnwindSafe, catch_unwind};

#[test]
fn damaged_pages_are_errors_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let entries: Vec<(String, Record)> = (0..300u16)
        .map(|i| {
            (
                format!("key{i:03}"),
                Record::new(i.to_le_bytes().repeat(40), None),
            )
        })
        .collect();
    let pristine = support::write_entries(&path, &entries);
    assert_eq!(RedbBackend::read_entries(&path).unwrap(), entries);

    // Silence redb's panic messages while the damaged files are read.
    std::panic::set_hook(Box::new(|_| {}));
    let (mut escaped, mut errors) = (Vec::new(), Vec::new());
    // Every byte inverted from one page on, to the end: the header (first page) is intact, so
    // redb opens the file and meets the damage in the pages it reads (damage to the header is
    // "not a redb database", which read_entries.rs covers).
    for from in (4096..pristine.len()).step_by(4096) {
        let mut bytes = pristine.clone();
        for b in &mut bytes[from..] {
            *b = !*b;
        }
        std::fs::write(&path, &bytes).unwrap();
        match catch_unwind(AssertUnwindSafe(|| RedbBackend::read_entries(&path))) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => errors.push(e),
            Err(_) => escaped.push(from),
        }
        assert!(std::fs::read(&path).unwrap() == bytes, "written to");
    }
    drop(std::panic::take_hook());
    assert!(escaped.is_empty(), "panics escaped at offsets {escaped:?}");
    // The damage was seen (the test would be vacuous otherwise), and the errors name the file.
    assert!(!errors.is_empty());
    for e in &errors {
        assert_eq!(e.path(), Some(path.as_path()), "{e}");
    }
}
