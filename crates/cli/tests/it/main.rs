//! The `plumb` binary's integration tests: each module runs the real binary.

mod admin;
mod client_side_sync;
mod diff_sync;
mod embedded;
mod errors;
mod prune_namespaces;
mod serve;
mod support;

use std::process::{Command, Output};

/// Runs `plumb` with arguments and returns its output.
pub fn plumb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plumb"))
        .args(args)
        .env("PLUMB_LOG", "warn")
        .output()
        .expect("run plumb")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}
