//! Compile-fail tests of `#[cache]`: each misuse is refused with an error pointing at the
//! offending token and saying why. The expected messages are in `tests/ui/**/*.stderr`; after a
//! deliberate change regenerate them with
//! `TRYBUILD=overwrite cargo test --features macros --test macro_ui` (and again with
//! `--features macros,async` for `tests/ui/async/`) and read the diff.

#![cfg(feature = "macros")]

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    // `async fn` misuse: refused for the same reasons as sync functions. `wrong_cache.rs` is in
    // both folders: with the feature, rustc names `braincache::BrainCache` in full (there is a
    // `braincache::future::BrainCache` too).
    #[cfg(feature = "async")]
    t.compile_fail("tests/ui/async/*.rs");
    // Without the `async` feature an `async fn` is refused with a message naming the feature.
    #[cfg(not(feature = "async"))]
    t.compile_fail("tests/ui/no_async/*.rs");
}
