//! Secret masking: `data` and `stringData` values never leave the engine. Each distinct
//! value of a key gets its own run of `+` (Argo CD's convention), consistently across the
//! objects masked together, so a changed value still shows as a change.

use base64::Engine;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};

fn is_secret(object: &Value) -> bool {
    crate::json::api_version(object) == "v1" && crate::json::kind(object) == "Secret"
}

/// Folds `stringData` into `data` (base64), as the API server does, so desired and live
/// compare like for like.
pub fn fold_string_data(object: &mut Value) {
    if !is_secret(object) {
        return;
    }
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = map
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Value::Object(data) = data {
        for (key, value) in string_data {
            let text = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            data.insert(
                key,
                Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}

/// Masks Secret values in all given objects together (desired, live, predicted of one
/// resource). Non-Secrets are left alone.
pub fn mask_secrets(objects: &mut [&mut Value]) {
    let mut keys = BTreeSet::new();
    for object in objects.iter_mut() {
        if !is_secret(object) {
            continue;
        }
        fold_string_data(object);
        if let Some(Value::Object(data)) = object.get("data") {
            keys.extend(data.keys().cloned());
        }
    }
    for key in keys {
        let mut masks: HashMap<String, String> = HashMap::new();
        let mut next = "+".repeat(8);
        for object in objects.iter_mut() {
            if !is_secret(object) {
                continue;
            }
            let Some(Value::Object(data)) = object.get_mut("data") else {
                continue;
            };
            let Some(value) = data.get_mut(&key) else {
                continue;
            };
            let plain = match &*value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let mask = masks.entry(plain).or_insert_with(|| {
                let mask = next.clone();
                next.push_str("++++");
                mask
            });
            *value = Value::String(mask.clone());
        }
    }
    for object in objects.iter_mut() {
        if is_secret(object)
            && let Some(Value::Object(annotations)) = object.pointer_mut("/metadata/annotations")
        {
            // The last-applied copy would carry the values in clear.
            if annotations
                .remove(super::normalize::LAST_APPLIED_ANNOTATION)
                .is_some()
            {
                annotations.insert(
                    super::normalize::LAST_APPLIED_ANNOTATION.to_string(),
                    Value::String("++++++++".to_string()),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn secret(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": data})
    }

    #[test]
    fn same_value_same_mask_changed_value_differs() {
        let mut desired = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                                 "stringData": {"password": "hunter2", "user": "admin"}});
        let mut live = secret(json!({
            "password": base64::engine::general_purpose::STANDARD.encode("hunter3"),
            "user": base64::engine::general_purpose::STANDARD.encode("admin"),
        }));
        mask_secrets(&mut [&mut desired, &mut live]);
        assert_eq!(desired["data"]["user"], live["data"]["user"]);
        assert_ne!(desired["data"]["password"], live["data"]["password"]);
        assert_eq!(desired["data"]["password"], "++++++++");
        assert_eq!(live["data"]["password"], "++++++++++++");
        assert!(desired.get("stringData").is_none());
    }

    #[test]
    fn config_maps_are_not_masked() {
        let mut config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}});
        mask_secrets(&mut [&mut config_map]);
        assert_eq!(config_map["data"]["a"], "b");
    }

    proptest! {
        #[test]
        fn no_value_survives_masking(values in proptest::collection::btree_map("[a-z]{1,8}", "[ -~]{1,30}", 1..6)) {
            let data: Map<String, Value> = values.iter()
                .map(|(k, v)| (k.clone(), Value::String(base64::engine::general_purpose::STANDARD.encode(v))))
                .collect();
            let mut live = secret(Value::Object(data.clone()));
            let mut desired = secret(Value::Object(data));
            mask_secrets(&mut [&mut desired, &mut live]);
            prop_assert_eq!(&desired, &live);
            let text = live.to_string();
            for value in values.values() {
                let encoded = base64::engine::general_purpose::STANDARD.encode(value);
                prop_assert!(!text.contains(&encoded));
            }
        }
    }
}
