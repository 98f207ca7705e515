//! `plumb internal …`: entry points plumb starts itself, not meant for people (hidden from
//! `--help`). `jsonnet-worker` evaluates one Jsonnet file in a process the parent can kill
//! (see `plumb_source::jsonnet_worker`).

use clap::Subcommand;
use plumb_source::jsonnet_worker::{self, WorkerCommand};

#[derive(Subcommand)]
pub enum InternalCommand {
    /// Evaluate one Jsonnet file: a JSON request on stdin, the JSON answer on stdout.
    JsonnetWorker,
}

pub fn run(command: InternalCommand) -> anyhow::Result<()> {
    match command {
        InternalCommand::JsonnetWorker => {
            let code = jsonnet_worker::run_stdio();
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
    }
}

/// Makes this binary the Jsonnet worker of every render in this process (`plumb render`,
/// `diff`, `sync`, later `serve`). Without a known path to this binary, renders fall back to
/// in-process evaluation.
pub fn register_jsonnet_worker() {
    match std::env::current_exe() {
        Ok(exe) => jsonnet_worker::register_default(
            WorkerCommand::new(exe)
                .arg("internal")
                .arg("jsonnet-worker"),
        ),
        Err(e) => tracing::warn!(
            "cannot find the plumb binary ({e}); Jsonnet is evaluated in-process and a runaway \
             evaluation cannot be killed"
        ),
    }
}
