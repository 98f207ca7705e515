//! End-to-end: sync operations against plumb's embedded API server (crate `plumb-apiserver`,
//! started in-process on a free port with a fresh data directory per test). kubectl, the
//! one built with the test cluster, checks the results as an independent client.
//!
//! The server's workload simulation runs (Deployments → ReplicaSets → Pods on `plumb-node`,
//! Jobs, failure by the `testcluster.plumb.dev/failure` label), so the scenarios that need
//! workloads to become healthy or Degraded are the real cluster's own (`cluster::…_on`),
//! run here through [`Target`]; the others are written for this server.

use crate::cluster::{
    self, Target, assert_left_behind_deployment_read_whole, assert_recompare_sends_nothing,
    assert_secrets_stay_masked, compare_request, refused_result, request, result_status, succeeded,
    sync, widget_crd,
};
use plumb_engine::client_apply::LAST_APPLIED_ANNOTATION;
use plumb_engine::cluster::{CacheCapacities, Cluster};
use plumb_engine::compare;
use plumb_engine::settings::Settings;
use plumb_engine::sync::operation::{HookPhase, OperationPhase, ResultStatus};
use plumb_engine::sync::{PropagationPolicy, SyncOptions};
use plumb_model::SyncStatusCode;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// An embedded API server for one test; dropping it stops the server and removes its data.
struct Embedded {
    server: Option<plumb_apiserver::RunningServer>,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    _data: tempfile::TempDir,
}

impl Embedded {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server whose configuration `adjust` changes first. Pods start and Jobs run
    /// in 200 ms (not the default 500 ms): long enough that a wave really waits for them,
    /// short enough to keep the tests quick.
    async fn start_with(adjust: impl FnOnce(&mut plumb_apiserver::Config)) -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        let mut config = plumb_apiserver::Config::new(
            data.path().join("data"),
            "127.0.0.1:0".parse().expect("addr"),
        );
        config.workloads.pod_start_delay = std::time::Duration::from_millis(200);
        config.workloads.job_run_time = std::time::Duration::from_millis(200);
        adjust(&mut config);
        let server = plumb_apiserver::start(config)
            .await
            .unwrap_or_else(|e| panic!("starting the embedded API server: {e}"));
        let kubeconfig = data.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let kubectl = plumb_testcluster::binary("kubectl").unwrap_or_else(|e| panic!("{e}"));
        Self {
            server: Some(server),
            kubeconfig,
            kubectl,
            _data: data,
        }
    }

    fn kubectl_stdin(&self, args: &[&str], input: &str) -> Result<String, String> {
        use std::io::Write as _;
        let mut child = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("kubectl stdin");
        let output = child.wait_with_output().expect("kubectl");
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// The names of the `resource` objects in `ns` (sorted), without the namespace's
    /// `kube-root-ca.crt` (kube-controller-manager publishes it; the embedded server may not).
    fn names(&self, resource: &str, ns: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .kubectl(&[
                "get",
                resource,
                "-n",
                ns,
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ])
            .unwrap_or_else(|e| panic!("{resource}: {e}"))
            .split_whitespace()
            .filter(|name| *name != "kube-root-ca.crt")
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

impl Target for Embedded {
    /// The engine's view of this server, through the same kubeconfig kubectl uses.
    async fn engine(&self) -> Cluster {
        Cluster::connect(Some(&self.kubeconfig), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates namespace `prefix` itself: the server is this test's alone, so the name is
    /// free.
    fn namespace(&self, prefix: &str) -> String {
        self.kubectl(&["create", "namespace", prefix])
            .unwrap_or_else(|e| panic!("namespace {prefix}: {e}"));
        prefix.to_string()
    }

    fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        self.kubectl_stdin(args, "")
    }
}

fn config_map(name: &str, wave: i64, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "annotations": {"argocd.argoproj.io/sync-wave": wave.to_string()}},
           "data": data})
}

fn hook_config_map(name: &str, hook: &str, policy: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "annotations": {
               "argocd.argoproj.io/hook": hook,
               "argocd.argoproj.io/hook-delete-policy": policy}},
           "data": {"ran": "yes"}})
}

/// The resources of a compare that are not Synced, with their diffs.
fn not_synced(compared: &compare::Compared) -> Vec<String> {
    compared
        .comparison
        .resources
        .iter()
        .filter(|r| r.status != SyncStatusCode::Synced)
        .map(|r| format!("{} {:?}\n{}", r.key, r.status, r.diff))
        .collect()
}

/// Asserts every resource of the compare is Synced, naming those that are not.
#[track_caller]
fn assert_all_synced(compared: &compare::Compared) {
    let differing = not_synced(compared);
    assert!(differing.is_empty(), "{differing:#?}");
}

fn position(events: &[String], wanted: &str) -> usize {
    events
        .iter()
        .position(|e| e == wanted)
        .unwrap_or_else(|| panic!("no {wanted:?} in {events:#?}"))
}

fn result_position(events: &[String], name: &str) -> usize {
    events
        .iter()
        .position(|e| e.starts_with("result ") && e.contains(&format!("/{name} ")))
        .unwrap_or_else(|| panic!("no result for {name} in {events:#?}"))
}

/// Waves and hooks that need no controller: ConfigMaps in waves -1, 0 and 1 and ConfigMap
/// hooks, which complete as soon as they exist (as in Argo CD, a hook without a health
/// assessment is done once created).
#[tokio::test(flavor = "multi_thread")]
async fn embedded_waves_and_config_map_hooks_then_a_clean_recompare() {
    let server = Embedded::start().await;
    let ns = server.namespace("waves");
    let engine = server.engine().await;
    let desired = vec![
        config_map("late", 1, json!({"order": "third"})),
        config_map("middle", 0, json!({"order": "second"})),
        config_map("early", -1, json!({"order": "first"})),
        hook_config_map("before", "PreSync", "HookSucceeded"),
        hook_config_map("after", "PostSync", "HookSucceeded"),
    ];
    let (result, events) = sync(&engine, &request("waves", &ns, desired.clone())).await;
    succeeded(&result);
    let steps: Vec<&String> = events.iter().filter(|e| e.starts_with("step")).collect();
    assert_eq!(
        steps,
        [
            "step PreSync 0",
            "step Sync -1",
            "step Sync 0",
            "step Sync 1",
            "step PostSync 0"
        ],
        "{events:#?}"
    );
    let order: Vec<usize> = ["before", "early", "middle", "late", "after"]
        .iter()
        .map(|name| result_position(&events, name))
        .collect();
    assert!(order.is_sorted(), "{order:?}: {events:#?}");
    assert!(
        position(&events, "step Sync -1") < result_position(&events, "early")
            && result_position(&events, "early") < position(&events, "step Sync 0"),
        "{events:#?}"
    );
    for hook in ["before", "after"] {
        let hook_result = result
            .resources
            .iter()
            .rev()
            .find(|r| r.key.name == hook)
            .unwrap_or_else(|| panic!("no result for {hook}"));
        assert_eq!(hook_result.hook_phase, Some(HookPhase::Succeeded), "{hook}");
    }
    // HookSucceeded: both hooks are deleted once they completed; the app's objects stay.
    assert_eq!(
        server.names("configmaps", &ns),
        ["early", "late", "middle"],
        "the hooks are deleted, the app's objects stay"
    );
    assert_eq!(
        server.jsonpath("configmap", "late", &ns, "{.data.order}"),
        "third"
    );
    assert_eq!(
        server.jsonpath(
            "configmap",
            "early",
            &ns,
            "{.metadata.annotations.argocd\\.argoproj\\.io/tracking-id}"
        ),
        format!("waves:/ConfigMap:{ns}/early")
    );
    assert_eq!(
        server.jsonpath(
            "configmap",
            "early",
            &ns,
            "{.metadata.managedFields[*].manager}"
        ),
        "plumb"
    );

    // Compare: Synced. A second compare of the
    // same live state is answered from the cache without one request.
    let settings = Settings::default();
    let compared = compare::compare(&engine, compare_request("waves", &ns, &desired, &settings))
        .await
        .expect("compare");
    assert_all_synced(&compared);
    // Hooks are listed as Argo CD lists them: marked as hooks, Synced, without a live object.
    let hooks: Vec<(&str, bool, bool)> = compared
        .comparison
        .resources
        .iter()
        .map(|r| (r.key.name.as_str(), r.hook, r.live.is_some()))
        .collect();
    assert_eq!(
        hooks,
        [
            ("after", true, false),
            ("before", true, false),
            ("early", false, true),
            ("late", false, true),
            ("middle", false, true)
        ]
    );
    assert_recompare_sends_nothing(&engine, "waves", &ns, &desired, &compared, &settings).await;
    server.stop().await;
}

/// A CRD and a custom resource of it in one sync: the custom resource cannot be dry-run
/// before its CRD exists, waits for the CRD to be served, and compares Synced afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn embedded_crd_and_custom_resource_in_one_sync() {
    let server = Embedded::start().await;
    let ns = server.namespace("crd");
    let engine = server.engine().await;
    let group = "crd.plumb.test";
    let crd = widget_crd(group, json!({"size": {"type": "integer"}}));
    let widget = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
                        "metadata": {"name": "gadget"}, "spec": {"size": 3}});
    let desired = vec![widget, crd];
    let (result, _) = sync(&engine, &request("crd", &ns, desired.clone())).await;
    succeeded(&result);
    assert_eq!(
        server.jsonpath(&format!("widgets.{group}"), "gadget", &ns, "{.spec.size}"),
        "3"
    );
    assert_eq!(
        result_status(
            &result,
            "CustomResourceDefinition",
            &format!("widgets.{group}")
        ),
        Some(ResultStatus::Synced)
    );
    let compared = compare::compare(
        &engine,
        compare_request("crd", &ns, &desired, &Settings::default()),
    )
    .await
    .expect("compare");
    assert!(
        compared.dry_run_errors.is_empty(),
        "{:?}",
        compared.dry_run_errors
    );
    assert_all_synced(&compared);
    assert_eq!(compared.comparison.resources.len(), 2);
    server.stop().await;
}

/// The dry-run of every object comes first: an unknown kind, or a custom resource its CRD's
/// schema refuses, fails the operation before anything is written.
#[tokio::test(flavor = "multi_thread")]
async fn embedded_rejections_stop_before_any_write() {
    let server = Embedded::start().await;
    let ns = server.namespace("reject");
    let engine = server.engine().await;
    let fine = config_map("fine", 0, json!({"key": "value"}));

    let unknown =
        json!({"apiVersion": "nowhere.plumb.test/v1", "kind": "Gizmo", "metadata": {"name": "g"}});
    let (result, _) = sync(
        &engine,
        &request("reject", &ns, vec![fine.clone(), unknown]),
    )
    .await;
    assert_eq!(result.phase, OperationPhase::Failed, "{}", result.message);
    assert!(
        result.message.contains("no matches for kind \"Gizmo\""),
        "{}",
        result.message
    );
    assert!(
        !server.exists("configmap", "fine", &ns),
        "nothing may be written"
    );

    // The CRD is installed beforehand (kubectl), so the custom resource is dry-run against
    // its schema: `size` must be an integer.
    let group = "reject.plumb.test";
    let crd = widget_crd(group, json!({"size": {"type": "integer"}}));
    server
        .kubectl_stdin(&["apply", "-f", "-"], &crd.to_string())
        .expect("crd");
    server
        .kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            &format!("crd/widgets.{group}"),
        ])
        .expect("established");
    let invalid = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
                         "metadata": {"name": "gadget"}, "spec": {"size": "large"}});
    let (result, _) = sync(
        &engine,
        &request("reject", &ns, vec![fine.clone(), invalid]),
    )
    .await;
    assert_eq!(result.phase, OperationPhase::Failed, "{}", result.message);
    assert!(
        result.message.contains("dry run") && result.message.contains("spec.size"),
        "{}",
        result.message
    );
    assert_eq!(
        result_status(&result, "Widget", "gadget"),
        Some(ResultStatus::SyncFailed)
    );
    let refused = refused_result(&result, "Widget");
    // kube-apiserver's words for a type mismatch in a custom resource.
    assert!(
        refused.message.contains("spec.size: Invalid value")
            && refused.message.contains("must be of type integer"),
        "{}",
        refused.message
    );
    assert!(
        !server.exists("configmap", "fine", &ns),
        "nothing may be written"
    );
    assert!(!server.exists(&format!("widgets.{group}"), "gadget", &ns));

    // A typo in a built-in kind: the Strict dry-run refuses it with kube-apiserver's words.
    let typo = json!({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "typo"}, "dta": {"key": "value"}});
    let (result, _) = sync(&engine, &request("reject", &ns, vec![fine, typo])).await;
    let refused = refused_result(&result, "typo");
    assert!(
        refused
            .message
            .contains("strict decoding error: unknown field \"dta\""),
        "{}",
        refused.message
    );
    assert!(!server.exists("configmap", "fine", &ns));
    assert!(!server.exists("configmap", "typo", &ns));
    server.stop().await;
}

/// Prune deletes what left the desired set, with each propagation policy; `Prune=false`
/// keeps an object (PruneSkipped). A dependent (ownerReference to the pruned object) shows
/// the server's garbage collection following the policy.
#[tokio::test(flavor = "multi_thread")]
async fn embedded_prune_and_prune_false() {
    let server = Embedded::start().await;
    let engine = server.engine().await;
    for (policy, dependent_left) in [
        ("foreground", false),
        ("background", false),
        ("orphan", true),
    ] {
        let ns = server.namespace(&format!("prune-{policy}"));
        let app = format!("prune-{policy}");
        let mut keep = config_map("keep", 0, json!({"key": "value"}));
        keep["metadata"]["annotations"] = json!({"argocd.argoproj.io/sync-options": "Prune=false"});
        let first = vec![
            config_map("gone", 0, json!({"key": "value"})),
            keep,
            config_map("stays", 0, json!({"key": "value"})),
        ];
        let (result, _) = sync(&engine, &request(&app, &ns, first)).await;
        succeeded(&result);
        // A dependent of "gone", created by someone else (not tracked by the app).
        let uid = server.jsonpath("configmap", "gone", &ns, "{.metadata.uid}");
        let dependent = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "dependent", "namespace": ns, "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": uid}]}});
        server
            .kubectl_stdin(&["create", "-f", "-"], &dependent.to_string())
            .expect("dependent");

        let mut second = request(
            &app,
            &ns,
            vec![config_map("stays", 0, json!({"key": "value"}))],
        );
        second.prune = true;
        second.options =
            SyncOptions::parse(&[format!("PrunePropagationPolicy={policy}")]).expect("options");
        let (result, _) = sync(&engine, &second).await;
        succeeded(&result);
        assert_eq!(
            result_status(&result, "ConfigMap", "gone"),
            Some(ResultStatus::Pruned),
            "{policy}"
        );
        assert_eq!(
            result_status(&result, "ConfigMap", "keep"),
            Some(ResultStatus::PruneSkipped),
            "{policy}"
        );
        assert_eq!(result_status(&result, "ConfigMap", "dependent"), None);
        // The operation ends only once the pruned object is gone.
        assert!(!server.exists("configmap", "gone", &ns), "{policy}");
        assert!(server.exists("configmap", "keep", &ns), "{policy}");
        assert!(server.exists("configmap", "stays", &ns), "{policy}");
        if policy == "foreground" {
            // Foreground deletion removes dependents before the owner.
            assert!(!server.exists("configmap", "dependent", &ns), "foreground");
        }
        // Background deletion lets the garbage collector remove the dependent afterwards.
        let mut left = !dependent_left;
        for _ in 0..120 {
            left = server.exists("configmap", "dependent", &ns);
            if left == dependent_left {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        assert_eq!(left, dependent_left, "policy {policy}");
        if dependent_left {
            let owners =
                server.jsonpath("configmap", "dependent", &ns, "{.metadata.ownerReferences}");
            assert_eq!(owners, "", "orphan: the owner reference is released");
        }
    }
    server.stop().await;
}

/// Secret values never appear in a compare's output, in clear or base64.
#[tokio::test(flavor = "multi_thread")]
async fn embedded_secrets_never_show_in_clear() {
    let server = Embedded::start().await;
    let ns = server.namespace("secrets");
    let engine = server.engine().await;
    let resource = assert_secrets_stay_masked(&engine, &ns, |ns| {
        assert_eq!(
            server.jsonpath("secret", "db", ns, "{.data.password}"),
            "Zmlyc3QtcGFzcy05YzE="
        );
    })
    .await;
    // The unchanged value compares equal: same value, same mask, no diff line for it.
    assert!(
        !resource
            .diff
            .lines()
            .any(|l| l.starts_with(['+', '-']) && l.contains("user")),
        "{}",
        resource.diff
    );
    server.stop().await;
}

/// `ServerSideApply=false`: kubectl-style client-side apply creates with the last-applied
/// annotation and updates by a three-way patch: a field removed from Git goes, a label
/// someone else added stays.
#[tokio::test(flavor = "multi_thread")]
async fn embedded_client_side_apply_create_then_update() {
    let server = Embedded::start().await;
    let ns = server.namespace("client-side");
    let engine = server.engine().await;
    let options = SyncOptions::parse(&["ServerSideApply=false"]).expect("options");
    let first = json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "settings"},
                       "data": {"mode": "fast", "obsolete": "yes"}});
    let mut create = request("client-side", &ns, vec![first]);
    create.options = options.clone();
    let (result, _) = sync(&engine, &create).await;
    succeeded(&result);
    let applied = server.jsonpath(
        "configmap",
        "settings",
        &ns,
        &format!(
            "{{.metadata.annotations.{}}}",
            LAST_APPLIED_ANNOTATION.replace('.', "\\.")
        ),
    );
    let applied: Value = serde_json::from_str(&applied).expect("last-applied is JSON");
    assert_eq!(applied["data"], json!({"mode": "fast", "obsolete": "yes"}));
    assert_eq!(
        server.jsonpath(
            "configmap",
            "settings",
            &ns,
            "{.metadata.managedFields[*].operation}"
        ),
        "Update"
    );
    server
        .kubectl(&["label", "configmap", "settings", "-n", &ns, "team=shop"])
        .expect("label");

    let second = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "settings"},
                        "data": {"mode": "safe"}});
    let mut update = request("client-side", &ns, vec![second.clone()]);
    update.options = options.clone();
    let (result, _) = sync(&engine, &update).await;
    succeeded(&result);
    let live: Value = serde_json::from_str(
        &server
            .kubectl(&["get", "configmap", "settings", "-n", &ns, "-o", "json"])
            .expect("get"),
    )
    .expect("json");
    assert_eq!(live["data"], json!({"mode": "safe"}), "{live}");
    assert_eq!(live["metadata"]["labels"]["team"], "shop", "{live}");
    let applied: Value = serde_json::from_str(
        live["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
            .as_str()
            .expect("last-applied"),
    )
    .expect("json");
    assert_eq!(applied["data"], json!({"mode": "safe"}));

    // kubectl applies exactly what plumb recorded and finds nothing to change.
    let recorded = live["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
        .as_str()
        .expect("last-applied");
    let output = server
        .kubectl_stdin(&["apply", "-f", "-"], recorded)
        .expect("kubectl apply");
    assert!(output.trim_end().ends_with("unchanged"), "{output}");

    let settings = Settings::default();
    let mut compare = compare_request("client-side", &ns, std::slice::from_ref(&second), &settings);
    compare.options = &options;
    let compared = compare::compare(&engine, compare).await.expect("compare");
    assert_all_synced(&compared);
    server.stop().await;
}

/// Requests a re-compare of `compared`'s live state sends; the app must still be Synced.
async fn recompare_requests(
    engine: &Cluster,
    ns: &str,
    desired: &[Value],
    compared: &compare::Compared,
    settings: &Settings,
) -> u64 {
    let before = engine.request_count();
    let (again, errors) = compare::compare_live(
        engine,
        compare::LiveCompare {
            app: "bounded",
            destination_namespace: ns,
            desired,
            prepared: &compared.prepared,
            live: &compared.live,
            ignore: &compared.ignore,
            settings,
            options: &SyncOptions::default(),
            concurrency: 8,
        },
    )
    .await
    .expect("re-compare");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(again.sync_status(), SyncStatusCode::Synced);
    engine.request_count() - before
}

/// Bounded caches: a cluster whose compare caches hold fewer resources than the app has keeps
/// no more than that, still compares right, and asks the server again for what it forgot;
/// an object the engine deletes is forgotten at once.
#[tokio::test(flavor = "multi_thread")]
async fn embedded_bounded_caches_forget_least_recently_used() {
    let server = Embedded::start().await;
    let ns = server.namespace("bounded");
    let desired: Vec<Value> = (0..12)
        .map(|i| config_map(&format!("cm-{i:02}"), 0, json!({"index": i.to_string()})))
        .collect();
    let (result, _) = sync(
        &server.engine().await,
        &request("bounded", &ns, desired.clone()),
    )
    .await;
    succeeded(&result);
    let settings = Settings::default();

    let capacities = CacheCapacities {
        predictions: 8,
        compare_results: 8,
        ..CacheCapacities::default()
    };
    let small = server.engine().await.with_cache_capacities(capacities);
    let compared = compare::compare(&small, compare_request("bounded", &ns, &desired, &settings))
        .await
        .expect("compare");
    assert_all_synced(&compared);
    assert!(small.compare_results().len() <= 8);
    // Twelve objects through eight places: some were forgotten and are dry-run again.
    let sent = recompare_requests(&small, &ns, &desired, &compared, &settings).await;
    assert!((1..=12).contains(&sent), "{sent} requests");
    assert!(small.compare_results().len() <= 8);

    // With room for the whole app nothing is forgotten, until the engine deletes an object.
    let roomy = server.engine().await;
    let compared = compare::compare(&roomy, compare_request("bounded", &ns, &desired, &settings))
        .await
        .expect("compare");
    assert_eq!(
        recompare_requests(&roomy, &ns, &desired, &compared, &settings).await,
        0
    );
    assert_eq!(roomy.compare_results().len(), desired.len());
    let first = compared
        .prepared
        .objects
        .values()
        .next()
        .expect("an object");
    roomy
        .delete(first, PropagationPolicy::Background)
        .await
        .expect("delete");
    assert_eq!(roomy.compare_results().len(), desired.len() - 1);
    server.stop().await;
}

/// Drift: a change made with kubectl shows as OutOfSync with a diff naming the field, and a
/// sync heals it (plumb's apply takes the field back from kubectl's field manager).
#[tokio::test(flavor = "multi_thread")]
async fn embedded_drift_is_seen_and_healed() {
    let server = Embedded::start().await;
    let ns = server.namespace("drift");
    let engine = server.engine().await;
    let desired = vec![config_map(
        "settings",
        0,
        json!({"mode": "fast", "level": "3"}),
    )];
    let (result, _) = sync(&engine, &request("drift", &ns, desired.clone())).await;
    succeeded(&result);
    let settings = Settings::default();
    let compared = compare::compare(&engine, compare_request("drift", &ns, &desired, &settings))
        .await
        .expect("compare");
    assert_all_synced(&compared);

    server
        .kubectl(&[
            "patch",
            "configmap",
            "settings",
            "-n",
            &ns,
            "--type",
            "merge",
            "-p",
            r#"{"data":{"mode":"slow"}}"#,
        ])
        .expect("patch");
    let compared = compare::compare(&engine, compare_request("drift", &ns, &desired, &settings))
        .await
        .expect("compare");
    assert_eq!(compared.comparison.sync_status(), SyncStatusCode::OutOfSync);
    let diff = &compared.comparison.resources[0].diff;
    assert!(
        diff.lines()
            .any(|l| l.starts_with('-') && l.contains("mode: slow"))
            && diff
                .lines()
                .any(|l| l.starts_with('+') && l.contains("mode: fast")),
        "{diff}"
    );
    assert!(
        !diff
            .lines()
            .any(|l| l.starts_with(['+', '-']) && l.contains("level")),
        "{diff}"
    );

    let (result, _) = sync(&engine, &request("drift", &ns, desired.clone())).await;
    succeeded(&result);
    assert_eq!(
        server.jsonpath("configmap", "settings", &ns, "{.data.mode}"),
        "fast"
    );
    let compared = compare::compare(&engine, compare_request("drift", &ns, &desired, &settings))
        .await
        .expect("compare");
    assert_all_synced(&compared);
    server.stop().await;
}

/// Validation as kube-apiserver does it: an invalid value is refused in the dry-run, before
/// any write; a custom resource whose CRD the same sync creates cannot be dry-run and is
/// judged (strictly) when it is written.
#[tokio::test(flavor = "multi_thread")]
async fn embedded_field_validation_and_objects_the_dry_run_could_not_judge() {
    let server = Embedded::start().await;
    let ns = server.namespace("validation");
    let engine = server.engine().await;
    let fine = config_map("fine", 0, json!({"key": "value"}));

    // (A top-level typo in a built-in kind is refused in `embedded_rejections_…`.)
    // A value the built-in validation refuses (a ConfigMap key with a slash).
    let bad_key = config_map("bad-key", 0, json!({"a/b": "c"}));
    let (result, _) = sync(
        &engine,
        &request("validation", &ns, vec![fine.clone(), bad_key]),
    )
    .await;
    assert_eq!(result.phase, OperationPhase::Failed, "{}", result.message);
    assert_eq!(
        result_status(&result, "ConfigMap", "bad-key"),
        Some(ResultStatus::SyncFailed)
    );
    assert!(
        result.message.contains("dry run") && result.message.contains("a/b"),
        "{}",
        result.message
    );
    assert!(
        !server.exists("configmap", "fine", &ns),
        "nothing may be written"
    );

    // CRD + a custom resource with an undeclared field in one sync: the ConfigMap, judged by
    // its dry-run, is written; the Widget is refused when written. The server's words differ
    // from kube-apiserver's (`.spec.colour: field not declared in schema`, a 500): the
    // embedded server answers an apply patch as a strict create (400, `strict decoding error:
    // unknown field "spec.colour"`), as COMPATIBILITY.md records; either names the field.
    let group = "validation.plumb.test";
    let crd = widget_crd(group, json!({"size": {"type": "integer"}}));
    let widget = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
                        "metadata": {"name": "gadget"}, "spec": {"size": 3, "colour": "red"}});
    let (result, _) = sync(
        &engine,
        &request("validation", &ns, vec![widget, crd, fine]),
    )
    .await;
    let refused = refused_result(&result, "Widget");
    assert!(
        refused.message.contains("unknown field \"spec.colour\"")
            || refused
                .message
                .contains(".spec.colour: field not declared in schema"),
        "{}",
        refused.message
    );
    assert_eq!(
        result_status(&result, "ConfigMap", "fine"),
        Some(ResultStatus::Synced)
    );
    assert!(server.exists("configmap", "fine", &ns));
    assert!(!server.exists(&format!("widgets.{group}"), "gadget", &ns));
    server.stop().await;
}

/// A dry-run operation writes nothing; a destination namespace that does not exist compares
/// as new objects, while a sync fails in its dry-run until `CreateNamespace=true` creates it
/// (with its managed metadata).
#[tokio::test(flavor = "multi_thread")]
async fn embedded_dry_run_missing_namespace_and_create_namespace() {
    let server = Embedded::start().await;
    let engine = server.engine().await;
    let ns = "created-by-sync";
    let desired = vec![config_map("first", 0, json!({"key": "value"}))];
    let settings = Settings::default();

    let compared = compare::compare(&engine, compare_request("created", ns, &desired, &settings))
        .await
        .expect("compare");
    assert!(
        compared.dry_run_errors.is_empty(),
        "{:?}",
        compared.dry_run_errors
    );
    assert_eq!(compared.comparison.sync_status(), SyncStatusCode::OutOfSync);
    assert!(
        compared.comparison.resources[0]
            .diff
            .contains("+kind: ConfigMap"),
        "{}",
        compared.comparison.resources[0].diff
    );

    let (result, _) = sync(&engine, &request("created", ns, desired.clone())).await;
    assert_eq!(result.phase, OperationPhase::Failed, "{}", result.message);
    let not_found = format!("namespaces \"{ns}\" not found");
    assert!(
        result.message.contains("(dry run)") && result.message.contains(&not_found),
        "{}",
        result.message
    );
    assert!(server.kubectl(&["get", "namespace", ns]).is_err());

    let mut dry = request("created", ns, desired.clone());
    dry.options = SyncOptions::parse(&["CreateNamespace=true"]).expect("options");
    dry.dry_run = true;
    let (result, _) = sync(&engine, &dry).await;
    succeeded(&result);
    assert!(result.dry_run);
    assert!(
        result
            .resources
            .iter()
            .all(|r| r.message.ends_with("(dry run)")),
        "{:?}",
        result.resources
    );
    assert!(server.kubectl(&["get", "namespace", ns]).is_err());

    let mut create = request("created", ns, desired);
    create.options = SyncOptions::parse(&["CreateNamespace=true"]).expect("options");
    create.managed_namespace_metadata = Some(plumb_model::ManagedNamespaceMetadata {
        labels: [("team".to_string(), "shop".to_string())].into(),
        annotations: Default::default(),
    });
    let (result, _) = sync(&engine, &create).await;
    succeeded(&result);
    let label = server
        .kubectl(&[
            "get",
            "namespace",
            ns,
            "-o",
            "jsonpath={.metadata.labels.team}",
        ])
        .expect("namespace");
    assert_eq!(label, "shop");
    assert_eq!(
        server.jsonpath("configmap", "first", ns, "{.data.key}"),
        "value"
    );
    server.stop().await;
}

/// `Replace=true` writes with create/update instead of an apply; `Force=true` deletes and
/// recreates an object whose change the server refuses (an immutable ConfigMap).
#[tokio::test(flavor = "multi_thread")]
async fn embedded_replace_and_force() {
    let server = Embedded::start().await;
    let ns = server.namespace("options");
    let engine = server.engine().await;

    let mut replaced = config_map("replaced", 0, json!({"key": "first"}));
    replaced["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] = json!("Replace=true");
    let (result, _) = sync(&engine, &request("options", &ns, vec![replaced.clone()])).await;
    succeeded(&result);
    replaced["data"]["key"] = json!("second");
    let (result, _) = sync(&engine, &request("options", &ns, vec![replaced])).await;
    succeeded(&result);
    assert!(
        result
            .resources
            .iter()
            .any(|r| r.message.ends_with("replaced")),
        "{:?}",
        result.resources
    );
    assert_eq!(
        server.jsonpath("configmap", "replaced", &ns, "{.data.key}"),
        "second"
    );

    let mut frozen = config_map("frozen", 0, json!({"key": "value"}));
    frozen["immutable"] = json!(true);
    let (result, _) = sync(&engine, &request("options", &ns, vec![frozen.clone()])).await;
    succeeded(&result);
    let first_uid = server.jsonpath("configmap", "frozen", &ns, "{.metadata.uid}");
    frozen["data"]["key"] = json!("changed");
    let (result, _) = sync(&engine, &request("options", &ns, vec![frozen.clone()])).await;
    assert_eq!(
        result.phase,
        OperationPhase::Failed,
        "without Force the change is refused"
    );
    assert!(
        result.message.contains("field is immutable"),
        "{}",
        result.message
    );
    frozen["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] = json!("Force=true");
    let (result, _) = sync(&engine, &request("options", &ns, vec![frozen])).await;
    succeeded(&result);
    assert_ne!(
        server.jsonpath("configmap", "frozen", &ns, "{.metadata.uid}"),
        first_uid
    );
    assert_eq!(
        server.jsonpath("configmap", "frozen", &ns, "{.data.key}"),
        "changed"
    );
    server.stop().await;
}

/// A pruned object held by a finalizer is waited for: the operation fails at the wave
/// timeout while it is held, and succeeds once kubectl releases it.
#[tokio::test(flavor = "multi_thread")]
async fn embedded_pruned_objects_are_waited_for_until_deleted() {
    let server = Embedded::start().await;
    let ns = server.namespace("prune-wait");
    let engine = server.engine().await;
    let mut held = config_map("held", 0, json!({"key": "value"}));
    held["metadata"]["finalizers"] = json!(["plumb.test/hold"]);
    let stays = config_map("stays", 0, json!({"key": "value"}));
    let (result, _) = sync(
        &engine,
        &request("prune-wait", &ns, vec![held, stays.clone()]),
    )
    .await;
    succeeded(&result);

    let mut prune = request("prune-wait", &ns, vec![stays.clone()]);
    prune.prune = true;
    prune.wave_timeout = std::time::Duration::from_secs(2);
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
    let deleting = server.jsonpath("configmap", "held", &ns, "{.metadata.deletionTimestamp}");
    assert!(!deleting.is_empty(), "held is being deleted");

    server
        .kubectl(&[
            "patch",
            "configmap",
            "held",
            "-n",
            &ns,
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ])
        .expect("release the finalizer");
    let mut prune = request("prune-wait", &ns, vec![stays]);
    prune.prune = true;
    let (result, _) = sync(&engine, &prune).await;
    succeeded(&result);
    assert!(!server.exists("configmap", "held", &ns));
    server.stop().await;
}

/// Objects the app left in another namespace are found through metadata-only lists of the
/// kinds it no longer declares (the embedded server has no aggregated discovery, so kinds
/// are discovered group by group), read whole, shown as requiring pruning, and pruned.
#[tokio::test(flavor = "multi_thread")]
async fn embedded_objects_left_elsewhere_are_found_read_whole_and_pruned() {
    objects_left_elsewhere_are_found_read_whole_and_pruned(Embedded::start().await).await;
}

/// Objects an app left behind in bulk (here six ConfigMaps in an old namespace) are read
/// by one whole list there, not a request each: the compare costs what it costs with a
/// single object left behind, give or take one request. Every one is read whole and
/// pruned.
#[tokio::test(flavor = "multi_thread")]
async fn embedded_objects_left_in_bulk_are_read_by_one_list() {
    let server = Embedded::start().await;
    let engine = server.engine().await;
    // Requests of the first compare after leaving `left` ConfigMaps in an old namespace.
    let compare_after_leaving = |app: &'static str, left: usize| {
        let ns = server.namespace(app);
        let old = server.namespace(&format!("{app}-old"));
        let engine = &engine;
        let server = &server;
        async move {
            let home = config_map("home", 0, json!({"key": "value"}));
            let mut desired = vec![home.clone()];
            for index in 0..left {
                let mut object = config_map(
                    &format!("left-{index}"),
                    0,
                    json!({"index": index.to_string()}),
                );
                object["metadata"]["namespace"] = json!(old);
                desired.push(object);
            }
            succeeded(&sync(engine, &request(app, &ns, desired)).await.0);
            let kept = [home];
            let before = engine.request_count();
            let compared = compare::compare(
                engine,
                compare_request(app, &ns, &kept, &Settings::default()),
            )
            .await
            .expect("compare");
            let requests = engine.request_count() - before;
            let pruned: Vec<_> = compared
                .comparison
                .resources
                .iter()
                .filter(|r| r.requires_pruning)
                .collect();
            assert_eq!(pruned.len(), left, "{:#?}", compared.comparison.resources);
            for resource in pruned {
                let live = compared.live.get(&resource.key).expect("read");
                assert!(live["data"]["index"].is_string(), "not whole: {live}");
            }
            let mut prune = request(app, &ns, kept.to_vec());
            prune.prune = true;
            succeeded(&sync(engine, &prune).await.0);
            assert!(server.names("configmap", &old).is_empty());
            requests
        }
    };
    let one = compare_after_leaving("bulk-one", 1).await;
    let six = compare_after_leaving("bulk-six", 6).await;
    assert!(
        six <= one + 1,
        "six left behind cost {six} requests, one cost {one}"
    );
    server.stop().await;
}

/// The same on a server without aggregated discovery (as Kubernetes before 1.26): its plain
/// `/api` and `/apis` read as no groups at all to an aggregated client, and the engine must
/// fall back to discovery group by group, or it lists nothing and misses what to prune.
#[tokio::test(flavor = "multi_thread")]
async fn embedded_without_aggregated_discovery_still_finds_what_to_prune() {
    let server = Embedded::start_with(|config| config.aggregated_discovery = false).await;
    objects_left_elsewhere_are_found_read_whole_and_pruned(server).await;
}

async fn objects_left_elsewhere_are_found_read_whole_and_pruned(server: Embedded) {
    let ns = server.namespace("meta-list");
    let elsewhere = server.namespace("meta-list-old");
    let engine = server.engine().await;
    // A Deployment is only written here (a single-step sync does not wait for health).
    let old = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "legacy", "namespace": elsewhere},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "legacy"}},
                 "template": {"metadata": {"labels": {"app": "legacy"}},
                              "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}}}
    });
    let settings_map = config_map("settings", 0, json!({"key": "value"}));
    let (result, _) = sync(
        &engine,
        &request("meta-list", &ns, vec![settings_map.clone(), old]),
    )
    .await;
    succeeded(&result);
    let desired = [settings_map];
    let compared = compare::compare(
        &engine,
        compare_request("meta-list", &ns, &desired, &Settings::default()),
    )
    .await
    .expect("compare");
    assert_left_behind_deployment_read_whole(&compared);

    let mut prune = request("meta-list", &ns, desired.to_vec());
    prune.prune = true;
    let (result, _) = sync(&engine, &prune).await;
    succeeded(&result);
    assert_eq!(
        result_status(&result, "Deployment", "legacy"),
        Some(ResultStatus::Pruned)
    );
    assert!(!server.exists("deployment", "legacy", &elsewhere));
    server.stop().await;
}

/// A PreSync hook the server refuses (hooks are written without a dry-run, as the hooks of
/// gitops-engine) fails the operation: the Sync phase never starts and the SyncFail hooks
/// run, as they do for a PreSync Job that fails
/// (`embedded_failing_presync_job_stops_the_sync_and_runs_syncfail_hooks`).
#[tokio::test(flavor = "multi_thread")]
async fn embedded_refused_presync_hook_fails_the_sync_and_runs_syncfail_hooks() {
    let server = Embedded::start().await;
    let ns = server.namespace("syncfail");
    let engine = server.engine().await;
    let migrate = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "migrate", "annotations": {"argocd.argoproj.io/hook": "PreSync"}},
        "data": {"a/b": "invalid key"}});
    let on_failure = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "failure-report", "annotations": {"argocd.argoproj.io/hook": "SyncFail"}},
        "data": {"ran": "yes"}});
    let desired = vec![
        migrate,
        config_map("never-applied", 0, json!({"key": "value"})),
        on_failure,
    ];
    let (result, events) = sync(&engine, &request("syncfail", &ns, desired)).await;
    assert_eq!(result.phase, OperationPhase::Failed, "{events:#?}");
    assert!(result.message.contains("migrate"), "{}", result.message);
    assert_eq!(
        result_status(&result, "ConfigMap", "migrate"),
        Some(ResultStatus::SyncFailed),
        "{:#?}",
        result.resources
    );
    let migrate = result
        .resources
        .iter()
        .find(|r| r.key.name == "migrate")
        .expect("migrate");
    assert_eq!(migrate.hook_phase, Some(HookPhase::Failed));
    assert!(migrate.message.contains("a/b"), "{}", migrate.message);
    assert!(
        !events.iter().any(|e| e.starts_with("step Sync ")),
        "{events:#?}"
    );
    assert_eq!(
        result_status(&result, "ConfigMap", "failure-report"),
        Some(ResultStatus::Synced)
    );
    assert_eq!(
        server.names("configmaps", &ns),
        ["failure-report"],
        "{events:#?}"
    );
    server.stop().await;
}

// The real cluster's workload scenarios (`cluster::…_on`), on the workload simulation:
// the same Deployments and Jobs, failing by the same labels.

#[tokio::test(flavor = "multi_thread")]
async fn embedded_waves_wait_for_health_and_resync_is_clean() {
    let server = Embedded::start().await;
    cluster::waves_wait_for_health_and_resync_is_clean_on(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_hooks_follow_their_delete_policies() {
    let server = Embedded::start().await;
    cluster::hooks_follow_their_delete_policies_on(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_failing_presync_job_stops_the_sync_and_runs_syncfail_hooks() {
    let server = Embedded::start().await;
    cluster::failing_presync_job_stops_the_sync_and_runs_syncfail_hooks_on(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_image_pull_failure_is_degraded_and_stops_later_waves() {
    let server = Embedded::start().await;
    cluster::image_pull_failure_is_degraded_and_stops_later_waves_on(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_prune_honours_each_propagation_policy() {
    let server = Embedded::start().await;
    cluster::prune_honours_each_propagation_policy_on(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_terminate_stops_a_waiting_operation() {
    let server = Embedded::start().await;
    cluster::terminate_stops_a_waiting_operation_on(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_post_delete_hooks_run_only_on_app_deletion() {
    let server = Embedded::start().await;
    cluster::post_delete_hooks_run_only_on_app_deletion_on(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_argo_crds_accept_seeds_and_documented_examples() {
    let server = Embedded::start().await;
    crate::argo_crds::argo_crds_accept_seeds_and_documented_examples_on(
        &server,
        &std::sync::Mutex::new(()),
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_argo_crds_refuse_wrong_types() {
    let server = Embedded::start().await;
    crate::argo_crds::argo_crds_refuse_wrong_types_on(&server, &std::sync::Mutex::new(())).await;
    server.stop().await;
}
