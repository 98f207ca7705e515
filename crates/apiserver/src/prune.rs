//! Pruning custom resources to their CRD's structural schema, as Kubernetes does: fields
//! the schema does not declare are dropped (or, with `fieldValidation=Strict`, refused),
//! except below `x-kubernetes-preserve-unknown-fields: true`. Pure.

use serde_json::Value;

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

/// Prunes a whole custom resource; `apiVersion`, `kind` and `metadata` are always kept.
/// Returns the paths of the fields removed (`.spec.foo`), in document order.
pub fn prune_object(object: &mut Value, schema: &Value) -> Vec<String> {
    let mut removed = Vec::new();
    let Some(map) = object.as_object_mut() else {
        return removed;
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let path = format!(".{key}");
        match properties.and_then(|p| p.get(&key)) {
            Some(sub) => {
                if let Some(v) = map.get_mut(&key) {
                    prune_value(v, sub, &path, &mut removed);
                }
            }
            None if preserves(schema) => {}
            None => {
                map.remove(&key);
                removed.push(path);
            }
        }
    }
    removed
}

fn prune_value(value: &mut Value, schema: &Value, path: &str, removed: &mut Vec<String>) {
    if schema
        .get("x-kubernetes-embedded-resource")
        .and_then(Value::as_bool)
        == Some(true)
        || schema.get("x-kubernetes-int-or-string").is_some()
    {
        if let Value::Object(_) = value {
            // Embedded objects keep their type and metadata; the rest follows the schema.
            let nested = prune_object(value, schema);
            removed.extend(nested.into_iter().map(|p| format!("{path}{p}")));
        }
        return;
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child = format!("{path}.{key}");
                let sub = properties.and_then(|p| p.get(&key)).or(additional);
                match sub {
                    Some(sub) => {
                        if let Some(v) = map.get_mut(&key) {
                            prune_value(v, sub, &child, removed);
                        }
                    }
                    None if preserves(schema) => {}
                    // `additionalProperties: true` keeps everything, untyped.
                    None if schema.get("additionalProperties").and_then(Value::as_bool)
                        == Some(true) => {}
                    None => {
                        map.remove(&key);
                        removed.push(child);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_value(item, item_schema, &format!("{path}[{i}]"), removed);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "size": {"type": "integer"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }})
    }

    #[test]
    fn drops_undeclared_fields_everywhere_but_preserved_subtrees() {
        let mut o = json!({
            "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "anything": 1},
            "spec": {"size": 1, "extra": true, "labels": {"a": "b"}, "items": [{"name": "x", "junk": 1}], "free": {"k": {"deep": 1}}},
            "status": {"whatever": [1]},
            "top": "level"
        });
        let removed = prune_object(&mut o, &schema());
        assert_eq!(removed, vec![".spec.extra", ".spec.items[0].junk", ".top"]);
        assert_eq!(
            o,
            json!({
                "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "anything": 1},
                "spec": {"size": 1, "labels": {"a": "b"}, "items": [{"name": "x"}], "free": {"k": {"deep": 1}}},
                "status": {"whatever": [1]}
            })
        );
    }

    #[test]
    fn a_schema_that_preserves_everything_prunes_nothing() {
        let mut o =
            json!({"apiVersion": "a/v1", "kind": "K", "metadata": {}, "spec": {"x": 1}, "y": 2});
        let before = o.clone();
        assert!(
            prune_object(
                &mut o,
                &json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
            )
            .is_empty()
        );
        assert_eq!(o, before);
    }
}
