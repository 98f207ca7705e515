//! A sync operation: attempts, each one compare (every object dry-run) → plan → the plan's
//! steps carried out by the `Runner`, SyncFail hooks on failure; retries with backoff
//! between attempts and termination through a cancellation token. Also the PostDelete hooks
//! run when an app is deleted.

use super::options::SyncOptions;
use super::plan::{
    self, PlanRequest, PlanResource, ResourceSelector, SyncPhase, SyncTask, TaskAction,
};
use super::retry::{self, Backoff};
use super::runner::Runner;
use crate::cluster::{Cluster, ClusterError};
use crate::compare::{CompareFailure, CompareRequest, DryRunPurpose, compare_for};
use crate::diff::{self, AppComparison, ConditionKind, Scope};
use crate::health::HealthAssessor;
use crate::json;
use crate::settings::Settings;
use crate::tracking;
use plumb_model::{
    ManagedNamespaceMetadata, ResourceIgnoreDifferences, ResourceKey, RetryStrategy, SyncStatusCode,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Everything one sync operation needs.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub app: String,
    /// The revision synced (names generated hooks, shown in results).
    pub revision: String,
    pub destination_namespace: String,
    /// The rendered desired objects.
    pub desired: Vec<Value>,
    pub settings: Settings,
    /// The Application's own `ignoreDifferences` (the system-wide ones are in `settings`).
    pub ignore_differences: Vec<ResourceIgnoreDifferences>,
    pub options: SyncOptions,
    pub managed_namespace_metadata: Option<ManagedNamespaceMetadata>,
    pub prune: bool,
    pub prune_confirmed: bool,
    pub dry_run: bool,
    pub selection: Option<Vec<ResourceSelector>>,
    pub retry: Option<RetryStrategy>,
    /// How long one wave (or hook) may take to become healthy (complete).
    pub wave_timeout: Duration,
    /// Concurrent writes within one wave.
    pub concurrency: usize,
    /// How often health is polled while waiting.
    pub poll_interval: Duration,
    /// Where each attempt reads the live state from, instead of listing the cluster.
    pub live_reader: Option<std::sync::Arc<dyn crate::compare::LiveReader>>,
}

impl SyncRequest {
    pub fn new(
        app: impl Into<String>,
        destination_namespace: impl Into<String>,
        desired: Vec<Value>,
    ) -> Self {
        Self {
            app: app.into(),
            revision: String::new(),
            destination_namespace: destination_namespace.into(),
            desired,
            settings: Settings::default(),
            ignore_differences: Vec::new(),
            options: SyncOptions::default(),
            managed_namespace_metadata: None,
            prune: false,
            prune_confirmed: false,
            dry_run: false,
            selection: None,
            retry: None,
            wave_timeout: Duration::from_secs(300),
            concurrency: 16,
            poll_interval: Duration::from_millis(500),
            live_reader: None,
        }
    }
}

/// The phase of an operation (Argo CD's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum OperationPhase {
    Running,
    Terminating,
    Succeeded,
    Failed,
    Error,
}

/// The outcome for one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ResultStatus {
    Synced,
    SyncFailed,
    Pruned,
    PruneSkipped,
}

/// A hook's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum HookPhase {
    Running,
    Succeeded,
    Failed,
    Terminating,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResourceResult {
    pub key: ResourceKey,
    pub phase: SyncPhase,
    pub wave: i64,
    pub action: TaskAction,
    pub status: ResultStatus,
    pub hook_phase: Option<HookPhase>,
    pub message: String,
}

/// What an operation did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OperationResult {
    pub phase: OperationPhase,
    pub message: String,
    pub resources: Vec<ResourceResult>,
    /// Attempts made (1 + retries).
    pub attempts: u32,
    pub dry_run: bool,
    /// Conditions found on the way (warnings, invalid objects).
    pub conditions: Vec<diff::Condition>,
    /// The comparison made by the last attempt before it wrote anything.
    #[serde(skip)]
    pub comparison: Option<AppComparison>,
}

/// Progress, for live output.
#[derive(Debug, Clone)]
pub enum SyncEvent {
    Attempt(u32),
    Step {
        phase: SyncPhase,
        wave: i64,
        tasks: usize,
    },
    Result(ResourceResult),
    Waiting(String),
    Retrying {
        delay: Duration,
        reason: String,
    },
}

struct Attempt {
    phase: OperationPhase,
    message: String,
    results: Vec<ResourceResult>,
    conditions: Vec<diff::Condition>,
    comparison: Option<AppComparison>,
}

impl Attempt {
    fn failed(phase: OperationPhase, message: impl Into<String>) -> Self {
        Self {
            phase,
            message: message.into(),
            results: Vec::new(),
            conditions: Vec::new(),
            comparison: None,
        }
    }
}

/// Joins failure reasons, naming at most a few so a mass failure stays readable (every
/// resource's own message is in its result).
pub(super) fn summarize(reasons: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = reasons
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if reasons.len() > SHOWN {
        text.push_str(&format!(" (and {} more)", reasons.len() - SHOWN));
    }
    text
}

pub(super) fn error_phase(error: &ClusterError) -> OperationPhase {
    if error.is_transport() {
        OperationPhase::Error
    } else {
        OperationPhase::Failed
    }
}

/// Runs a sync operation to its end (or until `cancel`), retrying per `request.retry`.
pub async fn run_sync(
    cluster: &Cluster,
    assessor: &HealthAssessor,
    request: &SyncRequest,
    cancel: &CancellationToken,
    events: &(dyn Fn(&SyncEvent) + Send + Sync),
) -> OperationResult {
    let backoff = match request
        .retry
        .as_ref()
        .map(Backoff::from_strategy)
        .transpose()
    {
        Ok(backoff) => backoff,
        Err(error) => {
            return OperationResult {
                phase: OperationPhase::Error,
                message: format!("retry backoff: {error}"),
                resources: Vec::new(),
                attempts: 0,
                dry_run: request.dry_run,
                conditions: Vec::new(),
                comparison: None,
            };
        }
    };
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        events(&SyncEvent::Attempt(attempts));
        let outcome = attempt(cluster, assessor, request, cancel, events).await;
        let retryable = matches!(
            outcome.phase,
            OperationPhase::Failed | OperationPhase::Error
        ) && !request.dry_run
            && !cancel.is_cancelled();
        let retries_done = attempts - 1;
        if let (true, Some(strategy), Some(backoff)) = (retryable, &request.retry, &backoff)
            && retry::may_retry(strategy, retries_done)
        {
            let delay = backoff.delay(retries_done);
            events(&SyncEvent::Retrying {
                delay,
                reason: outcome.message.clone(),
            });
            tokio::select! {
                _ = tokio::time::sleep(delay) => continue,
                _ = cancel.cancelled() => {}
            }
        }
        let (phase, message) =
            if cancel.is_cancelled() && outcome.phase != OperationPhase::Succeeded {
                (OperationPhase::Failed, "Operation terminated".to_string())
            } else {
                (outcome.phase, outcome.message)
            };
        return OperationResult {
            phase,
            message,
            resources: outcome.results,
            attempts,
            dry_run: request.dry_run,
            conditions: outcome.conditions,
            comparison: outcome.comparison,
        };
    }
}

async fn attempt(
    cluster: &Cluster,
    assessor: &HealthAssessor,
    request: &SyncRequest,
    cancel: &CancellationToken,
    events: &(dyn Fn(&SyncEvent) + Send + Sync),
) -> Attempt {
    let started_at = time::OffsetDateTime::now_utc().unix_timestamp();
    if !request.dry_run
        && request.options.create_namespace
        && !request.destination_namespace.is_empty()
        && let Err(error) = ensure_namespace(cluster, request).await
    {
        return Attempt::failed(
            error_phase(&error),
            format!(
                "creating namespace {}: {error}",
                request.destination_namespace
            ),
        );
    }
    let compared = match compare_for(
        cluster,
        CompareRequest {
            app: &request.app,
            destination_namespace: &request.destination_namespace,
            desired: &request.desired,
            settings: &request.settings,
            app_ignore: &request.ignore_differences,
            options: &request.options,
            concurrency: request.concurrency,
            live_reader: request.live_reader.as_deref(),
        },
        DryRunPurpose::Sync,
    )
    .await
    {
        Ok(compared) => compared,
        Err(CompareFailure::Cluster(error)) => {
            return Attempt::failed(error_phase(&error), format!("comparing: {error}"));
        }
        Err(CompareFailure::Invalid(message)) => {
            return Attempt::failed(OperationPhase::Failed, message);
        }
    };
    let mut outcome = Attempt {
        phase: OperationPhase::Running,
        message: String::new(),
        results: Vec::new(),
        conditions: compared.comparison.conditions.clone(),
        comparison: Some(compared.comparison.clone()),
    };
    if !compared.prepared.errors.is_empty() {
        outcome.phase = OperationPhase::Failed;
        outcome.message = format!(
            "one or more objects are invalid: {}",
            summarize(
                &compared
                    .prepared
                    .errors
                    .iter()
                    .map(|c| c.message.clone())
                    .collect::<Vec<_>>()
            )
        );
        return outcome;
    }
    if !compared.dry_run_errors.is_empty() {
        for (key, message) in &compared.dry_run_errors {
            let object = compared.prepared.objects.get(key);
            outcome.results.push(ResourceResult {
                key: key.clone(),
                phase: SyncPhase::Sync,
                wave: object.map(crate::hooks::wave).unwrap_or(0),
                action: TaskAction::Apply,
                status: ResultStatus::SyncFailed,
                hook_phase: None,
                message: message.clone(),
            });
        }
        outcome.phase = OperationPhase::Failed;
        outcome.message = format!(
            "one or more objects failed to apply (dry run), reason: {}",
            summarize(
                &compared
                    .dry_run_errors
                    .iter()
                    .map(|(key, message)| format!("{key}: {message}"))
                    .collect::<Vec<_>>()
            )
        );
        return outcome;
    }
    let shared: Vec<&str> = compared
        .comparison
        .conditions
        .iter()
        .filter(|c| c.kind == ConditionKind::SharedResourceWarning)
        .map(|c| c.message.as_str())
        .collect();
    if request.options.fail_on_shared_resource && !shared.is_empty() {
        outcome.phase = OperationPhase::Failed;
        outcome.message = format!("shared resource found: {}", shared.join("; "));
        return outcome;
    }
    // What to plan with: desired objects (ignored fields kept live when asked), live ones.
    let status_by_key: HashMap<&ResourceKey, SyncStatusCode> = compared
        .comparison
        .resources
        .iter()
        .map(|r| (&r.key, r.status))
        .collect();
    let mut resources = Vec::new();
    for (key, object) in &compared.prepared.objects {
        let live = compared.live.get(key);
        let mut target = object.clone();
        if request.options.respect_ignore_differences
            && let Some(live) = live
            && let Err(error) = compared.ignore.respect(key, &mut target, live)
        {
            return Attempt::failed(OperationPhase::Failed, error.to_string());
        }
        resources.push(PlanResource {
            key: key.clone(),
            target: Some(target),
            live: live.cloned(),
            out_of_sync: status_by_key.get(key) != Some(&SyncStatusCode::Synced),
        });
    }
    for resource in compared
        .comparison
        .resources
        .iter()
        .filter(|r| r.requires_pruning)
    {
        if let Some(live) = compared.live.get(&resource.key) {
            resources.push(PlanResource {
                key: resource.key.clone(),
                target: None,
                live: Some(live.clone()),
                out_of_sync: resource.status != SyncStatusCode::Synced,
            });
        }
    }
    let sync_plan = plan::plan(&PlanRequest {
        revision: &request.revision,
        started_at,
        options: &request.options,
        prune: request.prune,
        prune_confirmed: request.prune_confirmed,
        selection: request.selection.as_deref(),
        resources: &resources,
    });
    outcome
        .conditions
        .extend(sync_plan.warnings.iter().map(|w| diff::Condition {
            kind: ConditionKind::InvalidSpecError,
            message: w.clone(),
        }));
    if request.dry_run {
        for task in sync_plan.tasks.iter() {
            let result = dry_run_result(task);
            events(&SyncEvent::Result(result.clone()));
            outcome.results.push(result);
        }
        outcome.phase = OperationPhase::Succeeded;
        outcome.message = "successfully synced (dry run)".to_string();
        return outcome;
    }
    let runner = Runner {
        cluster,
        assessor,
        request,
        cancel,
        events,
        strictly_dry_run: compared
            .strictly_dry_run
            .iter()
            .filter_map(|key| Some((key, compared.prepared.objects.get(key)?)))
            .collect(),
    };
    let steps = sync_plan.steps();
    let mut failure: Option<(OperationPhase, String)> = None;
    for (index, step) in steps.iter().enumerate() {
        if cancel.is_cancelled() {
            failure = Some((OperationPhase::Failed, "Operation terminated".to_string()));
            break;
        }
        events(&SyncEvent::Step {
            phase: step.phase,
            wave: step.wave,
            tasks: step.tasks.len(),
        });
        let gate_health = plan::step_gates_health(
            index,
            steps.len(),
            step.tasks.iter().any(|t| t.action == TaskAction::Hook),
        );
        if let Err(error) = runner
            .run_step(&step.tasks, gate_health, &mut outcome.results)
            .await
        {
            failure = Some(error);
            break;
        }
    }
    match failure {
        None => {
            outcome.phase = OperationPhase::Succeeded;
            outcome.message = "successfully synced (all tasks run)".to_string();
        }
        Some((phase, message)) => {
            // SyncFail hooks run on failure, then the operation is failed.
            if !sync_plan.fail_tasks.is_empty() && !cancel.is_cancelled() {
                for step in sync_plan.fail_steps() {
                    events(&SyncEvent::Step {
                        phase: step.phase,
                        wave: step.wave,
                        tasks: step.tasks.len(),
                    });
                    if runner
                        .run_step(&step.tasks, false, &mut outcome.results)
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
            outcome.phase = phase;
            outcome.message = message;
        }
    }
    outcome
}

/// Runs an app's PostDelete hooks, for when the Application is deleted (after its
/// resources are gone): creates them in wave order, waits for each to complete and applies
/// their delete policies. A failed hook fails the operation.
pub async fn run_post_delete(
    cluster: &Cluster,
    assessor: &HealthAssessor,
    request: &SyncRequest,
    cancel: &CancellationToken,
    events: &(dyn Fn(&SyncEvent) + Send + Sync),
) -> OperationResult {
    let finish = |phase, message: String, resources| OperationResult {
        phase,
        message,
        resources,
        attempts: 1,
        dry_run: request.dry_run,
        conditions: Vec::new(),
        comparison: None,
    };
    let scopes = match cluster.scopes(&request.desired).await {
        Ok(scopes) => scopes,
        Err(error) => return finish(error_phase(&error), error.to_string(), Vec::new()),
    };
    let scope = |group: &str, kind: &str| {
        scopes
            .get(&(group.to_string(), kind.to_string()))
            .copied()
            .unwrap_or(Scope::Unknown)
    };
    let prepared = diff::prepare_desired(
        request.desired.clone(),
        &request.app,
        &request.destination_namespace,
        request.settings.tracking_method,
        &scope,
    );
    let targets: Vec<Value> = prepared.objects.values().cloned().collect();
    let started_at = time::OffsetDateTime::now_utc().unix_timestamp();
    let hooks = plan::SyncPlan {
        tasks: plan::plan_post_delete(&targets, &request.revision, started_at),
        fail_tasks: Vec::new(),
        warnings: Vec::new(),
    };
    // PostDelete hooks are not dry-run, so none of them is written without validation.
    let runner = Runner {
        cluster,
        assessor,
        request,
        cancel,
        events,
        strictly_dry_run: HashMap::new(),
    };
    let mut results = Vec::new();
    for step in hooks.steps() {
        events(&SyncEvent::Step {
            phase: step.phase,
            wave: step.wave,
            tasks: step.tasks.len(),
        });
        if let Err((phase, message)) = runner.run_step(&step.tasks, false, &mut results).await {
            return finish(phase, message, results);
        }
    }
    finish(
        OperationPhase::Succeeded,
        format!("{} PostDelete hook(s) completed", hooks.tasks.len()),
        results,
    )
}

fn dry_run_result(task: &SyncTask) -> ResourceResult {
    let (status, message) = match (task.action, &task.skip_reason) {
        (TaskAction::Prune, Some(reason)) => (ResultStatus::PruneSkipped, reason.clone()),
        (TaskAction::Prune, None) => (ResultStatus::Pruned, "pruned (dry run)".to_string()),
        (_, _) => (
            ResultStatus::Synced,
            format!("{}/{} configured (dry run)", task.key.kind, task.key.name),
        ),
    };
    ResourceResult {
        key: task.key.clone(),
        phase: task.phase,
        wave: task.wave,
        action: task.action,
        status,
        hook_phase: None,
        message,
    }
}

async fn ensure_namespace(cluster: &Cluster, request: &SyncRequest) -> Result<(), ClusterError> {
    let name = &request.destination_namespace;
    let mut namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    match &request.managed_namespace_metadata {
        Some(metadata) => {
            // A namespace with managed metadata is tracked by the app, as in Argo CD.
            if let Some(meta) = json::metadata_mut(&mut namespace) {
                if !metadata.labels.is_empty() {
                    meta.insert("labels".into(), json!(metadata.labels));
                }
                if !metadata.annotations.is_empty() {
                    meta.insert("annotations".into(), json!(metadata.annotations));
                }
            }
            tracking::set_tracking(
                &mut namespace,
                &request.app,
                request.settings.tracking_method,
            );
            cluster.apply(&namespace, true, false).await?;
        }
        None => {
            if cluster.get(&namespace).await?.is_none() {
                cluster.apply(&namespace, true, false).await?;
            }
        }
    }
    Ok(())
}
