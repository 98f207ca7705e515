//! Unknown fields of built-in kinds (top-level and nested) at each `fieldValidation` level, as
//! kube-apiserver 1.37 treats them (differential `56-unknown-fields-builtin`): refused
//! under Strict before anything is written (dry-run included), dropped otherwise with a
//! `Warning` header per field unless Ignore, and refused by server-side apply whatever the
//! level.

use http_body_util::BodyExt as _;
use serde_json::{Value, json};

use crate::support::{TestServer, kubectl_with};

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

/// A request with a JSON (or YAML) body: (status, Warning header values, body).
async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, Vec<String>, Value) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(kube::client::Body::from(body.as_bytes().to_vec()))
        .expect("request");
    let response = client.send(request).await.expect("request sent");
    let status = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().expect("ASCII warning").to_string())
        .collect();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, warnings, body)
}

/// The cluster's resourceVersion: unchanged means nothing was written.
async fn cluster_rv(client: &kube::Client) -> String {
    let (_, _, list) = send(client, "GET", CONFIGMAPS, "application/json", "").await;
    list["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string()
}

fn warning(field: &str) -> String {
    format!("299 - \"unknown field \\\"{field}\\\"\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_refuses_unknown_top_level_fields_of_builtin_kinds_before_any_write() {
    let s = TestServer::start().await;
    let client = s.client().await;
    let rv = cluster_rv(&client).await;
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"zeta":1,"dta":{"a":"b"},"data":{"x":"y"},"alpha":2}"#;
    let refused = "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"zeta\", unknown field \"dta\", unknown field \"alpha\"";
    for query in [
        "?fieldValidation=Strict",
        "?fieldValidation=Strict&dryRun=All",
    ] {
        let path = format!("{CONFIGMAPS}{query}");
        let (status, warnings, answer) =
            send(&client, "POST", &path, "application/json", body).await;
        assert_eq!(status, 400, "{query}: {answer}");
        assert_eq!(answer["reason"], "BadRequest");
        assert_eq!(answer["message"], refused, "{query}");
        assert!(warnings.is_empty());
    }
    assert_eq!(cluster_rv(&client).await, rv, "nothing was written");
    s.ok(&["create", "configmap", "a", "--from-literal=x=y"])
        .await;
    let rv = cluster_rv(&client).await;
    for query in [
        "?fieldValidation=Strict",
        "?fieldValidation=Strict&dryRun=All",
    ] {
        let path = format!("{CONFIGMAPS}/a{query}");
        let (status, _, answer) = send(&client, "PUT", &path, "application/json", body).await;
        assert_eq!((status, answer["message"].as_str()), (400, Some(refused)));
    }
    // Another kind and group: the fields of each Go type are known.
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spac": {}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    let (status, _, answer) = send(
        &client,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments?fieldValidation=Strict",
        "application/json",
        &deployment.to_string(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["message"],
        "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spac\""
    );
    assert_eq!(cluster_rv(&client).await, rv, "nothing was written");

    // kubectl sends Strict by default and prints the server's message; its server-side
    // dry-run refuses the same way.
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typo}\ndta: {a: b}\n";
    for extra in [&[][..], &["--dry-run=server"][..]] {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        let out = kubectl_with(&s.kubeconfig, &args, Some(manifest)).await;
        assert!(!out.ok, "{args:?}: {}", out.stdout);
        assert!(
            out.stderr
                .contains("strict decoding error: unknown field \"dta\""),
            "{}",
            out.stderr
        );
    }
    s.fails(&["get", "configmap", "typo"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_strict_unknown_fields_are_dropped_with_a_warning_each_unless_ignore() {
    let s = TestServer::start().await;
    let client = s.client().await;
    let body = |name: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"zeta":1,"dta":{{"a":"b"}},"data":{{"x":"y"}},"alpha":2}}"#
        )
    };
    let in_document_order = vec![warning("zeta"), warning("dta"), warning("alpha")];
    for (name, query, expected) in [
        ("ign", "?fieldValidation=Ignore", vec![]),
        ("warn", "?fieldValidation=Warn", in_document_order.clone()),
        ("none", "", in_document_order.clone()),
        ("dry", "?dryRun=All", in_document_order.clone()),
    ] {
        let path = format!("{CONFIGMAPS}{query}");
        let (status, warnings, created) =
            send(&client, "POST", &path, "application/json", &body(name)).await;
        assert_eq!(status, 201, "{name}: {created}");
        assert_eq!(warnings, expected, "{name}");
        assert_eq!(created["data"], json!({"x": "y"}));
        for field in ["zeta", "dta", "alpha"] {
            assert!(created.get(field).is_none(), "{name} answered {field}");
        }
    }
    s.fails(&["get", "configmap", "dry"]).await;
    for name in ["ign", "warn", "none"] {
        let (_, _, stored) = send(
            &client,
            "GET",
            &format!("{CONFIGMAPS}/{name}"),
            "application/json",
            "",
        )
        .await;
        assert!(stored.get("dta").is_none(), "{name} stored dta: {stored}");
    }
    let (status, warnings, updated) = send(
        &client,
        "PUT",
        &format!("{CONFIGMAPS}/ign"),
        "application/json",
        &body("ign").replace("\"y\"", "\"z\""),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(warnings, in_document_order);
    assert_eq!(updated["data"], json!({"x": "z"}));
    assert!(updated.get("dta").is_none());

    // kubectl apply --validate=false sends Ignore: the typo is dropped, the rest stored.
    let manifest =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lax}\ndta: {a: b}\ndata: {k: v}\n";
    s.ok_stdin(&["apply", "--validate=false", "-f", "-"], manifest)
        .await;
    let stored = s.ok(&["get", "configmap", "lax", "-o", "json"]).await;
    let stored: Value = serde_json::from_str(&stored).expect("JSON");
    assert_eq!(stored["data"], json!({"k": "v"}));
    assert!(stored.get("dta").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_and_strategic_patches_judge_the_patched_object() {
    let s = TestServer::start().await;
    let client = s.client().await;
    s.ok(&["create", "configmap", "p", "--from-literal=x=y"])
        .await;
    let rv = cluster_rv(&client).await;
    let patch = r#"{"zeta":1,"dta":{"a":"b","c":[1,"x"]},"alpha":3}"#;
    let path = format!("{CONFIGMAPS}/p?fieldValidation=Strict");
    let sorted = "strict decoding error: unknown field \"alpha\", unknown field \"dta\", unknown field \"zeta\"";

    let (status, _, answer) = send(
        &client,
        "PATCH",
        &path,
        "application/strategic-merge-patch+json",
        patch,
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["reason"], "Invalid");
    let quoted = "Invalid value: \"map[alpha:3 dta:map[a:b c:[1 x]] zeta:1]\": ";
    assert_eq!(
        answer["message"],
        format!(" \"\" is invalid: patch: {quoted}{sorted}")
    );
    assert_eq!(
        answer["details"],
        json!({"causes": [{"reason": "FieldValueInvalid", "message": format!("{quoted}{sorted}"), "field": "patch"}]})
    );

    let (status, _, answer) = send(
        &client,
        "PATCH",
        &path,
        "application/merge-patch+json",
        patch,
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    let message = answer["message"].as_str().expect("message");
    assert!(
        message.starts_with(" \"\" is invalid: patch: Invalid value: \"{")
            && message.ends_with(sorted),
        "{message}"
    );
    assert_eq!(cluster_rv(&client).await, rv, "nothing was written");

    for (content_type, query, expected) in [
        (
            "application/merge-patch+json",
            "",
            vec![warning("alpha"), warning("dta"), warning("zeta")],
        ),
        (
            "application/strategic-merge-patch+json",
            "?fieldValidation=Warn",
            vec![warning("alpha"), warning("dta"), warning("zeta")],
        ),
        (
            "application/merge-patch+json",
            "?fieldValidation=Ignore",
            vec![],
        ),
        (
            "application/json-patch+json",
            "?fieldValidation=Ignore",
            vec![],
        ),
    ] {
        let body = if content_type == "application/json-patch+json" {
            r#"[{"op":"add","path":"/dta","value":1},{"op":"replace","path":"/data/x","value":"j"}]"#
                .to_string()
        } else {
            patch.replace("\"alpha\":3", "\"alpha\":3,\"data\":{\"x\":\"z\"}")
        };
        let (status, warnings, patched) = send(
            &client,
            "PATCH",
            &format!("{CONFIGMAPS}/p{query}"),
            content_type,
            &body,
        )
        .await;
        assert_eq!(status, 200, "{content_type}{query}: {patched}");
        assert_eq!(warnings, expected, "{content_type}{query}");
        for field in ["zeta", "dta", "alpha"] {
            assert!(patched.get(field).is_none(), "{content_type} kept {field}");
        }
    }
    let stored = s.ok(&["get", "configmap", "p", "-o", "json"]).await;
    let stored: Value = serde_json::from_str(&stored).expect("JSON");
    assert_eq!(stored["data"], json!({"x": "j"}));
    assert!(stored.get("dta").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_refuses_undeclared_fields_at_every_level() {
    let s = TestServer::start().await;
    let client = s.client().await;
    s.ok(&["create", "configmap", "live", "--from-literal=x=y"])
        .await;
    let rv = cluster_rv(&client).await;
    for (name, namespace, query) in [
        ("live", "", "&fieldValidation=Strict"),
        ("live", "default", "&fieldValidation=Ignore"),
        ("fresh", "default", ""),
        ("fresh", "", "&fieldValidation=Warn&dryRun=All"),
    ] {
        let manifest = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}{}}}\ndata: {{x: z}}\ndta: {{a: b}}\n",
            if namespace.is_empty() {
                String::new()
            } else {
                format!(", namespace: {namespace}")
            }
        );
        let path = format!("{CONFIGMAPS}/{name}?fieldManager=probe{query}");
        let (status, _, answer) = send(
            &client,
            "PATCH",
            &path,
            "application/apply-patch+yaml",
            &manifest,
        )
        .await;
        assert_eq!(status, 500, "{name}{query}: {answer}");
        assert_eq!(
            answer["message"],
            format!(
                "failed to create typed patch object ({namespace}/{name}; /v1, Kind=ConfigMap): .dta: field not declared in schema"
            )
        );
        assert!(answer.get("reason").is_none(), "{answer}");
    }
    let (status, _, answer) = send(
        &client,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/d?fieldManager=probe",
        "application/apply-patch+yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspac: {}\n",
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(
        answer["message"],
        "failed to create typed patch object (/d; apps/v1, Kind=Deployment): .spac: field not declared in schema"
    );
    assert_eq!(cluster_rv(&client).await, rv, "nothing was written");
    let live = s
        .ok(&["get", "configmap", "live", "-o", "jsonpath={.data.x}"])
        .await;
    assert_eq!(live, "y");
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";

/// A Deployment with unknown fields in metadata, spec, list items (containers, ports) and
/// an inlined struct (strategy.rollingUpdate); labels, annotations and resource limits
/// take any key.
const NESTED: &str = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","bogus":1,"labels":{"any":"x"}},"spec":{"replicass":2,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"},"annotations":{"z":"q"}},"spec":{"containers":[{"name":"c","image":"nginx","imagePullPolicyy":"Always","resources":{"limits":{"cpu":"1"}},"ports":[{"containerPort":80,"bad":1}]},{"name":"c2","image":"x","extra":{"y":1}}]}},"strategy":{"rollingUpdate":{"maxSurge":"25%","zz":1}}}}"#;

const NESTED_UNKNOWN: [&str; 6] = [
    "metadata.bogus",
    "spec.replicass",
    "spec.template.spec.containers[0].imagePullPolicyy",
    "spec.template.spec.containers[0].ports[0].bad",
    "spec.template.spec.containers[1].extra",
    "spec.strategy.rollingUpdate.zz",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_unknown_fields_are_refused_under_strict_with_their_paths() {
    let s = TestServer::start().await;
    let client = s.client().await;
    let rv = cluster_rv(&client).await;
    let listed: Vec<String> = NESTED_UNKNOWN
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    let refused = format!(
        "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: {}",
        listed.join(", ")
    );
    for query in [
        "?fieldValidation=Strict",
        "?fieldValidation=Strict&dryRun=All",
    ] {
        let path = format!("{DEPLOYMENTS}{query}");
        let (status, _, answer) = send(&client, "POST", &path, "application/json", NESTED).await;
        assert_eq!(status, 400, "{query}: {answer}");
        assert_eq!(answer["message"], refused.as_str(), "{query}");
    }
    assert_eq!(cluster_rv(&client).await, rv, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_unknown_fields_are_dropped_with_a_warning_each_and_never_stored() {
    let s = TestServer::start().await;
    let client = s.client().await;
    let (status, warnings, created) = send(
        &client,
        "POST",
        &format!("{DEPLOYMENTS}?fieldValidation=Warn"),
        "application/json",
        NESTED,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let expected: Vec<String> = NESTED_UNKNOWN.iter().map(|f| warning(f)).collect();
    assert_eq!(warnings, expected);
    assert!(created["metadata"].get("bogus").is_none());
    assert_eq!(
        created["metadata"]["labels"]["any"], "x",
        "map keys are kept"
    );
    let containers = &created["spec"]["template"]["spec"]["containers"];
    assert!(containers[0].get("imagePullPolicyy").is_none());
    assert!(containers[0]["ports"][0].get("bad").is_none());
    assert_eq!(containers[0]["resources"]["limits"]["cpu"], "1");
    assert!(containers[1].get("extra").is_none());
    assert_eq!(
        created["spec"]["strategy"]["rollingUpdate"],
        json!({"maxSurge": "25%", "maxUnavailable": "25%"})
    );
    // Ignore drops them silently; kubectl reads back what was stored.
    let ignored = NESTED.replace("\"name\":\"d\"", "\"name\":\"e\"");
    let (status, warnings, _) = send(
        &client,
        "POST",
        &format!("{DEPLOYMENTS}?fieldValidation=Ignore"),
        "application/json",
        &ignored,
    )
    .await;
    assert_eq!(status, 201);
    assert!(warnings.is_empty(), "{warnings:?}");
    let stored = s.ok(&["get", "deployment", "d", "e", "-o", "json"]).await;
    assert!(!stored.contains("imagePullPolicyy"), "{stored}");
    assert!(!stored.contains("replicass"), "{stored}");
    assert!(!stored.contains("bogus"), "{stored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_list_nested_unknown_fields_sorted_as_go_re_encodes_them() {
    let s = TestServer::start().await;
    let client = s.client().await;
    let (status, _, _) = send(
        &client,
        "POST",
        DEPLOYMENTS,
        "application/json",
        &NESTED.replace(",\"bogus\":1", ""),
    )
    .await;
    assert_eq!(status, 201);
    let patch = r#"{"spec":{"zzz":1,"template":{"spec":{"containers":[{"name":"c","image":"nginx","bb":1,"aa":2}]}},"aaa":1},"metadata":{"q":1}}"#;
    let (status, _, answer) = send(
        &client,
        "PATCH",
        &format!("{DEPLOYMENTS}/d?fieldValidation=Strict"),
        "application/strategic-merge-patch+json",
        patch,
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(
        answer["message"],
        " \"\" is invalid: patch: Invalid value: \"map[metadata:map[q:1] spec:map[aaa:1 template:map[spec:map[containers:[map[aa:2 bb:1 image:nginx name:c]]]] zzz:1]]\": strict decoding error: unknown field \"metadata.q\", unknown field \"spec.aaa\", unknown field \"spec.template.spec.containers[0].aa\", unknown field \"spec.template.spec.containers[0].bb\", unknown field \"spec.zzz\""
    );
    let (status, warnings, patched) = send(
        &client,
        "PATCH",
        &format!("{DEPLOYMENTS}/d"),
        "application/merge-patch+json",
        r#"{"spec":{"zzz":1,"strategy":{"rollingUpdate":{"b":1,"a":2}}},"metadata":{"q":1}}"#,
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let expected: Vec<String> = [
        "metadata.q",
        "spec.strategy.rollingUpdate.a",
        "spec.strategy.rollingUpdate.b",
        "spec.zzz",
    ]
    .iter()
    .map(|f| warning(f))
    .collect();
    assert_eq!(warnings, expected);
    assert!(patched["spec"].get("zzz").is_none());
    assert!(
        patched["spec"]["strategy"]["rollingUpdate"]
            .get("a")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_names_nested_undeclared_fields_by_list_keys() {
    let s = TestServer::start().await;
    let client = s.client().await;
    for (body, path) in [
        (
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicass":1}}"#,
            ".spec.replicass",
        ),
        (
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","qq":1}}"#,
            ".metadata.qq",
        ),
        (
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"template":{"spec":{"containers":[{"name":"c","image":"nginx","ports":[{"containerPort":80,"zz":1}]}]}}}}"#,
            ".spec.template.spec.containers[name=\"c\"].ports[containerPort=80,protocol=\"TCP\"].zz",
        ),
    ] {
        for query in [
            "fieldValidation=Ignore",
            "fieldValidation=Strict&dryRun=All",
        ] {
            let (status, _, answer) = send(
                &client,
                "PATCH",
                &format!("{DEPLOYMENTS}/d?fieldManager=probe&{query}"),
                "application/apply-patch+yaml",
                body,
            )
            .await;
            assert_eq!(status, 500, "{answer}");
            assert_eq!(
                answer["message"],
                format!(
                    "failed to create typed patch object (/d; apps/v1, Kind=Deployment): {path}: field not declared in schema"
                )
                .as_str()
            );
        }
    }
    s.fails(&["get", "deployment", "d"]).await;
}
