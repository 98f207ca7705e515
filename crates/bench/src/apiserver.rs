//! API-server scenarios: the embedded server (`plumb local`, a child process so its memory
//! is its own) measured beside a baseline in the same run.
//!
//! Every scenario talks to its targets through a kubeconfig only, with kube-rs, so the very
//! same client code measures plumb and the baseline.

use crate::harness::{Outcome, Scenario, percentile};
use crate::targets::Target;
use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "apiserver-creates",
        about: "10,000 durable ConfigMap creates from 16 concurrent HTTPS clients (writes/s)",
        run: creates,
    },
    Scenario {
        name: "apiserver-list",
        about: "one list of 10,000 ConfigMaps (ms)",
        run: list,
    },
    Scenario {
        name: "apiserver-watch",
        about: "p99 delay for an event to reach 100 watchers (ms)",
        run: watch_fanout,
    },
    Scenario {
        name: "apiserver-memory",
        about: "server RSS holding 100,000 ConfigMaps of 1 KiB (MB)",
        run: memory,
    },
    Scenario {
        name: "apiserver-kubectl-apply",
        about: "`kubectl apply --server-side` of 1,000 objects (s)",
        run: kubectl_apply,
    },
];

const CLIENTS: usize = 16;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn config_map(name: String, payload_bytes: usize) -> ConfigMap {
    let mut data = BTreeMap::new();
    data.insert("payload".to_string(), "x".repeat(payload_bytes));
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name),
            labels: Some(BTreeMap::from([("bench".to_string(), "plumb".to_string())])),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    }
}

/// Creates `count` ConfigMaps in `namespace` from `CLIENTS` clients with separate
/// connections; returns the wall time.
async fn create_many(
    target: &Target,
    namespace: &str,
    count: usize,
    payload_bytes: usize,
) -> anyhow::Result<Duration> {
    let mut apis = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        apis.push(Api::<ConfigMap>::namespaced(
            target.client().await?,
            namespace,
        ));
    }
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(CLIENTS);
    for (client_index, api) in apis.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut index = client_index;
            while index < count {
                let object = config_map(format!("cm-{index}"), payload_bytes);
                api.create(&PostParams::default(), &object).await?;
                index += CLIENTS;
            }
            Ok::<_, kube::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(start.elapsed())
}

fn creates() -> anyhow::Result<Outcome> {
    const COUNT: usize = 10_000;
    runtime()?.block_on(async {
        let mut rates = Vec::new();
        for target in [Target::embedded().await?, Target::real().await?] {
            let namespace = target.namespace("creates").await?;
            let took = create_many(&target, &namespace, COUNT, 64).await?;
            let rate = COUNT as f64 / took.as_secs_f64();
            eprintln!(
                "{}: {COUNT} creates in {took:.2?} = {rate:.0} writes/s",
                target.label()
            );
            rates.push((target.label().to_string(), rate));
            target.stop().await;
        }
        Ok(Outcome {
            figure: rates[0].1,
            unit: "writes/s",
            baseline_label: rates[1].0.clone(),
            baseline: rates[1].1,
            higher_is_better: true,
        })
    })
}

fn list() -> anyhow::Result<Outcome> {
    const COUNT: usize = 10_000;
    runtime()?.block_on(async {
        let mut figures = Vec::new();
        for target in [Target::embedded().await?, Target::real().await?] {
            let namespace = target.namespace("list").await?;
            create_many(&target, &namespace, COUNT, 64).await?;
            let api = Api::<ConfigMap>::namespaced(target.client().await?, &namespace);
            // Warm the connection, then take the best of five: the figure is the server's
            // cost, not the first TLS handshake.
            api.list(&ListParams::default().limit(1)).await?;
            let mut best = Duration::MAX;
            for _ in 0..5 {
                let start = Instant::now();
                let listed = api.list(&ListParams::default()).await?;
                best = best.min(start.elapsed());
                // The namespace may also hold kube-root-ca.crt (a real cluster's
                // controller-manager and plumb both put it there): count ours.
                let ours = listed
                    .items
                    .iter()
                    .filter(|c| c.metadata.name.as_deref() != Some("kube-root-ca.crt"))
                    .count();
                anyhow::ensure!(ours == COUNT, "listed {ours} of {COUNT}");
            }
            eprintln!("{}: list of {COUNT} in {best:.2?}", target.label());
            figures.push((target.label().to_string(), best.as_secs_f64() * 1e3));
            target.stop().await;
        }
        Ok(Outcome {
            figure: figures[0].1,
            unit: "ms",
            baseline_label: figures[1].0.clone(),
            baseline: figures[1].1,
            higher_is_better: false,
        })
    })
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// p99 (ms) of the delay between a create being sent and each of `watchers` seeing it.
async fn watch_p99(target: &Target, watchers: usize, events: usize) -> anyhow::Result<f64> {
    let namespace = target.namespace("watch").await?;
    let api = Api::<ConfigMap>::namespaced(target.client().await?, &namespace);
    let start_version = api
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let samples = Arc::new(std::sync::Mutex::new(Vec::with_capacity(watchers * events)));
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let watch_api = Api::<ConfigMap>::namespaced(target.client().await?, &namespace);
        let samples = samples.clone();
        let version = start_version.clone();
        tasks.push(tokio::spawn(async move {
            let params = WatchParams::default().timeout(120);
            let mut stream = watch_api.watch(&params, &version).await?.boxed();
            let mut seen = 0;
            while let Some(event) = stream.try_next().await? {
                if let WatchEvent::Added(object) = event {
                    let sent = object
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("bench/sent-at"))
                        .and_then(|s| s.parse::<u128>().ok());
                    if let Some(sent) = sent {
                        let delay = Duration::from_nanos(now_nanos().saturating_sub(sent) as u64);
                        if let Ok(mut samples) = samples.lock() {
                            samples.push(delay);
                        }
                    }
                    seen += 1;
                    if seen == events + 1 {
                        break;
                    }
                }
            }
            Ok::<_, kube::Error>(())
        }));
    }
    // The first object only proves every watch is established; it is not measured.
    let mut warmup = config_map("warmup".to_string(), 8);
    warmup.metadata.annotations = None;
    api.create(&PostParams::default(), &warmup).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for index in 0..events {
        let mut object = config_map(format!("event-{index}"), 8);
        object.metadata.annotations = Some(BTreeMap::from([(
            "bench/sent-at".to_string(),
            now_nanos().to_string(),
        )]));
        api.create(&PostParams::default(), &object).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task).await???;
    }
    let mut samples = samples
        .lock()
        .map_err(|_| anyhow::anyhow!("a watcher panicked"))?
        .clone();
    anyhow::ensure!(
        samples.len() == watchers * events,
        "{} of {} deliveries arrived",
        samples.len(),
        watchers * events
    );
    Ok(percentile(&mut samples, 99.0).as_secs_f64() * 1e3)
}

fn watch_fanout() -> anyhow::Result<Outcome> {
    runtime()?.block_on(async {
        let mut figures = Vec::new();
        for target in [Target::embedded().await?, Target::real().await?] {
            let p99 = watch_p99(&target, 100, 200).await?;
            eprintln!("{}: watch fan-out p99 {p99:.2} ms", target.label());
            figures.push((target.label().to_string(), p99));
            target.stop().await;
        }
        Ok(Outcome {
            figure: figures[0].1,
            unit: "ms p99",
            baseline_label: figures[1].0.clone(),
            baseline: figures[1].1,
            higher_is_better: false,
        })
    })
}

fn memory() -> anyhow::Result<Outcome> {
    const COUNT: usize = 100_000;
    runtime()?.block_on(async {
        let mut figures = Vec::new();
        for target in [Target::embedded().await?, Target::real().await?] {
            let namespace = target.namespace("memory").await?;
            let before = target.rss_bytes()?;
            let took = create_many(&target, &namespace, COUNT, 1024).await?;
            let after = target.rss_bytes()?;
            eprintln!(
                "{}: {COUNT} x 1 KiB in {took:.1?}; RSS {:.0} MB -> {:.0} MB",
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
            baseline_label: figures[1].0.clone(),
            baseline: figures[1].1,
            higher_is_better: false,
        })
    })
}

/// Writes 1,000 manifests (ConfigMaps, Secrets, Services, Deployments) into one
/// multi-document file for `kubectl apply --server-side -f`, and returns its path and text.
/// `headless_services` gives every Service `clusterIP: None` (the engine scenarios put two
/// sets into one cluster, whose service IP range would not hold them).
pub fn write_thousand_objects(
    dir: &std::path::Path,
    namespace: &str,
    headless_services: bool,
) -> anyhow::Result<(std::path::PathBuf, String)> {
    let cluster_ip = if headless_services {
        "  clusterIP: None\n"
    } else {
        ""
    };
    let mut out = String::new();
    for index in 0..1_000 {
        let doc = match index % 4 {
            0 => format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{index}\n  namespace: {namespace}\ndata:\n  key: value-{index}\n"
            ),
            1 => format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: secret-{index}\n  namespace: {namespace}\nstringData:\n  password: p-{index}\n"
            ),
            2 => format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{index}\n  namespace: {namespace}\nspec:\n{cluster_ip}  selector:\n    app: app-{index}\n  ports:\n  - port: 80\n    targetPort: 8080\n"
            ),
            _ => format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: deploy-{index}\n  namespace: {namespace}\nspec:\n  replicas: 0\n  selector:\n    matchLabels:\n      app: app-{index}\n  template:\n    metadata:\n      labels:\n        app: app-{index}\n    spec:\n      containers:\n      - name: app\n        image: registry.example/app:{index}\n"
            ),
        };
        out.push_str("---\n");
        out.push_str(&doc);
    }
    let path = dir.join("thousand.yaml");
    std::fs::write(&path, &out)?;
    Ok((path, out))
}

/// Runs `kubectl apply --server-side --field-manager bench -f file` (with `kubectl`'s
/// connection flags already set) and returns how long it took.
pub fn timed_kubectl_apply(
    mut kubectl: std::process::Command,
    file: &std::path::Path,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let output = kubectl
        .args(["apply", "--server-side", "--field-manager", "bench", "-f"])
        .arg(file)
        .output()?;
    let took = start.elapsed();
    anyhow::ensure!(
        output.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(took)
}

fn kubectl_apply() -> anyhow::Result<Outcome> {
    runtime()?.block_on(async {
        let mut figures = Vec::new();
        let scratch = tempfile::tempdir()?;
        for target in [Target::embedded().await?, Target::real().await?] {
            let namespace = target.namespace("apply").await?;
            let (file, _) = write_thousand_objects(scratch.path(), &namespace, false)?;
            let took = timed_kubectl_apply(target.kubectl()?, &file)
                .with_context(|| format!("against {}", target.label()))?;
            eprintln!(
                "{}: kubectl apply --server-side of 1,000 objects in {took:.2?}",
                target.label()
            );
            figures.push((target.label().to_string(), took.as_secs_f64()));
            target.stop().await;
        }
        Ok(Outcome {
            figure: figures[0].1,
            unit: "s",
            baseline_label: figures[1].0.clone(),
            baseline: figures[1].1,
            higher_is_better: false,
        })
    })
}
