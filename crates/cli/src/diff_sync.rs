//! `plumb diff` and `plumb sync`: the engine from a terminal or a CI job, no server needed.
//!
//! Exit codes — diff: 0 in sync, 1 different, 2 error. sync: 0 when the operation succeeded
//! and every resource is Synced and Healthy (or `--no-wait-healthy`), 1 when it failed or
//! did not become healthy, 2 on errors before the operation (arguments, rendering,
//! connecting).

use anyhow::{Context, bail};
use clap::Args;
use plumb_app::sync::{AppEnv, SyncInput, SyncTuning};
use plumb_app::{AppSources, Comparison, Desired, RenderOverrides};
use plumb_engine::cluster::Cluster;
use plumb_engine::diff::ResourceComparison;
use plumb_engine::health::HealthAssessor;
use plumb_engine::settings::Settings;
use plumb_engine::sync::ResourceSelector;
use plumb_engine::sync::operation::{OperationResult, ResourceResult, SyncEvent};
use plumb_engine::sync::retry::parse_duration;
use plumb_model::{
    Application, ApplicationDestination, ApplicationSource, DirectorySource, HealthStatusCode,
    HelmParameter, HelmSource, KustomizeSource, Operation, OperationInitiator, OperationPhase,
    ResourceKey, RetryStrategy, SyncOperation, SyncOperationResource, SyncStatusCode,
};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Where the desired state comes from and where it goes.
#[derive(Args, Clone)]
pub struct TargetArgs {
    /// Render manifests from this local directory instead of a repository.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["repo", "revision"])]
    local: Option<PathBuf>,
    /// Git repository URL.
    #[arg(long, value_name = "URL", required_unless_present = "local")]
    repo: Option<String>,
    /// Branch, tag or commit (default HEAD).
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    revision: String,
    /// Path inside the repository.
    #[arg(long, value_name = "PATH", default_value = ".")]
    path: String,
    /// The Application's name: resources are tracked with it exactly as the controller
    /// tracks them.
    #[arg(long)]
    app: String,
    /// Kubeconfig of the destination cluster (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long)]
    context: Option<String>,
    /// Namespace for namespaced objects that do not set one.
    #[arg(long = "dest-namespace", value_name = "NS", default_value = "")]
    dest_namespace: String,
    /// An `argocd-cm` manifest (tracking method, ignoreDifferences, health customizations).
    #[arg(long = "argocd-cm", value_name = "FILE")]
    argocd_cm: Option<PathBuf>,
    /// Directory sources: include subdirectories.
    #[arg(long = "directory-recurse")]
    directory_recurse: bool,
    /// Helm: `--set NAME=VALUE` (repeatable).
    #[arg(long = "helm-set", value_name = "NAME=VALUE")]
    helm_set: Vec<String>,
    /// Helm: values file inside the chart directory (repeatable).
    #[arg(long = "values", value_name = "FILE")]
    values: Vec<String>,
    /// Helm: release name (default: the app name).
    #[arg(long = "release-name")]
    release_name: Option<String>,
    /// Kustomize: image override `name=newName:tag` (repeatable).
    #[arg(long = "kustomize-image", value_name = "IMAGE")]
    kustomize_image: Vec<String>,
    /// Never colour the output.
    #[arg(long = "no-color")]
    no_color: bool,
}

#[derive(Args)]
pub struct DiffArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// A sync option that decides how objects would be written, as the Application's
    /// `syncOptions` do (e.g. `ServerSideApply=false`, `Validate=false`; repeatable).
    #[arg(long = "sync-option", value_name = "NAME=VALUE")]
    sync_options: Vec<String>,
}

#[derive(Args)]
pub struct SyncArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Delete live objects that are no longer in Git.
    #[arg(long)]
    prune: bool,
    /// Also prune objects marked `Prune=confirm`.
    #[arg(long = "confirm-prune")]
    confirm_prune: bool,
    /// Plan and dry-run only; write nothing.
    #[arg(long = "dry-run")]
    dry_run: bool,
    /// A sync option, e.g. `CreateNamespace=true` (repeatable).
    #[arg(long = "sync-option", value_name = "NAME=VALUE")]
    sync_options: Vec<String>,
    /// Retries after a failed attempt (default backoff 5s ×2, at most 3m).
    #[arg(long = "retry-limit", value_name = "N", default_value_t = 0)]
    retry_limit: i64,
    /// Give up (terminate the operation) after this long, e.g. `5m`.
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    timeout: String,
    /// Sync only this resource, `GROUP:KIND:NAME` or `GROUP:KIND:NAMESPACE/NAME`
    /// (repeatable; hooks do not run in selective syncs).
    #[arg(long = "resource", value_name = "GROUP:KIND:NAME")]
    resources: Vec<String>,
    /// Do not wait for resources to become healthy after the operation.
    #[arg(long = "no-wait-healthy")]
    no_wait_healthy: bool,
}

/// Exit code for errors before or outside the comparison.
pub const EXIT_ERROR: i32 = 2;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs `future` to its end and returns without waiting for stray blocking tasks (the
/// process exits right after).
fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let runtime = runtime()?;
    let result = runtime.block_on(future);
    runtime.shutdown_background();
    result
}

/// `plumb diff`: the exit code (0 in sync, 1 different), or the error (exit 2).
pub fn run_diff(args: DiffArgs) -> anyhow::Result<i32> {
    block_on(diff(args))
}

/// `plumb sync`: the exit code, or the error (exit 2).
pub fn run_sync(args: SyncArgs) -> anyhow::Result<i32> {
    block_on(sync(args))
}

fn load_settings(target: &TargetArgs) -> anyhow::Result<Settings> {
    match &target.argocd_cm {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Ok(Settings::from_config_map_manifest(&text)
                .with_context(|| format!("reading {}", path.display()))?)
        }
        None => Ok(Settings::default()),
    }
}

/// The Application the flags describe: what the controller would be given.
fn application(target: &TargetArgs) -> anyhow::Result<Application> {
    let mut source = ApplicationSource {
        repo_url: target.repo.clone().unwrap_or_default(),
        path: target.path.clone(),
        target_revision: target.revision.clone(),
        ..Default::default()
    };
    if target.directory_recurse {
        source.directory = Some(DirectorySource {
            recurse: true,
            ..Default::default()
        });
    }
    if !target.helm_set.is_empty() || !target.values.is_empty() || target.release_name.is_some() {
        let mut parameters = Vec::new();
        for set in &target.helm_set {
            let Some((name, value)) = set.split_once('=') else {
                bail!("--helm-set {set:?} is not NAME=VALUE");
            };
            parameters.push(HelmParameter {
                name: name.to_string(),
                value: value.to_string(),
                force_string: false,
            });
        }
        source.helm = Some(HelmSource {
            value_files: target.values.clone(),
            parameters,
            release_name: target.release_name.clone().unwrap_or_default(),
            ..Default::default()
        });
    }
    if !target.kustomize_image.is_empty() {
        source.kustomize = Some(KustomizeSource {
            images: target.kustomize_image.clone(),
            ..Default::default()
        });
    }
    let mut app = Application::default();
    app.metadata.name = Some(target.app.clone());
    app.spec.source = Some(source);
    app.spec.destination = ApplicationDestination {
        server: plumb_app::spec::IN_CLUSTER_SERVER.to_string(),
        name: String::new(),
        namespace: target.dest_namespace.clone(),
    };
    Ok(app)
}

fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("plumb")
        .join("cli")
}

/// Renders the desired objects, from `--local` or the repository.
async fn render(target: &TargetArgs, app: &Application) -> anyhow::Result<Desired> {
    let cancel = CancellationToken::new();
    if let Some(dir) = &target.local {
        return Ok(plumb_app::desired::render_local(app, dir, &cancel).await?);
    }
    let mut config = plumb_source::SourceConfig::new(cache_dir());
    // A one-shot run reads what its own user can read anyway, so local repositories
    // (file://) are allowed here, unlike in the server.
    config.git.url_policy.allow_file = true;
    // One run resolves each revision once: nothing to remember between runs.
    let sources = AppSources::new(config, Duration::ZERO)?;
    Ok(sources
        .render(app, &RenderOverrides::default(), &cancel)
        .await?)
}

async fn connect(target: &TargetArgs) -> anyhow::Result<Cluster> {
    Ok(Cluster::connect(target.kubeconfig.as_deref(), target.context.as_deref()).await?)
}

struct Colors {
    enabled: bool,
}

impl Colors {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.enabled {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn diff_line(&self, line: &str) -> String {
        if line.starts_with("+++") || line.starts_with("---") {
            self.paint("1", line)
        } else if line.starts_with('+') {
            self.paint("32", line)
        } else if line.starts_with('-') {
            self.paint("31", line)
        } else if line.starts_with("@@") {
            self.paint("36", line)
        } else {
            line.to_string()
        }
    }
}

fn print_diff(resource: &ResourceComparison, colors: &Colors) {
    let key = &resource.key;
    let note = if resource.requires_pruning {
        " (requires pruning)"
    } else {
        ""
    };
    println!(
        "{}",
        colors.paint(
            "1",
            &format!(
                "===== {}/{} {}/{} ======{note}",
                key.group, key.kind, key.namespace, key.name
            )
        )
    );
    for line in resource.diff.lines() {
        println!("{}", colors.diff_line(line));
    }
}

fn print_conditions(comparison: &Comparison) {
    for condition in &comparison.conditions {
        eprintln!("{}: {}", condition.kind, condition.message);
    }
}

async fn diff(args: DiffArgs) -> anyhow::Result<i32> {
    let target = &args.target;
    let settings = load_settings(target)?;
    let app = application(target)?;
    // Checked before rendering: a bad option is an argument error, whatever the source.
    plumb_app::sync::sync_options(&app, &args.sync_options)?;
    let desired = render(target, &app).await?;
    let cluster = connect(target).await?;
    let assessor = HealthAssessor::new(settings.clone())?;
    let env = AppEnv {
        cluster: &cluster,
        assessor: &assessor,
        settings: &settings,
        live: None,
    };
    let comparison = plumb_app::sync::compare(
        env,
        &app,
        &desired,
        &args.sync_options,
        SyncTuning::default(),
    )
    .await?;
    print_conditions(&comparison);
    if comparison.has_errors() {
        bail!("some objects could not be compared (see above)");
    }
    let colors = Colors {
        enabled: !target.no_color && std::io::stdout().is_terminal(),
    };
    let mut different = false;
    for resource in &comparison.compared.comparison.resources {
        if resource.hook || resource.status == SyncStatusCode::Synced {
            continue;
        }
        different = true;
        print_diff(resource, &colors);
    }
    Ok(i32::from(different))
}

fn result_line(result: &ResourceResult) -> String {
    let key = &result.key;
    let hook = result
        .hook_phase
        .map(|phase| format!(" hook {phase:?}"))
        .unwrap_or_default();
    format!(
        "{} {} {}/{} {}/{} {:?}{hook} {}",
        result.phase.as_str(),
        result.wave,
        key.group,
        key.kind,
        key.namespace,
        key.name,
        result.status,
        result.message
    )
}

async fn sync(args: SyncArgs) -> anyhow::Result<i32> {
    let target = &args.target;
    let settings = load_settings(target)?;
    let timeout = parse_duration(&args.timeout).context("--timeout")?;
    let mut resources = Vec::new();
    for text in &args.resources {
        let selector = ResourceSelector::parse(text).map_err(anyhow::Error::msg)?;
        resources.push(SyncOperationResource {
            group: selector.group,
            kind: selector.kind,
            name: selector.name,
            namespace: selector.namespace.unwrap_or_default(),
        });
    }
    let app = application(target)?;
    plumb_app::sync::sync_options(&app, &args.sync_options)?;
    let desired = render(target, &app).await?;
    let cluster = connect(target).await?;
    let assessor = HealthAssessor::new(settings.clone())?;
    let env = AppEnv {
        cluster: &cluster,
        assessor: &assessor,
        settings: &settings,
        live: None,
    };
    let operation = Operation {
        sync: Some(SyncOperation {
            revision: desired.revision().to_string(),
            prune: args.prune,
            dry_run: args.dry_run,
            resources,
            sync_options: args.sync_options.clone(),
            ..Default::default()
        }),
        initiated_by: OperationInitiator {
            username: "plumb-cli".to_string(),
            automated: false,
        },
        info: Vec::new(),
        retry: (args.retry_limit != 0).then_some(RetryStrategy {
            limit: args.retry_limit,
            backoff: None,
            refresh: false,
        }),
    };
    let tuning = SyncTuning {
        wave_timeout: timeout,
        ..SyncTuning::default()
    };
    let deadline = Instant::now() + timeout;
    let cancel = CancellationToken::new();
    let interactive = std::io::stderr().is_terminal();
    let progress = move |event: &SyncEvent| {
        let mut stderr = std::io::stderr().lock();
        let _ = match event {
            SyncEvent::Result(result) => {
                if interactive {
                    let _ = write!(stderr, "\r\x1b[2K");
                }
                writeln!(stderr, "{}", result_line(result))
            }
            SyncEvent::Step { phase, wave, tasks } => {
                if interactive {
                    let _ = write!(stderr, "\r\x1b[2K");
                }
                writeln!(stderr, "{} wave {wave}: {tasks} task(s)", phase.as_str())
            }
            SyncEvent::Waiting(message) if interactive => {
                write!(stderr, "\r\x1b[2K{message}…")
            }
            SyncEvent::Waiting(_) => Ok(()),
            SyncEvent::Attempt(n) if *n > 1 => writeln!(stderr, "attempt {n}"),
            SyncEvent::Attempt(_) => Ok(()),
            SyncEvent::Retrying { delay, reason } => {
                writeln!(stderr, "failed ({reason}); retrying in {delay:?}")
            }
        };
    };
    let outcome = {
        let input = SyncInput {
            app: &app,
            desired: &desired,
            operation: &operation,
            prune_confirmed: args.confirm_prune,
        };
        let run = plumb_app::sync::sync(env, input, tuning, &cancel, &progress);
        tokio::pin!(run);
        tokio::select! {
            result = &mut run => result,
            _ = tokio::time::sleep(timeout) => {
                cancel.cancel();
                run.await
            }
        }
    }?;
    if interactive {
        eprint!("\r\x1b[2K");
    }
    print_operation(&outcome.engine);
    let succeeded = outcome.phase == OperationPhase::Succeeded;
    if !succeeded || args.dry_run {
        return Ok(i32::from(!succeeded));
    }
    if args.no_wait_healthy {
        return Ok(0);
    }
    // Wait until every resource is Synced and the app is Healthy, or the deadline passes.
    loop {
        let comparison =
            plumb_app::sync::compare(env, &app, &desired, &args.sync_options, tuning).await?;
        let sync_status = comparison.sync.status;
        let health = comparison.health.status;
        let done = sync_status == SyncStatusCode::Synced && health == HealthStatusCode::Healthy;
        if done || Instant::now() >= deadline {
            println!("Sync status: {sync_status:?}");
            println!("Health:      {health}");
            if !done {
                for line in unhealthy_lines(&comparison) {
                    println!("  {line}");
                }
            }
            return Ok(i32::from(!done));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn unhealthy_lines(comparison: &Comparison) -> Vec<String> {
    let mut lines = Vec::new();
    for resource in &comparison.resources {
        let key = ResourceKey::new(
            &resource.group,
            &resource.kind,
            &resource.namespace,
            &resource.name,
        );
        if resource.status != SyncStatusCode::Synced && !resource.hook {
            lines.push(format!("{key} {:?}", resource.status));
        }
        if let Some(health) = &resource.health
            && health.status != HealthStatusCode::Healthy
        {
            lines.push(format!("{key} {}: {}", health.status, health.message));
        }
    }
    lines
}

fn print_operation(operation: &OperationResult) {
    let rows: Vec<[String; 7]> = operation
        .resources
        .iter()
        .map(|r| {
            [
                r.key.group.clone(),
                r.key.kind.clone(),
                r.key.namespace.clone(),
                r.key.name.clone(),
                format!("{:?}", r.status),
                r.hook_phase.map(|p| format!("{p:?}")).unwrap_or_default(),
                r.message.clone(),
            ]
        })
        .collect();
    let header = [
        "GROUP",
        "KIND",
        "NAMESPACE",
        "NAME",
        "STATUS",
        "HOOK",
        "MESSAGE",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(header.to_vec()));
    for row in &rows {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
    let dry_run = if operation.dry_run { " (dry run)" } else { "" };
    println!("Operation:   {:?}{dry_run}", operation.phase);
    println!("Message:     {}", operation.message);
    if operation.attempts > 1 {
        println!("Attempts:    {}", operation.attempts);
    }
    for condition in &operation.conditions {
        println!("{:?}: {}", condition.kind, condition.message);
    }
}
