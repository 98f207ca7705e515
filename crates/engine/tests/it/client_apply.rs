//! End-to-end: `ServerSideApply=false` (kubectl-style client-side apply) and `Validate=false`
//! on the real test cluster, with kubectl as the independent judge.

use crate::cluster::{cluster, engine, kubectl, request, succeeded, sync, widget_crd};
use plumb_engine::client_apply::LAST_APPLIED_ANNOTATION;
use plumb_engine::cluster::Cluster;
use plumb_engine::compare;
use plumb_engine::settings::Settings;
use plumb_engine::sync::SyncOptions;
use plumb_engine::sync::operation::{OperationPhase, OperationResult, ResultStatus};
use plumb_model::SyncStatusCode;
use serde_json::{Value, json};

fn client_side() -> SyncOptions {
    SyncOptions::parse(&["ServerSideApply=false"]).expect("options")
}

/// The Widget CRD of these tests: a spec with fields plumb applies and others set.
fn widget_crd_with_colours(group: &str) -> Value {
    widget_crd(
        group,
        json!({"size": {"type": "integer"}, "colour": {"type": "string"},
               "owner": {"type": "string"},
               "tags": {"type": "array", "items": {"type": "string"}}}),
    )
}

/// Installs the Widget CRD in a group named after the test's namespace (so tests do not
/// share it) and returns the group.
fn install_widget_crd(ns: &str) -> String {
    let group = format!("{}.plumb.test", ns.replace('-', ""));
    install_crd(&widget_crd_with_colours(&group));
    group
}

/// Installs a CRD with kubectl (not part of the app) and waits until it is served.
fn install_crd(crd: &Value) {
    cluster()
        .kubectl_stdin(&["apply", "-f", "-"], &crd.to_string())
        .expect("crd");
    kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        &format!("crd/{}", crd["metadata"]["name"].as_str().expect("name")),
    ])
    .expect("established");
}

fn live(resource: &str, name: &str, ns: &str) -> Value {
    let text = kubectl(&["get", resource, name, "-n", ns, "-o", "json"]).expect("get");
    serde_json::from_str(&text).expect("json")
}

fn last_applied(object: &Value) -> String {
    object["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
        .as_str()
        .unwrap_or_else(|| panic!("no last-applied annotation: {object}"))
        .to_string()
}

/// kubectl (client-side) applies exactly what plumb recorded as applied and changes nothing:
/// the annotation stays byte for byte as plumb wrote it (it is the one kubectl computes for
/// the same object), the resourceVersion stays (the server wrote nothing), and `kubectl
/// diff` finds no difference.
fn kubectl_agrees(resource: &str, name: &str, ns: &str, others_added_entries: bool) {
    let before = live(resource, name, ns);
    let applied = last_applied(&before);
    let output = cluster()
        .kubectl_stdin(&["apply", "-f", "-"], &applied)
        .unwrap_or_else(|e| panic!("kubectl apply of {resource}/{name}: {e}"));
    // "configured" happens when kubectl's patch holds only `$setElementOrder` directives
    // (a list where others added entries): the server then writes nothing, which the
    // resourceVersion check below shows.
    let output = output.trim_end();
    assert!(
        output.ends_with("unchanged") || (others_added_entries && output.ends_with("configured")),
        "{resource}/{name}: {output}"
    );
    let diff = cluster().kubectl_stdin(&["diff", "-f", "-"], &applied);
    assert!(diff.is_ok(), "kubectl diff {resource}/{name}: {diff:?}");
    let after = live(resource, name, ns);
    assert_eq!(last_applied(&after), applied);
    assert_eq!(
        before["metadata"]["resourceVersion"], after["metadata"]["resourceVersion"],
        "{resource}/{name} was written by kubectl"
    );
}

async fn compare_statuses(
    engine: &Cluster,
    app: &str,
    ns: &str,
    desired: &[Value],
    options: &SyncOptions,
) -> Vec<(String, SyncStatusCode, String)> {
    let settings = Settings::default();
    let compared = compare::compare(
        engine,
        compare::CompareRequest {
            app,
            destination_namespace: ns,
            desired,
            settings: &settings,
            app_ignore: &[],
            options,
            concurrency: 4,
            live_reader: None,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("compare: {e}"));
    assert!(
        compared.dry_run_errors.is_empty(),
        "{:?}",
        compared.dry_run_errors
    );
    compared
        .comparison
        .resources
        .iter()
        .map(|r| (r.key.kind.clone(), r.status, r.diff.clone()))
        .collect()
}

/// Asserts that every resource's result message ends with `suffix` (what was done to it).
fn all_messages_end_with(result: &OperationResult, suffix: &str) {
    assert!(
        result.resources.iter().all(|r| r.message.ends_with(suffix)),
        "{suffix}: {:#?}",
        result.resources
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_side_apply_is_what_kubectl_would_do() {
    let ns = cluster().namespace("csa").expect("namespace");
    let engine = engine().await;
    let group = install_widget_crd(&ns);
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "labels": {"tier": "web"}},
        "data": {"kept": "1", "dropped": "2", "escaped": "<a & b>"}});
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "example.invalid/web:1",
                                  "ports": [{"containerPort": 8080}],
                                  "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}}}});
    let widget = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": "gadget"}, "spec": {"size": 3, "colour": "red", "tags": ["a", "b"]}});
    let mut sync_request = request(
        "csa",
        &ns,
        vec![config.clone(), deployment.clone(), widget.clone()],
    );
    sync_request.options = client_side();
    let (result, _) = sync(&engine, &sync_request).await;
    succeeded(&result);
    all_messages_end_with(&result, "created");
    let created = live("configmap", "settings", &ns);
    assert!(
        created["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|m| m["operation"] != "Apply"),
        "client-side apply must not be a server-side apply: {created}"
    );
    for (resource, name) in [
        ("configmap", "settings"),
        ("deployment", "web"),
        (&format!("widgets.{group}") as &str, "gadget"),
    ] {
        kubectl_agrees(resource, name, &ns, false);
    }

    // Others set fields plumb never applied.
    kubectl(&["label", "configmap", "settings", "-n", &ns, "other=kept"]).expect("label");
    kubectl(&[
        "patch",
        "configmap",
        "settings",
        "-n",
        &ns,
        "--type",
        "merge",
        "-p",
        r#"{"data":{"extra":"kept"}}"#,
    ])
    .expect("patch");
    kubectl(&["set", "env", "deployment/web", "-n", &ns, "C=kept"]).expect("set env");
    kubectl(&[
        "patch",
        &format!("widgets.{group}"),
        "gadget",
        "-n",
        &ns,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"owner":"kept"}}"#,
    ])
    .expect("patch widget");

    // An unchanged app compares Synced (others' fields do not count) and re-syncs without
    // writing.
    let desired = vec![config.clone(), deployment.clone(), widget.clone()];
    for (kind, status, diff) in
        compare_statuses(&engine, "csa", &ns, &desired, &client_side()).await
    {
        assert_eq!(status, SyncStatusCode::Synced, "{kind}: {diff}");
    }
    let (again, _) = sync(&engine, &sync_request).await;
    succeeded(&again);
    all_messages_end_with(&again, "unchanged");

    // Fields removed from Git: compare shows them going, the sync removes them, others'
    // fields stay.
    let mut config2 = config.clone();
    config2["data"]
        .as_object_mut()
        .expect("data")
        .remove("dropped");
    let mut deployment2 = deployment.clone();
    deployment2["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "A", "value": "1"}]);
    let mut widget2 = widget.clone();
    widget2["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("colour");
    widget2["spec"]["tags"] = json!(["b"]);
    let desired2 = vec![config2, deployment2, widget2];
    let statuses = compare_statuses(&engine, "csa", &ns, &desired2, &client_side()).await;
    for (kind, status, diff) in &statuses {
        assert_eq!(*status, SyncStatusCode::OutOfSync, "{kind}");
        assert!(diff.contains("\n-"), "{kind}: {diff}");
    }
    let mut sync_request2 = request("csa", &ns, desired2.clone());
    sync_request2.options = client_side();
    let (removed, _) = sync(&engine, &sync_request2).await;
    succeeded(&removed);
    assert!(
        removed
            .resources
            .iter()
            .all(|r| r.status == ResultStatus::Synced && r.message.ends_with("configured")),
        "{:#?}",
        removed.resources
    );
    let config_live = live("configmap", "settings", &ns);
    assert_eq!(
        config_live["data"],
        json!({"kept": "1", "escaped": "<a & b>", "extra": "kept"})
    );
    assert_eq!(config_live["metadata"]["labels"]["other"], "kept");
    let env = &live("deployment", "web", &ns)["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(
        env,
        &json!([{"name": "A", "value": "1"}, {"name": "C", "value": "kept"}])
    );
    let widget_live = live(&format!("widgets.{group}"), "gadget", &ns);
    assert_eq!(
        widget_live["spec"],
        json!({"size": 3, "tags": ["b"], "owner": "kept"})
    );
    for (resource, name) in [
        ("configmap", "settings"),
        ("deployment", "web"),
        (&format!("widgets.{group}") as &str, "gadget"),
    ] {
        kubectl_agrees(resource, name, &ns, true);
    }
    for (kind, status, diff) in
        compare_statuses(&engine, "csa", &ns, &desired2, &client_side()).await
    {
        assert_eq!(status, SyncStatusCode::Synced, "{kind}: {diff}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_false_ignores_unknown_fields_and_the_default_is_strict() {
    let ns = cluster().namespace("validate").expect("namespace");
    let engine = engine().await;
    let group = install_widget_crd(&ns);
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "loose"}, "bogus": "field", "data": {"a": "1"}});
    let widget = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": "loose"}, "spec": {"size": 1, "bogus": 2}});
    let unknown_field = |result: &OperationResult, kind: &str, needle: &str| {
        let resource = result
            .resources
            .iter()
            .find(|r| r.key.kind == kind)
            .unwrap_or_else(|| panic!("no result for {kind}: {result:#?}"));
        assert_eq!(resource.status, ResultStatus::SyncFailed);
        assert!(
            resource.message.contains(needle),
            "{kind}: {}",
            resource.message
        );
    };

    for server_side in [true, false] {
        // The default is strict, as kubectl's: each object is refused with the server's
        // message, before anything is written.
        let mut strict = request("validate", &ns, vec![config.clone(), widget.clone()]);
        strict.options.server_side_apply = server_side;
        let (refused, _) = sync(&engine, &strict).await;
        assert_eq!(refused.phase, OperationPhase::Failed, "{}", refused.message);
        assert!(refused.message.contains("dry run"), "{}", refused.message);
        // (New objects are dry-run as creates, which word it this way.)
        unknown_field(&refused, "ConfigMap", "unknown field \"bogus\"");
        unknown_field(&refused, "Widget", "unknown field \"spec.bogus\"");
        assert!(kubectl(&["get", "configmap", "loose", "-n", &ns]).is_err());
    }

    // Validate=false with client-side apply: fieldValidation=Ignore, the fields are dropped
    // (kubectl apply --validate=false does the same).
    let mut loose = request("validate", &ns, vec![config.clone(), widget.clone()]);
    loose.options = SyncOptions::parse(&["ServerSideApply=false", "Validate=false"]).expect("o");
    let (accepted, _) = sync(&engine, &loose).await;
    succeeded(&accepted);
    let config_live = live("configmap", "loose", &ns);
    assert!(config_live.get("bogus").is_none(), "{config_live}");
    assert_eq!(config_live["data"], json!({"a": "1"}));
    let widget_live = live(&format!("widgets.{group}"), "loose", &ns);
    assert_eq!(widget_live["spec"], json!({"size": 1}));
    // A resync compares Synced (the dropped fields are not a difference the server keeps
    // showing) and succeeds.
    for (kind, status, diff) in
        compare_statuses(&engine, "validate", &ns, &loose.desired, &loose.options).await
    {
        assert_eq!(status, SyncStatusCode::Synced, "{kind}: {diff}");
    }

    // Validate=false with server-side apply sends fieldValidation=Ignore too, but
    // kube-apiserver refuses fields a schema does not declare in an apply patch whatever
    // the validation level — kubectl apply --server-side --validate=false fails the same way.
    let mut ssa = request("validate", &ns, vec![config.clone()]);
    ssa.options = SyncOptions::parse(&["Validate=false"]).expect("o");
    let (refused, _) = sync(&engine, &ssa).await;
    assert_eq!(refused.phase, OperationPhase::Failed, "{}", refused.message);
    unknown_field(
        &refused,
        "ConfigMap",
        ".bogus: field not declared in schema",
    );
    let mut manifest = config.clone();
    manifest["metadata"]["namespace"] = json!(ns);
    let by_kubectl = cluster().kubectl_stdin(
        &["apply", "--server-side", "--validate=false", "-f", "-"],
        &manifest.to_string(),
    );
    let error = by_kubectl.expect_err("kubectl refuses it too").to_string();
    assert!(
        error.contains(".bogus: field not declared in schema"),
        "{error}"
    );
    // Nothing was written on the way.
    assert_eq!(
        live("configmap", "loose", &ns)["metadata"]["resourceVersion"],
        config_live["metadata"]["resourceVersion"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_side_hooks_are_written_client_side_too() {
    let ns = cluster().namespace("csa-hooks").expect("namespace");
    let engine = engine().await;
    let main = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "main"}, "data": {"a": "1"}});
    let hook = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "after", "annotations": {"argocd.argoproj.io/hook": "PostSync"}},
        "data": {"b": "2"}});
    let mut sync_request = request("csa-hooks", &ns, vec![main, hook]);
    sync_request.options = client_side();
    for round in 0..2 {
        let (result, _) = sync(&engine, &sync_request).await;
        succeeded(&result);
        let after = live("configmap", "after", &ns);
        assert!(
            last_applied(&after).contains("\"b\":\"2\""),
            "round {round}: {after}"
        );
        assert!(
            after["metadata"]["managedFields"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|m| m["operation"] != "Apply"),
            "round {round}: {after}"
        );
    }
}
