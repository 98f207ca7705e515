//! OpenAPI v3 documents: enough for kubectl to see that the server validates fields
//! (`fieldValidation` on PATCH) and for `kubectl explain` to find each kind's schema.
//! Built-in kinds get a shallow schema (top-level fields); CRDs their declared schema.

use serde_json::{Map, Value, json};

use crate::registry::{Registry, ResourceInfo};

const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2`: a valid Swagger 2.0 document without definitions. kubectl only reads it
/// when OpenAPI v3 does not cover a kind (a kind the server does not serve); with no
/// definitions, client-side validation lets such objects through to the clear
/// "no matches for kind" error, as against Kubernetes. kubectl asks for the gnostic
/// protobuf encoding, so that is answered when accepted.
pub(crate) fn v2_response(accept: &str) -> hyper::Response<crate::http::Body> {
    if accept.contains("protobuf") {
        let mut r = hyper::Response::new(crate::http::full(v2_protobuf()));
        if let Ok(v) = hyper::header::HeaderValue::from_str(V2_PROTOBUF) {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        return r;
    }
    let doc = json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": {}, "definitions": {}});
    crate::http::json_response(200, doc.to_string())
}

/// gnostic `openapi_v2.Document{swagger, info{title, version}, paths{}, definitions{}}`.
fn v2_protobuf() -> Vec<u8> {
    fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
        // Wire type 2 (length-delimited); every length here is below 128 (one varint byte).
        out.push((number << 3) | 2);
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    let mut info = Vec::new();
    field(&mut info, 1, b"Kubernetes");
    field(&mut info, 2, b"v1.32.0");
    let mut doc = Vec::new();
    field(&mut doc, 1, b"2.0");
    field(&mut doc, 2, &info);
    field(&mut doc, 8, &[]);
    field(&mut doc, 9, &[]);
    doc
}

/// `/openapi/v3`: one entry per served group-version.
pub(crate) fn v3_root(registry: &Registry) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = Vec::new();
    for r in registry.all() {
        for v in &r.versions {
            let gv = (r.group.clone(), v.clone());
            if !gvs.contains(&gv) {
                gvs.push(gv);
            }
        }
    }
    for (g, v) in gvs {
        let path = gv_path(&g, &v);
        let hash = registry_hash(registry, &g, &v);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A cheap content hash so clients cache per version of the document.
fn registry_hash(registry: &Registry, group: &str, version: &str) -> String {
    use sha2::Digest as _;
    let doc = v3_group_version(registry, group, version)
        .map(|d| d.to_string())
        .unwrap_or_default();
    let digest = sha2::Sha256::digest(doc.as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02X}")).collect()
}

fn schema_name(info: &ResourceInfo, version: &str) -> String {
    let group = if info.group.is_empty() {
        "core".to_string()
    } else {
        info.group.clone()
    };
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{}", reversed.join("."), info.kind)
}

fn kind_schema(info: &ResourceInfo, version: &str, crd_schema: Option<&Value>) -> Value {
    let gvk = json!([{"group": info.group, "version": version, "kind": info.kind}]);
    let mut schema = match crd_schema {
        Some(s) => s.clone(),
        None => json!({
            "type": "object",
            "description": format!("{} is a {} object served by plumb's embedded API server.", info.kind, info.api_version(version)),
            "properties": {
                "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
                "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
                "metadata": {"type": "object", "description": "Standard object's metadata.", "x-kubernetes-preserve-unknown-fields": true},
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            },
            "x-kubernetes-preserve-unknown-fields": true,
        }),
    };
    schema["x-kubernetes-group-version-kind"] = gvk;
    schema
}

fn params() -> Value {
    json!([
        {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
        {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
        {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
        {"name": "force", "in": "query", "schema": {"type": "boolean"}}
    ])
}

/// `/openapi/v3/apis/<g>/<v>` (or `/openapi/v3/api/v1`).
pub(crate) fn v3_group_version(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    v3_group_version_with(registry, group, version, &|_| None)
}

/// Like [`v3_group_version`], with CRD schemas looked up by `crd_schema(info)`.
pub(crate) fn v3_group_version_with(
    registry: &Registry,
    group: &str,
    version: &str,
    crd_schema: &dyn Fn(&ResourceInfo) -> Option<Value>,
) -> Option<Value> {
    if !registry.serves_group_version(group, version) {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    for info in registry.resources_in(group, version) {
        let name = schema_name(&info, version);
        let custom = if info.custom { crd_schema(&info) } else { None };
        schemas.insert(name.clone(), kind_schema(&info, version, custom.as_ref()));
        let gvk = json!({"group": info.group, "version": version, "kind": info.kind});
        let body_ref = json!({"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}});
        let op = |action: &str| {
            json!({
                "operationId": format!("{action}{}", info.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params(),
                "responses": {"200": body_ref},
            })
        };
        let item = if info.namespaced {
            format!(
                "{prefix}/namespaces/{{namespace}}/{}/{{name}}",
                info.resource
            )
        } else {
            format!("{prefix}/{}/{{name}}", info.resource)
        };
        paths.insert(item, json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}));
        let collection = if info.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", info.resource)
        } else {
            format!("{prefix}/{}", info.resource)
        };
        paths.insert(collection, json!({"get": op("list"), "post": op("post")}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
