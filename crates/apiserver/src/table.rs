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

/// Whether the table gets no Age column beyond the kind's own columns. A custom kind's
/// columns are all it shows after Name, as kube-apiserver's CRD table convertor does: a
/// CRD without `additionalPrinterColumns` has been given an Age column in their place
/// (`crd::resource_info`), and one with columns shows no Age unless it lists one.
fn no_extra_age(info: &ResourceInfo) -> bool {
    whole_table(info) || info.custom || info.printer_columns.iter().any(|c| c.name == "Age")
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
    for c in &info.printer_columns {
        cols.push(json!({"name": c.name, "type": if c.type_ == "date" { "string" } else { c.type_.as_str() }, "format": "", "description": "", "priority": c.priority}));
    }
    if !no_extra_age(info) {
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
        // kube-apiserver's CRD columns leave a cell whose path finds nothing empty (null,
        // which kubectl prints as blank); the built-in kinds' printers write `<none>`.
        Value::Null if info.custom => Value::Null,
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
    for c in &info.printer_columns {
        cells.push(cell(info, c, object, now));
    }
    if !no_extra_age(info) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn widget_info(columns: Option<Value>) -> ResourceInfo {
        let mut version = json!({"name": "v1", "served": true, "storage": true,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}});
        if let Some(columns) = columns {
            version["additionalPrinterColumns"] = columns;
        }
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"kind": "Widget", "plural": "widgets"}, "versions": [version]}
        });
        crate::crd::resource_info(&crd).expect("served")
    }

    fn names(columns: &Value) -> Vec<&str> {
        columns
            .as_array()
            .expect("columns")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect()
    }

    #[test]
    fn custom_kinds_show_their_columns_and_age_only_by_default() {
        let columns = json!([{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}]);
        let with_columns = widget_info(Some(columns));
        assert_eq!(names(&column_definitions(&with_columns)), ["Name", "Phase"]);
        for defaulted in [widget_info(None), widget_info(Some(json!([])))] {
            assert_eq!(names(&column_definitions(&defaulted)), ["Name", "Age"]);
        }
        // A path that finds nothing is an empty cell, not `<none>`.
        let object =
            json!({"metadata": {"name": "w", "creationTimestamp": "2026-01-01T00:00:00Z"}});
        let now = time::OffsetDateTime::now_utc();
        let row = row(
            &with_columns,
            &object,
            now,
            MetaVersion::V1,
            IncludeObject::None,
        );
        assert_eq!(row["cells"], json!(["w", null]));
    }
}
