//! Benchmark placeholder; filled in by the card driver work.
fn main() {}
