//! `use braincache::*;` imports no module named after a built-in crate, so `core` and `std`
//! still name the standard library's crates in a file that glob-imports braincache.

use braincache::*;

#[test]
fn a_glob_import_leaves_core_and_std_to_the_standard_library() {
    let (mut a, mut b) = (1, 2);
    core::mem::swap(&mut a, &mut b);
    std::mem::swap(&mut a, &mut b);
    assert_eq!((a, b), (1, 2));
    let none: core::option::Option<u8> = core::option::Option::None;
    assert!(none.is_none());
}

#[test]
fn the_glob_brings_the_front_end_the_backends_and_the_building_blocks() {
    let cache: BrainCache<backend::MemoryBackend, base::Json> =
        BrainCache::builder(backend::MemoryBackend::new())
            .codec(base::Json)
            .build();
    cache.set("k", &1u8, None::<core::time::Duration>).unwrap();
    let record: Option<backend::Record> = backend::Backend::get(cache.backend(), "k").unwrap();
    assert!(record.is_some());
    let r: Result<Option<u8>> = cache.get("k");
    assert_eq!(r.unwrap(), Some(1));
}
