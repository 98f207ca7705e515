//! The `plumb` binary: the thin edge where errors become `anyhow` and exit codes.
//!
//! Each subcommand lives in its own module; `main` only parses and dispatches.

mod admin;
mod diff_sync;
mod internal;
mod local;
mod render;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "plumb",
    version,
    about = "GitOps continuous delivery, compatible with Argo CD"
)]
struct Cli {
    /// On failure, print every cause on its own line and the backtrace RUST_BACKTRACE=1
    /// asks for (otherwise a failure is one line)
    #[arg(long, short = 'v', global = true)]
    debug: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the GitOps controller: keep every Application in the state its Git revision
    /// declares (embedded API server by default, or --kubeconfig for a real cluster).
    Serve(Box<serve::ServeArgs>),
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

/// The log filter without `PLUMB_LOG`. kube-client logs every failed request as an error
/// of its own, which the command's error then says again: that log is off.
const DEFAULT_LOG: &str = "info,kube_client::client::builder=off";

/// Exit code of a failed command other than `diff`/`sync` (what returning an error from
/// `main` gave before; `diff` and `sync` fail with 2, see `diff_sync::EXIT_ERROR`).
const EXIT_FAILURE: i32 = 1;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PLUMB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG)),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    internal::register_jsonnet_worker();
    let (result, failure_code) = match cli.command {
        Command::Local(args) => (local::run(args).map(|()| 0), EXIT_FAILURE),
        Command::Serve(args) => (serve::run(*args).map(|()| 0), EXIT_FAILURE),
        Command::Admin(command) => (admin::run(command).map(|()| 0), EXIT_FAILURE),
        Command::Diff(args) => (diff_sync::run_diff(*args), diff_sync::EXIT_ERROR),
        Command::Sync(args) => (diff_sync::run_sync(*args), diff_sync::EXIT_ERROR),
        Command::Render(args) => (render::run(*args).map(|()| 0), EXIT_FAILURE),
        Command::Internal(command) => (internal::run(command).map(|()| 0), EXIT_FAILURE),
    };
    let code = match result {
        Ok(code) => code,
        Err(error) => {
            if cli.debug {
                // anyhow's report: the message, "Caused by:" with each cause, and the
                // backtrace when RUST_BACKTRACE/RUST_LIB_BACKTRACE asked for one.
                eprintln!("error: {error:?}");
            } else {
                eprintln!("error: {}", one_line(&error));
            }
            failure_code
        }
    };
    std::process::exit(code);
}

/// The error and its causes joined by ": ", each cause once: a cause whose text the line
/// already holds (a library error that formats its source into its own message) is left out.
/// A cause written over several lines has them joined by "; ", so the result stays one line.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let text = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::one_line;

    /// A library error that writes its source into its own message and also returns it
    /// from `source()`, as `#[error("…: {source}")]` does.
    #[derive(Debug)]
    struct Repeats {
        url: String,
        source: std::io::Error,
    }

    impl std::fmt::Display for Repeats {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cloning {}: {}", self.url, self.source)
        }
    }

    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn causes_are_joined_once() {
        let io = std::io::Error::other("connection refused");
        let error = anyhow::Error::new(Repeats {
            url: "https://git.example/a".into(),
            source: io,
        })
        .context("rendering app");
        assert_eq!(
            one_line(&error),
            "rendering app: cloning https://git.example/a: connection refused"
        );
        let plain = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(one_line(&plain), "outer: middle: inner");
        let lines = anyhow::anyhow!("first\n  second\n\n").context("reading f");
        assert_eq!(one_line(&lines), "reading f: first; second");
    }
}
