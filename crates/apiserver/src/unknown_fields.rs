//! Unknown fields of built-in kinds, at any depth, found with the field table of their Go
//! types (the protobuf schema compiled in from k8s.io/api): what kube-apiserver's strict
//! JSON decoding refuses, warns about or drops, depending on `fieldValidation`. Message
//! fields are checked against their type, list items against the element type, map values
//! (any key) against the value type; types with their own JSON form (Time, Quantity,
//! IntOrString, RawExtension, FieldsV1, JSON, ...) take anything. One walk over the
//! object. Pure.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use serde_json::{Map, Value};

use crate::protobuf::schema::{self, Field, Scalar, ValueType};

/// One step of a field path: an object key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Segment {
    Field(String),
    Index(usize),
}

/// Where an unknown field is. Ordered as Go orders a re-encoded object's fields (keys
/// sorted at each level, list items in order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct FieldPath(pub(crate) Vec<Segment>);

impl fmt::Display for FieldPath {
    /// As kube-apiserver's strict decoder names it: `spec.template.spec.containers[0].x`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Field(name) if i == 0 => f.write_str(name)?,
                Segment::Field(name) => write!(f, ".{name}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A message's JSON fields (inlined structs flattened in), or `None` for a type with its
/// own JSON form, which takes anything.
struct MessageFields {
    fields: Option<HashMap<&'static str, &'static Field>>,
}

/// The field table indexed by message name and JSON field name, built once.
static FIELDS: LazyLock<HashMap<&'static str, MessageFields>> = LazyLock::new(|| {
    let Ok(schema) = schema::schema() else {
        return HashMap::new();
    };
    schema
        .messages()
        .map(|(name, message)| {
            let fields = message.special.is_none().then(|| {
                let mut fields = HashMap::new();
                flatten(schema, &message.fields, &mut fields, 0);
                fields
            });
            (name, MessageFields { fields })
        })
        .collect()
});

/// Adds fields by JSON name; inlined (embedded) structs contribute theirs.
fn flatten(
    schema: &'static schema::Schema,
    fields: &'static [Field],
    into: &mut HashMap<&'static str, &'static Field>,
    depth: usize,
) {
    for field in fields {
        match (&field.value.message, field.inline) {
            (Some(inner), true) if depth < 8 => {
                if let Some(inner) = schema.message(inner) {
                    flatten(schema, &inner.fields, into, depth + 1);
                }
            }
            _ => {
                into.insert(field.json_name.as_str(), field);
            }
        }
    }
}

/// The fields of `object` its built-in kind does not declare, at any depth, in document
/// order. Empty for kinds without a field table (custom resources are pruned to their
/// CRD's schema instead).
pub(crate) fn unknown_fields(object: &Value, api_version: &str, kind: &str) -> Vec<FieldPath> {
    let mut found = Vec::new();
    let (Ok(schema), Some(map)) = (schema::schema(), object.as_object()) else {
        return found;
    };
    let Some(root) = schema
        .message_for(api_version, kind)
        .and_then(|name| FIELDS.get(name))
        .and_then(|m| m.fields.as_ref())
    else {
        return found;
    };
    let mut walk = Walk {
        path: Vec::new(),
        found: &mut found,
    };
    walk.message(root, map, true);
    found
}

/// The walk's state: the path to the current value (borrowed keys) and what it found.
struct Walk<'a, 'o> {
    path: Vec<PathStep<'o>>,
    found: &'a mut Vec<FieldPath>,
}

#[derive(Clone, Copy)]
enum PathStep<'o> {
    Field(&'o str),
    Index(usize),
}

impl<'o> Walk<'_, 'o> {
    fn record(&mut self, last: &str) {
        let mut segments: Vec<Segment> = self
            .path
            .iter()
            .map(|step| match step {
                PathStep::Field(name) => Segment::Field((*name).to_string()),
                PathStep::Index(i) => Segment::Index(*i),
            })
            .collect();
        segments.push(Segment::Field(last.to_string()));
        self.found.push(FieldPath(segments));
    }

    fn message(
        &mut self,
        fields: &HashMap<&'static str, &'static Field>,
        map: &'o Map<String, Value>,
        root: bool,
    ) {
        for (key, value) in map {
            match fields.get(key.as_str()) {
                Some(field) => {
                    self.path.push(PathStep::Field(key));
                    if field.repeated {
                        if let Value::Array(items) = value {
                            for (index, item) in items.iter().enumerate() {
                                self.path.push(PathStep::Index(index));
                                self.value(&field.value, item);
                                self.path.pop();
                            }
                        }
                    } else {
                        self.value(&field.value, value);
                    }
                    self.path.pop();
                }
                // TypeMeta is not in the table: only the object itself has these.
                None if root && (key == "apiVersion" || key == "kind") => {}
                None => self.record(key),
            }
        }
    }

    fn value(&mut self, ty: &'static ValueType, value: &'o Value) {
        let Value::Object(map) = value else {
            // Scalars, nulls and types whose JSON is not an object are not walked.
            return;
        };
        match ty.scalar {
            Scalar::Message => {
                if let Some(fields) = ty
                    .message
                    .as_deref()
                    .and_then(|name| FIELDS.get(name))
                    .and_then(|m| m.fields.as_ref())
                {
                    self.message(fields, map, false);
                }
            }
            Scalar::Map => {
                if let Some(inner) = ty.value.as_deref() {
                    for (key, item) in map {
                        self.path.push(PathStep::Field(key));
                        self.value(inner, item);
                        self.path.pop();
                    }
                }
            }
            _ => {}
        }
    }
}

/// Removes the fields at `paths` (found by [`unknown_fields`] in this object).
pub(crate) fn remove(object: &mut Value, paths: &[FieldPath]) {
    for path in paths {
        let Some((Segment::Field(last), parents)) = path.0.split_last() else {
            continue;
        };
        let parent = parents
            .iter()
            .try_fold(&mut *object, |at, segment| match segment {
                Segment::Field(name) => at.get_mut(name.as_str()),
                Segment::Index(i) => at.get_mut(*i),
            });
        if let Some(map) = parent.and_then(Value::as_object_mut) {
            map.shift_remove(last.as_str());
        }
    }
}

/// The path as server-side apply names it in `object` (the apply patch):
/// `.spec.template.spec.containers[name="c"].x`, list items by their keys.
pub(crate) fn apply_path(object: &Value, path: &FieldPath) -> String {
    let mut out = String::new();
    let mut at = Some(object);
    let mut last_field = "";
    for segment in &path.0 {
        match segment {
            Segment::Field(name) => {
                out.push('.');
                out.push_str(name);
                last_field = name;
                at = at.and_then(|v| v.get(name.as_str()));
            }
            Segment::Index(index) => {
                let item = at.and_then(|v| v.get(*index));
                match item {
                    Some(item) => out.push_str(&crate::managed::builtin_item_display(
                        last_field, item, *index,
                    )),
                    None => out.push_str(&format!("[{index}]")),
                }
                at = item;
            }
        }
    }
    out
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

    fn listed(object: &Value, api_version: &str, kind: &str) -> Vec<String> {
        unknown_fields(object, api_version, kind)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn every_served_builtin_kind_has_its_fields() {
        for info in crate::registry::builtins() {
            for version in &info.versions {
                let object = json!({"apiVersion": info.api_version(version), "kind": info.kind,
                    "metadata": {"name": "a", "labels": {"any": "x"}}, "zz": 1});
                assert_eq!(
                    listed(&object, &info.api_version(version), &info.kind),
                    ["zz"],
                    "{} {version}",
                    info.kind
                );
            }
        }
        assert!(listed(&json!({"zz": 1}), "example.com/v1", "Widget").is_empty());
    }

    #[test]
    fn unknown_fields_are_listed_in_document_order_at_every_depth() {
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "zeta": 1,
            "metadata": {"name": "a", "bogus": 1, "labels": {"any": "x"}}, "dta": {},
            "data": {"k": "v"}, "alpha": 2});
        assert_eq!(
            listed(&object, "v1", "ConfigMap"),
            ["zeta", "metadata.bogus", "dta", "alpha"]
        );
        let secret = json!({"stringData": {}, "type": "Opaque", "immutable": true});
        assert!(listed(&secret, "v1", "Secret").is_empty());
        let deployment = json!({"spac": {}, "spec": {"bogus": 1, "template": {"spec": {
            "containers": [
                {"name": "c", "imagePullPolicyy": "Always", "resources": {"limits": {"cpu": "1"}},
                 "ports": [{"containerPort": 80, "bad": 1}],
                 "livenessProbe": {"httpGet": {"port": "http", "zz": 1}}},
                {"name": "d", "extra": {"y": 1}}]}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "zz": 1}}}});
        assert_eq!(
            listed(&deployment, "apps/v1", "Deployment"),
            [
                "spac",
                "spec.bogus",
                "spec.template.spec.containers[0].imagePullPolicyy",
                "spec.template.spec.containers[0].ports[0].bad",
                "spec.template.spec.containers[0].livenessProbe.httpGet.zz",
                "spec.template.spec.containers[1].extra",
                "spec.strategy.rollingUpdate.zz"
            ]
        );
    }

    #[test]
    fn special_types_and_map_values_take_anything_but_typed_values_are_checked() {
        // managedFields' fieldsV1, a Time, IntOrString and Quantity take any JSON.
        let object = json!({"metadata": {"name": "a", "creationTimestamp": {"x": 1},
            "managedFields": [{"manager": "m", "fieldsV1": {"f:data": {"f:x": {}}}}]},
            "spec": {"replicas": 1, "strategy": {"rollingUpdate": {"maxSurge": {"odd": 1}}}}});
        assert!(listed(&object, "apps/v1", "Deployment").is_empty());
        // A CRD's schema properties are a map of JSONSchemaProps: any key, typed values.
        let crd = json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
            "type": "object", "default": {"q": 1},
            "properties": {"spec": {"type": "object", "bogus": 1}}}}}]}});
        assert_eq!(
            listed(&crd, "apiextensions.k8s.io/v1", "CustomResourceDefinition"),
            ["spec.versions[0].schema.openAPIV3Schema.properties.spec.bogus"]
        );
        // A value of the wrong JSON type is not walked (validation reports it).
        assert!(listed(&json!({"metadata": [1], "data": "x"}), "v1", "ConfigMap").is_empty());
    }

    #[test]
    fn remove_drops_exactly_the_unknown_fields() {
        let mut object = json!({"metadata": {"name": "a", "bogus": 1}, "spec": {"template":
            {"spec": {"containers": [{"name": "c", "x": 1}, {"name": "d", "y": 2}]}}}});
        let found = unknown_fields(&object, "apps/v1", "Deployment");
        remove(&mut object, &found);
        assert_eq!(
            object,
            json!({"metadata": {"name": "a"}, "spec": {"template":
                {"spec": {"containers": [{"name": "c"}, {"name": "d"}]}}}})
        );
        assert!(unknown_fields(&object, "apps/v1", "Deployment").is_empty());
    }

    #[test]
    fn apply_paths_name_list_items_by_their_keys() {
        let object = json!({"metadata": {"ownerReferences": [{"uid": "u", "zz": 1}]},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "ports": [
                {"containerPort": 80, "zz": 1}], "args": ["a"]}]}}}});
        let found = unknown_fields(&object, "apps/v1", "Deployment");
        let paths: Vec<String> = found.iter().map(|p| apply_path(&object, p)).collect();
        assert_eq!(
            paths,
            [
                ".metadata.ownerReferences[uid=\"u\"].zz",
                ".spec.template.spec.containers[name=\"c\"].ports[containerPort=80,protocol=\"TCP\"].zz"
            ]
        );
    }

    #[test]
    fn paths_sort_as_go_orders_a_re_encoded_object() {
        let mut paths = [
            FieldPath(vec![Segment::Field("a".into()), Segment::Field("x".into())]),
            FieldPath(vec![Segment::Field("a-b".into())]),
            FieldPath(vec![Segment::Field("l".into()), Segment::Index(10)]),
            FieldPath(vec![Segment::Field("l".into()), Segment::Index(2)]),
        ];
        paths.sort();
        let shown: Vec<String> = paths.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["a.x", "a-b", "l[2]", "l[10]"]);
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
