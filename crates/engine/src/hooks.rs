//! Hooks and waves: Argo CD's annotations, and Helm's hook annotations mapped as Argo CD
//! maps them.
//!
//! Only readers of annotations, so that sync planning, compare (a hook is not part of the
//! sync status) and health (an app's health leaves hooks out) can all ask them without
//! `diff` or `health` depending on `sync`.

use crate::json::annotation;
use serde_json::Value;

pub const HOOK_ANNOTATION: &str = "argocd.argoproj.io/hook";
pub const HOOK_DELETE_POLICY_ANNOTATION: &str = "argocd.argoproj.io/hook-delete-policy";
pub const SYNC_WAVE_ANNOTATION: &str = "argocd.argoproj.io/sync-wave";
pub const HELM_HOOK_ANNOTATION: &str = "helm.sh/hook";
pub const HELM_HOOK_WEIGHT_ANNOTATION: &str = "helm.sh/hook-weight";
pub const HELM_HOOK_DELETE_POLICY_ANNOTATION: &str = "helm.sh/hook-delete-policy";

/// When a hook runs (`argocd.argoproj.io/hook`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum HookType {
    PreSync,
    Sync,
    PostSync,
    SyncFail,
    PostDelete,
    /// Not a hook: the resource is left out of syncs altogether.
    Skip,
}

impl HookType {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.trim() {
            "PreSync" => Self::PreSync,
            "Sync" => Self::Sync,
            "PostSync" => Self::PostSync,
            "SyncFail" => Self::SyncFail,
            "PostDelete" => Self::PostDelete,
            "Skip" => Self::Skip,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreSync => "PreSync",
            Self::Sync => "Sync",
            Self::PostSync => "PostSync",
            Self::SyncFail => "SyncFail",
            Self::PostDelete => "PostDelete",
            Self::Skip => "Skip",
        }
    }
}

/// When a hook's object is deleted (`argocd.argoproj.io/hook-delete-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum HookDeletePolicy {
    HookSucceeded,
    HookFailed,
    BeforeHookCreation,
}

impl HookDeletePolicy {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.trim() {
            "HookSucceeded" => Self::HookSucceeded,
            "HookFailed" => Self::HookFailed,
            "BeforeHookCreation" => Self::BeforeHookCreation,
            _ => return None,
        })
    }
}

fn csv(text: &str) -> impl Iterator<Item = &str> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
}

/// Helm hook names Argo CD runs, and the phase it runs them in. Other Helm hooks (tests,
/// rollbacks, pre-delete) are hooks Argo CD never runs.
fn helm_hook_type(text: &str) -> Option<HookType> {
    match text {
        "crd-install" | "pre-install" | "pre-upgrade" => Some(HookType::PreSync),
        "post-install" | "post-upgrade" => Some(HookType::PostSync),
        "post-delete" => Some(HookType::PostDelete),
        _ => None,
    }
}

/// The hook types of an object: Argo CD's annotation when present, else Helm's mapped.
pub fn hook_types(object: &Value) -> Vec<HookType> {
    if let Some(text) = annotation(object, HOOK_ANNOTATION) {
        let mut types: Vec<HookType> = csv(text).filter_map(HookType::parse).collect();
        types.dedup();
        return types;
    }
    let mut types: Vec<HookType> = annotation(object, HELM_HOOK_ANNOTATION)
        .map(|text| csv(text).filter_map(helm_hook_type).collect())
        .unwrap_or_default();
    types.sort();
    types.dedup();
    types
}

/// Whether the object is marked `Skip` (and nothing else): it never takes part in a sync.
pub fn is_skipped(object: &Value) -> bool {
    let types = hook_types(object);
    types.len() == 1 && types[0] == HookType::Skip
}

/// Whether the object is a hook rather than a regular resource.
pub fn is_hook(object: &Value) -> bool {
    if annotation(object, HOOK_ANNOTATION).is_some() {
        return !is_skipped(object);
    }
    annotation(object, HELM_HOOK_ANNOTATION).is_some()
}

/// Delete policies of a hook; `BeforeHookCreation` when none is given, as in Argo CD.
pub fn delete_policies(object: &Value) -> Vec<HookDeletePolicy> {
    let mut policies: Vec<HookDeletePolicy> = annotation(object, HOOK_DELETE_POLICY_ANNOTATION)
        .map(|text| csv(text).filter_map(HookDeletePolicy::parse).collect())
        .unwrap_or_default();
    if let Some(text) = annotation(object, HELM_HOOK_DELETE_POLICY_ANNOTATION) {
        policies.extend(csv(text).filter_map(|policy| match policy {
            "before-hook-creation" => Some(HookDeletePolicy::BeforeHookCreation),
            "hook-succeeded" => Some(HookDeletePolicy::HookSucceeded),
            "hook-failed" => Some(HookDeletePolicy::HookFailed),
            _ => None,
        }));
    }
    if policies.is_empty() {
        policies.push(HookDeletePolicy::BeforeHookCreation);
    }
    policies.dedup();
    policies
}

/// The sync wave: `argocd.argoproj.io/sync-wave`, else a Helm hook's weight, else 0.
/// A value that is not an integer counts as 0, as in Argo CD.
pub fn wave(object: &Value) -> i64 {
    if let Some(text) = annotation(object, SYNC_WAVE_ANNOTATION) {
        return text.trim().parse().unwrap_or(0);
    }
    if annotation(object, HELM_HOOK_ANNOTATION).is_some()
        && let Some(text) = annotation(object, HELM_HOOK_WEIGHT_ANNOTATION)
    {
        return text.trim().parse().unwrap_or(0);
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_annotations(annotations: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "j", "annotations": annotations}})
    }

    #[test]
    fn argo_annotation_wins_over_helm() {
        let job = with_annotations(json!({
            "argocd.argoproj.io/hook": "PostSync",
            "helm.sh/hook": "pre-install"
        }));
        assert_eq!(hook_types(&job), [HookType::PostSync]);
        assert!(is_hook(&job));
    }

    #[test]
    fn helm_hooks_map_to_phases() {
        let job = with_annotations(json!({
            "helm.sh/hook": "pre-install,pre-upgrade",
            "helm.sh/hook-weight": "-2",
            "helm.sh/hook-delete-policy": "hook-succeeded"
        }));
        assert_eq!(hook_types(&job), [HookType::PreSync]);
        assert_eq!(wave(&job), -2);
        assert_eq!(delete_policies(&job), [HookDeletePolicy::HookSucceeded]);
        let test_hook = with_annotations(json!({"helm.sh/hook": "test"}));
        assert!(is_hook(&test_hook));
        assert!(hook_types(&test_hook).is_empty());
    }

    #[test]
    fn skip_is_not_a_hook_and_default_policy_is_before_creation() {
        let skipped = with_annotations(json!({"argocd.argoproj.io/hook": "Skip"}));
        assert!(is_skipped(&skipped));
        assert!(!is_hook(&skipped));
        assert_eq!(
            delete_policies(&skipped),
            [HookDeletePolicy::BeforeHookCreation]
        );
        let bad_wave = with_annotations(json!({"argocd.argoproj.io/sync-wave": "soon"}));
        assert_eq!(wave(&bad_wave), 0);
    }
}
