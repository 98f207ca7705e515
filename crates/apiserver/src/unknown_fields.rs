//! Unknown top-level fields of built-in kinds, found with the field table of their Go types
//! (the protobuf schema compiled in from k8s.io/api): what kube-apiserver's strict JSON
//! decoding refuses, warns about or drops, depending on `fieldValidation`. Nested fields
//! are not checked. Pure.

use serde_json::Value;

use crate::protobuf::schema::{self, Message, Schema};

/// The JSON names of a built-in kind's top-level fields (`apiVersion` and `kind`
/// included), or None when the kind is not a built-in one.
pub(crate) fn top_level_fields(api_version: &str, kind: &str) -> Option<Vec<String>> {
    let schema = schema::schema().ok()?;
    let message = schema.message(schema.message_for(api_version, kind)?)?;
    let mut names = vec!["apiVersion".to_string(), "kind".to_string()];
    collect(schema, message, &mut names, 0);
    Some(names)
}

/// Adds a message's JSON field names; inlined (embedded) structs contribute theirs.
fn collect(schema: &Schema, message: &Message, names: &mut Vec<String>, depth: usize) {
    for field in &message.fields {
        match (&field.value.message, field.inline) {
            (Some(inner), true) if depth < 8 => {
                if let Some(inner) = schema.message(inner) {
                    collect(schema, inner, names, depth + 1);
                }
            }
            _ => names.push(field.json_name.clone()),
        }
    }
}

/// The top-level fields of `object` its built-in kind does not declare, in document
/// order. Empty for kinds without a field table (custom resources are pruned to their
/// CRD's schema instead).
pub(crate) fn unknown_top_level(object: &Value, api_version: &str, kind: &str) -> Vec<String> {
    let (Some(map), Some(known)) = (object.as_object(), top_level_fields(api_version, kind)) else {
        return Vec::new();
    };
    map.keys()
        .filter(|key| !known.iter().any(|k| k == *key))
        .cloned()
        .collect()
}

/// `unknown field "a", unknown field "b"`: kube-apiserver's strict decoding error list.
pub(crate) fn strict_decoding_error(fields: &[String]) -> String {
    let listed: Vec<String> = fields
        .iter()
        .map(|f| format!("unknown field {}", Value::String(f.clone())))
        .collect();
    format!("strict decoding error: {}", listed.join(", "))
}

/// A JSON value as Go's `fmt` prints the `map[string]interface{}` it decodes to
/// (`map[a:1 b:[x y]]`, keys sorted), which kube-apiserver quotes in the error refusing a
/// strategic merge patch.
pub(crate) fn go_format(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            // Go prints float64 with %v: integers without a fraction up to 1e21.
            Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
            Some(f) => f.to_string(),
            None => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_format).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", go_format(v)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configmap_fields_come_from_the_go_type() {
        let fields = top_level_fields("v1", "ConfigMap").unwrap_or_default();
        assert_eq!(
            fields,
            [
                "apiVersion",
                "kind",
                "metadata",
                "data",
                "binaryData",
                "immutable"
            ]
        );
        assert!(top_level_fields("example.com/v1", "Widget").is_none());
    }

    #[test]
    fn every_served_builtin_kind_has_its_fields() {
        for info in crate::registry::builtins() {
            for version in &info.versions {
                let fields = top_level_fields(&info.api_version(version), &info.kind)
                    .unwrap_or_else(|| panic!("{} {version}", info.kind));
                assert!(fields.iter().any(|f| f == "metadata"), "{}", info.kind);
            }
        }
    }

    #[test]
    fn unknown_fields_are_listed_in_document_order() {
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "zeta": 1,
            "metadata": {"name": "a", "bogus": 1}, "dta": {}, "data": {}, "alpha": 2});
        assert_eq!(
            unknown_top_level(&object, "v1", "ConfigMap"),
            ["zeta", "dta", "alpha"]
        );
        let secret = json!({"stringData": {}, "type": "Opaque", "immutable": true});
        assert!(unknown_top_level(&secret, "v1", "Secret").is_empty());
        let deployment = json!({"spac": {}, "spec": {"bogus": 1}});
        assert_eq!(
            unknown_top_level(&deployment, "apps/v1", "Deployment"),
            ["spac"]
        );
    }

    #[test]
    fn strict_decoding_error_lists_each_field() {
        assert_eq!(
            strict_decoding_error(&["zeta".into(), "dta".into()]),
            "strict decoding error: unknown field \"zeta\", unknown field \"dta\""
        );
    }

    #[test]
    fn go_format_prints_maps_as_go_does() {
        assert_eq!(
            go_format(&json!({"zeta": 1, "dta": {"a": "b"}, "alpha": [1.5, true, null]})),
            "map[alpha:[1.5 true <nil>] dta:map[a:b] zeta:1]"
        );
    }
}
