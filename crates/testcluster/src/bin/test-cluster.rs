//! `test-cluster --dir DIR [--workloads]`: runs a real test cluster in the foreground for
//! trying plumb by hand. Writes DIR/kubeconfig when ready; Ctrl-C or SIGTERM stops everything
//! (also during start-up). Wrapped by `scripts/test-cluster`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use plumb_testcluster::{Options, TestCluster};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(
    about = "Run a real Kubernetes test cluster (etcd + kube-apiserver, optionally fake nodes) in the foreground"
)]
struct Args {
    /// Directory to write the kubeconfig into (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Also run kube-controller-manager, kube-scheduler and kwok with fake nodes.
    #[arg(long)]
    workloads: bool,
    /// Number of fake nodes (with --workloads).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Fixed kube-apiserver port (default: a free one).
    #[arg(long)]
    port: Option<u16>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let options = Options {
        workloads: args.workloads,
        nodes: args.nodes,
        apiserver_port: args.port,
        ..Options::default()
    };
    eprintln!(
        "starting the test cluster{}...",
        if args.workloads {
            " with fake nodes"
        } else {
            ""
        }
    );
    let starting = tokio::task::spawn_blocking(move || TestCluster::start(options));
    let cluster = tokio::select! {
        started = starting => started.context("the start-up task failed")??,
        _ = interrupt.recv() => {
            // Exiting closes the supervisor's pipe: it stops whatever had started.
            eprintln!("interrupted during start-up: stopping");
            std::process::exit(130);
        }
        _ = terminate.recv() => {
            eprintln!("terminated during start-up: stopping");
            std::process::exit(143);
        }
    };

    let kubeconfig = args.dir.join("kubeconfig");
    std::fs::copy(cluster.kubeconfig_path(), &kubeconfig)
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    let kubectl = cluster.bin_dir().join("kubectl");
    println!("test cluster ready at {}", cluster.server_url());
    if !cluster.nodes().is_empty() {
        println!("fake nodes: {}", cluster.nodes().join(", "));
    }
    println!();
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  {} get nodes,namespaces", kubectl.display());
    println!();
    println!(
        "kubectl, helm and kustomize matching the cluster are in {}",
        cluster.bin_dir().display()
    );
    println!("component logs: {}", cluster.dir().join("logs").display());
    println!("Ctrl-C (or SIGTERM) stops the cluster.");

    let mut health = tokio::time::interval(Duration::from_secs(2));
    let outcome = loop {
        tokio::select! {
            _ = interrupt.recv() => break Ok(()),
            _ = terminate.recv() => break Ok(()),
            _ = health.tick() => {
                if let Err(e) = cluster.check() {
                    break Err(anyhow::Error::new(e).context("a component of the test cluster stopped"));
                }
            }
        }
    };
    eprintln!("stopping the test cluster");
    let _ = std::fs::remove_file(&kubeconfig);
    cluster.stop();
    outcome
}
