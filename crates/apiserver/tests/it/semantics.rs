//! Object semantics through kube-rs: metadata the server owns, concurrency, generation,
//! the status subresource, finalizers, namespace deletion, dry-run, pagination, selectors,
//! patches.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::TestServer;

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()},
        "data": {"k": name},
    }))
    .expect("configmap")
}

fn api_status(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
        "status": {"replicas": 7}
    }))
    .expect("deployment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_owned_metadata_and_concurrency() {
    let s = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let a = api
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .expect("create");
    let b = api
        .create(&PostParams::default(), &cm("b", &[]))
        .await
        .expect("create");
    let rv = |c: &ConfigMap| {
        c.metadata
            .resource_version
            .clone()
            .expect("rv")
            .parse::<u64>()
            .expect("numeric rv")
    };
    assert!(
        rv(&b) > rv(&a),
        "resourceVersion is cluster-wide and increasing"
    );
    assert!(a.metadata.uid.is_some() && a.metadata.creation_timestamp.is_some());
    assert_ne!(a.metadata.uid, b.metadata.uid);

    // generateName.
    let mut g = cm("", &[]);
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let generated = api
        .create(&PostParams::default(), &g)
        .await
        .expect("generateName create");
    let name = generated.metadata.name.expect("name");
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    // AlreadyExists, NotFound.
    let dup = api_status(
        api.create(&PostParams::default(), &cm("a", &[]))
            .await
            .expect_err("duplicate"),
    );
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));
    let nf = api_status(api.get("zzz").await.expect_err("missing"));
    assert_eq!(
        (nf.code, nf.reason.as_str(), nf.message.as_str()),
        (404, "NotFound", "configmaps \"zzz\" not found")
    );

    // Optimistic concurrency: a stale resourceVersion is a 409 Conflict.
    let mut first = api.get("a").await.expect("get");
    let mut stale = first.clone();
    first.data = Some(BTreeMap::from([("k".to_string(), "new".to_string())]));
    let updated = api
        .replace("a", &PostParams::default(), &first)
        .await
        .expect("update");
    assert!(rv(&updated) > rv(&a));
    stale.data = Some(BTreeMap::from([("k".to_string(), "lost".to_string())]));
    let conflict = api_status(
        api.replace("a", &PostParams::default(), &stale)
            .await
            .expect_err("stale"),
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(
        conflict.message.contains("the object has been modified"),
        "{}",
        conflict.message
    );
    assert_eq!(
        api.get("a").await.expect("get").data.expect("data")["k"],
        "new"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_status_subresource_and_validation() {
    let s = TestServer::start().await;
    let api: Api<Deployment> = Api::namespaced(s.client().await, "default");
    let created = api
        .create(&PostParams::default(), &deployment("web"))
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    assert!(
        created.status.is_none(),
        "status is dropped on create (status subresource)"
    );

    // A label change is metadata: generation stays.
    let labelled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .expect("label");
    assert_eq!(labelled.metadata.generation, Some(1));
    // A spec change bumps it.
    let scaled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("scale");
    assert_eq!(scaled.metadata.generation, Some(2));
    // Status goes through /status only, and does not bump generation.
    let ignored = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 3}})),
        )
        .await
        .expect("main patch");
    assert!(
        ignored.status.is_none(),
        "status written through the main resource is ignored"
    );
    let with_status = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 3}, "spec": {"replicas": 9}})),
        )
        .await
        .expect("status");
    assert_eq!(with_status.status.and_then(|st| st.replicas), Some(3));
    assert_eq!(
        with_status.spec.replicas,
        Some(3),
        "spec written through /status is ignored"
    );
    assert_eq!(with_status.metadata.generation, Some(2));

    // 422 Invalid with field causes.
    let mut bad = deployment("Bad_Name");
    bad.metadata.labels = Some(BTreeMap::from([("bad key".to_string(), "v".to_string())]));
    let invalid = api_status(
        api.create(&PostParams::default(), &bad)
            .await
            .expect_err("invalid"),
    );
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));
    let causes = invalid.details.expect("details").causes;
    let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, vec!["metadata.name", "metadata.labels"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_terminating_namespaces() {
    let s = TestServer::start().await;
    let client = s.client().await;
    let ghost: Api<ConfigMap> = Api::namespaced(client.clone(), "ghost");
    let err = api_status(
        ghost
            .create(&PostParams::default(), &cm("x", &[]))
            .await
            .expect_err("missing namespace"),
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"ghost\" not found")
    );

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "doomed"}})).expect("ns"),
        )
        .await
        .expect("ns");
    let doomed: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    doomed
        .create(&PostParams::default(), &cm("plain", &[]))
        .await
        .expect("cm");
    let mut held = cm("held", &[]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    doomed
        .create(&PostParams::default(), &held)
        .await
        .expect("held cm");

    namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .expect("delete ns");
    let ns = namespaces
        .get("doomed")
        .await
        .expect("terminating namespace still there");
    assert!(ns.metadata.deletion_timestamp.is_some());
    assert_eq!(
        ns.status.and_then(|st| st.phase).as_deref(),
        Some("Terminating")
    );
    let refused = api_status(
        doomed
            .create(&PostParams::default(), &cm("late", &[]))
            .await
            .expect_err("terminating"),
    );
    assert_eq!(refused.code, 403);
    assert!(
        refused.message.contains("because it is being terminated"),
        "{}",
        refused.message
    );

    // The plain object goes; the finalized one stays (marked) until its finalizer is removed.
    wait_until(|| async { doomed.get_opt("plain").await.expect("get").is_none() }).await;
    let marked = doomed.get("held").await.expect("held stays");
    assert!(marked.metadata.deletion_timestamp.is_some());
    doomed
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("unfinalize");
    wait_until(|| async { namespaces.get_opt("doomed").await.expect("get").is_none() }).await;
    assert!(doomed.get_opt("held").await.expect("get").is_none());
}

async fn wait_until<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("condition not reached within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_hold_objects() {
    let s = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let mut held = cm("held", &[]);
    held.metadata.finalizers = Some(vec!["example.com/a".into(), "example.com/b".into()]);
    api.create(&PostParams::default(), &held)
        .await
        .expect("create");
    api.delete("held", &DeleteParams::default())
        .await
        .expect("delete");
    let marked = api.get("held").await.expect("still there");
    let ts = marked
        .metadata
        .deletion_timestamp
        .clone()
        .expect("deletionTimestamp");
    // Deleting again changes nothing.
    api.delete("held", &DeleteParams::default())
        .await
        .expect("delete again");
    assert_eq!(
        api.get("held")
            .await
            .expect("get")
            .metadata
            .deletion_timestamp,
        Some(ts)
    );
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([{"op": "remove", "path": "/metadata/finalizers/0"}]))
                .expect("patch"),
        ),
    )
    .await
    .expect("remove one");
    assert!(
        api.get_opt("held").await.expect("get").is_some(),
        "one finalizer left"
    );
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": []}})),
    )
    .await
    .expect("remove all");
    assert!(
        api.get_opt("held").await.expect("get").is_none(),
        "gone once the last finalizer is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_stores_nothing() {
    let s = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let answered = api
        .create(&dry, &cm("ghost", &[]))
        .await
        .expect("dry-run create");
    assert!(
        answered.metadata.uid.is_some(),
        "defaulting and server fields are applied"
    );
    assert!(api.get_opt("ghost").await.expect("get").is_none());
    let invalid = api_status(
        api.create(&dry, &cm("Not Valid", &[]))
            .await
            .expect_err("validated"),
    );
    assert_eq!(invalid.code, 422);

    api.create(&PostParams::default(), &cm("real", &[]))
        .await
        .expect("create");
    let before = api.get("real").await.expect("get");
    let pp = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let patched = api
        .patch(
            "real",
            &pp,
            &Patch::Merge(json!({"data": {"k": "changed"}})),
        )
        .await
        .expect("dry patch");
    assert_eq!(patched.data.expect("data")["k"], "changed");
    let mut replaced = before.clone();
    replaced.data = Some(BTreeMap::from([("z".to_string(), "z".to_string())]));
    api.replace("real", &dry, &replaced)
        .await
        .expect("dry replace");
    let dp = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    api.delete("real", &dp).await.expect("dry delete");
    let after = api.get("real").await.expect("still there");
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    assert_eq!(after.data, before.data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_and_selectors() {
    let s = TestServer::start().await;
    let client = s.client().await;
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "other"}})).expect("ns"),
    )
    .await
    .expect("ns");
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..25 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        let mut labels = vec![("tier", tier)];
        if i % 5 == 0 {
            labels.push(("five", "yes"));
        }
        api.create(&PostParams::default(), &cm(&format!("cm-{i:02}"), &labels))
            .await
            .expect("create");
    }
    Api::<ConfigMap>::namespaced(client.clone(), "other")
        .create(&PostParams::default(), &cm("elsewhere", &[("tier", "odd")]))
        .await
        .expect("create");

    // limit/continue walks everything exactly once.
    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(7);
    loop {
        let page = api.list(&lp).await.expect("page");
        assert!(page.items.len() <= 7);
        seen.extend(
            page.items
                .iter()
                .map(|c| c.metadata.name.clone().expect("name")),
        );
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = ListParams::default().limit(7).continue_token(&c),
            _ => break,
        }
    }
    let mut expected: Vec<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();
    expected.push("kube-root-ca.crt".to_string());
    expected.sort();
    assert_eq!(seen, expected);

    let count = |sel: &'static str| {
        let api = api.clone();
        async move {
            api.list(&ListParams::default().labels(sel))
                .await
                .expect(sel)
                .items
                .len()
        }
    };
    assert_eq!(count("tier=even").await, 13);
    assert_eq!(count("tier==odd").await, 12);
    // Negations also match the namespace's unlabelled kube-root-ca.crt.
    assert_eq!(count("tier!=odd").await, 14);
    assert_eq!(count("tier in (odd,even)").await, 25);
    assert_eq!(count("tier notin (odd)").await, 14);
    assert_eq!(count("five").await, 5);
    assert_eq!(count("!five").await, 21);
    assert_eq!(count("five,tier=odd").await, 2);

    let all: Api<ConfigMap> = Api::all(client.clone());
    assert_eq!(
        all.list(&ListParams::default().labels("tier=odd"))
            .await
            .expect("all ns")
            .items
            .len(),
        13
    );
    let by_name = all
        .list(&ListParams::default().fields("metadata.name=elsewhere"))
        .await
        .expect("field");
    assert_eq!(by_name.items.len(), 1);
    let by_ns = all
        .list(
            &ListParams::default()
                .fields("metadata.namespace=other,metadata.name!=kube-root-ca.crt"),
        )
        .await
        .expect("field");
    assert_eq!(by_ns.items.len(), 1);
    let not_default = all
        .list(
            &ListParams::default()
                .fields("metadata.namespace!=default,metadata.name!=kube-root-ca.crt"),
        )
        .await
        .expect("field");
    assert_eq!(not_default.items.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_kinds_and_apply() {
    let s = TestServer::start().await;
    let api: Api<Deployment> = Api::namespaced(s.client().await, "default");
    api.create(&PostParams::default(), &deployment("web"))
        .await
        .expect("create");
    // Strategic merge: containers merge by name.
    let smp = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}}});
    let merged = api
        .patch("web", &PatchParams::default(), &Patch::Strategic(smp))
        .await
        .expect("smp");
    let names: Vec<String> = merged
        .spec
        .template
        .spec
        .expect("pod spec")
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    // New entries come before the live-only ones, as with Kubernetes (no $setElementOrder).
    assert_eq!(names, vec!["sidecar", "c"]);
    // JSON patch test failure is a 422 and changes nothing.
    let failed = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(
                    json!([{"op": "test", "path": "/spec/replicas", "value": 42}]),
                )
                .expect("patch"),
            ),
        )
        .await
        .expect_err("test op fails");
    assert_eq!(api_status(failed).code, 422);
    // Server-side apply creates when missing, updates when present.
    let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "applied"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    let pp = PatchParams::apply("tests");
    let created = api
        .patch("applied", &pp, &Patch::Apply(&applied))
        .await
        .expect("apply create");
    assert_eq!(created.spec.replicas, Some(1), "defaulted");
    let mut again = applied.clone();
    again["spec"]["replicas"] = json!(4);
    let updated = api
        .patch("applied", &pp, &Patch::Apply(&again))
        .await
        .expect("apply update");
    assert_eq!(updated.spec.replicas, Some(4));
    assert_eq!(updated.metadata.generation, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_collection_by_label() {
    let s = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    for (name, tier) in [("a", "x"), ("b", "x"), ("c", "y")] {
        api.create(&PostParams::default(), &cm(name, &[("tier", tier)]))
            .await
            .expect("create");
    }
    let deleted = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("tier=x"),
        )
        .await
        .expect("deletecollection");
    let names: Vec<String> = deleted
        .left()
        .expect("a list of deleted objects")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names, vec!["a", "b"]);
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(left, vec!["c", "kube-root-ca.crt"]);
    let bad = api_status(
        api.delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("a b c"),
        )
        .await
        .expect_err("bad selector"),
    );
    assert_eq!(bad.code, 400);
    assert_eq!(
        api.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        2,
        "c and kube-root-ca.crt are still there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_defaults() {
    let s = TestServer::start().await;
    let api: Api<Deployment> = Api::namespaced(s.client().await, "default");
    let d = api
        .create(&PostParams::default(), &deployment("web"))
        .await
        .expect("create");
    let v = serde_json::to_value(&d).expect("json");
    assert_eq!(
        v["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(v["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(v["spec"]["revisionHistoryLimit"], 10);
    let pod = &v["spec"]["template"]["spec"];
    assert_eq!(
        (
            pod["restartPolicy"].as_str(),
            pod["dnsPolicy"].as_str(),
            pod["schedulerName"].as_str()
        ),
        (
            Some("Always"),
            Some("ClusterFirst"),
            Some("default-scheduler")
        )
    );
    let c = &pod["containers"][0];
    assert_eq!(
        c["imagePullPolicy"], "Always",
        "untagged image pulls always"
    );
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    // Remaining counts only for unfiltered pages.
    let cms: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    for i in 0..3 {
        cms.create(&PostParams::default(), &cm(&format!("c{i}"), &[("a", "b")]))
            .await
            .expect("create");
    }
    let unfiltered = cms
        .list(&ListParams::default().limit(1))
        .await
        .expect("list");
    // Two more of ours and the namespace's kube-root-ca.crt.
    assert_eq!(unfiltered.metadata.remaining_item_count, Some(3));
    let filtered = cms
        .list(&ListParams::default().limit(1).labels("a=b"))
        .await
        .expect("list");
    assert!(filtered.metadata.continue_.is_some());
    assert_eq!(filtered.metadata.remaining_item_count, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_list_items_leave_out_type_fields() {
    let s = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    api.create(&PostParams::default(), &cm("a", &[]))
        .await
        .expect("create");
    let (code, list) = s.get("/api/v1/namespaces/default/configmaps").await;
    assert_eq!(code, 200);
    assert_eq!(
        (list["kind"].as_str(), list["apiVersion"].as_str()),
        (Some("ConfigMapList"), Some("v1"))
    );
    let item = &list["items"][0];
    assert!(
        item.get("kind").is_none() && item.get("apiVersion").is_none(),
        "{item}"
    );
    assert_eq!(item["metadata"]["name"], "a");
    // A single object keeps them, and typed clients read the list as before.
    let (_, one) = s.get("/api/v1/namespaces/default/configmaps/a").await;
    assert_eq!(one["kind"], "ConfigMap");
    assert_eq!(
        api.list(&ListParams::default())
            .await
            .expect("typed list")
            .items
            .len(),
        2,
        "a and the namespace's kube-root-ca.crt"
    );
}

fn owned(name: &str, owners: &[&ConfigMap]) -> ConfigMap {
    let refs: Vec<serde_json::Value> = owners
        .iter()
        .map(|o| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": o.metadata.name, "uid": o.metadata.uid}))
        .collect();
    serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": refs}}))
        .expect("owned cm")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_by_owner_references() {
    let s = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let pp = PostParams::default();
    let owner = api.create(&pp, &cm("owner", &[])).await.expect("owner");
    let other = api.create(&pp, &cm("other", &[])).await.expect("other");
    let child = api
        .create(&pp, &owned("child", &[&owner]))
        .await
        .expect("child");
    api.create(&pp, &owned("grandchild", &[&child]))
        .await
        .expect("grandchild");
    api.create(&pp, &owned("shared", &[&owner, &other]))
        .await
        .expect("shared");

    // Background cascade: the owner's only-owned dependents go, recursively; a dependent
    // with another owner stays and loses the dead reference.
    api.delete("owner", &DeleteParams::background())
        .await
        .expect("delete owner");
    wait_until(|| async { api.get_opt("grandchild").await.expect("get").is_none() }).await;
    assert!(api.get_opt("child").await.expect("get").is_none());
    let shared = api.get("shared").await.expect("shared stays");
    let uids: Vec<String> = shared
        .metadata
        .owner_references
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.uid)
        .collect();
    assert_eq!(uids, vec![other.metadata.uid.clone().expect("uid")]);

    // Orphan: the dependent stays, without the reference.
    let lone = api
        .create(&pp, &owned("lone", &[&other]))
        .await
        .expect("lone");
    assert!(lone.metadata.owner_references.is_some());
    s.ok(&["delete", "configmap", "other", "--cascade=orphan"])
        .await;
    wait_until(|| async {
        api.get("lone")
            .await
            .expect("get")
            .metadata
            .owner_references
            .is_none()
    })
    .await;
    assert!(
        api.get_opt("shared").await.expect("get").is_some(),
        "orphaned, not deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletion_waits_for_dependents() {
    let s = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let pp = PostParams::default();
    let owner = api.create(&pp, &cm("owner", &[])).await.expect("owner");
    let mut held = owned("held", &[&owner]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&pp, &held).await.expect("dependent");

    api.delete("owner", &DeleteParams::foreground())
        .await
        .expect("delete owner");
    let marked = api.get("owner").await.expect("owner waits");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert!(
        marked
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_string())
    );
    wait_until(|| async {
        api.get("held")
            .await
            .expect("get")
            .metadata
            .deletion_timestamp
            .is_some()
    })
    .await;
    assert!(
        api.get_opt("owner").await.expect("get").is_some(),
        "still waiting for the dependent"
    );

    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    wait_until(|| async { api.get_opt("owner").await.expect("get").is_none() }).await;
}

/// The `manager/operation[/subresource]` of each managedFields entry.
fn managers(object: &serde_json::Value) -> Vec<String> {
    object
        .pointer("/metadata/managedFields")
        .and_then(|m| m.as_array())
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    let mut id = format!(
                        "{}/{}",
                        e["manager"].as_str().unwrap_or(""),
                        e["operation"].as_str().unwrap_or("")
                    );
                    if let Some(sub) = e.get("subresource").and_then(|s| s.as_str()) {
                        id.push('/');
                        id.push_str(sub);
                    }
                    id
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_fields_follow_updates_and_applies() {
    let s = TestServer::start().await;
    let path = "/api/v1/namespaces/default/configmaps";
    let apply = |manager: &str, force: bool| {
        format!(
            "{path}/owned?fieldManager={manager}{}",
            if force { "&force=true" } else { "" }
        )
    };
    let body = |v: serde_json::Value| serde_json::to_vec(&v).expect("json");
    // A create is an Update of the request's manager, which owns every field it set.
    let (code, created) = s
        .raw("POST", &format!("{path}?fieldManager=creator"), "application/json",
            body(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned", "labels": {"a": "1"}}, "data": {"x": "1"}})))
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(managers(&created), ["creator/Update"]);
    assert_eq!(
        created["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:data": {".": {}, "f:x": {}}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}})
    );
    // Applying a field the creator owns with another value conflicts...
    let (code, conflict) = s
        .raw("PATCH", &apply("ssa", false), "application/apply-patch+yaml",
            body(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned"}, "data": {"x": "2", "y": "2"}})))
        .await;
    assert_eq!(code, 409, "{conflict}");
    assert_eq!(
        conflict["message"],
        "Apply failed with 1 conflict: conflict with \"creator\" using v1: .data.x"
    );
    assert_eq!(
        conflict["details"]["causes"][0]["reason"],
        "FieldManagerConflict"
    );
    // ... and nothing was written.
    let (_, unchanged) = s.get(&format!("{path}/owned")).await;
    assert_eq!(
        unchanged["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    // Forced, the applier takes the field over.
    let (code, forced) = s
        .raw("PATCH", &apply("ssa", true), "application/apply-patch+yaml",
            body(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned"}, "data": {"x": "2", "y": "2"}})))
        .await;
    assert_eq!(code, 200, "{forced}");
    assert_eq!(forced["data"], json!({"x": "2", "y": "2"}));
    assert_eq!(managers(&forced), ["ssa/Apply", "creator/Update"]);
    // Dropping y from the applied configuration removes it; x stays the applier's.
    let (code, dropped) = s
        .raw("PATCH", &apply("ssa", false), "application/apply-patch+yaml",
            body(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned"}, "data": {"x": "2"}})))
        .await;
    assert_eq!(code, 200, "{dropped}");
    assert_eq!(dropped["data"], json!({"x": "2"}));
    // The same apply again changes nothing: no new resourceVersion.
    let (_, again) = s
        .raw("PATCH", &apply("ssa", false), "application/apply-patch+yaml",
            body(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned"}, "data": {"x": "2"}})))
        .await;
    assert_eq!(
        again["metadata"]["resourceVersion"],
        dropped["metadata"]["resourceVersion"]
    );
    // An applied configuration may not carry managedFields.
    let (code, _) = s
        .raw("PATCH", &apply("ssa", false), "application/apply-patch+yaml",
            body(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned", "managedFields": [{"manager": "x"}]}})))
        .await;
    assert_eq!(code, 400);
    // Clearing managedFields, then applying: the existing fields belong to before-first-apply.
    let (code, cleared) = s
        .raw(
            "PATCH",
            &format!("{path}/owned"),
            "application/merge-patch+json",
            body(json!({"metadata": {"managedFields": [{}]}})),
        )
        .await;
    assert_eq!(code, 200);
    assert!(
        cleared["metadata"].get("managedFields").is_none(),
        "{cleared}"
    );
    let (code, adopted) = s
        .raw("PATCH", &apply("late", false), "application/apply-patch+yaml",
            body(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned"}, "data": {"z": "1"}})))
        .await;
    assert_eq!(code, 200, "{adopted}");
    assert_eq!(
        managers(&adopted),
        ["late/Apply", "before-first-apply/Update"]
    );
    // kubectl scale writes through /scale: an entry with that subresource.
    let deployments: Api<Deployment> = Api::namespaced(s.client().await, "default");
    deployments
        .create(&PostParams::default(), &deployment("scaled"))
        .await
        .expect("create");
    s.ok(&["scale", "deployment", "scaled", "--replicas=3"])
        .await;
    let (_, scaled) = s
        .get("/apis/apps/v1/namespaces/default/deployments/scaled")
        .await;
    assert!(
        managers(&scaled).contains(&"kubectl/Update/scale".to_string()),
        "{:?}",
        managers(&scaled)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_get_a_default_service_account_and_the_root_ca() {
    let s = TestServer::start().await;
    // Also through kubectl's protobuf create, and in the namespaces every cluster has.
    s.ok(&["create", "namespace", "fresh"]).await;
    for ns in ["fresh", "default", "kube-system"] {
        let (code, sa) = s
            .get(&format!("/api/v1/namespaces/{ns}/serviceaccounts/default"))
            .await;
        assert_eq!(code, 200, "{ns}: {sa}");
        let (code, ca) = s
            .get(&format!(
                "/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt"
            ))
            .await;
        assert_eq!(code, 200, "{ns}: {ca}");
        assert_eq!(ca["data"]["ca.crt"], s.server().ca_pem(), "{ns}");
        assert_eq!(
            ca["metadata"]["managedFields"][0]["manager"],
            "kube-controller-manager"
        );
    }
    // Applying a namespace creates them too; deleting the namespace removes them with it.
    let (code, _) = s
        .raw(
            "PATCH",
            "/api/v1/namespaces/applied?fieldManager=plumb",
            "application/apply-patch+yaml",
            br#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "applied"}}"#
                .to_vec(),
        )
        .await;
    assert_eq!(code, 201);
    let (code, _) = s
        .get("/api/v1/namespaces/applied/serviceaccounts/default")
        .await;
    assert_eq!(code, 200);
    // Deleted by hand, they come back (a new object), as kube-controller-manager does it.
    let (_, before) = s
        .get("/api/v1/namespaces/applied/configmaps/kube-root-ca.crt")
        .await;
    s.ok(&["delete", "configmap", "kube-root-ca.crt", "-n", "applied"])
        .await;
    wait_until(|| async {
        let (code, after) = s
            .get("/api/v1/namespaces/applied/configmaps/kube-root-ca.crt")
            .await;
        code == 200 && after["metadata"]["uid"] != before["metadata"]["uid"]
    })
    .await;
    s.ok(&["delete", "namespace", "fresh", "--wait=true"]).await;
    let (code, _) = s
        .get("/api/v1/namespaces/fresh/configmaps/kube-root-ca.crt")
        .await;
    assert_eq!(code, 404);
}
