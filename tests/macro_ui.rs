//! Compile-fail tests of `#[cache]`: each misuse is refused with an error pointing at the
//! offending token. The expected messages are in `tests/ui/*.stderr`; after a deliberate change
//! regenerate them with `TRYBUILD=overwrite cargo test --features macros --test macro_ui` and
//! read the diff.

#![cfg(feature = "macros")]

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
