//! `argoproj.io/v1alpha1` AppProject: what a group of Applications may deploy, from where,
//! to where, and when. Field names follow Argo CD's CRD; unknown fields are kept in `extra`.

use crate::application::ApplicationDestination;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const APP_PROJECT_KIND: &str = "AppProject";
/// The project every installation has and Applications name when they name none.
pub const DEFAULT_PROJECT: &str = "default";

/// An Argo CD AppProject: what the Applications that name it may deploy, from which
/// repositories, to which clusters and namespaces, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppProject {
    /// `argoproj.io/v1alpha1`.
    #[serde(default = "project_api_version")]
    pub api_version: String,
    /// `AppProject`.
    #[serde(default = "project_kind")]
    pub kind: String,
    #[serde(default)]
    #[schemars(schema_with = "crate::crd::object_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: AppProjectSpec,
    /// Owned by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AppProjectStatus>,
}

fn project_api_version() -> String {
    crate::application::API_VERSION.to_string()
}

fn project_kind() -> String {
    APP_PROJECT_KIND.to_string()
}

/// The project's rules. Fields plumb does not know are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
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
    /// What the project is for, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Roles with their own policies, for groups or for tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<ProjectRole>,
    /// Cluster-scoped kinds apps may deploy; none when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_resource_whitelist: Vec<GroupKind>,
    /// Cluster-scoped kinds apps may not deploy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_resource_blacklist: Vec<GroupKind>,
    /// Namespaced kinds apps may deploy; all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_resource_whitelist: Vec<GroupKind>,
    /// Namespaced kinds apps may not deploy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_resource_blacklist: Vec<GroupKind>,
    /// Whether live resources in the apps' namespaces that no app manages are reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphaned_resources: Option<OrphanedResourcesMonitorSettings>,
    /// Times when syncs are allowed or denied. With none, syncs may run at any time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_windows: Vec<SyncWindow>,
    /// GnuPG key IDs; when set, only commits signed with one of them are synced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signature_keys: Vec<SignatureKey>,
    /// Apps may only deploy to clusters that belong to this project.
    #[serde(default, skip_serializing_if = "is_false")]
    pub permit_only_project_scoped_clusters: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A kind by API group (`group` may be `*`), as the resource lists name them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct GroupKind {
    /// The API group (empty for the core group, `*` for any).
    #[serde(default)]
    pub group: String,
    /// The kind (`*` for any).
    pub kind: String,
}

/// A project role: policies granted to groups or to the role's tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRole {
    /// The role's name, unique in the project.
    pub name: String,
    /// What the role is for, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// `p, proj:<project>:<role>, <resource>, <action>, <object>, <effect>` lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// SSO groups that have the role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Tokens issued for the role.
    #[serde(rename = "jwtTokens", default, skip_serializing_if = "Vec::is_empty")]
    pub jwt_tokens: Vec<JwtToken>,
}

/// A token issued for a project role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct JwtToken {
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds); never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// The token's ID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
}

/// How resources no app manages are reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct OrphanedResourcesMonitorSettings {
    /// Whether orphans raise `OrphanedResourceWarning` (Argo CD's default: true when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<bool>,
    /// Resources never reported as orphaned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<OrphanedResourceKey>,
}

/// Resources by group, kind and name (globs); an empty field matches any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct OrphanedResourceKey {
    /// The API group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// The kind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// When syncs are allowed or denied: a cron schedule, a duration, and what it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncWindow {
    /// `allow` (syncs only while a window is active) or `deny` (no syncs while it is).
    #[serde(default)]
    pub kind: String,
    /// When the window opens, as a cron expression (`minute hour day month weekday`).
    #[serde(default)]
    pub schedule: String,
    /// How long the window stays open once it opens (`1h`, `30m`).
    #[serde(default)]
    pub duration: String,
    /// The Applications the window applies to, by name (globs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<String>,
    /// The Applications the window applies to, by destination namespace (globs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// The Applications the window applies to, by destination cluster (globs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<String>,
    /// Manual syncs are allowed even while the window denies syncs.
    #[serde(default, skip_serializing_if = "is_false")]
    pub manual_sync: bool,
    /// The time zone of `schedule` (an IANA name such as `Europe/Amsterdam`); UTC when
    /// empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time_zone: String,
    /// An app must match `applications`, `namespaces` and `clusters` all together, rather
    /// than any one of them.
    #[serde(default, skip_serializing_if = "is_false")]
    pub and_operator: bool,
    /// What the window is for, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// A sync already running when the window closes (allow) or opens (deny) may run on to
    /// the end; new syncs are still held back.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sync_overrun: bool,
}

/// A GnuPG key commits may be signed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SignatureKey {
    /// The key's ID.
    #[serde(rename = "keyID")]
    pub key_id: String,
}

/// What the controller keeps about a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppProjectStatus {
    /// The tokens issued, by role name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub jwt_tokens_by_role: BTreeMap<String, JwtTokens>,
}

/// The tokens of one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
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
