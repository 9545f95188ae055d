//! Benchmark placeholder; filled in by the printer driver work.
fn main() {}
