//! The Jsonnet worker: one Jsonnet file evaluated in a child process that plumb can kill.
//!
//! jrsonnet evaluates on the calling thread and has no way to stop an evaluation from the
//! outside, so a runaway file (an endless fold, a string doubled until memory runs out) would
//! keep a thread of the server busy or take the whole process down. A render therefore
//! spawns a worker per Jsonnet file (through [`crate::command::run`]: own process group,
//! deadline, cancellation, stdout cap, and an address-space limit set with `prlimit(2)`
//! before the request is written) and kills it when any limit is reached.
//!
//! The protocol: one JSON [`WorkerRequest`] on stdin; one JSON [`WorkerResponse`] on stdout,
//! exit status 0 for both a value and an evaluation error. Any other exit is a crash
//! (`SIGABRT` from a failed allocation under the memory limit, a panic).
//!
//! Binaries embed the worker by calling [`run_stdio`]: `plumb internal jsonnet-worker` and
//! `plumb-jsonnet-worker` (this crate's own binary, for its tests). The worker applies the
//! same confinement as in-process evaluation: the entry file and every `libs` directory are
//! resolved inside the repository, and imports that resolve outside it are refused.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::OnceLock;

use plumb_model::application::JsonnetSource;
use serde::{Deserialize, Serialize};

use crate::render::RenderError;

/// How to start a worker: a program and the arguments that select the worker inside it
/// (`plumb` + `internal jsonnet-worker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl WorkerCommand {
    pub fn new(program: impl Into<PathBuf>) -> WorkerCommand {
        WorkerCommand {
            program: program.into(),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> WorkerCommand {
        self.args.push(arg.into());
        self
    }
}

static DEFAULT_WORKER: OnceLock<WorkerCommand> = OnceLock::new();

/// Registers the worker a binary embeds as the default of every
/// [`RenderOptions`](crate::render::RenderOptions) created afterwards in this process (the
/// `plumb` binary registers itself at start, so every subcommand that renders gets killable
/// Jsonnet without passing the setting through). The first registration wins.
pub fn register_default(command: WorkerCommand) {
    let _ = DEFAULT_WORKER.set(command);
}

/// The registered default worker, if a binary registered one.
pub fn default_worker() -> Option<WorkerCommand> {
    DEFAULT_WORKER.get().cloned()
}

/// What the parent asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerRequest {
    /// Root of the repository checkout; nothing outside it may be read.
    pub root: PathBuf,
    /// The entry file, relative to `root`.
    pub file: String,
    /// `extVars`, `tlas` and `libs` of the source.
    #[serde(default)]
    pub jsonnet: JsonnetSource,
    #[serde(default)]
    pub limits: WorkerLimits,
}

/// Limits the worker applies itself (time, output and memory are enforced by the parent).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerLimits {
    /// Deepest Jsonnet call stack (frames) before "stack overflow" (jrsonnet's default 200).
    pub max_stack: usize,
}

impl Default for WorkerLimits {
    fn default() -> Self {
        WorkerLimits { max_stack: 200 }
    }
}

/// What the worker answers: the manifested value, or why evaluation failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WorkerResponse {
    Ok(serde_json::Value),
    Error(WorkerError),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerError {
    /// `jsonnet` (evaluation), `path` (a file or lib outside the repository), `io`, or
    /// `request` (the request could not be read).
    pub kind: String,
    pub message: String,
}

/// The worker's whole life: read the request from stdin, evaluate, write the response to
/// stdout. Returns the process exit code (0 unless stdout could not be written).
pub fn run_stdio() -> i32 {
    let mut input = Vec::new();
    let response = match std::io::stdin().read_to_end(&mut input) {
        Ok(_) => match serde_json::from_slice::<WorkerRequest>(&input) {
            Ok(request) => evaluate_catching_panics(&request),
            Err(e) => WorkerResponse::Error(WorkerError {
                kind: "request".to_string(),
                message: format!("malformed worker request: {e}"),
            }),
        },
        Err(e) => WorkerResponse::Error(WorkerError {
            kind: "request".to_string(),
            message: format!("reading the worker request: {e}"),
        }),
    };
    let mut stdout = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut stdout, &response)
        .map_err(std::io::Error::from)
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("jsonnet worker: writing the response: {e}");
            2
        }
    }
}

/// jrsonnet grows its own stack as it recurses (stacker), so the main thread will do; a
/// panic in the evaluator becomes an answer instead of a bare crash.
fn evaluate_catching_panics(request: &WorkerRequest) -> WorkerResponse {
    std::panic::catch_unwind(|| evaluate(request)).unwrap_or_else(|_| {
        WorkerResponse::Error(WorkerError {
            kind: "jsonnet".to_string(),
            message: "the evaluator panicked".to_string(),
        })
    })
}

fn evaluate(request: &WorkerRequest) -> WorkerResponse {
    let result = crate::paths::resolve_inside(&request.root, &request.root, &request.file, "file")
        .map_err(RenderError::from)
        .and_then(|file| {
            crate::render::jsonnet::evaluate_with_stack(
                &request.root,
                &file,
                &request.file,
                Some(&request.jsonnet),
                request.limits.max_stack,
            )
        });
    match result {
        Ok(value) => WorkerResponse::Ok(value),
        Err(RenderError::Jsonnet { message, .. }) => WorkerResponse::Error(WorkerError {
            kind: "jsonnet".to_string(),
            message,
        }),
        Err(e @ RenderError::Path(_)) => WorkerResponse::Error(WorkerError {
            kind: "path".to_string(),
            message: e.to_string(),
        }),
        Err(e) => WorkerResponse::Error(WorkerError {
            kind: "io".to_string(),
            message: e.to_string(),
        }),
    }
}
