//! The runner: carries out the steps of a sync plan against the cluster. Within a step,
//! kinds in order and the objects of one kind concurrently; CRDs waited for until their
//! kinds are served; hooks created, waited for until complete and deleted as their policies
//! say; the written resources' health awaited when the step gates on it; pruned objects
//! deleted and waited for until gone.

use super::operation::{
    HookPhase, OperationPhase, ResourceResult, ResultStatus, SyncEvent, SyncRequest, error_phase,
    summarize,
};
use super::options::{PropagationPolicy, SyncOptions};
use super::plan::{self, SyncTask, TaskAction, TaskProgress};
use crate::cluster::{ClientApplyOutcome, Cluster, ClusterError};
use crate::diff;
use crate::health::HealthAssessor;
use crate::hooks::HookDeletePolicy;
use crate::json;
use futures::StreamExt;
use plumb_model::ResourceKey;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Runs the steps of one attempt's plan (or of an app's PostDelete hooks).
pub(super) struct Runner<'a> {
    pub(super) cluster: &'a Cluster,
    pub(super) assessor: &'a HealthAssessor,
    pub(super) request: &'a SyncRequest,
    pub(super) cancel: &'a CancellationToken,
    pub(super) events: &'a (dyn Fn(&SyncEvent) + Send + Sync),
    /// The bodies this attempt's dry-run held to `fieldValidation=Strict` (see
    /// [`Runner::write`]).
    pub(super) strictly_dry_run: HashMap<&'a ResourceKey, &'a Value>,
}

/// Why a step stopped the operation: the phase it ends in and the message.
pub(super) type StepFailure = (OperationPhase, String);

impl Runner<'_> {
    /// Runs one (phase, wave): kinds in order, the objects of one kind concurrently; then
    /// waits for hooks to finish and, when `gate_health`, for the wave to be healthy.
    pub(super) async fn run_step(
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
            let outcomes: Vec<(ResourceResult, Option<ClusterError>)> = futures::stream::iter(
                batch
                    .iter()
                    .map(|task| self.execute(task))
                    .collect::<Vec<_>>(),
            )
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
            // Argo CD names the resource ("waiting for healthy state of apps/Deployment/x").
            // Argo CD names what it waits for ("waiting for healthy state of
            // apps/Deployment/x", "waiting for completion of hook batch/Job/y").
            let what = match pending.first() {
                Some(task) if task.action == TaskAction::Hook => {
                    format!("completion of hook {}", task.key)
                }
                Some(task) => format!("healthy state of {}", task.key),
                None => String::new(),
            };
            let more = match pending.len() {
                0 | 1 => String::new(),
                n => format!(" and {} more", n - 1),
            };
            (self.events)(&SyncEvent::Waiting(format!("waiting for {what}{more}")));
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
