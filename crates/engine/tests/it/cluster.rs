//! End-to-end: sync operations against the real test cluster (kube-apiserver, etcd,
//! controller-manager, scheduler, kwok fake nodes). kubectl checks the results as an
//! independent client. The scenarios that need workloads (`…_on`, written against
//! [`Target`]) also run on the embedded API server's workload simulation (`embedded`).

use plumb_engine::cluster::Cluster;
use plumb_engine::compare;
use plumb_engine::health::HealthAssessor;
use plumb_engine::settings::Settings;
use plumb_engine::sync::SyncOptions;
use plumb_engine::sync::operation::{
    self, HookPhase, OperationPhase, OperationResult, ResourceResult, ResultStatus, SyncEvent,
    SyncRequest,
};
use plumb_model::SyncStatusCode;
use plumb_testcluster::{FAILURE_LABEL, Failure, TestCluster};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub(crate) fn cluster() -> &'static TestCluster {
    TestCluster::shared().unwrap_or_else(|e| panic!("test cluster: {e}"))
}

/// Where a shared end-to-end scenario runs: the real test cluster ([`RealCluster`]) or, in
/// `embedded`, plumb's embedded API server with its workload simulation. A scenario written
/// against this runs unchanged on both, so the simulation is held to what the real cluster
/// does.
pub(crate) trait Target: Sync {
    /// The engine's client for this cluster.
    async fn engine(&self) -> Cluster;
    /// Creates a namespace for one test, its name starting with `prefix`, and returns it.
    fn namespace(&self, prefix: &str) -> String;
    /// Runs kubectl against this cluster: its stdout, or its stderr as the error.
    fn kubectl(&self, args: &[&str]) -> Result<String, String>;

    /// The names of the `resource` objects in `ns`, as kubectl lists them.
    fn object_names(&self, resource: &str, ns: &str) -> Vec<String> {
        self.kubectl(&[
            "get",
            resource,
            "-n",
            ns,
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .unwrap_or_else(|e| panic!("kubectl get {resource}: {e}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
    }

    /// Whether kubectl finds `resource/name` in `ns`.
    fn exists(&self, resource: &str, name: &str, ns: &str) -> bool {
        self.kubectl(&["get", resource, name, "-n", ns]).is_ok()
    }

    /// A field of `resource/name` in `ns` by kubectl's jsonpath.
    fn jsonpath(&self, resource: &str, name: &str, ns: &str, path: &str) -> String {
        self.kubectl(&[
            "get",
            resource,
            name,
            "-n",
            ns,
            "-o",
            &format!("jsonpath={path}"),
        ])
        .unwrap_or_else(|e| panic!("{resource}/{name}: {e}"))
    }
}

/// The shared real test cluster (kube-apiserver, kube-controller-manager, kwok).
pub(crate) struct RealCluster;

impl Target for RealCluster {
    async fn engine(&self) -> Cluster {
        engine().await
    }

    fn namespace(&self, prefix: &str) -> String {
        cluster().namespace(prefix).expect("namespace")
    }

    fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        kubectl(args)
    }
}

/// A namespaced CRD of `widgets.<group>` (kind Widget, version v1) whose `spec` has
/// `spec_properties`.
pub(crate) fn widget_crd(group: &str, spec_properties: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                   "spec": {"type": "object", "properties": spec_properties}}}}}]}
    })
}

pub(crate) async fn engine() -> Cluster {
    Cluster::new(cluster().client().await.expect("client"))
}

fn deployment(name: &str, wave: i64, failure: Option<Failure>) -> Value {
    let mut labels = json!({"app": name});
    if let Some(failure) = failure {
        labels[FAILURE_LABEL] = json!(failure.label_value());
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "annotations": {"argocd.argoproj.io/sync-wave": wave.to_string()}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}}}
    })
}

fn config_map(name: &str, wave: i64) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "annotations": {"argocd.argoproj.io/sync-wave": wave.to_string()}},
           "data": {"key": "value"}})
}

fn job(name: &str, hook: &str, policy: Option<&str>, failure: Option<Failure>) -> Value {
    let mut annotations = json!({"argocd.argoproj.io/hook": hook});
    if let Some(policy) = policy {
        annotations["argocd.argoproj.io/hook-delete-policy"] = json!(policy);
    }
    let mut labels = json!({"job": name});
    if let Some(failure) = failure {
        labels[FAILURE_LABEL] = json!(failure.label_value());
    }
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": labels},
                 "spec": {"restartPolicy": "Never",
                          "containers": [{"name": "run", "image": "example.invalid/job:1"}]}}}
    })
}

pub(crate) fn compare_request<'a>(
    app: &'a str,
    ns: &'a str,
    desired: &'a [Value],
    settings: &'a Settings,
) -> compare::CompareRequest<'a> {
    static OPTIONS: std::sync::LazyLock<SyncOptions> =
        std::sync::LazyLock::new(SyncOptions::default);
    compare::CompareRequest {
        app,
        destination_namespace: ns,
        desired,
        settings,
        app_ignore: &[],
        options: &OPTIONS,
        concurrency: 8,
        live_reader: None,
    }
}

pub(crate) fn request(app: &str, namespace: &str, desired: Vec<Value>) -> SyncRequest {
    let mut request = SyncRequest::new(app, namespace, desired);
    request.revision = "0123456789abcdef".into();
    request.wave_timeout = Duration::from_secs(120);
    request.poll_interval = Duration::from_millis(250);
    request
}

struct Recorder {
    events: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn new() -> Self {
        Self {
            events: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn callback(&self) -> impl Fn(&SyncEvent) + Send + Sync + 'static {
        let events = Arc::clone(&self.events);
        move |event: &SyncEvent| {
            let line = match event {
                SyncEvent::Step { phase, wave, .. } => format!("step {} {wave}", phase.as_str()),
                SyncEvent::Result(r) => {
                    format!("result {} {:?} {:?}", r.key, r.status, r.hook_phase)
                }
                SyncEvent::Waiting(message) => format!("waiting {message}"),
                SyncEvent::Attempt(n) => format!("attempt {n}"),
                SyncEvent::Retrying { .. } => "retrying".to_string(),
            };
            events.lock().expect("events").push(line);
        }
    }

    fn lines(&self) -> Vec<String> {
        self.events.lock().expect("events").clone()
    }
}

pub(crate) async fn sync(
    engine: &Cluster,
    request: &SyncRequest,
) -> (OperationResult, Vec<String>) {
    let recorder = Recorder::new();
    let result = sync_with_events(engine, request, &recorder.callback()).await;
    (result, recorder.lines())
}

/// Runs a sync of `request` (health by its settings), telling `events` what happens.
async fn sync_with_events(
    engine: &Cluster,
    request: &SyncRequest,
    events: &(dyn Fn(&SyncEvent) + Send + Sync),
) -> OperationResult {
    let assessor = HealthAssessor::new(request.settings.clone()).expect("assessor");
    operation::run_sync(
        engine,
        &assessor,
        request,
        &CancellationToken::new(),
        events,
    )
    .await
}

/// Asserts that the operation succeeded, showing its message and resources otherwise.
#[track_caller]
pub(crate) fn succeeded(result: &OperationResult) {
    assert_eq!(
        result.phase,
        OperationPhase::Succeeded,
        "{}: {:#?}",
        result.message,
        result.resources
    );
}

/// Asserts the operation failed and `name` (an object's name, or its kind) failed with it;
/// returns that object's result, whose message the caller checks.
#[track_caller]
pub(crate) fn refused_result<'a>(result: &'a OperationResult, name: &str) -> &'a ResourceResult {
    assert_eq!(result.phase, OperationPhase::Failed, "{}", result.message);
    let refused = result
        .resources
        .iter()
        .find(|r| r.key.kind == name || r.key.name == name)
        .unwrap_or_else(|| panic!("no result for {name}: {:#?}", result.resources));
    assert_eq!(refused.status, ResultStatus::SyncFailed, "{refused:#?}");
    refused
}

/// Asserts the compare found the app's Deployment `legacy`, left in another namespace, read
/// whole (its containers), and marked it as requiring pruning with a diff that shows it.
#[track_caller]
pub(crate) fn assert_left_behind_deployment_read_whole(compared: &compare::Compared) {
    let legacy = compared
        .live
        .iter()
        .find(|(key, _)| key.kind == "Deployment" && key.name == "legacy")
        .map(|(_, object)| object)
        .expect("the tracked Deployment is found");
    assert_eq!(legacy["kind"], "Deployment");
    assert_eq!(
        legacy["spec"]["template"]["spec"]["containers"][0]["name"],
        "app"
    );
    let resource = compared
        .comparison
        .resources
        .iter()
        .find(|r| r.key.kind == "Deployment")
        .expect("its resource status");
    assert!(resource.requires_pruning);
    assert!(resource.diff.contains("containers"), "{}", resource.diff);
}

pub(crate) fn kubectl(args: &[&str]) -> Result<String, String> {
    cluster().kubectl_output(args).map_err(|e| e.to_string())
}

pub(crate) fn result_status(
    result: &OperationResult,
    kind: &str,
    name: &str,
) -> Option<ResultStatus> {
    result
        .resources
        .iter()
        .rev()
        .find(|r| r.key.kind == kind && r.key.name == name)
        .map(|r| r.status)
}

#[tokio::test(flavor = "multi_thread")]
async fn waves_wait_for_health_and_resync_is_clean() {
    waves_wait_for_health_and_resync_is_clean_on(&RealCluster).await;
}

/// Wave 1 starts only once the Deployment of wave 0 is healthy (its pod Running and Ready),
/// wave 2 only once wave 1 is; a compare afterwards is Synced, and a re-compare sends nothing.
pub(crate) async fn waves_wait_for_health_and_resync_is_clean_on(target: &impl Target) {
    let ns = target.namespace("waves");
    let engine = target.engine().await;
    let desired = vec![
        deployment("backend", 0, None),
        config_map("after-backend", 1),
        deployment("frontend", 2, None),
    ];
    let (result, events) = sync(&engine, &request("waves", &ns, desired.clone())).await;
    succeeded(&result);
    // Wave 1 starts only after wave 0 reported healthy.
    let waited = events
        .iter()
        .position(|e| e.starts_with("waiting"))
        .expect("waited for health");
    let wave1 = events
        .iter()
        .position(|e| e == "step Sync 1")
        .expect("wave 1");
    let backend = events
        .iter()
        .position(|e| e.contains("Deployment") && e.contains("backend"))
        .expect("backend");
    assert!(backend < waited && waited < wave1, "{events:#?}");
    // The backend was healthy when wave 1 began: its pod is Ready (it is never unready
    // again, so reading it now tells what it was then).
    assert_eq!(
        target.jsonpath("deployment", "backend", &ns, "{.status.availableReplicas}"),
        "1"
    );
    assert_eq!(
        target.jsonpath(
            "deployment",
            "backend",
            &ns,
            "{.spec.template.spec.containers[0].image}"
        ),
        "example.invalid/app:1"
    );
    assert_eq!(
        target.jsonpath(
            "configmap",
            "after-backend",
            &ns,
            "{.metadata.annotations.argocd\\.argoproj\\.io/tracking-id}"
        ),
        format!("waves:/ConfigMap:{ns}/after-backend")
    );
    assert_eq!(
        target.jsonpath(
            "configmap",
            "after-backend",
            &ns,
            "{.metadata.managedFields[*].manager}"
        ),
        "plumb"
    );

    // Compare again: everything Synced; a third compare with the same live state is served
    // from the cache without a single request.
    let settings = Settings::default();
    let compared = compare::compare(&engine, compare_request("waves", &ns, &desired, &settings))
        .await
        .expect("compare");
    let out_of_sync: Vec<String> = compared
        .comparison
        .resources
        .iter()
        .filter(|r| r.status != SyncStatusCode::Synced)
        .map(|r| format!("{}\n{}", r.key, r.diff))
        .collect();
    assert!(out_of_sync.is_empty(), "{out_of_sync:#?}");
    assert_recompare_sends_nothing(&engine, "waves", &ns, &desired, &compared, &settings).await;
}

/// Re-compares an unchanged app against the live state `compared` read: Synced, the same
/// resources, and not one request (the compare cache answers everything).
pub(crate) async fn assert_recompare_sends_nothing(
    engine: &Cluster,
    app: &str,
    ns: &str,
    desired: &[Value],
    compared: &compare::Compared,
    settings: &Settings,
) {
    let before = engine.request_count();
    let ignore = plumb_engine::diff::ignore::IgnoreRules::default();
    let options = SyncOptions::default();
    let (again, errors) = compare::compare_live(
        engine,
        compare::LiveCompare {
            app,
            destination_namespace: ns,
            desired,
            prepared: &compared.prepared,
            live: &compared.live,
            ignore: &ignore,
            settings,
            options: &options,
            concurrency: 8,
        },
    )
    .await
    .expect("re-compare");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(again.sync_status(), SyncStatusCode::Synced);
    assert_eq!(again.resources.len(), compared.comparison.resources.len());
    assert_eq!(
        engine.request_count(),
        before,
        "re-compare of an unchanged app sent requests"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_follow_their_delete_policies() {
    hooks_follow_their_delete_policies_on(&RealCluster).await;
}

/// Job hooks run in their phases and each waits for its Job to complete; HookSucceeded
/// deletes the PreSync Job once it succeeded, BeforeHookCreation (the default) keeps the
/// PostSync Jobs until the next sync recreates them, `generateName` gets Argo CD's name.
pub(crate) async fn hooks_follow_their_delete_policies_on(target: &impl Target) {
    let ns = target.namespace("hooks");
    let engine = target.engine().await;
    let mut generated = job("", "PostSync", None, None);
    generated["metadata"] =
        json!({"generateName": "report-", "annotations": {"argocd.argoproj.io/hook": "PostSync"}});
    let desired = vec![
        job("migrate", "PreSync", Some("HookSucceeded"), None),
        job("smoke", "PostSync", None, None),
        generated,
        config_map("app-config", 0),
    ];
    let (result, events) = sync(&engine, &request("hooks", &ns, desired.clone())).await;
    assert_eq!(
        result.phase,
        OperationPhase::Succeeded,
        "{}: {events:#?}",
        result.message
    );
    let presync = events
        .iter()
        .position(|e| e == "step PreSync 0")
        .expect("presync");
    let sync_step = events
        .iter()
        .position(|e| e == "step Sync 0")
        .expect("sync");
    let postsync = events
        .iter()
        .position(|e| e == "step PostSync 0")
        .expect("postsync");
    assert!(presync < sync_step && sync_step < postsync);
    let migrate = result
        .resources
        .iter()
        .find(|r| r.key.name == "migrate")
        .expect("migrate");
    assert_eq!(migrate.hook_phase, Some(HookPhase::Succeeded));
    // HookSucceeded deleted the PreSync job; the PostSync ones (BeforeHookCreation) remain.
    let mut jobs = target.object_names("jobs", &ns);
    jobs.sort();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs.iter().any(|j| j == "smoke"), "{jobs:?}");
    assert!(
        jobs.iter()
            .any(|j| j.starts_with("report-0123456-postsync-")),
        "{jobs:?}"
    );
    // The PostSync Jobs that stay did run to completion before the operation ended.
    assert_eq!(
        target.jsonpath("job", "smoke", &ns, "{.status.succeeded}"),
        "1"
    );
    let first_uid = target.jsonpath("job", "smoke", &ns, "{.metadata.uid}");
    // A second sync recreates the BeforeHookCreation hook.
    let (again, _) = sync(&engine, &request("hooks", &ns, desired)).await;
    assert_eq!(again.phase, OperationPhase::Succeeded, "{}", again.message);
    let second_uid = target.jsonpath("job", "smoke", &ns, "{.metadata.uid}");
    assert_ne!(first_uid, second_uid);
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_presync_job_stops_the_sync_and_runs_syncfail_hooks() {
    failing_presync_job_stops_the_sync_and_runs_syncfail_hooks_on(&RealCluster).await;
}

/// A PreSync Job whose pod fails (failure label `fail`, `backoffLimit: 0`) fails the
/// operation: the Sync phase never starts and the SyncFail hooks run.
pub(crate) async fn failing_presync_job_stops_the_sync_and_runs_syncfail_hooks_on(
    target: &impl Target,
) {
    let ns = target.namespace("syncfail");
    let engine = target.engine().await;
    let mut on_failure = config_map("failure-report", 0);
    on_failure["metadata"]["annotations"] = json!({"argocd.argoproj.io/hook": "SyncFail"});
    let desired = vec![
        job("migrate", "PreSync", None, Some(Failure::Fail)),
        config_map("never-applied", 0),
        on_failure,
    ];
    let (result, events) = sync(&engine, &request("syncfail", &ns, desired)).await;
    assert_eq!(result.phase, OperationPhase::Failed, "{events:#?}");
    assert!(
        result.message.contains("hook") && result.message.contains("migrate"),
        "{}",
        result.message
    );
    let migrate = result
        .resources
        .iter()
        .find(|r| r.key.name == "migrate")
        .expect("migrate");
    assert_eq!(migrate.hook_phase, Some(HookPhase::Failed));
    assert!(
        !events.iter().any(|e| e.starts_with("step Sync ")),
        "{events:#?}"
    );
    assert!(!target.exists("configmap", "never-applied", &ns));
    assert!(target.exists("configmap", "failure-report", &ns));
    assert_eq!(
        result_status(&result, "ConfigMap", "failure-report"),
        Some(ResultStatus::Synced)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn image_pull_failure_is_degraded_and_stops_later_waves() {
    image_pull_failure_is_degraded_and_stops_later_waves_on(&RealCluster).await;
}

pub(crate) async fn image_pull_failure_is_degraded_and_stops_later_waves_on(target: &impl Target) {
    let ns = target.namespace("degraded");
    let engine = target.engine().await;
    // A Deployment whose pod cannot pull its image turns Degraded once its progress deadline
    // passes (the deployment controller reports ProgressDeadlineExceeded). As in
    // gitops-engine, a Degraded resource in a gating wave completes its task unsuccessfully:
    // the operation fails, SyncFail hooks run, and the next wave never starts.
    let mut broken = deployment("broken", 0, Some(Failure::ImagePull));
    broken["spec"]["progressDeadlineSeconds"] = json!(5);
    let mut on_failure = config_map("degraded-report", 0);
    on_failure["metadata"]["annotations"] = json!({"argocd.argoproj.io/hook": "SyncFail"});
    let desired = vec![broken, config_map("later", 1), on_failure];
    let (result, events) = sync(&engine, &request("degraded", &ns, desired)).await;
    assert_eq!(result.phase, OperationPhase::Failed, "{events:#?}");
    assert!(
        result
            .message
            .starts_with("one or more synchronization tasks completed unsuccessfully")
            && result.message.contains("Deployment/")
            && result.message.contains("Degraded")
            && result.message.contains("exceeded its progress deadline"),
        "{}",
        result.message
    );
    // The operation waited for the wave (the Deployment was Progressing first), then failed.
    assert!(
        events.iter().any(|e| e.starts_with("waiting")),
        "{events:#?}"
    );
    assert!(
        !events.iter().any(|e| e == "step Sync 1"),
        "wave 1 must not start: {events:#?}"
    );
    assert!(!target.exists("configmap", "later", &ns));
    assert_eq!(result_status(&result, "ConfigMap", "later"), None);
    // The Deployment was applied: its result stays Synced and carries the health message.
    let broken = result
        .resources
        .iter()
        .find(|r| r.key.kind == "Deployment")
        .expect("deployment result");
    assert_eq!(broken.status, ResultStatus::Synced);
    assert!(
        broken.message.contains("exceeded its progress deadline"),
        "{}",
        broken.message
    );
    assert!(target.exists("configmap", "degraded-report", &ns));
    // The pod itself is assessed Degraded with the kubelet's message.
    let pods = target
        .kubectl(&["get", "pods", "-n", &ns, "-o", "json"])
        .expect("pods");
    let pods: Value = serde_json::from_str(&pods).expect("json");
    let assessor = HealthAssessor::new(Settings::default()).expect("assessor");
    let mut pod = pods["items"][0].clone();
    pod["apiVersion"] = json!("v1");
    pod["kind"] = json!("Pod");
    let health = assessor.assess(&pod).expect("pod health");
    assert_eq!(
        health.status,
        plumb_model::HealthStatusCode::Degraded,
        "{health:?}"
    );
    assert!(
        health.message.contains("Back-off pulling image"),
        "{health:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_honours_each_propagation_policy() {
    prune_honours_each_propagation_policy_on(&RealCluster).await;
}

/// A pruned Deployment goes as each propagation policy says: its ReplicaSet (the deployment
/// controller's) is deleted first (foreground), after it (background) or kept (orphan);
/// `Prune=false` keeps an object (PruneSkipped).
pub(crate) async fn prune_honours_each_propagation_policy_on(target: &impl Target) {
    let engine = target.engine().await;
    for (policy, replica_sets_left) in [("foreground", 0), ("background", 0), ("orphan", 1)] {
        let ns = target.namespace(&format!("prune-{policy}"));
        let app = format!("prune-{policy}");
        let keep = {
            let mut keep = config_map("keep", 0);
            keep["metadata"]["annotations"] =
                json!({"argocd.argoproj.io/sync-options": "Prune=false"});
            keep
        };
        let first = vec![
            deployment("web", 0, None),
            keep.clone(),
            config_map("stays", 0),
        ];
        let (result, _) = sync(&engine, &request(&app, &ns, first)).await;
        succeeded(&result);
        let mut second = request(&app, &ns, vec![config_map("stays", 0)]);
        second.prune = true;
        second.options =
            SyncOptions::parse(&[format!("PrunePropagationPolicy={policy}")]).expect("options");
        let (result, _) = sync(&engine, &second).await;
        succeeded(&result);
        assert_eq!(
            result_status(&result, "Deployment", "web"),
            Some(ResultStatus::Pruned)
        );
        assert_eq!(
            result_status(&result, "ConfigMap", "keep"),
            Some(ResultStatus::PruneSkipped)
        );
        assert!(target.exists("configmap", "keep", &ns));
        // As in gitops-engine, the operation ends only once the pruned Deployment is gone:
        // foreground deletion holds it (deletionTimestamp + finalizer) until the garbage
        // collector has deleted its ReplicaSets, orphan deletion until they are released.
        assert!(
            !target.exists("deployment", "web", &ns),
            "policy {policy}: the pruned Deployment is still there"
        );
        if policy == "foreground" {
            let names = target.object_names("replicasets", &ns);
            assert!(names.is_empty(), "foreground: dependents first: {names:?}");
        }
        // The garbage collector acts on the ReplicaSet as the policy says.
        let mut left = usize::MAX;
        for _ in 0..120 {
            left = target.object_names("replicasets", &ns).len();
            if left == replica_sets_left && !target.exists("deployment", "web", &ns) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(left, replica_sets_left, "policy {policy}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pruned_objects_are_waited_for_until_deleted() {
    let ns = cluster().namespace("prune-wait").expect("namespace");
    let engine = engine().await;
    // A finalizer nobody removes holds the pruned object in deletion.
    let mut held = config_map("held", 0);
    held["metadata"]["finalizers"] = json!(["plumb.test/hold"]);
    let (result, _) = sync(
        &engine,
        &request("prune-wait", &ns, vec![held, config_map("stays", 0)]),
    )
    .await;
    succeeded(&result);

    // While it is held the operation waits (and, bounded by the wave timeout, fails).
    let mut prune = request("prune-wait", &ns, vec![config_map("stays", 0)]);
    prune.prune = true;
    prune.wave_timeout = Duration::from_secs(2);
    let (result, events) = sync(&engine, &prune).await;
    assert_eq!(result.phase, OperationPhase::Failed, "{events:#?}");
    assert!(
        result
            .message
            .starts_with("timed out waiting for deletion of")
            && result.message.contains("held"),
        "{}",
        result.message
    );
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("waiting waiting for deletion of")),
        "{events:#?}"
    );

    // Released while the operation waits: it then succeeds, and the object is gone.
    let mut prune = request("prune-wait", &ns, vec![config_map("stays", 0)]);
    prune.prune = true;
    let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let namespace = ns.clone();
    let flag = Arc::clone(&released);
    let callback = move |event: &SyncEvent| {
        if let SyncEvent::Waiting(message) = event
            && message.starts_with("waiting for deletion of")
            && !flag.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            let namespace = namespace.clone();
            std::thread::spawn(move || {
                kubectl(&[
                    "patch",
                    "configmap",
                    "held",
                    "-n",
                    &namespace,
                    "--type",
                    "merge",
                    "-p",
                    r#"{"metadata":{"finalizers":null}}"#,
                ])
                .expect("release the finalizer");
            });
        }
    };
    let result = sync_with_events(&engine, &prune, &callback).await;
    assert!(released.load(std::sync::atomic::Ordering::SeqCst));
    succeeded(&result);
    assert!(kubectl(&["get", "configmap", "held", "-n", &ns]).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn crd_and_custom_resource_in_one_sync() {
    let ns = cluster().namespace("crd").expect("namespace");
    let engine = engine().await;
    let suffix = ns.replace('-', "");
    let group = format!("{suffix}.plumb.test");
    let crd = widget_crd(&group, json!({"size": {"type": "integer"}}));
    let widget = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
                        "metadata": {"name": "gadget"}, "spec": {"size": 3}});
    let (result, _) = sync(
        &engine,
        &request("crd", &ns, vec![widget.clone(), crd.clone()]),
    )
    .await;
    succeeded(&result);
    let size = kubectl(&[
        "get",
        &format!("widgets.{group}"),
        "gadget",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.size}",
    ]);
    assert_eq!(size.as_deref(), Ok("3"));
    let compared = compare::compare(
        &engine,
        compare_request("crd", &ns, &[widget, crd], &Settings::default()),
    )
    .await
    .expect("compare");
    assert_eq!(
        compared.comparison.sync_status(),
        SyncStatusCode::Synced,
        "{:#?}",
        compared.comparison.resources
    );
    kubectl(&["delete", "crd", &format!("widgets.{group}"), "--wait=false"]).expect("cleanup");
}

/// Writes of bodies the dry-run held to `fieldValidation=Strict` go out with `Ignore` (the
/// server judged them already); an object that could not be dry-run, here a custom resource
/// whose CRD the same sync creates, must still have its fields judged when it is written.
#[tokio::test(flavor = "multi_thread")]
async fn objects_the_dry_run_could_not_judge_are_written_strictly() {
    let ns = cluster().namespace("crd-strict").expect("namespace");
    let engine = engine().await;
    let group = format!("{}.plumb.test", ns.replace('-', ""));
    let crd = widget_crd(&group, json!({"size": {"type": "integer"}}));
    let widget = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
                        "metadata": {"name": "gadget"}, "spec": {"size": 3, "colour": "red"}});
    let config = config_map("settings", 0);
    let (result, _) = sync(
        &engine,
        &request("crd-strict", &ns, vec![widget, crd, config]),
    )
    .await;
    let refused = refused_result(&result, "Widget");
    // kube-apiserver's words for an undeclared field under server-side apply.
    assert!(
        refused
            .message
            .contains(".spec.colour: field not declared in schema"),
        "{}",
        refused.message
    );
    // The ConfigMap, judged by its dry-run, was written.
    assert_eq!(
        result_status(&result, "ConfigMap", "settings"),
        Some(ResultStatus::Synced)
    );
    assert!(kubectl(&["get", &format!("widgets.{group}"), "gadget", "-n", &ns]).is_err());
    kubectl(&["delete", "crd", &format!("widgets.{group}"), "--wait=false"]).expect("cleanup");
}

/// Live state reads kinds an app does not declare as metadata only; what it finds tracked
/// there (here a Deployment left in another namespace) is then read whole, so its diff and
/// prune see the real object.
#[tokio::test(flavor = "multi_thread")]
async fn tracked_objects_found_in_metadata_lists_are_read_whole() {
    let ns = cluster().namespace("meta-list").expect("namespace");
    let elsewhere = cluster().namespace("meta-list-old").expect("namespace");
    let engine = engine().await;
    let mut old = deployment("legacy", 0, None);
    old["metadata"]["namespace"] = json!(elsewhere);
    let (result, _) = sync(
        &engine,
        &request("meta-list", &ns, vec![config_map("settings", 0), old]),
    )
    .await;
    succeeded(&result);
    // The app now declares only the ConfigMap: Deployments are listed by metadata alone.
    let desired = [config_map("settings", 0)];
    let compared = compare::compare(
        &engine,
        compare_request("meta-list", &ns, &desired, &Settings::default()),
    )
    .await
    .expect("compare");
    assert_left_behind_deployment_read_whole(&compared);
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_show_in_clear() {
    let ns = cluster().namespace("secrets").expect("namespace");
    let engine = engine().await;
    assert_secrets_stay_masked(&engine, &ns, |_| {}).await;
}

/// The Secret of the masking tests, with its password.
fn secret_with_password(password: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
           "stringData": {"password": password, "user": "admin"}})
}

/// Syncs Secret `db` (password `first-pass-9c1`; `after_sync` may check it on the server),
/// then compares it with a new password: the resource is OutOfSync and its diff shows the
/// change, but no value, plain or base64, appears anywhere in the comparison. Returns the
/// Secret's resource comparison.
pub(crate) async fn assert_secrets_stay_masked(
    engine: &Cluster,
    ns: &str,
    after_sync: impl FnOnce(&str),
) -> plumb_engine::diff::ResourceComparison {
    let (result, _) = sync(
        engine,
        &request("secrets", ns, vec![secret_with_password("first-pass-9c1")]),
    )
    .await;
    succeeded(&result);
    after_sync(ns);
    let compared = compare::compare(
        engine,
        compare_request(
            "secrets",
            ns,
            &[secret_with_password("second-pass-7d2")],
            &Settings::default(),
        ),
    )
    .await
    .expect("compare");
    let resource = compared.comparison.resources[0].clone();
    assert_eq!(resource.status, SyncStatusCode::OutOfSync);
    let everything = serde_json::to_string(&compared.comparison).expect("json");
    for secret in [
        "first-pass-9c1",
        "second-pass-7d2",
        "Zmlyc3QtcGFzcy05YzE=",
        "c2Vjb25kLXBhc3MtN2Qy",
        "YWRtaW4=",
    ] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    assert!(resource.diff.contains("password"), "{}", resource.diff);
    assert!(resource.diff.contains("++++++++"), "{}", resource.diff);
    resource
}

#[tokio::test(flavor = "multi_thread")]
async fn server_rejections_stop_before_any_write() {
    let ns = cluster().namespace("reject").expect("namespace");
    let engine = engine().await;
    let mut invalid = deployment("invalid", 0, None);
    invalid["spec"]["replicas"] = json!(-3);
    let unknown =
        json!({"apiVersion": "nowhere.plumb.test/v1", "kind": "Gizmo", "metadata": {"name": "g"}});
    let (result, _) = sync(
        &engine,
        &request("reject", &ns, vec![config_map("fine", 0), invalid]),
    )
    .await;
    assert_eq!(result.phase, OperationPhase::Failed);
    assert!(
        result.message.contains("dry run") && result.message.contains("replicas"),
        "{}",
        result.message
    );
    assert_eq!(
        result_status(&result, "Deployment", "invalid"),
        Some(ResultStatus::SyncFailed)
    );
    assert!(
        kubectl(&["get", "configmap", "fine", "-n", &ns]).is_err(),
        "nothing may be written"
    );
    let (result, _) = sync(
        &engine,
        &request("reject", &ns, vec![config_map("fine", 0), unknown]),
    )
    .await;
    assert_eq!(result.phase, OperationPhase::Failed);
    assert!(
        result.message.contains("no matches for kind \"Gizmo\""),
        "{}",
        result.message
    );
    assert!(
        kubectl(&["get", "configmap", "fine", "-n", &ns]).is_err(),
        "nothing may be written"
    );
    // Unknown fields are rejected by the dry-run (strict validation), before any write.
    let mut typo = config_map("typo", 0);
    typo["dta"] = json!({"a": "b"});
    let (result, _) = sync(
        &engine,
        &request("reject", &ns, vec![config_map("fine", 0), typo]),
    )
    .await;
    assert_eq!(result.phase, OperationPhase::Failed);
    assert!(
        result.message.contains("dry run") && result.message.contains("dta"),
        "{}",
        result.message
    );
    assert!(kubectl(&["get", "configmap", "fine", "-n", &ns]).is_err());
}

/// A TCP proxy in front of the API server that can be cut, to lose the cluster mid-sync.
struct CuttableProxy {
    url: String,
    handles: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl CuttableProxy {
    async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let target = target.trim_start_matches("https://").to_string();
        let handles: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let connections = Arc::clone(&handles);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections
                    .lock()
                    .expect("handles")
                    .push(task.abort_handle());
            }
        });
        handles.lock().expect("handles").push(accept.abort_handle());
        Self {
            url: format!("https://127.0.0.1:{port}"),
            handles,
        }
    }

    fn cutter(&self) -> impl Fn() + Send + Sync + 'static {
        let handles = Arc::clone(&self.handles);
        move || {
            for handle in handles.lock().expect("handles").iter() {
                handle.abort();
            }
        }
    }

    async fn client(&self) -> kube::Client {
        let mut kubeconfig =
            kube::config::Kubeconfig::read_from(cluster().kubeconfig_path()).expect("kubeconfig");
        for named in &mut kubeconfig.clusters {
            if let Some(cluster) = named.cluster.as_mut() {
                cluster.server = Some(self.url.clone());
            }
        }
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("config");
        kube::Client::try_from(config).expect("client")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn losing_the_cluster_mid_sync_fails_retries_and_recovers() {
    let ns = cluster().namespace("unreachable").expect("namespace");
    let proxy = CuttableProxy::start(cluster().server_url()).await;
    let engine = Cluster::new(proxy.client().await);
    let desired = vec![config_map("first", 0), config_map("second", 1)];
    let mut request = request("unreachable", &ns, desired.clone());
    request.retry = Some(plumb_model::RetryStrategy {
        limit: 1,
        backoff: Some(plumb_model::Backoff {
            duration: Some("1s".into()),
            factor: Some(2),
            max_duration: Some("2s".into()),
        }),
        refresh: false,
    });
    let cut = proxy.cutter();
    let recorder = Recorder::new();
    let record = recorder.callback();
    let callback = move |event: &SyncEvent| {
        if matches!(event, SyncEvent::Step { wave: 1, .. }) {
            cut();
        }
        record(event);
    };
    let result = sync_with_events(&engine, &request, &callback).await;
    assert_eq!(
        result.phase,
        OperationPhase::Error,
        "{}: {:#?}",
        result.message,
        recorder.lines()
    );
    assert!(result.message.contains("unreachable"), "{}", result.message);
    assert_eq!(result.attempts, 2, "one retry after the failure");
    assert!(recorder.lines().contains(&"retrying".to_string()));
    // No phantom Synced: "second" was never written and is not reported as synced.
    assert_ne!(
        result_status(&result, "ConfigMap", "second"),
        Some(ResultStatus::Synced)
    );
    assert!(kubectl(&["get", "configmap", "second", "-n", &ns]).is_err());
    // With the cluster back, the same operation succeeds.
    let (again, _) = sync(
        &Cluster::new(cluster().client().await.expect("client")),
        &request,
    )
    .await;
    assert_eq!(again.phase, OperationPhase::Succeeded, "{}", again.message);
    assert!(kubectl(&["get", "configmap", "second", "-n", &ns]).is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn terminate_stops_a_waiting_operation() {
    terminate_stops_a_waiting_operation_on(&RealCluster).await;
}

/// Terminating an operation that waits for health: the wave waits for a Deployment that
/// cannot become healthy, and cancelling ends the operation before the next wave.
pub(crate) async fn terminate_stops_a_waiting_operation_on(target: &impl Target) {
    let ns = target.namespace("terminate");
    let engine = target.engine().await;
    // Never healthy: the image cannot be pulled and the progress deadline (600 s by
    // default) is far away, so the Deployment stays Progressing and the wave waits.
    let desired = vec![
        deployment("stuck", 0, Some(Failure::ImagePull)),
        config_map("after", 1),
    ];
    let request = request("terminate", &ns, desired);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let waited = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&waited);
    // Cancel only once the pod has been tried and failed, so the operation is stopped
    // while it waits on a Deployment that has really failed to start, not one that merely
    // has not started yet.
    let namespace = ns.clone();
    let pull_failed = move || {
        target
            .kubectl(&[
                "get",
                "pods",
                "-n",
                &namespace,
                "-o",
                "jsonpath={.items[*].status.containerStatuses[*].state.waiting.reason}",
            ])
            .is_ok_and(|reasons| reasons.contains("ImagePullBackOff"))
    };
    let callback = |event: &SyncEvent| {
        if let SyncEvent::Waiting(message) = event {
            seen.lock().expect("waiting").push(message.clone());
            if pull_failed() {
                trigger.cancel();
            }
        }
    };
    let assessor = HealthAssessor::new(Settings::default()).expect("assessor");
    let result = operation::run_sync(&engine, &assessor, &request, &cancel, &callback).await;
    assert_eq!(result.phase, OperationPhase::Failed);
    assert_eq!(result.message, "Operation terminated");
    let waited = waited.lock().expect("waiting").clone();
    assert!(!waited.is_empty(), "the wave waited for the Deployment");
    assert!(
        waited
            .iter()
            .all(|m| m == &format!("waiting for healthy state of apps/Deployment/{ns}/stuck")),
        "{waited:#?}"
    );
    assert!(target.exists("deployment", "stuck", &ns));
    assert!(!target.exists("configmap", "after", &ns));
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_operation_writes_nothing() {
    let ns = cluster().namespace("dryrun").expect("namespace");
    let engine = engine().await;
    let mut request = request(
        "dryrun",
        &ns,
        vec![config_map("planned", 0), deployment("web", 1, None)],
    );
    request.dry_run = true;
    let (result, _) = sync(&engine, &request).await;
    succeeded(&result);
    assert!(result.dry_run);
    assert_eq!(result.resources.len(), 2);
    assert!(
        result
            .resources
            .iter()
            .all(|r| r.message.ends_with("(dry run)"))
    );
    assert!(kubectl(&["get", "configmap", "planned", "-n", &ns]).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn create_namespace_replace_and_force() {
    let engine = engine().await;
    let base = cluster().namespace("options").expect("namespace");
    // CreateNamespace with managed metadata: the namespace is created, labelled and tracked.
    let ns = format!("{base}-created");
    let mut request = request("options", &ns, vec![config_map("inside", 0)]);
    request.options = SyncOptions::parse(&["CreateNamespace=true"]).expect("options");
    request.managed_namespace_metadata = Some(plumb_model::ManagedNamespaceMetadata {
        labels: [("team".to_string(), "shop".to_string())].into(),
        annotations: Default::default(),
    });
    let (result, _) = sync(&engine, &request).await;
    succeeded(&result);
    let label = kubectl(&[
        "get",
        "namespace",
        &ns,
        "-o",
        "jsonpath={.metadata.labels.team}",
    ]);
    assert_eq!(label.as_deref(), Ok("shop"));
    assert!(kubectl(&["get", "configmap", "inside", "-n", &ns]).is_ok());

    // Replace=true writes with PUT/POST instead of an apply.
    let mut replaced = config_map("replaced", 0);
    replaced["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] = json!("Replace=true");
    let (result, _) = sync(
        &engine,
        &self::request("options", &base, vec![replaced.clone()]),
    )
    .await;
    succeeded(&result);
    replaced["data"]["key"] = json!("second");
    let (result, _) = sync(&engine, &self::request("options", &base, vec![replaced])).await;
    succeeded(&result);
    assert!(
        result
            .resources
            .iter()
            .any(|r| r.message.ends_with("replaced")),
        "{:?}",
        result.resources
    );
    let value = kubectl(&[
        "get",
        "configmap",
        "replaced",
        "-n",
        &base,
        "-o",
        "jsonpath={.data.key}",
    ]);
    assert_eq!(value.as_deref(), Ok("second"));

    // Force=true: an immutable ConfigMap cannot change, so it is deleted and created again.
    let mut frozen = config_map("frozen", 0);
    frozen["immutable"] = json!(true);
    let (result, _) = sync(
        &engine,
        &self::request("options", &base, vec![frozen.clone()]),
    )
    .await;
    succeeded(&result);
    let first_uid = kubectl(&[
        "get",
        "configmap",
        "frozen",
        "-n",
        &base,
        "-o",
        "jsonpath={.metadata.uid}",
    ])
    .expect("uid");
    frozen["data"]["key"] = json!("changed");
    let (result, _) = sync(
        &engine,
        &self::request("options", &base, vec![frozen.clone()]),
    )
    .await;
    assert_eq!(
        result.phase,
        OperationPhase::Failed,
        "without Force the change is refused"
    );
    frozen["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] = json!("Force=true");
    let (result, _) = sync(&engine, &self::request("options", &base, vec![frozen])).await;
    succeeded(&result);
    let second_uid = kubectl(&[
        "get",
        "configmap",
        "frozen",
        "-n",
        &base,
        "-o",
        "jsonpath={.metadata.uid}",
    ])
    .expect("uid");
    assert_ne!(first_uid, second_uid);
    let value = kubectl(&[
        "get",
        "configmap",
        "frozen",
        "-n",
        &base,
        "-o",
        "jsonpath={.data.key}",
    ]);
    assert_eq!(value.as_deref(), Ok("changed"));
    kubectl(&["delete", "namespace", &ns, "--wait=false"]).expect("cleanup");
}

#[tokio::test(flavor = "multi_thread")]
async fn admission_policy_rejection_stops_the_sync_with_its_message() {
    let ns = cluster().namespace("admission").expect("namespace");
    let engine = engine().await;
    kubectl(&["label", "namespace", &ns, "plumb-admission-test=on"]).expect("label");
    let policy = format!("plumb-deny-forbidden-{ns}");
    let manifests = format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {policy}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["configmaps"]
  validations:
  - expression: "!has(object.data) || !('forbidden' in object.data)"
    message: "the key 'forbidden' is not allowed here"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {policy}}}
spec:
  policyName: {policy}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{plumb-admission-test: "on"}}
"#
    );
    cluster()
        .kubectl_stdin(&["apply", "-f", "-"], &manifests)
        .expect("policy");
    let mut rejected = config_map("rejected", 0);
    rejected["data"] = json!({"forbidden": "yes"});
    // Policies take effect shortly after they are created: wait until a server-side dry-run
    // by kubectl is refused, so the sync below meets the policy from its first request.
    let probe = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: probe, namespace: {ns}}}\ndata: {{forbidden: x}}\n"
    );
    let mut active = false;
    for _ in 0..120 {
        if cluster()
            .kubectl_stdin(&["create", "--dry-run=server", "-f", "-"], &probe)
            .is_err()
        {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(active, "the admission policy never took effect");
    let (result, _) = sync(
        &engine,
        &request("admission", &ns, vec![config_map("fine", 0), rejected]),
    )
    .await;
    assert!(
        result.message.contains("not allowed here"),
        "{}",
        result.message
    );
    assert_eq!(result.phase, OperationPhase::Failed);
    assert!(result.message.contains("dry run"), "{}", result.message);
    assert_eq!(
        result_status(&result, "ConfigMap", "rejected"),
        Some(ResultStatus::SyncFailed)
    );
    assert!(
        kubectl(&["get", "configmap", "fine", "-n", &ns]).is_err(),
        "nothing may be written"
    );
    kubectl(&["delete", "validatingadmissionpolicybinding", &policy]).expect("cleanup");
    kubectl(&["delete", "validatingadmissionpolicy", &policy]).expect("cleanup");
}

#[tokio::test(flavor = "multi_thread")]
async fn post_delete_hooks_run_only_on_app_deletion() {
    post_delete_hooks_run_only_on_app_deletion_on(&RealCluster).await;
}

/// A PostDelete Job hook never runs in a sync; on the app's deletion it runs, is waited for
/// until it completes, and goes (HookSucceeded).
pub(crate) async fn post_delete_hooks_run_only_on_app_deletion_on(target: &impl Target) {
    let ns = target.namespace("postdelete");
    let engine = target.engine().await;
    let desired = vec![
        config_map("app-config", 0),
        job("cleanup", "PostDelete", Some("HookSucceeded"), None),
    ];
    let request = request("postdelete", &ns, desired);
    let (result, _) = sync(&engine, &request).await;
    succeeded(&result);
    assert!(
        !target.exists("job", "cleanup", &ns),
        "a sync does not run PostDelete hooks"
    );
    let assessor = HealthAssessor::new(Settings::default()).expect("assessor");
    let deleted = operation::run_post_delete(
        &engine,
        &assessor,
        &request,
        &CancellationToken::new(),
        &|_: &SyncEvent| {},
    )
    .await;
    succeeded(&deleted);
    assert_eq!(deleted.resources.len(), 1);
    assert_eq!(deleted.resources[0].hook_phase, Some(HookPhase::Succeeded));
    // HookSucceeded: the job is gone again once it completed.
    assert!(!target.exists("job", "cleanup", &ns));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_namespace_compares_as_new_but_sync_fails_before_writing() {
    let engine = engine().await;
    // A name derived from a fresh test namespace: unique, and not created by anyone.
    let base = cluster().namespace("absent").expect("namespace");
    let ns = format!("{base}-absent");
    let desired = vec![config_map("first", 0), deployment("web", 0, None)];
    let settings = Settings::default();

    // A read-only compare shows both objects as missing (they would be created).
    let compared = compare::compare(&engine, compare_request("absent", &ns, &desired, &settings))
        .await
        .expect("compare");
    assert!(
        compared.dry_run_errors.is_empty(),
        "{:?}",
        compared.dry_run_errors
    );
    assert_eq!(compared.comparison.sync_status(), SyncStatusCode::OutOfSync);
    let statuses: Vec<(String, String, SyncStatusCode)> = compared
        .comparison
        .resources
        .iter()
        .map(|r| (r.key.kind.clone(), r.key.namespace.clone(), r.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (
                "ConfigMap".to_string(),
                ns.clone(),
                SyncStatusCode::OutOfSync
            ),
            (
                "Deployment".to_string(),
                ns.clone(),
                SyncStatusCode::OutOfSync
            ),
        ]
    );
    assert!(
        compared
            .comparison
            .resources
            .iter()
            .all(|r| r.diff.contains("+kind:")),
        "{:#?}",
        compared.comparison.resources
    );

    // A sync without CreateNamespace still fails in its dry-run, before any write.
    let (result, _) = sync(&engine, &request("absent", &ns, desired)).await;
    assert_eq!(result.phase, OperationPhase::Failed, "{}", result.message);
    let not_found = format!("namespaces \"{ns}\" not found");
    assert!(
        result.message.contains("(dry run)") && result.message.contains(&not_found),
        "{}",
        result.message
    );
    assert!(
        result
            .resources
            .iter()
            .all(|r| r.status == ResultStatus::SyncFailed && r.message.contains(&not_found)),
        "{:?}",
        result.resources
    );
    assert!(kubectl(&["get", "namespace", &ns]).is_err());
}
