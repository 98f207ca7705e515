//! Normalisation: what never counts in a diff, removed from both sides before comparing.

use crate::json;
use crate::settings::{CompareOptions, StatusFieldPolicy, TrackingMethod};
use crate::tracking::{INSTANCE_LABEL, TRACKING_ANNOTATION};
use serde_json::{Map, Value};

pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Metadata fields the server owns.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// Kinds of the built-in API groups, whose `status` the `crd` policy keeps.
fn is_builtin_group(group: &str) -> bool {
    group.is_empty()
        || !group.contains('.')
        || group.ends_with(".k8s.io") && !group.ends_with(".x-k8s.io")
}

/// Removes server-owned metadata, `status` (per policy), tracking metadata and the
/// last-applied annotation; drops metadata maps left empty.
pub fn normalize(object: &mut Value, options: &CompareOptions, tracking: TrackingMethod) {
    let group = json::group(object).to_string();
    let kind = json::kind(object).to_string();
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let drop_status = match options.ignore_resource_status_field {
        StatusFieldPolicy::All => true,
        StatusFieldPolicy::Crd => !is_builtin_group(&group),
        StatusFieldPolicy::None => false,
    };
    // A CRD's status is always the server's (accepted names, conditions).
    if drop_status || kind == "CustomResourceDefinition" {
        map.remove("status");
    }
    if options.ignore_aggregated_roles
        && kind == "ClusterRole"
        && map.get("aggregationRule").is_some_and(|r| !r.is_null())
    {
        map.remove("rules");
    }
    if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
        for field in SERVER_METADATA {
            metadata.remove(*field);
        }
        remove_key_and_empty(
            metadata,
            "annotations",
            &[TRACKING_ANNOTATION, LAST_APPLIED_ANNOTATION],
        );
        let labels: &[&str] = match tracking {
            TrackingMethod::Annotation => &[],
            TrackingMethod::Label | TrackingMethod::AnnotationAndLabel => &[INSTANCE_LABEL],
        };
        remove_key_and_empty(metadata, "labels", labels);
    }
}

fn remove_key_and_empty(metadata: &mut Map<String, Value>, field: &str, keys: &[&str]) {
    let now_empty = match metadata.get_mut(field) {
        Some(Value::Object(map)) => {
            for key in keys {
                map.remove(*key);
            }
            map.is_empty()
        }
        Some(Value::Null) => true,
        _ => false,
    };
    if now_empty {
        metadata.remove(field);
    }
}

/// Sorts every object's keys, so two objects with equal content render identically.
pub fn sort_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, mut child) in entries {
                sort_keys(&mut child);
                map.insert(key, child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

/// The live object as it would be after applying `desired`, without asking the server:
/// maps merge key by key, lists of equal length merge element by element, anything else
/// takes the desired value. Fields only the server sets (defaults, status) stay as they are
/// live, so they never show as differences. This is plumb's structural fallback when a
/// server-side dry-run is impossible (documented in COMPATIBILITY.md): it cannot see
/// removals of fields that another manager owns, nor server defaulting of new fields.
pub fn structural_predict(desired: &Value, live: &Value) -> Value {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => {
            let mut merged = have.clone();
            for (key, value) in want {
                let next = match have.get(key) {
                    Some(existing) => structural_predict(value, existing),
                    None => value.clone(),
                };
                merged.insert(key.clone(), next);
            }
            Value::Object(merged)
        }
        (Value::Array(want), Value::Array(have)) if want.len() == have.len() => Value::Array(
            want.iter()
                .zip(have)
                .map(|(w, h)| structural_predict(w, h))
                .collect(),
        ),
        _ => desired.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_fields_and_tracking_are_dropped() {
        let mut live = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": "c", "namespace": "n", "uid": "u", "resourceVersion": "7",
                "generation": 2, "creationTimestamp": "2026-01-01T00:00:00Z",
                "managedFields": [{"manager": "plumb"}],
                "annotations": {TRACKING_ANNOTATION: "app:/ConfigMap:n/c"},
                "labels": {INSTANCE_LABEL: "app", "team": "a"}
            },
            "data": {"k": "v"},
            "status": {"x": 1}
        });
        normalize(
            &mut live,
            &CompareOptions::default(),
            TrackingMethod::AnnotationAndLabel,
        );
        assert_eq!(
            live,
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "n", "labels": {"team": "a"}},
                "data": {"k": "v"}
            })
        );
    }

    #[test]
    fn crd_policy_keeps_builtin_status() {
        let options = CompareOptions {
            ignore_resource_status_field: StatusFieldPolicy::Crd,
            ..CompareOptions::default()
        };
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Running"}});
        normalize(&mut pod, &options, TrackingMethod::Annotation);
        assert!(pod.get("status").is_some());
        let mut custom = json!({"apiVersion": "example.com/v1", "kind": "Widget", "status": {}});
        normalize(&mut custom, &options, TrackingMethod::Annotation);
        assert!(custom.get("status").is_none());
    }

    #[test]
    fn structural_prediction_keeps_server_defaults() {
        let live = json!({"spec": {"replicas": 1, "strategy": {"type": "RollingUpdate"},
                          "ports": [{"port": 80, "protocol": "TCP"}]}});
        let desired = json!({"spec": {"replicas": 3, "ports": [{"port": 80}]}});
        assert_eq!(
            structural_predict(&desired, &live),
            json!({"spec": {"replicas": 3, "strategy": {"type": "RollingUpdate"},
                   "ports": [{"port": 80, "protocol": "TCP"}]}})
        );
    }
}
