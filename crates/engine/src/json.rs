//! Small readers over `serde_json::Value` manifests, so rules read like the fields they test.

use serde_json::{Map, Value};

/// The value at a path of object keys, if every step exists.
pub fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |current, key| current.get(key))
}

/// A string at `path`, or "" when absent or not a string.
pub fn str_at<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    at(value, path).and_then(Value::as_str).unwrap_or("")
}

/// An integer at `path`, or 0 when absent (Kubernetes omits zero counters).
pub fn int_at(value: &Value, path: &[&str]) -> i64 {
    at(value, path).and_then(Value::as_i64).unwrap_or(0)
}

/// An optional integer at `path` (for fields where absent and zero differ).
pub fn opt_int_at(value: &Value, path: &[&str]) -> Option<i64> {
    at(value, path).and_then(Value::as_i64)
}

/// A boolean at `path`, false when absent.
pub fn bool_at(value: &Value, path: &[&str]) -> bool {
    at(value, path).and_then(Value::as_bool).unwrap_or(false)
}

/// The array at `path`, or an empty slice.
pub fn array_at<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    at(value, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The object's `metadata.annotations[key]`.
pub fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    at(object, &["metadata", "annotations", key]).and_then(Value::as_str)
}

/// The object's `metadata.labels[key]`.
pub fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    at(object, &["metadata", "labels", key]).and_then(Value::as_str)
}

/// The `metadata` map of an object, created when missing (non-object metadata is replaced).
pub fn metadata_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = object.as_object_mut()?;
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    metadata.as_object_mut()
}

/// A string-valued map inside metadata (`labels`, `annotations`), created when missing.
pub fn metadata_map_mut<'a>(
    object: &'a mut Value,
    field: &str,
) -> Option<&'a mut Map<String, Value>> {
    let metadata = metadata_mut(object)?;
    let map = metadata
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    if !map.is_object() {
        *map = Value::Object(Map::new());
    }
    map.as_object_mut()
}

/// `apiVersion`, `kind`, name and namespace of an object (empty when absent).
pub fn api_version(object: &Value) -> &str {
    str_at(object, &["apiVersion"])
}

pub fn kind(object: &Value) -> &str {
    str_at(object, &["kind"])
}

pub fn name(object: &Value) -> &str {
    str_at(object, &["metadata", "name"])
}

pub fn namespace(object: &Value) -> &str {
    str_at(object, &["metadata", "namespace"])
}

/// The group of the object's `apiVersion`.
pub fn group(object: &Value) -> &str {
    plumb_model::group_of(api_version(object))
}
