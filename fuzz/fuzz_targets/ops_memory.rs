//! Arbitrary operation sequences on the memory backend (unbounded and bounded) agree with the
//! model; bounded ones never exceed their bound.
#![no_main]

use braincache_core::Backend;
use braincache_core::testkit::{Op, check_against_model};
use braincache_memory::MemoryBackend;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let ops = braincache_fuzz::ops::decode(bytes);
    if let Err(e) = check_against_model(&MemoryBackend::new(), &ops) {
        panic!("memory backend disagrees with the model: {e}");
    }
    // Bounded: no model for which keys survive, but the bound and the no-panic rule hold.
    let bounded = MemoryBackend::builder()
        .max_entries(3)
        .max_bytes(300)
        .build();
    for op in &ops {
        if let Op::Set { key, value, .. } = op {
            bounded
                .set(
                    &format!("k{key}"),
                    braincache_core::Record::new(value.clone(), None),
                )
                .expect("memory set");
        }
        assert!(bounded.len().expect("len") <= 3);
        assert!(bounded.bytes() <= 300);
    }
});
