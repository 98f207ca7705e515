//! The GitOps controller: keeps every Application in the state its Git revision declares.
//!
//! Watches Applications, AppProjects and the settings ConfigMaps in the control-plane
//! namespace of the state cluster (the embedded API server or a real cluster); a
//! deduplicating [`queue::WorkQueue`] feeds a bounded set of workers, each reconciling one
//! app at a time through [`plumb_app`] (render, compare, status). Auto-sync and self-heal are
//! decided by the pure [`decide`] module; operations run as tasks of their own so a running
//! sync never blocks the app's status or a terminate request. Live objects of the kinds
//! apps manage are watched per destination ([`live`]) so drift is seen as it happens.

pub mod decide;
pub mod destinations;
pub mod events;
pub mod live;
pub mod metrics;
pub mod patch;
pub mod queue;
mod reconcile;
pub mod repos;
pub mod settings;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::watcher;
use plumb_app::AppSources;
use plumb_app::sync::SyncTuning;
use plumb_engine::cluster::Cluster;
use plumb_engine::health::HealthAssessor;
use plumb_model::AppProject;
use serde_json::Value;
use settings::ControllerSettings;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The control plane's namespace, as Argo CD names it.
pub const DEFAULT_NAMESPACE: &str = "argocd";

/// The refresh annotation Argo CD's CLI and UI set (`normal` or `hard`).
pub const REFRESH_ANNOTATION: &str = "argocd.argoproj.io/refresh";

/// Deleting an Application with this finalizer deletes its resources first.
pub const RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("setting up the controller: {0}")]
    Setup(String),
}

/// How the controller is set up.
pub struct ControllerConfig {
    /// Where Applications, AppProjects, Secrets and settings live.
    pub namespace: String,
    pub source: plumb_source::SourceConfig,
    pub tuning: SyncTuning,
    /// Settings used until (and where) the ConfigMaps say otherwise.
    pub initial_settings: ControllerSettings,
}

pub fn application_resource() -> ApiResource {
    ApiResource {
        group: plumb_model::API_GROUP.to_string(),
        version: "v1alpha1".to_string(),
        api_version: plumb_model::API_VERSION.to_string(),
        kind: plumb_model::APPLICATION_KIND.to_string(),
        plural: "applications".to_string(),
    }
}

pub fn app_project_resource() -> ApiResource {
    ApiResource {
        group: plumb_model::API_GROUP.to_string(),
        version: "v1alpha1".to_string(),
        api_version: plumb_model::API_VERSION.to_string(),
        kind: plumb_model::APP_PROJECT_KIND.to_string(),
        plural: "appprojects".to_string(),
    }
}

/// Settings in force and what they were derived into.
struct Live {
    settings: ControllerSettings,
    assessor: Arc<HealthAssessor>,
}

/// A running operation: its cancellation (terminate) and when it started.
struct Running {
    cancel: CancellationToken,
}

pub struct Controller {
    namespace: String,
    client: kube::Client,
    apps_api: Api<DynamicObject>,
    /// The last seen version of every Application, by name.
    apps: RwLock<HashMap<String, Arc<Value>>>,
    projects: RwLock<HashMap<String, AppProject>>,
    live: RwLock<Live>,
    sources: AppSources,
    destinations: destinations::Destinations,
    queue: Arc<queue::WorkQueue>,
    /// Bounds the operations running at once (`controller.operation.processors`).
    operations: Arc<tokio::sync::Semaphore>,
    running: Mutex<HashMap<String, Running>>,
    tuning: SyncTuning,
    pub metrics: metrics::Metrics,
    events: events::EventRecorder,
    watches: live::LiveCache,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // The guarded maps are replaced entry by entry: a panic elsewhere leaves them whole.
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl Controller {
    pub fn new(
        client: kube::Client,
        config: ControllerConfig,
    ) -> Result<Arc<Self>, ControllerError> {
        let operation_processors = config.initial_settings.operation_processors.max(1);
        let revision_ttl = config.initial_settings.jitter.max(Duration::from_secs(10));
        let sources = AppSources::new(config.source, revision_ttl)
            .map_err(|e| ControllerError::Setup(e.to_string()))?;
        let assessor = HealthAssessor::new(config.initial_settings.engine.clone())
            .map_err(|e| ControllerError::Setup(e.to_string()))?;
        let state_cluster = Arc::new(Cluster::new(client.clone()));
        Ok(Arc::new(Self {
            apps_api: Api::namespaced_with(
                client.clone(),
                &config.namespace,
                &application_resource(),
            ),
            destinations: destinations::Destinations::new(
                client.clone(),
                state_cluster,
                &config.namespace,
            ),
            events: events::EventRecorder::new(client.clone()),
            namespace: config.namespace,
            client,
            apps: RwLock::new(HashMap::new()),
            projects: RwLock::new(HashMap::new()),
            live: RwLock::new(Live {
                settings: config.initial_settings,
                assessor: Arc::new(assessor),
            }),
            sources,
            queue: Arc::new(queue::WorkQueue::new(
                Duration::from_millis(200),
                Duration::from_secs(300),
            )),
            operations: Arc::new(tokio::sync::Semaphore::new(operation_processors)),
            running: Mutex::new(HashMap::new()),
            tuning: config.tuning,
            metrics: metrics::Metrics::default(),
            watches: live::LiveCache::default(),
        }))
    }

    /// The metrics text, with the figures other parts keep.
    pub fn render_metrics(&self) -> String {
        let cache = self.sources.service().cache_stats();
        for (server, objects) in self.watches.object_counts() {
            self.metrics.set_cluster_objects(&server, objects);
        }
        self.metrics.render(&metrics::Gauges {
            queue_depth: self.queue.len(),
            render_cache_hits: cache.hits,
            render_cache_misses: cache.misses,
            git_requests: self.sources.git_requests(),
        })
    }

    /// Runs until `cancel`: watches, workers, periodic refresh.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let processors = read(&self.live).settings.status_processors.max(1);
        let repo_secrets = self.load_repo_secrets().await;
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(self.clone().watch_apps(cancel.clone()));
        tasks.spawn(self.clone().watch_projects(cancel.clone()));
        tasks.spawn(self.clone().watch_settings(cancel.clone()));
        tasks.spawn(
            self.clone()
                .watch_repo_secrets(repo_secrets, cancel.clone()),
        );
        for _ in 0..processors {
            tasks.spawn(self.clone().work(cancel.clone()));
        }
        cancel.cancelled().await;
        self.queue.shut_down();
        self.watches.shut_down();
        for running in self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            running.cancel.cancel();
        }
        tasks.shutdown().await;
    }

    async fn work(self: Arc<Self>, cancel: CancellationToken) {
        while let Some(name) = self.queue.next().await {
            if cancel.is_cancelled() {
                break;
            }
            let started = std::time::Instant::now();
            let outcome = self.clone().reconcile(&name).await;
            let seconds = started.elapsed().as_secs_f64();
            match outcome {
                Ok(reconcile::Next::After(delay)) => {
                    self.queue.forget(&name);
                    self.queue.done(&name);
                    self.queue.add_after(&name, delay);
                }
                Ok(reconcile::Next::Forget) => {
                    self.queue.forget(&name);
                    self.queue.done(&name);
                }
                Err(reconcile::Retry { server, message }) => {
                    self.queue.done(&name);
                    let delay = self.queue.add_rate_limited(&name);
                    tracing::warn!(app = %name, %message, retry_in = ?delay, "reconcile failed");
                    let _ = server;
                }
            }
            tracing::debug!(app = %name, seconds, "reconciled");
        }
    }

    /// Whether an Application change needs a reconcile: anything but the status the
    /// controller itself wrote (its own status patches would otherwise loop).
    fn needs_reconcile(old: Option<&Value>, new: &Value) -> bool {
        let Some(old) = old else {
            return true;
        };
        let relevant = |v: &Value| {
            (
                v.get("spec").cloned(),
                v.get("operation").cloned(),
                v.pointer("/metadata/annotations").cloned(),
                v.pointer("/metadata/deletionTimestamp").cloned(),
                v.pointer("/metadata/finalizers").cloned(),
                v.pointer("/status/operationState/phase").cloned(),
            )
        };
        relevant(old) != relevant(new)
    }

    async fn watch_apps(self: Arc<Self>, cancel: CancellationToken) {
        let stream = watcher(self.apps_api.clone(), watcher::Config::default());
        let mut stream = std::pin::pin!(stream);
        let mut listed: Vec<String> = Vec::new();
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return,
                event = stream.next() => event,
            };
            let Some(event) = event else { return };
            match event {
                Ok(watcher::Event::Apply(object)) | Ok(watcher::Event::InitApply(object)) => {
                    let Some(name) = object.metadata.name.clone() else {
                        continue;
                    };
                    let Ok(value) = serde_json::to_value(&object) else {
                        continue;
                    };
                    listed.push(name.clone());
                    let old = write(&self.apps).insert(name.clone(), Arc::new(value.clone()));
                    if Self::needs_reconcile(old.as_deref(), &value) {
                        self.queue.add(&name);
                    }
                }
                Ok(watcher::Event::Delete(object)) => {
                    if let Some(name) = object.metadata.name.clone() {
                        write(&self.apps).remove(&name);
                        self.metrics.remove_app(&self.namespace, &name);
                        if let Some(running) = self
                            .running
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(&name)
                        {
                            running.cancel.cancel();
                        }
                    }
                }
                Ok(watcher::Event::Init) => listed.clear(),
                Ok(watcher::Event::InitDone) => {
                    // Apps deleted while the watch was down are gone from the relist.
                    let keep: std::collections::HashSet<String> = listed.drain(..).collect();
                    write(&self.apps).retain(|name, _| keep.contains(name));
                }
                Err(error) => {
                    tracing::warn!(%error, "watching Applications; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn watch_projects(self: Arc<Self>, cancel: CancellationToken) {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.namespace,
            &app_project_resource(),
        );
        let stream = watcher(api, watcher::Config::default());
        let mut stream = std::pin::pin!(stream);
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return,
                event = stream.next() => event,
            };
            let Some(event) = event else { return };
            let changed = match event {
                Ok(watcher::Event::Apply(object)) | Ok(watcher::Event::InitApply(object)) => {
                    let project = serde_json::to_value(&object)
                        .ok()
                        .and_then(|v| serde_json::from_value::<AppProject>(v).ok());
                    match (object.metadata.name.clone(), project) {
                        (Some(name), Some(project)) => {
                            write(&self.projects).insert(name.clone(), project);
                            Some(name)
                        }
                        _ => None,
                    }
                }
                Ok(watcher::Event::Delete(object)) => object.metadata.name.inspect(|name| {
                    write(&self.projects).remove(name);
                }),
                Ok(_) => None,
                Err(error) => {
                    tracing::warn!(%error, "watching AppProjects; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    None
                }
            };
            if let Some(project) = changed {
                // Apps of a project that changed (or went away) are checked again.
                let names: Vec<String> = read(&self.apps)
                    .iter()
                    .filter(|(_, app)| {
                        let named = app.pointer("/spec/project").and_then(Value::as_str);
                        named.unwrap_or(plumb_model::DEFAULT_PROJECT) == project
                            || named == Some("")
                    })
                    .map(|(name, _)| name.clone())
                    .collect();
                for name in names {
                    self.queue.add(&name);
                }
            }
        }
    }

    async fn watch_settings(self: Arc<Self>, cancel: CancellationToken) {
        let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(self.client.clone(), &self.namespace);
        let stream = watcher(api, watcher::Config::default());
        let mut stream = std::pin::pin!(stream);
        let mut maps: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut last_applied: Option<(BTreeMap<String, String>, BTreeMap<String, String>)> = None;
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return,
                event = stream.next() => event,
            };
            let Some(event) = event else { return };
            match event {
                Ok(watcher::Event::Apply(map)) | Ok(watcher::Event::InitApply(map)) => {
                    if let Some(name) = map.metadata.name.clone() {
                        maps.insert(name, map.data.unwrap_or_default());
                    }
                }
                Ok(watcher::Event::Delete(map)) => {
                    if let Some(name) = map.metadata.name {
                        maps.remove(&name);
                    }
                }
                Ok(watcher::Event::Init) => {
                    maps.clear();
                    continue;
                }
                Ok(watcher::Event::InitDone) => {}
                Err(error) => {
                    tracing::warn!(%error, "watching settings ConfigMaps; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            let cm = maps.get(settings::ARGOCD_CM).cloned().unwrap_or_default();
            let params = maps
                .get(settings::ARGOCD_CMD_PARAMS_CM)
                .cloned()
                .unwrap_or_default();
            if last_applied.as_ref() == Some(&(cm.clone(), params.clone())) {
                continue;
            }
            last_applied = Some((cm.clone(), params.clone()));
            self.apply_settings(&cm, &params);
        }
    }

    /// Reads the repository Secrets once before the first reconcile, so apps on private
    /// repositories do not fail to authenticate while the watch lists them.
    /// Returns what was put in force (`None` when the list failed).
    async fn load_repo_secrets(&self) -> Option<BTreeMap<String, repos::RepoSecretData>> {
        let api: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.client.clone(), &self.namespace);
        let params = kube::api::ListParams::default().labels(repos::REPO_SECRET_SELECTOR);
        match api.list(&params).await {
            Ok(list) => {
                let secrets: BTreeMap<String, repos::RepoSecretData> = list
                    .items
                    .into_iter()
                    .filter_map(repos::parse_secret)
                    .collect();
                self.set_repo_credentials(&secrets);
                Some(secrets)
            }
            Err(error) => {
                tracing::warn!(%error, "listing repository Secrets; the watch will retry");
                None
            }
        }
    }

    fn set_repo_credentials(&self, secrets: &BTreeMap<String, repos::RepoSecretData>) {
        let (store, problems) = repos::credential_store(secrets);
        for problem in problems {
            tracing::warn!("repository credentials: {problem}");
        }
        self.sources.set_credentials(store);
        tracing::info!(secrets = secrets.len(), "repository credentials loaded");
    }

    /// Keeps the repository credentials in step with the `repository` and `repo-creds`
    /// Secrets. A change re-queues every app, so one that failed to authenticate tries again
    /// at once; a Secret that does not parse is left out and logged by name.
    ///
    /// `loaded` is what [`load_repo_secrets`](Self::load_repo_secrets) put in force: the
    /// watch's first list finding the same Secrets changes nothing (putting the same
    /// credentials in force again would forget every remembered revision).
    async fn watch_repo_secrets(
        self: Arc<Self>,
        loaded: Option<BTreeMap<String, repos::RepoSecretData>>,
        cancel: CancellationToken,
    ) {
        let api: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.client.clone(), &self.namespace);
        let config = watcher::Config::default().labels(repos::REPO_SECRET_SELECTOR);
        let stream = watcher(api, config);
        let mut stream = std::pin::pin!(stream);
        let mut secrets: BTreeMap<String, repos::RepoSecretData> = BTreeMap::new();
        let mut pending: BTreeMap<String, repos::RepoSecretData> = BTreeMap::new();
        let mut listing = false;
        let mut last_applied = loaded;
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return,
                event = stream.next() => event,
            };
            let Some(event) = event else { return };
            let parse = repos::parse_secret;
            match event {
                Ok(watcher::Event::Init) => {
                    listing = true;
                    pending.clear();
                    continue;
                }
                Ok(watcher::Event::InitApply(secret)) => {
                    if let Some((name, data)) = parse(secret) {
                        pending.insert(name, data);
                    }
                    continue;
                }
                Ok(watcher::Event::InitDone) => {
                    listing = false;
                    secrets = std::mem::take(&mut pending);
                }
                Ok(watcher::Event::Apply(secret)) => {
                    let name = secret.metadata.name.clone();
                    match parse(secret) {
                        Some((name, data)) => {
                            secrets.insert(name, data);
                        }
                        // The label was changed to something else: no longer ours.
                        None => {
                            if let Some(name) = name {
                                secrets.remove(&name);
                            }
                        }
                    }
                }
                Ok(watcher::Event::Delete(secret)) => {
                    if let Some(name) = secret.metadata.name {
                        secrets.remove(&name);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "watching repository Secrets; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            if listing || last_applied.as_ref() == Some(&secrets) {
                continue;
            }
            last_applied = Some(secrets.clone());
            self.set_repo_credentials(&secrets);
            let names: Vec<String> = read(&self.apps).keys().cloned().collect();
            for name in names {
                self.queue.add(&name);
            }
        }
    }

    /// Puts new settings in force; settings that do not parse leave the old ones (and
    /// say why in the log), so a typo in `argocd-cm` never stops the controller.
    fn apply_settings(&self, cm: &BTreeMap<String, String>, params: &BTreeMap<String, String>) {
        let parsed = ControllerSettings::from_config_maps(cm, params)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                HealthAssessor::new(s.engine.clone())
                    .map(|a| (s, a))
                    .map_err(|e| e.to_string())
            });
        match parsed {
            Ok((settings, assessor)) => {
                for warning in &settings.warnings {
                    tracing::warn!(configmap = settings::ARGOCD_CM, "{warning}");
                }
                *write(&self.live) = Live {
                    settings,
                    assessor: Arc::new(assessor),
                };
                tracing::info!("settings reloaded");
                let names: Vec<String> = read(&self.apps).keys().cloned().collect();
                for name in names {
                    self.queue.add(&name);
                }
            }
            Err(error) => {
                tracing::error!(%error, "argocd-cm is not valid; the previous settings stay in force");
            }
        }
    }
}
