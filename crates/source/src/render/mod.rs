//! From a path of a checkout (and an Argo CD `ApplicationSource`) to Kubernetes objects.
//!
//! Type detection follows Argo CD: an explicit `kustomize`/`helm`/`directory` block (or
//! `chart`) decides; otherwise `kustomization.yaml|yml|Kustomization` means Kustomize,
//! `Chart.yaml` means Helm, and anything else is a directory of YAML/JSON/Jsonnet files.

mod directory;
pub mod discover;
pub mod helm;
pub(crate) mod jsonnet;
pub mod kustomize;
pub mod yaml;
mod yaml_fast;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plumb_model::application::ApplicationSource;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::command::{CommandError, UnsafeArgument};
use crate::creds::CredentialStore;
use crate::jsonnet_worker::WorkerCommand;
use crate::paths::PathError;

/// One rendered object and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub object: Value,
    /// Repository-relative file the object was read from (for Helm, the chart template; for
    /// Kustomize, the kustomization).
    pub file: String,
    /// 1-based line the object starts on, when known.
    pub line: Option<u64>,
}

/// How a source is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceType {
    Directory,
    Kustomize,
    Helm,
}

impl SourceType {
    /// Argo CD's name, as `status.sourceType` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Directory => "Directory",
            SourceType::Kustomize => "Kustomize",
            SourceType::Helm => "Helm",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    UnsafeArgument(#[from] UnsafeArgument),
    #[error(
        "the repository contains symlinks that point outside it: {}; refusing to render",
        .paths.join(", ")
    )]
    EscapingSymlinks { paths: Vec<String> },
    #[error("{file}:{line}: malformed YAML: {message}")]
    Yaml {
        file: String,
        line: u64,
        message: String,
    },
    #[error("{file}{}: {message}", .line.map(|l| format!(":{l}")).unwrap_or_default())]
    NotAnObject {
        file: String,
        line: Option<u64>,
        message: String,
    },
    #[error("{file}: jsonnet: {message}")]
    Jsonnet { file: String, message: String },
    #[error("manifests under {path:?} are {size} bytes, over the limit of {limit} bytes{}", .file.as_ref().map(|f| format!(" ({f})")).unwrap_or_default())]
    TooLarge {
        path: String,
        size: u64,
        limit: u64,
        file: Option<String>,
    },
    #[error("{tool} is needed to render {path:?} but was not found ({looked}): {remedy}")]
    ToolMissing {
        tool: &'static str,
        path: String,
        /// Where discovery looked ([`discover`]).
        looked: String,
        /// What provides the tool.
        remedy: &'static str,
    },
    #[error("{tool} failed on {path:?}: {message}")]
    Tool {
        tool: &'static str,
        path: String,
        message: String,
    },
    #[error("{tool} on {path:?}: {source}")]
    Command {
        tool: &'static str,
        path: String,
        #[source]
        source: CommandError,
    },
    #[error("rendering {path:?} did not finish within {timeout:?}")]
    Timeout { path: String, timeout: Duration },
    #[error("rendering {path:?} was cancelled")]
    Cancelled { path: String },
    #[error("path {0:?} is not a directory in the repository")]
    NotADirectory(String),
    #[error("source defines more than one of helm, kustomize and directory")]
    MultipleTypes,
    #[error("{what}: {message}")]
    BadOption { what: String, message: String },
    #[error(
        "value file {0:?} refers to source ref {1:?}, which no source of the application defines"
    )]
    UnknownRef(String, String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl RenderError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RenderError {
        let what = what.into();
        move |source| RenderError::Io { what, source }
    }
}

/// Limits and tool settings shared by every render.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Combined size of the manifest files of one directory source (Argo CD's
    /// `reposerver.max.combined.directory.manifests.size`, 10M by default).
    pub max_directory_bytes: u64,
    /// Per helm/kustomize run.
    pub tool_timeout: Duration,
    /// Most bytes a tool may print.
    pub max_tool_output: usize,
    /// Extra `kustomize build` flags (Argo CD's `kustomize.buildOptions`).
    pub kustomize_build_options: Vec<String>,
    /// Where temporary copies for Kustomize edits and Helm dependency builds are made
    /// (same file system as the checkouts, so copies are hard links).
    pub scratch_dir: PathBuf,
    /// The program that evaluates Jsonnet files in a child process that can be killed
    /// ([`crate::jsonnet_worker`]); defaults to what the running binary registered with
    /// [`register_default`](crate::jsonnet_worker::register_default). `None` evaluates
    /// in-process, where a runaway evaluation fails the render at the deadline but keeps
    /// running on its thread until it ends.
    pub jsonnet_worker: Option<WorkerCommand>,
    /// Address space (bytes) a Jsonnet worker may map (`RLIMIT_AS`).
    pub jsonnet_memory_limit: u64,
    /// Read plain block YAML of directory sources with the fast path (`render::yaml_fast`,
    /// several times faster than serde-saphyr, which still reads everything else). Off
    /// sends every document through serde-saphyr: an escape hatch, and the benchmark's
    /// baseline.
    pub yaml_fast_path: bool,
}

impl RenderOptions {
    pub fn new(scratch_dir: impl Into<PathBuf>) -> Self {
        RenderOptions {
            max_directory_bytes: 10 * 1024 * 1024,
            tool_timeout: Duration::from_secs(90),
            max_tool_output: 100 * 1024 * 1024,
            kustomize_build_options: Vec::new(),
            scratch_dir: scratch_dir.into(),
            jsonnet_worker: crate::jsonnet_worker::default_worker(),
            jsonnet_memory_limit: 1024 * 1024 * 1024,
            yaml_fast_path: true,
        }
    }
}

/// How Kustomize is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KustomizeTool {
    /// `kustomize build DIR`
    Kustomize(PathBuf),
    /// `kubectl kustomize DIR`
    Kubectl(PathBuf),
}

/// The external tools found on this machine.
#[derive(Debug)]
pub struct Tools {
    pub helm: Option<PathBuf>,
    pub kustomize: Option<KustomizeTool>,
    /// HELM_CACHE_HOME etc. live here, so user configuration never leaks in.
    pub helm_home: PathBuf,
    /// Where discovery looked for each tool, for the message when a render needs a missing
    /// one.
    helm_looked: String,
    kustomize_looked: String,
    versions: tokio::sync::OnceCell<String>,
}

/// Finds `name` as an executable in `extra` directories first, then in `PATH` (absolute
/// entries only); no caches, no overrides (that is [`Tools::discover`]).
pub fn find_executable(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let env = discover::ToolEnv {
        path: std::env::var_os("PATH"),
        ..discover::ToolEnv::default()
    };
    extra
        .iter()
        .chain(env.path_dirs().iter())
        .map(|dir| dir.join(name))
        .find(|candidate| discover::is_executable(candidate))
}

impl Tools {
    /// Finds `helm` and `kustomize` (else `kubectl`) as [`discover`] describes, in this
    /// process's environment: `$PLUMB_HELM`/`$PLUMB_KUSTOMIZE`, `extra_dirs`, `PATH`, then
    /// the caches of `scripts/install-tools` and `scripts/build-testcluster`.
    pub fn discover(extra_dirs: &[PathBuf], helm_home: impl Into<PathBuf>) -> Tools {
        Self::discover_in(extra_dirs, &discover::ToolEnv::from_process(), helm_home)
    }

    /// [`Tools::discover`] in the given environment.
    pub fn discover_in(
        extra_dirs: &[PathBuf],
        env: &discover::ToolEnv,
        helm_home: impl Into<PathBuf>,
    ) -> Tools {
        let dirs = discover::SearchDirs::new(extra_dirs, env);
        let (helm, helm_looked) = match discover::locate_helm(&dirs, env) {
            discover::Found::Yes(path) => (Some(path), String::new()),
            discover::Found::No { looked } => (None, looked),
        };
        let (kustomize, kustomize_looked) = match discover::locate_kustomize(&dirs, env) {
            discover::Found::Yes(tool) => (Some(tool), String::new()),
            discover::Found::No { looked } => (None, looked),
        };
        tracing::debug!(?helm, ?kustomize, "external tools");
        Tools {
            helm,
            kustomize,
            helm_home: helm_home.into(),
            helm_looked,
            kustomize_looked,
            versions: tokio::sync::OnceCell::new(),
        }
    }

    /// Exactly these tools, nothing looked up.
    pub fn new(
        helm: Option<PathBuf>,
        kustomize: Option<KustomizeTool>,
        helm_home: impl Into<PathBuf>,
    ) -> Tools {
        let not_given = || "none was given to plumb".to_string();
        Tools {
            helm,
            kustomize,
            helm_home: helm_home.into(),
            helm_looked: not_given(),
            kustomize_looked: not_given(),
            versions: tokio::sync::OnceCell::new(),
        }
    }

    /// The error for a render of `path` that needs helm, which was not found.
    pub(crate) fn helm_missing(&self, path: &str) -> RenderError {
        RenderError::ToolMissing {
            tool: "helm",
            path: path.to_string(),
            looked: self.helm_looked.clone(),
            remedy: discover::HELM_REMEDY,
        }
    }

    /// The error for a render of `path` that needs kustomize, which was not found.
    pub(crate) fn kustomize_missing(&self, path: &str) -> RenderError {
        RenderError::ToolMissing {
            tool: "kustomize",
            path: path.to_string(),
            looked: self.kustomize_looked.clone(),
            remedy: discover::KUSTOMIZE_REMEDY,
        }
    }

    /// The tools' versions, asked once per process (part of every render cache key, so a
    /// tool upgrade invalidates earlier renders).
    pub async fn versions(&self) -> String {
        self.versions
            .get_or_init(|| async {
                let cancel = CancellationToken::new();
                let ask = |program: &Path, args: &[&str]| {
                    crate::command::CommandSpec::new(program)
                        .args(args.iter().copied())
                        .timeout(Duration::from_secs(20))
                        .max_stdout(1024 * 1024)
                };
                let mut parts = vec![format!("plumb-source {}", env!("CARGO_PKG_VERSION"))];
                if let Some(helm) = &self.helm {
                    let spec =
                        ask(helm, &["version", "--short"]).env("HELM_CONFIG_HOME", &self.helm_home);
                    if let Ok(out) = crate::command::run(&spec, &cancel).await {
                        parts.push(format!(
                            "helm {}",
                            String::from_utf8_lossy(&out.stdout).trim()
                        ));
                    }
                }
                match &self.kustomize {
                    Some(KustomizeTool::Kustomize(bin)) => {
                        if let Ok(out) = crate::command::run(&ask(bin, &["version"]), &cancel).await
                        {
                            parts.push(format!(
                                "kustomize {}",
                                String::from_utf8_lossy(&out.stdout).trim()
                            ));
                        }
                    }
                    Some(KustomizeTool::Kubectl(bin)) => {
                        if let Ok(out) = crate::command::run(
                            &ask(bin, &["version", "--client", "-o", "json"]),
                            &cancel,
                        )
                        .await
                        {
                            let v: Value =
                                serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
                            parts.push(format!(
                                "kubectl-kustomize {}",
                                v["kustomizeVersion"].as_str().unwrap_or("unknown")
                            ));
                        }
                    }
                    None => {}
                }
                parts.join("; ")
            })
            .await
            .clone()
    }
}

/// Everything one render needs besides the source itself.
pub struct RenderContext<'a> {
    /// Root of the checkout the source's path is in (for a Helm repository chart, the
    /// directory the chart was pulled into).
    pub repo_root: &'a Path,
    pub app_name: &'a str,
    pub namespace: &'a str,
    pub kube_version: Option<&'a str>,
    pub api_versions: &'a [String],
    /// `ref` name → root of that source's checkout (multi-source `$ref/...` value files).
    pub refs: &'a HashMap<String, PathBuf>,
    pub credentials: &'a CredentialStore,
    pub options: &'a RenderOptions,
    pub tools: &'a Tools,
    pub cancel: &'a CancellationToken,
}

/// Which renderer a source uses (Argo CD's rules).
pub fn detect_type(source: &ApplicationSource, app_dir: &Path) -> Result<SourceType, RenderError> {
    let explicit: Vec<SourceType> = [
        (
            source.helm.is_some() || !source.chart.is_empty(),
            SourceType::Helm,
        ),
        (source.kustomize.is_some(), SourceType::Kustomize),
        (source.directory.is_some(), SourceType::Directory),
    ]
    .into_iter()
    .filter_map(|(set, ty)| set.then_some(ty))
    .collect();
    match explicit.as_slice() {
        [one] => return Ok(*one),
        [] => {}
        _ => return Err(RenderError::MultipleTypes),
    }
    if kustomize::kustomization_file(app_dir).is_some() {
        return Ok(SourceType::Kustomize);
    }
    if app_dir.join("Chart.yaml").is_file() {
        return Ok(SourceType::Helm);
    }
    Ok(SourceType::Directory)
}

/// What a render produced, with an estimate of its size for the cache's bound.
pub struct Rendered {
    pub manifests: Vec<Manifest>,
    pub approx_bytes: usize,
    pub source_type: SourceType,
}

/// Renders `source` at its `path` inside `ctx.repo_root`.
pub async fn render_source(
    source: &ApplicationSource,
    ctx: &RenderContext<'_>,
) -> Result<Rendered, RenderError> {
    let path = if source.path.is_empty() {
        "."
    } else {
        source.path.as_str()
    };
    let app_dir = crate::paths::resolve_inside(ctx.repo_root, ctx.repo_root, path, "path")?;
    if !app_dir.is_dir() {
        return Err(RenderError::NotADirectory(path.to_string()));
    }
    let source_type = detect_type(source, &app_dir)?;
    let mut rendered = match source_type {
        SourceType::Directory => directory::render(source, app_dir, path, ctx).await,
        SourceType::Kustomize => kustomize::render(source, &app_dir, path, ctx).await,
        SourceType::Helm => helm::render(source, &app_dir, path, ctx).await,
    }?;
    rendered.source_type = source_type;
    Ok(rendered)
}

/// `root`-relative display of `path`.
pub(crate) fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let text = rel.display().to_string();
    if text.is_empty() {
        ".".to_string()
    } else {
        text
    }
}
