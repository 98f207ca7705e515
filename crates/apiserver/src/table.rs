//! Server-side printing: `meta.k8s.io/v1` Table responses, which `kubectl get` asks for.

use serde_json::{Value, json};

use crate::negotiation::MetaVersion;
use crate::objects::{human_age, parse_rfc3339};
use crate::registry::{ResourceInfo, column_value};

/// Whether a kind's printer columns are its whole table: a kind that lists a `Name` column
/// of its own (Events, whose name is a wide-only column) gets no leading Name and no Age.
fn whole_table(info: &ResourceInfo) -> bool {
    info.printer_columns.iter().any(|c| c.name == "Name")
}

/// What each row of a Table carries (`includeObject`): nothing, the object's metadata
/// (the default), or the whole object (kubectl asks for it to `--sort-by` a field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub(crate) fn from_query(value: Option<&String>) -> IncludeObject {
        match value.map(String::as_str) {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

pub(crate) fn column_definitions(info: &ResourceInfo) -> Value {
    let mut cols = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    if whole_table(info) {
        cols.clear();
    }
    let mut has_age = whole_table(info);
    for c in &info.printer_columns {
        if c.name == "Age" {
            has_age = true;
        }
        cols.push(json!({"name": c.name, "type": if c.type_ == "date" { "string" } else { c.type_.as_str() }, "format": "", "description": "", "priority": c.priority}));
    }
    if !has_age {
        cols.push(json!({"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp", "priority": 0}));
    }
    Value::Array(cols)
}

fn cell(
    info: &ResourceInfo,
    c: &crate::registry::PrinterColumn,
    object: &Value,
    now: time::OffsetDateTime,
) -> Value {
    let v = column_value(object, &c.json_path);
    // kube-apiserver prints a built-in kind's counts from Go integers: a missing one is 0.
    if !info.custom && c.type_ == "integer" && v.is_null() {
        return json!(0);
    }
    if c.type_ == "date" {
        return match v.as_str().and_then(parse_rfc3339) {
            Some(t) => json!(human_age((now - t).whole_seconds())),
            None => json!("<unknown>"),
        };
    }
    match v {
        Value::Null => json!("<none>"),
        Value::Array(a) => json!(
            a.iter()
                .map(|x| x
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string()))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Value::Object(_) => json!(v.to_string()),
        other => other,
    }
}

/// One row (with the object's metadata, which kubectl uses for namespaces and labels).
pub(crate) fn row(
    info: &ResourceInfo,
    object: &Value,
    now: time::OffsetDateTime,
    version: MetaVersion,
    include: IncludeObject,
) -> Value {
    let mut cells = vec![
        object
            .pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null),
    ];
    if whole_table(info) {
        cells.clear();
    }
    let mut has_age = whole_table(info);
    for c in &info.printer_columns {
        if c.name == "Age" {
            has_age = true;
        }
        cells.push(cell(info, c, object, now));
    }
    if !has_age {
        let age = object
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .map(|t| human_age((now - t).whole_seconds()))
            .unwrap_or_else(|| "<unknown>".into());
        cells.push(json!(age));
    }
    let object = match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => {
            let mut whole = object.clone();
            if whole.get("kind").is_none() {
                whole["kind"] = json!(info.kind);
            }
            whole
        }
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": version.api_version(),
            "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    };
    json!({"cells": cells, "object": object})
}

/// The Table of `objects`, in `meta.k8s.io/<version>` (its rows' objects too).
pub(crate) fn table(
    info: &ResourceInfo,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    version: MetaVersion,
    include: IncludeObject,
) -> Value {
    let now = time::OffsetDateTime::now_utc();
    let mut meta = json!({"resourceVersion": resource_version});
    if let Some(c) = continue_token {
        meta["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": version.api_version(),
        "metadata": meta,
        "columnDefinitions": column_definitions(info),
        "rows": objects.iter().map(|o| row(info, o, now, version, include)).collect::<Vec<_>>(),
    })
}
