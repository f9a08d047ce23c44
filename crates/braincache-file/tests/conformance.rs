//! The shared backend conformance suite and the model check, in both write modes, plus a
//! reopen check: what a handle wrote reads back identically through a fresh handle.

use braincache_core::Backend;
use braincache_core::testkit::{Op, check_against_model, strategy};
use braincache_file::FileBackend;
use proptest::prelude::*;
use std::time::Duration;

fn durable() -> (FileBackend, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (
        FileBackend::open(dir.path().join("cache.json")).unwrap(),
        dir,
    )
}

fn batched() -> (FileBackend, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let b = FileBackend::builder(dir.path().join("cache.json"))
        .flush_every(Duration::from_millis(5))
        .build()
        .unwrap();
    (b, dir)
}

mod durable_mode {
    braincache_core::conformance_tests!(crate::durable);
}

mod batched_mode {
    braincache_core::conformance_tests!(crate::batched);
}

/// Every record `a` holds, read through a fresh handle on the same file, is identical.
fn reopen_agrees(a: &FileBackend) -> Result<(), String> {
    a.flush().map_err(|e| e.to_string())?;
    let b = FileBackend::open(a.path()).map_err(|e| e.to_string())?;
    let keys = braincache_core::testkit::MODEL_KEYS;
    for k in keys {
        let (x, y) = (a.get(k), b.get(k));
        let (x, y) = (x.map_err(|e| e.to_string())?, y.map_err(|e| e.to_string())?);
        if x != y {
            return Err(format!(
                "key {k:?}: handle has {x:?}, reopened file has {y:?}"
            ));
        }
    }
    if a.len().ok() != b.len().ok() || a.next_expiry().ok() != b.next_expiry().ok() {
        return Err("len or next_expiry differ after reopening".into());
    }
    Ok(())
}

/// The test kit's operations, plus sets of values that are JSON text, the file backend's usual
/// input.
fn op() -> impl Strategy<Value = Op> {
    let mut arms = strategy::op_arms();
    let json = (
        any::<u8>(),
        prop_oneof![
            Just("1"),
            Just("\"s\""),
            Just("[1,{\"a\":null}]"),
            Just("{\"$bytes\":\"AA==\"}"),
            Just("{\"$json\":1}")
        ],
        strategy::ttl(),
    )
        .prop_map(|(key, v, ttl_ms)| Op::Set {
            key,
            value: v.as_bytes().to_vec(),
            ttl_ms,
        });
    arms.insert(1, (2, json.boxed()));
    proptest::strategy::Union::new_weighted(arms)
}

proptest! {
    // Durable writes cost two fsyncs each: keep the case count modest for debug builds.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn durable_agrees_with_the_model(ops in proptest::collection::vec(op(), 0..40)) {
        let (b, _dir) = durable();
        check_against_model(&b, &ops).map_err(TestCaseError::fail)?;
        reopen_agrees(&b).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn batched_agrees_with_the_model(ops in proptest::collection::vec(op(), 0..40)) {
        let (b, _dir) = batched();
        check_against_model(&b, &ops).map_err(TestCaseError::fail)?;
        reopen_agrees(&b).map_err(TestCaseError::fail)?;
    }
}
