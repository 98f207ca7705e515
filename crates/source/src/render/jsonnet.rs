//! Jsonnet files, evaluated in-process with jrsonnet: `extVars`, `tlas` (string or code) and
//! `libs` (library directories, repository-relative). Imports are confined to the repository.

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

use super::RenderError;

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

/// Evaluates `file` (absolute, inside `root`) to JSON.
pub(super) fn evaluate(
    root: &Path,
    file: &Path,
    display: &str,
    options: Option<&JsonnetSource>,
) -> Result<Value, RenderError> {
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
