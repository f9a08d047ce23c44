//! Property test: random operation sequences against each backend agree with a model (an
//! ordered map with deadlines). The same model backs the fuzz targets in `fuzz/`; this runs in
//! the ordinary test suite so every CI run checks it without nightly.

use braincache::backend::MemoryBackend;
use braincache::core::testkit::{Op, check_against_model};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    let key = any::<u8>();
    let ttl = proptest::option::of(0u16..2_000);
    prop_oneof![
        4 => (key, proptest::collection::vec(any::<u8>(), 0..16), ttl.clone())
            .prop_map(|(key, value, ttl_ms)| Op::Set { key, value, ttl_ms }),
        3 => key.prop_map(|key| Op::Get { key }),
        2 => key.prop_map(|key| Op::Delete { key }),
        1 => Just(Op::Clear),
        2 => Just(Op::Purge),
        2 => (0u16..3_000).prop_map(|ms| Op::Advance { ms }),
        1 => (key, key, ttl).prop_map(|(a, b, ttl_ms)| Op::SetMany { a, b, ttl_ms }),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 0..60)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn memory_unbounded_agrees_with_the_model(ops in ops()) {
        check_against_model(&MemoryBackend::new(), &ops).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn decode_all_never_panics_and_covers_every_op() {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let ops = Op::decode_all(&bytes);
    assert!(ops.len() > 100);
    for probe in [Op::Clear, Op::Purge] {
        assert!(ops.contains(&probe));
    }
    assert!(Op::decode_all(&[]).is_empty());
    check_against_model(&MemoryBackend::new(), &ops).unwrap();
}
