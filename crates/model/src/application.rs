//! `argoproj.io/v1alpha1` Application: source(s), destination, sync policy, ignore rules.
//!
//! Field names and defaults follow Argo CD's CRD. Everything optional in Argo CD is optional
//! here; unknown fields are preserved in `extra` so nothing is lost on a round trip.

use crate::status::{ApplicationStatus, Info, Operation};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const API_GROUP: &str = "argoproj.io";
pub const API_VERSION: &str = "argoproj.io/v1alpha1";
pub const APPLICATION_KIND: &str = "Application";

/// An Argo CD Application: where manifests come from (`spec.source` or `spec.sources`), the
/// cluster and namespace they deploy to (`spec.destination`), how syncing happens
/// (`spec.syncPolicy`), and what the controller last found and did (`status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// `argoproj.io/v1alpha1`.
    #[serde(default = "application_api_version")]
    pub api_version: String,
    /// `Application`.
    #[serde(default = "application_kind")]
    pub kind: String,
    #[serde(default)]
    #[schemars(schema_with = "crate::crd::object_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ApplicationSpec,
    /// What the controller last found and did; owned by the controller, which writes it
    /// with the rest of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ApplicationStatus>,
    /// A requested operation (a sync); the controller runs it and then clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
}

fn application_api_version() -> String {
    API_VERSION.to_string()
}

fn application_kind() -> String {
    APPLICATION_KIND.to_string()
}

/// What to deploy, where, and how to keep it in sync. Fields plumb does not know are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    /// The one source of the manifests. Use `sources` for several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    /// Several sources whose manifests are deployed together; when present, `source` is
    /// ignored, as in Argo CD. A source with a `ref` provides files (such as Helm values
    /// files named `$ref/path`) to the others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<ApplicationSource>,
    /// The cluster and namespace the manifests are deployed to.
    #[serde(default)]
    pub destination: ApplicationDestination,
    /// The AppProject this Application belongs to (`default` when empty); the project
    /// decides which sources, destinations and kinds it may use.
    #[serde(default)]
    pub project: String,
    /// When and how syncs happen: automatically, with which options, retried how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<SyncPolicy>,
    /// Differences that never make the Application OutOfSync (fields a controller or a
    /// webhook changes on the live objects).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_differences: Vec<ResourceIgnoreDifferences>,
    /// How many entries `status.history` keeps (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i64>,
    /// Free-form name/value pairs shown with the Application.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub info: Vec<Info>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ApplicationSpec {
    /// The project the app belongs to (`default` when the field is empty, as Argo CD).
    pub fn project_name(&self) -> &str {
        if self.project.is_empty() {
            crate::DEFAULT_PROJECT
        } else {
            &self.project
        }
    }

    /// The sources in effect: `sources` when non-empty, else the single `source`.
    pub fn effective_sources(&self) -> Vec<&ApplicationSource> {
        if self.sources.is_empty() {
            self.source.iter().collect()
        } else {
            self.sources.iter().collect()
        }
    }
}

/// Where manifests come from: a path in a Git repository, or a Helm chart from a chart
/// repository or OCI registry, and how to render them (`helm`, `kustomize`, `directory`).
/// Fields plumb does not know are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSource {
    /// The URL of the Git repository, Helm chart repository or OCI registry.
    #[serde(rename = "repoURL", default)]
    pub repo_url: String,
    /// The directory in a Git repository that holds the manifests (not used for a chart
    /// from a chart repository).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Branch, tag, commit SHA or `HEAD` for Git; chart version or semver constraint for
    /// Helm charts. Empty means `HEAD`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_revision: String,
    /// Helm chart name, for Helm repositories and OCI registries.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chart: String,
    /// A name other sources use to refer to this one's files as `$name/...` (multi-source
    /// Helm values files); a source with a `ref` is not rendered itself.
    #[serde(default, rename = "ref", skip_serializing_if = "String::is_empty")]
    pub reference: String,
    /// Helm rendering options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmSource>,
    /// Kustomize rendering options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<KustomizeSource>,
    /// Options for a directory of plain manifests or Jsonnet files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectorySource>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// How a Helm chart is rendered (`helm template`). Fields plumb does not know are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct HelmSource {
    /// Values files, relative to the chart (or `$ref/path` into a source with that `ref`),
    /// applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub value_files: Vec<String>,
    /// Inline values as a YAML string, applied after the values files.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub values: String,
    /// Inline values as an object; takes precedence over `values`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::crd::free_object")]
    pub values_object: Option<Value>,
    /// Single values, as with `helm template --set`; they win over every values file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<HelmParameter>,
    /// Values read from files, as with `helm template --set-file`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_parameters: Vec<HelmFileParameter>,
    /// The Helm release name; the Application's name when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub release_name: String,
    /// The namespace to render the chart for; the destination namespace when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Leave out the chart's CRDs (`--skip-crds`).
    #[serde(default)]
    pub skip_crds: bool,
    /// A values file that does not exist is skipped instead of failing the render.
    #[serde(default)]
    pub ignore_missing_value_files: bool,
    /// Send the repository's credentials to every domain the chart is fetched from
    /// (`--pass-credentials`).
    #[serde(default)]
    pub pass_credentials: bool,
    /// The Kubernetes version the chart sees (`--kube-version`); the destination cluster's
    /// when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kube_version: String,
    /// The API versions the chart sees (`--api-versions`, `group/version/Kind` or
    /// `version/Kind`); the destination cluster's when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_versions: Vec<String>,
    /// The Helm major version (`v3`); plumb renders with its one Helm and keeps the field.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One Helm value set on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct HelmParameter {
    /// The value's path, as for `--set` (dots separate keys; `\.` is a literal dot).
    pub name: String,
    /// The value.
    #[serde(default)]
    pub value: String,
    /// Keep the value a string (`--set-string` instead of `--set`).
    #[serde(default)]
    pub force_string: bool,
}

/// One Helm value read from a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct HelmFileParameter {
    /// The value's path, as for `--set-file`.
    pub name: String,
    /// The file holding the value, relative to the source's path.
    pub path: String,
}

/// How a Kustomize overlay is rendered: overrides applied on top of its
/// `kustomization.yaml`. Fields plumb does not know are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeSource {
    /// A prefix added to the name of every resource.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name_prefix: String,
    /// A suffix added to the name of every resource.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name_suffix: String,
    /// Image overrides in kustomize's `name=newName:tag` / `name:tag` / `name@digest` forms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Labels added to every resource and to its selectors, as `kustomize edit add label`
    /// does.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub common_labels: BTreeMap<String, String>,
    /// Annotations added to every resource.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub common_annotations: BTreeMap<String, String>,
    /// `commonLabels` replace labels the overlay already sets.
    #[serde(default)]
    pub force_common_labels: bool,
    /// `commonAnnotations` replace annotations the overlay already sets.
    #[serde(default)]
    pub force_common_annotations: bool,
    /// The namespace every namespaced resource is put in.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Replica count overrides by resource name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<KustomizeReplica>,
    /// Kustomize patches (`target` plus an inline `patch` or a `path`), kept as written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::crd::free_object_list")]
    pub patches: Vec<Value>,
    /// Kustomize components to include, relative to the overlay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    /// The name of a kustomize version configured by the administrator; plumb renders with
    /// its one kustomize and keeps the field.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A replica count override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeReplica {
    /// The name of the Deployment, StatefulSet or other scalable resource.
    pub name: String,
    /// The number of replicas: an integer or a string holding one, as Argo CD accepts both.
    #[schemars(schema_with = "crate::crd::int_or_string")]
    pub count: Value,
}

/// How a directory of plain manifests (YAML or JSON) or Jsonnet files is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct DirectorySource {
    /// Read subdirectories too.
    #[serde(default)]
    pub recurse: bool,
    /// Glob (or `{a,b}` list of globs) of the files to read; all manifests when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub include: String,
    /// Glob (or `{a,b}` list of globs) of files to leave out; wins over `include`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub exclude: String,
    /// Options for the Jsonnet files of the directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonnet: Option<JsonnetSource>,
    /// Read every file `include` matches, not only `.yaml`, `.yml`, `.json` and `.jsonnet`
    /// ones (Argo CD's option; plumb keeps it and still reads only those).
    #[serde(default, skip_serializing_if = "is_false")]
    pub disable_extension_filter: bool,
}

/// How the Jsonnet files of a directory are evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct JsonnetSource {
    /// External variables (`std.extVar`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ext_vars: Vec<JsonnetVar>,
    /// Top-level arguments, passed to a file that evaluates to a function.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tlas: Vec<JsonnetVar>,
    /// Library directories searched by `import`, relative to the repository root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libs: Vec<String>,
}

/// A Jsonnet external variable or top-level argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct JsonnetVar {
    /// The variable's name.
    pub name: String,
    /// The variable's value: a string, or Jsonnet code when `code` is true.
    pub value: String,
    /// The value is Jsonnet code rather than a string.
    #[serde(default)]
    pub code: bool,
}

/// The cluster (by URL or by name) and namespace an Application deploys to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationDestination {
    /// The cluster's API server URL (`https://kubernetes.default.svc` is the cluster plumb
    /// runs in). Set this or `name`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server: String,
    /// The cluster's name, as registered. Set this or `server`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The namespace namespaced resources without one of their own go to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// When and how an Application is synced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicy {
    /// Sync automatically whenever the desired state changes; manual syncs only when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated: Option<SyncPolicyAutomated>,
    /// `Name=value` options, e.g. `CreateNamespace=true`, `PruneLast=true`,
    /// `ServerSideApply=true`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_options: Vec<String>,
    /// How failed syncs are retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryStrategy>,
    /// Labels and annotations for the destination namespace when `CreateNamespace=true`
    /// creates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_namespace_metadata: Option<ManagedNamespaceMetadata>,
}

impl SyncPolicy {
    /// The value of a `Name=value` sync option, if set (last one wins, as in Argo CD).
    pub fn option(&self, name: &str) -> Option<&str> {
        sync_option(&self.sync_options, name)
    }
}

/// The value of `name` in a list of `Name=value` sync options (last one wins).
pub fn sync_option<'a>(options: &'a [String], name: &str) -> Option<&'a str> {
    options.iter().rev().find_map(|option| {
        let (key, value) = option.split_once('=')?;
        (key.trim() == name).then(|| value.trim())
    })
}

/// Automated sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicyAutomated {
    /// Delete live resources the desired state no longer has (otherwise they are only
    /// reported as needing pruning).
    #[serde(default)]
    pub prune: bool,
    /// Also sync when only the live state changed (someone edited a resource), not only
    /// when the desired state did.
    #[serde(default)]
    pub self_heal: bool,
    /// Allow a sync that would leave the Application with no resources at all.
    #[serde(default)]
    pub allow_empty: bool,
    /// Turns automated sync off while keeping its settings when false; on when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// How failed syncs are retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    /// How many times a failed sync is retried; 0 means never, negative means without
    /// limit, as in Argo CD.
    #[serde(default)]
    pub limit: i64,
    /// The wait between attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Retry with the latest revision rather than the one the failed sync used (Argo CD's
    /// option; plumb keeps it and retries the same revision).
    #[serde(default, skip_serializing_if = "is_false")]
    pub refresh: bool,
}

/// The wait between sync attempts: `duration`, multiplied by `factor` after each failure, at
/// most `maxDuration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// The first wait, as a duration (`5s`, `2m`) or a number of seconds; Argo CD's default
    /// is `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// What the wait is multiplied by after each failed attempt (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<i64>,
    /// The longest wait (default `3m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
}

/// Metadata of a namespace the sync creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ManagedNamespaceMetadata {
    /// Labels set on the namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations set on the namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// One `ignoreDifferences` rule: which resources, and which parts of them, never count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceIgnoreDifferences {
    /// The API group of the resources (empty for the core group, `*` for any).
    #[serde(default)]
    pub group: String,
    /// The kind of the resources (`*` for any).
    pub kind: String,
    /// Only the resource of this name; any when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Only resources in this namespace; any when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// JSON Pointers (RFC 6901) of fields to ignore, e.g. `/spec/replicas`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json_pointers: Vec<String>,
    /// jq path expressions of fields to ignore, e.g. `.data["config.yaml"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jq_path_expressions: Vec<String>,
    /// Ignore the fields these field managers own (per `metadata.managedFields`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields_managers: Vec<String>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_APP: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: task-manager-dev
  namespace: argocd
  finalizers: [resources-finalizer.argocd.argoproj.io]
spec:
  project: default
  source:
    repoURL: https://github.com/example/task-manager-gitops.git
    targetRevision: main
    path: overlays/dev
    kustomize:
      images: ["task-manager=registry.example/task-manager:1.2.3"]
  destination:
    server: https://kubernetes.default.svc
    namespace: task-manager-dev
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true, PruneLast=true]
    retry:
      limit: 5
      backoff: {duration: 5s, factor: 2, maxDuration: 3m}
  ignoreDifferences:
  - group: apps
    kind: Deployment
    jsonPointers: [/spec/replicas]
  futureField: {kept: true}
"#;

    #[test]
    fn seed_application_round_trips_without_loss() {
        let app: Application = serde_saphyr::from_str(SEED_APP).expect("parse");
        let source = app.spec.source.as_ref().expect("source");
        assert_eq!(source.path, "overlays/dev");
        assert_eq!(app.spec.effective_sources().len(), 1);
        let policy = app.spec.sync_policy.as_ref().expect("policy");
        assert_eq!(policy.option("CreateNamespace"), Some("true"));
        assert_eq!(policy.option("Replace"), None);
        assert_eq!(policy.retry.as_ref().map(|r| r.limit), Some(5));
        assert_eq!(
            app.spec.ignore_differences[0].json_pointers,
            ["/spec/replicas"]
        );
        let json = serde_json::to_value(&app).expect("serialise");
        assert_eq!(json["spec"]["futureField"]["kept"], true);
        assert_eq!(json["spec"]["source"]["repoURL"], source.repo_url.as_str());
        let again: Application = serde_json::from_value(json).expect("reparse");
        assert_eq!(again, app);
    }

    #[test]
    fn last_sync_option_wins() {
        let options = vec!["Prune=false".to_string(), "Prune=true".to_string()];
        assert_eq!(sync_option(&options, "Prune"), Some("true"));
    }
}
