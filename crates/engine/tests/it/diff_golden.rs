use plumb_engine::diff::ignore::IgnoreRules;
use plumb_engine::diff::{
    self, CompareSettings, ConditionKind, Scope, builtin_scope, compare_resource, prepare_desired,
};
use plumb_engine::settings::{CompareOptions, TrackingMethod};
use plumb_engine::tracking;
use plumb_model::{ResourceIgnoreDifferences, ResourceKey, SyncStatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

fn settings(ignore: Vec<ResourceIgnoreDifferences>) -> CompareSettings {
    CompareSettings {
        app: "shop".into(),
        tracking_method: TrackingMethod::Annotation,
        compare_options: CompareOptions::default(),
        ignore: IgnoreRules::new(ignore).expect("rules"),
        server_side_apply: true,
        validate: true,
    }
}

fn desired_deployment(replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop",
                     "annotations": {"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:shop/web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}
    })
}

/// What the API server returns for `desired_deployment(2)`: defaults, server metadata, status.
fn live_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "uid": "5d1c", "resourceVersion": "812",
                     "generation": 1, "creationTimestamp": "2026-11-23T10:00:00Z",
                     "annotations": {"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:shop/web",
                                     "deployment.kubernetes.io/revision": "1"},
                     "managedFields": [{"manager": "plumb", "operation": "Apply",
                                        "fieldsV1": {"f:spec": {"f:replicas": {}}}}]},
        "spec": {"replicas": 2, "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
                 "selector": {"matchLabels": {"app": "web"}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                                                       "imagePullPolicy": "IfNotPresent",
                                                       "terminationMessagePath": "/dev/termination-log"}],
                                       "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}}},
        "status": {"replicas": 2, "readyReplicas": 2, "observedGeneration": 1}
    })
}

fn key() -> ResourceKey {
    ResourceKey::new("apps", "Deployment", "shop", "web")
}

#[test]
fn server_defaults_do_not_make_a_diff() {
    let live = live_deployment();
    let result = compare_resource(
        &key(),
        Some(&desired_deployment(2)),
        Some(&live),
        None,
        &settings(vec![]),
    )
    .expect("compare");
    assert_eq!(result.status, SyncStatusCode::Synced);
    assert!(result.diff.is_empty());
    assert!(!result.requires_pruning);
}

#[test]
fn replica_change_golden_diff() {
    let live = live_deployment();
    let result = compare_resource(
        &key(),
        Some(&desired_deployment(3)),
        Some(&live),
        None,
        &settings(vec![]),
    )
    .expect("compare");
    assert_eq!(result.status, SyncStatusCode::OutOfSync);
    let changed: Vec<&str> = result
        .diff
        .lines()
        .filter(|l| l.starts_with('-') || l.starts_with('+'))
        .collect();
    assert_eq!(
        changed,
        [
            "--- live apps/Deployment/shop/web",
            "+++ desired apps/Deployment/shop/web",
            "-  replicas: 2",
            "+  replicas: 3",
        ],
        "{}",
        result.diff
    );
    // With the server's dry-run answer, that answer is what counts.
    let mut predicted = live.clone();
    predicted["spec"]["replicas"] = json!(3);
    let with_dry_run = compare_resource(
        &key(),
        Some(&desired_deployment(3)),
        Some(&live),
        Some(&predicted),
        &settings(vec![]),
    )
    .expect("compare");
    assert_eq!(with_dry_run.diff, result.diff);
}

#[test]
fn ignore_differences_hide_replicas() {
    let rule = ResourceIgnoreDifferences {
        group: "apps".into(),
        kind: "Deployment".into(),
        json_pointers: vec!["/spec/replicas".into()],
        ..Default::default()
    };
    let live = live_deployment();
    let result = compare_resource(
        &key(),
        Some(&desired_deployment(5)),
        Some(&live),
        None,
        &settings(vec![rule]),
    )
    .expect("compare");
    assert_eq!(result.status, SyncStatusCode::Synced);
    let by_manager = ResourceIgnoreDifferences {
        group: "*".into(),
        kind: "*".into(),
        managed_fields_managers: vec!["plumb".into()],
        ..Default::default()
    };
    let result = compare_resource(
        &key(),
        Some(&desired_deployment(5)),
        Some(&live),
        None,
        &settings(vec![by_manager]),
    )
    .expect("compare");
    assert_eq!(result.status, SyncStatusCode::Synced, "{}", result.diff);
}

#[test]
fn secrets_are_masked_in_diffs() {
    let secret_key = ResourceKey::new("", "Secret", "shop", "db");
    let desired = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
                         "stringData": {"password": "new-password", "user": "admin"}});
    let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
                      "data": {"password": "b2xkLXBhc3N3b3Jk", "user": "YWRtaW4="}, "type": "Opaque"});
    let result = compare_resource(
        &secret_key,
        Some(&desired),
        Some(&live),
        None,
        &settings(vec![]),
    )
    .expect("compare");
    assert_eq!(result.status, SyncStatusCode::OutOfSync);
    for secret in [
        "new-password",
        "bmV3LXBhc3N3b3Jk",
        "b2xkLXBhc3N3b3Jk",
        "YWRtaW4=",
        "admin",
    ] {
        assert!(
            !result.diff.contains(secret),
            "{secret} leaked:\n{}",
            result.diff
        );
        let everything = serde_json::to_string(&result).expect("json");
        assert!(!everything.contains(secret), "{secret} leaked in result");
    }
    assert!(
        result.diff.contains("-  password: '++++++++'")
            || result.diff.contains("-  password: ++++++++"),
        "{}",
        result.diff
    );
    assert!(
        !result.diff.contains("user:")
            || !result
                .diff
                .lines()
                .any(|l| l.starts_with(['-', '+']) && l.contains("user")),
        "{}",
        result.diff
    );
}

#[test]
fn extraneous_live_objects_require_pruning_unless_ignored() {
    let settings = settings(vec![]);
    let mut live = json!({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "old", "namespace": "shop"}, "data": {"a": "1"}});
    let key = ResourceKey::new("", "ConfigMap", "shop", "old");
    let result = compare_resource(&key, None, Some(&live), None, &settings).expect("compare");
    assert!(result.requires_pruning);
    assert_eq!(result.status, SyncStatusCode::OutOfSync);
    assert!(result.diff.contains("-data:"), "{}", result.diff);
    live["metadata"]["annotations"] =
        json!({"argocd.argoproj.io/compare-options": "IgnoreExtraneous"});
    let result = compare_resource(&key, None, Some(&live), None, &settings).expect("compare");
    assert_eq!(result.status, SyncStatusCode::Synced);
}

#[test]
fn bad_objects_are_reported_by_position() {
    let rendered = vec![
        json!({"kind": "ConfigMap", "metadata": {"name": "no-version"}}),
        json!({"apiVersion": "v1", "metadata": {"name": "no-kind"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
        json!("just a string"),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fine"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "namespace": "oops"}}),
        json!({"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "g"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fine", "namespace": "shop"}}),
    ];
    let scope = |group: &str, kind: &str| {
        if kind == "Gizmo" {
            Scope::Unknown
        } else {
            builtin_scope(group, kind)
        }
    };
    let prepared = prepare_desired(
        rendered.clone(),
        "shop",
        "shop",
        TrackingMethod::Annotation,
        &scope,
    );
    let messages: Vec<String> = prepared.errors.iter().map(|c| c.message.clone()).collect();
    assert_eq!(
        messages,
        [
            "ConfigMap/no-version (object #1) is missing apiVersion",
            "object #2 is missing kind",
            "ConfigMap without a name (object #3) is missing metadata.name",
            "object #4 is not a mapping",
            "Gizmo/g (object #7): no matches for kind \"Gizmo\" in version \"example.com/v1\"",
        ]
    );
    let warnings: Vec<(ConditionKind, String)> = prepared
        .warnings
        .iter()
        .map(|c| (c.kind, c.message.clone()))
        .collect();
    assert_eq!(
        warnings,
        [
            (
                ConditionKind::InvalidSpecError,
                "Namespace/shop (object #6) is cluster-scoped; its namespace \"oops\" is ignored"
                    .to_string()
            ),
            (
                ConditionKind::RepeatedResourceWarning,
                "Resource /ConfigMap/shop/fine appeared 2 times among application resources."
                    .to_string()
            ),
        ]
    );
    assert_eq!(prepared.objects.len(), 2);
    let config_map = &prepared.objects[&ResourceKey::new("", "ConfigMap", "shop", "fine")];
    assert_eq!(
        config_map["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
        "shop:/ConfigMap:shop/fine"
    );
    // Without a destination namespace, a namespaced object without one is an error.
    let prepared = prepare_desired(
        rendered[4..5].to_vec(),
        "shop",
        "",
        TrackingMethod::Annotation,
        &scope,
    );
    assert!(
        prepared.errors[0].message.contains("has no namespace"),
        "{:?}",
        prepared.errors
    );
}

#[test]
fn shared_resources_are_warned_and_app_status_aggregates() {
    let desired = vec![
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"a": "1"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mine"}, "data": {"a": "1"}}),
    ];
    let prepared = prepare_desired(
        desired,
        "shop",
        "shop",
        TrackingMethod::Annotation,
        &builtin_scope,
    );
    let mut live = BTreeMap::new();
    let shared_key = ResourceKey::new("", "ConfigMap", "shop", "shared");
    let mut shared = prepared.objects[&shared_key].clone();
    tracking::set_tracking(&mut shared, "billing", TrackingMethod::Annotation);
    live.insert(shared_key, shared);
    let mine_key = ResourceKey::new("", "ConfigMap", "shop", "mine");
    live.insert(mine_key.clone(), prepared.objects[&mine_key].clone());
    let orphan_key = ResourceKey::new("", "ConfigMap", "shop", "orphan");
    let mut orphan = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "orphan", "namespace": "shop"}});
    tracking::set_tracking(&mut orphan, "shop", TrackingMethod::Annotation);
    live.insert(orphan_key.clone(), orphan);
    let foreign_key = ResourceKey::new("", "ConfigMap", "shop", "foreign");
    live.insert(foreign_key, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "foreign", "namespace": "shop"}}));
    let cache = diff::CompareCache::default();
    let comparison = diff::compare_app(
        &prepared,
        &live,
        &HashMap::new(),
        &settings(vec![]),
        Some(&cache),
    );
    let shared: Vec<&str> = comparison
        .conditions
        .iter()
        .filter(|c| c.kind == ConditionKind::SharedResourceWarning)
        .map(|c| c.message.as_str())
        .collect();
    assert_eq!(
        shared,
        ["ConfigMap/shared is part of applications billing and shop"]
    );
    let statuses: Vec<(String, SyncStatusCode, bool)> = comparison
        .resources
        .iter()
        .map(|r| (r.key.name.clone(), r.status, r.requires_pruning))
        .collect();
    assert_eq!(
        statuses,
        [
            ("mine".to_string(), SyncStatusCode::Synced, false),
            ("orphan".to_string(), SyncStatusCode::OutOfSync, true),
            // Tracking metadata never counts: the content is the same.
            ("shared".to_string(), SyncStatusCode::Synced, false),
        ]
    );
    assert_eq!(comparison.sync_status(), SyncStatusCode::OutOfSync);
}

/// A cache smaller than the app keeps at most its capacity, and the most recently compared
/// results: the objects last in key order.
#[test]
fn compare_cache_holds_at_most_its_capacity_keeping_the_latest() {
    let desired: Vec<Value> = (0..10)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": format!("c{i}")}, "data": {"i": i.to_string()}})
        })
        .collect();
    let prepared = prepare_desired(
        desired,
        "shop",
        "shop",
        TrackingMethod::Annotation,
        &builtin_scope,
    );
    let live: BTreeMap<ResourceKey, Value> = prepared
        .objects
        .iter()
        .map(|(key, object)| {
            let mut live = object.clone();
            live["metadata"]["resourceVersion"] = json!("7");
            (key.clone(), live)
        })
        .collect();
    let settings = settings(vec![]);
    let cache = diff::CompareCache::with_capacity(4);
    diff::compare_app(
        &prepared,
        &live,
        &predicted_from(&prepared, &live),
        &settings,
        Some(&cache),
    );
    assert_eq!(cache.len(), 4);
    let fingerprint = diff::settings_fingerprint(&settings);
    let fresh: Vec<&str> = prepared
        .objects
        .iter()
        .filter(|(key, object)| cache.is_fresh(key, object, live.get(*key), &fingerprint))
        .map(|(key, _)| key.name.as_str())
        .collect();
    assert_eq!(fresh, ["c6", "c7", "c8", "c9"]);
}

#[test]
fn compare_cache_is_keyed_by_live_content_desired_and_settings() {
    let desired = vec![
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}),
    ];
    let prepared = prepare_desired(
        desired,
        "shop",
        "shop",
        TrackingMethod::Annotation,
        &builtin_scope,
    );
    let key = ResourceKey::new("", "ConfigMap", "shop", "c");
    let mut live_object = prepared.objects[&key].clone();
    live_object["metadata"]["resourceVersion"] = json!("41");
    let mut live = BTreeMap::from([(key.clone(), live_object)]);
    let cache = diff::CompareCache::default();
    let first = diff::compare_app(
        &prepared,
        &live,
        &predicted_from(&prepared, &live),
        &settings(vec![]),
        Some(&cache),
    );
    assert_eq!(first.resources[0].status, SyncStatusCode::Synced);
    assert_eq!(cache.len(), 1);
    // Only what the server moves on its own changed (resourceVersion, managedFields,
    // status): the cached answer stands, even against a prediction that would now differ.
    {
        let object = live.get_mut(&key).expect("live");
        object["metadata"]["resourceVersion"] = json!("42");
        object["metadata"]["managedFields"] = json!([{"manager": "kubelet"}]);
        object["status"] = json!({"observed": 3});
    }
    let stale_prediction = predicted_from(&prepared, &BTreeMap::new());
    let cached = diff::compare_app(
        &prepared,
        &live,
        &stale_prediction,
        &settings(vec![]),
        Some(&cache),
    );
    assert_eq!(cached.resources[0].status, SyncStatusCode::Synced);
    assert!(
        cached.resources[0].live.is_none(),
        "cached results hold no object views"
    );
    // A change of content (a `kubectl edit`) is compared afresh.
    live.get_mut(&key).expect("live")["data"]["a"] = json!("2");
    let fresh = diff::compare_app(
        &prepared,
        &live,
        &predicted_from(&prepared, &live),
        &settings(vec![]),
        Some(&cache),
    );
    assert_eq!(fresh.resources[0].status, SyncStatusCode::OutOfSync);
    // So are changed settings (an ignore rule now hides the difference).
    let rule = ResourceIgnoreDifferences {
        kind: "ConfigMap".into(),
        json_pointers: vec!["/data".into()],
        ..Default::default()
    };
    let ignored = diff::compare_app(
        &prepared,
        &live,
        &predicted_from(&prepared, &live),
        &settings(vec![rule]),
        Some(&cache),
    );
    assert_eq!(ignored.resources[0].status, SyncStatusCode::Synced);
    // And so is the way objects are written: a client-side apply predicts differently.
    let mut client_side = settings(vec![]);
    client_side.server_side_apply = false;
    assert_ne!(
        diff::settings_fingerprint(&client_side),
        diff::settings_fingerprint(&settings(vec![]))
    );
    let mut loose = settings(vec![]);
    loose.validate = false;
    assert_ne!(
        diff::settings_fingerprint(&loose),
        diff::settings_fingerprint(&settings(vec![]))
    );
}

/// What the server's dry-run would answer: the desired object on top of the live one.
fn predicted_from(
    prepared: &diff::PreparedDesired,
    live: &BTreeMap<ResourceKey, Value>,
) -> HashMap<ResourceKey, Value> {
    prepared
        .objects
        .iter()
        .map(|(key, desired)| {
            let mut predicted = desired.clone();
            if let Some(live) = live.get(key) {
                predicted["metadata"]["resourceVersion"] =
                    live["metadata"]["resourceVersion"].clone();
            }
            (key.clone(), predicted)
        })
        .collect()
}

#[test]
fn structural_answers_are_not_cached() {
    let desired = vec![json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})];
    let prepared = prepare_desired(
        desired,
        "shop",
        "shop",
        TrackingMethod::Annotation,
        &builtin_scope,
    );
    let key = ResourceKey::new("", "ConfigMap", "shop", "c");
    let mut live_object = prepared.objects[&key].clone();
    live_object["metadata"]["resourceVersion"] = json!("7");
    let live = BTreeMap::from([(key, live_object)]);
    let cache = diff::CompareCache::default();
    diff::compare_app(
        &prepared,
        &live,
        &HashMap::new(),
        &settings(vec![]),
        Some(&cache),
    );
    assert!(cache.is_empty());
}
