//! CustomResourceDefinitions: Argo CD's Application/AppProject install and serve; a CRD
//! serves its kind within a second with Established set; deleting it stops serving and
//! removes its objects.

use std::time::Duration;

use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::json;

use crate::support::{TestServer, fixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_cd_crds_install_and_serve() {
    let s = TestServer::start().await;
    let crds = fixture("argocd-crds.yaml");
    let out = s
        .ok(&[
            "apply",
            "--server-side",
            "-f",
            crds.to_str().expect("utf-8"),
        ])
        .await;
    assert!(out.contains("customresourcedefinition.apiextensions.k8s.io/applications.argoproj.io serverside-applied"), "{out}");
    s.ok(&[
        "wait",
        "--for",
        "condition=Established",
        "crd/applications.argoproj.io",
        "crd/appprojects.argoproj.io",
        "--timeout=5s",
    ])
    .await;
    let objects = fixture("argocd-objects.yaml");
    let out = s
        .ok(&[
            "apply",
            "--server-side",
            "-f",
            objects.to_str().expect("utf-8"),
        ])
        .await;
    assert!(
        out.contains("application.argoproj.io/guestbook serverside-applied"),
        "{out}"
    );
    assert!(
        out.contains("appproject.argoproj.io/default serverside-applied"),
        "{out}"
    );

    // Short names, printer columns, yaml.
    let table = s.ok(&["get", "apps", "-n", "argocd"]).await;
    assert!(
        table.contains("SYNC STATUS")
            && table.contains("HEALTH STATUS")
            && table.contains("guestbook"),
        "{table}"
    );
    assert!(
        !table.contains("REVISION"),
        "priority columns only with -o wide: {table}"
    );
    let projects = s
        .ok(&["get", "appproj", "-n", "argocd", "-o", "name"])
        .await;
    assert_eq!(projects.trim(), "appproject.argoproj.io/default");
    let repo = s
        .ok(&[
            "get",
            "application",
            "guestbook",
            "-n",
            "argocd",
            "-o",
            "jsonpath={.spec.source.repoURL}",
        ])
        .await;
    assert_eq!(repo, "https://example.com/argoproj/argocd-example-apps.git");
    let resources = s.ok(&["api-resources", "--api-group", "argoproj.io"]).await;
    assert!(
        resources.contains("applications")
            && resources.contains("app,apps")
            && resources.contains("appproj,appprojs"),
        "{resources}"
    );

    // Argo CD writes Application status through the main resource (no status subresource).
    s.ok(&[
        "patch",
        "app",
        "guestbook",
        "-n",
        "argocd",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"sync":{"status":"Synced"},"health":{"status":"Healthy"}}}"#,
    ])
    .await;
    let table = s.ok(&["get", "apps", "-n", "argocd"]).await;
    assert!(
        table.contains("Synced") && table.contains("Healthy"),
        "{table}"
    );
    let explain = s.ok(&["explain", "applications"]).await;
    assert!(
        explain.contains("Application is a definition of Application resource"),
        "{explain}"
    );
}

fn widget_crd(scope: &str, status: bool) -> serde_json::Value {
    let mut version = json!({"name": "v1", "served": true, "storage": true,
        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}});
    if status {
        version["subresources"] = json!({"status": {}});
    }
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": scope, "names": {"kind": "Widget", "plural": "widgets"}, "versions": [version]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_lifecycle_serve_status_delete() {
    let s = TestServer::start().await;
    let client = s.client().await;
    let crd_api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource {
            group: "apiextensions.k8s.io".into(),
            version: "v1".into(),
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            plural: "customresourcedefinitions".into(),
        },
    );
    let crd: DynamicObject = serde_json::from_value(widget_crd("Namespaced", true)).expect("crd");
    let crd = crd_api
        .create(&PostParams::default(), &crd)
        .await
        .expect("create crd");
    let conditions = crd.data["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True"),
        "{conditions:?}"
    );

    let widget = ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &widget);
    let w: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 1}, "status": {"ok": true}})).expect("widget");
    // Served at once: the create right after the CRD's succeeds, no waiting.
    let created = widgets
        .create(&PostParams::default(), &w)
        .await
        .expect("served");
    assert_eq!(created.metadata.generation, Some(1));
    assert!(
        created.data.get("status").is_none(),
        "status subresource: create drops status"
    );
    let table = s.ok(&["get", "widgets"]).await;
    assert!(table.contains("w1"), "{table}");

    // Deleting the CRD removes its objects and stops serving.
    s.ok(&["delete", "crd", "widgets.example.com"]).await;
    for _ in 0..50 {
        let (code, _) = s
            .get("/apis/example.com/v1/namespaces/default/widgets")
            .await;
        if code == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, _) = s
        .get("/apis/example.com/v1/namespaces/default/widgets")
        .await;
    assert_eq!(code, 404, "no longer served");
    // kubectl's discovery cache still knows the kind: the list itself is refused.
    let err = s.fails(&["get", "widgets"]).await;
    assert!(
        err.contains("the server could not find the requested resource"),
        "{err}"
    );

    // Recreated as cluster-scoped: the old objects are gone for good.
    let crd: DynamicObject = serde_json::from_value(widget_crd("Cluster", false)).expect("crd");
    crd_api
        .create(&PostParams::default(), &crd)
        .await
        .expect("recreate");
    let cluster_widgets: Api<DynamicObject> = Api::all_with(client.clone(), &widget);
    assert!(
        cluster_widgets
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
    let w: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "c1"}, "status": {"kept": true}})).expect("widget");
    let c = cluster_widgets
        .create(&PostParams::default(), &w)
        .await
        .expect("cluster-scoped create");
    assert_eq!(
        c.data["status"]["kept"], true,
        "no status subresource: status is part of the object"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_crds_are_rejected() {
    let s = TestServer::start().await;
    let mut crd = widget_crd("Galaxy", false);
    crd["metadata"]["name"] = json!("wrong.name");
    let out = crate::support::kubectl_with(
        &s.kubeconfig,
        &["create", "-f", "-"],
        Some(&crd.to_string()),
    )
    .await;
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stderr.contains("spec.scope") && out.stderr.contains("metadata.name"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_are_pruned_to_their_schema() {
    let s = TestServer::start().await;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Gadget", "plural": "gadgets"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                               "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}});
    let gadgets = install_example_crd(&s, &crd, "Gadget", "gadgets").await;
    // Without fieldValidation (kube-rs): undeclared fields are dropped.
    let g: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"},
        "spec": {"size": 2, "colour": "red"}, "status": {"anything": true}, "extra": 1}),
    )
    .expect("gadget");
    let created = gadgets
        .create(&PostParams::default(), &g)
        .await
        .expect("create");
    assert_eq!(created.data["spec"], json!({"size": 2}));
    assert_eq!(created.data["status"], json!({"anything": true}));
    assert!(created.data.get("extra").is_none());
    // kubectl asks for strict validation: refused, naming the fields.
    let manifest = "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g2\nspec:\n  size: 1\n  colour: blue\n";
    let out =
        crate::support::kubectl_with(&s.kubeconfig, &["create", "-f", "-"], Some(manifest)).await;
    assert!(
        !out.ok
            && out
                .stderr
                .contains("strict decoding error: unknown field \"spec.colour\""),
        "{}",
        out.stderr
    );
    assert!(gadgets.get_opt("g2").await.expect("get").is_none());
}

#[tokio::test]
async fn custom_resources_are_validated_against_their_schema() {
    let s = TestServer::start().await;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "dials.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Dial", "plural": "dials"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "required": ["size"], "properties": {
                    "size": {"type": "integer", "minimum": 1},
                    "mode": {"type": "string", "enum": ["fast", "slow"]},
                    "flag": {"type": "boolean"}}}}}}}]}});
    let dials = install_example_crd(&s, &crd, "Dial", "dials").await;

    // A value below the minimum: refused with kube-apiserver's message, nothing stored.
    let bad = "apiVersion: example.com/v1\nkind: Dial\nmetadata:\n  name: bad\nspec:\n  size: 0\n";
    let out = crate::support::kubectl_with(&s.kubeconfig, &["apply", "-f", "-"], Some(bad)).await;
    assert!(
        !out.ok
            && out.stderr.contains(
                "The Dial \"bad\" is invalid: spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"
            ),
        "{}",
        out.stderr
    );
    assert!(dials.get_opt("bad").await.expect("get").is_none());
    let bad: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1",
        "kind": "Dial", "metadata": {"name": "bad"}, "spec": {"size": 0}}))
    .expect("dial");
    match dials.create(&PostParams::default(), &bad).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
            assert_eq!(
                status.message,
                "Dial.example.com \"bad\" is invalid: spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"
            );
        }
        other => panic!("expected a 422, got {other:?}"),
    }
    assert!(dials.get_opt("bad").await.expect("get").is_none());

    // Two problems at once: both named, in one 422.
    let worse =
        "apiVersion: example.com/v1\nkind: Dial\nmetadata:\n  name: worse\nspec:\n  mode: medium\n";
    let out =
        crate::support::kubectl_with(&s.kubeconfig, &["create", "-f", "-"], Some(worse)).await;
    assert!(
        !out.ok
            && out.stderr.contains("spec.size: Required value")
            && out.stderr.contains(
                "spec.mode: Unsupported value: \"medium\": supported values: \"fast\", \"slow\""
            ),
        "{}",
        out.stderr
    );
    assert!(dials.get_opt("worse").await.expect("get").is_none());

    // A good one is stored, its undeclared fields and disallowed nulls dropped.
    let good: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1",
        "kind": "Dial", "metadata": {"name": "good"},
        "spec": {"size": 3, "mode": "fast", "flag": null, "colour": "red"}}))
    .expect("dial");
    dials
        .create(&PostParams::default(), &good)
        .await
        .expect("create");
    let stored = s
        .ok(&["get", "dial.example.com", "good", "-o", "json"])
        .await;
    let stored: serde_json::Value = serde_json::from_str(&stored).expect("json");
    assert_eq!(stored["spec"], json!({"size": 3, "mode": "fast"}));

    // Patches and dry-runs are validated too; the stored object is untouched.
    let out = crate::support::kubectl_with(
        &s.kubeconfig,
        &[
            "patch",
            "dial.example.com",
            "good",
            "--type=merge",
            "-p",
            r#"{"spec":{"size":-1}}"#,
        ],
        None,
    )
    .await;
    assert!(
        !out.ok
            && out
                .stderr
                .contains("spec.size in body should be greater than or equal to 1"),
        "{}",
        out.stderr
    );
    let dry = "apiVersion: example.com/v1\nkind: Dial\nmetadata:\n  name: good\nspec:\n  size: 0\n";
    let out = crate::support::kubectl_with(
        &s.kubeconfig,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "-f",
            "-",
        ],
        Some(dry),
    )
    .await;
    assert!(
        !out.ok && out.stderr.contains("is invalid"),
        "{}",
        out.stderr
    );
    // A replace without a resourceVersion is refused for custom resources, as kube-apiserver
    // refuses it (named by resource).
    let unconditional: DynamicObject =
        serde_json::from_value(json!({"apiVersion": "example.com/v1",
        "kind": "Dial", "metadata": {"name": "good"}, "spec": {"size": 5}}))
        .expect("dial");
    match dials
        .replace("good", &PostParams::default(), &unconditional)
        .await
    {
        Err(kube::Error::Api(status)) => assert_eq!(
            status.message,
            "dials.example.com \"good\" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update"
        ),
        other => panic!("expected a 422, got {other:?}"),
    }
    let after = s
        .ok(&[
            "get",
            "dial.example.com",
            "good",
            "-o",
            "jsonpath={.spec.size}",
        ])
        .await;
    assert_eq!(after.trim(), "3");
}

/// Creates an `example.com/v1` CRD with kubectl, waits until it is Established and returns
/// the API of its objects in namespace `default`.
async fn install_example_crd(
    s: &TestServer,
    crd: &serde_json::Value,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    crate::support::kubectl_with(
        &s.kubeconfig,
        &["create", "-f", "-"],
        Some(&crd.to_string()),
    )
    .await;
    s.ok(&[
        "wait",
        "--for",
        "condition=Established",
        &format!("crd/{plural}.example.com"),
        "--timeout=5s",
    ])
    .await;
    let resource = ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    Api::namespaced_with(s.client().await, "default", &resource)
}
