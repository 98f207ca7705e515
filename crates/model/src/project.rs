//! `argoproj.io/v1alpha1` AppProject: what a group of Applications may deploy, from where,
//! to where, and when. Field names follow Argo CD's CRD; unknown fields are kept in `extra`.

use crate::application::ApplicationDestination;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const APP_PROJECT_KIND: &str = "AppProject";
/// The project every installation has and Applications name when they name none.
pub const DEFAULT_PROJECT: &str = "default";

/// An Argo CD AppProject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppProject {
    #[serde(default = "project_api_version")]
    pub api_version: String,
    #[serde(default = "project_kind")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: AppProjectSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AppProjectStatus>,
}

fn project_api_version() -> String {
    crate::application::API_VERSION.to_string()
}

fn project_kind() -> String {
    APP_PROJECT_KIND.to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppProjectSpec {
    /// Repository URLs (globs, `!` negates) apps of this project may use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_repos: Vec<String>,
    /// Namespaces (globs) Applications of this project may live in, besides the control
    /// plane's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_namespaces: Vec<String>,
    /// Where apps may deploy: server / name / namespace globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<ApplicationDestination>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<ProjectRole>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_resource_whitelist: Vec<GroupKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_resource_blacklist: Vec<GroupKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_resource_whitelist: Vec<GroupKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_resource_blacklist: Vec<GroupKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphaned_resources: Option<OrphanedResourcesMonitorSettings>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_windows: Vec<SyncWindow>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signature_keys: Vec<SignatureKey>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub permit_only_project_scoped_clusters: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A kind by API group (`group` may be `*`), as the resource lists name them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GroupKind {
    #[serde(default)]
    pub group: String,
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRole {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// `p, proj:<project>:<role>, <resource>, <action>, <object>, <effect>` lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(rename = "jwtTokens", default, skip_serializing_if = "Vec::is_empty")]
    pub jwt_tokens: Vec<JwtToken>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct JwtToken {
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OrphanedResourcesMonitorSettings {
    /// Whether orphans raise `OrphanedResourceWarning` (Argo CD's default: true when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<OrphanedResourceKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OrphanedResourceKey {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// When syncs are allowed or denied: a cron schedule, a duration, and what it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncWindow {
    /// `allow` or `deny`.
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub schedule: String,
    #[serde(default)]
    pub duration: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub manual_sync: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time_zone: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub and_operator: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SignatureKey {
    #[serde(rename = "keyID")]
    pub key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppProjectStatus {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub jwt_tokens_by_role: BTreeMap<String, JwtTokens>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct JwtTokens {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<JwtToken>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl AppProject {
    /// Argo CD's `default` project: any source, any destination, every kind.
    pub fn default_project(namespace: &str) -> Self {
        AppProject {
            api_version: project_api_version(),
            kind: project_kind(),
            metadata: ObjectMeta {
                name: Some(DEFAULT_PROJECT.to_string()),
                namespace: Some(namespace.to_string()),
                ..Default::default()
            },
            spec: AppProjectSpec {
                source_repos: vec!["*".to_string()],
                destinations: vec![ApplicationDestination {
                    server: "*".to_string(),
                    name: String::new(),
                    namespace: "*".to_string(),
                }],
                cluster_resource_whitelist: vec![GroupKind {
                    group: "*".to_string(),
                    kind: "*".to_string(),
                }],
                ..Default::default()
            },
            status: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_from_argo_cd_docs_round_trips() {
        let text = r#"{
          "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
          "metadata": {"name": "my-project", "namespace": "argocd"},
          "spec": {
            "description": "Example Project",
            "sourceRepos": ["*"],
            "destinations": [{"namespace": "guestbook", "server": "https://kubernetes.default.svc"}],
            "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}],
            "namespaceResourceBlacklist": [{"group": "", "kind": "ResourceQuota"}],
            "orphanedResources": {"warn": false},
            "roles": [{"name": "read-only", "description": "Read-only privileges",
              "policies": ["p, proj:my-project:read-only, applications, get, my-project/*, allow"],
              "groups": ["my-oidc-group"]}],
            "syncWindows": [{"kind": "allow", "schedule": "10 1 * * *", "duration": "1h",
              "applications": ["*-prod"], "manualSync": true, "timeZone": "Europe/Amsterdam"}],
            "signatureKeys": [{"keyID": "ABCDEF1234567890"}],
            "destinationServiceAccounts": [{"server": "*", "defaultServiceAccount": "sa"}]
          }
        }"#;
        let original: Value = serde_json::from_str(text).expect("json");
        let project: AppProject = serde_json::from_value(original.clone()).expect("parse");
        assert_eq!(project.spec.sync_windows[0].time_zone, "Europe/Amsterdam");
        assert_eq!(project.spec.signature_keys[0].key_id, "ABCDEF1234567890");
        assert!(
            project
                .spec
                .extra
                .contains_key("destinationServiceAccounts")
        );
        assert_eq!(serde_json::to_value(&project).expect("serialise"), original);
    }
}
