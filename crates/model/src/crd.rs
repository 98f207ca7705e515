//! The `argoproj.io/v1alpha1` CustomResourceDefinitions of Application and AppProject,
//! generated from the model types.
//!
//! Generating them (rather than keeping a hand-written copy) means the schema the API server
//! validates and prunes with is exactly the shape plumb reads and writes: a field the model
//! gains appears in the CRD, and a field the model keeps in an `extra` map survives because
//! the enclosing object preserves unknown fields. The checked-in copies under
//! `crates/model/crds/` are these values as YAML (a golden test keeps them equal), for users
//! to `kubectl apply -f`.
//!
//! schemars describes the types as JSON Schema; Kubernetes accepts only *structural* schemas,
//! so [`structural`] rewrites the generated schema into one (see its documentation for the
//! rules).

use crate::application::{API_GROUP, APPLICATION_KIND};
use crate::project::APP_PROJECT_KIND;
use crate::{AppProject, Application};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value, json};

/// The one version Argo CD serves and stores.
pub const VERSION: &str = "v1alpha1";

/// `applications.argoproj.io`: Application, with Argo CD's names, short names and printer
/// columns, and no status subresource (Argo CD's controller writes `status` by patching the
/// object itself, so the CRD must not split it off).
pub fn application_crd() -> Value {
    let columns = json!([
        {"name": "Sync Status", "type": "string", "jsonPath": ".status.sync.status"},
        {"name": "Health Status", "type": "string", "jsonPath": ".status.health.status"},
        {"name": "Revision", "type": "string", "jsonPath": ".status.sync.revision", "priority": 10},
        {"name": "Project", "type": "string", "jsonPath": ".spec.project", "priority": 10},
    ]);
    custom_resource_definition(
        Names {
            kind: APPLICATION_KIND,
            singular: "application",
            plural: "applications",
            short_names: &["app", "apps"],
        },
        schema_for::<Application>(),
        Some(columns),
    )
}

/// `appprojects.argoproj.io`: AppProject, with Argo CD's names and short names (Argo CD
/// defines no printer columns for it, so neither do we).
pub fn app_project_crd() -> Value {
    custom_resource_definition(
        Names {
            kind: APP_PROJECT_KIND,
            singular: "appproject",
            plural: "appprojects",
            short_names: &["appproj", "appprojs"],
        },
        schema_for::<AppProject>(),
        None,
    )
}

struct Names {
    kind: &'static str,
    singular: &'static str,
    plural: &'static str,
    short_names: &'static [&'static str],
}

fn custom_resource_definition(names: Names, schema: Value, columns: Option<Value>) -> Value {
    let name = format!("{}.{API_GROUP}", names.plural);
    let mut version = json!({
        "name": VERSION,
        "served": true,
        "storage": true,
    });
    if let Some(columns) = columns {
        version["additionalPrinterColumns"] = columns;
    }
    version["schema"] = json!({"openAPIV3Schema": schema});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": name,
                "app.kubernetes.io/part-of": "plumb",
            },
        },
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": names.kind,
                "listKind": format!("{}List", names.kind),
                "plural": names.plural,
                "singular": names.singular,
                "shortNames": names.short_names,
            },
            "scope": "Namespaced",
            "versions": [version],
        },
    })
}

/// The structural `openAPIV3Schema` of a top-level kind: the model's schema with
/// `metadata` and `spec` required, as Argo CD's CRDs have them (the API server fills in the
/// rest of `metadata` itself).
fn schema_for<T: JsonSchema>() -> Value {
    // OpenAPI 3 is the dialect Kubernetes speaks; inlining leaves no `$ref` to resolve
    // (the model has no recursive types, so inlining terminates).
    let settings = SchemaSettings::openapi3().with(|settings| {
        settings.inline_subschemas = true;
        settings.meta_schema = None;
    });
    let mut schema = settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    structural(&mut schema);
    if let Some(root) = schema.as_object_mut() {
        root.insert("required".into(), json!(["metadata", "spec"]));
    }
    schema
}

/// Rewrites a schemars schema (OpenAPI 3 dialect, inlined) into a Kubernetes structural
/// schema, in place:
///
/// * Annotations Kubernetes rejects or would act on are dropped: `$schema`, `title` (only the
///   root has one, the type's name), `default` (serde defaults are the model's business;
///   a schema default would make the API server write them into every object, and Argo
///   CD's CRD has none), `examples`, `readOnly`/`writeOnly`.
/// * `nullable` is dropped, so a `null` is pruned like an absent field, as with Argo CD's
///   CRD; the model reads both as "not set".
/// * An `anyOf`/`oneOf` whose only alternatives are one schema and `null` becomes that schema.
/// * An object with `properties` and `additionalProperties: true` is a struct with a
///   `#[serde(flatten)] extra` map: it keeps its properties and gains
///   `x-kubernetes-preserve-unknown-fields: true`, so fields the model does not know survive
///   (Kubernetes forbids `properties` next to `additionalProperties`). A bare
///   `additionalProperties: true` (a free-form map) becomes the same without properties.
/// * A schema without a `type` is a `serde_json::Value` (any JSON): it becomes
///   `x-kubernetes-preserve-unknown-fields: true`, the only untyped node Kubernetes allows
///   besides `x-kubernetes-int-or-string`.
/// * Descriptions are rustdoc comments: lines wrapped in the source are joined, so
///   `kubectl explain` wraps them itself; blank lines and list items stay.
pub fn structural(schema: &mut Value) {
    if schema.is_boolean() {
        // `true` (accept anything) is all schemars emits here; `false` only appears for
        // types that cannot be deserialised at all, which the model has none of.
        *schema = json!({"x-kubernetes-preserve-unknown-fields": true});
        return;
    }
    let Some(node) = schema.as_object_mut() else {
        return;
    };
    for key in [
        "$schema",
        "$id",
        "title",
        "default",
        "nullable",
        "examples",
        "example",
        "readOnly",
        "writeOnly",
    ] {
        node.remove(key);
    }
    collapse_null_alternatives(node);
    if let Some(Value::Array(types)) = node.get("type") {
        let non_null: Vec<Value> = types
            .iter()
            .filter(|t| t.as_str() != Some("null"))
            .cloned()
            .collect();
        if let [only] = non_null.as_slice() {
            node.insert("type".into(), only.clone());
        }
    }
    if let Some(Value::Array(values)) = node.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    if let Some(Value::String(description)) = node.get_mut("description") {
        *description = reflow(description);
    }
    if let Some(Value::Object(properties)) = node.get_mut("properties") {
        for property in properties.values_mut() {
            structural(property);
        }
    }
    if let Some(items) = node.get_mut("items") {
        structural(items);
    }
    match node.get("additionalProperties") {
        Some(Value::Bool(true)) => {
            node.remove("additionalProperties");
            node.insert("type".into(), json!("object"));
            node.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
        }
        Some(Value::Object(_)) => {
            if let Some(map_values) = node.get_mut("additionalProperties") {
                structural(map_values);
            }
        }
        _ => {}
    }
    let typed = node.contains_key("type")
        || node.contains_key("x-kubernetes-int-or-string")
        || node.contains_key("x-kubernetes-preserve-unknown-fields");
    if !typed {
        node.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
    }
    canonical_order(node);
}

/// Puts a node's keywords in one order (what the node is, then what it contains), whatever
/// order schemars added them in, so the YAML reads the same way at every level.
fn canonical_order(node: &mut Map<String, Value>) {
    const ORDER: [&str; 10] = [
        "description",
        "type",
        "format",
        "enum",
        "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields",
        "properties",
        "required",
        "items",
        "additionalProperties",
    ];
    let mut rest = std::mem::take(node);
    for key in ORDER {
        if let Some(value) = rest.remove(key) {
            node.insert(key.to_string(), value);
        }
    }
    node.append(&mut rest);
}

/// `anyOf: [X, {type: null}]` (or `oneOf`) → `X` merged into the node.
fn collapse_null_alternatives(node: &mut Map<String, Value>) {
    for keyword in ["anyOf", "oneOf"] {
        let Some(Value::Array(alternatives)) = node.get(keyword) else {
            continue;
        };
        let non_null: Vec<&Value> = alternatives
            .iter()
            .filter(|alternative| !is_null_schema(alternative))
            .collect();
        let [only] = non_null.as_slice() else {
            continue;
        };
        let Value::Object(only) = (*only).clone() else {
            continue;
        };
        node.remove(keyword);
        for (key, value) in only {
            // The node's own annotations (a field's description) win over the type's.
            node.entry(key).or_insert(value);
        }
    }
}

fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// Joins the lines of each paragraph of a rustdoc comment; keeps paragraph breaks and
/// lines that start a list item.
fn reflow(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous_blank = true;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            out.push_str("\n\n");
            previous_blank = true;
            continue;
        }
        if !previous_blank {
            let list_item = trimmed.starts_with("- ") || trimmed.starts_with("* ");
            out.push(if list_item { '\n' } else { ' ' });
        }
        out.push_str(trimmed);
        previous_blank = false;
    }
    // Collapse runs of blank lines and trim the ends.
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    out.trim().to_string()
}

// Schemas for fields whose Rust type says less than the wire format (`schema_with`).

/// `metadata`: the API server validates ObjectMeta itself; Argo CD's CRDs, like every CRD,
/// declare it as just an object.
pub(crate) fn object_meta(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "object"})
}

/// Free-form JSON that must be an object (Helm `valuesObject`).
pub(crate) fn free_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// A list of free-form objects (Kustomize `patches`, kept as JSON by the model).
pub(crate) fn free_object_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
    })
}

/// An integer or a string (Kustomize replica `count`), Kubernetes' int-or-string.
pub(crate) fn int_or_string(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"x-kubernetes-int-or-string": true})
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Walks a schema and returns the paths of nodes that break Kubernetes' structural rules
    /// (as far as kube-apiserver's validation checks them for a CRD).
    fn structural_violations(schema: &Value, path: &str, out: &mut Vec<String>) {
        let Some(node) = schema.as_object() else {
            out.push(format!("{path}: not an object schema"));
            return;
        };
        for keyword in [
            "$ref",
            "anyOf",
            "oneOf",
            "allOf",
            "not",
            "nullable",
            "default",
            "title",
            "$defs",
            "definitions",
        ] {
            if node.contains_key(keyword) {
                out.push(format!("{path}: has {keyword}"));
            }
        }
        let extension = |key: &str| node.get(key) == Some(&json!(true));
        if !node.contains_key("type")
            && !extension("x-kubernetes-int-or-string")
            && !extension("x-kubernetes-preserve-unknown-fields")
        {
            out.push(format!("{path}: no type"));
        }
        if node.contains_key("properties") && node.contains_key("additionalProperties") {
            out.push(format!("{path}: properties and additionalProperties"));
        }
        if let Some(Value::Object(properties)) = node.get("properties") {
            for (name, property) in properties {
                structural_violations(property, &format!("{path}.{name}"), out);
            }
        }
        if let Some(items) = node.get("items") {
            structural_violations(items, &format!("{path}[]"), out);
        }
        if let Some(map_values) = node.get("additionalProperties") {
            structural_violations(map_values, &format!("{path}{{}}"), out);
        }
    }

    fn schema_of(crd: &Value) -> &Value {
        &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    }

    /// The node at a dotted path of property names (`[]` steps into array items).
    fn at<'a>(schema: &'a Value, path: &str) -> &'a Value {
        path.split('.').fold(schema, |node, step| match step {
            "[]" => &node["items"],
            name => &node["properties"][name],
        })
    }

    #[test]
    fn generated_schemas_are_structural() {
        for crd in [application_crd(), app_project_crd()] {
            let mut violations = Vec::new();
            structural_violations(schema_of(&crd), "", &mut violations);
            assert!(violations.is_empty(), "{violations:#?}");
        }
    }

    #[test]
    fn names_columns_and_scope_are_argo_cds() {
        let app = application_crd();
        assert_eq!(app["metadata"]["name"], "applications.argoproj.io");
        assert_eq!(
            app["spec"]["names"],
            json!({"kind": "Application", "listKind": "ApplicationList", "plural": "applications",
                   "singular": "application", "shortNames": ["app", "apps"]})
        );
        assert_eq!(app["spec"]["scope"], "Namespaced");
        let version = &app["spec"]["versions"][0];
        assert_eq!(
            (&version["name"], &version["served"], &version["storage"]),
            (&json!("v1alpha1"), &json!(true), &json!(true))
        );
        assert!(
            version.get("subresources").is_none(),
            "status is written with the object"
        );
        let columns: Vec<(&str, &str, i64)> = version["additionalPrinterColumns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().expect("name"),
                    c["jsonPath"].as_str().expect("path"),
                    c["priority"].as_i64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(
            columns,
            [
                ("Sync Status", ".status.sync.status", 0),
                ("Health Status", ".status.health.status", 0),
                ("Revision", ".status.sync.revision", 10),
                ("Project", ".spec.project", 10),
            ]
        );
        let project = app_project_crd();
        assert_eq!(project["metadata"]["name"], "appprojects.argoproj.io");
        assert_eq!(
            project["spec"]["names"]["shortNames"],
            json!(["appproj", "appprojs"])
        );
        for crd in [&app, &project] {
            let schema = schema_of(crd);
            assert_eq!(schema["required"], json!(["metadata", "spec"]));
            assert_eq!(schema["properties"]["metadata"], json!({"type": "object"}));
        }
    }

    #[test]
    fn extra_maps_and_json_values_preserve_unknown_fields() {
        let app = application_crd();
        let schema = schema_of(&app);
        let preserves = |path: &str| {
            at(schema, path).get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true))
        };
        // Structs with a flattened `extra` map keep what the model does not know.
        for path in [
            "spec",
            "spec.source",
            "spec.sources.[]",
            "spec.source.helm",
            "spec.source.kustomize",
        ] {
            assert!(preserves(path), "{path}: {}", at(schema, path));
            assert!(at(schema, path).get("properties").is_some(), "{path}");
        }
        // Structs without one prune, as Argo CD's CRD does.
        for path in ["spec.syncPolicy", "spec.source.directory", "status"] {
            assert!(!preserves(path), "{path}");
        }
        assert_eq!(
            at(schema, "spec.source.helm.valuesObject")["type"],
            "object"
        );
        assert!(preserves("spec.source.helm.valuesObject"));
        assert!(preserves("spec.source.kustomize.patches.[]"));
        let count = at(schema, "spec.source.kustomize.replicas.[].count");
        assert_eq!(count["x-kubernetes-int-or-string"], true);
        assert!(
            count.get("type").is_none(),
            "int-or-string has no type: {count}"
        );
        // Maps are `additionalProperties`.
        let labels = at(schema, "spec.source.kustomize.commonLabels");
        assert_eq!(labels["type"], "object");
        assert_eq!(labels["additionalProperties"], json!({"type": "string"}));
        let project = app_project_crd();
        assert!(
            at(schema_of(&project), "spec")
                .get("x-kubernetes-preserve-unknown-fields")
                .is_some()
        );
    }

    #[test]
    fn optional_fields_are_not_required_and_carry_no_defaults() {
        let app = application_crd();
        let schema = schema_of(&app);
        assert!(at(schema, "spec").get("required").is_none());
        assert_eq!(
            at(schema, "spec.source.helm.parameters.[]")["required"],
            json!(["name"])
        );
        assert_eq!(
            at(schema, "spec.syncPolicy.retry.limit"),
            &json!({"type": "integer", "format": "int64",
                    "description": at(schema, "spec.syncPolicy.retry.limit")["description"]})
        );
        assert_eq!(
            at(schema, "status.sync.status")["enum"],
            json!(["Unknown", "Synced", "OutOfSync"])
        );
    }

    #[test]
    fn doc_comments_become_descriptions() {
        let app = application_crd();
        let schema = schema_of(&app);
        for path in [
            "spec",
            "spec.source",
            "spec.source.repoURL",
            "spec.source.targetRevision",
            "spec.syncPolicy.automated.selfHeal",
        ] {
            let description = at(schema, path)["description"].as_str().unwrap_or("");
            assert!(!description.is_empty(), "{path} has no description");
            assert!(
                !description.contains('\n'),
                "{path}: not reflowed: {description:?}"
            );
        }
        let project = app_project_crd();
        let windows = at(schema_of(&project), "spec.syncWindows");
        assert!(
            windows["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
        assert!(at(windows, "[].schedule")["description"].is_string());
    }

    #[test]
    fn structural_rewrites_what_schemars_emits() {
        let mut schema = json!({
            "$schema": "x", "title": "Thing", "type": "object",
            "properties": {
                "any": true,
                "opt": {"anyOf": [{"type": "object", "properties": {}}, {"type": "null"}],
                        "description": "Optional\nthing.\n\n- one\n- two"},
                "kind": {"type": ["string", "null"], "enum": ["a", null], "default": "a"},
                "map": {"type": "object", "additionalProperties": {"type": "integer", "nullable": true}},
                "json": {"description": "Any JSON."}
            },
            "additionalProperties": true
        });
        structural(&mut schema);
        assert_eq!(
            schema,
            json!({
                "type": "object",
                "properties": {
                    "any": {"x-kubernetes-preserve-unknown-fields": true},
                    "opt": {"description": "Optional thing.\n\n- one\n- two",
                            "type": "object", "properties": {}},
                    "kind": {"type": "string", "enum": ["a"]},
                    "map": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "json": {"description": "Any JSON.", "x-kubernetes-preserve-unknown-fields": true}
                },
                "x-kubernetes-preserve-unknown-fields": true
            })
        );
    }

    /// The checked-in CRDs are the generated ones. `PLUMB_BLESS=1` rewrites them.
    #[test]
    fn checked_in_crds_are_generated() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds");
        let bless = std::env::var_os("PLUMB_BLESS").is_some_and(|v| v == "1");
        let mut stale = Vec::new();
        for (file, crd) in [
            ("application-crd.yaml", application_crd()),
            ("appproject-crd.yaml", app_project_crd()),
        ] {
            let yaml = format!(
                "# Generated from plumb's model (crates/model/src/crd.rs); do not edit.\n\
                 # Regenerate: PLUMB_BLESS=1 cargo test -p plumb-model --lib crd\n{}",
                serde_saphyr::to_string(&crd).expect("yaml")
            );
            // The file must read back as the same document.
            let reread: Value = serde_saphyr::from_str(&yaml).expect("reparse");
            assert_eq!(reread, crd, "{file}: YAML round trip");
            let path = dir.join(file);
            if bless {
                std::fs::create_dir_all(&dir).expect("crds dir");
                std::fs::write(&path, &yaml).expect("write");
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(yaml.as_str()) {
                stale.push(path.display().to_string());
            }
        }
        assert!(
            stale.is_empty(),
            "{stale:?} differ from the CRDs the model generates; regenerate with \
             `PLUMB_BLESS=1 cargo test -p plumb-model --lib crd` and review the diff"
        );
    }
}
