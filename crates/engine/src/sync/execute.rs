//! Sync execution against a cluster: dry-run everything, then phases → waves → kind order,
//! with health gating between waves, hooks and their delete policies, SyncFail hooks on
//! failure, prune, retry with backoff and termination.

use super::options::{PropagationPolicy, SyncOptions};
use super::plan::{
    self, PlanRequest, PlanResource, ResourceSelector, SyncPhase, SyncTask, TaskAction,
    TaskProgress,
};
use super::retry::{self, Backoff};
use crate::cluster::{ApplyMode, ClientApplyOutcome, Cluster, ClusterError, crd_scopes};
use crate::diff::ignore::IgnoreRules;
use crate::diff::{self, AppComparison, CompareSettings, ConditionKind, Scope};
use crate::health::HealthAssessor;
use crate::hooks::HookDeletePolicy;
use crate::json;
use crate::settings::Settings;
use crate::tracking;
use futures::StreamExt;
use plumb_model::{
    ManagedNamespaceMetadata, ResourceIgnoreDifferences, ResourceKey, RetryStrategy, SyncStatusCode,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};
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
fn summarize(reasons: &[String]) -> String {
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

fn error_phase(error: &ClusterError) -> OperationPhase {
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

/// Validates, prepares and compares the desired objects (dry-running each through the
/// server); shared by `plumb diff` and each sync attempt.
pub struct Compared {
    pub prepared: diff::PreparedDesired,
    pub live: BTreeMap<ResourceKey, Value>,
    pub comparison: AppComparison,
    /// Objects the server refused in the dry-run, with its message.
    pub dry_run_errors: BTreeMap<ResourceKey, String>,
    /// Objects this compare dry-ran as server-side applies under `fieldValidation=Strict`
    /// and the server accepted: writing the same body again needs no second validation.
    pub strictly_dry_run: HashSet<ResourceKey>,
    pub ignore: IgnoreRules,
}

/// What to compare: an app's desired objects and how to read them.
#[derive(Debug, Clone, Copy)]
pub struct CompareRequest<'a> {
    pub app: &'a str,
    pub destination_namespace: &'a str,
    pub desired: &'a [Value],
    pub settings: &'a Settings,
    /// The Application's own `ignoreDifferences`.
    pub app_ignore: &'a [ResourceIgnoreDifferences],
    pub options: &'a SyncOptions,
    /// Concurrent dry-run requests.
    pub concurrency: usize,
}

/// Why desired objects are dry-run, which decides what a dry-run "not found" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DryRunPurpose {
    /// A read-only compare (app status, `plumb diff`): an object whose namespace does not
    /// exist yet is simply missing, as Argo CD shows it (OutOfSync, would be created).
    Compare,
    /// The dry-run step of a sync operation: an object that cannot be written fails the
    /// operation before anything is written.
    Sync,
}

/// Compares an app against the cluster (read-only: objects whose namespace does not exist
/// yet compare structurally, as new objects).
pub async fn compare(
    cluster: &Cluster,
    request: CompareRequest<'_>,
) -> Result<Compared, CompareFailure> {
    compare_for(cluster, request, DryRunPurpose::Compare).await
}

async fn compare_for(
    cluster: &Cluster,
    request: CompareRequest<'_>,
    purpose: DryRunPurpose,
) -> Result<Compared, CompareFailure> {
    let CompareRequest {
        app,
        destination_namespace,
        desired,
        settings,
        app_ignore,
        options,
        concurrency,
    } = request;
    // One discovery answers both the kinds' scopes and which kinds to list.
    let discovery = cluster
        .discover_all()
        .await
        .map_err(CompareFailure::Cluster)?;
    let scopes = cluster
        .scopes(desired)
        .await
        .map_err(CompareFailure::Cluster)?;
    let scope = |group: &str, kind: &str| {
        scopes
            .get(&(group.to_string(), kind.to_string()))
            .copied()
            .unwrap_or(Scope::Unknown)
    };
    let prepared = diff::prepare_desired(
        desired.to_vec(),
        app,
        destination_namespace,
        settings.tracking_method,
        &scope,
    );
    let ignore = IgnoreRules::new(
        settings
            .ignore_differences
            .iter()
            .cloned()
            .chain(app_ignore.iter().cloned()),
    )
    .map_err(|e| CompareFailure::Invalid(e.to_string()))?;
    let namespaces = if destination_namespace.is_empty() {
        Vec::new()
    } else {
        vec![destination_namespace.to_string()]
    };
    // The desired keys' live objects first: the dry-runs need them. The app's objects
    // elsewhere (prune candidates, found through metadata lists) are read meanwhile.
    let plan = cluster.plan_live_state(
        &discovery,
        app,
        settings.tracking_method,
        &prepared.objects,
        &namespaces,
    );
    let declared = cluster
        .declared_live(&plan, &prepared.objects)
        .await
        .map_err(CompareFailure::Cluster)?;
    let on_declared = LiveCompare {
        app,
        destination_namespace,
        desired,
        prepared: &prepared,
        live: &declared,
        ignore: &ignore,
        settings,
        options,
        concurrency,
    };
    let (dry_runs, tracked) = futures::join!(
        dry_run_desired(cluster, on_declared, purpose),
        cluster.tracked_live(&plan, &prepared.objects)
    );
    let dry_runs = dry_runs?;
    let live = crate::cluster::merge_live(declared, tracked.map_err(CompareFailure::Cluster)?);
    // The same request as `on_declared`, on the whole live state.
    let on_everything = LiveCompare {
        app,
        destination_namespace,
        desired,
        prepared: &prepared,
        live: &live,
        ignore: &ignore,
        settings,
        options,
        concurrency,
    };
    let dry_run = finish_compare(cluster, on_everything, dry_runs);
    Ok(Compared {
        prepared,
        live,
        comparison: dry_run.comparison,
        dry_run_errors: dry_run.errors,
        strictly_dry_run: dry_run.strictly_dry_run,
        ignore,
    })
}

/// The inputs of [`compare_live`].
#[derive(Clone, Copy)]
pub struct LiveCompare<'a> {
    pub app: &'a str,
    pub destination_namespace: &'a str,
    /// The rendered objects (CRDs among them tell which kinds this sync creates).
    pub desired: &'a [Value],
    pub prepared: &'a diff::PreparedDesired,
    pub live: &'a BTreeMap<ResourceKey, Value>,
    pub ignore: &'a IgnoreRules,
    pub settings: &'a Settings,
    pub options: &'a SyncOptions,
    pub concurrency: usize,
}

/// Compares prepared desired objects with a given live state: dry-runs what the compare
/// cache cannot answer, then compares. With an unchanged app and live state it sends no
/// request at all. Read-only, like [`compare`].
pub async fn compare_live(
    cluster: &Cluster,
    request: LiveCompare<'_>,
) -> Result<(AppComparison, BTreeMap<ResourceKey, String>), CompareFailure> {
    compare_live_for(cluster, request, DryRunPurpose::Compare)
        .await
        .map(|dry_run| (dry_run.comparison, dry_run.errors))
}

/// What the dry-runs of a compare found.
struct DryRunOutcome {
    comparison: AppComparison,
    /// Objects the server refused, with its message.
    errors: BTreeMap<ResourceKey, String>,
    /// Objects accepted by a server-side-apply dry-run under `fieldValidation=Strict`.
    strictly_dry_run: HashSet<ResourceKey>,
}

async fn compare_live_for(
    cluster: &Cluster,
    request: LiveCompare<'_>,
    purpose: DryRunPurpose,
) -> Result<DryRunOutcome, CompareFailure> {
    let dry_runs = dry_run_desired(cluster, request, purpose).await?;
    Ok(finish_compare(cluster, request, dry_runs))
}

/// The server's answers to the dry-runs of an app's desired objects.
struct DryRuns {
    predicted: HashMap<ResourceKey, Value>,
    errors: BTreeMap<ResourceKey, String>,
    strictly_dry_run: HashSet<ResourceKey>,
}

/// What a compare holds its results to: the app, tracking, ignore rules and apply mode.
fn compare_settings(request: &LiveCompare<'_>) -> CompareSettings {
    CompareSettings {
        app: request.app.to_string(),
        tracking_method: request.settings.tracking_method,
        compare_options: request.settings.compare_options,
        ignore: request.ignore.clone(),
        server_side_apply: request.options.server_side_apply,
        validate: request.options.validate,
    }
}

/// Compares the app with `request.live`, given the dry-runs' answers.
fn finish_compare(cluster: &Cluster, request: LiveCompare<'_>, dry_runs: DryRuns) -> DryRunOutcome {
    let comparison = diff::compare_app(
        request.prepared,
        request.live,
        &dry_runs.predicted,
        &compare_settings(&request),
        Some(cluster.compare_results()),
    );
    DryRunOutcome {
        comparison,
        errors: dry_runs.errors,
        strictly_dry_run: dry_runs.strictly_dry_run,
    }
}

/// Dry-runs the desired objects the compare cache cannot answer. `request.live` needs to
/// hold only the desired keys' live objects.
async fn dry_run_desired(
    cluster: &Cluster,
    request: LiveCompare<'_>,
    purpose: DryRunPurpose,
) -> Result<DryRuns, CompareFailure> {
    let compare_settings = compare_settings(&request);
    let LiveCompare {
        destination_namespace,
        desired,
        prepared,
        live,
        options,
        concurrency,
        ..
    } = request;
    // Kinds and namespaces this sync creates: their objects cannot be dry-run yet.
    let crd_kinds: HashSet<(String, String)> = crd_scopes(desired).into_keys().collect();
    let mut new_namespaces: HashSet<String> = prepared
        .objects
        .iter()
        .filter(|(k, _)| k.group.is_empty() && k.kind == "Namespace")
        .map(|(k, _)| k.name.clone())
        .collect();
    if options.create_namespace && !destination_namespace.is_empty() {
        new_namespaces.insert(destination_namespace.to_string());
    }
    let fingerprint = diff::settings_fingerprint(&compare_settings);
    let results = cluster.compare_results();
    let dry_runs = futures::stream::iter(prepared.objects.iter().filter(|(key, object)| {
        // Hooks are not dry-run; neither is what an unchanged compare already answered.
        !crate::hooks::is_hook(object)
            && !results.is_fresh(
                key,
                live.get(*key),
                &diff::object_hash(object),
                &fingerprint,
            )
    }))
    .map(|(key, object)| {
        let live_object = live.get(key);
        let (object_options, _) = options.for_object(object);
        let mode = ApplyMode {
            server_side: object_options.server_side_apply,
            validate: object_options.validate,
        };
        async move {
            if purpose == DryRunPurpose::Sync
                && live_object.is_none()
                && mode.server_side
                && mode.validate
                && !cluster.is_cached(key, object, None, mode)
            {
                // A new object in a sync: the server must accept it before anything is
                // written, but its prediction is not needed (the object is missing either
                // way, and a cached prediction for "absent" is never asked again once it is
                // written), so only the verdict is read.
                let outcome = cluster
                    .check_create(object, object_options.validate)
                    .await
                    .map(|()| None);
                return (key.clone(), object_options, mode, outcome);
            }
            let outcome = cluster
                .predict(key, object, live_object, mode)
                .await
                .map(Some);
            (key.clone(), object_options, mode, outcome)
        }
    })
    .buffer_unordered(concurrency.max(1))
    .collect::<Vec<_>>()
    .await;
    let absent_namespaces = match purpose {
        DryRunPurpose::Compare => {
            // Namespaces of objects the server did not find: a read-only compare asks once
            // per namespace whether it exists (only on this error path, so an unchanged app
            // still sends nothing).
            let candidates: BTreeSet<&str> = dry_runs
                .iter()
                .filter(|(key, _, _, outcome)| {
                    outcome.as_ref().is_err_and(ClusterError::is_not_found)
                        && !key.namespace.is_empty()
                        && !new_namespaces.contains(&key.namespace)
                })
                .map(|(key, _, _, _)| key.namespace.as_str())
                .collect();
            absent_namespaces(cluster, candidates).await?
        }
        DryRunPurpose::Sync => HashSet::new(),
    };
    let mut predicted = HashMap::new();
    let mut dry_run_errors = BTreeMap::new();
    let mut strictly_dry_run = HashSet::new();
    for (key, object_options, mode, outcome) in dry_runs {
        if outcome.is_ok() && mode.server_side && mode.validate {
            strictly_dry_run.insert(key.clone());
        }
        match outcome {
            Ok(Some(value)) => {
                predicted.insert(key, value);
            }
            Ok(None) => {}
            Err(error) if error.is_transport() => return Err(CompareFailure::Cluster(error)),
            Err(error) => {
                let kind_created_here = crd_kinds.contains(&(key.group.clone(), key.kind.clone()));
                let namespace_created_here = new_namespaces.contains(&key.namespace);
                let namespace_absent = absent_namespaces.contains(&key.namespace);
                let missing =
                    matches!(error, ClusterError::UnknownKind { .. }) || error.is_not_found();
                if missing
                    && (kind_created_here
                        || namespace_created_here
                        || namespace_absent
                        || object_options.skip_dry_run_on_missing_resource)
                {
                    // Structural fallback: compare without the server's prediction.
                    continue;
                }
                if object_options.force && error.is_invalid() && live.contains_key(&key) {
                    // Force: the object will be deleted and created again, so a change the
                    // server refuses in place (an immutable field) is not an error.
                    continue;
                }
                dry_run_errors.insert(key, error.to_string());
            }
        }
    }
    Ok(DryRuns {
        predicted,
        errors: dry_run_errors,
        strictly_dry_run,
    })
}

/// Which of `namespaces` do not exist on the cluster. A namespace that cannot be read for
/// another reason (e.g. forbidden) counts as existing, so the object's own dry-run error is
/// reported rather than hidden.
async fn absent_namespaces(
    cluster: &Cluster,
    namespaces: BTreeSet<&str>,
) -> Result<HashSet<String>, CompareFailure> {
    let mut absent = HashSet::new();
    for name in namespaces {
        let namespace =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        match cluster.get(&namespace).await {
            Ok(None) => {
                absent.insert(name.to_string());
            }
            Ok(Some(_)) => {}
            Err(error) if error.is_transport() => return Err(CompareFailure::Cluster(error)),
            Err(_) => {}
        }
    }
    Ok(absent)
}

#[derive(Debug, thiserror::Error)]
pub enum CompareFailure {
    #[error(transparent)]
    Cluster(ClusterError),
    #[error("{0}")]
    Invalid(String),
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

struct Runner<'a> {
    cluster: &'a Cluster,
    assessor: &'a HealthAssessor,
    request: &'a SyncRequest,
    cancel: &'a CancellationToken,
    events: &'a (dyn Fn(&SyncEvent) + Send + Sync),
    /// The bodies this attempt's dry-run held to `fieldValidation=Strict` (see
    /// [`Runner::write`]).
    strictly_dry_run: HashMap<&'a ResourceKey, &'a Value>,
}

type StepFailure = (OperationPhase, String);

impl Runner<'_> {
    /// Runs one (phase, wave): kinds in order, the objects of one kind concurrently; then
    /// waits for hooks to finish and, when `gate_health`, for the wave to be healthy.
    async fn run_step(
        &self,
        tasks: &[&SyncTask],
        gate_health: bool,
        results: &mut Vec<ResourceResult>,
    ) -> Result<(), StepFailure> {
        let mut batches: Vec<Vec<&SyncTask>> = Vec::new();
        for task in tasks {
            match batches.last_mut() {
                Some(batch)
                    if plan::kind_rank(&batch[0].key.kind) == plan::kind_rank(&task.key.kind)
                        && batch[0].key.kind == task.key.kind =>
                {
                    batch.push(task)
                }
                _ => batches.push(vec![task]),
            }
        }
        let mut written: Vec<&SyncTask> = Vec::new();
        for batch in batches {
            let outcomes: Vec<(ResourceResult, Option<ClusterError>)> =
                futures::stream::iter(batch.iter())
                    .map(|task| self.execute(task))
                    .buffer_unordered(self.request.concurrency.max(1))
                    .collect()
                    .await;
            let mut failed = Vec::new();
            let mut transport = None;
            for (result, error) in outcomes {
                (self.events)(&SyncEvent::Result(result.clone()));
                if result.status == ResultStatus::SyncFailed {
                    failed.push(format!("{}: {}", result.key, result.message));
                }
                if let Some(error) = error
                    && error.is_transport()
                {
                    transport = Some(error);
                }
                results.push(result);
            }
            if let Some(error) = transport {
                return Err((OperationPhase::Error, error.to_string()));
            }
            if !failed.is_empty() {
                return Err((
                    OperationPhase::Failed,
                    format!(
                        "one or more objects failed to apply, reason: {}",
                        summarize(&failed)
                    ),
                ));
            }
            if batch[0].key.kind == "CustomResourceDefinition"
                && batch[0].action != TaskAction::Prune
            {
                self.wait_crds_established(&batch).await?;
            }
            written.extend(
                batch
                    .iter()
                    .filter(|t| t.skip_reason.is_none() && t.action != TaskAction::Prune),
            );
        }
        self.wait(&written, gate_health, results).await?;
        let pruned: Vec<&SyncTask> = tasks
            .iter()
            .copied()
            .filter(|t| t.action == TaskAction::Prune && t.skip_reason.is_none())
            .collect();
        self.wait_pruned(&pruned).await
    }

    /// Waits until pruned objects that are still being deleted (a deletionTimestamp, held by
    /// finalizers such as foreground deletion's) are gone, as gitops-engine does before it
    /// starts the next wave or ends the operation ("waiting for deletion of …").
    async fn wait_pruned(&self, pruned: &[&SyncTask]) -> Result<(), StepFailure> {
        let deadline = Instant::now() + self.request.wave_timeout;
        let mut pending: Vec<&SyncTask> = pruned.to_vec();
        while !pending.is_empty() {
            if self.cancel.is_cancelled() {
                return Err((OperationPhase::Failed, "Operation terminated".to_string()));
            }
            let mut still = Vec::new();
            for task in pending {
                let Some(pruned_object) = &task.live else {
                    continue;
                };
                let now = self
                    .cluster
                    .get(pruned_object)
                    .await
                    .map_err(|e| (error_phase(&e), e.to_string()))?;
                let uid = |o: &Value| json::str_at(o, &["metadata", "uid"]).to_string();
                // Gone, or replaced by a new object of the same name: done.
                if let Some(object) = now
                    && uid(&object) == uid(pruned_object)
                    && json::at(&object, &["metadata", "deletionTimestamp"]).is_some()
                {
                    still.push(task);
                }
            }
            pending = still;
            let Some(first) = pending.first() else {
                break;
            };
            if Instant::now() > deadline {
                let names: Vec<String> = pending.iter().map(|t| t.key.to_string()).collect();
                return Err((
                    OperationPhase::Failed,
                    format!("timed out waiting for deletion of {}", names.join(", ")),
                ));
            }
            (self.events)(&SyncEvent::Waiting(format!(
                "waiting for deletion of {}",
                first.key
            )));
            tokio::select! {
                _ = tokio::time::sleep(self.request.poll_interval) => {}
                _ = self.cancel.cancelled() => {}
            }
        }
        Ok(())
    }

    /// Carries out one task; the error is returned beside the result so transport failures
    /// can stop the operation.
    async fn execute(&self, task: &SyncTask) -> (ResourceResult, Option<ClusterError>) {
        let mut result = ResourceResult {
            key: task.key.clone(),
            phase: task.phase,
            wave: task.wave,
            action: task.action,
            status: ResultStatus::Synced,
            hook_phase: None,
            message: String::new(),
        };
        let outcome: Result<String, ClusterError> = match task.action {
            TaskAction::Prune => {
                if let Some(reason) = &task.skip_reason {
                    result.status = ResultStatus::PruneSkipped;
                    result.message = reason.clone();
                    return (result, None);
                }
                match &task.live {
                    Some(live) => self
                        .cluster
                        .delete(live, task.options.prune_propagation_policy)
                        .await
                        .map(|()| "pruned".to_string()),
                    None => Ok("pruned".to_string()),
                }
            }
            TaskAction::Apply => self.apply(task).await,
            TaskAction::Hook => {
                result.hook_phase = Some(HookPhase::Running);
                self.create_hook(task).await
            }
        };
        match outcome {
            Ok(message) => {
                if task.action == TaskAction::Prune {
                    result.status = ResultStatus::Pruned;
                }
                result.message = message;
                (result, None)
            }
            Err(error) => {
                result.status = ResultStatus::SyncFailed;
                result.hook_phase = task.hook_phase_on_error();
                result.message = error.to_string();
                (result, Some(error))
            }
        }
    }

    async fn apply(&self, task: &SyncTask) -> Result<String, ClusterError> {
        let Some(target) = &task.target else {
            return Ok(String::new());
        };
        let name = format!("{}/{}", task.key.kind, task.key.name);
        if task.options.replace {
            self.cluster.replace(target, task.live.as_ref()).await?;
            return Ok(format!("{name} replaced"));
        }
        match self
            .write(&task.key, target, task.live.as_ref(), &task.options)
            .await
        {
            Ok(message) => Ok(format!("{name} {message}")),
            Err(error) if task.options.force && error.is_invalid() && task.live.is_some() => {
                // Force: an immutable field changed, so delete and create again.
                self.cluster
                    .delete(target, PropagationPolicy::Foreground)
                    .await?;
                self.wait_gone(target).await?;
                self.write(&task.key, target, None, &task.options).await?;
                Ok(format!("{name} replaced (force)"))
            }
            Err(error) => Err(error),
        }
    }

    /// Writes one object the way its options say: server-side apply, or kubectl-style
    /// client-side apply against `live` (`ServerSideApply=false`). Returns kubectl's word
    /// for what happened.
    ///
    /// A server-side apply of exactly the body this attempt's dry-run accepted under
    /// `fieldValidation=Strict` is written with `Ignore`: the server has judged those fields
    /// already. Under server-side apply kube-apiserver refuses undeclared fields at every
    /// validation level; what `Strict` (like `Warn`) adds is a second parse of the body that
    /// looks for duplicate keys, which a JSON serializer never writes, and that parse was a
    /// fifth of the server's work per write. A body that changed since (ignored differences
    /// respected) or was not dry-run (hooks, a kind this sync creates) keeps the validation
    /// its options ask for.
    async fn write(
        &self,
        key: &ResourceKey,
        target: &Value,
        live: Option<&Value>,
        options: &SyncOptions,
    ) -> Result<&'static str, ClusterError> {
        if options.server_side_apply {
            let judged = self.strictly_dry_run.get(key) == Some(&target);
            self.cluster
                .apply_write(target, options.validate && !judged)
                .await?;
            return Ok("serverside-applied");
        }
        let (_, outcome) = self
            .cluster
            .client_side_apply(target, live, options.validate, false)
            .await?;
        Ok(match outcome {
            ClientApplyOutcome::Created => "created",
            ClientApplyOutcome::Configured => "configured",
            ClientApplyOutcome::Unchanged => "unchanged",
        })
    }

    async fn create_hook(&self, task: &SyncTask) -> Result<String, ClusterError> {
        let Some(target) = &task.target else {
            return Ok(String::new());
        };
        if task
            .delete_policies
            .contains(&HookDeletePolicy::BeforeHookCreation)
            && self.cluster.get(target).await?.is_some()
        {
            self.cluster
                .delete(target, PropagationPolicy::Background)
                .await?;
            self.wait_gone(target).await?;
        }
        // Hooks are written like any object (gitops-engine applies them the same way), so
        // `ServerSideApply=false` creates or patches them client-side.
        let live = if task.options.server_side_apply {
            None
        } else {
            self.cluster.get(target).await?
        };
        self.write(&task.key, target, live.as_ref(), &task.options)
            .await?;
        Ok(format!("{}/{} created", task.key.kind, task.key.name))
    }

    async fn wait_gone(&self, object: &Value) -> Result<(), ClusterError> {
        let deadline = Instant::now() + self.request.wave_timeout;
        while self.cluster.get(object).await?.is_some() {
            if Instant::now() > deadline || self.cancel.is_cancelled() {
                return Err(ClusterError::Other(format!(
                    "{}/{} was not deleted in time",
                    json::kind(object),
                    json::name(object)
                )));
            }
            tokio::time::sleep(self.request.poll_interval).await;
        }
        Ok(())
    }

    async fn wait_crds_established(&self, batch: &[&SyncTask]) -> Result<(), StepFailure> {
        let deadline = Instant::now() + self.request.wave_timeout;
        for task in batch {
            let Some(target) = &task.target else { continue };
            loop {
                let live = self
                    .cluster
                    .get(target)
                    .await
                    .map_err(|e| (error_phase(&e), e.to_string()))?;
                let established = live.as_ref().is_some_and(|crd| {
                    json::array_at(crd, &["status", "conditions"])
                        .iter()
                        .any(|c| {
                            json::str_at(c, &["type"]) == "Established"
                                && json::str_at(c, &["status"]) == "True"
                        })
                });
                if established {
                    break;
                }
                if Instant::now() > deadline || self.cancel.is_cancelled() {
                    return Err((
                        OperationPhase::Failed,
                        format!(
                            "CustomResourceDefinition {} was not established in time",
                            task.key.name
                        ),
                    ));
                }
                tokio::time::sleep(self.request.poll_interval).await;
            }
        }
        // Established is not yet discoverable: kube-apiserver serves a new group's discovery
        // a moment later, and a custom resource written before that would be refused as an
        // unknown kind. Wait until each served version of each kind resolves.
        for task in batch {
            let Some(target) = &task.target else { continue };
            let group = json::str_at(target, &["spec", "group"]);
            let kind = json::str_at(target, &["spec", "names", "kind"]);
            for version in json::array_at(target, &["spec", "versions"])
                .iter()
                .filter(|v| v.get("served").and_then(Value::as_bool) != Some(false))
                .map(|v| json::str_at(v, &["name"]))
            {
                let api_version = format!("{group}/{version}");
                loop {
                    self.cluster.forget_unknown_kinds();
                    let resolved = self
                        .cluster
                        .resolve(&api_version, kind)
                        .await
                        .map_err(|e| (error_phase(&e), e.to_string()))?;
                    if resolved.is_some() {
                        break;
                    }
                    if Instant::now() > deadline || self.cancel.is_cancelled() {
                        return Err((
                            OperationPhase::Failed,
                            format!(
                                "{kind} ({api_version}) of CustomResourceDefinition {} is not \
                                 served in time",
                                task.key.name
                            ),
                        ));
                    }
                    tokio::time::sleep(self.request.poll_interval).await;
                }
            }
        }
        Ok(())
    }

    /// Waits for hooks to complete (always) and for applied resources to be healthy (when
    /// the step gates on health), judging each by [`plan::running_task_progress`]: a
    /// Degraded resource or a failed hook fails the operation; Progressing, Suspended,
    /// Unknown and Missing resources keep it waiting (up to the wave timeout or until
    /// terminated).
    async fn wait(
        &self,
        written: &[&SyncTask],
        gate_health: bool,
        results: &mut [ResourceResult],
    ) -> Result<(), StepFailure> {
        let mut pending: Vec<&SyncTask> = written
            .iter()
            .copied()
            .filter(|t| t.action == TaskAction::Hook || gate_health)
            .filter(|t| {
                t.target
                    .as_ref()
                    .is_some_and(|o| self.assessor.has_assessment(json::group(o), json::kind(o)))
            })
            .collect();
        // Hooks of kinds without an assessment complete as soon as they exist.
        for task in written.iter().filter(|t| t.action == TaskAction::Hook) {
            if !pending.iter().any(|p| p.key == task.key) {
                self.finish_hook(task, true, "", results).await?;
            }
        }
        let deadline = Instant::now() + self.request.wave_timeout;
        let mut failures: Vec<String> = Vec::new();
        while !pending.is_empty() {
            if self.cancel.is_cancelled() {
                return Err((OperationPhase::Failed, "Operation terminated".to_string()));
            }
            let live = self.fetch_live(&pending).await?;
            let mut still = Vec::new();
            for task in pending {
                // An object not there (yet) keeps its task running, as in gitops-engine.
                let Some(object) = live.get(&task.key) else {
                    still.push(task);
                    continue;
                };
                let health = self.assessor.assess(object);
                let progress =
                    plan::running_task_progress(task.action, health.as_ref().map(|h| h.status));
                let message = health.map(|h| h.message).unwrap_or_default();
                match (task.action, progress) {
                    (_, TaskProgress::Running) => still.push(task),
                    (TaskAction::Hook, TaskProgress::Succeeded) => {
                        self.finish_hook(task, true, &message, results).await?
                    }
                    (TaskAction::Hook, TaskProgress::Failed) => {
                        self.finish_hook(task, false, &message, results).await?;
                        failures.push(format!("hook {} failed: {message}", task.key));
                    }
                    (_, TaskProgress::Succeeded) => {}
                    (_, TaskProgress::Failed) => {
                        // The resource was applied (its result stays Synced, as in Argo CD);
                        // its health message becomes its result's message.
                        if let Some(result) = results.iter_mut().rev().find(|r| r.key == task.key) {
                            result.message = message.clone();
                            (self.events)(&SyncEvent::Result(result.clone()));
                        }
                        failures.push(format!("{} is Degraded: {message}", task.key));
                    }
                }
            }
            if !failures.is_empty() {
                return Err((
                    OperationPhase::Failed,
                    format!(
                        "one or more synchronization tasks completed unsuccessfully, reason: {}",
                        summarize(&failures)
                    ),
                ));
            }
            pending = still;
            if pending.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                let names: Vec<String> = pending.iter().map(|t| t.key.to_string()).collect();
                return Err((
                    OperationPhase::Failed,
                    format!(
                        "timed out waiting for healthy state of {}",
                        names.join(", ")
                    ),
                ));
            }
            (self.events)(&SyncEvent::Waiting(format!(
                "waiting for {} resource(s) to become healthy",
                pending.len()
            )));
            tokio::select! {
                _ = tokio::time::sleep(self.request.poll_interval) => {}
                _ = self.cancel.cancelled() => {}
            }
        }
        Ok(())
    }

    async fn finish_hook(
        &self,
        task: &SyncTask,
        succeeded: bool,
        message: &str,
        results: &mut [ResourceResult],
    ) -> Result<(), StepFailure> {
        let phase = if succeeded {
            HookPhase::Succeeded
        } else {
            HookPhase::Failed
        };
        if let Some(result) = results
            .iter_mut()
            .rev()
            .find(|r| r.key == task.key && r.phase == task.phase)
        {
            result.hook_phase = Some(phase);
            if !message.is_empty() {
                result.message = message.to_string();
            }
            if !succeeded {
                result.status = ResultStatus::SyncFailed;
            }
            (self.events)(&SyncEvent::Result(result.clone()));
        }
        let delete = (succeeded
            && task
                .delete_policies
                .contains(&HookDeletePolicy::HookSucceeded))
            || (!succeeded && task.delete_policies.contains(&HookDeletePolicy::HookFailed));
        if delete && let Some(target) = &task.target {
            self.cluster
                .delete(target, PropagationPolicy::Background)
                .await
                .map_err(|e| (error_phase(&e), e.to_string()))?;
        }
        Ok(())
    }

    /// Live objects of pending tasks: one list per (kind, namespace) when several share it.
    async fn fetch_live(
        &self,
        pending: &[&SyncTask],
    ) -> Result<HashMap<ResourceKey, Value>, StepFailure> {
        let mut groups: BTreeMap<(String, String, String), Vec<&SyncTask>> = BTreeMap::new();
        for task in pending {
            if let Some(target) = &task.target {
                groups
                    .entry((
                        json::api_version(target).to_string(),
                        task.key.kind.clone(),
                        task.key.namespace.clone(),
                    ))
                    .or_default()
                    .push(task);
            }
        }
        let mut live = HashMap::new();
        for ((api_version, kind, namespace), tasks) in groups {
            let to_error = |e: ClusterError| (error_phase(&e), e.to_string());
            if tasks.len() > 2 {
                for object in self
                    .cluster
                    .list(&api_version, &kind, &namespace)
                    .await
                    .map_err(to_error)?
                {
                    live.insert(diff::object_key(&object), object);
                }
            } else {
                for task in tasks {
                    if let Some(target) = &task.target
                        && let Some(object) = self.cluster.get(target).await.map_err(to_error)?
                    {
                        live.insert(task.key.clone(), object);
                    }
                }
            }
        }
        Ok(live)
    }
}

impl SyncTask {
    fn hook_phase_on_error(&self) -> Option<HookPhase> {
        (self.action == TaskAction::Hook).then_some(HookPhase::Failed)
    }
}
