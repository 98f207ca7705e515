//! Identity of a Kubernetes resource and the sync/health vocabularies.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The identity of one Kubernetes object, as Argo CD keys resources: group, kind,
/// namespace and name. Cluster-scoped objects have an empty namespace; the core group is "".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct ResourceKey {
    pub group: String,
    pub kind: String,
    #[serde(default)]
    pub namespace: String,
    pub name: String,
}

impl ResourceKey {
    pub fn new(
        group: impl Into<String>,
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a manifest, from its `apiVersion`, `kind` and `metadata`.
    /// Returns `None` when kind or name is missing (a render error elsewhere reports it).
    pub fn from_object(object: &serde_json::Value) -> Option<Self> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        let metadata = object.get("metadata")?;
        let name = metadata.get("name")?.as_str()?;
        let namespace = metadata
            .get("namespace")
            .and_then(|n| n.as_str())
            .unwrap_or("");
        Some(Self::new(group_of(api_version), kind, namespace, name))
    }
}

impl fmt::Display for ResourceKey {
    /// `group/kind/namespace/name`, the form Argo CD uses in messages and the CLI.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.group, self.kind, self.namespace, self.name
        )
    }
}

/// The group part of an `apiVersion` (`apps/v1` → `apps`, `v1` → ``).
pub fn group_of(api_version: &str) -> &str {
    match api_version.split_once('/') {
        Some((group, _)) => group,
        None => "",
    }
}

/// Whether what Git declares matches what runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
pub enum SyncStatusCode {
    #[default]
    Unknown,
    Synced,
    OutOfSync,
}

impl SyncStatusCode {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatusCode::Unknown => "Unknown",
            SyncStatusCode::Synced => "Synced",
            SyncStatusCode::OutOfSync => "OutOfSync",
        }
    }
}

/// Health of a resource or an application, in Argo CD's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
pub enum HealthStatusCode {
    #[default]
    Unknown,
    Progressing,
    Healthy,
    Suspended,
    Degraded,
    Missing,
}

impl HealthStatusCode {
    /// Severity used to aggregate an application's health from its resources: the app is as
    /// unhealthy as its worst resource. Argo CD's order, least to most severe:
    /// Healthy < Suspended < Progressing < Missing < Degraded < Unknown.
    pub fn severity(self) -> u8 {
        match self {
            HealthStatusCode::Healthy => 0,
            HealthStatusCode::Suspended => 1,
            HealthStatusCode::Progressing => 2,
            HealthStatusCode::Missing => 3,
            HealthStatusCode::Degraded => 4,
            HealthStatusCode::Unknown => 5,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatusCode::Unknown => "Unknown",
            HealthStatusCode::Progressing => "Progressing",
            HealthStatusCode::Healthy => "Healthy",
            HealthStatusCode::Suspended => "Suspended",
            HealthStatusCode::Degraded => "Degraded",
            HealthStatusCode::Missing => "Missing",
        }
    }
}

impl fmt::Display for HealthStatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Assessed health of one resource or application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HealthStatus {
    pub status: HealthStatusCode,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_from_object_reads_group_and_defaults_namespace() {
        let obj = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}
        });
        let key = ResourceKey::from_object(&obj);
        assert_eq!(key, Some(ResourceKey::new("apps", "Deployment", "", "web")));
        assert_eq!(group_of("v1"), "");
        let nameless = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}});
        assert_eq!(ResourceKey::from_object(&nameless), None);
    }

    #[test]
    fn health_severity_follows_argo_order() {
        use HealthStatusCode::*;
        let order = [Healthy, Suspended, Progressing, Missing, Degraded, Unknown];
        for pair in order.windows(2) {
            assert!(pair[0].severity() < pair[1].severity(), "{:?}", pair);
        }
    }
}
