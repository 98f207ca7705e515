//! The workload simulation, driven by kubectl as a user drives a real cluster: rollouts,
//! rolling updates, rollbacks, scaling, Jobs, CronJobs, StatefulSets, DaemonSets,
//! failures on purpose, Services and their endpoints, volumes, cascading deletes, and the
//! bad input kube-apiserver refuses for these kinds.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::TestServer;

/// A server with the controllers on and a short pod start delay.
async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.workloads.enabled = true;
        c.workloads.pod_start_delay = Duration::from_millis(200);
        c.workloads.job_run_time = Duration::from_millis(200);
    })
    .await
}

async fn json(s: &TestServer, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&s.ok(&all).await).expect("kubectl prints JSON")
}

/// Polls `get` until `done` holds for what it printed, for at most `limit`.
async fn eventually(
    s: &TestServer,
    args: &[&str],
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let value = json(s, args).await;
        if done(&value) {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "kubectl get {args:?} never got there; last:\n{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn items(list: &Value) -> &[Value] {
    list["items"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.25", ports: [{name: http, containerPort: 80}]}]
"#;

#[tokio::test]
async fn a_deployment_rolls_out_updates_scales_and_rolls_back() {
    let s = server().await;
    s.ok_stdin(&["apply", "-f", "-"], WEB).await;
    s.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    let d = json(&s, &["get", "deployment", "web"]).await;
    for field in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ] {
        assert_eq!(d["status"][field], 3, "{field}: {}", d["status"]);
    }
    assert_eq!(d["status"]["observedGeneration"], 1);
    assert_eq!(
        condition(&d, "Available").unwrap()["reason"],
        "MinimumReplicasAvailable"
    );
    assert_eq!(
        condition(&d, "Progressing").unwrap()["reason"],
        "NewReplicaSetAvailable"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );

    let rs = json(&s, &["get", "replicasets", "-l", "app=web"]).await;
    let rs = &items(&rs)[0];
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    assert_eq!(rs["metadata"]["ownerReferences"][0]["controller"], true);
    let pods = json(&s, &["get", "pods", "-l", "app=web"]).await;
    assert_eq!(items(&pods).len(), 3);
    for pod in items(&pods) {
        assert_eq!(pod["spec"]["nodeName"], plumb_apiserver::NODE_NAME);
        assert_eq!(pod["status"]["phase"], "Running");
        assert_eq!(condition(pod, "Ready").unwrap()["status"], "True");
        assert!(
            pod["status"]["podIP"]
                .as_str()
                .is_some_and(|ip| !ip.is_empty())
        );
        assert_eq!(pod["status"]["containerStatuses"][0]["image"], "nginx:1.25");
        assert_eq!(
            pod["metadata"]["labels"]["pod-template-hash"],
            hash.as_str()
        );
    }

    // A rolling update: a new ReplicaSet takes over, the old one is scaled to zero.
    s.ok(&["set", "image", "deployment/web", "web=nginx:1.26"])
        .await;
    s.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    let sets = json(&s, &["get", "replicasets", "-l", "app=web"]).await;
    assert_eq!(items(&sets).len(), 2);
    let revisions: Vec<(&str, i64)> = items(&sets)
        .iter()
        .map(|r| {
            (
                r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                    .as_str()
                    .unwrap_or(""),
                r["spec"]["replicas"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert!(
        revisions.contains(&("1", 0)) && revisions.contains(&("2", 3)),
        "{revisions:?}"
    );
    let pods = json(&s, &["get", "pods", "-l", "app=web"]).await;
    // Old Pods may still be Terminating for a moment (as on a real cluster).
    assert!(
        items(&pods)
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .all(|p| p["spec"]["containers"][0]["image"] == "nginx:1.26")
    );

    // A rollback re-uses the first ReplicaSet under a new revision.
    s.ok(&["rollout", "undo", "deployment/web"]).await;
    s.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    let history = s.ok(&["rollout", "history", "deployment/web"]).await;
    assert!(history.contains('2') && history.contains('3'), "{history}");
    // kubectl writes the old template back with `metadata.creationTimestamp: null`; the
    // controller must still see it as the first ReplicaSet's and make no third one.
    let sets = json(&s, &["get", "replicasets", "-l", "app=web"]).await;
    assert_eq!(
        items(&sets).len(),
        2,
        "the rollback made a new ReplicaSet: {sets}"
    );
    let d = json(&s, &["get", "deployment", "web"]).await;
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );

    // Scale up and down.
    s.ok(&["scale", "deployment/web", "--replicas=5"]).await;
    s.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    eventually(
        &s,
        &["get", "pods", "-l", "app=web"],
        Duration::from_secs(30),
        |p| items(p).len() == 5,
    )
    .await;
    s.ok(&["scale", "deployment/web", "--replicas=2"]).await;
    eventually(
        &s,
        &["get", "pods", "-l", "app=web"],
        Duration::from_secs(30),
        |p| items(p).len() == 2,
    )
    .await;

    // A deleted Pod is replaced.
    let pods = json(&s, &["get", "pods", "-l", "app=web"]).await;
    let victim = items(&pods)[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    // Deleted gracefully: Terminating with its grace period, then removed by the kubelet.
    s.ok(&["delete", "pod", &victim, "--wait=false"]).await;
    let terminating = json(&s, &["get", "pod", &victim]).await;
    assert!(
        terminating["metadata"]["deletionTimestamp"].is_string(),
        "{terminating}"
    );
    assert_eq!(terminating["metadata"]["deletionGracePeriodSeconds"], 30);
    let table = s.ok(&["get", "pod", &victim]).await;
    assert!(table.contains("Terminating"), "{table}");
    s.ok(&[
        "wait",
        "--for=delete",
        &format!("pod/{victim}"),
        "--timeout=30s",
    ])
    .await;
    eventually(
        &s,
        &["get", "pods", "-l", "app=web"],
        Duration::from_secs(30),
        |p| {
            items(p).len() == 2
                && items(p)
                    .iter()
                    .all(|pod| pod["metadata"]["name"] != victim.as_str())
                && items(p)
                    .iter()
                    .all(|pod| pod["status"]["phase"] == "Running")
        },
    )
    .await;

    // Paused: a template change makes no new ReplicaSet until resumed.
    s.ok(&["rollout", "pause", "deployment/web"]).await;
    s.ok(&["set", "image", "deployment/web", "web=nginx:1.27"])
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sets = json(&s, &["get", "replicasets", "-l", "app=web"]).await;
    assert_eq!(
        items(&sets).len(),
        2,
        "a paused Deployment rolled out: {sets}"
    );
    s.ok(&["rollout", "resume", "deployment/web"]).await;
    s.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;

    let events = json(
        &s,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=Deployment",
        ],
    )
    .await;
    assert!(
        items(&events)
            .iter()
            .any(|e| e["reason"] == "ScalingReplicaSet"),
        "no ScalingReplicaSet event: {events}"
    );
    let pod_events = s
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=Pod",
        ])
        .await;
    for reason in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(
            pod_events.contains(reason),
            "no {reason} event:\n{pod_events}"
        );
    }
    // The tables kubectl prints, as a real cluster's (sorted through whole objects too).
    let sorted = s.ok(&["get", "events", "--sort-by=.lastTimestamp"]).await;
    assert!(sorted.starts_with("LAST SEEN"), "{sorted}");
    assert!(sorted.contains("ScalingReplicaSet"), "{sorted}");
    let deployments = s.ok(&["get", "deployments"]).await;
    assert!(
        deployments.contains("READY   UP-TO-DATE   AVAILABLE"),
        "{deployments}"
    );
    let pods = s.ok(&["get", "pods", "-l", "app=web"]).await;
    assert!(pods.contains("READY   STATUS    RESTARTS"), "{pods}");
    assert!(pods.contains("1/1     Running   0"), "{pods}");
}

/// kube-controller-manager creates a Deployment's new ReplicaSet at its first size (3 here,
/// surge 25% of 3 rounds up to 1 but the size is capped at `replicas`), not at zero and
/// scaled up afterwards: the ReplicaSet stays at generation 1 and the one
/// ScalingReplicaSet event says "from 0 to 3", as on the real test cluster. Both statuses
/// carry `terminatingReplicas: 0`, as kube-controller-manager 1.37 writes them.
#[tokio::test]
async fn a_new_replica_set_is_created_at_its_first_size() {
    let s = server().await;
    s.ok_stdin(&["apply", "-f", "-"], WEB).await;
    s.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    let rs = json(&s, &["get", "replicasets", "-l", "app=web"]).await;
    let rs = &items(&rs)[0];
    assert_eq!(rs["metadata"]["generation"], 1, "{}", rs["metadata"]);
    assert_eq!(rs["status"]["observedGeneration"], 1, "{}", rs["status"]);
    assert_eq!(rs["spec"]["replicas"], 3);
    // Kubernetes 1.37 counts terminating pods (DeploymentReplicaSetTerminatingReplicas, on
    // by default) and writes the count, zero included, in both statuses.
    assert_eq!(rs["status"]["terminatingReplicas"], 0, "{}", rs["status"]);
    let d = json(&s, &["get", "deployment", "web"]).await;
    assert_eq!(d["status"]["terminatingReplicas"], 0, "{}", d["status"]);
    let name = rs["metadata"]["name"].as_str().unwrap().to_string();
    let events = json(
        &s,
        &[
            "get",
            "events",
            "--field-selector",
            "reason=ScalingReplicaSet",
        ],
    )
    .await;
    let messages: Vec<&str> = items(&events)
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert_eq!(
        messages,
        [format!("Scaled up replica set {name} from 0 to 3")],
        "{events}"
    );
}

#[tokio::test]
async fn recreate_replaces_every_pod_at_once() {
    let s = server().await;
    let manifest = WEB.replace("replicas: 3", "replicas: 2\n  strategy: {type: Recreate}");
    s.ok_stdin(&["apply", "-f", "-"], &manifest).await;
    s.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    s.ok(&["set", "image", "deployment/web", "web=nginx:1.26"])
        .await;
    s.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    let pods = json(&s, &["get", "pods", "-l", "app=web"]).await;
    assert_eq!(items(&pods).len(), 2);
    assert!(
        items(&pods)
            .iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "nginx:1.26")
    );
}

#[tokio::test]
async fn pods_that_never_get_ready_exceed_the_progress_deadline() {
    let s = server().await;
    let manifest = format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: broken, namespace: default}}
spec:
  replicas: 1
  progressDeadlineSeconds: 2
  selector: {{matchLabels: {{app: broken}}}}
  template:
    metadata: {{labels: {{app: broken, {label}: image-pull}}}}
    spec:
      containers: [{{name: c, image: "registry.invalid/none:1"}}]
"#,
        label = plumb_apiserver::FAILURE_LABEL
    );
    s.ok_stdin(&["apply", "-f", "-"], &manifest).await;
    let d = eventually(
        &s,
        &["get", "deployment", "broken"],
        Duration::from_secs(30),
        |d| condition(d, "Progressing").is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded"),
    )
    .await;
    assert_eq!(condition(&d, "Progressing").unwrap()["status"], "False");
    assert_eq!(condition(&d, "Available").unwrap()["status"], "False");
    let failure = s
        .fails(&["rollout", "status", "deployment/broken", "--timeout=20s"])
        .await;
    assert!(
        failure.contains("exceeded its progress deadline"),
        "{failure}"
    );
    let pods = json(&s, &["get", "pods", "-l", "app=broken"]).await;
    let waiting = &items(&pods)[0]["status"]["containerStatuses"][0]["state"]["waiting"]["reason"];
    assert!(
        waiting == "ErrImagePull" || waiting == "ImagePullBackOff",
        "{waiting}"
    );

    // crash-loop: running, restarting, never ready.
    let crash = manifest
        .replace("broken", "crash")
        .replace("image-pull", "crash-loop");
    s.ok_stdin(&["apply", "-f", "-"], &crash).await;
    eventually(
        &s,
        &["get", "pods", "-l", "app=crash"],
        Duration::from_secs(30),
        |p| {
            items(p).first().is_some_and(|pod| {
                pod["status"]["containerStatuses"][0]["restartCount"]
                    .as_i64()
                    .unwrap_or(0)
                    > 0
                    && condition(pod, "Ready").is_some_and(|c| c["status"] == "False")
            })
        },
    )
    .await;
}

#[tokio::test]
async fn jobs_run_to_completion_or_fail_by_their_backoff_limit() {
    let s = server().await;
    s.ok(&["create", "job", "once", "--image=busybox", "--", "true"])
        .await;
    s.ok(&[
        "wait",
        "--for=condition=complete",
        "job/once",
        "--timeout=60s",
    ])
    .await;
    let job = json(&s, &["get", "job", "once"]).await;
    assert_eq!(job["status"]["succeeded"], 1);
    assert!(job["status"]["completionTime"].is_string());
    assert_eq!(
        condition(&job, "SuccessCriteriaMet").unwrap()["status"],
        "True"
    );
    let pods = json(&s, &["get", "pods", "-l", "job-name=once"]).await;
    assert_eq!(items(&pods)[0]["status"]["phase"], "Succeeded");

    let failing = format!(
        r#"
apiVersion: batch/v1
kind: Job
metadata: {{name: failing, namespace: default}}
spec:
  backoffLimit: 0
  template:
    metadata: {{labels: {{{label}: fail}}}}
    spec:
      restartPolicy: Never
      containers: [{{name: c, image: busybox}}]
"#,
        label = plumb_apiserver::FAILURE_LABEL
    );
    s.ok_stdin(&["apply", "-f", "-"], &failing).await;
    s.ok(&[
        "wait",
        "--for=condition=failed",
        "job/failing",
        "--timeout=60s",
    ])
    .await;
    let job = json(&s, &["get", "job", "failing"]).await;
    assert_eq!(
        condition(&job, "Failed").unwrap()["reason"],
        "BackoffLimitExceeded"
    );
    assert_eq!(job["status"]["failed"], 1);

    // Completions and parallelism.
    let many = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: many, namespace: default}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
"#;
    s.ok_stdin(&["apply", "-f", "-"], many).await;
    s.ok(&[
        "wait",
        "--for=condition=complete",
        "job/many",
        "--timeout=60s",
    ])
    .await;
    assert_eq!(
        json(&s, &["get", "job", "many"]).await["status"]["succeeded"],
        3
    );
}

#[tokio::test]
async fn statefulsets_daemonsets_and_cronjobs_run() {
    let s = server().await;
    let manifests = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "postgres:16"}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: default}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: "busybox"}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick, namespace: default}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: busybox}]
"#;
    s.ok_stdin(&["apply", "-f", "-"], manifests).await;
    s.ok(&["rollout", "status", "statefulset/db", "--timeout=60s"])
        .await;
    let pods = json(&s, &["get", "pods", "-l", "app=db"]).await;
    let mut names: Vec<&str> = items(&pods)
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["db-0", "db-1"]);
    let sts = json(&s, &["get", "statefulset", "db"]).await;
    assert_eq!(sts["status"]["readyReplicas"], 2);
    // Each Pod has its own claim, provisioned and Bound.
    for pod in ["db-0", "db-1"] {
        let claim = format!("data-{pod}");
        eventually(&s, &["get", "pvc", &claim], Duration::from_secs(30), |c| {
            c["status"]["phase"] == "Bound"
        })
        .await;
        let p = json(&s, &["get", "pod", pod]).await;
        let volumes = p["spec"]["volumes"].as_array().cloned().unwrap_or_default();
        assert!(
            volumes
                .iter()
                .any(|v| v["persistentVolumeClaim"]["claimName"] == claim.as_str()),
            "{volumes:?}"
        );
    }
    assert_eq!(
        sts["status"]["currentRevision"],
        sts["status"]["updateRevision"]
    );
    let revisions = json(&s, &["get", "controllerrevisions", "-l", "app=db"]).await;
    assert_eq!(items(&revisions).len(), 1);
    s.ok(&["set", "image", "statefulset/db", "db=postgres:17"])
        .await;
    s.ok(&["rollout", "status", "statefulset/db", "--timeout=60s"])
        .await;
    let sts = json(&s, &["get", "statefulset", "db"]).await;
    assert_eq!(
        sts["status"]["currentRevision"],
        sts["status"]["updateRevision"]
    );
    assert_eq!(
        items(&json(&s, &["get", "controllerrevisions", "-l", "app=db"]).await).len(),
        2
    );

    s.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"])
        .await;
    let ds = json(&s, &["get", "daemonset", "agent"]).await;
    assert_eq!(ds["status"]["desiredNumberScheduled"], 1);
    assert_eq!(ds["status"]["numberReady"], 1);

    // The CronJob fires at the next minute.
    let cj = eventually(
        &s,
        &["get", "cronjob", "tick"],
        Duration::from_secs(90),
        |cj| cj["status"]["lastScheduleTime"].is_string(),
    )
    .await;
    assert!(
        cj["status"]["lastScheduleTime"]
            .as_str()
            .unwrap()
            .ends_with(":00Z")
    );
    let jobs = eventually(&s, &["get", "jobs"], Duration::from_secs(30), |j| {
        items(j)
            .iter()
            .any(|job| job["metadata"]["ownerReferences"][0]["name"] == "tick")
    })
    .await;
    let job = items(&jobs)
        .iter()
        .find(|j| j["metadata"]["ownerReferences"][0]["name"] == "tick")
        .unwrap();
    assert!(
        job["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("tick-")
    );
}

#[tokio::test]
async fn services_get_addresses_endpoints_and_load_balancers() {
    let s = server().await;
    s.ok_stdin(
        &["apply", "-f", "-"],
        &WEB.replace("replicas: 3", "replicas: 2"),
    )
    .await;
    let services = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 8080, targetPort: 80}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  rules: [{host: web.example, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 2Gi}}
"#;
    s.ok_stdin(&["apply", "-f", "-"], services).await;
    s.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    let svc = json(&s, &["get", "service", "web"]).await;
    let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(
        ip.starts_with("10.0.0."),
        "{ip} is not in the test range 10.0.0.0/24"
    );
    assert_eq!(svc["spec"]["clusterIPs"][0], ip.as_str());
    let slices = eventually(
        &s,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
        ],
        Duration::from_secs(30),
        |l| {
            items(l).first().is_some_and(|slice| {
                slice["endpoints"].as_array().is_some_and(|e| {
                    e.len() == 2 && e.iter().all(|e| e["conditions"]["ready"] == true)
                })
            })
        },
    )
    .await;
    let slice = &items(&slices)[0];
    assert_eq!(slice["ports"][0]["port"], 80);
    assert_eq!(slice["ports"][0]["name"], "http");
    assert_eq!(slice["metadata"]["ownerReferences"][0]["name"], "web");
    let endpoints = json(&s, &["get", "endpoints", "web"]).await;
    assert_eq!(
        endpoints["subsets"][0]["addresses"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let lb = eventually(
        &s,
        &["get", "service", "lb"],
        Duration::from_secs(30),
        |svc| svc["status"]["loadBalancer"]["ingress"][0]["ip"].is_string(),
    )
    .await;
    assert!(
        lb["spec"]["ports"][0]["nodePort"]
            .as_i64()
            .is_some_and(|p| (30000..=32767).contains(&p))
    );
    eventually(
        &s,
        &["get", "ingress", "web"],
        Duration::from_secs(30),
        |i| i["status"]["loadBalancer"]["ingress"][0]["ip"].is_string(),
    )
    .await;
    let pvc = eventually(&s, &["get", "pvc", "data"], Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Bound"
    })
    .await;
    let volume = pvc["spec"]["volumeName"].as_str().unwrap().to_string();
    let pv = json(&s, &["get", "pv", &volume]).await;
    assert_eq!(pv["spec"]["capacity"]["storage"], "2Gi");
    assert_eq!(pv["status"]["phase"], "Bound");

    // Scaling down leaves one endpoint.
    s.ok(&["scale", "deployment/web", "--replicas=1"]).await;
    eventually(
        &s,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
        ],
        Duration::from_secs(30),
        |l| {
            items(l)
                .first()
                .is_some_and(|slice| slice["endpoints"].as_array().is_some_and(|e| e.len() == 1))
        },
    )
    .await;

    // A taken IP and one out of range are refused; a freed one can be had again.
    let fixed = |name: &str, ip: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  clusterIP: {ip}\n  ports: [{{port: 80}}]\n"
        )
    };
    let out = crate::support::kubectl_with(
        s.kubeconfig_path(),
        &["create", "-f", "-"],
        Some(&fixed("taken", &ip)),
    )
    .await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains(&format!(
            r#"spec.clusterIPs: Invalid value: ["{ip}"]: failed to allocate IP {ip}: provided IP is already allocated"#
        )),
        "{}",
        out.stderr
    );
    let out = crate::support::kubectl_with(
        s.kubeconfig_path(),
        &["create", "-f", "-"],
        Some(&fixed("outside", "192.168.1.1")),
    )
    .await;
    assert!(
        out.stderr.contains("failed to allocate IP 192.168.1.1: the provided network does not match the current range"),
        "{}",
        out.stderr
    );
    let out = crate::support::kubectl_with(
        s.kubeconfig_path(),
        &["create", "-f", "-"],
        Some(&fixed("garbage", "abc")),
    )
    .await;
    assert!(
        out.stderr
            .contains(r#"spec.clusterIPs[0]: Invalid value: "abc": must be a valid IP address"#),
        "{}",
        out.stderr
    );
    assert!(
        s.kubectl(&["get", "service", "taken"])
            .await
            .stderr
            .contains("NotFound")
    );
    s.ok(&["delete", "service", "web"]).await;
    s.ok_stdin(&["create", "-f", "-"], &fixed("again", &ip))
        .await;
    assert_eq!(
        json(&s, &["get", "service", "again"]).await["spec"]["clusterIP"],
        ip.as_str()
    );
    // The deleted Service's Endpoints went with it.
    eventually(&s, &["get", "endpoints"], Duration::from_secs(30), |l| {
        items(l).iter().all(|e| e["metadata"]["name"] != "web")
    })
    .await;
}

#[tokio::test]
async fn deletes_cascade_down_the_owner_chain() {
    let s = server().await;
    s.ok_stdin(&["apply", "-f", "-"], WEB).await;
    s.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    s.ok(&[
        "delete",
        "deployment",
        "web",
        "--cascade=foreground",
        "--wait=true",
        "--timeout=60s",
    ])
    .await;
    assert!(items(&json(&s, &["get", "replicasets", "-l", "app=web"]).await).is_empty());
    eventually(
        &s,
        &["get", "pods", "-l", "app=web"],
        Duration::from_secs(30),
        |p| items(p).is_empty(),
    )
    .await;

    s.ok_stdin(&["apply", "-f", "-"], WEB).await;
    s.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    s.ok(&["delete", "deployment", "web", "--cascade=background"])
        .await;
    eventually(
        &s,
        &["get", "pods", "-l", "app=web"],
        Duration::from_secs(30),
        |p| items(p).is_empty(),
    )
    .await;
    assert!(items(&json(&s, &["get", "replicasets", "-l", "app=web"]).await).is_empty());

    s.ok_stdin(&["apply", "-f", "-"], WEB).await;
    s.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    s.ok(&["delete", "deployment", "web", "--cascade=orphan"])
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sets = json(&s, &["get", "replicasets", "-l", "app=web"]).await;
    assert_eq!(items(&sets).len(), 1, "the orphaned ReplicaSet stays");
    assert!(items(&sets)[0]["metadata"]["ownerReferences"].is_null());
    assert_eq!(
        items(&json(&s, &["get", "pods", "-l", "app=web"]).await).len(),
        3
    );
}

#[tokio::test]
async fn bad_workloads_are_refused_with_their_paths() {
    let s = server().await;
    let mismatch = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: mismatch, namespace: default}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: b}}
    spec:
      containers: [{name: c, image: nginx}]
"#;
    let out =
        crate::support::kubectl_with(s.kubeconfig_path(), &["create", "-f", "-"], Some(mismatch))
            .await;
    assert!(
        out.stderr.contains(r#"spec.template.metadata.labels: Invalid value: {"app":"b"}: `selector` does not match template `labels`"#),
        "{}",
        out.stderr
    );
    s.ok_stdin(&["apply", "-f", "-"], WEB).await;
    let out = s
        .fails(&["patch", "deployment", "web", "--type=merge", "-p", r#"{"spec":{"selector":{"matchLabels":{"app":"web","x":"y"}},"template":{"metadata":{"labels":{"app":"web","x":"y"}}}}}"#])
        .await;
    assert!(out.contains(r#"spec.selector: Invalid value: {"matchLabels":{"app":"web","x":"y"}}: field is immutable"#), "{out}");
    s.ok(&["create", "job", "j1", "--image=busybox", "--", "true"])
        .await;
    let out = s
        .fails(&[
            "patch",
            "job",
            "j1",
            "--type=merge",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"j1","image":"busybox:2"}]}}}}"#,
        ])
        .await;
    assert!(
        out.contains("spec.template: Invalid value:") && out.contains("field is immutable"),
        "{out}"
    );
    let out = s
        .fails(&[
            "create",
            "cronjob",
            "cj",
            "--image=busybox",
            "--schedule=bad cron",
            "--",
            "true",
        ])
        .await;
    assert!(out.contains(r#"spec.schedule: Invalid value: "bad cron": expected exactly 5 fields, found 2: [bad cron]"#), "{out}");
    let out = s
        .fails(&[
            "create",
            "cronjob",
            "cj",
            "--image=busybox",
            "--schedule=61 * * * *",
            "--",
            "true",
        ])
        .await;
    assert!(
        out.contains("end of range (61) above maximum (59): 61"),
        "{out}"
    );
    // Nothing of it was stored.
    assert!(
        s.kubectl(&["get", "deployment", "mismatch"])
            .await
            .stderr
            .contains("NotFound")
    );
    assert!(
        s.kubectl(&["get", "cronjob", "cj"])
            .await
            .stderr
            .contains("NotFound")
    );
    let d = json(&s, &["get", "deployment", "web"]).await;
    assert_eq!(
        d["spec"]["selector"]["matchLabels"],
        serde_json::json!({"app": "web"})
    );
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

/// How many Pods the server holds in `default` (one list page and its remaining count).
async fn pod_count(kubeconfig: &std::path::Path) -> u64 {
    let out = crate::support::kubectl_with(
        kubeconfig,
        &["get", "--raw", "/api/v1/namespaces/default/pods?limit=1"],
        None,
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    let page: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let listed = page["items"].as_array().map_or(0, Vec::len) as u64;
    listed + page["metadata"]["remainingItemCount"].as_u64().unwrap_or(0)
}

/// A ReplicaSet asking for 10,000 Pods: the controllers create them in batches while the
/// server keeps answering other clients, and its memory grows with the Pods it stores, not
/// without bound. (The server runs as its own process so its memory is its own.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_pods_from_one_replica_set_keep_the_server_answering() {
    /// Kills the server however the test ends (a failed assertion must not leave it
    /// running, holding the test's output pipe).
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::persistence::spawn_child(&dir.path().join("data"));
    let kubeconfig = server.kubeconfig.clone();
    let pid = server.child.id();
    let _server = Killed(server.child);
    let big = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: big, namespace: default}
spec:
  replicas: 10000
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec:
      containers: [{name: c, image: busybox}]
"#;
    let out = crate::support::kubectl_with(&kubeconfig, &["apply", "-f", "-"], Some(big)).await;
    assert!(out.ok, "{}", out.stderr);
    let start_rss = rss_mb(pid);
    let start = Instant::now();
    let mut answered = 0;
    loop {
        // Another client is served while the Pods are made.
        let name = format!("other-{answered}");
        let out = crate::support::kubectl_with(
            &kubeconfig,
            &["create", "configmap", &name, "--from-literal=k=v"],
            None,
        )
        .await;
        assert!(
            out.ok,
            "a client was refused while Pods were created: {}",
            out.stderr
        );
        answered += 1;
        let pods = pod_count(&kubeconfig).await;
        if pods >= 3_000 {
            let rss = rss_mb(pid);
            // Memory follows what is stored: each Pod with its managedFields, its status
            // history in the watch window and the five Events recorded for it (a release
            // build holds 10,000 such Pods in about 1 GB at the peak, 570 MB after a
            // restart; this debug build more). 150 KiB per Pod is a bound on that growth
            // which a leak or an unbounded queue would break.
            let bound = start_rss + pods as f64 * 150.0 / 1024.0;
            assert!(
                rss < bound,
                "{rss:.0} MB with {pods} Pods (started at {start_rss:.0} MB)"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "only {pods} Pods after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(answered > 0);
    let out = crate::support::kubectl_with(&kubeconfig, &["get", "namespaces"], None).await;
    assert!(out.ok, "{}", out.stderr);
}

/// Events expire a TTL after they were last seen, as with kube-apiserver's `--event-ttl`:
/// the one kind that grows with activity alone stays bounded by time.
#[tokio::test]
async fn events_expire_after_their_ttl() {
    let s = TestServer::start_with(|c| c.event_ttl = Duration::from_secs(2)).await;
    let event = r#"
apiVersion: v1
kind: Event
metadata: {name: e1, namespace: default}
involvedObject: {kind: ConfigMap, name: c, namespace: default}
reason: Tested
message: an event
type: Normal
"#;
    s.ok_stdin(&["create", "-f", "-"], event).await;
    let kept = s.ok(&["get", "events", "-o", "name"]).await;
    assert!(kept.contains("event/e1"), "{kept}");
    eventually(&s, &["get", "events"], Duration::from_secs(30), |l| {
        items(l).iter().all(|e| e["metadata"]["name"] != "e1")
    })
    .await;
}
