//! Placeholder, filled in by the quickstart work.
fn main() {}
