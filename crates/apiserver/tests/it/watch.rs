//! Watch semantics: resume from a resourceVersion, 410 Gone once compacted, bookmarks,
//! timeoutSeconds, selectors moving objects in and out, slow watchers dropped.

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use crate::support::TestServer;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).expect("cm")
}

fn describe(e: &WatchEvent<ConfigMap>) -> String {
    let name = |c: &ConfigMap| c.metadata.name.clone().unwrap_or_default();
    match e {
        WatchEvent::Added(c) => format!("ADDED {}", name(c)),
        WatchEvent::Modified(c) => format!("MODIFIED {}", name(c)),
        WatchEvent::Deleted(c) => format!("DELETED {}", name(c)),
        WatchEvent::Bookmark(_) => "BOOKMARK".into(),
        WatchEvent::Error(s) => format!("ERROR {} {}", s.code, s.reason),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_from_resource_version_and_timeout() {
    let s = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let a = api
        .create(&PostParams::default(), &cm("a"))
        .await
        .expect("create");
    let from = a.metadata.resource_version.clone().expect("rv");
    api.create(&PostParams::default(), &cm("b"))
        .await
        .expect("create");
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await
    .expect("patch");
    api.delete("b", &DeleteParams::default())
        .await
        .expect("delete");

    // From `a`'s version: exactly what happened after it, in order; the stream ends at the timeout.
    let events: Vec<String> = api
        .watch(
            &WatchParams::default().timeout(2).disable_bookmarks(),
            &from,
        )
        .await
        .expect("watch")
        .map_ok(|e| describe(&e))
        .try_collect()
        .await
        .expect("events");
    assert_eq!(events, vec!["ADDED b", "MODIFIED a", "DELETED b"]);

    // From "0": the current state as ADDED events.
    let events: Vec<String> = api
        .watch(&WatchParams::default().timeout(1).disable_bookmarks(), "0")
        .await
        .expect("watch")
        .map_ok(|e| describe(&e))
        .try_collect()
        .await
        .expect("events");
    assert_eq!(events, vec!["ADDED a", "ADDED kube-root-ca.crt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_resource_version_is_gone() {
    let s = TestServer::start_with(|c| c.watch_history = 5).await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let first = api
        .create(&PostParams::default(), &cm("first"))
        .await
        .expect("create");
    for i in 0..10 {
        api.create(&PostParams::default(), &cm(&format!("n{i}")))
            .await
            .expect("create");
    }
    let rv = first.metadata.resource_version.expect("rv");
    let events: Vec<WatchEvent<ConfigMap>> = api
        .watch(&WatchParams::default().timeout(2), &rv)
        .await
        .expect("watch")
        .try_collect()
        .await
        .expect("events");
    assert_eq!(
        events.len(),
        1,
        "{:?}",
        events.iter().map(describe).collect::<Vec<_>>()
    );
    let WatchEvent::Error(status) = &events[0] else {
        panic!("expected an ERROR event, got {}", describe(&events[0]))
    };
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
    assert!(
        status.message.starts_with("too old resource version"),
        "{}",
        status.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_carry_the_latest_version() {
    // Kubernetes sends bookmarks about once a minute; a second keeps the test short.
    let s = TestServer::start_with(|c| c.bookmark_interval = Duration::from_secs(1)).await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let created = api
        .create(&PostParams::default(), &cm("a"))
        .await
        .expect("create");
    let rv: u64 = created
        .metadata
        .resource_version
        .clone()
        .expect("rv")
        .parse()
        .expect("u64");
    // Writes elsewhere move the cluster's version on; bookmarks report it.
    Api::<ConfigMap>::namespaced(s.client().await, "kube-system")
        .create(&PostParams::default(), &cm("elsewhere"))
        .await
        .expect("create");
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv.to_string())
        .await
        .expect("watch")
        .boxed();
    let mut bookmark = None;
    while let Some(e) = stream.try_next().await.expect("event") {
        if let WatchEvent::Bookmark(b) = e {
            bookmark = Some(b.metadata.resource_version.parse::<u64>().expect("u64"));
            break;
        }
    }
    assert_eq!(bookmark, Some(rv + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_selected_watch_sees_objects_enter_and_leave() {
    let s = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let created = api
        .create(&PostParams::default(), &cm("a"))
        .await
        .expect("create");
    let rv = created.metadata.resource_version.expect("rv");
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"w": "1"}}})),
    )
    .await
    .expect("in");
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "y"}})),
    )
    .await
    .expect("modify");
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"w": null}}})),
    )
    .await
    .expect("out");
    let events: Vec<WatchEvent<ConfigMap>> = api
        .watch(
            &WatchParams::default()
                .labels("w=1")
                .timeout(2)
                .disable_bookmarks(),
            &rv,
        )
        .await
        .expect("watch")
        .try_collect()
        .await
        .expect("events");
    let names: Vec<String> = events.iter().map(describe).collect();
    assert_eq!(names, vec!["ADDED a", "MODIFIED a", "DELETED a"]);
    // The object leaving the selector is sent in its last matching state, at the new version.
    let WatchEvent::Deleted(last) = &events[2] else {
        panic!("expected DELETED")
    };
    assert_eq!(last.labels().get("w").map(String::as_str), Some("1"));
    let current = api.get("a").await.expect("get");
    assert_eq!(
        last.metadata.resource_version,
        current.metadata.resource_version
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_is_dropped_and_writers_go_on() {
    let s = TestServer::start_with(|c| c.watcher_queue = 4).await;
    // Separate clients (connections): the unread stream must not stall the writer's
    // connection-level flow control window.
    let client = s.client().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    // A watcher that reads nothing: its response body is never polled.
    let code = 200;
    let payload = "x".repeat(16 * 1024);
    const WRITES: usize = 600;
    let req = http::Request::builder()
        .uri("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1")
        .body(kube::client::Body::empty())
        .expect("request");
    let slow = client.send(req).await.expect("watch opened");
    assert_eq!(slow.status().as_u16(), code);
    // Writers are not held up by it.
    let writes = tokio::time::timeout(Duration::from_secs(60), async {
        for i in 0..WRITES {
            let mut c = cm(&format!("w{i}"));
            c.data = Some([("p".to_string(), payload.clone())].into());
            api.create(&PostParams::default(), &c)
                .await
                .expect("create");
        }
    })
    .await;
    assert!(writes.is_ok(), "writes must not block on a slow watcher");
    // Its stream ends early instead of delivering every event.
    let body = tokio::time::timeout(
        Duration::from_secs(30),
        http_body_util::BodyExt::collect(slow.into_body()),
    )
    .await
    .expect("stream ended")
    .expect("body");
    let lines = String::from_utf8_lossy(&body.to_bytes()).lines().count();
    assert!(
        lines < WRITES,
        "the slow watcher got {lines} events; it should have been dropped"
    );
}
