//! `Application.status` and `Application.operation` as Argo CD writes them, so a script or
//! dashboard written against Argo CD's status reads plumb's unchanged.
//!
//! Times are RFC 3339 strings (Kubernetes' `metav1.Time` on the wire). The controller owns
//! every field here; the types carry no `extra` map because nothing else writes them.

use crate::application::{
    ApplicationDestination, ApplicationSource, ManagedNamespaceMetadata, ResourceIgnoreDifferences,
    RetryStrategy,
};
use crate::resource::{HealthStatusCode, SyncStatusCode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the controller last found and did for an Application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    /// The managed resources, each with its sync status and health.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceStatus>,
    /// Whether the live state matches the desired state, and at which revision.
    #[serde(default)]
    pub sync: SyncStatus,
    /// The Application's health: its least healthy resource's.
    #[serde(default)]
    pub health: AppHealthStatus,
    /// Successful syncs, oldest first, at most `revisionHistoryLimit` (default 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RevisionHistory>,
    /// Errors and warnings about the Application.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ApplicationCondition>,
    /// When the app was last compared with its revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_at: Option<String>,
    /// The current or last operation and its outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_state: Option<OperationState>,
    /// When the live state was last observed (Argo CD keeps it, deprecated, = reconciledAt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<String>,
    /// `Directory`, `Kustomize`, `Helm` or `Plugin` (of the first source).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_type: String,
    /// One entry per source of a multi-source app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_types: Vec<String>,
    /// Images and external URLs of the live resources.
    #[serde(default)]
    pub summary: ApplicationSummary,
    /// `appTree` when resource health is kept outside the Application (Argo CD's option);
    /// plumb keeps it inline and leaves this empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_health_source: String,
    /// The namespace of the controller that manages the Application.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub controller_namespace: String,
}

/// One managed resource as the comparison saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// API group (empty for the core group).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// API version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
    /// Whether the live resource matches the desired one.
    #[serde(default)]
    pub status: SyncStatusCode,
    /// The resource's health, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<ResourceHealth>,
    /// The resource is a sync hook.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hook: bool,
    /// The resource is live but no longer desired.
    #[serde(default, skip_serializing_if = "is_false")]
    pub requires_pruning: bool,
    /// The resource's sync wave.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sync_wave: i64,
    /// Pruning or deleting the resource waits for a user's confirmation.
    #[serde(default, skip_serializing_if = "is_false")]
    pub requires_deletion_confirmation: bool,
}

/// A resource's health (`status`, `message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceHealth {
    /// `Healthy`, `Progressing`, `Suspended`, `Degraded`, `Missing` or `Unknown`.
    #[serde(default)]
    pub status: HealthStatusCode,
    /// Why, in the health check's words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The application's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppHealthStatus {
    /// `Healthy`, `Progressing`, `Suspended`, `Degraded`, `Missing` or `Unknown`.
    #[serde(default)]
    pub status: HealthStatusCode,
    /// Argo CD deprecated the app-level message but older tools read it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// Whether the live state matches the revision compared with, and what was compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// `Synced`, `OutOfSync` or `Unknown`.
    #[serde(default)]
    pub status: SyncStatusCode,
    /// The spec the comparison was made against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compared_to: Option<ComparedTo>,
    /// The resolved commit (or chart version) of a single-source app.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    /// One per source, in order, for multi-source apps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<String>,
}

/// The spec parts a comparison was made against (so a spec change shows as stale).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ComparedTo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<ApplicationSource>,
    #[serde(default)]
    pub destination: ApplicationDestination,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_differences: Vec<ResourceIgnoreDifferences>,
}

/// One entry of the deployment history (what rollback goes back to).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RevisionHistory {
    /// The revision deployed (single source).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    /// The revisions deployed, one per source (multi-source).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<String>,
    /// When the sync finished.
    #[serde(default)]
    pub deployed_at: String,
    /// When the sync started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_started_at: Option<String>,
    /// The entry's number, what a rollback names.
    #[serde(default)]
    pub id: i64,
    /// The source deployed (single source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    /// The sources deployed (multi-source).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<ApplicationSource>,
    /// Who started the sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiated_by: Option<OperationInitiator>,
}

/// A condition: an error or warning about the app, with Argo CD's type names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationCondition {
    /// `ComparisonError`, `InvalidSpecError`, `SyncError`, `OrphanedResourceWarning`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// What is wrong, for a person.
    #[serde(default)]
    pub message: String,
    /// When the condition was first observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// Condition types Argo CD defines and plumb sets.
pub mod condition_type {
    pub const COMPARISON_ERROR: &str = "ComparisonError";
    pub const INVALID_SPEC_ERROR: &str = "InvalidSpecError";
    pub const SYNC_ERROR: &str = "SyncError";
    pub const UNKNOWN_ERROR: &str = "UnknownError";
    pub const SHARED_RESOURCE_WARNING: &str = "SharedResourceWarning";
    pub const REPEATED_RESOURCE_WARNING: &str = "RepeatedResourceWarning";
    pub const ORPHANED_RESOURCE_WARNING: &str = "OrphanedResourceWarning";
    pub const EXCLUDED_RESOURCE_WARNING: &str = "ExcludedResourceWarning";
    pub const DELETION_ERROR: &str = "DeletionError";
    /// plumb's own: why the app is not being synced (auto-sync off, a failed revision, a
    /// rollback pinning an older revision…). Argo CD users ask for this answer.
    pub const SYNC_BLOCKED: &str = "SyncBlocked";
}

impl ApplicationCondition {
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        Self {
            kind: kind.to_string(),
            message: message.into(),
            last_transition_time: None,
        }
    }

    /// Whether this is an error (as opposed to a warning) in Argo CD's sense.
    pub fn is_error(&self) -> bool {
        self.kind.ends_with("Error")
    }
}

/// Images and external URLs of the app's live objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSummary {
    #[serde(
        rename = "externalURLs",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub external_urls: Vec<String>,
    /// Container images of the live workloads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

/// A requested operation (`Application.operation`): today, a sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// A sync, and what it should do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncOperation>,
    /// Who asked for the operation.
    #[serde(default)]
    pub initiated_by: OperationInitiator,
    /// Free-form name/value pairs about the operation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub info: Vec<Info>,
    /// How the operation is retried when it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryStrategy>,
}

/// Who asked for an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct OperationInitiator {
    /// The user who asked.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Set by auto-sync and self-heal.
    #[serde(default, skip_serializing_if = "is_false")]
    pub automated: bool,
}

/// A name/value pair (`spec.info`, `operation.info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// What a sync operation should do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperation {
    /// Revision to sync to; empty means the app's `targetRevision`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    /// Revisions to sync to, one per source (multi-source).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<String>,
    /// Delete live resources that are no longer desired.
    #[serde(default, skip_serializing_if = "is_false")]
    pub prune: bool,
    /// Only show what the sync would do (server-side dry run).
    #[serde(default, skip_serializing_if = "is_false")]
    pub dry_run: bool,
    /// Whether hooks run (`hook`, the default) or the manifests are only applied
    /// (`apply`), and whether to force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_strategy: Option<SyncStrategy>,
    /// Sync only these resources (hooks do not run in a selective sync).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<SyncOperationResource>,
    /// The source to sync instead of the spec's (a rollback sets the history entry's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    /// The sources to sync instead of the spec's (multi-source rollback).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<ApplicationSource>,
    /// Manifests to sync instead of rendering the source (a local sync).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<String>,
    /// `Name=value` options for this sync, as in `spec.syncPolicy.syncOptions`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_options: Vec<String>,
    /// How many self-heal syncs of this revision ran in a row (Argo CD's backoff counter,
    /// which it writes as `autoHealAttemptsCount`; plumb's first name for it is still read).
    #[serde(
        default,
        rename = "autoHealAttemptsCount",
        alias = "selfHealAttemptsCount",
        skip_serializing_if = "is_zero"
    )]
    pub self_heal_attempts_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncStrategy {
    /// Apply the manifests (`kubectl apply`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<SyncStrategyApply>,
    /// Apply the manifests and run hooks (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<SyncStrategyApply>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncStrategyApply {
    /// Delete and re-create resources that cannot be patched.
    #[serde(default, skip_serializing_if = "is_false")]
    pub force: bool,
}

/// One resource of a selective sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperationResource {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// The phase of an operation, Argo CD's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
pub enum OperationPhase {
    #[default]
    Running,
    Terminating,
    Failed,
    Error,
    Succeeded,
}

impl OperationPhase {
    pub fn is_completed(self) -> bool {
        matches!(self, Self::Failed | Self::Error | Self::Succeeded)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "Running",
            Self::Terminating => "Terminating",
            Self::Failed => "Failed",
            Self::Error => "Error",
            Self::Succeeded => "Succeeded",
        }
    }
}

/// The state of the current or last operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct OperationState {
    /// The operation as requested.
    pub operation: Operation,
    /// `Running`, `Terminating`, `Failed`, `Error` or `Succeeded`.
    pub phase: OperationPhase,
    /// What happened, for a person.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// What the sync did, resource by resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_result: Option<SyncOperationResult>,
    /// When the operation started.
    #[serde(default)]
    pub started_at: String,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// How many times it has been retried.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry_count: i64,
}

/// What a sync did, resource by resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperationResult {
    /// Each resource's outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceResult>,
    /// The revision synced.
    #[serde(default)]
    pub revision: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<ApplicationSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_namespace_metadata: Option<ManagedNamespaceMetadata>,
}

/// One resource's outcome in a sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceResult {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    pub kind: String,
    #[serde(default)]
    pub namespace: String,
    pub name: String,
    /// `Synced`, `SyncFailed`, `Pruned`, `PruneSkipped`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// `PreSync`, `Sync`, `PostSync`, `SyncFail`, `PostDelete`, `Skip` for hooks.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hook_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hook_phase: String,
    /// `PreSync`, `Sync`, `PostSync`, `SyncFail`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sync_phase: String,
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status as Argo CD 2.x writes it (trimmed from a live Application).
    const ARGO_STATUS: &str = r#"{
      "resources": [
        {"version": "v1", "kind": "Service", "namespace": "guestbook", "name": "guestbook-ui",
         "status": "Synced", "health": {"status": "Healthy"}},
        {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "guestbook",
         "name": "guestbook-ui", "status": "OutOfSync", "health": {"status": "Progressing",
         "message": "Waiting for rollout to finish"}, "syncWave": 1}
      ],
      "sync": {"status": "OutOfSync", "revision": "53e28ff20cc530b9ada2173fbbd64d48338583ba",
        "comparedTo": {"source": {"repoURL": "https://github.com/argoproj/argocd-example-apps",
          "path": "guestbook", "targetRevision": "HEAD"},
          "destination": {"server": "https://kubernetes.default.svc", "namespace": "guestbook"}}},
      "health": {"status": "Progressing", "lastTransitionTime": "2026-12-01T10:00:00Z"},
      "history": [{"revision": "53e28ff20cc530b9ada2173fbbd64d48338583ba",
        "deployedAt": "2026-12-01T10:00:00Z", "id": 0,
        "deployStartedAt": "2026-12-01T09:59:58Z",
        "source": {"repoURL": "https://github.com/argoproj/argocd-example-apps",
          "path": "guestbook", "targetRevision": "HEAD"},
        "initiatedBy": {"automated": true}}],
      "reconciledAt": "2026-12-01T10:01:00Z",
      "operationState": {
        "operation": {"sync": {"revision": "53e28ff20cc530b9ada2173fbbd64d48338583ba",
          "prune": true, "syncOptions": ["CreateNamespace=true"]},
          "initiatedBy": {"automated": true}, "retry": {"limit": 5}},
        "phase": "Succeeded", "message": "successfully synced (all tasks run)",
        "syncResult": {"resources": [{"group": "apps", "version": "v1", "kind": "Deployment",
          "namespace": "guestbook", "name": "guestbook-ui", "status": "Synced",
          "message": "deployment.apps/guestbook-ui created", "hookPhase": "Running",
          "syncPhase": "Sync"}],
          "revision": "53e28ff20cc530b9ada2173fbbd64d48338583ba",
          "source": {"repoURL": "https://github.com/argoproj/argocd-example-apps",
            "path": "guestbook", "targetRevision": "HEAD"}},
        "startedAt": "2026-12-01T09:59:58Z", "finishedAt": "2026-12-01T10:00:00Z"},
      "sourceType": "Directory",
      "summary": {"images": ["gcr.io/heptio-images/ks-guestbook-demo:0.2"],
        "externalURLs": ["http://guestbook.example"]},
      "conditions": [{"type": "SharedResourceWarning", "message": "shared",
        "lastTransitionTime": "2026-12-01T10:00:00Z"}]
    }"#;

    #[test]
    fn self_heal_attempts_are_written_under_argo_cds_name() {
        let sync: SyncOperation =
            serde_json::from_str(r#"{"selfHealAttemptsCount": 2}"#).expect("plumb's old name");
        assert_eq!(sync.self_heal_attempts_count, 2);
        let written = serde_json::to_value(&sync).expect("serialise");
        assert_eq!(written, serde_json::json!({"autoHealAttemptsCount": 2}));
        let again: SyncOperation = serde_json::from_value(written).expect("Argo CD's name");
        assert_eq!(again, sync);
    }

    #[test]
    fn argo_cd_status_reads_and_writes_back_the_same() {
        let original: serde_json::Value = serde_json::from_str(ARGO_STATUS).expect("json");
        let status: ApplicationStatus =
            serde_json::from_value(original.clone()).expect("status parses");
        assert_eq!(status.sync.status, SyncStatusCode::OutOfSync);
        assert_eq!(status.resources[1].sync_wave, 1);
        let state = status.operation_state.as_ref().expect("operation state");
        assert_eq!(state.phase, OperationPhase::Succeeded);
        assert!(state.operation.initiated_by.automated);
        assert_eq!(status.summary.external_urls, ["http://guestbook.example"]);
        assert_eq!(status.conditions[0].kind, "SharedResourceWarning");
        let written = serde_json::to_value(&status).expect("serialise");
        assert_eq!(written, original);
    }
}
