//! Placeholder, filled in by the redb work.
fn main() {}
