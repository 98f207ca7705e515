//! Jsonnet files, evaluated with jrsonnet: `extVars`, `tlas` (string or code) and `libs`
//! (library directories, repository-relative). Imports are confined to the repository.
//!
//! With a worker configured ([`RenderOptions::jsonnet_worker`](super::RenderOptions)) each
//! file is evaluated in a child process ([`crate::jsonnet_worker`]) that is killed at the
//! deadline, on cancellation, past the output cap, and stopped by its memory limit. Without
//! one, evaluation runs in-process (on a blocking thread) and cannot be stopped: the render
//! fails at the deadline but the evaluation runs on to its end.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jrsonnet_evaluator::manifest::JsonFormat;
use jrsonnet_evaluator::trace::{CompactFormat, PathResolver, TraceFormat};
use jrsonnet_evaluator::{
    FileImportResolver, IStr, ImportIo, ImportResolver, SourcePath, State, apply_tla, tla::TlaArg,
};
use jrsonnet_gcmodule::Acyclic;
use jrsonnet_ir::SourceFile;
use plumb_model::application::JsonnetSource;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::RenderError;
use crate::command::{self, CommandError, CommandSpec};
use crate::jsonnet_worker::{WorkerCommand, WorkerLimits, WorkerRequest, WorkerResponse};

/// File imports, refused when they resolve outside the repository (an `import
/// '/etc/passwd'` or `importstr '../../..'` must not read the host).
#[derive(Acyclic)]
struct RepoImportResolver {
    inner: FileImportResolver,
    real_root: PathBuf,
}

impl ImportResolver for RepoImportResolver {
    fn resolve_from(
        &self,
        from: &SourcePath,
        path: &dyn jrsonnet_evaluator::AsPathLike,
    ) -> jrsonnet_evaluator::Result<SourcePath> {
        let resolved = self.inner.resolve_from(from, path)?;
        if let Some(file) = resolved.downcast_ref::<SourceFile>() {
            let inside = file
                .path()
                .canonicalize()
                .is_ok_and(|real| real.starts_with(&self.real_root));
            if !inside {
                return Err(ImportIo(format!(
                    "import of {} resolves outside the repository",
                    file.path().display()
                ))
                .into());
            }
        }
        Ok(resolved)
    }

    fn load_file_contents(&self, resolved: &SourcePath) -> jrsonnet_evaluator::Result<Vec<u8>> {
        self.inner.load_file_contents(resolved)
    }
}

/// Evaluates `file` (absolute, inside `root`) to JSON, in this process.
pub(super) fn evaluate(
    root: &Path,
    file: &Path,
    display: &str,
    options: Option<&JsonnetSource>,
) -> Result<Value, RenderError> {
    evaluate_with_stack(
        root,
        file,
        display,
        options,
        crate::jsonnet_worker::WorkerLimits::default().max_stack,
    )
}

/// [`evaluate`] with a limit on the depth of the Jsonnet call stack (frames).
pub(crate) fn evaluate_with_stack(
    root: &Path,
    file: &Path,
    display: &str,
    options: Option<&JsonnetSource>,
    max_stack: usize,
) -> Result<Value, RenderError> {
    let _depth = jrsonnet_evaluator::stack::limit_stack_depth(max_stack);
    let fail = |message: String| RenderError::Jsonnet {
        file: display.to_string(),
        message,
    };
    let options = options.cloned().unwrap_or_default();
    let mut library_paths = Vec::new();
    for lib in &options.libs {
        library_paths.push(crate::paths::resolve_inside(
            root,
            root,
            lib,
            "jsonnet lib",
        )?);
    }
    let real_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let context =
        jrsonnet_stdlib::ContextInitializer::new(PathResolver::Relative(real_root.clone()));
    for var in &options.ext_vars {
        if var.code {
            context
                .add_ext_code(&var.name, &var.value)
                .map_err(|e| fail(format!("extVar {}: {e}", var.name)))?;
        } else {
            context.add_ext_str(
                IStr::from(var.name.as_str()),
                IStr::from(var.value.as_str()),
            );
        }
    }
    let mut builder = State::builder();
    builder
        .import_resolver(RepoImportResolver {
            inner: FileImportResolver::new(library_paths),
            real_root: real_root.clone(),
        })
        .context_initializer(context);
    let state = builder.build();
    let Some(_entered) = state.try_enter() else {
        return Err(fail(
            "another evaluation is active on this thread".to_string(),
        ));
    };
    let format = CompactFormat {
        resolver: PathResolver::Relative(real_root.clone()),
        max_trace: 10,
        padding: 4,
    };
    let explain =
        |e: jrsonnet_evaluator::Error| fail(format.format(&e).unwrap_or_else(|_| e.to_string()));
    let real_file = file
        .canonicalize()
        .map_err(RenderError::io(format!("reading {display}")))?;
    let value = state
        .import_resolved(SourcePath::new(SourceFile::new(real_file)))
        .map_err(explain)?;
    // jrsonnet's API takes this map; IStr's interior mutability is its refcount, not its hash.
    #[allow(clippy::mutable_key_type)]
    let tlas: HashMap<IStr, TlaArg> = options
        .tlas
        .iter()
        .map(|t| {
            let arg = if t.code {
                TlaArg::InlineCode(t.value.clone())
            } else {
                TlaArg::String(IStr::from(t.value.as_str()))
            };
            (IStr::from(t.name.as_str()), arg)
        })
        .collect();
    let value = apply_tla(&tlas, value).map_err(explain)?;
    let json = value.manifest(JsonFormat::minify()).map_err(explain)?;
    serde_json::from_str(&json).map_err(|e| fail(format!("output is not JSON: {e}")))
}

/// Limits of one worker run.
pub(super) struct WorkerRun<'a> {
    pub worker: &'a WorkerCommand,
    /// What is left of the render's deadline.
    pub timeout: std::time::Duration,
    /// The whole deadline, for messages.
    pub budget: std::time::Duration,
    pub max_output: usize,
    pub memory_limit: u64,
    pub cancel: &'a CancellationToken,
}

/// Signals that end a worker that ran out of memory: Rust aborts on a failed allocation, and
/// the kernel's OOM killer kills outright (our own kills are reported before this point).
const SIGABRT: i32 = 6;
const SIGKILL: i32 = 9;

/// Evaluates `rel_file` (relative to `root`) in a worker process.
pub(super) async fn evaluate_in_worker(
    root: &Path,
    rel_file: &str,
    options: Option<&JsonnetSource>,
    run: &WorkerRun<'_>,
) -> Result<Value, RenderError> {
    let fail = |message: String| RenderError::Jsonnet {
        file: rel_file.to_string(),
        message,
    };
    let request = WorkerRequest {
        root: root.to_path_buf(),
        file: rel_file.to_string(),
        jsonnet: options.cloned().unwrap_or_default(),
        limits: WorkerLimits::default(),
    };
    let input = serde_json::to_vec(&request)
        .map_err(|e| fail(format!("encoding the worker request: {e}")))?;
    let spec = CommandSpec::new(&run.worker.program)
        .args(run.worker.args.iter().cloned())
        .current_dir(root)
        .timeout(run.timeout)
        .max_stdout(run.max_output)
        .memory_limit(run.memory_limit)
        .stdin(input);
    let out = match command::run(&spec, run.cancel).await {
        Ok(out) => out,
        Err(CommandError::TimedOut { .. }) => {
            return Err(fail(format!(
                "evaluation did not finish within {:?}; its worker process was killed",
                run.budget
            )));
        }
        Err(CommandError::Cancelled { .. }) => {
            return Err(RenderError::Cancelled {
                path: rel_file.to_string(),
            });
        }
        Err(CommandError::OutputTooLarge { limit, .. }) => {
            return Err(fail(format!(
                "output is larger than {limit} bytes; its worker process was killed"
            )));
        }
        Err(source) => {
            return Err(RenderError::Command {
                tool: "jsonnet worker",
                path: rel_file.to_string(),
                source,
            });
        }
    };
    if !out.success {
        let out_of_memory = out.stderr.contains("memory allocation of")
            || matches!(out.signal, Some(SIGABRT | SIGKILL));
        if out_of_memory {
            return Err(fail(format!(
                "evaluation exceeded the memory limit of {} MiB; its worker process was stopped",
                run.memory_limit / (1024 * 1024)
            )));
        }
        let how = match (out.code, out.signal) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => "an unknown status".to_string(),
        };
        // The end of stderr holds the reason (a panic message comes last).
        let stderr = out.stderr.trim();
        let start = stderr.char_indices().rev().nth(2000).map_or(0, |(i, _)| i);
        return Err(fail(format!(
            "the worker process failed with {how}: {}",
            &stderr[start..]
        )));
    }
    match serde_json::from_slice::<WorkerResponse>(&out.stdout) {
        Ok(WorkerResponse::Ok(value)) => Ok(value),
        Ok(WorkerResponse::Error(e)) => Err(fail(e.message)),
        Err(e) => Err(fail(format!("the worker's answer is not understood: {e}"))),
    }
}
