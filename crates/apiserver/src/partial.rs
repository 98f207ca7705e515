//! Metadata-only answers: objects as `PartialObjectMetadata` and lists as
//! `PartialObjectMetadataList`, as kube-apiserver converts them for clients that ask with
//! `Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1` (metadata
//! informers, kube-rs `metadata_watcher`, plumb's own engine).
//!
//! Lists and watch events are built from the stored bytes: [`metadata_span`] finds the
//! `metadata` value without parsing the rest of the object, so a metadata-only list costs
//! less than a whole one.

use std::ops::Range;

use serde_json::{Map, Value, json};

use crate::api_error::ApiError;
use crate::negotiation::MetaVersion;
use crate::registry::ResourceInfo;

const PARTIAL: &str = "PartialObjectMetadata";
const PARTIAL_LIST: &str = "PartialObjectMetadataList";

/// The byte range of the top-level `metadata` value of a JSON object, if it has one.
/// `json` must be valid JSON (the store only holds what serde_json wrote).
pub fn metadata_span(json: &[u8]) -> Option<Range<usize>> {
    let mut at = skip_space(json, 0);
    if json.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_space(json, at + 1);
    while json.get(at) == Some(&b'"') {
        let key_end = skip_string(json, at)?;
        let key = &json[at + 1..key_end - 1];
        at = skip_space(json, key_end);
        if json.get(at) != Some(&b':') {
            return None;
        }
        let value_start = skip_space(json, at + 1);
        let value_end = skip_value(json, value_start)?;
        if key == b"metadata" {
            return Some(value_start..value_end);
        }
        at = skip_space(json, value_end);
        match json.get(at) {
            Some(b',') => at = skip_space(json, at + 1),
            _ => return None,
        }
    }
    None
}

fn skip_space(json: &[u8], mut at: usize) -> usize {
    while json.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// The end (exclusive) of the string starting at `at` (a `"`).
fn skip_string(json: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    loop {
        match json.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// The end (exclusive) of the value starting at `at`.
fn skip_value(json: &[u8], at: usize) -> Option<usize> {
    match json.get(at)? {
        b'"' => skip_string(json, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match json.get(i)? {
                    b'"' => {
                        i = skip_string(json, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let mut i = at;
            while json
                .get(i)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
            {
                i += 1;
            }
            (i > at).then_some(i)
        }
    }
}

/// Appends `{"kind":"PartialObjectMetadata","apiVersion":…,"metadata":…}` to `out`, given
/// an object's serialized `metadata` (`{}` when it has none).
pub(crate) fn push_partial(out: &mut Vec<u8>, version: MetaVersion, metadata: Option<&[u8]>) {
    out.extend_from_slice(b"{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"");
    out.extend_from_slice(version.api_version().as_bytes());
    out.extend_from_slice(b"\",\"metadata\":");
    out.extend_from_slice(metadata.unwrap_or(b"{}"));
    out.push(b'}');
}

/// A metadata-only list: the list's metadata (`resourceVersion`, `continue`,
/// `remainingItemCount`, already serialized) and each item's serialized `metadata`. An
/// empty list has `"items":null`, as kube-apiserver writes it.
pub(crate) fn list_bytes<'a>(
    version: MetaVersion,
    list_metadata: &str,
    items: impl ExactSizeIterator<Item = Option<&'a [u8]>> + Clone,
) -> Vec<u8> {
    let per_item = 80 + version.api_version().len();
    let capacity = items
        .clone()
        .map(|m| m.map_or(2, <[u8]>::len) + per_item)
        .sum::<usize>();
    let mut out = Vec::with_capacity(128 + list_metadata.len() + capacity);
    out.extend_from_slice(b"{\"kind\":\"PartialObjectMetadataList\",\"apiVersion\":\"");
    out.extend_from_slice(version.api_version().as_bytes());
    out.extend_from_slice(b"\",\"metadata\":");
    out.extend_from_slice(list_metadata.as_bytes());
    out.extend_from_slice(b",\"items\":");
    if items.len() == 0 {
        out.extend_from_slice(b"null");
    } else {
        out.push(b'[');
        for (index, item) in items.enumerate() {
            if index > 0 {
                out.push(b',');
            }
            push_partial(&mut out, version, item);
        }
        out.push(b']');
    }
    out.push(b'}');
    out
}

/// A watch bookmark as `PartialObjectMetadata`.
pub(crate) fn bookmark(version: MetaVersion, metadata: Value) -> Value {
    json!({"kind": PARTIAL, "apiVersion": version.api_version(), "metadata": metadata})
}

/// The Go type kube-apiserver names in its conversion errors: custom resources are
/// `unstructured` objects, built-in ones the internal type of their group's package
/// (`events.k8s.io` Events are `core` Events).
fn go_type(info: &ResourceInfo, body: &Value) -> String {
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or_default();
    if info.custom && (kind == info.kind || kind == info.list_kind) {
        let suffix = if kind == info.list_kind { "List" } else { "" };
        return format!("*unstructured.Unstructured{suffix}");
    }
    let group = body
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.split_once('/'))
        .map(|(group, _)| group)
        .unwrap_or_default();
    let package = match group {
        "" | "events.k8s.io" => "core",
        other => other.split('.').next().unwrap_or(other),
    };
    format!("*{package}.{kind}")
}

fn is_list(body: &Value) -> bool {
    body.get("items")
        .is_some_and(|i| i.is_array() || i.is_null())
}

/// `406`: the request asked for `PartialObjectMetadata` of the resource's list served in
/// `api_version`.
pub(crate) fn list_refused(info: &ResourceInfo, api_version: &str) -> ApiError {
    list_as_object(
        info,
        &json!({"kind": info.list_kind, "apiVersion": api_version}),
    )
}

fn list_as_object(info: &ResourceInfo, list: &Value) -> ApiError {
    ApiError::not_acceptable(format!(
        "you requested PartialObjectMetadata, but the requested object is a list ({})",
        go_type(info, list)
    ))
}

/// Converts an answer's body (an object or a list) to its metadata-only form; `Status`
/// bodies stay as they are. `list` says whether a `PartialObjectMetadataList` was asked
/// for. Fails as kube-apiserver does when the body is of the other shape.
pub(crate) fn convert(
    info: &ResourceInfo,
    body: Value,
    version: MetaVersion,
    list: bool,
) -> Result<Value, ApiError> {
    if body.get("kind").and_then(Value::as_str) == Some("Status") {
        return Ok(body);
    }
    match (list, is_list(&body)) {
        (false, false) => Ok(json!({
            "kind": PARTIAL,
            "apiVersion": version.api_version(),
            "metadata": body.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })),
        (false, true) => Err(list_as_object(info, &body)),
        // kube-apiserver's custom resource objects look like lists to its converter, which
        // then fails without classifying the error.
        (true, false)
            if info.custom && body.get("kind").and_then(Value::as_str) == Some(&info.kind) =>
        {
            Err(ApiError::unclassified("content is not a list"))
        }
        (true, false) => Err(ApiError::not_acceptable(format!(
            "you requested PartialObjectMetadataList, but the requested object is not a list ({})",
            go_type(info, &body)
        ))),
        (true, true) => {
            let mut metadata = Map::new();
            for key in ["resourceVersion", "continue", "remainingItemCount"] {
                if let Some(value) = body.pointer(&format!("/metadata/{key}"))
                    && !value.is_null()
                    && value != ""
                {
                    metadata.insert(key.to_string(), value.clone());
                }
            }
            let items: Vec<Value> = body
                .get("items")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .map(|item| {
                            json!({
                                "kind": PARTIAL,
                                "apiVersion": version.api_version(),
                                "metadata": item.get("metadata").cloned().unwrap_or_else(|| json!({})),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(json!({
                "kind": PARTIAL_LIST,
                "apiVersion": version.api_version(),
                "metadata": metadata,
                "items": if items.is_empty() { Value::Null } else { Value::Array(items) },
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_metadata_value_is_found_wherever_it_is() {
        let cases = [
            (
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","labels":{"x":"}"}},"data":{"metadata":"no"}}"#,
                Some(r#"{"name":"a","labels":{"x":"}"}}"#),
            ),
            (
                r#"{ "data" : {"k":"v\"}"} , "n": -1.5e3, "t": true, "metadata" : {"name":"b"} }"#,
                Some(r#"{"name":"b"}"#),
            ),
            (
                r#"{"list":[1,[2,{"a":"]"}]],"metadata":null}"#,
                Some("null"),
            ),
            (r#"{"kind":"Status"}"#, None),
            (r#"{}"#, None),
            (r#"[{"metadata":{}}]"#, None),
            (r#"{"spec":{"metadata":{"name":"nested"}}}"#, None),
        ];
        for (json, expected) in cases {
            let found = metadata_span(json.as_bytes()).map(|span| &json[span]);
            assert_eq!(found, expected, "{json}");
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            (-1.0e6f64..1.0e6).prop_map(|f| json!(f)),
            "[ -~\\\\\"\u{e9}\u{1F600}\n\t]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map("[a-z\"\\\\{}:,]{0,6}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever else the object holds, in whatever order, compact or pretty, the span
        /// is exactly its `metadata` value.
        #[test]
        fn the_span_holds_exactly_the_metadata(
            before in prop::collection::btree_map("[a-z\"{]{1,8}", json_value(), 0..4),
            after in prop::collection::btree_map("[a-z\"}]{1,8}", json_value(), 0..4),
            metadata in prop::option::of(json_value()),
            pretty in any::<bool>(),
        ) {
            let mut object = Map::new();
            for (key, value) in before {
                if key != "metadata" {
                    object.insert(key, value);
                }
            }
            if let Some(metadata) = &metadata {
                object.insert("metadata".into(), metadata.clone());
            }
            for (key, value) in after {
                if key != "metadata" {
                    object.insert(key, value);
                }
            }
            let object = Value::Object(object);
            let text = if pretty {
                serde_json::to_vec_pretty(&object).expect("serializes")
            } else {
                serde_json::to_vec(&object).expect("serializes")
            };
            let found = metadata_span(&text)
                .map(|span| serde_json::from_slice::<Value>(&text[span]).expect("span is JSON"));
            // Compared with what the parser reads there (floats need not round-trip).
            let parsed: Value = serde_json::from_slice(&text).expect("parses");
            prop_assert_eq!(found.is_some(), metadata.is_some());
            prop_assert_eq!(found, parsed.get("metadata").cloned());
        }
    }
}
