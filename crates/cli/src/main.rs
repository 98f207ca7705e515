//! The `plumb` binary: the thin edge where errors become `anyhow` and exit codes.
//!
//! Each subcommand lives in its own module; `main` only parses and dispatches.

mod admin;
mod diff_sync;
mod internal;
mod local;
mod render;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "plumb",
    version,
    about = "GitOps continuous delivery, compatible with Argo CD"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the embedded Kubernetes-compatible API server alone and write a kubeconfig.
    Local(local::LocalArgs),
    /// Offline tools: health assessment and resource actions on objects in files.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Show what differs between Git and the cluster (exit 0 in sync, 1 different, 2 error).
    Diff(Box<diff_sync::DiffArgs>),
    /// Sync Git to the cluster: dry-run, phases, waves with health gating, hooks, prune.
    Sync(Box<diff_sync::SyncArgs>),
    /// Render a source's manifests (Git path, Helm chart) and print them as YAML; no server.
    Render(Box<render::RenderArgs>),
    /// Entry points plumb starts itself (the Jsonnet worker).
    #[command(subcommand, hide = true)]
    Internal(internal::InternalCommand),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PLUMB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    internal::register_jsonnet_worker();
    match cli.command {
        Command::Local(args) => local::run(args),
        Command::Admin(command) => admin::run(command),
        Command::Diff(args) => diff_sync::run_diff(*args),
        Command::Sync(args) => diff_sync::run_sync(*args),
        Command::Render(args) => render::run(*args),
        Command::Internal(command) => internal::run(command),
    }
}
