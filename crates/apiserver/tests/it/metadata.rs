//! Metadata-only answers (`as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`), driven by
//! kube-rs's metadata calls and watcher and by raw requests with the `Accept` headers
//! kube-apiserver was checked with (differential cases 50–53).

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use http_body_util::BodyExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, watcher};
use serde_json::{Value, json};

use crate::support::TestServer;

const PARTIAL: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const PARTIAL_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
const NAMESPACE: &str = "/api/v1/namespaces/default";

/// A raw request with an `Accept` header: (status, body as JSON lines or one document).
async fn request(
    client: &kube::Client,
    method: &str,
    path: &str,
    accept: &str,
    body: Option<Value>,
) -> (u16, Vec<Value>) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("accept", accept)
        .header("content-type", "application/json")
        .body(kube::client::Body::from(
            body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        ))
        .expect("request");
    let response = client.send(request).await.expect("request sent");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    let values = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (status, values)
}

async fn one(
    client: &kube::Client,
    method: &str,
    path: &str,
    accept: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, mut values) = request(client, method, path, accept, body).await;
    assert_eq!(values.len(), 1, "{method} {path}: {values:?}");
    (status, values.remove(0))
}

fn config_map(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"payload": "x".repeat(64)}})
}

fn assert_partial(value: &Value, name: &str) {
    assert_eq!(value["kind"], "PartialObjectMetadata", "{value}");
    assert_eq!(value["apiVersion"], "meta.k8s.io/v1", "{value}");
    assert_eq!(value["metadata"]["name"], name, "{value}");
    let keys: Vec<&String> = value.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["kind", "apiVersion", "metadata"], "{value}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_metadata_calls_get_partial_object_metadata() {
    let s = TestServer::start().await;
    let client = s.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for name in ["a", "b", "c"] {
        let object: ConfigMap =
            serde_json::from_value(config_map(name, json!({"group": "abc"}))).expect("cm");
        api.create(&PostParams::default(), &object)
            .await
            .expect("create");
    }
    let got: PartialObjectMeta<ConfigMap> = api.get_metadata("a").await.expect("get_metadata");
    assert_eq!(got.metadata.name.as_deref(), Some("a"));
    assert!(got.metadata.managed_fields.is_some(), "{got:?}");
    assert_eq!(
        got.types
            .as_ref()
            .map(|t| (t.api_version.as_str(), t.kind.as_str())),
        Some(("meta.k8s.io/v1", "PartialObjectMetadata"))
    );

    let listed = api
        .list_metadata(&ListParams::default().labels("group=abc").limit(2))
        .await
        .expect("list_metadata");
    let names: Vec<_> = listed
        .items
        .iter()
        .map(|o| o.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert!(listed.metadata.continue_.is_some());
    let empty = api
        .list_metadata(&ListParams::default().labels("group=none"))
        .await
        .expect("an empty metadata list (items: null) parses");
    assert!(empty.items.is_empty());

    let patched = api
        .patch_metadata(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"seen": "yes"}}})),
        )
        .await
        .expect("patch_metadata");
    assert_eq!(
        patched.metadata.annotations.unwrap_or_default().get("seen"),
        Some(&"yes".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_lists_hold_each_items_whole_metadata_and_nothing_else() {
    let s = TestServer::start().await;
    let client = s.client().await;
    for index in 0..40 {
        let labels = json!({"index": index.to_string(), "tricky": "a-b.c"});
        let mut object = config_map(&format!("cm-{index:02}"), labels);
        object["metadata"]["annotations"] = json!({"quote": "\"}{\\", "metadata": "{\"name\":1}"});
        let (status, _) = one(
            &client,
            "POST",
            &format!("{NAMESPACE}/configmaps"),
            "application/json",
            Some(object),
        )
        .await;
        assert_eq!(status, 201);
    }
    let path = format!("{NAMESPACE}/configmaps?labelSelector=tricky");
    let same_metadata = |whole: &Value, partial: &Value| {
        assert_eq!(partial["kind"], "PartialObjectMetadataList");
        assert_eq!(partial["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(partial["metadata"], whole["metadata"]);
        let whole_items = whole["items"].as_array().expect("items");
        let partial_items = partial["items"].as_array().expect("items");
        assert_eq!(partial_items.len(), 40);
        for (full, meta) in whole_items.iter().zip(partial_items) {
            let name = full["metadata"]["name"].as_str().expect("name");
            assert_partial(meta, name);
            assert_eq!(meta["metadata"], full["metadata"]);
        }
    };
    let (status, whole) = one(&client, "GET", &path, "application/json", None).await;
    assert_eq!(status, 200);
    let (status, partial) = one(&client, "GET", &path, PARTIAL_LIST, None).await;
    assert_eq!(status, 200, "{partial}");
    same_metadata(&whole, &partial);

    // The same after a restart (objects read back from the store file).
    let s = TestServer::start_in(s.stop().await, |_| {}).await;
    let client = s.client().await;
    let (_, partial) = one(&client, "GET", &path, PARTIAL_LIST, None).await;
    same_metadata(&whole, &partial);

    // v1beta1, and the same page boundaries as whole lists.
    let (_, page) = one(
        &client,
        "GET",
        &format!("{path}&limit=15"),
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1",
        None,
    )
    .await;
    assert_eq!(page["apiVersion"], "meta.k8s.io/v1beta1");
    assert_eq!(page["items"][0]["apiVersion"], "meta.k8s.io/v1beta1");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(15));
    let token = page["metadata"]["continue"].as_str().expect("continue");
    let (_, rest) = one(
        &client,
        "GET",
        &format!("{path}&continue={token}"),
        PARTIAL_LIST,
        None,
    )
    .await;
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(25));
    assert_eq!(rest["items"][0]["metadata"]["name"], "cm-15");

    let (_, empty) = one(
        &client,
        "GET",
        &format!("{NAMESPACE}/configmaps?labelSelector=absent"),
        PARTIAL_LIST,
        None,
    )
    .await;
    assert_eq!(empty["items"], Value::Null, "{empty}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_answer_metadata_and_deletes_answer_as_kube_apiserver() {
    let s = TestServer::start().await;
    let client = s.client().await;
    let collection = format!("{NAMESPACE}/configmaps");
    let fallback = format!("{PARTIAL}, application/json");

    let (status, created) = one(
        &client,
        "POST",
        &collection,
        &fallback,
        Some(config_map("w", json!({"app": "w"}))),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_partial(&created, "w");
    assert_eq!(created["metadata"]["labels"]["app"], "w");

    let (status, replaced) = one(
        &client,
        "PUT",
        &format!("{collection}/w"),
        PARTIAL,
        Some(config_map("w", json!({"app": "w2"}))),
    )
    .await;
    assert_eq!(status, 200, "{replaced}");
    assert_partial(&replaced, "w");
    assert_eq!(replaced["metadata"]["labels"]["app"], "w2");

    // Errors stay Status objects.
    let (status, conflict) = one(
        &client,
        "POST",
        &collection,
        PARTIAL,
        Some(config_map("w", json!({}))),
    )
    .await;
    assert_eq!((status, conflict["kind"].as_str()), (409, Some("Status")));

    // A removed ConfigMap is answered with a success Status (metadata-only or not); a
    // Service with the object.
    let (status, deleted) = one(&client, "DELETE", &format!("{collection}/w"), PARTIAL, None).await;
    assert_eq!(status, 200);
    assert_eq!(deleted["kind"], "Status", "{deleted}");
    assert_eq!(deleted["status"], "Success");
    assert_eq!(deleted["details"]["name"], "w");
    assert_eq!(deleted["details"]["kind"], "configmaps");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let service: Service = serde_json::from_value(
        json!({"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}),
    )
    .expect("service");
    services
        .create(&PostParams::default(), &service)
        .await
        .expect("create service");
    let (status, deleted) = one(
        &client,
        "DELETE",
        &format!("{NAMESPACE}/services/svc"),
        PARTIAL,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_partial(&deleted, "svc");

    // A finalizer holds a deleted object; the patch that releases it is answered with the
    // released object (no finalizers), which is then gone.
    let mut held = config_map("held", json!({}));
    held["metadata"]["finalizers"] = json!(["plumb.dev/hold"]);
    let (status, _) = one(&client, "POST", &collection, PARTIAL, Some(held)).await;
    assert_eq!(status, 201);
    let (status, marked) = one(
        &client,
        "DELETE",
        &format!("{collection}/held"),
        PARTIAL,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_partial(&marked, "held");
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    let request = http::Request::builder()
        .method("PATCH")
        .uri(format!("{collection}/held"))
        .header("accept", PARTIAL)
        .header("content-type", "application/merge-patch+json")
        .body(kube::client::Body::from(
            json!({"metadata": {"finalizers": null}})
                .to_string()
                .into_bytes(),
        ))
        .expect("request");
    let response = client.send(request).await.expect("patch sent");
    assert_eq!(response.status().as_u16(), 200);
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let released: Value = serde_json::from_slice(&bytes).expect("json");
    assert_partial(&released, "held");
    assert_eq!(released["metadata"].get("finalizers"), None, "{released}");
    let (status, _) = one(&client, "GET", &format!("{collection}/held"), PARTIAL, None).await;
    assert_eq!(status, 404);

    // The answer cannot be a list; the create happened all the same (as kube-apiserver).
    let (status, refused) = one(
        &client,
        "POST",
        &collection,
        PARTIAL_LIST,
        Some(config_map("made", json!({"batch": "yes"}))),
    )
    .await;
    assert_eq!(status, 406, "{refused}");
    assert_eq!(
        refused["message"],
        "you requested PartialObjectMetadataList, but the requested object is not a list (*core.ConfigMap)"
    );
    assert!(s.kubectl(&["get", "configmap", "made"]).await.ok);
    let (status, removed) = one(
        &client,
        "DELETE",
        &format!("{collection}?labelSelector=batch"),
        PARTIAL_LIST,
        None,
    )
    .await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["kind"], "PartialObjectMetadataList");
    assert_partial(&removed["items"][0], "made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_headers_the_server_cannot_answer_get_406_before_anything_is_done() {
    let s = TestServer::start().await;
    let client = s.client().await;
    s.ok(&["create", "configmap", "one", "--from-literal=a=b"])
        .await;
    let object = format!("{NAMESPACE}/configmaps/one");
    let only = "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf";
    for accept in [
        "application/json;as=Foo;g=meta.k8s.io;v=v1",
        "application/json;as=PartialObjectMetadata;g=example.com;v=v1",
        "application/json;as=PartialObjectMetadata",
    ] {
        let (status, body) = one(&client, "GET", &object, accept, None).await;
        assert_eq!(status, 406, "{accept}: {body}");
        assert_eq!(body["reason"], "NotAcceptable");
        assert_eq!(body["message"], only);
    }
    // With a fallback, the whole object.
    let (status, body) = one(
        &client,
        "GET",
        &object,
        "application/json;as=Foo;g=meta.k8s.io;v=v1, application/json",
        None,
    )
    .await;
    assert_eq!((status, body["kind"].as_str()), (200, Some("ConfigMap")));
    // Unknown media types: the router's wording.
    let (status, body) = one(&client, "GET", &object, "text/html", None).await;
    assert_eq!(status, 406);
    assert_eq!(
        body["message"],
        "406: Not Acceptable\n\nAvailable representations: application/json, application/yaml, application/vnd.kubernetes.protobuf"
    );
    // Shapes: a list as an object, an object as a list.
    let (status, body) = one(
        &client,
        "GET",
        &format!("{NAMESPACE}/configmaps"),
        PARTIAL,
        None,
    )
    .await;
    assert_eq!(status, 406);
    assert_eq!(
        body["message"],
        "you requested PartialObjectMetadata, but the requested object is a list (*core.ConfigMapList)"
    );
    // Nothing is written when the answer cannot be negotiated.
    let (status, _) = one(
        &client,
        "POST",
        &format!("{NAMESPACE}/configmaps"),
        "application/json;as=Foo;g=meta.k8s.io;v=v1",
        Some(config_map("never", json!({}))),
    )
    .await;
    assert_eq!(status, 406);
    assert!(!s.kubectl(&["get", "configmap", "never"]).await.ok);
    // The server keeps serving.
    let (status, body) = one(&client, "GET", &object, PARTIAL, None).await;
    assert_eq!(status, 200);
    assert_partial(&body, "one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_watches_send_partial_objects_and_bookmarks() {
    let s = TestServer::start().await;
    let client = s.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let watching = json!({"watched": "yes"});
    let first: ConfigMap = serde_json::from_value(config_map("w1", watching.clone())).expect("cm");
    let from = api
        .create(&PostParams::default(), &first)
        .await
        .expect("create")
        .metadata
        .resource_version
        .expect("rv");
    api.patch(
        "w1",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"n": "2"}}})),
    )
    .await
    .expect("patch");

    // kube-rs's metadata watch from a version: every event a PartialObjectMetadata.
    let events: Vec<String> = api
        .watch_metadata(
            &WatchParams::default()
                .labels("watched=yes")
                .timeout(1)
                .disable_bookmarks(),
            &from,
        )
        .await
        .expect("watch_metadata")
        .map_ok(|event| match event {
            WatchEvent::Modified(o) => format!(
                "MODIFIED {} {:?}",
                o.metadata.name.unwrap_or_default(),
                o.types.map(|t| t.kind)
            ),
            other => format!("{other:?}"),
        })
        .try_collect()
        .await
        .expect("events");
    assert_eq!(events, ["MODIFIED w1 Some(\"PartialObjectMetadata\")"]);

    // A streaming list: the initial events, then the bookmark, both as metadata.
    let (status, lines) = request(
        &client,
        "GET",
        &format!("{NAMESPACE}/configmaps?watch=1&labelSelector=watched&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"),
        PARTIAL,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(lines[0]["type"], "ADDED");
    assert_partial(&lines[0]["object"], "w1");
    assert_eq!(lines[0]["object"]["metadata"]["annotations"]["n"], "2");
    assert_eq!(lines[1]["type"], "BOOKMARK");
    assert_eq!(lines[1]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(
        lines[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    // As kube-apiserver: a list-shaped watch ends at once, without events.
    let (status, lines) = request(
        &client,
        "GET",
        &format!("{NAMESPACE}/configmaps?watch=1&timeoutSeconds=30"),
        PARTIAL_LIST,
        None,
    )
    .await;
    assert_eq!((status, lines.len()), (200, 0));

    // kube-runtime's watcher over metadata (an Api of PartialObjectMeta asks for metadata
    // only) sees later changes.
    let metadata_api: Api<PartialObjectMeta<ConfigMap>> =
        Api::namespaced(client.clone(), "default");
    let stream = watcher(
        metadata_api,
        watcher::Config::default().labels("watched=yes"),
    );
    let mut stream = Box::pin(stream);
    let second: ConfigMap = serde_json::from_value(config_map("w2", watching)).expect("cm");
    let mut created = false;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !seen.contains(&"w2".to_string()) {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("metadata_watcher saw w2 in time")
            .expect("stream open")
            .expect("no watcher error");
        match next {
            watcher::Event::InitDone if !created => {
                api.create(&PostParams::default(), &second)
                    .await
                    .expect("create w2");
                created = true;
            }
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                let kind = o.types.map(|t| t.kind).unwrap_or_default();
                assert_eq!(kind, "PartialObjectMetadata");
                seen.push(o.metadata.name.unwrap_or_default());
            }
            _ => {}
        }
    }
    assert_eq!(seen, ["w1", "w2"]);
}
