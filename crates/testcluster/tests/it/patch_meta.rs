//! plumb's table of strategic-merge-patch tags (`plumb_model::patch_meta`, used by the
//! embedded API server and by the engine's client-side apply) against what the real
//! kube-apiserver serves: `x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key`
//! of every field of every kind in `/openapi/v2`, found by the same path from the root.

use plumb_model::patch_meta::{Cursor, PatchTags};
use serde_json::{Map, Value};

/// The definition a property points at (`$ref`, or `allOf: [{$ref}]`).
fn reference(property: &Value) -> Option<&str> {
    property
        .get("$ref")
        .or_else(|| property.pointer("/allOf/0/$ref"))
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/definitions/"))
}

fn text<'a>(property: &'a Value, key: &str) -> &'a str {
    property.get(key).and_then(Value::as_str).unwrap_or("")
}

struct Walk<'a> {
    definitions: &'a Map<String, Value>,
    kind: String,
    mismatches: Vec<String>,
    tagged: usize,
}

impl Walk<'_> {
    fn walk(&mut self, ty: &str, at: Cursor, path: &mut Vec<String>, stack: &mut Vec<String>) {
        let Some(properties) = self
            .definitions
            .get(ty)
            .and_then(|d| d.get("properties"))
            .and_then(Value::as_object)
        else {
            return;
        };
        // A recursive type (a CRD's JSONSchemaProps) is walked once on each path.
        stack.push(ty.to_string());
        for (name, property) in properties {
            let here = at.field(name);
            path.push(name.clone());
            let served = (
                text(property, "x-kubernetes-patch-strategy"),
                text(property, "x-kubernetes-patch-merge-key"),
            );
            if served != ("", "") {
                self.tagged += 1;
            }
            let PatchTags {
                strategy,
                merge_key,
            } = here.tags();
            if (strategy, merge_key) != served {
                self.mismatches.push(format!(
                    "{} {}: kube-apiserver {served:?}, plumb ({strategy:?}, {merge_key:?})",
                    self.kind,
                    path.join(".")
                ));
            }
            // Below: a struct, a list's items (no path element), a map's values (the key
            // is a path element).
            let below = match property.get("type").and_then(Value::as_str) {
                Some("array") => property.get("items").and_then(reference).map(|r| (r, here)),
                Some("object") => property
                    .get("additionalProperties")
                    .and_then(reference)
                    .map(|r| {
                        path.push("key".into());
                        (r, here.field("key"))
                    }),
                _ => reference(property).map(|r| (r, here)),
            };
            let map_key = matches!(property.get("type").and_then(Value::as_str), Some("object"))
                && below.is_some();
            if let Some((child, cursor)) = below
                && !stack.iter().any(|t| t == child)
            {
                self.walk(child, cursor, path, stack);
            }
            if map_key {
                path.pop();
            }
            path.pop();
        }
        stack.pop();
    }
}

#[test]
fn the_table_matches_kube_apiserver_openapi() {
    let cluster = crate::cluster();
    let served = crate::kubectl(cluster, &["get", "--raw", "/openapi/v2"]);
    let doc: Value = serde_json::from_str(&served).expect("/openapi/v2 is JSON");
    let definitions = doc["definitions"].as_object().expect("definitions");
    let mut walk = Walk {
        definitions,
        kind: String::new(),
        mismatches: Vec::new(),
        tagged: 0,
    };
    let mut kinds = 0;
    for (name, definition) in definitions {
        let Some(gvks) = definition
            .get("x-kubernetes-group-version-kind")
            .and_then(Value::as_array)
        else {
            continue;
        };
        if definition.pointer("/properties/metadata").is_none() {
            continue;
        }
        for gvk in gvks {
            let kind = gvk["kind"].as_str().unwrap_or("");
            if kind.is_empty() || kind.ends_with("List") {
                continue;
            }
            kinds += 1;
            walk.kind = format!("{}/{} {kind}", text(gvk, "group"), text(gvk, "version"));
            walk.walk(name, Cursor::root(kind), &mut Vec::new(), &mut Vec::new());
        }
    }
    assert!(kinds > 50, "only {kinds} kinds in /openapi/v2");
    assert!(walk.tagged > 300, "only {} tagged paths", walk.tagged);
    assert!(
        walk.mismatches.is_empty(),
        "{} paths differ ({} kinds walked):\n{}",
        walk.mismatches.len(),
        kinds,
        walk.mismatches.join("\n")
    );
}
