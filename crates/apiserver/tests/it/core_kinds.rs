//! The core kinds served as stored objects: Nodes, PodTemplates, ReplicationControllers
//! (with their status and scale subresources), with Kubernetes' defaults.

use serde_json::Value;

use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_controllers_default_from_their_template_and_scale() {
    let s = TestServer::start().await;
    let created = s
        .ok_stdin(
            &["create", "-o", "json", "-f", "-"],
            r#"{"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "web"},
                "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                  "spec": {"containers": [{"name": "c", "image": "web:1"}]}}}}"#,
        )
        .await;
    let rc: Value = serde_json::from_str(&created).expect("JSON");
    assert_eq!(rc.pointer("/spec/replicas"), Some(&serde_json::json!(1)));
    assert_eq!(
        rc.pointer("/spec/selector/app").and_then(Value::as_str),
        Some("web")
    );
    assert_eq!(
        rc.pointer("/metadata/labels/app").and_then(Value::as_str),
        Some("web")
    );
    assert_eq!(rc.pointer("/status/replicas"), Some(&serde_json::json!(0)));
    assert_eq!(
        rc.pointer("/spec/template/spec/restartPolicy")
            .and_then(Value::as_str),
        Some("Always")
    );

    s.ok(&["scale", "rc", "web", "--replicas=3"]).await;
    let (status, scale) = s
        .get("/api/v1/namespaces/default/replicationcontrollers/web/scale")
        .await;
    assert_eq!(status, 200, "{scale}");
    assert_eq!(scale.pointer("/spec/replicas"), Some(&serde_json::json!(3)));
    assert_eq!(
        scale.pointer("/status/selector").and_then(Value::as_str),
        Some("app=web")
    );
    let table = s.ok(&["get", "rc", "web"]).await;
    assert!(
        table.contains("DESIRED") && table.contains("web    3         0         0"),
        "{table}"
    );
    // Listed in the `all` category, as kube-apiserver lists it.
    let all = s.ok(&["get", "all", "-o", "name"]).await;
    assert!(all.contains("replicationcontroller/web"), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_keep_their_status_and_are_tainted_not_ready() {
    let s = TestServer::start().await;
    let created = s
        .ok_stdin(
            &["create", "-o", "json", "-f", "-"],
            r#"{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                "status": {"capacity": {"cpu": "2"}}}"#,
        )
        .await;
    let node: Value = serde_json::from_str(&created).expect("JSON");
    assert_eq!(
        node.pointer("/status/capacity/cpu").and_then(Value::as_str),
        Some("2")
    );
    assert_eq!(
        node.pointer("/status/daemonEndpoints/kubeletEndpoint/Port"),
        Some(&serde_json::json!(0))
    );
    assert_eq!(
        node.pointer("/spec/taints/0/key").and_then(Value::as_str),
        Some("node.kubernetes.io/not-ready")
    );
    let names = s.ok(&["get", "no", "-o", "name"]).await;
    assert_eq!(names.trim(), "node/n1");
    // Namespaces are the one kind kube-apiserver does not delete as a collection.
    let (status, body) = s
        .raw("DELETE", "/api/v1/namespaces", "application/json", vec![])
        .await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(s.get("/api/v1/namespaces/default").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_templates_get_pod_defaults_and_a_generation() {
    let s = TestServer::start().await;
    let created = s
        .ok_stdin(
            &["apply", "-o", "json", "-f", "-"],
            r#"{"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
                "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}"#,
        )
        .await;
    let template: Value = serde_json::from_str(&created).expect("JSON");
    assert_eq!(
        template.pointer("/metadata/generation"),
        Some(&serde_json::json!(1))
    );
    assert_eq!(
        template
            .pointer("/template/spec/containers/0/imagePullPolicy")
            .and_then(Value::as_str),
        Some("Always")
    );
    s.ok(&["delete", "podtemplate", "t"]).await;
}
