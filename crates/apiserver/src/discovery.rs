//! Discovery documents: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/<g>`, `/apis/<g>/<v>`,
//! and the aggregated documents (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`) that
//! `/api` and `/apis` answer when asked for them. Both kinds are written from the same
//! registry by the same helpers (verbs, subresources, version order), so they never
//! disagree.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::registry::{Registry, ResourceInfo, VERBS};

pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": concat!("v1.32.0-plumb.", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

pub(crate) fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

pub(crate) fn api_group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .iter()
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub(crate) fn api_group(registry: &Registry, group: &str) -> Option<Value> {
    let (name, versions) = registry.groups().into_iter().find(|(g, _)| g == group)?;
    let mut g = group_entry(&name, &versions);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// The verbs kube-apiserver lists for a custom resource, in its order.
const CUSTOM_RESOURCE_VERBS: [&str; 8] = [
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
];

/// The verbs of the `status` and `scale` subresources.
const SUBRESOURCE_VERBS: [&str; 3] = ["get", "patch", "update"];

/// The verbs of a built-in kind without `deletecollection`.
const VERBS_WITHOUT_DELETECOLLECTION: [&str; 7] = [
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// The verbs a resource is served with (kube-apiserver sorts a built-in kind's verbs).
fn verbs(info: &ResourceInfo) -> &'static [&'static str] {
    if info.custom {
        &CUSTOM_RESOURCE_VERBS
    } else if !info.deletes_collections() {
        &VERBS_WITHOUT_DELETECOLLECTION
    } else {
        &VERBS
    }
}

/// A served subresource.
struct Subresource {
    name: &'static str,
    kind: String,
    /// The group and version of the answer when they are not the resource's own.
    other_group_version: Option<(&'static str, &'static str)>,
    verbs: &'static [&'static str],
}

/// The subresources the server serves for a resource: kube-apiserver lists a built-in
/// kind's by name and a custom resource's status before its scale.
fn subresources(info: &ResourceInfo) -> Vec<Subresource> {
    let status = info.status_subresource.then(|| Subresource {
        name: "status",
        kind: info.kind.clone(),
        other_group_version: None,
        verbs: &SUBRESOURCE_VERBS,
    });
    let scale = info.has_scale().then(|| Subresource {
        name: "scale",
        kind: "Scale".to_string(),
        other_group_version: Some(("autoscaling", "v1")),
        verbs: &SUBRESOURCE_VERBS,
    });
    let ordered = if info.custom {
        [status, scale]
    } else {
        [scale, status]
    };
    ordered.into_iter().flatten().collect()
}

/// The resources of `group/version`, alphabetical as Kubernetes lists them.
fn sorted_resources(registry: &Registry, group: &str, version: &str) -> Vec<Arc<ResourceInfo>> {
    let mut infos = registry.resources_in(group, version);
    infos.sort_by(|a, b| a.resource.cmp(&b.resource));
    infos
}

pub(crate) fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    if !registry.serves_group_version(group, version) {
        return None;
    }
    let mut resources = Vec::new();
    for r in sorted_resources(registry, group, version) {
        let mut entry = json!({
            "name": r.resource,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs(&r),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        entry["storageVersionHash"] =
            json!(storage_version_hash(&r.group, &r.versions[0], &r.kind));
        resources.push(entry);
        for sub in subresources(&r) {
            let mut entry = json!({
                "name": format!("{}/{}", r.resource, sub.name),
                "singularName": "",
                "namespaced": r.namespaced,
            });
            if let Some((group, version)) = sub.other_group_version {
                entry["group"] = json!(group);
                entry["version"] = json!(version);
            }
            entry["kind"] = json!(sub.kind);
            entry["verbs"] = json!(sub.verbs);
            resources.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        // Kubernetes' core list carries no apiVersion; group lists say "v1".
        if group.is_empty() {
            json!({"kind": "APIResourceList", "groupVersion": group_version, "resources": resources})
        } else {
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
        },
    )
}

/// The media type of an aggregated discovery answer (`apidiscovery.k8s.io/v2`).
pub(crate) const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// One aggregated discovery document, written once: its JSON and its entity tag.
#[derive(Debug)]
pub(crate) struct AggregatedDocument {
    pub(crate) body: Bytes,
    /// `"<SHA-512 of the body, upper-case hex>"`, as kube-apiserver tags its documents.
    pub(crate) etag: String,
}

/// The aggregated discovery documents of one registry: `/api` and `/apis`.
#[derive(Debug)]
pub(crate) struct Aggregated {
    pub(crate) api: AggregatedDocument,
    pub(crate) apis: AggregatedDocument,
}

/// The aggregated discovery documents of a registry (written on its first request, then
/// kept until the registry is replaced).
pub(crate) fn aggregated(registry: &Registry) -> Arc<Aggregated> {
    registry.aggregated(|registry| {
        let core = group_discovery(registry, "", &["v1".to_string()]);
        let mut groups = registry.groups();
        // The aggregated list ranks groups of equal priority (all custom groups) by name,
        // where `/apis` ranks them by their first APIService's name.
        let first_custom = groups
            .iter()
            .position(|(g, _)| registry.is_custom_group(g))
            .unwrap_or(groups.len());
        groups[first_custom..].sort_by(|a, b| a.0.cmp(&b.0));
        let items: Vec<Value> = groups
            .iter()
            .map(|(group, versions)| group_discovery(registry, group, versions))
            .collect();
        Aggregated {
            api: document(vec![core]),
            apis: document(items),
        }
    })
}

fn document(items: Vec<Value>) -> AggregatedDocument {
    use sha2::Digest as _;
    let body = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
    .to_string();
    let digest = sha2::Sha512::digest(body.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
    AggregatedDocument {
        body: Bytes::from(body),
        etag: format!("\"{hex}\""),
    }
}

/// One `APIGroupDiscovery`: the group's versions (preferred first), each with its
/// resources. The core group's metadata has no name.
fn group_discovery(registry: &Registry, group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|version| {
            let resources: Vec<Value> = sorted_resources(registry, group, version)
                .iter()
                .map(|r| resource_discovery(r, version))
                .collect();
            json!({"version": version, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let metadata = if group.is_empty() {
        json!({})
    } else {
        json!({"name": group})
    };
    json!({"metadata": metadata, "versions": versions})
}

/// One `APIResourceDiscovery`. kube-apiserver leaves a built-in kind's response group and
/// version empty (they are the resource's own) and fills them in for custom resources.
fn resource_discovery(r: &ResourceInfo, version: &str) -> Value {
    let own = |kind: &str| {
        if r.custom {
            json!({"group": r.group, "version": version, "kind": kind})
        } else {
            json!({"group": "", "version": "", "kind": kind})
        }
    };
    let mut entry = json!({
        "resource": r.resource,
        "responseKind": own(&r.kind),
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": verbs(r),
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    let subresources: Vec<Value> = subresources(r)
        .into_iter()
        .map(|sub| {
            let response_kind = match sub.other_group_version {
                Some((group, version)) => {
                    json!({"group": group, "version": version, "kind": sub.kind})
                }
                None => own(&sub.kind),
            };
            json!({"subresource": sub.name, "responseKind": response_kind, "verbs": sub.verbs})
        })
        .collect();
    if !subresources.is_empty() {
        entry["subresources"] = json!(subresources);
    }
    entry
}

/// Kubernetes' `storageVersionHash`: the first 8 bytes of SHA-256 over
/// `<group>/<storage version>/<kind>`, base64. Clients compare it to notice storage changes.
pub(crate) fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("{group}/{version}/{kind}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    #[test]
    fn storage_version_hash_is_stable_and_per_kind() {
        let cm = super::storage_version_hash("", "v1", "ConfigMap");
        assert_eq!(cm.len(), 12, "8 bytes in base64");
        assert_eq!(cm, super::storage_version_hash("", "v1", "ConfigMap"));
        assert_ne!(cm, super::storage_version_hash("", "v1", "Secret"));
    }
}
