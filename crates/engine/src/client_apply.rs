//! Client-side apply as kubectl does it (`ServerSideApply=false`), as pure functions:
//!
//! - the `kubectl.kubernetes.io/last-applied-configuration` annotation: the applied object
//!   without that annotation, serialised as Go's `encoding/json` does (keys sorted, `<`, `>`
//!   and `&` escaped, newline at the end), with `metadata.annotations` present (kubectl sets
//!   the map, even empty, before serialising);
//! - the three-way patch from the last-applied configuration (original), the new object with
//!   its new annotation (modified) and the live object (current): what changed or was added
//!   between current and modified, plus removals of fields that were in original and are no
//!   longer in modified. Fields set by others and never applied are left alone.
//!
//! Built-in kinds get a strategic merge patch (lists with a merge key are patched element by
//! element, with `$patch: delete` for removed elements and `$setElementOrder` for order;
//! scalar sets with `$deleteFromPrimitiveList`; other lists are replaced whole), custom
//! resources a JSON merge patch (RFC 7386: lists replaced whole) — kubectl's choice, see
//! [`plumb_model::patch_meta::is_strategic_group`].

use crate::json;
use plumb_model::go_json::write_go_json;
use plumb_model::patch_meta::{self, ListStrategy, PatchTags};
use serde_json::{Map, Value};

pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The kind of patch a client-side apply sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/merge-patch+json`
    Merge,
}

/// The patch type kubectl uses for objects of `api_version`.
pub fn patch_type(api_version: &str) -> PatchType {
    if patch_meta::is_strategic_group(plumb_model::group_of(api_version)) {
        PatchType::Strategic
    } else {
        PatchType::Merge
    }
}

/// The annotation value kubectl writes for `object` (see the module documentation).
pub fn last_applied_configuration(object: &Value) -> String {
    let mut copy = object.clone();
    if let Some(metadata) = json::metadata_mut(&mut copy) {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.remove(LAST_APPLIED_ANNOTATION);
        }
    }
    let mut text = String::new();
    write_go_json(&copy, &mut text);
    text.push('\n');
    text
}

/// `object` with its last-applied annotation set: what a client-side apply creates, and the
/// "modified" side of its three-way patch.
pub fn with_last_applied(object: &Value) -> Value {
    let annotation = last_applied_configuration(object);
    let mut modified = object.clone();
    if let Some(metadata) = json::metadata_mut(&mut modified) {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if !annotations.is_object() {
            *annotations = Value::Object(Map::new());
        }
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(
                LAST_APPLIED_ANNOTATION.to_string(),
                Value::String(annotation),
            );
        }
    }
    modified
}

/// The last-applied configuration recorded on a live object, if any and readable.
pub fn last_applied_of(live: &Value) -> Option<Value> {
    json::annotation(live, LAST_APPLIED_ANNOTATION).and_then(|text| serde_json::from_str(text).ok())
}

/// The three-way patch turning `current` into `modified` while removing what `original`
/// had and `modified` no longer has. An empty object means nothing to send.
pub fn three_way_patch(
    original: Option<&Value>,
    modified: &Value,
    current: &Value,
    patch_type: PatchType,
) -> Value {
    let kind = json::kind(modified).to_string();
    let context = Context {
        kind: &kind,
        patch_type,
    };
    let empty = Map::new();
    let patch = diff_maps(
        &context,
        &mut Vec::new(),
        original.and_then(Value::as_object),
        modified.as_object().unwrap_or(&empty),
        current.as_object().unwrap_or(&empty),
    );
    Value::Object(patch)
}

struct Context<'a> {
    kind: &'a str,
    patch_type: PatchType,
}

fn diff_maps(
    context: &Context<'_>,
    path: &mut Vec<String>,
    original: Option<&Map<String, Value>>,
    modified: &Map<String, Value>,
    current: &Map<String, Value>,
) -> Map<String, Value> {
    let mut patch = Map::new();
    // Removals: applied before, no longer applied, still there.
    if let Some(original) = original {
        for key in original.keys() {
            if !modified.contains_key(key) && current.contains_key(key) {
                patch.insert(key.clone(), Value::Null);
            }
        }
    }
    for (key, wanted) in modified {
        let before = original.and_then(|o| o.get(key));
        let Some(live) = current.get(key) else {
            if !wanted.is_null() {
                patch.insert(key.clone(), wanted.clone());
            }
            continue;
        };
        match (wanted, live) {
            (Value::Null, _) => {
                patch.insert(key.clone(), Value::Null);
            }
            (Value::Object(wanted), Value::Object(live)) => {
                path.push(key.clone());
                let mut sub = diff_maps(
                    context,
                    path,
                    before.and_then(Value::as_object),
                    wanted,
                    live,
                );
                if context.patch_type == PatchType::Strategic
                    && tags_at(context, path).retains_keys()
                {
                    add_retain_keys(&mut sub, wanted, live);
                }
                path.pop();
                if !sub.is_empty() {
                    patch.insert(key.clone(), Value::Object(sub));
                }
            }
            (Value::Array(wanted), Value::Array(live))
                if context.patch_type == PatchType::Strategic =>
            {
                path.push(key.clone());
                let tags = tags_at(context, path);
                let before = before.and_then(Value::as_array).map(Vec::as_slice);
                match tags.list_strategy() {
                    ListStrategy::MergeByKey(merge_key)
                        if wanted.iter().all(|e| e.get(merge_key).is_some())
                            && live.iter().all(|e| e.get(merge_key).is_some()) =>
                    {
                        let list = KeyedList {
                            field: key,
                            merge_key,
                            retain_keys: tags.retains_keys(),
                        };
                        diff_keyed_list(context, path, &list, before, wanted, live, &mut patch);
                    }
                    ListStrategy::MergePrimitives => {
                        diff_primitive_list(key, before, wanted, live, &mut patch);
                    }
                    _ => {
                        if wanted != live {
                            patch.insert(key.clone(), Value::Array(wanted.clone()));
                        }
                    }
                }
                path.pop();
            }
            (wanted, live) => {
                if wanted != live {
                    patch.insert(key.clone(), wanted.clone());
                }
            }
        }
    }
    patch
}

/// The patch tags of the field at `path` in the object being patched.
fn tags_at(context: &Context<'_>, path: &[String]) -> PatchTags {
    let names: Vec<&str> = path.iter().map(String::as_str).collect();
    patch_meta::field_tags(context.kind, &names)
}

/// kubectl's `$retainKeys` for a map tagged `retainKeys` (a Deployment's `strategy`, each
/// of a pod's `volumes`): the keys `modified` sets, sorted, so that the server clears the
/// others (a defaulted `rollingUpdate` once the strategy is `Recreate`, the old source of a
/// volume). kubectl sends it when the map's patch is not empty or when the live map has a
/// key the manifest does not set, which is on every apply of a Deployment whose strategy
/// is given while its `rollingUpdate` is defaulted.
fn add_retain_keys(
    patch: &mut Map<String, Value>,
    modified: &Map<String, Value>,
    current: &Map<String, Value>,
) {
    let mut keep: Vec<&String> = modified
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| k)
        .collect();
    let unset_live = current
        .iter()
        .any(|(k, v)| !v.is_null() && !modified.contains_key(k));
    if keep.is_empty() || (patch.is_empty() && !unset_live) {
        return;
    }
    keep.sort();
    patch.insert(
        "$retainKeys".to_string(),
        Value::Array(keep.into_iter().map(|k| Value::String(k.clone())).collect()),
    );
}

/// A list merged by a key, as its tags say.
struct KeyedList<'a> {
    field: &'a str,
    merge_key: &'a str,
    retain_keys: bool,
}

fn find_by<'a>(list: &'a [Value], merge_key: &str, value: &Value) -> Option<&'a Value> {
    list.iter().find(|e| e.get(merge_key) == Some(value))
}

fn diff_keyed_list(
    context: &Context<'_>,
    path: &mut Vec<String>,
    list: &KeyedList<'_>,
    original: Option<&[Value]>,
    modified: &[Value],
    current: &[Value],
    patch: &mut Map<String, Value>,
) {
    let (field, merge_key) = (list.field, list.merge_key);
    let empty = Map::new();
    let mut elements = Vec::new();
    for wanted in modified {
        let Some(key_value) = wanted.get(merge_key) else {
            continue;
        };
        let wanted_map = wanted.as_object().unwrap_or(&empty);
        match find_by(current, merge_key, key_value) {
            None => elements.push(wanted.clone()),
            Some(live) => {
                let before = original
                    .and_then(|o| find_by(o, merge_key, key_value))
                    .and_then(Value::as_object);
                let live_map = live.as_object().unwrap_or(&empty);
                let mut sub = diff_maps(context, path, before, wanted_map, live_map);
                if list.retain_keys {
                    add_retain_keys(&mut sub, wanted_map, live_map);
                }
                if !sub.is_empty() {
                    sub.insert(merge_key.to_string(), key_value.clone());
                    elements.push(Value::Object(sub));
                }
            }
        }
    }
    for before in original.unwrap_or_default() {
        let Some(key_value) = before.get(merge_key) else {
            continue;
        };
        if find_by(modified, merge_key, key_value).is_none()
            && find_by(current, merge_key, key_value).is_some()
        {
            let mut deletion = Map::new();
            deletion.insert(merge_key.to_string(), key_value.clone());
            deletion.insert("$patch".to_string(), Value::String("delete".to_string()));
            elements.push(Value::Object(deletion));
        }
    }
    if elements.is_empty() {
        return;
    }
    patch.insert(field.to_string(), Value::Array(elements));
    let order = modified
        .iter()
        .filter_map(|e| e.get(merge_key))
        .map(|v| {
            let mut entry = Map::new();
            entry.insert(merge_key.to_string(), v.clone());
            Value::Object(entry)
        })
        .collect();
    patch.insert(format!("$setElementOrder/{field}"), Value::Array(order));
}

fn diff_primitive_list(
    field: &str,
    original: Option<&[Value]>,
    modified: &[Value],
    current: &[Value],
    patch: &mut Map<String, Value>,
) {
    let added: Vec<Value> = modified
        .iter()
        .filter(|v| !current.contains(v))
        .cloned()
        .collect();
    let removed: Vec<Value> = original
        .unwrap_or_default()
        .iter()
        .filter(|v| !modified.contains(v) && current.contains(v))
        .cloned()
        .collect();
    if added.is_empty() && removed.is_empty() {
        return;
    }
    if !added.is_empty() {
        patch.insert(field.to_string(), Value::Array(added));
    }
    if !removed.is_empty() {
        patch.insert(
            format!("$deleteFromPrimitiveList/{field}"),
            Value::Array(removed),
        );
    }
    patch.insert(
        format!("$setElementOrder/{field}"),
        Value::Array(modified.to_vec()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use plumb_model::merge_patch::merge_patch;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn last_applied_is_go_json_with_annotations_present() {
        let object = json!({"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "a", "namespace": "n"},
            "data": {"z": "<&>", "a": "line\nbreak", "n": 1.0}});
        assert_eq!(
            last_applied_configuration(&object),
            "{\"apiVersion\":\"v1\",\"data\":{\"a\":\"line\\nbreak\",\"n\":1,\"z\":\"\\u003c\\u0026\\u003e\"},\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{},\"name\":\"a\",\"namespace\":\"n\"}}\n"
        );
        // An old annotation never nests into the new one.
        let applied = with_last_applied(&object);
        assert_eq!(
            last_applied_configuration(&applied),
            last_applied_configuration(&object)
        );
        assert_eq!(
            last_applied_of(&applied).as_ref(),
            Some(&{
                let mut expected = object.clone();
                expected["metadata"]["annotations"] = json!({});
                // Go writes a whole float as an integer, which reads back as one.
                expected["data"]["n"] = json!(1);
                expected
            })
        );
    }

    #[test]
    fn strategic_three_way_golden() {
        let original = json!({"kind": "Deployment", "spec": {"replicas": 2, "template": {"spec": {
            "containers": [{"name": "app", "image": "a:1", "args": ["x"],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                           {"name": "sidecar", "image": "s:1"}]}}}});
        let modified = json!({"kind": "Deployment", "spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": "a:2",
                            "env": [{"name": "A", "value": "1"}]}]}}}});
        let current = json!({"kind": "Deployment", "spec": {"replicas": 2, "paused": false,
            "template": {"spec": {"dnsPolicy": "ClusterFirst",
            "containers": [{"name": "app", "image": "a:1", "args": ["x"], "imagePullPolicy": "IfNotPresent",
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "other"}]},
                           {"name": "sidecar", "image": "s:1"},
                           {"name": "injected", "image": "i:1"}]}}}});
        let patch = three_way_patch(Some(&original), &modified, &current, PatchType::Strategic);
        assert_eq!(
            patch,
            json!({"spec": {"replicas": null, "template": {"spec": {
                "containers": [
                    {"name": "app", "image": "a:2", "args": null,
                     "env": [{"name": "B", "$patch": "delete"}],
                     "$setElementOrder/env": [{"name": "A"}]},
                    {"name": "sidecar", "$patch": "delete"}],
                "$setElementOrder/containers": [{"name": "app"}]}}}})
        );
        // Nothing to do when live already matches and nothing was dropped.
        assert_eq!(
            three_way_patch(
                Some(&modified),
                &modified,
                &current_after(&current),
                PatchType::Strategic
            ),
            json!({})
        );
    }

    /// kubectl 1.37's patches for these two applies, as it sent them to kube-apiserver
    /// (captured with -v=9; the last-applied annotation left out).
    #[test]
    fn retain_keys_as_kubectl_sends_them() {
        let deployment = |image: &str, volume: Value| {
            json!({"kind": "Deployment", "spec": {"replicas": 0,
                "strategy": {"type": "RollingUpdate"},
                "template": {"spec": {
                    "containers": [{"name": "main", "image": image,
                        "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}],
                    "volumes": [volume]}}}})
        };
        let defaulted = |mut object: Value| {
            object["spec"]["strategy"]["rollingUpdate"] =
                json!({"maxSurge": "25%", "maxUnavailable": "25%"});
            object
        };
        let empty_dir = json!({"name": "cache", "emptyDir": {}});
        let one = deployment("registry.example/web:1", empty_dir.clone());
        let two = deployment("registry.example/web:2", empty_dir);
        assert_eq!(
            three_way_patch(
                Some(&one),
                &two,
                &defaulted(one.clone()),
                PatchType::Strategic
            ),
            json!({"spec": {"strategy": {"$retainKeys": ["type"]}, "template": {"spec": {
                "$setElementOrder/containers": [{"name": "main"}],
                "containers": [{"image": "registry.example/web:2", "name": "main"}]}}}})
        );
        let three = deployment(
            "registry.example/web:2",
            json!({"name": "cache", "configMap": {"name": "x"}}),
        );
        assert_eq!(
            three_way_patch(
                Some(&two),
                &three,
                &defaulted(two.clone()),
                PatchType::Strategic
            ),
            json!({"spec": {"strategy": {"$retainKeys": ["type"]}, "template": {"spec": {
                "$setElementOrder/volumes": [{"name": "cache"}],
                "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "x"},
                    "emptyDir": null, "name": "cache"}]}}}})
        );
    }

    fn current_after(current: &Value) -> Value {
        let mut live = current.clone();
        live["spec"]["template"]["spec"]["containers"] = json!([
            {"name": "app", "image": "a:2", "imagePullPolicy": "IfNotPresent",
             "env": [{"name": "A", "value": "1"}, {"name": "C", "value": "other"}]},
            {"name": "injected", "image": "i:1"}]);
        live
    }

    #[test]
    fn finalizers_merge_as_sets_and_atomic_lists_are_replaced() {
        let original = json!({"kind": "ConfigMap", "metadata": {"finalizers": ["a", "b"]},
            "rules": [1, 2]});
        let modified = json!({"kind": "ConfigMap", "metadata": {"finalizers": ["a", "c"]},
            "rules": [1]});
        let current = json!({"kind": "ConfigMap", "metadata": {"finalizers": ["a", "b", "x"]},
            "rules": [1, 2]});
        assert_eq!(
            three_way_patch(Some(&original), &modified, &current, PatchType::Strategic),
            json!({"metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["b"],
                   "$setElementOrder/finalizers": ["a", "c"]},
                   "rules": [1]})
        );
    }

    #[test]
    fn custom_resources_get_merge_patches_with_whole_lists() {
        let original =
            json!({"kind": "Widget", "spec": {"size": 1, "items": [{"name": "a"}], "old": true}});
        let modified = json!({"kind": "Widget", "spec": {"size": 2, "items": [{"name": "b"}]}});
        let current = json!({"kind": "Widget", "spec": {"size": 1, "items": [{"name": "a"}], "old": true, "other": 1}});
        assert_eq!(
            three_way_patch(Some(&original), &modified, &current, PatchType::Merge),
            json!({"spec": {"old": null, "size": 2, "items": [{"name": "b"}]}})
        );
        assert_eq!(patch_type("example.com/v1"), PatchType::Merge);
        assert_eq!(patch_type("apps/v1"), PatchType::Strategic);
        assert_eq!(patch_type("v1"), PatchType::Strategic);
    }

    fn tree() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::from),
            prop::collection::vec(0i64..3, 0..3).prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop::collection::btree_map("[a-e]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        })
    }

    proptest! {
        /// Applying the three-way merge patch to current yields modified's values, removes
        /// what original had and modified dropped, and keeps what others added.
        #[test]
        fn merge_patch_three_way_effect(original in tree(), modified in tree(), others in tree()) {
            prop_assume!(original.is_object() && modified.is_object() && others.is_object());
            // Current: what was applied before, plus fields of others at keys nobody applies.
            let mut current = original.clone();
            for (key, value) in others.as_object().into_iter().flatten() {
                let owned = original.get(key).is_some() || modified.get(key).is_some();
                if !owned {
                    current[key.as_str()] = value.clone();
                }
            }
            let patch = three_way_patch(Some(&original), &modified, &current, PatchType::Merge);
            let result = merge_patch(&current, &patch);
            for (key, value) in modified.as_object().into_iter().flatten() {
                prop_assert_eq!(result.get(key), Some(value));
            }
            for (key, _) in original.as_object().into_iter().flatten() {
                if modified.get(key).is_none() {
                    prop_assert!(result.get(key).is_none(), "{} kept", key);
                }
            }
            for (key, value) in current.as_object().into_iter().flatten() {
                if original.get(key).is_none() && modified.get(key).is_none() {
                    prop_assert_eq!(result.get(key), Some(value));
                }
            }
            // Applying it again changes nothing more.
            let again = three_way_patch(Some(&modified), &modified, &result, PatchType::Merge);
            prop_assert_eq!(merge_patch(&result, &again), result);
        }
    }
}
