//! `plumb local`: run the embedded API server alone, write a kubeconfig, serve until
//! Ctrl-C or SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;

/// Arguments of `plumb local`.
#[derive(clap::Args, Debug)]
pub struct LocalArgs {
    /// Directory for the store, TLS material, token and kubeconfig (created if missing).
    #[arg(long, env = "PLUMB_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Port to listen on (0 picks a free port).
    #[arg(long, default_value_t = 6443)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Run workloads: controllers for Deployments, ReplicaSets, StatefulSets, DaemonSets,
    /// Jobs and CronJobs, and a simulated node whose Pods start without containers
    /// (`--workloads=false`: objects are only stored).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub workloads: bool,
    /// How long a Pod takes to start on the simulated node, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub pod_start_delay_ms: u64,
}

pub fn run(args: LocalArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut config =
            plumb_apiserver::Config::new(&args.data_dir, SocketAddr::new(args.bind, args.port));
        config.workloads.enabled = args.workloads;
        config.workloads.pod_start_delay =
            std::time::Duration::from_millis(args.pod_start_delay_ms);
        config.workloads.job_run_time = std::time::Duration::from_millis(args.pod_start_delay_ms);
        let server = plumb_apiserver::start(config).await.with_context(|| {
            format!(
                "starting the API server with data directory {}",
                args.data_dir.display()
            )
        })?;
        let kubeconfig = args.data_dir.join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig)
            .with_context(|| format!("writing {}", kubeconfig.display()))?;
        let kubeconfig = std::fs::canonicalize(&kubeconfig).unwrap_or(kubeconfig);
        println!("plumb API server listening on {}", server.url());
        println!("kubeconfig written to {}", kubeconfig.display());
        println!();
        println!("Use it with kubectl:");
        println!("  export KUBECONFIG={}", kubeconfig.display());
        println!("  kubectl get namespaces");
        println!();
        println!("Press Ctrl-C to stop.");
        wait_for_signal().await?;
        eprintln!("stopping: finishing open requests and flushing the store");
        server.shutdown().await;
        Ok(())
    })
}

pub(crate) async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
