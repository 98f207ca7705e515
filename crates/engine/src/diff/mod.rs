//! Compare: desired objects against live ones — preparation and validation of what Git
//! declares, normalisation, ignore rules, Secret masking, sync status and unified diffs.

pub mod ignore;
pub mod mask;
pub mod normalize;

use crate::bounded_map::BoundedMap;
use crate::json;
use crate::settings::{CompareOptions, TrackingMethod};
use crate::tracking;
use ignore::{IgnoreError, IgnoreRules};
use plumb_model::{ResourceKey, SyncStatusCode};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub const COMPARE_OPTIONS_ANNOTATION: &str = "argocd.argoproj.io/compare-options";

/// Whether a kind is namespaced, as discovery (or a built-in table) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
    /// The cluster does not serve this kind.
    Unknown,
}

/// Cluster-scoped kinds of Kubernetes' built-in groups, for use without a cluster; any
/// other kind is taken as namespaced.
pub fn builtin_scope(group: &str, kind: &str) -> Scope {
    const CLUSTER: &[(&str, &str)] = &[
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("storage.k8s.io", "CSINode"),
        ("storage.k8s.io", "VolumeAttachment"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("apiregistration.k8s.io", "APIService"),
        ("scheduling.k8s.io", "PriorityClass"),
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration",
        ),
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
        ),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicyBinding",
        ),
        ("networking.k8s.io", "IngressClass"),
        ("node.k8s.io", "RuntimeClass"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ];
    if CLUSTER.contains(&(group, kind)) {
        Scope::Cluster
    } else {
        Scope::Namespaced
    }
}

/// An application condition, with Argo CD's type names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: ConditionKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ConditionKind {
    InvalidSpecError,
    ComparisonError,
    SharedResourceWarning,
    RepeatedResourceWarning,
    SyncError,
}

/// Desired objects made ready for compare and sync.
#[derive(Debug, Clone, Default)]
pub struct PreparedDesired {
    /// Valid objects by key (duplicates resolved: the last one wins, as in Argo CD).
    pub objects: BTreeMap<ResourceKey, Value>,
    /// Objects that cannot be synced, with the reason (InvalidSpecError/ComparisonError).
    pub errors: Vec<Condition>,
    pub warnings: Vec<Condition>,
}

/// A short description of an object for messages: `kind/name` plus its position.
fn describe(object: &Value, index: usize) -> String {
    let kind = json::kind(object);
    let name = json::name(object);
    match (kind.is_empty(), name.is_empty()) {
        (false, false) => format!("{kind}/{name} (object #{})", index + 1),
        (false, true) => format!("{kind} without a name (object #{})", index + 1),
        _ => format!("object #{}", index + 1),
    }
}

/// Validates rendered objects and prepares them: defaults the namespace of namespaced
/// objects to the destination namespace, clears it on cluster-scoped ones (with a warning),
/// adds tracking metadata, and reports duplicates as RepeatedResourceWarning.
pub fn prepare_desired(
    rendered: Vec<Value>,
    app: &str,
    destination_namespace: &str,
    tracking_method: TrackingMethod,
    scope: &dyn Fn(&str, &str) -> Scope,
) -> PreparedDesired {
    let mut prepared = PreparedDesired::default();
    let mut counts: HashMap<ResourceKey, usize> = HashMap::new();
    for (index, mut object) in rendered.into_iter().enumerate() {
        let invalid = |message: String| Condition {
            kind: ConditionKind::InvalidSpecError,
            message,
        };
        if !object.is_object() {
            prepared
                .errors
                .push(invalid(format!("object #{} is not a mapping", index + 1)));
            continue;
        }
        let mut missing = Vec::new();
        if json::api_version(&object).is_empty() {
            missing.push("apiVersion");
        }
        if json::kind(&object).is_empty() {
            missing.push("kind");
        }
        let generated_hook = json::name(&object).is_empty()
            && !json::str_at(&object, &["metadata", "generateName"]).is_empty()
            && crate::hooks::is_hook(&object);
        if json::name(&object).is_empty() && !generated_hook {
            missing.push("metadata.name");
        }
        if !missing.is_empty() {
            prepared.errors.push(invalid(format!(
                "{} is missing {}",
                describe(&object, index),
                missing.join(", ")
            )));
            continue;
        }
        let group = json::group(&object).to_string();
        let kind = json::kind(&object).to_string();
        match scope(&group, &kind) {
            Scope::Unknown => {
                prepared.errors.push(Condition {
                    kind: ConditionKind::ComparisonError,
                    message: format!(
                        "{}: no matches for kind {kind:?} in version {:?}",
                        describe(&object, index),
                        json::api_version(&object)
                    ),
                });
                continue;
            }
            Scope::Namespaced => {
                if json::namespace(&object).is_empty() {
                    if destination_namespace.is_empty() {
                        prepared.errors.push(invalid(format!(
                            "{} is namespaced but has no namespace, and the application has no destination namespace",
                            describe(&object, index)
                        )));
                        continue;
                    }
                    if let Some(metadata) = json::metadata_mut(&mut object) {
                        metadata.insert(
                            "namespace".into(),
                            Value::String(destination_namespace.to_string()),
                        );
                    }
                }
            }
            Scope::Cluster => {
                if !json::namespace(&object).is_empty() {
                    prepared.warnings.push(Condition {
                        kind: ConditionKind::InvalidSpecError,
                        message: format!(
                            "{} is cluster-scoped; its namespace {:?} is ignored",
                            describe(&object, index),
                            json::namespace(&object)
                        ),
                    });
                    if let Some(metadata) = json::metadata_mut(&mut object) {
                        metadata.remove("namespace");
                    }
                }
            }
        }
        let key = object_key(&object);
        if !generated_hook {
            tracking::set_tracking(&mut object, app, tracking_method);
        }
        *counts.entry(key.clone()).or_default() += 1;
        prepared.objects.insert(key, object);
    }
    let mut repeated: Vec<(&ResourceKey, &usize)> =
        counts.iter().filter(|(_, count)| **count > 1).collect();
    repeated.sort();
    for (key, count) in repeated {
        prepared.warnings.push(Condition {
            kind: ConditionKind::RepeatedResourceWarning,
            message: format!("Resource {key} appeared {count} times among application resources."),
        });
    }
    prepared
}

/// The key of an object; hooks named only by `generateName` are keyed by that prefix.
pub fn object_key(object: &Value) -> ResourceKey {
    let name = match json::name(object) {
        "" => json::str_at(object, &["metadata", "generateName"]),
        name => name,
    };
    ResourceKey::new(
        json::group(object),
        json::kind(object),
        json::namespace(object),
        name,
    )
}

/// How to compare.
#[derive(Debug, Clone)]
pub struct CompareSettings {
    pub app: String,
    pub tracking_method: TrackingMethod,
    pub compare_options: CompareOptions,
    pub ignore: IgnoreRules,
    /// How the app's objects are written (its `ServerSideApply` and `Validate` sync
    /// options): the server's prediction, and so a cached result, depends on it.
    pub server_side_apply: bool,
    pub validate: bool,
}

/// The outcome for one resource.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResourceComparison {
    pub key: ResourceKey,
    pub status: SyncStatusCode,
    /// Live but no longer in Git.
    pub requires_pruning: bool,
    /// A hook: not part of the sync status.
    pub hook: bool,
    /// Normalised, ignore rules applied, Secrets masked (shared: cached results are
    /// handed out without copying the objects).
    pub live: Option<Arc<Value>>,
    pub predicted: Option<Arc<Value>>,
    /// Unified YAML diff from live to predicted (empty when in sync).
    pub diff: String,
}

/// Renders an object as YAML with sorted keys (a stable text for diffs).
pub fn to_yaml(object: &Value) -> String {
    let mut sorted = object.clone();
    normalize::sort_keys(&mut sorted);
    serde_saphyr::to_string(&sorted)
        .unwrap_or_else(|_| serde_json::to_string_pretty(&sorted).unwrap_or_default())
}

/// A unified diff between two optional objects, headed with the resource key.
pub fn unified_diff(key: &ResourceKey, live: Option<&Value>, predicted: Option<&Value>) -> String {
    let old = live.map(to_yaml).unwrap_or_default();
    let new = predicted.map(to_yaml).unwrap_or_default();
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("live {key}"), &format!("desired {key}"))
        .to_string()
}

fn has_compare_option(object: Option<&Value>, option: &str) -> bool {
    object
        .and_then(|o| json::annotation(o, COMPARE_OPTIONS_ANNOTATION))
        .is_some_and(|text| text.split(',').any(|part| part.trim() == option))
}

/// Compares one resource. `predicted` is the server's dry-run result for the desired
/// object when available; without it the structural fallback predicts the live state.
pub fn compare_resource(
    key: &ResourceKey,
    desired: Option<&Value>,
    live: Option<&Value>,
    predicted: Option<&Value>,
    settings: &CompareSettings,
) -> Result<ResourceComparison, IgnoreError> {
    let hook = desired.is_some_and(crate::hooks::is_hook)
        || (desired.is_none() && live.is_some_and(crate::hooks::is_hook));
    let prepare = |object: &Value| -> Result<Value, IgnoreError> {
        let mut object = object.clone();
        mask::fold_string_data(&mut object);
        normalize::normalize(
            &mut object,
            &settings.compare_options,
            settings.tracking_method,
        );
        settings.ignore.apply(key, &mut object, live)?;
        Ok(object)
    };
    let mut live_view = live.map(prepare).transpose()?;
    let mut predicted_view = match (desired, predicted, live) {
        (None, _, _) => None,
        (Some(_), Some(predicted), _) => Some(prepare(predicted)?),
        (Some(desired), None, Some(live)) => {
            let mut desired = desired.clone();
            mask::fold_string_data(&mut desired);
            Some(prepare(&normalize::structural_predict(&desired, live))?)
        }
        (Some(desired), None, None) => Some(prepare(desired)?),
    };
    {
        let mut views: Vec<&mut Value> = live_view
            .iter_mut()
            .chain(predicted_view.iter_mut())
            .collect();
        mask::mask_secrets(&mut views);
    }
    let requires_pruning = desired.is_none() && live.is_some() && !hook;
    let status = if hook {
        SyncStatusCode::Synced
    } else if requires_pruning {
        if has_compare_option(live, "IgnoreExtraneous") {
            SyncStatusCode::Synced
        } else {
            SyncStatusCode::OutOfSync
        }
    } else if live_view == predicted_view {
        SyncStatusCode::Synced
    } else {
        SyncStatusCode::OutOfSync
    };
    let diff = if status == SyncStatusCode::Synced && !requires_pruning {
        String::new()
    } else {
        unified_diff(key, live_view.as_ref(), predicted_view.as_ref())
    };
    Ok(ResourceComparison {
        key: key.clone(),
        status,
        requires_pruning,
        hook,
        live: live_view.map(Arc::new),
        predicted: predicted_view.map(Arc::new),
        diff,
    })
}

/// The comparison of a whole application.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AppComparison {
    pub resources: Vec<ResourceComparison>,
    pub conditions: Vec<Condition>,
    /// Desired objects that could not be compared (invalid, unknown kind, bad ignore rule).
    pub failed_objects: usize,
}

impl AppComparison {
    /// Synced when every non-hook resource is Synced and nothing failed to compare.
    pub fn sync_status(&self) -> SyncStatusCode {
        let errors = self.failed_objects > 0;
        let out_of_sync = self
            .resources
            .iter()
            .any(|r| !r.hook && r.status != SyncStatusCode::Synced);
        if errors {
            SyncStatusCode::Unknown
        } else if out_of_sync {
            SyncStatusCode::OutOfSync
        } else {
            SyncStatusCode::Synced
        }
    }
}

/// Compare results kept between compares, keyed by resource and valid while the live
/// object's resourceVersion, the desired object and the compare settings are unchanged.
/// With it, re-comparing an unchanged app redoes no normalisation and no diff. It holds at
/// most its capacity of resources, forgetting the least recently compared first.
#[derive(Debug)]
pub struct CompareCache {
    entries: std::sync::Mutex<BoundedMap<ResourceKey, CachedComparison>>,
}

impl Default for CompareCache {
    fn default() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }
}

#[derive(Debug, Clone)]
struct CachedComparison {
    /// [`live_fingerprint`] of the live object the result was computed against.
    live_version: u64,
    desired_hash: [u8; 32],
    settings_fingerprint: [u8; 32],
    result: ResourceComparison,
}

/// SHA-256 of an object's JSON text. Renderers emit keys in a stable order, so the same
/// desired object hashes the same; a reordering only costs one fresh compare.
pub fn object_hash(object: &Value) -> [u8; 32] {
    use sha2::Digest;
    let bytes = serde_json::to_vec(object).unwrap_or_default();
    sha2::Sha256::digest(&bytes).into()
}

/// A digest of the compare settings, part of every cached result's key.
pub fn settings_fingerprint(settings: &CompareSettings) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(format!("{settings:?}").as_bytes()).into()
}

/// What a cached comparison's live side is recognised by: every field of the live object
/// except those a desired object without `status` cannot change the result of — `status`,
/// `metadata.resourceVersion`, `metadata.managedFields` and `metadata.generation`. A
/// Deployment whose status moves while its pods start (each move a new resourceVersion)
/// keeps its cached comparison: a dry-run of the same apply would predict the same object
/// with the same new status. Any other change (`kubectl edit`, a label, an annotation) is a
/// new fingerprint. `0` is an absent object.
pub fn live_fingerprint(live: Option<&Value>, desired_has_status: bool) -> u64 {
    use std::hash::{Hash, Hasher};
    let Some(live) = live else {
        return 0;
    };
    // SipHash with fixed keys: the same object hashes the same for the process's lifetime.
    let mut hasher = std::hash::DefaultHasher::new();
    fn walk(value: &Value, hasher: &mut std::hash::DefaultHasher) {
        match value {
            Value::Null => 0u8.hash(hasher),
            Value::Bool(b) => (1u8, b).hash(hasher),
            Value::Number(n) => (2u8, n.to_string()).hash(hasher),
            Value::String(s) => (3u8, s).hash(hasher),
            Value::Array(items) => {
                (4u8, items.len()).hash(hasher);
                for item in items {
                    walk(item, hasher);
                }
            }
            Value::Object(map) => {
                (5u8, map.len()).hash(hasher);
                for (key, item) in map {
                    key.hash(hasher);
                    walk(item, hasher);
                }
            }
        }
    }
    let Some(map) = live.as_object() else {
        walk(live, &mut hasher);
        return hasher.finish().max(1);
    };
    for (key, item) in map {
        if key == "status" && !desired_has_status {
            continue;
        }
        key.hash(&mut hasher);
        match (key.as_str(), item.as_object()) {
            ("metadata", Some(metadata)) => {
                for (field, value) in metadata {
                    if matches!(
                        field.as_str(),
                        "resourceVersion" | "managedFields" | "generation"
                    ) {
                        continue;
                    }
                    field.hash(&mut hasher);
                    walk(value, &mut hasher);
                }
            }
            _ => walk(item, &mut hasher),
        }
    }
    hasher.finish().max(1)
}

fn has_status(desired: &Value) -> bool {
    desired.get("status").is_some()
}

impl CompareCache {
    /// Resources a default cache holds: the objects of many apps on one cluster.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A cache of at most `capacity` resources' results (0: none kept).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: std::sync::Mutex::new(BoundedMap::new(capacity)),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BoundedMap<ResourceKey, CachedComparison>> {
        // A cache: a panic elsewhere cannot leave it inconsistent.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a result for these inputs is cached (so no dry-run is needed for it).
    pub fn is_fresh(
        &self,
        key: &ResourceKey,
        desired: &Value,
        live: Option<&Value>,
        fingerprint: &[u8; 32],
    ) -> bool {
        self.lookup(key, desired, &object_hash(desired), live, fingerprint)
            .is_some()
    }

    fn lookup(
        &self,
        key: &ResourceKey,
        desired: &Value,
        desired_hash: &[u8; 32],
        live: Option<&Value>,
        fingerprint: &[u8; 32],
    ) -> Option<ResourceComparison> {
        let live_version = live_fingerprint(live, has_status(desired));
        let mut entries = self.entries();
        let entry = entries.get(key)?;
        (entry.live_version == live_version
            && entry.desired_hash == *desired_hash
            && entry.settings_fingerprint == *fingerprint)
            .then(|| entry.result.clone())
    }

    fn store(
        &self,
        desired: &Value,
        desired_hash: [u8; 32],
        live: Option<&Value>,
        fingerprint: [u8; 32],
        result: &ResourceComparison,
    ) {
        // Without a resourceVersion (objects not read from a server) nothing is cached.
        if live.is_some_and(|l| json::str_at(l, &["metadata", "resourceVersion"]).is_empty()) {
            return;
        }
        // The result is kept without its object views: only the status, flags and diff
        // text are read from a cached result, and the views would hold two more copies of
        // every managed object for as long as the process runs.
        let mut kept = result.clone();
        kept.live = None;
        kept.predicted = None;
        self.entries().insert(
            result.key.clone(),
            CachedComparison {
                live_version: live_fingerprint(live, has_status(desired)),
                desired_hash,
                settings_fingerprint: fingerprint,
                result: kept,
            },
        );
    }

    /// Forgets the result for `key` (its object was deleted).
    pub fn forget(&self, key: &ResourceKey) {
        self.entries().remove(key);
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Compares an application: `live` holds the live objects of the desired keys and every
/// live object this app tracks; `predicted` the dry-run results by key (missing → the
/// structural fallback). Objects tracked by another application are reported as
/// SharedResourceWarning.
pub fn compare_app(
    desired: &PreparedDesired,
    live: &BTreeMap<ResourceKey, Value>,
    predicted: &HashMap<ResourceKey, Value>,
    settings: &CompareSettings,
    cache: Option<&CompareCache>,
) -> AppComparison {
    let fingerprint = settings_fingerprint(settings);
    let mut comparison = AppComparison {
        conditions: desired
            .errors
            .iter()
            .chain(&desired.warnings)
            .cloned()
            .collect(),
        failed_objects: desired.errors.len(),
        ..Default::default()
    };
    for (key, object) in &desired.objects {
        let live_object = live.get(key);
        if let Some(live_object) = live_object
            && let Some(owner) = tracking::owner(live_object, settings.tracking_method)
            && owner != settings.app
        {
            comparison.conditions.push(Condition {
                kind: ConditionKind::SharedResourceWarning,
                message: format!(
                    "{}/{} is part of applications {owner} and {}",
                    key.kind, key.name, settings.app
                ),
            });
        }
        let desired_hash = cache.map(|_| object_hash(object));
        if let (Some(cache), Some(hash)) = (cache, &desired_hash)
            && let Some(cached) = cache.lookup(key, object, hash, live_object, &fingerprint)
        {
            comparison.resources.push(cached);
            continue;
        }
        match compare_resource(key, Some(object), live_object, predicted.get(key), settings) {
            Ok(result) => {
                // Only answers backed by the server's prediction are kept: a structural
                // fallback (or a failed dry-run) must be retried next time.
                if let (Some(cache), Some(hash), true) =
                    (cache, desired_hash, predicted.contains_key(key))
                {
                    cache.store(object, hash, live_object, fingerprint, &result);
                }
                comparison.resources.push(result)
            }
            Err(error) => {
                comparison.failed_objects += 1;
                comparison.conditions.push(Condition {
                    kind: ConditionKind::ComparisonError,
                    message: format!("{key}: {error}"),
                });
            }
        }
    }
    for (key, live_object) in live {
        if desired.objects.contains_key(key)
            || !tracking::is_owned_by(live_object, &settings.app, settings.tracking_method)
        {
            continue;
        }
        match compare_resource(key, None, Some(live_object), None, settings) {
            Ok(result) => comparison.resources.push(result),
            Err(error) => comparison.conditions.push(Condition {
                kind: ConditionKind::ComparisonError,
                message: format!("{key}: {error}"),
            }),
        }
    }
    comparison.resources.sort_by(|a, b| a.key.cmp(&b.key));
    comparison
}
