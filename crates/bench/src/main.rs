//! The benchmark harness: `cargo run --release -p plumb-bench -- <scenario>`.
fn main() {}
