//! Every bad input of the issue's list: the Kubernetes-style error (or kubectl's clear
//! message), the server keeps running, and stored state is untouched.

use serde_json::Value;

use crate::support::{TestServer, kubectl_with};

/// The cluster's resourceVersion: unchanged means nothing was written.
async fn cluster_rv(s: &TestServer) -> String {
    let (code, list) = s.get("/api/v1/namespaces").await;
    assert_eq!(code, 200);
    list["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string()
}

fn reason(v: &Value) -> (&str, &str) {
    (
        v["kind"].as_str().unwrap_or(""),
        v["reason"].as_str().unwrap_or(""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies() {
    let s = TestServer::start().await;
    let rv = cluster_rv(&s).await;
    let path = "/api/v1/namespaces/default/configmaps";
    for (ct, body) in [
        (
            "application/json",
            b"{\"apiVersion\": \"v1\", \"kind\": ".to_vec(),
        ),
        ("application/json", b"not json at all".to_vec()),
        ("application/json", b"[1, 2, 3]".to_vec()),
        (
            "application/yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: [unclosed\n".to_vec(),
        ),
        ("application/json", Vec::new()),
    ] {
        let (code, status) = s.raw("POST", path, ct, body.clone()).await;
        assert_eq!(
            code,
            400,
            "{ct} {:?}: {status}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(reason(&status), ("Status", "BadRequest"), "{status}");
    }
    let (code, status) = s
        .raw(
            "PATCH",
            "/api/v1/namespaces/default",
            "application/merge-patch+json",
            b"{oops".to_vec(),
        )
        .await;
    assert_eq!((code, reason(&status).1), (400, "BadRequest"), "{status}");
    let (code, status) = s
        .raw(
            "PATCH",
            "/api/v1/namespaces/default",
            "application/json-patch+json",
            b"{\"op\": \"add\"}".to_vec(),
        )
        .await;
    assert_eq!(code, 422, "{status}");
    let (code, status) = s
        .raw(
            "PATCH",
            "/api/v1/namespaces/default",
            "text/plain",
            b"x".to_vec(),
        )
        .await;
    assert_eq!(
        (code, reason(&status).1),
        (415, "UnsupportedMediaType"),
        "{status}"
    );
    // kubectl refuses a malformed manifest itself, with the file position.
    let out = kubectl_with(
        &s.kubeconfig,
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [x\n"),
    )
    .await;
    assert!(!out.ok && out.stderr.contains("error"), "{}", out.stderr);
    assert_eq!(cluster_rv(&s).await, rv, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kinds_groups_and_versions() {
    let s = TestServer::start().await;
    let rv = cluster_rv(&s).await;
    // Outside any served group/version: Kubernetes' plain-text 404.
    for path in [
        "/apis/nope.example.com/v1/widgets",
        "/apis/apps/v9/deployments",
        "/apis/nope.example.com",
        "/api/v2/pods",
    ] {
        let (code, body) = s.get(path).await;
        assert_eq!(
            (code, body.as_str()),
            (404, Some("404 page not found\n")),
            "{path}"
        );
    }
    // Unknown resources (or subresources) inside a served group/version: a NotFound Status.
    for path in [
        "/api/v1/widgets",
        "/apis/apps/v1/namespaces/default/deployments/x/scale",
    ] {
        let (code, status) = s.get(path).await;
        assert_eq!(
            (code, reason(&status)),
            (404, ("Status", "NotFound")),
            "{path}: {status}"
        );
    }
    let (code, _) = s
        .raw(
            "POST",
            "/apis/nope.example.com/v1/namespaces/default/widgets",
            "application/json",
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(code, 404);
    // A body whose kind does not match the endpoint.
    let (code, status) = s
        .raw(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#.to_vec(),
        )
        .await;
    assert_eq!((code, reason(&status).1), (400, "BadRequest"), "{status}");
    let out = kubectl_with(
        &s.kubeconfig,
        &["create", "-f", "-"],
        Some("apiVersion: nope.example.com/v1\nkind: Widget\nmetadata:\n  name: w\n"),
    )
    .await;
    assert!(
        !out.ok
            && out
                .stderr
                .contains("no matches for kind \"Widget\" in version \"nope.example.com/v1\""),
        "{}",
        out.stderr
    );
    let err = s.fails(&["get", "widgets.nope.example.com"]).await;
    assert!(
        err.contains("the server doesn't have a resource type"),
        "{err}"
    );
    assert_eq!(cluster_rv(&s).await, rv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_invalid_names() {
    let s = TestServer::start().await;
    let rv = cluster_rv(&s).await;
    let post = |body: &'static str| {
        s.raw(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            body.as_bytes().to_vec(),
        )
    };
    let (code, status) = post(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#).await;
    assert_eq!((code, reason(&status).1), (422, "Invalid"), "{status}");
    assert_eq!(status["details"]["causes"][0]["field"], "metadata.name");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or("")
            .contains("name or generateName is required"),
        "{status}"
    );
    for bad in [
        "UPPER",
        "under_score",
        "-leading",
        "trailing-",
        "dots..twice",
        "sp ace",
    ] {
        let body =
            format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{bad}"}}}}"#);
        let (code, status) = s
            .raw(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                "application/json",
                body.into_bytes(),
            )
            .await;
        assert_eq!(code, 422, "{bad}: {status}");
        assert!(
            status["message"]
                .as_str()
                .unwrap_or("")
                .contains("RFC 1123"),
            "{status}"
        );
    }
    // Namespaces must be labels (no dots).
    let (code, _) = s
        .raw(
            "POST",
            "/api/v1/namespaces",
            "application/json",
            br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a.b"}}"#.to_vec(),
        )
        .await;
    assert_eq!(code, 422);
    // Bad label values and annotation keys.
    let (code, status) = post(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ok","labels":{"k":"has space"},"annotations":{"bad key":"v"}}}"#).await;
    assert_eq!(code, 422);
    let fields: Vec<&str> = status["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert_eq!(fields, vec!["metadata.labels.k", "metadata.annotations"]);
    let out = kubectl_with(
        &s.kubeconfig,
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Nope\n"),
    )
    .await;
    assert!(
        out.stderr.contains("The ConfigMap \"Nope\" is invalid"),
        "{}",
        out.stderr
    );
    assert_eq!(cluster_rv(&s).await, rv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies() {
    let s = TestServer::start().await;
    let rv = cluster_rv(&s).await;
    let big = "x".repeat(3 * 1024 * 1024 + 10);
    let body = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"k":"{big}"}}}}"#
    );
    let (code, status) = s
        .raw(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            body.clone().into_bytes(),
        )
        .await;
    assert_eq!(
        (code, reason(&status).1),
        (413, "RequestEntityTooLarge"),
        "{status}"
    );
    let file = s.dir.path().join("big.json");
    std::fs::write(&file, &body).expect("write");
    let err = s
        .fails(&["create", "-f", file.to_str().expect("utf-8")])
        .await;
    assert!(
        err.contains("Request entity too large: limit is 3145728"),
        "{err}"
    );
    // Just under the limit is fine.
    let ok_body = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"fits"}},"data":{{"k":"{}"}}}}"#,
        "y".repeat(1024 * 1024)
    );
    let (code, _) = s
        .raw(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            ok_body.into_bytes(),
        )
        .await;
    assert_eq!(code, 201);
    assert_ne!(cluster_rv(&s).await, rv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_selectors() {
    let s = TestServer::start().await;
    for q in [
        "labelSelector=a%20b%20c",
        "labelSelector=app%3Dweb%2C",
        "labelSelector=x%20in%20y",
        "fieldSelector=spec.nodeName%3Dx",
        "fieldSelector=metadata.name",
        "limit=abc",
        "continue=%21%21%21",
    ] {
        let (code, status) = s
            .get(&format!("/api/v1/namespaces/default/configmaps?{q}"))
            .await;
        assert_eq!(
            (code, reason(&status).1),
            (400, "BadRequest"),
            "{q}: {status}"
        );
    }
    let (code, _) = s
        .get("/api/v1/namespaces/default/configmaps?watch=true&labelSelector=a%20b%20c")
        .await;
    assert_eq!(code, 400);
    let err = s
        .fails(&["get", "cm", "--field-selector", "spec.foo=bar"])
        .await;
    assert!(
        err.contains("\"spec.foo\" is not a known field selector"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_token() {
    let s = TestServer::start().await;
    let rv = cluster_rv(&s).await;
    let err = s.fails(&["get", "ns", "--token", "not-the-token"]).await;
    // kubectl's wording for a 401, as against Kubernetes.
    assert!(
        err.contains("error: You must be logged in to the server"),
        "{err}"
    );
    // No credentials at all: a kubeconfig without the user's token.
    let yaml = std::fs::read_to_string(&s.kubeconfig).expect("kubeconfig");
    let token_line = yaml
        .lines()
        .find(|l| l.trim_start().starts_with("token:"))
        .expect("token line")
        .to_string();
    let anonymous = s.dir.path().join("anonymous.kubeconfig");
    std::fs::write(
        &anonymous,
        yaml.replace(&token_line, "    username: nobody"),
    )
    .expect("write");
    let out = kubectl_with(
        &anonymous,
        &[
            "create",
            "configmap",
            "x",
            "-n",
            "default",
            "--from-literal=a=b",
        ],
        None,
    )
    .await;
    assert!(
        !out.ok && out.stderr.contains("Unauthorized"),
        "{}",
        out.stderr
    );
    let (code, status) = crate::support::raw_with(
        &anonymous_client(&s).await,
        "GET",
        "/api/v1/namespaces",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(
        (code, reason(&status)),
        (401, ("Status", "Unauthorized")),
        "{status}"
    );
    assert_eq!(cluster_rv(&s).await, rv);
}

/// A kube-rs client that trusts the server but sends no token.
async fn anonymous_client(s: &TestServer) -> kube::Client {
    let mut config = kube::Config::new(s.server().url().parse().expect("url"));
    config.root_cert = Some(vec![pem_to_der(s.server().ca_pem())]);
    kube::Client::try_from(config).expect("client")
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_pointing_at_a_stopped_server() {
    let s = TestServer::start().await;
    let url = s.server().url();
    let kubeconfig = s.kubeconfig.clone();
    let dir = s.stop().await;
    let out = kubectl_with(&kubeconfig, &["get", "ns", "--request-timeout=5s"], None).await;
    assert!(!out.ok);
    let host = url.trim_start_matches("https://");
    assert!(
        out.stderr
            .contains(&format!("The connection to the server {host} was refused")),
        "{}",
        out.stderr
    );
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_keys_base64_and_mismatched_names() {
    let s = TestServer::start().await;
    let rv = cluster_rv(&s).await;
    let (code, status) = s
        .raw("POST", "/api/v1/namespaces/default/configmaps", "application/json", br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"bad key!":"v"}}"#.to_vec())
        .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["details"]["causes"][0]["field"], "data[bad key!]");
    let (code, status) = s
        .raw("POST", "/api/v1/namespaces/default/secrets", "application/json", br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"k":"not base64!"}}"#.to_vec())
        .await;
    assert_eq!((code, reason(&status).1), (400, "BadRequest"), "{status}");
    // kube-apiserver's words (Go's JSON decoder): the offending byte of the value.
    assert_eq!(
        status["message"],
        "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 3",
        "{status}"
    );
    // A PUT whose body names another object is a 400, even when the URL's object is missing.
    let (code, status) = s
        .raw(
            "PUT",
            "/api/v1/namespaces/default/configmaps/missing",
            "application/json",
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other"}}"#.to_vec(),
        )
        .await;
    assert_eq!((code, reason(&status).1), (400, "BadRequest"), "{status}");
    // An Invalid for a missing name leaves details.name out.
    let (code, status) = s
        .raw(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#.to_vec(),
        )
        .await;
    assert_eq!(code, 422);
    assert!(status["details"].get("name").is_none(), "{status}");
    assert_eq!(cluster_rv(&s).await, rv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immutable_config_maps_keep_their_data() {
    let s = TestServer::start().await;
    s.ok_stdin(&["create", "-f", "-"], "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\nimmutable: true\ndata:\n  a: \"1\"\n").await;
    let rv = cluster_rv(&s).await;
    let err = s
        .fails(&[
            "patch",
            "cm",
            "frozen",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"a":"2"}}"#,
        ])
        .await;
    assert!(
        err.contains("data: Forbidden: field is immutable when `immutable` is set"),
        "{err}"
    );
    let err = s
        .fails(&[
            "patch",
            "cm",
            "frozen",
            "--type",
            "merge",
            "-p",
            r#"{"immutable":false}"#,
        ])
        .await;
    assert!(err.contains("immutable: Forbidden"), "{err}");
    // Metadata may still change.
    s.ok(&["label", "cm", "frozen", "x=y"]).await;
    assert_ne!(cluster_rv(&s).await, rv);
    assert_eq!(
        s.ok(&["get", "cm", "frozen", "-o", "jsonpath={.data.a}"])
            .await,
        "1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_cluster_ip_cannot_change() {
    let s = TestServer::start().await;
    let services = "/api/v1/namespaces/default/services";
    let (code, created) = s
        .raw("POST", services, "application/json", br#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"fixed"},"spec":{"clusterIP":"10.0.0.77","ports":[{"port":80}]}}"#.to_vec())
        .await;
    assert_eq!(code, 201, "{created}");
    let (code, status) = s
        .raw(
            "PATCH",
            &format!("{services}/fixed"),
            "application/merge-patch+json",
            br#"{"spec":{"clusterIP":"10.0.0.78"}}"#.to_vec(),
        )
        .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "Service \"fixed\" is invalid: spec.clusterIPs[0]: Invalid value: [\"10.0.0.78\"]: may not change once set"
    );
    assert_eq!(
        status["details"]["causes"][0]["field"],
        "spec.clusterIPs[0]"
    );
    // Leaving the IPs out keeps them; the same IP is no change.
    let (code, kept) = s
        .raw(
            "PATCH",
            &format!("{services}/fixed"),
            "application/merge-patch+json",
            br#"{"spec":{"clusterIP":null,"clusterIPs":null}}"#.to_vec(),
        )
        .await;
    assert_eq!(code, 200, "{kept}");
    assert_eq!(kept["spec"]["clusterIP"], "10.0.0.77");
    assert_eq!(kept["spec"]["clusterIPs"], serde_json::json!(["10.0.0.77"]));
    let (code, same) = s
        .raw(
            "PATCH",
            &format!("{services}/fixed"),
            "application/merge-patch+json",
            br#"{"spec":{"clusterIP":"10.0.0.77","sessionAffinity":"ClientIP"}}"#.to_vec(),
        )
        .await;
    assert_eq!(code, 200, "{same}");
    // kubectl reads it as kube-apiserver says it.
    let out = s
        .kubectl(&[
            "patch",
            "service",
            "fixed",
            "--type=merge",
            "-p",
            r#"{"spec":{"clusterIP":"10.0.0.99"}}"#,
        ])
        .await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("may not change once set"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_field_managers_are_refused_and_store_nothing() {
    let s = TestServer::start().await;
    let rv = cluster_rv(&s).await;
    let body =
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"1"}}"#;
    let long = "m".repeat(129);
    let (code, status) = s
        .raw(
            "POST",
            &format!("/api/v1/namespaces/default/configmaps?fieldManager={long}"),
            "application/json",
            body.to_vec(),
        )
        .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "CreateOptions.meta.k8s.io \"\" is invalid: fieldManager: Too long: may not be more than 128 bytes"
    );
    let (code, status) = s
        .raw(
            "PUT",
            "/api/v1/namespaces/default/configmaps/c?fieldManager=a%09b",
            "application/json",
            body.to_vec(),
        )
        .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["details"]["causes"][0]["message"],
        "Invalid value: \"a\\tb\": invalid character U+0009 (at position 1)"
    );
    assert_eq!(status["details"]["kind"], "UpdateOptions");
    let (code, status) = s
        .raw(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/c",
            "application/apply-patch+yaml",
            body.to_vec(),
        )
        .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    assert_eq!(cluster_rv(&s).await, rv, "nothing was written");
}

/// A ConfigMap over 1 MiB of `data` + `binaryData`, or a Secret over 1 MiB of (decoded)
/// `data`, is refused with kube-apiserver's 422 on every kind of write, dry-run too, and
/// nothing is stored; 1 MiB exactly is fine. An object etcd would refuse (over 1.5 MiB
/// once stored) gets etcd's 500, except in a dry-run, which never reaches etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_over_one_mebibyte_is_refused_and_stores_nothing() {
    let s = TestServer::start().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let mib = 1024 * 1024;
    let too_long = "may not be more than 1048576 bytes";
    let big_cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "big"}, "data": {"a": "x".repeat(mib - 2)},
        // 3 decoded bytes: one over the limit together.
        "binaryData": {"b": "eHh4"}});
    let rv = cluster_rv(&s).await;
    for path in [cms.to_string(), format!("{cms}?dryRun=All")] {
        let (code, status) = s
            .raw(
                "POST",
                &path,
                "application/json",
                big_cm.to_string().into_bytes(),
            )
            .await;
        assert_eq!(code, 422, "{}", status["message"]);
        assert_eq!(
            status["message"],
            format!("ConfigMap \"big\" is invalid: []: Too long: {too_long}"),
            "{}",
            status["message"]
        );
        assert_eq!(
            status["details"]["causes"][0]["reason"],
            "FieldValueTooLong"
        );
        assert_eq!(status["details"]["causes"][0]["field"], "[]");
    }
    assert_eq!(cluster_rv(&s).await, rv);
    assert_eq!(s.get(&format!("{cms}/big")).await.0, 404);

    // 1 MiB exactly is stored; growing it by a byte, by update, patch or apply, is refused.
    let mut fits = big_cm.clone();
    fits["binaryData"]["b"] = serde_json::json!("eHg=");
    let (code, status) = s
        .raw(
            "POST",
            cms,
            "application/json",
            fits.to_string().into_bytes(),
        )
        .await;
    assert_eq!(code, 201, "{}", status["message"]);
    let rv = cluster_rv(&s).await;
    let mut grown = status.clone();
    grown["data"]["c"] = serde_json::json!("y");
    let patch = br#"{"data":{"c":"y"}}"#.to_vec();
    let apply =
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"c":"y"}}"#
            .to_vec();
    for (method, query, content_type, body) in [
        (
            "PUT",
            "",
            "application/json",
            grown.to_string().into_bytes(),
        ),
        ("PATCH", "", "application/merge-patch+json", patch.clone()),
        (
            "PATCH",
            "",
            "application/strategic-merge-patch+json",
            patch.clone(),
        ),
        (
            "PATCH",
            "?dryRun=All",
            "application/merge-patch+json",
            patch,
        ),
        (
            "PATCH",
            "?fieldManager=t&force=true",
            "application/apply-patch+yaml",
            apply,
        ),
    ] {
        let (code, status) = s
            .raw(method, &format!("{cms}/big{query}"), content_type, body)
            .await;
        assert_eq!(code, 422, "{method} {content_type}: {}", status["message"]);
        assert_eq!(
            status["details"]["causes"][0]["field"], "[]",
            "{}",
            status["message"]
        );
    }
    assert_eq!(cluster_rv(&s).await, rv);

    // Secrets count their decoded data; kube-apiserver names the field `data`.
    let secret = |name: &str, bytes: usize| {
        use base64::Engine as _;
        serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {"a": base64::engine::general_purpose::STANDARD.encode("z".repeat(bytes))}})
    };
    let secrets = "/api/v1/namespaces/default/secrets";
    let (code, status) = s
        .raw(
            "POST",
            secrets,
            "application/json",
            secret("over", mib + 1).to_string().into_bytes(),
        )
        .await;
    assert_eq!(code, 422, "{}", status["message"]);
    assert_eq!(
        status["message"],
        format!("Secret \"over\" is invalid: data: Too long: {too_long}")
    );
    let file = s.dir.path().join("over.json");
    std::fs::write(&file, secret("also-over", mib + 1).to_string()).expect("write");
    let err = s
        .fails(&["create", "-f", file.to_str().expect("utf-8")])
        .await;
    assert!(
        err.contains(&format!("data: Too long: {too_long}")),
        "{err}"
    );
    assert_eq!(cluster_rv(&s).await, rv);
    let (code, status) = s
        .raw(
            "POST",
            secrets,
            "application/json",
            secret("fits", mib).to_string().into_bytes(),
        )
        .await;
    assert_eq!(code, 201, "{}", status["message"]);

    // etcd's request limit: a custom resource of 1.6 MiB is refused as etcd refuses it
    // under kube-apiserver, but its dry-run is answered; 1.4 MiB is stored.
    s.ok_stdin(&["apply", "-f", "-"], "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: blobs.example.com}\nspec:\n  group: example.com\n  names: {kind: Blob, plural: blobs}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n").await;
    s.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/blobs.example.com",
    ])
    .await;
    let blobs = "/apis/example.com/v1/namespaces/default/blobs";
    let blob = |name: &str, kib: usize| {
        serde_json::json!({"apiVersion": "example.com/v1", "kind": "Blob",
            "metadata": {"name": name}, "spec": {"x": "y".repeat(kib * 1024)}})
        .to_string()
        .into_bytes()
    };
    let rv = cluster_rv(&s).await;
    let (code, status) = s
        .raw("POST", blobs, "application/json", blob("large", 1600))
        .await;
    assert_eq!(code, 500, "{}", status["message"]);
    assert_eq!(status["message"], "etcdserver: request is too large");
    assert!(status.get("reason").is_none());
    assert_eq!(cluster_rv(&s).await, rv);
    assert_eq!(s.get(&format!("{blobs}/large")).await.0, 404);
    let (code, _) = s
        .raw(
            "POST",
            &format!("{blobs}?dryRun=All"),
            "application/json",
            blob("large", 1600),
        )
        .await;
    assert_eq!(code, 201);
    let (code, status) = s
        .raw("POST", blobs, "application/json", blob("fits", 1400))
        .await;
    assert_eq!(code, 201, "{}", status["message"]);
    // Growing a stored one past the limit is refused the same way.
    let (code, status) = s
        .raw(
            "PATCH",
            &format!("{blobs}/fits"),
            "application/merge-patch+json",
            serde_json::json!({"spec": {"more": "m".repeat(200 * 1024)}})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(code, 500, "{}", status["message"]);
    let (_, stored) = s.get(&format!("{blobs}/fits")).await;
    assert!(stored["spec"].get("more").is_none());
}
