//! Aggregated discovery (`apidiscovery.k8s.io/v2`) at `/api` and `/apis`: read by kube-rs
//! and kubectl, kept in step with CRDs, revalidated by entity tag, and in agreement with
//! the plain per-group documents.

use http_body_util::BodyExt as _;
use kube::discovery::{Discovery, Scope};
use serde_json::{Value, json};

use crate::support::TestServer;

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// A namespaced CRD with three served versions; the storage version (v1beta1) is not the
/// preferred one (v1).
fn gear_crd() -> Value {
    let version = |name: &str, storage: bool| {
        json!({"name": name, "served": true, "storage": storage,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            "subresources": {"status": {}}})
    };
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gears.discovery.example.com"},
        "spec": {"group": "discovery.example.com", "scope": "Namespaced",
            "names": {"kind": "Gear", "plural": "gears", "shortNames": ["gr"], "categories": ["machines"]},
            "versions": [version("v1alpha1", false), version("v1beta1", true), version("v1", false)]}})
}

async fn install_gear_crd(s: &TestServer) {
    s.ok_stdin(&["create", "-f", "-"], &gear_crd().to_string())
        .await;
    s.ok(&[
        "wait",
        "--for",
        "condition=Established",
        "crd/gears.discovery.example.com",
        "--timeout=5s",
    ])
    .await;
}

/// A GET with headers: (status, response headers, body).
async fn get_with(
    client: &kube::Client,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, Vec<u8>) {
    let mut request = http::Request::builder().method("GET").uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .send(
            request
                .body(kube::client::Body::from(Vec::new()))
                .expect("request"),
        )
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

async fn aggregated(client: &kube::Client, path: &str) -> Value {
    let (status, headers, body) = get_with(client, path, &[("Accept", AGGREGATED)]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some(AGGREGATED)
    );
    serde_json::from_slice(&body).expect("JSON")
}

fn group_names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|g| {
            g.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_aggregated_discovery_sees_core_apps_and_crd_groups() {
    let s = TestServer::start().await;
    install_gear_crd(&s).await;
    let client = s.client().await;
    let discovery = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    for group in [
        "",
        "apps",
        "batch",
        "apiextensions.k8s.io",
        "discovery.example.com",
    ] {
        assert!(discovery.has_group(group), "no group {group:?}");
    }

    let core = discovery.get("").expect("core group");
    assert_eq!(core.preferred_version(), Some("v1"));
    let core_v1 = core.versioned_resources("v1");
    let find = |resources: &[(
        kube::discovery::ApiResource,
        kube::discovery::ApiCapabilities,
    )],
                plural: &str| {
        resources
            .iter()
            .find(|(r, _)| r.plural == plural)
            .cloned()
            .unwrap_or_else(|| panic!("no {plural}"))
    };
    let (configmaps, caps) = find(&core_v1, "configmaps");
    assert_eq!(configmaps.kind, "ConfigMap");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert_eq!(
        caps.operations,
        [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch"
        ]
    );
    let (_, caps) = find(&core_v1, "namespaces");
    assert_eq!(caps.scope, Scope::Cluster);
    // kube-apiserver does not delete namespaces as a collection, nor does this server.
    assert!(!caps.supports_operation("deletecollection"));
    assert!(caps.subresources.iter().any(|(r, _)| r.plural == "status"));

    let apps = discovery.get("apps").expect("apps");
    let (deployments, caps) = find(&apps.versioned_resources("v1"), "deployments");
    assert_eq!(deployments.api_version, "apps/v1");
    let subresources: Vec<&str> = caps
        .subresources
        .iter()
        .map(|(r, _)| r.plural.as_str())
        .collect();
    assert_eq!(subresources, ["scale", "status"]);

    let gears = discovery.get("discovery.example.com").expect("CRD group");
    assert_eq!(
        gears.versions().collect::<Vec<_>>(),
        ["v1", "v1beta1", "v1alpha1"],
        "Kubernetes' version priority, not the storage version, decides the preferred"
    );
    assert_eq!(gears.preferred_version(), Some("v1"));
    let (gear, caps) = gears.recommended_kind("Gear").expect("Gear");
    assert_eq!(
        (gear.version.as_str(), gear.plural.as_str()),
        ("v1", "gears")
    );
    assert_eq!(caps.scope, Scope::Namespaced);
    assert_eq!(
        caps.operations,
        [
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "create",
            "update",
            "watch"
        ],
        "custom resources list their verbs in kube-apiserver's order"
    );

    // Deleted, the group is gone.
    s.ok(&["delete", "crd", "gears.discovery.example.com"])
        .await;
    let discovery = Discovery::new(client)
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    assert!(!discovery.has_group("discovery.example.com"));
    assert!(discovery.has_group("apps"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_documents_follow_crds_and_revalidate_by_entity_tag() {
    let s = TestServer::start().await;
    let client = s.client().await;
    let (status, headers, _) = get_with(&client, "/apis", &[("Accept", AGGREGATED)]).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("vary").and_then(|v| v.to_str().ok()),
        Some("Accept")
    );
    let etag = headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("etag")
        .to_string();
    assert!(etag.starts_with('"') && etag.len() == 130, "{etag}");

    // Unchanged: 304 without a body.
    let (status, headers, body) = get_with(
        &client,
        "/apis",
        &[("Accept", AGGREGATED), ("If-None-Match", &etag)],
    )
    .await;
    assert_eq!((status, body.len()), (304, 0));
    assert_eq!(
        headers.get("etag").and_then(|v| v.to_str().ok()),
        Some(etag.as_str())
    );

    // A CRD changes the document, its tag, and only /apis.
    let (_, core_before, _) = get_with(&client, "/api", &[("Accept", AGGREGATED)]).await;
    install_gear_crd(&s).await;
    let (status, headers, body) = get_with(
        &client,
        "/apis",
        &[("Accept", AGGREGATED), ("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(status, 200, "a stale tag gets the new document");
    assert_ne!(
        headers.get("etag").and_then(|v| v.to_str().ok()),
        Some(etag.as_str())
    );
    let list: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(
        group_names(&list).last().map(String::as_str),
        Some("discovery.example.com")
    );
    let (_, core_after, _) = get_with(&client, "/api", &[("Accept", AGGREGATED)]).await;
    assert_eq!(core_before.get("etag"), core_after.get("etag"));

    s.ok(&["delete", "crd", "gears.discovery.example.com"])
        .await;
    let list = aggregated(&client, "/apis").await;
    assert!(
        !group_names(&list)
            .iter()
            .any(|g| g == "discovery.example.com")
    );
}

/// Every resource the aggregated documents list is listed the same way by the plain
/// `/api/v1` and `/apis/<group>/<version>` documents, and the other way round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_and_plain_discovery_agree() {
    let s = TestServer::start().await;
    install_gear_crd(&s).await;
    let client = s.client().await;
    let core = aggregated(&client, "/api").await;
    let groups = aggregated(&client, "/apis").await;
    let (_, plain_groups) = s.get("/apis").await;
    let plain_names: Vec<&str> = plain_groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    let mut aggregated_names = group_names(&groups);
    let mut sorted_plain: Vec<String> = plain_names.iter().map(|n| n.to_string()).collect();
    aggregated_names.sort();
    sorted_plain.sort();
    assert_eq!(aggregated_names, sorted_plain, "the same groups");

    let mut compared = 0;
    for item in core["items"]
        .as_array()
        .into_iter()
        .chain(groups["items"].as_array())
        .flatten()
    {
        let group = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let versions = item["versions"].as_array().expect("versions");
        if !group.is_empty() {
            let (_, plain_group) = s.get(&format!("/apis/{group}")).await;
            let plain_versions: Vec<&str> = plain_group["versions"]
                .as_array()
                .expect("versions")
                .iter()
                .filter_map(|v| v["version"].as_str())
                .collect();
            let listed: Vec<&str> = versions
                .iter()
                .filter_map(|v| v["version"].as_str())
                .collect();
            assert_eq!(
                listed, plain_versions,
                "{group}: versions in the same order"
            );
            assert_eq!(
                plain_group
                    .pointer("/preferredVersion/version")
                    .and_then(Value::as_str),
                listed.first().copied()
            );
        }
        for version in versions {
            assert_eq!(version["freshness"], "Current");
            let v = version["version"].as_str().expect("version");
            let path = if group.is_empty() {
                format!("/api/{v}")
            } else {
                format!("/apis/{group}/{v}")
            };
            let (status, plain) = s.get(&path).await;
            assert_eq!(status, 200, "{path}");
            // The plain list as the aggregated one would say it.
            let mut expected: Vec<Value> = Vec::new();
            for entry in plain["resources"].as_array().expect("resources") {
                let name = entry["name"].as_str().expect("name");
                let own_kind = |kind: &Value| {
                    // The CRD's group; the others are built in.
                    if group == "discovery.example.com" {
                        json!({"group": group, "version": v, "kind": kind})
                    } else {
                        json!({"group": "", "version": "", "kind": kind})
                    }
                };
                let response_kind = match (entry.get("group"), entry.get("version")) {
                    (Some(g), Some(gv)) => {
                        json!({"group": g, "version": gv, "kind": entry["kind"]})
                    }
                    _ => own_kind(&entry["kind"]),
                };
                if let Some((parent, sub)) = name.split_once('/') {
                    let parent = expected
                        .iter_mut()
                        .find(|r| r["resource"] == parent)
                        .expect("parent listed first");
                    let subresources = parent
                        .as_object_mut()
                        .expect("object")
                        .entry("subresources")
                        .or_insert_with(|| json!([]));
                    subresources
                        .as_array_mut()
                        .expect("array")
                        .push(json!({"subresource": sub, "responseKind": response_kind, "verbs": entry["verbs"]}));
                    continue;
                }
                let mut resource = json!({
                    "resource": name,
                    "responseKind": response_kind,
                    "scope": if entry["namespaced"] == true { "Namespaced" } else { "Cluster" },
                    "singularResource": entry["singularName"],
                    "verbs": entry["verbs"],
                });
                for field in ["shortNames", "categories"] {
                    if let Some(value) = entry.get(field) {
                        resource[field] = value.clone();
                    }
                }
                expected.push(resource);
            }
            assert_eq!(&version["resources"], &json!(expected), "{path}");
            compared += expected.len();
        }
    }
    assert!(compared > 30, "only {compared} resources compared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_negotiates_accept_as_kube_apiserver() {
    let s = TestServer::start().await;
    let client = s.client().await;
    let kind_of = |body: &[u8]| -> String {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["kind"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let v2beta1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
    // (path, Accept, status, kind) as kube-apiserver 1.37 answered them.
    let cases: [(&str, String, u16, &str); 12] = [
        (
            "/apis",
            AGGREGATED.to_string(),
            200,
            "APIGroupDiscoveryList",
        ),
        (
            "/api",
            format!("{AGGREGATED},application/json"),
            200,
            "APIGroupDiscoveryList",
        ),
        (
            "/apis",
            format!("application/json, {AGGREGATED};q=0.1"),
            200,
            "APIGroupDiscoveryList",
        ),
        (
            "/api",
            format!("text/html, {AGGREGATED}"),
            200,
            "APIGroupDiscoveryList",
        ),
        (
            "/apis",
            format!("{v2beta1}, {AGGREGATED}"),
            200,
            "APIGroupDiscoveryList",
        ),
        ("/apis", v2beta1.to_string(), 406, "Status"),
        (
            "/apis",
            format!("{v2beta1}, application/json"),
            200,
            "APIGroupList",
        ),
        ("/api", String::new(), 200, "APIVersions"),
        (
            "/api",
            "application/json;as=Table;g=meta.k8s.io;v=v1".to_string(),
            406,
            "Status",
        ),
        ("/apis/apps/v1", AGGREGATED.to_string(), 406, "Status"),
        (
            "/apis/apps/v1",
            format!("{AGGREGATED}, application/json"),
            200,
            "APIResourceList",
        ),
        ("/apis/apps", "text/html".to_string(), 406, "Status"),
    ];
    for (path, accept, status, kind) in cases {
        let headers: Vec<(&str, &str)> = if accept.is_empty() {
            vec![]
        } else {
            vec![("Accept", accept.as_str())]
        };
        let (got, _, body) = get_with(&client, path, &headers).await;
        assert_eq!(
            (got, kind_of(&body).as_str()),
            (status, kind),
            "GET {path} with Accept {accept:?}: {}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_aggregated_discovery_in_two_requests() {
    let s = TestServer::start().await;
    install_gear_crd(&s).await;
    // A fresh discovery cache: kubectl must discover everything now.
    let cache = s.dir.path().join("fresh-cache");
    let cache = cache.to_string_lossy();
    let out = crate::support::kubectl_with(
        &s.kubeconfig,
        &["--cache-dir", &cache, "get", "gears", "-A", "-v=6"],
        None,
    )
    .await;
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let requests: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("verb=\"GET\"") || l.contains("GET https://"))
        .collect();
    let discovery: Vec<&&str> = requests
        .iter()
        .filter(|l| {
            l.contains("/api?")
                || l.contains("/apis?")
                || l.contains("/apis/") && !l.contains("/gears")
        })
        .collect();
    assert_eq!(
        discovery.len(),
        2,
        "only /api and /apis, no per-group requests:\n{}",
        requests.join("\n")
    );
    let out = s
        .ok(&[
            "--cache-dir",
            &cache,
            "api-resources",
            "--api-group=discovery.example.com",
            "--no-headers",
        ])
        .await;
    assert!(
        out.contains("gears") && out.contains("gr") && out.contains("discovery.example.com/v1 "),
        "{out}"
    );
    let out = s
        .ok(&["--cache-dir", &cache, "get", "machines", "-A"])
        .await;
    assert!(out.is_empty() || out.contains("No resources"), "{out}");
}

/// With `aggregated_discovery: false` the server behaves as kube-apiserver before 1.26:
/// the roots answer the plain documents even to kube-rs's aggregated Accept (which ends
/// with a plain `application/json` clause), so kube-rs's aggregated discovery finds no
/// group and its per-group discovery finds them all; a request asking only for the
/// aggregated list is not acceptable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_aggregated_discovery_roots_answer_plain_documents_and_kube_rs_falls_back() {
    let s = TestServer::start_with(|c| c.aggregated_discovery = false).await;
    install_gear_crd(&s).await;
    let client = s.client().await;

    let aggregated = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .expect("aggregated discovery answered");
    assert_eq!(aggregated.groups().count(), 0);

    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("per-group discovery");
    for group in ["", "apps", "discovery.example.com"] {
        assert!(discovery.has_group(group), "no group {group:?}");
    }
    let apps = discovery.get("apps").expect("apps");
    assert!(
        apps.versioned_resources("v1")
            .iter()
            .any(|(r, _)| r.kind == "Deployment")
    );

    let kube_rs_accept = kube::core::discovery::v2::ACCEPT_AGGREGATED_DISCOVERY_V2;
    for (path, kind) in [("/api", "APIVersions"), ("/apis", "APIGroupList")] {
        let (status, headers, body) = get_with(&client, path, &[("Accept", kube_rs_accept)]).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        let document: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(document["kind"], kind, "{path}");

        let (status, _, body) = get_with(&client, path, &[("Accept", AGGREGATED)]).await;
        assert_eq!(status, 406, "{path}: {}", String::from_utf8_lossy(&body));
    }
}
