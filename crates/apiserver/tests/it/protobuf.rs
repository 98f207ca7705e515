//! Protobuf request bodies: kubectl's typed generators (`kubectl create deployment|service|…`)
//! send `application/vnd.kubernetes.protobuf`, with the test cluster's kubectl 1.37 (and the
//! one `PLUMB_KUBECTL` names, if any); the stored objects must carry what was sent. Bad protobuf bodies get
//! Status errors and store nothing.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{TestServer, kubectl_bin, testcluster_kubectl};

/// The kubectl binaries to drive: the test cluster's (1.37) and, when `PLUMB_KUBECTL` names
/// another one (e.g. an older release, to check its generators by hand), that one too.
fn kubectls() -> Vec<String> {
    let mut bins = vec![testcluster_kubectl()];
    let chosen = kubectl_bin();
    if !bins.contains(&chosen) {
        bins.insert(0, chosen);
    }
    bins
}

struct Kubectl<'a> {
    bin: &'a str,
    server: &'a TestServer,
    /// Its own discovery cache: the two versions must not share one.
    cache: PathBuf,
}

impl Kubectl<'_> {
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = tokio::process::Command::new(self.bin)
            .arg("--kubeconfig")
            .arg(&self.server.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .await
            .expect("kubectl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args).await;
        assert!(ok, "{} {args:?} failed:\n{stdout}{stderr}", self.bin);
        stdout
    }

    async fn get(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.ok(&all).await).expect("kubectl get -o json prints JSON")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_generators_send_protobuf_and_the_objects_keep_what_was_sent() {
    let s = TestServer::start().await;
    for (i, bin) in kubectls().iter().enumerate() {
        let k = Kubectl {
            bin,
            server: &s,
            cache: s.dir.path().join(format!("kubectl-cache-{i}")),
        };
        let ns = format!("gen{i}");
        let ns = ns.as_str();
        // Node ports are cluster-wide: each kubectl's Service gets its own.
        let node_port = 30081 + i;
        let node_port_flag = format!("--node-port={node_port}");
        k.ok(&["create", "namespace", ns]).await;

        // The body really travels as protobuf (-v=8 logs the request headers).
        let (ok, _, log) = k
            .run(&[
                "create",
                "deployment",
                "web",
                "--image=nginx:1.27",
                "--replicas=3",
                "--port=80",
                "-n",
                ns,
                "-v=8",
            ])
            .await;
        assert!(ok, "{bin} create deployment failed:\n{log}");
        assert!(
            log.contains("Content-Type: application/vnd.kubernetes.protobuf"),
            "{bin} did not send protobuf:\n{log}"
        );
        let d = k.get(&["deployment", "web", "-n", ns]).await;
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(d["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(d["spec"]["selector"]["matchLabels"], json!({"app": "web"}));
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "nginx:1.27");
        assert_eq!(
            c["ports"],
            json!([{"containerPort": 80, "protocol": "TCP"}])
        );
        assert!(d["metadata"]["uid"].is_string());

        k.ok(&[
            "create",
            "configmap",
            "settings",
            "--from-literal=a=1",
            "--from-literal=b=two",
            "-n",
            ns,
        ])
        .await;
        let cm = k.get(&["configmap", "settings", "-n", ns]).await;
        assert_eq!(cm["data"], json!({"a": "1", "b": "two"}));

        k.ok(&[
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=password=hunter2",
            "-n",
            ns,
        ])
        .await;
        k.ok(&[
            "create",
            "secret",
            "docker-registry",
            "pull",
            "--docker-server=r.example",
            "--docker-username=u",
            "--docker-password=p",
            "-n",
            ns,
        ])
        .await;
        let secret = k.get(&["secret", "creds", "-n", ns]).await;
        assert_eq!(secret["data"], json!({"password": "aHVudGVyMg=="}));
        assert_eq!(secret["type"], "Opaque");
        let pull = k.get(&["secret", "pull", "-n", ns]).await;
        assert_eq!(pull["type"], "kubernetes.io/dockerconfigjson");
        assert!(pull["data"][".dockerconfigjson"].is_string());

        k.ok(&[
            "create",
            "service",
            "clusterip",
            "web",
            "--tcp=80:8080",
            "-n",
            ns,
        ])
        .await;
        k.ok(&[
            "create",
            "service",
            "nodeport",
            "np",
            "--tcp=81:8081",
            &node_port_flag,
            "-n",
            ns,
        ])
        .await;
        let svc = k.get(&["service", "web", "-n", ns]).await;
        assert_eq!(svc["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(svc["spec"]["ports"][0]["port"], 80);
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
        let np = k.get(&["service", "np", "-n", ns]).await;
        assert_eq!(np["spec"]["type"], "NodePort");
        assert_eq!(np["spec"]["ports"][0]["nodePort"], node_port);

        k.ok(&[
            "create",
            "job",
            "once",
            "--image=busybox",
            "-n",
            ns,
            "--",
            "date",
            "-u",
        ])
        .await;
        let job = k.get(&["job", "once", "-n", ns]).await;
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["containers"][0]["command"], json!(["date", "-u"]));
        assert_eq!(pod["restartPolicy"], "Never");

        k.ok(&[
            "create",
            "cronjob",
            "nightly",
            "--image=busybox",
            "--schedule=0 3 * * *",
            "-n",
            ns,
            "--",
            "date",
        ])
        .await;
        let cron = k.get(&["cronjob", "nightly", "-n", ns]).await;
        assert_eq!(cron["spec"]["schedule"], "0 3 * * *");
        assert_eq!(
            cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"],
            "busybox"
        );
        k.ok(&[
            "create",
            "job",
            "manual",
            "--from=cronjob/nightly",
            "-n",
            ns,
        ])
        .await;
        let manual = k.get(&["job", "manual", "-n", ns]).await;
        assert_eq!(manual["metadata"]["ownerReferences"][0]["kind"], "CronJob");
        assert_eq!(
            manual["metadata"]["ownerReferences"][0]["uid"],
            cron["metadata"]["uid"]
        );
        assert_eq!(
            manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
            "manual"
        );

        k.ok(&[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods,deployments.apps",
            "-n",
            ns,
        ])
        .await;
        let role = k.get(&["role", "reader", "-n", ns]).await;
        assert_eq!(
            role["rules"],
            json!([
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]}
            ])
        );
        let sa = format!("--serviceaccount={ns}:robot");
        k.ok(&[
            "create",
            "rolebinding",
            "read",
            "--role=reader",
            "--user=alice",
            &sa,
            "-n",
            ns,
        ])
        .await;
        let rb = k.get(&["rolebinding", "read", "-n", ns]).await;
        assert_eq!(
            rb["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"})
        );
        assert_eq!(
            rb["subjects"],
            json!([
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"},
                {"kind": "ServiceAccount", "name": "robot", "namespace": ns}
            ])
        );
        let cluster_role = format!("health-{ns}");
        k.ok(&[
            "create",
            "clusterrole",
            &cluster_role,
            "--verb=get",
            "--non-resource-url=/healthz",
        ])
        .await;
        let cr = k.get(&["clusterrole", &cluster_role]).await;
        assert_eq!(
            cr["rules"],
            json!([{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}])
        );
        k.ok(&[
            "create",
            "clusterrolebinding",
            &cluster_role,
            &format!("--clusterrole={cluster_role}"),
            "--group=devs",
        ])
        .await;
        let crb = k.get(&["clusterrolebinding", &cluster_role]).await;
        assert_eq!(
            crb["subjects"],
            json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"}])
        );

        k.ok(&[
            "create",
            "quota",
            "limits",
            "--hard=pods=10,requests.cpu=500m,limits.memory=1Gi",
            "-n",
            ns,
        ])
        .await;
        let quota = k.get(&["quota", "limits", "-n", ns]).await;
        assert_eq!(
            quota["spec"]["hard"],
            json!({"pods": "10", "requests.cpu": "500m", "limits.memory": "1Gi"})
        );

        k.ok(&[
            "create",
            "poddisruptionbudget",
            "web",
            "--selector=app=web",
            "--min-available=50%",
            "-n",
            ns,
        ])
        .await;
        let pdb = k.get(&["pdb", "web", "-n", ns]).await;
        assert_eq!(pdb["spec"]["minAvailable"], "50%");
        assert_eq!(
            pdb["spec"]["selector"]["matchLabels"],
            json!({"app": "web"})
        );

        k.ok(&[
            "create",
            "ingress",
            "web",
            "--class=nginx",
            "--rule=shop.example/api*=web:8080,tls=shop-cert",
            "-n",
            ns,
        ])
        .await;
        let ing = k.get(&["ingress", "web", "-n", ns]).await;
        assert_eq!(ing["spec"]["ingressClassName"], "nginx");
        assert_eq!(
            ing["spec"]["rules"],
            json!([{"host": "shop.example", "http": {"paths": [{
                "backend": {"service": {"name": "web", "port": {"number": 8080}}},
                "path": "/api", "pathType": "Prefix"}]}}])
        );
        assert_eq!(
            ing["spec"]["tls"],
            json!([{"hosts": ["shop.example"], "secretName": "shop-cert"}])
        );

        k.ok(&["create", "serviceaccount", "robot", "-n", ns]).await;
        assert_eq!(
            k.get(&["serviceaccount", "robot", "-n", ns]).await["metadata"]["name"],
            "robot"
        );
    }
}

/// The golden encoding of a Deployment in namespace "shop", made by k8s.io/api's Marshal
/// (tools/protoschema -golden).
fn golden_deployment() -> (Vec<u8>, Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/protobuf");
    let pb = std::fs::read(dir.join("deployment.pb")).expect("golden deployment.pb");
    let json = serde_json::from_slice(&std::fs::read(dir.join("deployment.json")).expect("json"))
        .expect("golden JSON parses");
    (pb, json)
}

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_golden_protobuf_deployment_is_stored_like_its_json() {
    let s = TestServer::start().await;
    s.ok(&["create", "namespace", "shop"]).await;
    let (pb, want) = golden_deployment();
    let (code, created) = s
        .raw(
            "POST",
            "/apis/apps/v1/namespaces/shop/deployments",
            PROTOBUF,
            pb,
        )
        .await;
    assert_eq!(code, 201, "{created}");
    // What was sent survives (the server adds defaults around it).
    let stored = &created["spec"]["template"]["spec"]["containers"][0];
    let sent = &want["spec"]["template"]["spec"]["containers"][0];
    for field in [
        "image",
        "args",
        "env",
        "ports",
        "resources",
        "readinessProbe",
    ] {
        for (k, v) in sent[field].as_object().into_iter().flatten() {
            assert_eq!(&stored[field][k], v, "{field}.{k}");
        }
        if !sent[field].is_object() {
            assert_eq!(stored[field], sent[field], "{field}");
        }
    }
    assert_eq!(created["spec"]["strategy"], want["spec"]["strategy"]);
    assert_eq!(created["spec"]["selector"], want["spec"]["selector"]);
    assert_eq!(created["metadata"]["annotations"], json!({"note": "<&>"}));
    let got = s
        .ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.replicas}",
        ])
        .await;
    assert_eq!(got, "3");
    // An update (PUT) with a protobuf body: the same object with one more label.
    s.ok(&["label", "deploy", "web", "-n", "shop", "extra=1"])
        .await;
    let (code, updated) = s
        .raw(
            "PUT",
            "/apis/apps/v1/namespaces/shop/deployments/web",
            PROTOBUF,
            golden_deployment().0,
        )
        .await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_protobuf_bodies_get_status_errors_and_store_nothing() {
    let s = TestServer::start().await;
    s.ok(&["create", "namespace", "shop"]).await;
    let before = cluster_resource_version(&s).await;
    let (pb, _) = golden_deployment();
    let path = "/apis/apps/v1/namespaces/shop/deployments";

    // Truncated: cut in the middle of the object.
    let (code, status) = s
        .raw("POST", path, PROTOBUF, pb[..pb.len() / 2].to_vec())
        .await;
    assert_eq!(code, 400, "{status}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "BadRequest");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("malformed protobuf at envelope"),
        "{message}"
    );

    // A truncation inside a nested field names where.
    let mut body = b"k8s\0".to_vec();
    let type_meta = [&[0x0a, 7][..], b"apps/v1", &[0x12, 10], b"Deployment"].concat();
    body.extend_from_slice(&[0x0a, type_meta.len() as u8]);
    body.extend_from_slice(&type_meta);
    // raw = { spec(2) = { template(3) = { metadata(1) = <claims 40 bytes, has 1> } } }
    let raw = [0x12, 0x05, 0x1a, 0x03, 0x0a, 0x28, 0x00];
    body.extend_from_slice(&[0x12, raw.len() as u8]);
    body.extend_from_slice(&raw);
    let (code, status) = s.raw("POST", path, PROTOBUF, body).await;
    assert_eq!(code, 400, "{status}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("malformed protobuf at Deployment.spec.template.metadata"),
        "{message}"
    );

    // Not protobuf at all behind the protobuf content type.
    let (code, status) = s
        .raw("POST", path, PROTOBUF, br#"{"kind":"Deployment"}"#.to_vec())
        .await;
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("k8s\\0 prefix"),
        "{status}"
    );

    // A kind with no protobuf form (a custom resource): 415 naming it.
    let mut unknown = b"k8s\0".to_vec();
    let type_meta = [&[0x0a, 14][..], b"example.com/v1", &[0x12, 6], b"Widget"].concat();
    unknown.extend_from_slice(&[0x0a, type_meta.len() as u8]);
    unknown.extend_from_slice(&type_meta);
    unknown.extend_from_slice(&[0x12, 0x00]);
    let (code, status) = s
        .raw(
            "POST",
            "/api/v1/namespaces/shop/configmaps",
            PROTOBUF,
            unknown,
        )
        .await;
    assert_eq!(code, 415, "{status}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "UnsupportedMediaType");
    let m = status["message"].as_str().unwrap_or_default();
    assert!(m.contains("example.com/v1") && m.contains("Widget"), "{m}");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("example.com/v1")
            && m.contains("Widget"),
        "{status}"
    );

    // Nothing was stored: no Deployment, and no write at all since the namespace.
    let deployments = s.ok(&["get", "deploy", "-n", "shop", "-o", "name"]).await;
    assert_eq!(deployments.trim(), "");
    let (code, _) = s.get("/apis/apps/v1/namespaces/shop/deployments/web").await;
    assert_eq!(code, 404);
    assert_eq!(cluster_resource_version(&s).await, before);
    // And the server still takes a good protobuf body.
    let (code, created) = s.raw("POST", path, PROTOBUF, pb).await;
    assert_eq!(code, 201, "{created}");
}

/// The cluster-wide resourceVersion (of a list): unchanged means nothing was written.
async fn cluster_resource_version(s: &TestServer) -> String {
    let (code, list) = s.get("/api/v1/namespaces").await;
    assert_eq!(code, 200, "{list}");
    list["metadata"]["resourceVersion"]
        .as_str()
        .expect("a list has a resourceVersion")
        .to_string()
}

/// A protobuf DeleteOptions envelope (apiVersion "v1") around `raw`.
fn delete_options(raw: &[u8]) -> Vec<u8> {
    let type_meta = [&[0x0a, 2][..], b"v1", &[0x12, 13], b"DeleteOptions"].concat();
    let mut body = b"k8s\0".to_vec();
    body.extend_from_slice(&[0x0a, type_meta.len() as u8]);
    body.extend_from_slice(&type_meta);
    body.extend_from_slice(&[0x12, raw.len() as u8]);
    body.extend_from_slice(raw);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_delete_options_are_honoured() {
    let s = TestServer::start().await;
    s.ok(&["create", "configmap", "keep", "--from-literal=a=1"])
        .await;
    let path = "/api/v1/namespaces/default/configmaps/keep";
    // dryRun (field 5) = ["All"], only in the body: nothing is deleted.
    let (code, status) = s
        .raw("DELETE", path, PROTOBUF, delete_options(b"\x2a\x03All"))
        .await;
    assert_eq!(code, 200, "{status}");
    assert!(s.kubectl(&["get", "cm", "keep"]).await.ok);
    // The golden DeleteOptions (k8s.io/api's encoding) has a uid precondition that does not
    // match: a Conflict, nothing deleted.
    let golden = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/protobuf/deleteoptions.pb"),
    )
    .expect("golden deleteoptions.pb");
    let (code, status) = s.raw("DELETE", path, PROTOBUF, golden).await;
    assert_eq!(code, 409, "{status}");
    assert!(s.kubectl(&["get", "cm", "keep"]).await.ok);
    // A truncated one is a 400.
    let (code, status) = s
        .raw("DELETE", path, PROTOBUF, delete_options(b"\x2a\x09All"))
        .await;
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("error decoding DeleteOptions: malformed protobuf at DeleteOptions.dryRun"),
        "{status}"
    );
    // No options: deleted.
    let (code, _) = s.raw("DELETE", path, PROTOBUF, delete_options(b"")).await;
    assert_eq!(code, 200);
    assert!(!s.kubectl(&["get", "cm", "keep"]).await.ok);
}
