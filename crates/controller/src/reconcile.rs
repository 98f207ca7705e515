//! One reconcile of one Application: deletion, validation, render, compare, status, and
//! the decision to sync; and the operation task that runs a sync to its end.

use crate::decide::{self, Decision, Observed};
use crate::destinations::Destination;
use crate::metrics::AppInfo;
use crate::patch::merge_diff;
use crate::{Controller, REFRESH_ANNOTATION, RESOURCES_FINALIZER, Running, live, read};
use kube::api::{Patch, PatchParams};
use plumb_app::sync::{AppEnv, SyncInput};
use plumb_app::{AppError, RenderOverrides, now_rfc3339};
use plumb_engine::compare::LiveReader;
use plumb_engine::sync::PropagationPolicy;
use plumb_model::{
    Application, ApplicationCondition, ApplicationStatus, Operation, OperationPhase,
    OperationState, RevisionHistory, SyncStatusCode, condition_type,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// When to look at the app again.
#[derive(Debug)]
pub(crate) enum Next {
    After(Duration),
    Forget,
}

/// A reconcile that should be retried with the per-app backoff.
#[derive(Debug)]
pub(crate) struct Retry {
    pub server: String,
    pub message: String,
}

/// The message a restart leaves on an operation it found Running without its request.
const ORPHANED_OPERATION: &str =
    "the controller restarted while this operation ran and its request is gone; it did not finish";

fn finalizers(app: &Application) -> Vec<String> {
    app.metadata.finalizers.clone().unwrap_or_default()
}

fn is_resources_finalizer(name: &str) -> bool {
    name == RESOURCES_FINALIZER
        || name == format!("{RESOURCES_FINALIZER}/foreground")
        || name == format!("{RESOURCES_FINALIZER}/background")
}

/// A stable per-app offset in `0..jitter`, so passes spread out the same way every time.
fn jitter_for(name: &str, jitter: Duration) -> Duration {
    let millis = jitter.as_millis() as u64;
    if millis == 0 {
        return Duration::ZERO;
    }
    // FNV-1a: stable across processes (std's hasher is seeded per process).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Duration::from_millis(hash % millis)
}

fn parse_time(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// Keeps each condition's first-seen time across passes; new ones are stamped now.
fn carry_transition_times(
    new: &mut [ApplicationCondition],
    old: &[ApplicationCondition],
    now: &str,
) {
    for condition in new {
        let previous = old
            .iter()
            .find(|o| o.kind == condition.kind && o.message == condition.message)
            .and_then(|o| o.last_transition_time.clone());
        condition.last_transition_time = Some(previous.unwrap_or_else(|| now.to_string()));
    }
}

/// Operation-owned conditions (a failed sync) survive a comparison; the comparison's own
/// ones are replaced by the new comparison's.
fn is_operation_condition(condition: &ApplicationCondition) -> bool {
    condition.kind == condition_type::SYNC_ERROR
}

impl Controller {
    /// The `argocd_app_info` labels of `app`, with `status` when given (the status a pass
    /// just computed) or the app's own. Borrows only: a pass over a thousand apps calls
    /// this for each.
    fn app_info(
        &self,
        app: &Application,
        status: Option<&ApplicationStatus>,
        server: &str,
    ) -> AppInfo {
        let unknown = ApplicationStatus::default();
        let status = status.or(app.status.as_ref()).unwrap_or(&unknown);
        AppInfo {
            namespace: app.metadata.namespace.clone().unwrap_or_default(),
            name: app.metadata.name.clone().unwrap_or_default(),
            project: app.spec.project_name().to_string(),
            dest_server: server.to_string(),
            dest_namespace: app.spec.destination.namespace.clone(),
            repo: app
                .spec
                .effective_sources()
                .first()
                .map(|s| s.repo_url.clone())
                .unwrap_or_default(),
            sync_status: status.sync.status.as_str().to_string(),
            health_status: status.health.status.as_str().to_string(),
            operation: status
                .operation_state
                .as_ref()
                .filter(|s| !s.phase.is_completed())
                .map(|_| "sync".to_string())
                .unwrap_or_default(),
            autosync_enabled: app
                .spec
                .sync_policy
                .as_ref()
                .is_some_and(|p| p.automated.is_some()),
        }
    }

    /// Writes the difference between the app as last seen and `new` as one merge patch
    /// (status and operation live on the object: Argo CD's CRD has no status subresource).
    /// Nothing is written when nothing but the pass's timestamps changed.
    async fn write_app(&self, old: &Value, new: &Value) -> Result<Option<Value>, kube::Error> {
        // The common case, a quiet pass, is told without copying either object.
        if equal_but_pass_times(old, new) {
            return Ok(None);
        }
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
                status.remove("reconciledAt");
                status.remove("observedAt");
            }
            v
        };
        if merge_diff(&strip(old), &strip(new)).is_none() {
            return Ok(None);
        }
        let Some(patch) = merge_diff(old, new) else {
            return Ok(None);
        };
        let name = new
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let written = self
            .apps_api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let value = serde_json::to_value(&written).unwrap_or(Value::Null);
        crate::write(&self.apps).insert(name.to_string(), Arc::new(value.clone()));
        Ok(Some(value))
    }

    /// Patches only the status (and, when given, the operation field) of the app.
    async fn patch_app(&self, name: &str, patch: &Value) -> Result<Value, kube::Error> {
        let written = self
            .apps_api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        let value = serde_json::to_value(&written).unwrap_or(Value::Null);
        crate::write(&self.apps).insert(name.to_string(), Arc::new(value.clone()));
        Ok(value)
    }

    fn period(&self, name: &str) -> Next {
        let live = read(&self.live);
        let period = live.settings.reconciliation;
        if period.is_zero() {
            return Next::Forget;
        }
        Next::After(period + jitter_for(name, live.settings.jitter.min(period)))
    }

    fn is_running(&self, name: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
    }

    pub(crate) async fn reconcile(self: Arc<Self>, name: &str) -> Result<Next, Retry> {
        let Some(raw) = read(&self.apps).get(name).cloned() else {
            return Ok(Next::Forget);
        };
        let app: Application = match serde_json::from_value((*raw).clone()) {
            Ok(app) => app,
            Err(error) => {
                // The CRD's schema keeps this from happening on a server that validates.
                tracing::error!(app = %name, %error, "the Application does not parse");
                return Ok(Next::Forget);
            }
        };
        if app.metadata.deletion_timestamp.is_some() {
            return self.finalize(&app, &raw).await;
        }
        let started = std::time::Instant::now();

        // A terminate request or an operation to start (or to resume after a restart).
        let state_phase = app
            .status
            .as_ref()
            .and_then(|s| s.operation_state.as_ref())
            .map(|s| s.phase);
        if self.is_running(name) {
            if state_phase == Some(OperationPhase::Terminating)
                && let Some(running) = self
                    .running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(name)
            {
                running.cancel.cancel();
            }
            return Ok(self.period(name));
        }
        if let Some(operation) = app.operation.clone() {
            self.start_operation(app, operation);
            return Ok(self.period(name));
        }
        if matches!(
            state_phase,
            Some(OperationPhase::Running | OperationPhase::Terminating)
        ) {
            // Running on record, but neither a request nor a task: a restart cut it off.
            let patch = json!({"status": {"operationState": {
                "phase": OperationPhase::Failed.as_str(),
                "message": ORPHANED_OPERATION,
                "finishedAt": now_rfc3339(),
            }}});
            self.patch_app(name, &patch)
                .await
                .map_err(|e| retry("", format!("failing an orphaned operation: {e}")))?;
            return Ok(Next::After(Duration::ZERO));
        }

        let mut new = (*raw).clone();
        let mut status = app.status.clone().unwrap_or_default();
        let now = now_rfc3339();
        status.reconciled_at = Some(now.clone());
        status.observed_at = Some(now.clone());
        status.controller_namespace = self.namespace.clone();

        // The spec, the project and the destination, before any I/O on the sources.
        let mut problems = plumb_app::spec::validate(&app);
        let project = app.spec.project_name().to_string();
        if !read(&self.projects).contains_key(&project) {
            problems.push(format!(
                "spec.project: the AppProject {project:?} does not exist in namespace {}",
                self.namespace
            ));
        }
        let destination = if problems.is_empty() {
            match self.destinations.resolve(&app.spec.destination).await {
                Ok(destination) => Some(destination),
                Err(error) => {
                    problems.push(format!("spec.destination: {error}"));
                    None
                }
            }
        } else {
            None
        };
        let Some(destination) = destination else {
            let conditions = problems
                .into_iter()
                .map(|p| ApplicationCondition::new(condition_type::INVALID_SPEC_ERROR, p))
                .collect();
            self.set_conditions(&mut status, conditions, &now, SyncStatusCode::Unknown);
            self.finish_pass(&app, &raw, &mut new, status, "").await?;
            return Ok(self.period(name));
        };

        let refresh = app
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REFRESH_ANNOTATION))
            .cloned();
        let overrides = RenderOverrides {
            hard_refresh: refresh.as_deref() == Some("hard"),
            fresh_revisions: refresh.is_some(),
            ..Default::default()
        };
        if refresh.is_some() {
            // The request is served by this pass; removing it is what Argo CD does too.
            if let Some(annotations) = new
                .pointer_mut("/metadata/annotations")
                .and_then(Value::as_object_mut)
            {
                annotations.remove(REFRESH_ANNOTATION);
            }
        }
        let cancel = CancellationToken::new();
        let desired = match self.sources.render(&app, &overrides, &cancel).await {
            Ok(desired) => desired,
            Err(error) => {
                // The app keeps its last compared state; the condition says why it is stale.
                let kind = error.condition_type();
                tracing::warn!(app = %name, %error, "render failed");
                let conditions = vec![ApplicationCondition::new(kind, error.to_string())];
                let sync = if kind == condition_type::INVALID_SPEC_ERROR {
                    SyncStatusCode::Unknown
                } else {
                    status.sync.status
                };
                self.set_conditions(&mut status, conditions, &now, sync);
                self.finish_pass(&app, &raw, &mut new, status, &destination.server)
                    .await?;
                return Ok(self.period(name));
            }
        };

        let (settings, assessor) = {
            let live = read(&self.live);
            (live.settings.clone(), live.assessor.clone())
        };
        let live_view = self
            .live_view(
                &app,
                &destination,
                &desired,
                &settings.engine,
                overrides.hard_refresh,
            )
            .await;
        let env = AppEnv {
            cluster: &destination.cluster,
            assessor: &assessor,
            settings: &settings.engine,
            live: live_view.as_ref(),
        };
        let requests_before = destination.cluster.request_count();
        let comparison = plumb_app::sync::compare(env, &app, &desired, &[], self.tuning).await;
        let requests = destination
            .cluster
            .request_count()
            .saturating_sub(requests_before);
        let comparison = match comparison {
            Ok(comparison) => comparison,
            Err(error) => {
                let unreachable = matches!(
                    &error,
                    AppError::Compare(plumb_engine::compare::CompareFailure::Cluster(e)) if e.is_transport()
                );
                if unreachable {
                    self.metrics
                        .set_cluster_connection(&destination.server, false);
                }
                let message = if unreachable {
                    format!("cluster {} is unreachable: {error}", destination.server)
                } else {
                    error.to_string()
                };
                let conditions = vec![ApplicationCondition::new(
                    error.condition_type(),
                    message.clone(),
                )];
                let sync = status.sync.status;
                self.set_conditions(&mut status, conditions, &now, sync);
                self.finish_pass(&app, &raw, &mut new, status, &destination.server)
                    .await?;
                // Backoff per app: an unreachable cluster is tried again, less and less often.
                return Err(retry(&destination.server, message));
            }
        };
        self.metrics
            .set_cluster_connection(&destination.server, true);
        self.watches.watch(
            &self.queue,
            &destination,
            comparison
                .resources
                .iter()
                .map(|r| (r.group.clone(), r.version.clone(), r.kind.clone())),
            settings.engine.tracking_method,
        );

        // Status from the comparison.
        let old_health = status.health.status;
        status.sync = comparison.sync.clone();
        status.health = comparison.health.clone();
        status.health.last_transition_time = if old_health == status.health.status {
            app.status
                .as_ref()
                .and_then(|s| s.health.last_transition_time.clone())
                .or_else(|| Some(now.clone()))
        } else {
            Some(now.clone())
        };
        status.resources = comparison.resources.clone();
        status.summary = comparison.summary.clone();
        status.source_type = desired.source_types.first().cloned().unwrap_or_default();
        status.source_types = if app.spec.sources.is_empty() {
            Vec::new()
        } else {
            desired.source_types.clone()
        };
        let mut conditions = comparison.conditions.clone();

        // What to do about it.
        let since_last_operation = status
            .operation_state
            .as_ref()
            .and_then(|s| s.finished_at.as_deref())
            .and_then(parse_time)
            .map(|at| {
                let elapsed = time::OffsetDateTime::now_utc() - at;
                Duration::try_from(elapsed).unwrap_or(Duration::ZERO)
            });
        let observed = Observed {
            sync_status: comparison.sync.status,
            revisions: &desired.revisions,
            out_of_sync_not_prune: comparison
                .resources
                .iter()
                .filter(|r| r.status == SyncStatusCode::OutOfSync && !r.requires_pruning)
                .count(),
            requires_pruning: comparison
                .resources
                .iter()
                .filter(|r| r.requires_pruning)
                .count(),
            desired_objects: desired.objects.len(),
            comparison_error: comparison.has_errors(),
            since_last_operation,
        };
        let decision = decide::decide(&app, observed, settings.self_heal_timeout);
        let mut next = self.period(name);
        let mut operation = None;
        match decision {
            Decision::Sync(op) => operation = Some(*op),
            Decision::WaitFor(delay, reason) => {
                conditions.push(ApplicationCondition::new(
                    condition_type::SYNC_BLOCKED,
                    reason,
                ));
                next = Next::After(delay);
            }
            Decision::Idle(Some(reason)) if comparison.sync.status != SyncStatusCode::Synced => {
                conditions.push(ApplicationCondition::new(
                    condition_type::SYNC_BLOCKED,
                    reason,
                ));
            }
            Decision::Idle(_) => {}
        }
        let sync = status.sync.status;
        self.set_conditions(&mut status, conditions, &now, sync);
        if let Some(operation) = &operation {
            new["operation"] = serde_json::to_value(operation).unwrap_or(Value::Null);
        }
        let (info, written) = self
            .finish_pass(&app, &raw, &mut new, status, &destination.server)
            .await?;
        self.metrics.count_k8s_requests(&info, requests);
        if let Some(operation) = operation {
            // The operation was written with the status unless it was there already.
            let current = written.or_else(|| serde_json::from_value::<Application>(new).ok());
            if let Some(current) = current {
                self.start_operation(current, operation);
            }
        }
        self.metrics.observe_reconcile(
            &info.namespace,
            &destination.server,
            started.elapsed().as_secs_f64(),
        );
        Ok(next)
    }

    /// The app's view of its destination's live cache, when the cache holds every kind
    /// the app declares or had resources of (after starting the watches of kinds not yet
    /// watched). A hard refresh reads the cluster instead, and so finds objects the app
    /// tracks in kinds the cache does not watch.
    async fn live_view(
        &self,
        app: &Application,
        destination: &Destination,
        desired: &plumb_app::Desired,
        settings: &plumb_engine::settings::Settings,
        hard_refresh: bool,
    ) -> Option<Arc<dyn LiveReader>> {
        let group_version_kind = |api_version: &str, kind: &str| {
            let group = plumb_model::group_of(api_version).to_string();
            let version = api_version.rsplit('/').next().unwrap_or(api_version);
            (group, version.to_string(), kind.to_string())
        };
        let desired_kinds = desired.objects.iter().map(|object| {
            group_version_kind(
                plumb_engine::json::api_version(object),
                plumb_engine::json::kind(object),
            )
        });
        let had: Vec<(String, String, String)> = app
            .status
            .as_ref()
            .map(|s| {
                s.resources
                    .iter()
                    .map(|r| (r.group.clone(), r.version.clone(), r.kind.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let kinds: BTreeSet<(String, String, String)> =
            desired_kinds.chain(had.iter().cloned()).collect();
        let cache = self.watches.watch(
            &self.queue,
            destination,
            kinds.iter().cloned(),
            settings.tracking_method,
        );
        let kind_keys: Vec<live::KindKey> = kinds
            .iter()
            .map(|(group, _, kind)| (group.clone(), kind.clone()))
            .collect();
        if hard_refresh || !live::wait_covered(&cache, &kind_keys).await {
            return None;
        }
        let read_whole = settings
            .ignore_differences
            .iter()
            .chain(&app.spec.ignore_differences)
            .any(|rule| !rule.managed_fields_managers.is_empty());
        Some(Arc::new(live::AppLiveView {
            cache,
            extra_kinds: had
                .into_iter()
                .map(|(group, _, kind)| (group, kind))
                .collect(),
            read_whole,
        }))
    }

    /// Replaces the comparison's conditions (keeping a failed sync's) and the sync status.
    fn set_conditions(
        &self,
        status: &mut ApplicationStatus,
        mut conditions: Vec<ApplicationCondition>,
        now: &str,
        sync: SyncStatusCode,
    ) {
        let old = std::mem::take(&mut status.conditions);
        conditions.extend(old.iter().filter(|c| is_operation_condition(c)).cloned());
        let mut seen = std::collections::BTreeSet::new();
        conditions.retain(|c| seen.insert((c.kind.clone(), c.message.clone())));
        carry_transition_times(&mut conditions, &old, now);
        status.conditions = conditions;
        status.sync.status = sync;
    }

    /// Puts `status` into `new`, writes what changed, and records the app's metrics.
    /// Returns the app as it now stands.
    async fn finish_pass(
        &self,
        app: &Application,
        raw: &Value,
        new: &mut Value,
        status: ApplicationStatus,
        server: &str,
    ) -> Result<(AppInfo, Option<Application>), Retry> {
        new["status"] = serde_json::to_value(&status).unwrap_or(Value::Null);
        let name = app.metadata.name.clone().unwrap_or_default();
        let written = self
            .write_app(raw, new)
            .await
            .map_err(|e| retry(server, format!("writing the status of {name}: {e}")))?;
        let info = self.app_info(app, Some(&status), server);
        self.metrics.set_app_info(&info);
        // A quiet pass (nothing written) parses nothing: the app is as it was.
        let written = written.and_then(|value| serde_json::from_value::<Application>(value).ok());
        Ok((info, written))
    }

    /// Deletion: with the resources finalizer, delete what the app manages, then let go.
    async fn finalize(&self, app: &Application, raw: &Value) -> Result<Next, Retry> {
        let name = app.metadata.name.clone().unwrap_or_default();
        if let Some(running) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&name)
        {
            running.cancel.cancel();
        }
        let ours: Vec<String> = finalizers(app)
            .into_iter()
            .filter(|f| is_resources_finalizer(f))
            .collect();
        if ours.is_empty() {
            return Ok(Next::Forget);
        }
        let propagation = if ours.iter().any(|f| f.ends_with("/background")) {
            PropagationPolicy::Background
        } else {
            PropagationPolicy::Foreground
        };
        let destination: Destination = match self.destinations.resolve(&app.spec.destination).await
        {
            Ok(destination) => destination,
            Err(error) => {
                // Nothing can be deleted where the app pointed; the finalizer stays until
                // the destination exists again or someone removes it by hand.
                return Err(retry("", format!("deleting {name}'s resources: {error}")));
            }
        };
        let resources = app
            .status
            .as_ref()
            .map(|s| s.resources.clone())
            .unwrap_or_default();
        let mut remaining = 0;
        for resource in &resources {
            if resource.hook {
                continue;
            }
            let api_version = if resource.group.is_empty() {
                resource.version.clone()
            } else {
                format!("{}/{}", resource.group, resource.version)
            };
            let mut object = json!({
                "apiVersion": api_version,
                "kind": resource.kind,
                "metadata": {"name": resource.name},
            });
            if !resource.namespace.is_empty() {
                object["metadata"]["namespace"] = resource.namespace.clone().into();
            }
            match destination.cluster.get(&object).await {
                Ok(None) => continue,
                Ok(Some(live)) => {
                    let method = read(&self.live).settings.engine.tracking_method;
                    if !plumb_engine::tracking::is_owned_by(&live, &name, method) {
                        // Not ours (any more): never delete what another app or person owns.
                        continue;
                    }
                    remaining += 1;
                    if live.pointer("/metadata/deletionTimestamp").is_none() {
                        destination
                            .cluster
                            .delete(&object, propagation)
                            .await
                            .map_err(|e| {
                                retry(
                                    &destination.server,
                                    format!("deleting {} {}: {e}", resource.kind, resource.name),
                                )
                            })?;
                    }
                }
                Err(error) => {
                    return Err(retry(
                        &destination.server,
                        format!("reading {} {}: {error}", resource.kind, resource.name),
                    ));
                }
            }
        }
        if remaining > 0 {
            return Ok(Next::After(Duration::from_millis(500)));
        }
        let kept: Vec<String> = finalizers(app)
            .into_iter()
            .filter(|f| !is_resources_finalizer(f))
            .collect();
        let resource_version = raw
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null);
        let patch = json!({"metadata": {"finalizers": kept, "resourceVersion": resource_version}});
        match self.patch_app(&name, &patch).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(retry("", format!("removing {name}'s finalizer: {error}"))),
        }
        tracing::info!(app = %name, "resources deleted; finalizer removed");
        Ok(Next::Forget)
    }

    /// Starts `operation` as a task of its own unless one runs for the app already.
    fn start_operation(self: &Arc<Self>, app: Application, operation: Operation) {
        let name = app.metadata.name.clone().unwrap_or_default();
        let cancel = CancellationToken::new();
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if running.contains_key(&name) {
                return;
            }
            running.insert(
                name.clone(),
                Running {
                    cancel: cancel.clone(),
                },
            );
        }
        let controller = self.clone();
        tokio::spawn(async move {
            let permit = controller.operations.clone().acquire_owned().await;
            controller.run_operation(app, operation, &cancel).await;
            drop(permit);
            controller
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
            controller.queue.add(&name);
        });
    }

    async fn run_operation(
        &self,
        app: Application,
        operation: Operation,
        cancel: &CancellationToken,
    ) {
        let name = app.metadata.name.clone().unwrap_or_default();
        let previous = app.status.as_ref().and_then(|s| s.operation_state.clone());
        // Resuming after a restart keeps the original start time.
        let started_at = previous
            .as_ref()
            .filter(|s| !s.phase.is_completed() && s.operation == operation)
            .map(|s| s.started_at.clone())
            .unwrap_or_else(now_rfc3339);
        let running = OperationState {
            operation: operation.clone(),
            phase: OperationPhase::Running,
            message: String::new(),
            sync_result: None,
            started_at: started_at.clone(),
            finished_at: None,
            retry_count: 0,
        };
        let patch = json!({"status": {"operationState": running}});
        if let Err(error) = self.patch_app(&name, &patch).await {
            tracing::warn!(app = %name, %error, "recording the operation's start");
            return;
        }
        let resumed = previous
            .as_ref()
            .is_some_and(|s| !s.phase.is_completed() && s.operation == operation);
        let target = operation
            .sync
            .as_ref()
            .map(|s| {
                if s.revisions.is_empty() {
                    s.revision.clone()
                } else {
                    s.revisions.join(", ")
                }
            })
            .unwrap_or_default();
        let who = if operation.initiated_by.automated {
            "automated sync".to_string()
        } else if operation.initiated_by.username.is_empty() {
            "sync".to_string()
        } else {
            format!("sync by {}", operation.initiated_by.username)
        };
        self.events
            .record(
                &app,
                false,
                "OperationStarted",
                &format!(
                    "{} {who} to {}",
                    if resumed { "Resumed" } else { "Initiated" },
                    if target.is_empty() {
                        "the target revision"
                    } else {
                        &target
                    }
                ),
            )
            .await;
        tracing::info!(app = %name, revision = %target, resumed, "operation started");

        let outcome = self
            .execute_reporting_progress(&app, &operation, cancel)
            .await;
        let finished_at = now_rfc3339();
        let (phase, message, result, retry_count, revisions) = match outcome {
            Ok((outcome, revisions)) => (
                outcome.phase,
                outcome.message,
                Some(outcome.result),
                outcome.retry_count,
                revisions,
            ),
            Err(error) => (
                OperationPhase::Error,
                error.to_string(),
                None,
                0,
                Vec::new(),
            ),
        };
        let state = OperationState {
            operation: operation.clone(),
            phase,
            message: message.clone(),
            sync_result: result.clone(),
            started_at: started_at.clone(),
            finished_at: Some(finished_at.clone()),
            retry_count,
        };

        // The final state, the history and clearing the request go in one write, so a
        // kill leaves either the running operation (resumed on restart) or its end.
        let current = match self.apps_api.get_opt(&name).await {
            Ok(Some(current)) => current,
            Ok(None) => {
                tracing::info!(app = %name, "the Application was deleted during its operation");
                return;
            }
            Err(error) => {
                tracing::warn!(app = %name, %error, "reading the app after its operation; it is resumed later");
                return;
            }
        };
        let current: Application = match serde_json::to_value(&current)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
        {
            Some(app) => app,
            None => return,
        };
        let mut status = current.status.clone().unwrap_or_default();
        status.operation_state = Some(state);
        let dry_run = operation.sync.as_ref().is_some_and(|s| s.dry_run);
        status.conditions.retain(|c| !is_operation_condition(c));
        if phase == OperationPhase::Succeeded && !dry_run {
            let result = result.unwrap_or_default();
            decide::append_history(
                &mut status.history,
                RevisionHistory {
                    revision: result.revision.clone(),
                    revisions: if result.revisions.is_empty() {
                        Vec::new()
                    } else {
                        revisions
                    },
                    deployed_at: finished_at.clone(),
                    deploy_started_at: Some(started_at),
                    id: 0,
                    source: result.source.clone(),
                    sources: result.sources.clone(),
                    initiated_by: Some(operation.initiated_by.clone()),
                },
                current.spec.revision_history_limit,
            );
        } else if matches!(phase, OperationPhase::Failed | OperationPhase::Error) {
            let mut condition =
                ApplicationCondition::new(condition_type::SYNC_ERROR, message.clone());
            condition.last_transition_time = Some(finished_at.clone());
            status.conditions.push(condition);
        }
        // Only the request this task ran is cleared: a newer one stays for the next pass.
        let clear = current.operation.as_ref() == Some(&operation);
        let mut patch = json!({"status": {
            "operationState": status.operation_state,
            "history": status.history,
            "conditions": status.conditions,
        }});
        if clear {
            patch["operation"] = Value::Null;
        }
        if let Err(error) = self.patch_app(&name, &patch).await {
            tracing::warn!(app = %name, %error, "recording the operation's end");
            return;
        }
        let server = current.spec.destination.server.clone();
        let info = self.app_info(&current, None, &server);
        self.metrics.count_sync(&info, phase.as_str());
        let warning = phase != OperationPhase::Succeeded;
        let text = format!(
            "Sync operation to {} {}{}",
            if target.is_empty() {
                "the target revision"
            } else {
                &target
            },
            match phase {
                OperationPhase::Succeeded => "succeeded",
                OperationPhase::Failed => "failed",
                OperationPhase::Error => "errored",
                _ => "ended",
            },
            if warning {
                format!(": {message}")
            } else {
                String::new()
            }
        );
        self.events
            .record(&current, warning, "OperationCompleted", &text)
            .await;
        tracing::info!(app = %name, phase = phase.as_str(), %message, "operation finished");
    }

    /// [`execute`](Self::execute), with what the sync waits for written to
    /// `status.operationState.message` as it goes (at most once a second), as Argo CD shows
    /// "waiting for healthy state of …" while a wave is not yet healthy. The last progress
    /// write finishes before the operation's final state is written.
    async fn execute_reporting_progress(
        &self,
        app: &Application,
        operation: &Operation,
        cancel: &CancellationToken,
    ) -> Result<(plumb_app::sync::SyncOutcome, Vec<String>), AppError> {
        let name = app.metadata.name.clone().unwrap_or_default();
        let (progress, mut updates) = tokio::sync::watch::channel(String::new());
        let finished = CancellationToken::new();
        let run = async {
            let outcome = self.execute(app, operation, cancel, &progress).await;
            finished.cancel();
            outcome
        };
        let report = async {
            let mut written = String::new();
            loop {
                tokio::select! {
                    changed = updates.changed() => if changed.is_err() { return },
                    _ = finished.cancelled() => return,
                }
                let message = updates.borrow_and_update().clone();
                if message.is_empty() || message == written {
                    continue;
                }
                let patch = json!({"status": {"operationState": {"message": message}}});
                if let Err(error) = self.patch_app(&name, &patch).await {
                    tracing::debug!(app = %name, %error, "recording the operation's progress");
                }
                written = message;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = finished.cancelled() => return,
                }
            }
        };
        let (outcome, ()) = tokio::join!(run, report);
        outcome
    }

    /// Renders the operation's revision and syncs it; `progress` gets what the sync is
    /// waiting for.
    async fn execute(
        &self,
        app: &Application,
        operation: &Operation,
        cancel: &CancellationToken,
        progress: &tokio::sync::watch::Sender<String>,
    ) -> Result<(plumb_app::sync::SyncOutcome, Vec<String>), AppError> {
        let sync = operation.sync.clone().unwrap_or_default();
        let mut sources = sync.sources.clone();
        if sources.is_empty()
            && let Some(source) = sync.source.clone()
        {
            sources.push(source);
        }
        let revisions = if sync.revisions.is_empty() {
            vec![sync.revision.clone()]
        } else {
            sync.revisions.clone()
        };
        let overrides = RenderOverrides {
            sources,
            revisions,
            ..Default::default()
        };
        let desired = self.sources.render(app, &overrides, cancel).await?;
        let destination = self
            .destinations
            .resolve(&app.spec.destination)
            .await
            .map_err(|e| AppError::InvalidSpec(format!("spec.destination: {e}")))?;
        let (settings, assessor) = {
            let live = read(&self.live);
            (live.settings.engine.clone(), live.assessor.clone())
        };
        let live_view = self
            .live_view(app, &destination, &desired, &settings, false)
            .await;
        let env = AppEnv {
            cluster: &destination.cluster,
            assessor: &assessor,
            settings: &settings,
            live: live_view.as_ref(),
        };
        let name = app.metadata.name.clone().unwrap_or_default();
        let events = move |event: &plumb_engine::sync::operation::SyncEvent| {
            use plumb_engine::sync::operation::SyncEvent;
            tracing::debug!(app = %name, ?event, "sync");
            match event {
                SyncEvent::Waiting(message) => {
                    progress.send_replace(message.clone());
                }
                SyncEvent::Retrying { delay, reason } => {
                    progress
                        .send_replace(format!("retrying in {}s: {reason}", delay.as_secs().max(1)));
                }
                _ => {}
            }
        };
        let outcome = plumb_app::sync::sync(
            env,
            SyncInput {
                app,
                desired: &desired,
                operation,
                prune_confirmed: false,
            },
            self.tuning,
            cancel,
            &events,
        )
        .await?;
        Ok((outcome, desired.revisions.clone()))
    }
}

/// Whether two versions of an Application differ in nothing but the pass's own times
/// (`status.reconciledAt`, `status.observedAt`). Only a "yes" is trusted: a "no" goes on to
/// the merge diff, which decides what is written.
fn equal_but_pass_times(old: &Value, new: &Value) -> bool {
    const PASS_TIMES: [&str; 2] = ["reconciledAt", "observedAt"];
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return old == new;
    };
    let same_status = |a: Option<&Value>, b: Option<&Value>| match (
        a.and_then(Value::as_object),
        b.and_then(Value::as_object),
    ) {
        (Some(a), Some(b)) => {
            let counted = |m: &serde_json::Map<String, Value>| {
                m.keys()
                    .filter(|k| !PASS_TIMES.contains(&k.as_str()))
                    .count()
            };
            counted(a) == counted(b)
                && a.iter()
                    .filter(|(k, _)| !PASS_TIMES.contains(&k.as_str()))
                    .all(|(k, v)| b.get(k) == Some(v))
        }
        _ => a == b,
    };
    old.len() == new.len()
        && old.iter().all(|(key, value)| {
            if key == "status" {
                same_status(Some(value), new.get(key))
            } else {
                new.get(key) == Some(value)
            }
        })
}

fn retry(server: &str, message: String) -> Retry {
    Retry {
        server: server.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pass_times_make_a_pass_quiet() {
        let old = json!({"spec": {"a": 1}, "status": {"reconciledAt": "t1", "observedAt": "t1", "sync": {"status": "Synced"}}});
        let quiet = json!({"spec": {"a": 1}, "status": {"reconciledAt": "t2", "sync": {"status": "Synced"}}});
        assert!(equal_but_pass_times(&old, &quiet));
        for changed in [
            json!({"spec": {"a": 2}, "status": {"reconciledAt": "t2", "sync": {"status": "Synced"}}}),
            json!({"spec": {"a": 1}, "status": {"reconciledAt": "t2", "sync": {"status": "OutOfSync"}}}),
            json!({"spec": {"a": 1}, "status": {"sync": {"status": "Synced"}, "health": {}}}),
            json!({"spec": {"a": 1}, "status": {"sync": {"status": "Synced"}}, "operation": {}}),
            json!({"spec": {"a": 1}}),
        ] {
            assert!(!equal_but_pass_times(&old, &changed), "{changed}");
        }
    }

    #[test]
    fn jitter_is_stable_and_bounded() {
        let jitter = Duration::from_secs(60);
        for name in ["a", "guestbook", "app-999"] {
            let first = jitter_for(name, jitter);
            assert_eq!(first, jitter_for(name, jitter));
            assert!(first < jitter);
        }
        assert_eq!(jitter_for("a", Duration::ZERO), Duration::ZERO);
        let spread: std::collections::BTreeSet<_> = (0..100)
            .map(|i| jitter_for(&format!("app-{i}"), jitter).as_secs())
            .collect();
        assert!(spread.len() > 30, "offsets cluster: {spread:?}");
    }

    #[test]
    fn transition_times_carry_over_for_unchanged_conditions() {
        let mut old = ApplicationCondition::new("ComparisonError", "x");
        old.last_transition_time = Some("2026-01-01T00:00:00Z".to_string());
        let mut new = vec![
            ApplicationCondition::new("ComparisonError", "x"),
            ApplicationCondition::new("ComparisonError", "y"),
        ];
        carry_transition_times(&mut new, &[old], "2026-02-02T00:00:00Z");
        assert_eq!(
            new[0].last_transition_time.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            new[1].last_transition_time.as_deref(),
            Some("2026-02-02T00:00:00Z")
        );
    }

    #[test]
    fn every_finalizer_variant_is_recognised() {
        assert!(is_resources_finalizer(RESOURCES_FINALIZER));
        assert!(is_resources_finalizer(
            "resources-finalizer.argocd.argoproj.io/background"
        ));
        assert!(!is_resources_finalizer("example.com/other"));
    }
}
