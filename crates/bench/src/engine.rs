//! Engine scenarios: health assessment, Lua checks, re-compare of an unchanged app, and the
//! `plumb sync` command syncing 1,000 objects against `kubectl apply --server-side -f` of
//! the same file on the same real cluster (etcd with fsync).
//!
//! health, Lua and re-compare have no other tool to race, so they are compared with a fixed
//! budget issue 11 sets (100 ms, 50 µs, 20 ms), not with a baseline measured in the same
//! run; the ratio says how far under budget plumb is, and the result line says `budget`.

use crate::harness::{Outcome, Scenario};
use anyhow::Context as _;
use plumb_engine::cluster::Cluster;
use plumb_engine::compare::{self, CompareRequest, LiveCompare};
use plumb_engine::diff::{self, builtin_scope};
use plumb_engine::health::{self, HealthAssessor, ResourceHealthInput};
use plumb_engine::settings::{Settings, TrackingMethod};
use plumb_engine::sync::SyncOptions;
use plumb_engine::sync::operation::{self, OperationPhase, SyncRequest};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "engine-health-10k",
        about: "assess and aggregate the health of 10,000 objects (ms; fixed budget 100 ms, no baseline)",
        run: health_10k,
    },
    Scenario {
        name: "engine-lua-check",
        about: "average time of one Lua health check, Argo CD style script (µs; fixed budget 50 µs, no baseline)",
        run: lua_check,
    },
    Scenario {
        name: "engine-recompare",
        about: "CPU time of re-comparing an unchanged 1,000-object app; must send 0 requests (ms; fixed budget 20 ms, no baseline)",
        run: recompare,
    },
    Scenario {
        name: "engine-sync-1000",
        about: "`plumb sync --local` of 1,000 objects from empty vs `kubectl apply --server-side -f`, same file, real cluster (s)",
        run: sync_thousand,
    },
];

fn sample_objects(count: usize) -> Vec<Value> {
    (0..count)
        .map(|index| match index % 5 {
            0 => json!({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": format!("d-{index}"), "generation": 2},
                        "spec": {"replicas": 3},
                        "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
                                   "availableReplicas": 3, "readyReplicas": 3}}),
            1 => json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("p-{index}")},
                        "spec": {"restartPolicy": "Always"},
                        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                                   "containerStatuses": [{"name": "app", "state": {"running": {}}}]}}),
            2 => json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("s-{index}")},
                        "spec": {"type": "ClusterIP"}}),
            3 => json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": format!("j-{index}")},
                        "status": {"conditions": [{"type": "Complete", "status": "True"}]}}),
            _ => json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                        "metadata": {"name": format!("st-{index}"), "generation": 1},
                        "spec": {"replicas": 2, "updateStrategy": {"type": "RollingUpdate"}},
                        "status": {"observedGeneration": 1, "readyReplicas": 2, "currentReplicas": 2,
                                   "currentRevision": "r1", "updateRevision": "r1"}}),
        })
        .collect()
}

fn health_10k() -> anyhow::Result<Outcome> {
    let objects = sample_objects(10_000);
    let assessor = HealthAssessor::new(Settings::default())?;
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let healths: Vec<_> = objects.iter().map(|o| assessor.assess(o)).collect();
        let app = health::aggregate(objects.iter().zip(&healths).map(|(object, health)| {
            ResourceHealthInput {
                group: plumb_engine::json::group(object),
                kind: plumb_engine::json::kind(object),
                live: Some(object),
                target: None,
                health: health.as_ref(),
                has_assessment: true,
            }
        }));
        best = best.min(start.elapsed());
        anyhow::ensure!(
            app.status == plumb_model::HealthStatusCode::Healthy,
            "{app:?}"
        );
    }
    let millis = best.as_secs_f64() * 1e3;
    eprintln!("health of 10,000 objects: {millis:.2} ms (best of 5)");
    Ok(Outcome {
        figure: millis,
        unit: "ms",
        baseline_label: "issue 11".into(),
        baseline: 100.0,
        higher_is_better: false,
        fixed_budget: true,
    })
}

/// A check written the way Argo CD's bundled scripts are (global `hs`, conditions loop).
const LUA_CHECK: &str = r#"
hs = {}
if obj.status ~= nil and obj.status.conditions ~= nil then
  for i, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" and condition.status == "False" then
      hs.status = "Degraded"
      hs.message = condition.message
      return hs
    end
    if condition.type == "Ready" and condition.status == "True" then
      hs.status = "Healthy"
      hs.message = condition.message
      return hs
    end
  end
end
hs.status = "Progressing"
hs.message = "Waiting for certificate"
return hs
"#;

fn lua_check() -> anyhow::Result<Outcome> {
    let settings = Settings::from_config_map_data(
        &[(
            "resource.customizations.health.cert-manager.io_Certificate".to_string(),
            LUA_CHECK.to_string(),
        )]
        .into_iter()
        .collect(),
    )?;
    let assessor = HealthAssessor::new(settings)?;
    let certificate = json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "tls", "namespace": "shop", "labels": {"app": "shop"}},
        "spec": {"secretName": "tls", "dnsNames": ["shop.example.com"],
                 "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"}},
        "status": {"conditions": [
            {"type": "Issuing", "status": "False", "reason": "Done"},
            {"type": "Ready", "status": "True", "reason": "Ready", "message": "Certificate is up to date and has not expired"}
        ], "notAfter": "2027-01-01T00:00:00Z"}
    });
    const CALLS: u32 = 20_000;
    // Warm up (compile the script once, as a long-running process does).
    for _ in 0..100 {
        assessor.assess(&certificate);
    }
    let start = Instant::now();
    for _ in 0..CALLS {
        let health = assessor.assess(&certificate);
        anyhow::ensure!(
            health.as_ref().map(|h| h.status) == Some(plumb_model::HealthStatusCode::Healthy),
            "{health:?}"
        );
    }
    let micros = start.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS);
    eprintln!("Lua health check: {micros:.2} µs average over {CALLS} calls");
    Ok(Outcome {
        figure: micros,
        unit: "µs",
        baseline_label: "issue 11".into(),
        baseline: 50.0,
        higher_is_better: false,
        fixed_budget: true,
    })
}

/// Clock ticks (10 ms) of `/proc/self/stat` fields after the command name: 11 and 12 are
/// this process's user and system time, 13 and 14 those of its children it has waited for.
fn self_stat_time(fields_wanted: [usize; 2]) -> anyhow::Result<Duration> {
    let text = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let after = text.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let mut ticks = 0;
    for index in fields_wanted {
        ticks += fields.get(index).unwrap_or(&"0").parse::<u64>()?;
    }
    Ok(Duration::from_millis(ticks * 10))
}

/// CPU time (user + system) this process has used.
fn process_cpu_time() -> anyhow::Result<Duration> {
    self_stat_time([11, 12])
}

/// CPU time (user + system) of this process's children that have exited and been waited
/// for: around one child's run, that child's CPU (kubectl's, or `plumb sync`'s).
fn children_cpu_time() -> anyhow::Result<Duration> {
    self_stat_time([13, 14])
}

/// CPU time this thread has used (Linux `schedstat`, nanoseconds).
fn thread_cpu_time() -> anyhow::Result<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let nanos: u64 = text
        .split_whitespace()
        .next()
        .ok_or_else(|| anyhow::anyhow!("empty schedstat"))?
        .parse()?;
    Ok(Duration::from_nanos(nanos))
}

/// The apiserver scenarios' 1,000 manifests with headless Services (no cluster IP, so two
/// runs fit one cluster's service range), as a file for kubectl and parsed for plumb.
fn thousand_objects(
    dir: &std::path::Path,
    namespace: &str,
) -> anyhow::Result<(std::path::PathBuf, Vec<Value>)> {
    let (file, text) = crate::apiserver::write_thousand_objects(dir, namespace, true)?;
    let objects: Vec<Value> = serde_saphyr::from_multiple(&text)?;
    Ok((file, objects.into_iter().filter(|o| !o.is_null()).collect()))
}

fn start_cluster() -> anyhow::Result<plumb_testcluster::TestCluster> {
    Ok(plumb_testcluster::TestCluster::start(
        crate::targets::durable_cluster_options(),
    )?)
}

fn recompare() -> anyhow::Result<Outcome> {
    let cluster = start_cluster()?;
    // One thread: CPU time of this thread is the CPU time of the re-compare.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let namespace = cluster.namespace("recompare")?;
        let scratch = tempfile::tempdir()?;
        let (_, desired) = thousand_objects(scratch.path(), &namespace)?;
        let engine = Cluster::new(cluster.client().await?);
        let mut request = SyncRequest::new("recompare", &namespace, desired.clone());
        request.concurrency = 32;
        let assessor = HealthAssessor::new(Settings::default())?;
        let synced = operation::run_sync(
            &engine,
            &assessor,
            &request,
            &Default::default(),
            &|_: &operation::SyncEvent| {},
        )
        .await;
        anyhow::ensure!(synced.phase == OperationPhase::Succeeded, "{}", synced.message);
        // The first compare after the sync fills the cache (dry-runs against the new live
        // state); it is the cold figure.
        let options = SyncOptions::default();
        let settings = Settings::default();
        let compare_request = CompareRequest {
            app: "recompare",
            destination_namespace: &namespace,
            desired: &desired,
            settings: &settings,
            app_ignore: &[],
            options: &options,
            concurrency: 32,
            live_reader: None,
        };
        let cold_cpu = thread_cpu_time()?;
        let cold = compare::compare(&engine, compare_request).await?;
        let cold_cpu = thread_cpu_time()? - cold_cpu;
        anyhow::ensure!(
            cold.comparison.sync_status() == plumb_model::SyncStatusCode::Synced,
            "not synced after sync"
        );
        // Re-compare with the same live state (what a controller's watch cache holds):
        // validation, preparation, cache lookups and the app's status, no request.
        let ignore = diff::ignore::IgnoreRules::default();
        let requests_before = engine.request_count();
        let mut best = Duration::MAX;
        for _ in 0..5 {
            let cpu = thread_cpu_time()?;
            let prepared = diff::prepare_desired(
                desired.clone(),
                "recompare",
                &namespace,
                TrackingMethod::Annotation,
                &builtin_scope,
            );
            let (comparison, errors) = compare::compare_live(
                &engine,
                LiveCompare {
                    app: "recompare",
                    destination_namespace: &namespace,
                    desired: &desired,
                    prepared: &prepared,
                    live: &cold.live,
                    ignore: &ignore,
                    settings: &settings,
                    options: &options,
                    concurrency: 32,
                },
            )
            .await?;
            anyhow::ensure!(errors.is_empty() && comparison.sync_status() == plumb_model::SyncStatusCode::Synced);
            best = best.min(thread_cpu_time()? - cpu);
        }
        let requests = engine.request_count() - requests_before;
        anyhow::ensure!(requests == 0, "re-compare sent {requests} requests");
        let millis = best.as_secs_f64() * 1e3;
        eprintln!(
            "re-compare of 1,000 unchanged objects: {millis:.2} ms CPU, {requests} requests (cold compare: {:.0} ms CPU)",
            cold_cpu.as_secs_f64() * 1e3
        );
        Ok(Outcome {
            figure: millis,
            unit: "ms CPU",
            baseline_label: "issue 11".into(),
            baseline: 20.0,
            higher_is_better: false,
            fixed_budget: true,
        })
    })
}

/// CPU time (user + system) of this process's live children by command name: the test
/// cluster's components, so each run can say how much work it cost the server side.
fn component_cpu() -> BTreeMap<String, Duration> {
    let me = std::process::id().to_string();
    let mut cpu = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return cpu;
    };
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (command) state ppid …`; the command may contain spaces.
        let Some((head, rest)) = text.rsplit_once(')') else {
            continue;
        };
        let name = head.split_once('(').map(|(_, n)| n).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1) != Some(&me.as_str()) {
            continue;
        }
        let ticks =
            |index: usize| -> u64 { fields.get(index).and_then(|f| f.parse().ok()).unwrap_or(0) };
        *cpu.entry(name.to_string()).or_insert(Duration::ZERO) +=
            Duration::from_millis((ticks(11) + ticks(12)) * 10);
    }
    cpu
}

/// "kube-apiserver 1480 ms, etcd 500 ms" since `before`.
fn component_cpu_since(before: &BTreeMap<String, Duration>) -> String {
    component_cpu()
        .iter()
        .filter_map(|(name, after)| {
            let spent = after.saturating_sub(before.get(name).copied().unwrap_or_default());
            (spent > Duration::ZERO).then(|| format!("{name} {:.0} ms", spent.as_secs_f64() * 1e3))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rounds of the 1,000-object sync. Each round runs the three contenders in turn, the order
/// rotating so each meets the cluster first once; the figure is each one's median.
const SYNC_ROUNDS: usize = 3;

/// Set to a file path to record a CPU profile of kube-apiserver (`go tool pprof`) during
/// the first `plumb sync`: where the server spends its time is what decides this scenario.
const APISERVER_PROFILE_ENV: &str = "PLUMB_BENCH_APISERVER_PROFILE";

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// What engine-sync-1000 races, each into a fresh namespace of the same cluster.
#[derive(Clone, Copy, PartialEq)]
enum Contender {
    /// `kubectl apply --server-side -f FILE`, the test cluster's kubectl: the baseline.
    Kubectl,
    /// `plumb sync --local DIR …`, the release binary as a child process: the figure.
    PlumbCommand,
    /// The engine's `run_sync` inside this process on parsed objects (no process start, no
    /// rendering, no kubeconfig loading): printed for where the time goes, not the figure.
    InProcess,
}

const CONTENDERS: [Contender; 3] = [
    Contender::Kubectl,
    Contender::PlumbCommand,
    Contender::InProcess,
];

fn sync_thousand() -> anyhow::Result<Outcome> {
    let profile = std::env::var_os(APISERVER_PROFILE_ENV);
    let mut options = crate::targets::durable_cluster_options();
    if profile.is_some() {
        // The last flag wins over the cluster's own `--profiling=false`.
        options.extra_args.push((
            plumb_testcluster::Component::ApiServer,
            "--profiling=true".into(),
        ));
    }
    let plumb = crate::targets::plumb_binary()?;
    eprintln!("plumb: {}", plumb.display());
    eprintln!("kubectl: {}", crate::targets::kubectl_client_version()?);
    let cluster = plumb_testcluster::TestCluster::start(options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let scratch = tempfile::tempdir()?;
        let engine = Cluster::new(cluster.client().await?);
        let assessor = HealthAssessor::new(Settings::default())?;
        let mut kubectl_runs = Vec::new();
        let mut command_runs = Vec::new();
        let mut in_process_runs = Vec::new();
        for round in 0..SYNC_ROUNDS {
            for turn in 0..CONTENDERS.len() {
                let contender = CONTENDERS[(round + turn) % CONTENDERS.len()];
                let dir = scratch.path().join(format!("round-{round}-{turn}"));
                std::fs::create_dir_all(&dir)?;
                match contender {
                    Contender::Kubectl => kubectl_runs.push(kubectl_sync(&cluster, &dir)?),
                    Contender::PlumbCommand => {
                        let profiler = match (&profile, round) {
                            (Some(path), 0) => Some(
                                crate::targets::kubectl(cluster.kubeconfig_path())?
                                    .args(["get", "--raw", "/debug/pprof/profile?seconds=2"])
                                    .stdout(std::fs::File::create(path)?)
                                    .spawn()?,
                            ),
                            _ => None,
                        };
                        command_runs.push(plumb_command_sync(&cluster, &plumb, &dir)?);
                        if let Some(mut profiler) = profiler {
                            profiler.wait()?;
                        }
                    }
                    Contender::InProcess => in_process_runs
                        .push(plumb_sync(&cluster, &engine, &assessor, &dir).await?),
                }
            }
        }
        let command_took = median(command_runs);
        let kubectl_took = median(kubectl_runs);
        let in_process_took = median(in_process_runs);
        eprintln!(
            "median of {SYNC_ROUNDS} rounds: `plumb sync` {command_took:.2?} vs `kubectl apply --server-side` {kubectl_took:.2?} ({:.2}x); in-process engine (not the figure) {in_process_took:.2?} ({:.2}x)",
            kubectl_took.as_secs_f64() / command_took.as_secs_f64(),
            kubectl_took.as_secs_f64() / in_process_took.as_secs_f64(),
        );
        Ok(Outcome {
            figure: command_took.as_secs_f64(),
            unit: "s",
            baseline_label: "kubectl apply --server-side".into(),
            baseline: kubectl_took.as_secs_f64(),
            higher_is_better: false,
            fixed_budget: false,
        })
    })
}

/// `kubectl apply --server-side` of the 1,000 objects into a new namespace.
fn kubectl_sync(
    cluster: &plumb_testcluster::TestCluster,
    dir: &std::path::Path,
) -> anyhow::Result<Duration> {
    let namespace = cluster.namespace("kubectl")?;
    let (file, _) = thousand_objects(dir, &namespace)?;
    let cpu = component_cpu();
    let client_cpu = children_cpu_time()?;
    let took = crate::apiserver::timed_kubectl_apply(
        crate::targets::kubectl(cluster.kubeconfig_path())?,
        &file,
    )?;
    let client_cpu = children_cpu_time()? - client_cpu;
    eprintln!(
        "kubectl apply --server-side: {took:.2?} (kubectl CPU {client_cpu:.2?}; server side: {})",
        component_cpu_since(&cpu)
    );
    Ok(took)
}

/// `plumb sync` as a user runs it, the release binary as a child process, on a directory
/// holding the same file kubectl applies, into a new namespace and as an app of its own (the
/// objects of earlier rounds are not its to prune). `--no-wait-healthy`: kubectl does not
/// wait either, and the cluster has no controllers to roll Deployments out.
fn plumb_command_sync(
    cluster: &plumb_testcluster::TestCluster,
    plumb: &std::path::Path,
    dir: &std::path::Path,
) -> anyhow::Result<Duration> {
    let namespace = cluster.namespace("plumb-cli")?;
    thousand_objects(dir, &namespace)?;
    let mut command = std::process::Command::new(plumb);
    command
        .arg("sync")
        .arg("--local")
        .arg(dir)
        .args(["--app", &namespace, "--dest-namespace", &namespace])
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["--no-wait-healthy", "--no-color"])
        .env_remove("KUBECONFIG");
    let cpu = component_cpu();
    let client_cpu = children_cpu_time()?;
    let start = Instant::now();
    let output = command
        .output()
        .with_context(|| format!("running {}", plumb.display()))?;
    let took = start.elapsed();
    let client_cpu = children_cpu_time()? - client_cpu;
    anyhow::ensure!(
        output.status.success(),
        "plumb sync exited with {}: {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        tail(&String::from_utf8_lossy(&output.stderr), 20)
    );
    eprintln!(
        "plumb sync (command): {took:.2?} (plumb CPU {client_cpu:.2?}; server side: {})",
        component_cpu_since(&cpu)
    );
    Ok(took)
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The engine's sync operation of the same 1,000 objects inside this process (the objects
/// parsed beforehand), into a new namespace: the in-process figure, not the scenario's.
async fn plumb_sync(
    cluster: &plumb_testcluster::TestCluster,
    engine: &Cluster,
    assessor: &HealthAssessor,
    dir: &std::path::Path,
) -> anyhow::Result<Duration> {
    let namespace = cluster.namespace("plumb-engine")?;
    let (_, desired) = thousand_objects(dir, &namespace)?;
    // An app of its own per round: the objects of earlier rounds are not this app's to prune.
    let mut request = SyncRequest::new(&namespace, &namespace, desired);
    request.concurrency = 32;
    let requests_before = engine.request_count();
    let plumb_cpu = process_cpu_time()?;
    let cpu = component_cpu();
    let start = Instant::now();
    // When the first write step starts, validation and the dry-run of everything are done.
    let dry_run_done = std::sync::Mutex::new(None::<Duration>);
    let result = operation::run_sync(
        engine,
        assessor,
        &request,
        &Default::default(),
        &|event: &operation::SyncEvent| {
            if let operation::SyncEvent::Step { .. } = event
                && let Ok(mut slot) = dry_run_done.lock()
                && slot.is_none()
            {
                *slot = Some(start.elapsed());
            }
        },
    )
    .await;
    let took = start.elapsed();
    let plumb_cpu = process_cpu_time()? - plumb_cpu;
    anyhow::ensure!(
        result.phase == OperationPhase::Succeeded,
        "{}",
        result.message
    );
    let dry_run_took = dry_run_done
        .lock()
        .ok()
        .and_then(|slot| *slot)
        .unwrap_or_default();
    eprintln!(
        "in-process engine sync: {took:.2?} (compare + dry-run of everything {dry_run_took:.2?}, {} requests, plumb CPU {plumb_cpu:.2?}; server side: {})",
        engine.request_count() - requests_before,
        component_cpu_since(&cpu)
    );
    Ok(took)
}
