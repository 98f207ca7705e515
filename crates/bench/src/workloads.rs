//! Workload scenarios: the embedded server's workload simulation (`plumb local`, a child
//! process) against the real test cluster with kube-controller-manager, kube-scheduler and
//! kwok, in the same run. Both get the same manifests from the same kubectl; kwok's stages
//! start Pods without delay, so `plumb local` runs with `--pod-start-delay-ms 0` too.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};

use crate::harness::{Outcome, Scenario};
use crate::targets::Target;

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "workloads-rollout-100",
        about: "100 Deployments x 3 replicas applied at once: seconds until all are Available",
        run: rollout_100,
    },
    Scenario {
        name: "workloads-memory-1000",
        about: "server RSS with 1,000 Deployments x 3 Pods running (MB)",
        run: memory_1000,
    },
];

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The embedded server with Pods starting at once, as kwok starts them.
async fn embedded() -> anyhow::Result<Target> {
    Target::embedded_with(&["--pod-start-delay-ms", "0"]).await
}

/// The real cluster with workloads and enough fake nodes for `pods` (a kwok node, like a
/// kubelet, takes at most 110; the embedded server's one node takes 10,000). kube-controller-manager and kube-scheduler talk to
/// kube-apiserver at 20 and 50 requests/s by default; that client-side throttle, not the
/// cluster, would set the pace of a thousand Pods, so both get 1,000/s here.
pub(crate) async fn real(pods: usize) -> anyhow::Result<Target> {
    use plumb_testcluster::Component;
    let mut options = crate::targets::durable_cluster_options();
    options.workloads = true;
    options.nodes = pods.div_ceil(100);
    for component in [Component::ControllerManager, Component::Scheduler] {
        options
            .extra_args
            .push((component, "--kube-api-qps=1000".to_string()));
        options
            .extra_args
            .push((component, "--kube-api-burst=1000".to_string()));
    }
    options.extra_args.push((
        Component::ControllerManager,
        "--concurrent-deployment-syncs=16".to_string(),
    ));
    // Room for thousands of Services (the test cluster's own /24 holds 254; the controller
    // scenarios create 3,000); a later flag overrides the earlier one.
    options.extra_args.push((
        Component::ApiServer,
        "--service-cluster-ip-range=10.0.0.0/16".to_string(),
    ));
    options.extra_args.push((
        Component::ControllerManager,
        "--concurrent-replicaset-syncs=16".to_string(),
    ));
    Target::real_with(options).await
}

fn deployments(namespace: &str, count: usize) -> String {
    let mut out = String::new();
    for index in 0..count {
        out.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{index}\n  namespace: {namespace}\nspec:\n  replicas: 3\n  selector:\n    matchLabels:\n      app: app-{index}\n  template:\n    metadata:\n      labels:\n        app: app-{index}\n    spec:\n      containers:\n      - name: app\n        image: registry.example/app:{index}\n"
        ));
    }
    out
}

/// Applies `count` Deployments with the test cluster's kubectl and waits until every one
/// reports 3 available replicas; the time from the apply's start.
async fn apply_and_wait(
    target: &Target,
    namespace: &str,
    count: usize,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("deployments.yaml");
    std::fs::write(&file, deployments(namespace, count))?;
    let api = Api::<Deployment>::namespaced(target.client().await?, namespace);
    let start = Instant::now();
    let status = target
        .kubectl()?
        .args(["apply", "--server-side", "--field-manager", "bench", "-f"])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .status()
        .context("running kubectl apply")?;
    anyhow::ensure!(
        status.success(),
        "kubectl apply failed on {}",
        target.label()
    );
    loop {
        let list = api.list(&ListParams::default()).await?;
        let available = list
            .items
            .iter()
            .filter(|d| {
                d.status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0)
                    == 3
            })
            .count();
        if available == count {
            return Ok(start.elapsed());
        }
        anyhow::ensure!(
            start.elapsed() < limit,
            "{}: only {available} of {count} Deployments Available after {limit:?}",
            target.label()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn rollout_100() -> anyhow::Result<Outcome> {
    runtime()?.block_on(async {
        let mut figures = Vec::new();
        for target in [embedded().await?, real(300).await?] {
            let namespace = target.namespace("rollout").await?;
            let took = apply_and_wait(&target, &namespace, 100, Duration::from_secs(600)).await?;
            eprintln!(
                "{}: 100 Deployments x 3 replicas Available in {took:.2?}",
                target.label()
            );
            figures.push((target.label().to_string(), took.as_secs_f64()));
            target.stop().await;
        }
        Ok(Outcome {
            figure: figures[0].1,
            unit: "s",
            baseline_label: format!("{} + kube-controller-manager + kwok", figures[1].0),
            baseline: figures[1].1,
            higher_is_better: false,
            fixed_budget: false,
        })
    })
}

fn memory_1000() -> anyhow::Result<Outcome> {
    runtime()?.block_on(async {
        let mut figures = Vec::new();
        for target in [embedded().await?, real(3_000).await?] {
            let namespace = target.namespace("memory").await?;
            let before = target.rss_bytes()?;
            let took =
                apply_and_wait(&target, &namespace, 1_000, Duration::from_secs(1_800)).await?;
            // Let the last status writes and events settle before reading memory.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let after = target.rss_bytes()?;
            eprintln!(
                "{}: 1,000 Deployments x 3 Pods Available in {took:.1?}; RSS {:.0} MB -> {:.0} MB",
                target.label(),
                before as f64 / 1e6,
                after as f64 / 1e6
            );
            figures.push((target.label().to_string(), after as f64 / 1e6));
            target.stop().await;
        }
        Ok(Outcome {
            figure: figures[0].1,
            unit: "MB RSS",
            baseline_label: format!(
                "{} + kube-controller-manager + kube-scheduler + kwok",
                figures[1].0
            ),
            baseline: figures[1].1,
            higher_is_better: false,
            fixed_budget: false,
        })
    })
}
