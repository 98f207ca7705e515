//! Sync planning: which objects are applied, pruned or run as hooks, in which phase and
//! wave, and in which order — Argo CD's rules, as pure functions over the compared state.

use super::options::{DeletionOption, SyncOptionError, SyncOptions};
use crate::hooks::{self, HookDeletePolicy, HookType};
use crate::json;
use plumb_model::{HealthStatusCode, ResourceKey};
use serde_json::Value;
use std::cmp::Ordering;

/// Phases of a sync operation, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum SyncPhase {
    PreSync,
    Sync,
    PostSync,
    /// Runs only when the operation failed.
    SyncFail,
    /// Runs only when the Application is deleted.
    PostDelete,
}

impl SyncPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreSync => "PreSync",
            Self::Sync => "Sync",
            Self::PostSync => "PostSync",
            Self::SyncFail => "SyncFail",
            Self::PostDelete => "PostDelete",
        }
    }

    fn of_hook(hook: HookType) -> Option<Self> {
        match hook {
            HookType::PreSync => Some(Self::PreSync),
            HookType::Sync => Some(Self::Sync),
            HookType::PostSync => Some(Self::PostSync),
            HookType::SyncFail => Some(Self::SyncFail),
            HookType::PostDelete => Some(Self::PostDelete),
            HookType::Skip => None,
        }
    }
}

/// Kinds in the order Argo CD creates them inside one wave; other kinds come after.
pub const KIND_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

/// Rank of a kind in [`KIND_ORDER`]; unknown kinds rank last.
pub fn kind_rank(kind: &str) -> usize {
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KIND_ORDER.len())
}

/// What a task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum TaskAction {
    /// Apply the desired object.
    Apply,
    /// Delete the live object (no longer in Git).
    Prune,
    /// Create a hook object and wait for it to finish.
    Hook,
}

/// One step of a sync: one object, what to do with it, when.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SyncTask {
    pub key: ResourceKey,
    pub phase: SyncPhase,
    pub wave: i64,
    pub action: TaskAction,
    pub target: Option<Value>,
    pub live: Option<Value>,
    pub options: SyncOptions,
    /// For hooks: when their objects are deleted.
    pub delete_policies: Vec<HookDeletePolicy>,
    /// Set when the task is reported but not carried out (e.g. "ignored (no prune)").
    pub skip_reason: Option<String>,
}

impl SyncTask {
    fn kind(&self) -> &str {
        &self.key.kind
    }
}

/// Where a written task stands while its step waits (Argo CD's operation state of a task).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum TaskProgress {
    Running,
    Succeeded,
    Failed,
}

/// The progress of a written task from its live object's health, as gitops-engine's sync
/// context judges running tasks (`pkg/sync/sync_context.go`): `None` is a kind without a
/// health assessment, which succeeds at once.
///
/// - Hooks: Healthy → Succeeded; Degraded or Unknown → Failed; Progressing or Suspended →
///   Running; a health status outside these (Missing from a script) → Succeeded.
/// - Other resources: Healthy → Succeeded; Degraded → Failed (the operation fails with
///   "one or more synchronization tasks completed unsuccessfully"); everything else —
///   Progressing, Suspended, Unknown, Missing — keeps the step waiting.
///
/// A task whose live object is not there (yet) is Running; the caller decides that.
pub fn running_task_progress(action: TaskAction, health: Option<HealthStatusCode>) -> TaskProgress {
    let Some(health) = health else {
        return TaskProgress::Succeeded;
    };
    match (action, health) {
        (_, HealthStatusCode::Healthy) => TaskProgress::Succeeded,
        (_, HealthStatusCode::Degraded) => TaskProgress::Failed,
        (TaskAction::Hook, HealthStatusCode::Unknown) => TaskProgress::Failed,
        (TaskAction::Hook, HealthStatusCode::Progressing | HealthStatusCode::Suspended) => {
            TaskProgress::Running
        }
        (TaskAction::Hook, HealthStatusCode::Missing) => TaskProgress::Succeeded,
        (_, _) => TaskProgress::Running,
    }
}

/// Whether the non-hook resources written in step `index` of `step_count` are waited for
/// until healthy. As in gitops-engine: in a multi-step sync, every step but the last gates
/// on health; the last step does too when it has hooks (they keep the operation running, and
/// the step's other tasks are judged with them). A sync of one step never waits for health.
pub fn step_gates_health(index: usize, step_count: usize, step_has_hooks: bool) -> bool {
    let multi_step = step_count > 1;
    multi_step && (index + 1 < step_count || step_has_hooks)
}

/// Argo CD's task order: phase, wave, kind order, then name.
pub fn compare_tasks(a: &SyncTask, b: &SyncTask) -> Ordering {
    a.phase
        .cmp(&b.phase)
        .then(a.wave.cmp(&b.wave))
        .then(kind_rank(a.kind()).cmp(&kind_rank(b.kind())))
        .then(a.key.name.cmp(&b.key.name))
}

/// A resource as compare sees it: what Git declares, what runs, and whether they differ.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanResource {
    pub key: ResourceKey,
    pub target: Option<Value>,
    pub live: Option<Value>,
    pub out_of_sync: bool,
}

/// Selects resources for a selective sync (`GROUP:KIND:NAME`, namespace optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSelector {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ResourceSelector {
    /// Parses `GROUP:KIND:NAME` or `GROUP:KIND:NAMESPACE/NAME` (the `argocd app sync
    /// --resource` form; the group is empty for core kinds).
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.splitn(3, ':').collect();
        let [group, kind, name] = parts.as_slice() else {
            return Err(format!(
                "resource {text:?} is not GROUP:KIND:NAME (or GROUP:KIND:NAMESPACE/NAME)"
            ));
        };
        if kind.is_empty() || name.is_empty() {
            return Err(format!("resource {text:?} has an empty kind or name"));
        }
        let (namespace, name) = match name.split_once('/') {
            Some((namespace, name)) => (Some(namespace.to_string()), name.to_string()),
            None => (None, name.to_string()),
        };
        Ok(Self {
            group: group.to_string(),
            kind: kind.to_string(),
            namespace,
            name,
        })
    }

    pub fn matches(&self, key: &ResourceKey) -> bool {
        self.group == key.group
            && self.kind == key.kind
            && self.name == key.name
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == key.namespace)
    }
}

/// Everything planning needs.
#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    /// The revision being synced (names generated hooks).
    pub revision: &'a str,
    /// Operation start, in Unix seconds (names generated hooks).
    pub started_at: i64,
    pub options: &'a SyncOptions,
    /// Whether pruning is allowed for this operation.
    pub prune: bool,
    /// Whether the user confirmed pruning of `Prune=confirm` objects.
    pub prune_confirmed: bool,
    /// Selective sync: only these resources (and no hooks).
    pub selection: Option<&'a [ResourceSelector]>,
    pub resources: &'a [PlanResource],
}

/// A planned operation.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SyncPlan {
    /// PreSync, Sync and PostSync tasks in execution order.
    pub tasks: Vec<SyncTask>,
    /// SyncFail hooks, run only if the operation fails.
    pub fail_tasks: Vec<SyncTask>,
    /// Problems with per-object annotations, reported without blocking the sync.
    pub warnings: Vec<String>,
}

/// A group of tasks that run together: one phase and wave.
#[derive(Debug, Clone)]
pub struct Step<'a> {
    pub phase: SyncPhase,
    pub wave: i64,
    pub tasks: Vec<&'a SyncTask>,
}

impl SyncPlan {
    /// Tasks grouped by (phase, wave), in order; tasks in one step may run concurrently.
    pub fn steps(&self) -> Vec<Step<'_>> {
        group_steps(&self.tasks)
    }

    pub fn fail_steps(&self) -> Vec<Step<'_>> {
        group_steps(&self.fail_tasks)
    }
}

fn group_steps(tasks: &[SyncTask]) -> Vec<Step<'_>> {
    let mut steps: Vec<Step<'_>> = Vec::new();
    for task in tasks {
        match steps.last_mut() {
            Some(step) if step.phase == task.phase && step.wave == task.wave => {
                step.tasks.push(task)
            }
            _ => steps.push(Step {
                phase: task.phase,
                wave: task.wave,
                tasks: vec![task],
            }),
        }
    }
    steps
}

/// The name Argo CD gives a hook that only has `generateName`:
/// `<generateName><revision[:7]>-<phase>-<unix start>`, lower-cased.
pub fn generated_hook_name(
    generate_name: &str,
    revision: &str,
    phase: SyncPhase,
    started_at: i64,
) -> String {
    let short_revision = if revision.len() >= 8 {
        revision.get(..7).unwrap_or(revision)
    } else {
        revision
    };
    let postfix = format!("{short_revision}-{}-{started_at}", phase.as_str()).to_lowercase();
    format!("{generate_name}{postfix}")
}

fn option_warnings(key: &ResourceKey, errors: Vec<SyncOptionError>, warnings: &mut Vec<String>) {
    warnings.extend(errors.into_iter().map(|e| format!("{key}: {e}")));
}

/// Plans a sync operation.
pub fn plan(request: &PlanRequest<'_>) -> SyncPlan {
    let mut plan = SyncPlan::default();
    let selected = |key: &ResourceKey| {
        request
            .selection
            .is_none_or(|selection| selection.iter().any(|s| s.matches(key)))
    };
    let mut tasks: Vec<SyncTask> = Vec::new();
    for resource in request.resources {
        let key = &resource.key;
        match (&resource.target, &resource.live) {
            (Some(target), _) if hooks::is_skipped(target) => {}
            (Some(target), _) if hooks::is_hook(target) => {
                // Hooks run only in full syncs, as in Argo CD.
                if request.selection.is_some() {
                    continue;
                }
                let (options, errors) = request.options.for_object(target);
                option_warnings(key, errors, &mut plan.warnings);
                for hook_type in hooks::hook_types(target) {
                    let Some(phase) = SyncPhase::of_hook(hook_type) else {
                        continue;
                    };
                    if phase == SyncPhase::PostDelete {
                        continue;
                    }
                    let mut object = target.clone();
                    let mut hook_key = key.clone();
                    if json::name(&object).is_empty() {
                        let generate_name =
                            json::str_at(&object, &["metadata", "generateName"]).to_string();
                        let name = generated_hook_name(
                            &generate_name,
                            request.revision,
                            phase,
                            request.started_at,
                        );
                        if let Some(metadata) = json::metadata_mut(&mut object) {
                            metadata.insert("name".into(), Value::String(name.clone()));
                        }
                        hook_key.name = name;
                    }
                    let task = SyncTask {
                        key: hook_key,
                        phase,
                        wave: hooks::wave(target),
                        action: TaskAction::Hook,
                        target: Some(object),
                        live: resource.live.clone(),
                        options: options.clone(),
                        delete_policies: hooks::delete_policies(target),
                        skip_reason: None,
                    };
                    if phase == SyncPhase::SyncFail {
                        plan.fail_tasks.push(task);
                    } else {
                        tasks.push(task);
                    }
                }
            }
            (Some(target), live) => {
                if !selected(key) {
                    continue;
                }
                let (options, errors) = request.options.for_object(target);
                option_warnings(key, errors, &mut plan.warnings);
                if options.apply_out_of_sync_only && !resource.out_of_sync && live.is_some() {
                    continue;
                }
                tasks.push(SyncTask {
                    key: key.clone(),
                    phase: SyncPhase::Sync,
                    wave: hooks::wave(target),
                    action: TaskAction::Apply,
                    target: Some(target.clone()),
                    live: live.clone(),
                    options,
                    delete_policies: Vec::new(),
                    skip_reason: None,
                });
            }
            (None, Some(live)) => {
                // Live hooks are cleaned up by their delete policies, never pruned.
                if hooks::is_hook(live) || hooks::is_skipped(live) || !selected(key) {
                    continue;
                }
                let (options, errors) = request.options.for_object(live);
                option_warnings(key, errors, &mut plan.warnings);
                let skip_reason = if !request.prune {
                    Some("ignored (requires pruning)".to_string())
                } else {
                    match options.prune {
                        DeletionOption::Disabled => Some("ignored (no prune)".to_string()),
                        DeletionOption::RequiresConfirmation if !request.prune_confirmed => {
                            Some("waiting for pruning confirmation".to_string())
                        }
                        _ => None,
                    }
                };
                tasks.push(SyncTask {
                    key: key.clone(),
                    phase: SyncPhase::Sync,
                    wave: hooks::wave(live),
                    action: TaskAction::Prune,
                    target: None,
                    live: Some(live.clone()),
                    options,
                    delete_policies: Vec::new(),
                    skip_reason,
                });
            }
            (None, None) => {}
        }
    }
    reorder_prune_waves(&mut tasks);
    tasks.sort_by(compare_tasks);
    plan.fail_tasks.sort_by(compare_tasks);
    plan.tasks = tasks;
    plan
}

/// Prunes run in the reverse order of creation: prune waves are mirrored (the lowest wave
/// with a prune swaps with the highest), and `PruneLast` prunes move after the last wave of
/// the Sync phase — Argo CD's rules.
fn reorder_prune_waves(tasks: &mut [SyncTask]) {
    let mut prune_waves: Vec<i64> = tasks
        .iter()
        .filter(|t| t.action == TaskAction::Prune)
        .map(|t| t.wave)
        .collect();
    prune_waves.sort_unstable();
    prune_waves.dedup();
    let mirrored = |wave: i64| {
        prune_waves
            .iter()
            .position(|w| *w == wave)
            .map(|i| prune_waves[prune_waves.len() - 1 - i])
            .unwrap_or(wave)
    };
    for task in tasks.iter_mut().filter(|t| t.action == TaskAction::Prune) {
        task.wave = mirrored(task.wave);
    }
    let last_sync_wave = tasks
        .iter()
        .filter(|t| t.phase == SyncPhase::Sync)
        .map(|t| t.wave)
        .max()
        .unwrap_or(0)
        .max(0)
        + 1;
    for task in tasks
        .iter_mut()
        .filter(|t| t.action == TaskAction::Prune && t.options.prune_last)
    {
        task.wave = last_sync_wave;
    }
}

/// PostDelete hooks of an Application's desired objects, in order.
pub fn plan_post_delete(targets: &[Value], revision: &str, started_at: i64) -> Vec<SyncTask> {
    let mut tasks: Vec<SyncTask> = targets
        .iter()
        .filter(|target| hooks::hook_types(target).contains(&HookType::PostDelete))
        .filter_map(|target| {
            let mut object = target.clone();
            if json::name(&object).is_empty() {
                let generate_name =
                    json::str_at(&object, &["metadata", "generateName"]).to_string();
                let name = generated_hook_name(
                    &generate_name,
                    revision,
                    SyncPhase::PostDelete,
                    started_at,
                );
                json::metadata_mut(&mut object)?.insert("name".into(), Value::String(name));
            }
            let key = ResourceKey::from_object(&object)?;
            Some(SyncTask {
                key,
                phase: SyncPhase::PostDelete,
                wave: hooks::wave(target),
                action: TaskAction::Hook,
                target: Some(object),
                live: None,
                options: SyncOptions::default(),
                delete_policies: hooks::delete_policies(target),
                skip_reason: None,
            })
        })
        .collect();
    tasks.sort_by(compare_tasks);
    tasks
}
