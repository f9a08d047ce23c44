//! Placeholder, filled in by the file work.
fn main() {}
