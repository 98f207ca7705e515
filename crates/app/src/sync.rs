//! Comparing an Application with its destination and running a sync operation on it.

use crate::AppError;
use crate::desired::{Desired, app_name};
use crate::status::{self, Comparison};
use plumb_engine::cluster::Cluster;
use plumb_engine::compare::{self, CompareRequest, LiveReader};
use plumb_engine::health::HealthAssessor;
use plumb_engine::settings::Settings;
use plumb_engine::sync::operation::{
    self, OperationPhase as EnginePhase, OperationResult, ResultStatus, SyncEvent, SyncRequest,
};
use plumb_engine::sync::{ResourceSelector, SyncOptions};
use plumb_model::{
    Application, Operation, OperationPhase, ResourceKey, ResourceResult, SyncOperationResult,
};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What every compare and sync of one destination needs.
#[derive(Clone, Copy)]
pub struct AppEnv<'a> {
    pub cluster: &'a Cluster,
    pub assessor: &'a HealthAssessor,
    pub settings: &'a Settings,
    /// Where compares and sync attempts read the live state, instead of listing the
    /// cluster (the controller's watch cache).
    pub live: Option<&'a Arc<dyn LiveReader>>,
}

/// How long and how wide a sync runs.
#[derive(Debug, Clone, Copy)]
pub struct SyncTuning {
    /// How long one wave (or hook) may take to become healthy (complete).
    pub wave_timeout: Duration,
    pub poll_interval: Duration,
    /// Concurrent writes within a wave and concurrent dry-runs of a compare.
    pub concurrency: usize,
}

impl Default for SyncTuning {
    fn default() -> Self {
        Self {
            wave_timeout: Duration::from_secs(300),
            poll_interval: Duration::from_millis(500),
            concurrency: 16,
        }
    }
}

/// The sync options in force: the app's, then `extra` (an operation's or a flag's).
pub fn sync_options(app: &Application, extra: &[String]) -> Result<SyncOptions, AppError> {
    let app_options = app
        .spec
        .sync_policy
        .as_ref()
        .map(|p| p.sync_options.as_slice())
        .unwrap_or_default();
    let all: Vec<&String> = app_options.iter().chain(extra).collect();
    SyncOptions::parse(&all).map_err(|e| AppError::InvalidSpec(format!("syncOptions: {e}")))
}

/// Compares the app's desired objects with the destination (read-only).
pub async fn compare(
    env: AppEnv<'_>,
    app: &Application,
    desired: &Desired,
    extra_options: &[String],
    tuning: SyncTuning,
) -> Result<Comparison, AppError> {
    let options = sync_options(app, extra_options)?;
    let compared = compare::compare(
        env.cluster,
        CompareRequest {
            app: app_name(app),
            destination_namespace: &app.spec.destination.namespace,
            desired: &desired.objects,
            settings: env.settings,
            app_ignore: &app.spec.ignore_differences,
            options: &options,
            concurrency: tuning.concurrency,
            live_reader: env.live.map(|reader| reader.as_ref()),
        },
    )
    .await?;
    Ok(status::build(app, desired, compared, env.assessor))
}

/// What a sync operation did, in the model's terms.
#[derive(Debug, Clone)]
pub struct SyncOutcome {
    pub phase: OperationPhase,
    pub message: String,
    pub result: SyncOperationResult,
    /// Retries made after the first attempt.
    pub retry_count: i64,
    /// The engine's own record (per-resource results with phases and waves).
    pub engine: OperationResult,
}

/// What one sync operation acts on.
#[derive(Clone, Copy)]
pub struct SyncInput<'a> {
    pub app: &'a Application,
    pub desired: &'a Desired,
    pub operation: &'a Operation,
    /// Also prune objects marked `Prune=confirm` (the user confirmed).
    pub prune_confirmed: bool,
}

/// Runs a sync operation to its end (or until `cancel`), with the operation's prune,
/// dry-run, selection, options and retry, falling back to the app's sync policy.
pub async fn sync(
    env: AppEnv<'_>,
    input: SyncInput<'_>,
    tuning: SyncTuning,
    cancel: &CancellationToken,
    events: &(dyn Fn(&SyncEvent) + Send + Sync),
) -> Result<SyncOutcome, AppError> {
    let SyncInput {
        app,
        desired,
        operation,
        prune_confirmed,
    } = input;
    let sync_op = operation.sync.clone().unwrap_or_default();
    let options = {
        let mut options = sync_options(app, &sync_op.sync_options)?;
        if sync_op.sync_strategy.as_ref().is_some_and(|s| {
            s.apply
                .as_ref()
                .or(s.hook.as_ref())
                .is_some_and(|a| a.force)
        }) {
            options.force = true;
        }
        options
    };
    let selection = if sync_op.resources.is_empty() {
        None
    } else {
        Some(
            sync_op
                .resources
                .iter()
                .map(|r| ResourceSelector {
                    group: r.group.clone(),
                    kind: r.kind.clone(),
                    namespace: (!r.namespace.is_empty()).then(|| r.namespace.clone()),
                    name: r.name.clone(),
                })
                .collect(),
        )
    };
    let policy = app.spec.sync_policy.as_ref();
    let mut request = SyncRequest::new(
        app_name(app),
        &app.spec.destination.namespace,
        desired.objects.clone(),
    );
    request.revision = desired.revision().to_string();
    request.settings = env.settings.clone();
    request.ignore_differences = app.spec.ignore_differences.clone();
    request.options = options;
    request.managed_namespace_metadata = policy.and_then(|p| p.managed_namespace_metadata.clone());
    request.prune = sync_op.prune;
    request.prune_confirmed = prune_confirmed;
    request.dry_run = sync_op.dry_run;
    request.selection = selection;
    request.retry = operation
        .retry
        .clone()
        .or_else(|| policy.and_then(|p| p.retry.clone()));
    request.wave_timeout = tuning.wave_timeout;
    request.poll_interval = tuning.poll_interval;
    request.concurrency = tuning.concurrency;
    request.live_reader = env.live.cloned();
    let engine = operation::run_sync(env.cluster, env.assessor, &request, cancel, events).await;
    Ok(outcome(
        app,
        desired,
        request.managed_namespace_metadata,
        engine,
    ))
}

fn outcome(
    app: &Application,
    desired: &Desired,
    managed_namespace_metadata: Option<plumb_model::ManagedNamespaceMetadata>,
    engine: OperationResult,
) -> SyncOutcome {
    // By group, kind and name: a desired object's namespace may be left to the default.
    let versions: std::collections::HashMap<(String, String, String), String> = desired
        .objects
        .iter()
        .filter_map(|object| {
            let key = ResourceKey::from_object(object)?;
            let api_version = object.get("apiVersion").and_then(Value::as_str)?;
            Some((
                (key.group, key.kind, key.name),
                api_version.rsplit('/').next().unwrap_or("").to_string(),
            ))
        })
        .collect();
    let resources = engine
        .resources
        .iter()
        .map(|r| ResourceResult {
            group: r.key.group.clone(),
            version: versions
                .get(&(r.key.group.clone(), r.key.kind.clone(), r.key.name.clone()))
                .cloned()
                .unwrap_or_default(),
            kind: r.key.kind.clone(),
            namespace: r.key.namespace.clone(),
            name: r.key.name.clone(),
            status: match r.status {
                ResultStatus::Synced => "Synced",
                ResultStatus::SyncFailed => "SyncFailed",
                ResultStatus::Pruned => "Pruned",
                ResultStatus::PruneSkipped => "PruneSkipped",
            }
            .to_string(),
            message: r.message.clone(),
            hook_type: if r.hook_phase.is_some() {
                r.phase.as_str().to_string()
            } else {
                String::new()
            },
            hook_phase: r
                .hook_phase
                .map(|p| format!("{p:?}"))
                .unwrap_or_else(|| "Running".to_string()),
            sync_phase: r.phase.as_str().to_string(),
        })
        .collect();
    let multi = !app.spec.sources.is_empty();
    let phase = match engine.phase {
        EnginePhase::Running => OperationPhase::Running,
        EnginePhase::Terminating => OperationPhase::Terminating,
        EnginePhase::Succeeded => OperationPhase::Succeeded,
        EnginePhase::Failed => OperationPhase::Failed,
        EnginePhase::Error => OperationPhase::Error,
    };
    let message = if phase == OperationPhase::Succeeded && engine.message.is_empty() {
        "successfully synced (all tasks run)".to_string()
    } else {
        engine.message.clone()
    };
    SyncOutcome {
        phase,
        message,
        result: SyncOperationResult {
            resources,
            revision: if multi {
                String::new()
            } else {
                desired.revision().to_string()
            },
            revisions: if multi {
                desired.revisions.clone()
            } else {
                Vec::new()
            },
            source: (!multi).then(|| desired.sources.first().cloned()).flatten(),
            sources: if multi {
                desired.sources.clone()
            } else {
                Vec::new()
            },
            managed_namespace_metadata,
        },
        retry_count: i64::from(engine.attempts.saturating_sub(1)),
        engine,
    }
}
