//! Workloads on the fake nodes: rollouts, Jobs, injected failures, GC and namespace deletion.

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use plumb_testcluster::{FAILURE_LABEL, Failure};

use crate::{apply, cluster, kubectl, wait_for_output};

fn deployment(name: &str, replicas: u32, extra_labels: &str, progress_deadline: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  progressDeadlineSeconds: {progress_deadline}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
{extra_labels}
    spec:
      containers:
      - name: main
        image: registry.example/{name}:1.0
"#
    )
}

fn job(name: &str, extra_labels: &str) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
  backoffLimit: 0
  template:
    metadata:
      labels:
        app: {name}
{extra_labels}
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: registry.example/{name}:1.0
"#
    )
}

fn failure_label(failure: Failure) -> String {
    format!("        {FAILURE_LABEL}: {}", failure.label_value())
}

#[test]
fn fake_node_is_ready_via_kubectl() {
    let cluster = cluster();
    let node = &cluster.nodes()[0];
    let ready = kubectl(
        cluster,
        &[
            "get",
            "node",
            node,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
    );
    assert_eq!(ready, "True");
    let listed = kubectl(cluster, &["get", "nodes", "--no-headers"]);
    assert!(
        listed.contains(node) && listed.contains(" Ready "),
        "kubectl get nodes: {listed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_client_sees_the_fake_node() {
    let cluster = cluster();
    let client = cluster.client().await.expect("client");
    let nodes: Api<Node> = Api::all(client);
    let node = nodes.get(&cluster.nodes()[0]).await.expect("get node");
    let allocatable = node
        .status
        .and_then(|s| s.allocatable)
        .expect("allocatable");
    assert_eq!(allocatable.get("pods").map(|q| q.0.as_str()), Some("110"));
}

#[test]
fn deployment_becomes_available_with_running_pods_on_the_fake_node() {
    let cluster = cluster();
    let ns = cluster.namespace("deploy").expect("namespace");
    apply(cluster, &ns, &deployment("web", 2, "", 600));
    kubectl(
        cluster,
        &[
            "wait",
            "-n",
            &ns,
            "--for=condition=Available",
            "deployment/web",
            "--timeout=180s",
        ],
    );
    kubectl(
        cluster,
        &[
            "rollout",
            "status",
            "-n",
            &ns,
            "deployment/web",
            "--timeout=180s",
        ],
    );
    let pods = kubectl(
        cluster,
        &[
            "get",
            "pods",
            "-n",
            &ns,
            "-l",
            "app=web",
            "-o",
            "jsonpath={range .items[*]}{.status.phase} {.spec.nodeName} {.status.containerStatuses[0].ready}{\"\\n\"}{end}",
        ],
    );
    let lines: Vec<&str> = pods.lines().collect();
    assert_eq!(lines.len(), 2, "pods: {pods}");
    for line in lines {
        assert_eq!(line, format!("Running {} true", cluster.nodes()[0]));
    }
}

#[test]
fn job_completes() {
    let cluster = cluster();
    let ns = cluster.namespace("job").expect("namespace");
    apply(cluster, &ns, &job("once", ""));
    kubectl(
        cluster,
        &[
            "wait",
            "-n",
            &ns,
            "--for=condition=Complete",
            "job/once",
            "--timeout=180s",
        ],
    );
    let succeeded = kubectl(
        cluster,
        &[
            "get",
            "job",
            "once",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.succeeded}",
        ],
    );
    assert_eq!(succeeded, "1");
    let phase = kubectl(
        cluster,
        &[
            "get",
            "pods",
            "-n",
            &ns,
            "-l",
            "app=once",
            "-o",
            "jsonpath={.items[0].status.phase}",
        ],
    );
    assert_eq!(phase, "Succeeded");
}

#[test]
fn image_pull_failure_makes_a_deployment_exceed_its_progress_deadline() {
    let cluster = cluster();
    let ns = cluster.namespace("pull-failure").expect("namespace");
    apply(
        cluster,
        &ns,
        &deployment("broken", 1, &failure_label(Failure::ImagePull), 5),
    );
    kubectl(
        cluster,
        &[
            "wait",
            "-n",
            &ns,
            "--for=jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}=ProgressDeadlineExceeded",
            "deployment/broken",
            "--timeout=180s",
        ],
    );
    let progressing = kubectl(
        cluster,
        &[
            "get",
            "deployment",
            "broken",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Progressing\")].status}",
        ],
    );
    assert_eq!(progressing, "False");
    let waiting = kubectl(
        cluster,
        &[
            "get",
            "pods",
            "-n",
            &ns,
            "-l",
            "app=broken",
            "-o",
            "jsonpath={.items[0].status.phase} {.items[0].status.containerStatuses[0].state.waiting.reason}",
        ],
    );
    assert_eq!(waiting, "Pending ImagePullBackOff");
}

#[test]
fn crash_loop_failure_keeps_pods_unready() {
    let cluster = cluster();
    let ns = cluster.namespace("crash-loop").expect("namespace");
    apply(
        cluster,
        &ns,
        &deployment("crashy", 1, &failure_label(Failure::CrashLoop), 600),
    );
    wait_for_output(
        cluster,
        &[
            "get",
            "pods",
            "-n",
            &ns,
            "-l",
            "app=crashy",
            "-o",
            "jsonpath={.items[*].status.containerStatuses[0].state.waiting.reason}",
        ],
        "CrashLoopBackOff",
    );
    let status = kubectl(
        cluster,
        &[
            "get",
            "pods",
            "-n",
            &ns,
            "-l",
            "app=crashy",
            "-o",
            "jsonpath={.items[0].status.phase} {.items[0].status.containerStatuses[0].ready} {.items[0].status.containerStatuses[0].restartCount}",
        ],
    );
    assert_eq!(status, "Running false 5");
    let available = kubectl(
        cluster,
        &[
            "get",
            "deployment",
            "crashy",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.availableReplicas}",
        ],
    );
    assert_eq!(available, "", "a crash-looping pod is never available");
}

#[test]
fn failure_rule_makes_a_job_fail() {
    let cluster = cluster();
    let ns = cluster.namespace("job-failure").expect("namespace");
    apply(cluster, &ns, &job("doomed", &failure_label(Failure::Fail)));
    kubectl(
        cluster,
        &[
            "wait",
            "-n",
            &ns,
            "--for=condition=Failed",
            "job/doomed",
            "--timeout=180s",
        ],
    );
    let reason = kubectl(
        cluster,
        &[
            "get",
            "job",
            "doomed",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Failed\")].reason}",
        ],
    );
    assert_eq!(reason, "BackoffLimitExceeded");
}

#[test]
fn garbage_collection_and_namespace_deletion_happen() {
    let cluster = cluster();
    let ns = cluster.namespace("gc").expect("namespace");
    apply(cluster, &ns, &deployment("owned", 1, "", 600));
    kubectl(
        cluster,
        &[
            "rollout",
            "status",
            "-n",
            &ns,
            "deployment/owned",
            "--timeout=180s",
        ],
    );
    // Deleting the owner: the garbage collector removes the ReplicaSet and its Pods.
    kubectl(
        cluster,
        &[
            "delete",
            "deployment",
            "owned",
            "-n",
            &ns,
            "--wait=true",
            "--timeout=120s",
        ],
    );
    kubectl(
        cluster,
        &[
            "wait",
            "-n",
            &ns,
            "--for=delete",
            "pod",
            "-l",
            "app=owned",
            "--timeout=120s",
        ],
    );
    let left = kubectl(
        cluster,
        &["get", "replicasets,pods", "-n", &ns, "-o", "name"],
    );
    assert_eq!(left.trim(), "", "left after the owner was deleted: {left}");

    apply(cluster, &ns, &deployment("again", 1, "", 600));
    kubectl(
        cluster,
        &[
            "rollout",
            "status",
            "-n",
            &ns,
            "deployment/again",
            "--timeout=180s",
        ],
    );
    kubectl(
        cluster,
        &["delete", "namespace", &ns, "--wait=true", "--timeout=180s"],
    );
    let gone = cluster.kubectl_output(&["get", "namespace", &ns]);
    assert!(
        matches!(&gone, Err(plumb_testcluster::Error::Kubectl { stderr, .. }) if stderr.contains("NotFound")),
        "namespace still there: {gone:?}"
    );
}
