//! The Jsonnet worker alone: reads one request on stdin, writes the answer on stdout (see
//! `plumb_source::jsonnet_worker`). `plumb internal jsonnet-worker` is the same program
//! inside the `plumb` binary.

fn main() {
    std::process::exit(plumb_source::jsonnet_worker::run_stdio());
}
