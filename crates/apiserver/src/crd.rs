//! CustomResourceDefinitions: validation, the status the server sets (NamesAccepted,
//! Established), and turning a CRD into a served resource. Pure.

use serde_json::{Value, json};

use crate::api_error::Cause;
use crate::objects::string_items;
use crate::registry::{NameRule, PrinterColumn, ResourceInfo};
use crate::validation::{is_dns1123_label, is_dns1123_subdomain};

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The field problems of a CRD (empty when it can be served).
pub(crate) fn validate_crd(crd: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/spec/names/plural");
    let kind = s(crd, "/spec/names/kind");
    let name = s(crd, "/metadata/name");
    if group.is_empty() {
        causes.push(Cause::required("spec.group", ""));
    } else if !is_dns1123_subdomain(group) || !group.contains('.') {
        causes.push(Cause::invalid(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural", ""));
    } else if !is_dns1123_label(plural) {
        causes.push(Cause::invalid(
            "spec.names.plural",
            plural,
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
        ));
    }
    if kind.is_empty() {
        causes.push(Cause::required("spec.names.kind", ""));
    }
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    match s(crd, "/spec/scope") {
        "Namespaced" | "Cluster" => {}
        "" => causes.push(Cause::required("spec.scope", "")),
        other => causes.push(Cause::invalid(
            "spec.scope",
            other,
            "supported values: \"Cluster\", \"Namespaced\"",
        )),
    }
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array);
    match versions {
        None => causes.push(Cause::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        )),
        Some(vs) => {
            let storage = vs
                .iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .count();
            if storage != 1 {
                causes.push(Cause::invalid(
                    "spec.versions",
                    &storage.to_string(),
                    "must have exactly one version marked as storage version",
                ));
            }
            for (i, v) in vs.iter().enumerate() {
                let vn = v.get("name").and_then(Value::as_str).unwrap_or("");
                if !is_dns1123_label(vn) {
                    causes.push(Cause::invalid(
                        format!("spec.versions[{i}].name"),
                        vn,
                        "must be a DNS-1035 label",
                    ));
                }
            }
            // kube-apiserver hoists a schema all versions share to `spec.validation` and
            // names paths there; different schemas are named per version.
            let schemas: Vec<Option<&Value>> = vs
                .iter()
                .map(|v| v.pointer("/schema/openAPIV3Schema"))
                .collect();
            if !schemas.is_empty() && schemas.iter().all(|s| *s == schemas[0]) {
                if let Some(schema) = schemas[0] {
                    unique_items_causes(schema, "spec.validation.openAPIV3Schema", &mut causes);
                }
            } else {
                for (i, schema) in schemas.iter().enumerate() {
                    if let Some(schema) = schema {
                        unique_items_causes(
                            schema,
                            &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                            &mut causes,
                        );
                    }
                }
            }
        }
    }
    causes
}

/// Structural schemas may not set `uniqueItems: true` (checking it is quadratic).
fn unique_items_causes(schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(map) = schema.as_object() else {
        return;
    };
    if map.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
        causes.push(Cause::forbidden(
            format!("{path}.uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    if let Some(properties) = map.get("properties").and_then(Value::as_object) {
        let mut names: Vec<&String> = properties.keys().collect();
        names.sort();
        for name in names {
            unique_items_causes(
                &properties[name],
                &format!("{path}.properties[{name}]"),
                causes,
            );
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = map.get(key) {
            unique_items_causes(sub, &format!("{path}.{key}"), causes);
        }
    }
}

/// Sets the status a healthy CRD gets from Kubernetes' controllers, at once, and the spec
/// defaults kube-apiserver fills in.
pub(crate) fn default_crd(crd: &mut Value) {
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut accepted = names.clone();
    if accepted.get("singular").is_none()
        && let Some(kind) = names.get("kind").and_then(Value::as_str)
    {
        accepted["singular"] = json!(kind.to_lowercase());
    }
    if accepted.get("listKind").is_none()
        && let Some(kind) = names.get("kind").and_then(Value::as_str)
    {
        accepted["listKind"] = json!(format!("{kind}List"));
    }
    if let Some(spec_names) = crd
        .pointer_mut("/spec/names")
        .and_then(Value::as_object_mut)
    {
        for field in ["singular", "listKind"] {
            if let Some(v) = accepted.get(field) {
                spec_names.entry(field).or_insert_with(|| v.clone());
            }
        }
    }
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let now = crate::objects::now_rfc3339();
    let keep_time = |t: &str| -> String {
        crd.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
            })
            .and_then(|c| c.get("lastTransitionTime").and_then(Value::as_str))
            .map(str::to_string)
            .unwrap_or_else(|| now.clone())
    };
    let conditions = json!([
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": keep_time("NamesAccepted")},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": keep_time("Established")}
    ]);
    crd["status"] =
        json!({"conditions": conditions, "acceptedNames": accepted, "storedVersions": stored});
    // kube-apiserver's defaulting gives a CRD without a conversion the strategy `None`.
    if let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) {
        spec.entry("conversion")
            .or_insert_with(|| json!({"strategy": "None"}));
    }
}

/// The resource a (valid) CRD serves.
pub(crate) fn resource_info(crd: &Value) -> Option<ResourceInfo> {
    let group = s(crd, "/spec/group").to_string();
    let plural = s(crd, "/spec/names/plural").to_string();
    let kind = s(crd, "/spec/names/kind").to_string();
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return None;
    }
    let all_versions = crd.pointer("/spec/versions").and_then(Value::as_array)?;
    let served: Vec<&Value> = all_versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
        .collect();
    // Preferred version first: the storage version when served, else the first served.
    let mut versions: Vec<String> = Vec::new();
    if let Some(st) = served
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
    {
        versions.push(s(st, "/name").to_string());
    }
    for v in &served {
        let n = s(v, "/name").to_string();
        if !versions.contains(&n) {
            versions.push(n);
        }
    }
    if versions.is_empty() {
        return None;
    }
    let preferred = served.iter().find(|v| s(v, "/name") == versions[0])?;
    let status_subresource = preferred.pointer("/subresources/status").is_some();
    let printer_columns = preferred
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        // An empty list is defaulted like an absent one, as kube-apiserver does.
        .filter(|cols| !cols.is_empty())
        .map(|cols| {
            cols.iter()
                .map(|c| PrinterColumn {
                    name: s(c, "/name").to_string(),
                    type_: s(c, "/type").to_string(),
                    json_path: s(c, "/jsonPath").to_string(),
                    priority: c
                        .get("priority")
                        .and_then(Value::as_u64)
                        .unwrap_or(0)
                        .min(1) as u8,
                })
                .collect()
        })
        .unwrap_or_else(|| {
            vec![PrinterColumn {
                name: "Age".into(),
                type_: "date".into(),
                json_path: ".metadata.creationTimestamp".into(),
                priority: 0,
            }]
        });
    let strings = |p: &str| string_items(crd.pointer(p));
    let schemas = served
        .iter()
        .filter_map(|v| {
            let schema = v.pointer("/schema/openAPIV3Schema")?;
            Some((
                s(v, "/name").to_string(),
                std::sync::Arc::new(schema.clone()),
            ))
        })
        .collect();
    Some(ResourceInfo {
        schemas,
        singular: crd
            .pointer("/spec/names/singular")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| kind.to_lowercase()),
        list_kind: crd
            .pointer("/spec/names/listKind")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{kind}List")),
        short_names: strings("/spec/names/shortNames"),
        categories: strings("/spec/names/categories"),
        namespaced: s(crd, "/spec/scope") == "Namespaced",
        status_subresource,
        generation: true,
        name_rule: NameRule::Subdomain,
        printer_columns,
        custom: true,
        group,
        versions,
        resource: plural,
        kind,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "applications.argoproj.io"},
            "spec": {"group": "argoproj.io", "scope": "Namespaced",
                "names": {"kind": "Application", "plural": "applications", "shortNames": ["app", "apps"]},
                "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                    "subresources": {"status": {}}}]}
        })
    }

    #[test]
    fn argo_application_crd_is_served() {
        let c = crd();
        assert!(validate_crd(&c).is_empty());
        let info = resource_info(&c).unwrap();
        assert_eq!(
            (info.kind.as_str(), info.resource.as_str(), info.namespaced),
            ("Application", "applications", true)
        );
        assert_eq!(info.short_names, vec!["app", "apps"]);
        assert!(info.status_subresource);
        assert_eq!(info.list_kind, "ApplicationList");
    }

    #[test]
    fn crd_status_is_established() {
        let mut c = crd();
        default_crd(&mut c);
        let types: Vec<&str> = c["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, vec!["NamesAccepted", "Established"]);
        assert_eq!(c["status"]["storedVersions"], json!(["v1alpha1"]));
        assert_eq!(c["spec"]["names"]["singular"], json!("application"));
        assert_eq!(c["spec"]["conversion"], json!({"strategy": "None"}));
    }

    #[test]
    fn bad_crds_are_invalid() {
        let mut c = crd();
        c["metadata"]["name"] = json!("wrong");
        c["spec"]["scope"] = json!("Galaxy");
        let fields: Vec<String> = validate_crd(&c).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, vec!["metadata.name", "spec.scope"]);
    }

    #[test]
    fn unique_items_is_forbidden_where_kube_apiserver_names_it() {
        let mut c = crd();
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"tags": {"type": "array", "uniqueItems": true, "items": {"type": "string"}}}}}});
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = schema.clone();
        let causes = validate_crd(&c);
        assert_eq!(causes.len(), 1);
        assert_eq!(
            causes[0].field,
            "spec.validation.openAPIV3Schema.properties[spec].properties[tags].uniqueItems"
        );
        assert_eq!(
            causes[0].message,
            "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
        );
        // Versions with different schemas are named one by one.
        let mut second = c["spec"]["versions"][0].clone();
        second["name"] = json!("v1beta1");
        second["storage"] = json!(false);
        second["schema"]["openAPIV3Schema"] =
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        c["spec"]["versions"].as_array_mut().unwrap().push(second);
        let fields: Vec<String> = validate_crd(&c).into_iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            vec![
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[tags].uniqueItems"
            ]
        );
    }
}
