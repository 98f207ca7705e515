//! The I/O shell around the pure cores: one destination cluster through kube-rs.
//!
//! Every request the engine sends goes through [`Cluster`], which counts them, so "nothing
//! changed, nothing sent" can be checked. Compare results (the server-side-apply dry-run
//! answer for a desired object) are cached by (live resourceVersion, hash of the desired
//! object): re-comparing an unchanged app sends no request. Every cache is bounded
//! ([`CacheCapacities`]) and forgets its least recently used entries first, so a process
//! that runs for weeks over changing objects does not grow without end.

use crate::bounded_map::BoundedMap;
use crate::client_apply::{self, PatchType};
use crate::diff::{self, Scope};
use crate::json;
use crate::settings::TrackingMethod;
use crate::tracking;
use futures::StreamExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Discovery, verbs};
use plumb_model::ResourceKey;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The field manager plumb applies with (server-side apply).
pub const FIELD_MANAGER: &str = "plumb";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    /// The server answered with an error status.
    #[error("{message}")]
    Api {
        code: u16,
        reason: String,
        message: String,
    },
    /// The server could not be reached or the answer could not be read: the server's URL
    /// when known, then what went wrong with its causes.
    #[error("cluster {0}")]
    Transport(String),
    #[error("no matches for kind {kind:?} in version {api_version:?}")]
    UnknownKind { api_version: String, kind: String },
    #[error("{0}")]
    Other(String),
}

impl ClusterError {
    /// `server` is the cluster's URL, to say which one could not be reached.
    fn from_kube(error: kube::Error, server: Option<&str>) -> Self {
        match error {
            kube::Error::Api(status) => ClusterError::Api {
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            other => {
                // kube's own text ("ServiceError: client error (Connect)") leaves out why;
                // the causes below it ("Connection refused") say it.
                let mut text = other.to_string();
                let mut source = std::error::Error::source(&other);
                while let Some(cause) = source {
                    let cause_text = cause.to_string();
                    if !text.contains(&cause_text) {
                        text.push_str(": ");
                        text.push_str(&cause_text);
                    }
                    source = cause.source();
                }
                ClusterError::Transport(match server {
                    Some(server) => format!("{server} unreachable: {text}"),
                    None => format!("unreachable: {text}"),
                })
            }
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ClusterError::Api { code: 404, .. })
    }

    /// An Invalid (422) answer, e.g. a change to an immutable field.
    pub fn is_invalid(&self) -> bool {
        matches!(self, ClusterError::Api { code: 422, .. })
    }

    pub fn is_transport(&self) -> bool {
        matches!(self, ClusterError::Transport(_))
    }
}

/// How a kind is served.
#[derive(Debug, Clone)]
pub struct ResolvedKind {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// The server's answer to a dry-run of a desired object, valid while the live object's
/// resourceVersion and the desired object (and apply mode) are unchanged.
#[derive(Debug, Clone)]
struct CachedPrediction {
    live_resource_version: String,
    desired_hash: [u8; 32],
    predicted: Value,
}

/// How many entries each of a [`Cluster`]'s caches holds; beyond it the least recently used
/// are forgotten (and asked for again when next needed). 0 keeps nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheCapacities {
    /// Kinds resolved, served or not, by (apiVersion, kind).
    pub kinds: usize,
    /// Dry-run predictions of desired objects, one per resource. Each holds a whole object,
    /// so these weigh most.
    pub predictions: usize,
    /// Compare results, one per resource.
    pub compare_results: usize,
}

impl Default for CacheCapacities {
    /// Room for every kind a large cluster serves, and for the objects of many apps.
    fn default() -> Self {
        Self {
            kinds: 10_000,
            predictions: 100_000,
            compare_results: diff::CompareCache::DEFAULT_CAPACITY,
        }
    }
}

/// One destination cluster.
pub struct Cluster {
    client: kube::Client,
    requests: AtomicU64,
    kinds: Mutex<BoundedMap<(String, String), Option<ResolvedKind>>>,
    predictions: Mutex<BoundedMap<ResourceKey, CachedPrediction>>,
    results: diff::CompareCache,
    /// The server's URL when known (from the kubeconfig), named in transport errors.
    server: Option<String>,
}

/// The `Accept` of a write whose answer is not read beyond its status.
const METADATA_ONLY: &str =
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/json";

/// Concurrent list requests when reading an app's live state.
pub const LIST_CONCURRENCY: usize = 8;

/// The `Accept` of a list that needs only its items' metadata.
const METADATA_LIST_ONLY: &str =
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, application/json";

/// From this many of an app's objects of one kind in one namespace, found by metadata,
/// one whole list there reads them rather than a request each.
pub const BATCH_READ: usize = 4;

/// Beyond this many namespaces holding an app's objects of one kind, the kind is listed
/// whole cluster-wide rather than namespace by namespace.
pub const WHOLE_LIST_NAMESPACES: usize = 4;

/// How [`Cluster::live_state`] reads an app's live state, from one discovery.
pub struct LivePlan {
    app: String,
    tracking_method: TrackingMethod,
    /// The tracking label's selector, with label tracking.
    selector: Option<String>,
    lists: Vec<KindList>,
    /// The kinds the lists cover.
    listed: HashSet<(String, String)>,
    /// Where namespaced kinds are listed when a cluster-wide list is forbidden.
    fallback_namespaces: Vec<String>,
}

/// The two halves of a live state in one map; an object both read (none, by construction)
/// keeps its whole declared-kind version.
pub fn merge_live(
    mut declared: BTreeMap<ResourceKey, Value>,
    tracked: BTreeMap<ResourceKey, Value>,
) -> BTreeMap<ResourceKey, Value> {
    for (key, object) in tracked {
        declared.entry(key).or_insert(object);
    }
    declared
}

/// One list request of [`Cluster::live_state`].
struct KindList {
    kind: ResolvedKind,
    /// `None`: cluster-wide.
    namespace: Option<String>,
    /// Whole objects, or metadata only.
    whole: bool,
    /// Namespaces whose items another, whole list of the same kind already read.
    skip_namespaces: BTreeSet<String>,
}

impl KindList {
    /// The lists that read `kind`, given the namespaces of the app's desired objects of
    /// that kind (`None`: the app has none).
    fn for_kind(kind: ResolvedKind, desired_in: Option<Vec<String>>) -> Vec<KindList> {
        let whole_cluster = |kind| KindList {
            kind,
            namespace: None,
            whole: true,
            skip_namespaces: BTreeSet::new(),
        };
        match desired_in {
            Some(_) if !kind.namespaced => vec![whole_cluster(kind)],
            Some(namespaces)
                if namespaces.is_empty() || namespaces.len() > WHOLE_LIST_NAMESPACES =>
            {
                vec![whole_cluster(kind)]
            }
            Some(namespaces) => {
                let mut lists: Vec<KindList> = namespaces
                    .iter()
                    .map(|namespace| KindList {
                        kind: kind.clone(),
                        namespace: Some(namespace.clone()),
                        whole: true,
                        skip_namespaces: BTreeSet::new(),
                    })
                    .collect();
                lists.push(KindList {
                    kind,
                    namespace: None,
                    whole: false,
                    skip_namespaces: namespaces.into_iter().collect(),
                });
                lists
            }
            None => vec![KindList {
                kind,
                namespace: None,
                whole: false,
                skip_namespaces: BTreeSet::new(),
            }],
        }
    }
}

/// Kinds never worth listing when looking for objects to prune: they are created by
/// controllers, never by an app, and can be numerous.
const NOT_LISTED: &[&str] = &[
    "Event",
    "Endpoints",
    "EndpointSlice",
    "Lease",
    "ControllerRevision",
    "ComponentStatus",
    "Node",
    "Binding",
];

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded maps are caches: a panic elsewhere cannot leave them inconsistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub use diff::object_hash;

fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// A list the server will not give (forbidden, or the verb not allowed there): the caller
/// reads another way or has nothing to read.
fn refused_listing(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if (403..=405).contains(&status.code))
}

fn to_value(object: DynamicObject) -> Result<Value, ClusterError> {
    serde_json::to_value(object).map_err(|e| ClusterError::Other(e.to_string()))
}

/// Adds `fieldValidation` to a request: `Strict` (kubectl's default: unknown or duplicate
/// fields are refused with the server's message) or `Ignore` (`Validate=false`: they are
/// dropped).
fn with_field_validation(
    request: &mut http::Request<Vec<u8>>,
    validate: bool,
) -> Result<(), ClusterError> {
    let validation = if validate { "Strict" } else { "Ignore" };
    let separator = if request.uri().query().is_some() {
        '&'
    } else {
        '?'
    };
    let uri = format!("{}{separator}fieldValidation={validation}", request.uri());
    *request.uri_mut() = uri
        .parse()
        .map_err(|e: http::uri::InvalidUri| ClusterError::Other(e.to_string()))?;
    Ok(())
}

/// How an object is written: server-side apply (the default) or kubectl-style client-side
/// apply (`ServerSideApply=false`), with or without strict field validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyMode {
    pub server_side: bool,
    pub validate: bool,
}

impl ApplyMode {
    /// The desired object's hash, distinct per mode so a cached prediction of one mode never
    /// answers for the other.
    fn hash(self, desired: &Value) -> [u8; 32] {
        let mut hash = object_hash(desired);
        if !self.server_side {
            hash[0] ^= 0x80;
        }
        if !self.validate {
            hash[1] ^= 0x80;
        }
        hash
    }
}

/// What a client-side apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientApplyOutcome {
    Created,
    Configured,
    /// The three-way patch was empty: nothing was sent.
    Unchanged,
}

impl Cluster {
    /// A cluster with caches of [`CacheCapacities::default`].
    pub fn new(client: kube::Client) -> Self {
        let capacities = CacheCapacities::default();
        Self {
            client,
            requests: AtomicU64::new(0),
            kinds: Mutex::new(BoundedMap::new(capacities.kinds)),
            predictions: Mutex::new(BoundedMap::new(capacities.predictions)),
            results: diff::CompareCache::with_capacity(capacities.compare_results),
            server: None,
        }
    }

    /// The same cluster with empty caches of these capacities.
    pub fn with_cache_capacities(self, capacities: CacheCapacities) -> Self {
        Self {
            kinds: Mutex::new(BoundedMap::new(capacities.kinds)),
            predictions: Mutex::new(BoundedMap::new(capacities.predictions)),
            results: diff::CompareCache::with_capacity(capacities.compare_results),
            ..self
        }
    }

    fn kube_error(&self, error: kube::Error) -> ClusterError {
        ClusterError::from_kube(error, self.server.as_deref())
    }

    /// Connects with a kubeconfig file (or the default one) and an optional context.
    pub async fn connect(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
    ) -> Result<Self, ClusterError> {
        let options = kube::config::KubeConfigOptions {
            context: context.map(str::to_string),
            ..Default::default()
        };
        let path_text = kubeconfig
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(default)".to_string());
        let kubeconfig_error = |message: String| ClusterError::Kubeconfig {
            path: path_text.clone(),
            message,
        };
        let config = match kubeconfig {
            Some(path) => {
                let file = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| kubeconfig_error(e.to_string()))?;
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| kubeconfig_error(e.to_string()))?
            }
            None => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| kubeconfig_error(e.to_string()))?,
        };
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).map_err(|e| kubeconfig_error(e.to_string()))?;
        Ok(Self {
            server: Some(server),
            ..Self::new(client)
        })
    }

    /// The client this cluster talks through (for watches the engine does not make).
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Requests sent so far.
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// How `apiVersion`/`kind` is served; `None` when the cluster does not know it.
    pub async fn resolve(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<Option<ResolvedKind>, ClusterError> {
        let cache_key = (api_version.to_string(), kind.to_string());
        if let Some(known) = lock(&self.kinds).get(&cache_key) {
            return Ok(known.clone());
        }
        let (group, version) = split_api_version(api_version);
        self.count();
        let resolved = match discovery::pinned_kind(
            &self.client,
            &GroupVersionKind::gvk(group, version, kind),
        )
        .await
        {
            Ok((resource, capabilities)) => Some(ResolvedKind {
                resource,
                namespaced: capabilities.scope == kube::discovery::Scope::Namespaced,
            }),
            Err(kube::Error::Api(status)) if status.code == 404 => None,
            Err(kube::Error::Discovery(_)) => None,
            Err(error) => return Err(self.kube_error(error)),
        };
        lock(&self.kinds).insert(cache_key, resolved.clone());
        Ok(resolved)
    }

    /// Forgets kinds that were unknown (after CRDs were created).
    pub fn forget_unknown_kinds(&self) {
        lock(&self.kinds).retain(|_, resolved| resolved.is_some());
    }

    async fn resolved(&self, object: &Value) -> Result<ResolvedKind, ClusterError> {
        let api_version = json::api_version(object);
        let kind = json::kind(object);
        self.resolve(api_version, kind)
            .await?
            .ok_or_else(|| ClusterError::UnknownKind {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            })
    }

    fn api(&self, resolved: &ResolvedKind, namespace: &str) -> Api<DynamicObject> {
        if resolved.namespaced {
            Api::namespaced_with(self.client.clone(), namespace, &resolved.resource)
        } else {
            Api::all_with(self.client.clone(), &resolved.resource)
        }
    }

    /// Resolves the scope of every kind among `objects`, for [`diff::prepare_desired`].
    /// A kind the cluster does not serve yet but a CRD among `objects` defines takes the
    /// CRD's scope.
    pub async fn scopes(
        &self,
        objects: &[Value],
    ) -> Result<HashMap<(String, String), Scope>, ClusterError> {
        let crd_scopes = crd_scopes(objects);
        let mut scopes = HashMap::new();
        for object in objects {
            let api_version = json::api_version(object);
            let kind = json::kind(object);
            if api_version.is_empty() || kind.is_empty() {
                continue;
            }
            let group = plumb_model::group_of(api_version).to_string();
            if scopes.contains_key(&(group.clone(), kind.to_string())) {
                continue;
            }
            let scope = match self.resolve(api_version, kind).await? {
                Some(resolved) if resolved.namespaced => Scope::Namespaced,
                Some(_) => Scope::Cluster,
                None => crd_scopes
                    .get(&(group.clone(), kind.to_string()))
                    .copied()
                    .unwrap_or(Scope::Unknown),
            };
            scopes.insert((group, kind.to_string()), scope);
        }
        Ok(scopes)
    }

    /// The live objects that matter to an app: those at the desired keys (whoever owns them)
    /// and every object of a listable kind the app tracks, in any namespace, so objects the
    /// app left in namespaces nobody names any more are still found for pruning.
    ///
    /// Whole objects are read only where they are needed. A namespaced kind with desired
    /// objects is listed whole in their namespaces (up to [`WHOLE_LIST_NAMESPACES`] of them,
    /// cluster-wide beyond that), a cluster-scoped one cluster-wide; every other listing
    /// asks for metadata only (`PartialObjectMetadataList`), which is all the tracking
    /// annotation or label needs, and the few objects it finds tracked are then read one by
    /// one. On a cluster full of other teams' Deployments and ReplicaSets this reads their
    /// metadata, not their specs and statuses. Label tracking filters on the server.
    /// Lists run at most [`LIST_CONCURRENCY`] at a time; where a cluster-wide list is
    /// forbidden (RBAC), the kind is listed in `namespaces` and the desired objects'
    /// namespaces.
    ///
    /// The same reading in two halves, so a caller can overlap the second with its own
    /// work: [`Cluster::plan_live_state`], then [`Cluster::declared_live`] (the desired
    /// keys' objects, which dry-runs need) and [`Cluster::tracked_live`] (the app's objects
    /// elsewhere, which only prune and the app's status need).
    pub async fn live_state(
        &self,
        app: &str,
        tracking_method: TrackingMethod,
        desired: &BTreeMap<ResourceKey, Value>,
        namespaces: &[String],
    ) -> Result<BTreeMap<ResourceKey, Value>, ClusterError> {
        let discovery = self.discover_all().await?;
        let plan = self.plan_live_state(&discovery, app, tracking_method, desired, namespaces);
        let (declared, tracked) = futures::try_join!(
            self.declared_live(&plan, desired),
            self.tracked_live(&plan, desired)
        )?;
        Ok(merge_live(declared, tracked))
    }

    /// Every kind the cluster serves (preferred versions): aggregated discovery (two
    /// requests), or the per-group discovery of servers without it (Kubernetes before 1.26,
    /// or with the AggregatedDiscoveryEndpoint gate off). Such a server answers `/api` and
    /// `/apis` with their plain lists, which read as an aggregated list with no groups at
    /// all (a real server always has the core group), so that is the sign to ask group by
    /// group.
    ///
    /// What it finds also answers [`Cluster::resolve`] for those kinds' preferred versions,
    /// so resolving an app's kinds afterwards costs no request (one-shot commands start
    /// with an empty cache, and against a remote cluster each discovery request is a round
    /// trip).
    pub async fn discover_all(&self) -> Result<Discovery, ClusterError> {
        self.count();
        let aggregated = Discovery::new(self.client.clone())
            .run_aggregated()
            .await
            .map_err(|e| self.kube_error(e))?;
        let discovery = if aggregated.groups().next().is_some() {
            aggregated
        } else {
            self.count();
            Discovery::new(self.client.clone())
                .run()
                .await
                .map_err(|e| self.kube_error(e))?
        };
        let mut kinds = lock(&self.kinds);
        for group in discovery.groups() {
            for (resource, capabilities) in group.recommended_resources() {
                let cache_key = (resource.api_version.clone(), resource.kind.clone());
                // A kind already known keeps its entry (and counts as used: it is served).
                if kinds.get(&cache_key).is_none() {
                    kinds.insert(
                        cache_key,
                        Some(ResolvedKind {
                            namespaced: capabilities.scope == kube::discovery::Scope::Namespaced,
                            resource,
                        }),
                    );
                }
            }
        }
        drop(kinds);
        Ok(discovery)
    }

    /// Which lists read an app's live state, from what [`Cluster::discover_all`] found.
    pub fn plan_live_state(
        &self,
        discovery: &Discovery,
        app: &str,
        tracking_method: TrackingMethod,
        desired: &BTreeMap<ResourceKey, Value>,
        namespaces: &[String],
    ) -> LivePlan {
        let mut desired_namespaces: HashMap<(&str, &str), BTreeSet<&str>> = HashMap::new();
        for key in desired.keys() {
            desired_namespaces
                .entry((key.group.as_str(), key.kind.as_str()))
                .or_default()
                .insert(key.namespace.as_str());
        }
        let mut listed: HashSet<(String, String)> = HashSet::new();
        let mut lists: Vec<KindList> = Vec::new();
        for group in discovery.groups() {
            for (resource, capabilities) in group.recommended_resources() {
                if NOT_LISTED.contains(&resource.kind.as_str())
                    || !capabilities.supports_operation(verbs::LIST)
                    || !capabilities.supports_operation(verbs::DELETE)
                {
                    continue;
                }
                listed.insert((resource.group.clone(), resource.kind.clone()));
                let kind = ResolvedKind {
                    namespaced: capabilities.scope == kube::discovery::Scope::Namespaced,
                    resource,
                };
                let in_namespaces = desired_namespaces
                    .get(&(kind.resource.group.as_str(), kind.resource.kind.as_str()))
                    .map(|namespaces| {
                        namespaces
                            .iter()
                            .filter(|ns| !ns.is_empty())
                            .map(|ns| ns.to_string())
                            .collect::<Vec<_>>()
                    });
                lists.extend(KindList::for_kind(kind, in_namespaces));
            }
        }
        // The namespaces to fall back on where a cluster-wide list is forbidden.
        let mut fallback_namespaces: Vec<String> = namespaces.to_vec();
        fallback_namespaces.extend(desired.keys().map(|k| k.namespace.clone()));
        fallback_namespaces.retain(|ns| !ns.is_empty());
        fallback_namespaces.sort();
        fallback_namespaces.dedup();
        LivePlan {
            app: app.to_string(),
            tracking_method,
            selector: match tracking_method {
                TrackingMethod::Label => Some(tracking::label_selector(app)),
                _ => None,
            },
            lists,
            listed,
            fallback_namespaces,
        }
    }

    /// The whole live objects of the kinds an app declares, in the namespaces it declares
    /// them (the desired keys' objects, and the app's other objects there); desired objects
    /// of kinds that cannot be listed are read one by one.
    pub async fn declared_live(
        &self,
        plan: &LivePlan,
        desired: &BTreeMap<ResourceKey, Value>,
    ) -> Result<BTreeMap<ResourceKey, Value>, ClusterError> {
        let mut live = self.read_lists(plan, desired, true).await?;
        let unlisted: Vec<&Value> = desired
            .iter()
            .filter(|(key, object)| {
                !live.contains_key(*key)
                    && !plan.listed.contains(&(key.group.clone(), key.kind.clone()))
                    && !json::name(object).is_empty()
            })
            .map(|(_, object)| object)
            .collect();
        live.extend(self.read_each(unlisted).await?);
        Ok(live)
    }

    /// The app's objects that [`Cluster::declared_live`] does not read: found in metadata
    /// lists, then read whole: one by one, or, where at least [`BATCH_READ`] of them share a
    /// kind and a namespace (an app that left a whole namespace behind), by one whole list
    /// there instead of a request per object.
    pub async fn tracked_live(
        &self,
        plan: &LivePlan,
        desired: &BTreeMap<ResourceKey, Value>,
    ) -> Result<BTreeMap<ResourceKey, Value>, ClusterError> {
        let found = self.read_lists(plan, desired, false).await?;
        let mut groups: BTreeMap<(&str, &str, &str), Vec<&ResourceKey>> = BTreeMap::new();
        for key in found.keys() {
            groups
                .entry((&key.group, &key.kind, &key.namespace))
                .or_default()
                .push(key);
        }
        let mut live = BTreeMap::new();
        let mut one_by_one: Vec<&Value> = Vec::new();
        for ((group, kind, namespace), keys) in groups {
            let listable = plan
                .lists
                .iter()
                .find(|list| list.kind.resource.group == group && list.kind.resource.kind == kind);
            let batch = match listable {
                Some(list) if keys.len() >= BATCH_READ => Some(&list.kind),
                _ => None,
            };
            let Some(resolved) = batch else {
                one_by_one.extend(keys.iter().filter_map(|key| found.get(*key)));
                continue;
            };
            match self
                .list_items(resolved, Some(namespace), plan.selector.as_deref(), true)
                .await
            {
                Ok(items) => {
                    for object in items {
                        let key = diff::object_key(&object);
                        if keys.contains(&&key) {
                            live.insert(key, object);
                        }
                    }
                }
                // Listed by metadata but not readable as a whole list here: read each.
                Err(error) if refused_listing(&error) => {
                    one_by_one.extend(keys.iter().filter_map(|key| found.get(*key)));
                }
                Err(error) => return Err(self.kube_error(error)),
            }
        }
        live.extend(self.read_each(one_by_one).await?);
        Ok(live)
    }

    /// Runs the plan's whole lists (`whole`) or its metadata lists, keeping the items at a
    /// desired key or tracked by the app.
    async fn read_lists(
        &self,
        plan: &LivePlan,
        desired: &BTreeMap<ResourceKey, Value>,
        whole: bool,
    ) -> Result<BTreeMap<ResourceKey, Value>, ClusterError> {
        let selector = plan.selector.as_deref();
        let fallback = plan.fallback_namespaces.as_slice();
        // Built first, then streamed: see compare.rs on Send and borrowing closures.
        let pending: Vec<_> = plan
            .lists
            .iter()
            .filter(|list| list.whole == whole)
            .map(|list| async move { (list, self.list_kind(list, selector, fallback).await) })
            .collect();
        let results = futures::stream::iter(pending)
            .buffer_unordered(LIST_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let mut kept = BTreeMap::new();
        for (list, items) in results {
            for object in items? {
                let key = diff::object_key(&object);
                if !list.skip_namespaces.contains(&key.namespace)
                    && (desired.contains_key(&key)
                        || tracking::is_owned_by(&object, &plan.app, plan.tracking_method))
                {
                    kept.insert(key, object);
                }
            }
        }
        Ok(kept)
    }

    /// Reads each object whole ([`LIST_CONCURRENCY`] at a time); one gone meanwhile is left
    /// out.
    pub async fn read_each(
        &self,
        objects: Vec<&Value>,
    ) -> Result<BTreeMap<ResourceKey, Value>, ClusterError> {
        let pending: Vec<_> = objects.into_iter().map(|object| self.get(object)).collect();
        let read = futures::stream::iter(pending)
            .buffer_unordered(LIST_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let mut live = BTreeMap::new();
        for found in read {
            if let Some(object) = found? {
                live.insert(diff::object_key(&object), object);
            }
        }
        Ok(live)
    }

    /// One list of [`Cluster::live_state`], with apiVersion and kind filled in on every item:
    /// cluster-wide (per namespace of `fallback_namespaces` when that is forbidden), or in
    /// one namespace. A kind that may not be listed has nothing to prune.
    async fn list_kind(
        &self,
        list: &KindList,
        selector: Option<&str>,
        fallback_namespaces: &[String],
    ) -> Result<Vec<Value>, ClusterError> {
        let kind = &list.kind;
        let namespace = list.namespace.as_deref();
        match self.list_items(kind, namespace, selector, list.whole).await {
            Ok(items) => Ok(items),
            Err(error) if refused_listing(&error) && kind.namespaced && namespace.is_none() => {
                let mut items = Vec::new();
                for namespace in fallback_namespaces {
                    match self
                        .list_items(kind, Some(namespace), selector, list.whole)
                        .await
                    {
                        Ok(found) => items.extend(found),
                        Err(error) if refused_listing(&error) => {}
                        Err(error) => return Err(self.kube_error(error)),
                    }
                }
                Ok(items)
            }
            Err(error) if refused_listing(&error) => Ok(Vec::new()),
            Err(error) => Err(self.kube_error(error)),
        }
    }

    /// A `GET` list of one kind, read as JSON values: whole objects, or their metadata only
    /// (a server that does not offer `PartialObjectMetadataList` answers with whole objects,
    /// which read the same way).
    async fn list_items(
        &self,
        kind: &ResolvedKind,
        namespace: Option<&str>,
        selector: Option<&str>,
        whole: bool,
    ) -> Result<Vec<Value>, kube::Error> {
        use kube::core::Resource;
        let mut params = ListParams::default();
        if let Some(selector) = selector {
            params = params.labels(selector);
        }
        let namespace = namespace.filter(|_| kind.namespaced);
        let url_path = DynamicObject::url_path(&kind.resource, namespace);
        let mut request = kube::core::Request::new(url_path)
            .list(&params)
            .map_err(kube::Error::BuildRequest)?;
        if !whole {
            request.headers_mut().insert(
                http::header::ACCEPT,
                http::HeaderValue::from_static(METADATA_LIST_ONLY),
            );
        }
        self.count();
        let mut list: Value = self.client.request(request).await?;
        let items = match list.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        Ok(items
            .into_iter()
            .map(|mut item| {
                // Whole lists omit apiVersion/kind on items; metadata lists name
                // PartialObjectMetadata.
                if let Some(map) = item.as_object_mut() {
                    map.insert(
                        "apiVersion".into(),
                        Value::String(kind.resource.api_version.clone()),
                    );
                    map.insert("kind".into(), Value::String(kind.resource.kind.clone()));
                }
                item
            })
            .collect())
    }

    /// The live version of an object, `None` when absent or its kind is unknown.
    pub async fn get(&self, object: &Value) -> Result<Option<Value>, ClusterError> {
        let Some(resolved) = self
            .resolve(json::api_version(object), json::kind(object))
            .await?
        else {
            return Ok(None);
        };
        let api = self.api(&resolved, json::namespace(object));
        self.count();
        match api.get_opt(json::name(object)).await {
            Ok(found) => found.map(to_value).transpose(),
            Err(error) => Err(self.kube_error(error)),
        }
    }

    fn apply_params(validate: bool, dry_run: bool) -> PatchParams {
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        params = if validate {
            params.validation_strict()
        } else {
            params.validation_ignore()
        };
        if dry_run { params.dry_run() } else { params }
    }

    /// Server-side apply (field manager `plumb`, conflicts forced as Argo CD does).
    pub async fn apply(
        &self,
        object: &Value,
        validate: bool,
        dry_run: bool,
    ) -> Result<Value, ClusterError> {
        let resolved = self.resolved(object).await?;
        let api = self.api(&resolved, json::namespace(object));
        self.count();
        api.patch(
            json::name(object),
            &Self::apply_params(validate, dry_run),
            &Patch::Apply(object),
        )
        .await
        .map_err(|e| self.kube_error(e))
        .and_then(to_value)
    }

    /// Server-side apply for a sync's write, where only success matters: the server is asked
    /// for the object's metadata alone (`as=PartialObjectMetadata`), which spares it encoding
    /// the whole object and plumb reading it. Errors still come back as full `Status`es.
    pub async fn apply_write(&self, object: &Value, validate: bool) -> Result<(), ClusterError> {
        use kube::core::Resource;
        let resolved = self.resolved(object).await?;
        let namespace = resolved.namespaced.then(|| json::namespace(object));
        let url_path = DynamicObject::url_path(&resolved.resource, namespace);
        let request = kube::core::Request::new(url_path)
            .patch(
                json::name(object),
                &Self::apply_params(validate, false),
                &Patch::Apply(object),
            )
            .map_err(|e| ClusterError::Other(e.to_string()))?;
        self.send_for_status_only(request).await
    }

    /// `POST` with the field manager and the validation level of an apply
    /// (`fieldValidation=Strict`, or `Ignore` for `Validate=false`), optionally `dryRun=All`.
    pub async fn create(
        &self,
        object: &Value,
        validate: bool,
        dry_run: bool,
    ) -> Result<Value, ClusterError> {
        let request = self.create_request(object, validate, dry_run).await?;
        self.count();
        let created: DynamicObject = self
            .client
            .request(request)
            .await
            .map_err(|e| self.kube_error(e))?;
        to_value(created)
    }

    /// A dry-run create whose answer is not read beyond its status (metadata only, as in
    /// [`Cluster::apply_write`]): the server's defaulting, validation and admission still
    /// judge the object.
    pub async fn check_create(&self, object: &Value, validate: bool) -> Result<(), ClusterError> {
        let request = self.create_request(object, validate, true).await?;
        self.send_for_status_only(request).await
    }

    /// Sends a write whose answer is read only for success: the server is asked for the
    /// object's metadata alone (`as=PartialObjectMetadata`) and the body is not parsed.
    async fn send_for_status_only(
        &self,
        mut request: http::Request<Vec<u8>>,
    ) -> Result<(), ClusterError> {
        request.headers_mut().insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static(METADATA_ONLY),
        );
        self.count();
        self.client
            .request_text(request)
            .await
            .map(|_| ())
            .map_err(|e| self.kube_error(e))
    }

    async fn create_request(
        &self,
        object: &Value,
        validate: bool,
        dry_run: bool,
    ) -> Result<http::Request<Vec<u8>>, ClusterError> {
        use kube::core::Resource;
        let resolved = self.resolved(object).await?;
        let namespace = resolved.namespaced.then(|| json::namespace(object));
        let url_path = DynamicObject::url_path(&resolved.resource, namespace);
        let params = PostParams {
            dry_run,
            field_manager: Some(FIELD_MANAGER.to_string()),
        };
        let body = serde_json::to_vec(object).map_err(|e| ClusterError::Other(e.to_string()))?;
        let mut request = kube::core::Request::new(url_path)
            .create(&params, body)
            .map_err(|e| ClusterError::Other(e.to_string()))?;
        with_field_validation(&mut request, validate)?;
        Ok(request)
    }

    /// A strategic merge or JSON merge `PATCH` of a client-side apply (field manager
    /// `plumb`, field validation as for an apply).
    pub async fn patch(
        &self,
        object: &Value,
        patch: &Value,
        patch_type: PatchType,
        validate: bool,
        dry_run: bool,
    ) -> Result<Value, ClusterError> {
        let resolved = self.resolved(object).await?;
        let api = self.api(&resolved, json::namespace(object));
        let mut params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            dry_run,
            ..PatchParams::default()
        };
        params = if validate {
            params.validation_strict()
        } else {
            params.validation_ignore()
        };
        let body = match patch_type {
            PatchType::Strategic => Patch::Strategic(patch),
            PatchType::Merge => Patch::Merge(patch),
        };
        self.count();
        api.patch(json::name(object), &params, &body)
            .await
            .map_err(|e| self.kube_error(e))
            .and_then(to_value)
    }

    /// kubectl-style client-side apply (`ServerSideApply=false`): creates the object with
    /// its last-applied annotation, or sends the three-way patch (last-applied vs desired vs
    /// live); sends nothing when the patch is empty. `live` is the object as last read.
    pub async fn client_side_apply(
        &self,
        desired: &Value,
        live: Option<&Value>,
        validate: bool,
        dry_run: bool,
    ) -> Result<(Value, ClientApplyOutcome), ClusterError> {
        let modified = client_apply::with_last_applied(desired);
        let Some(live) = live else {
            let created = self.create(&modified, validate, dry_run).await?;
            return Ok((created, ClientApplyOutcome::Created));
        };
        let original = client_apply::last_applied_of(live);
        let patch_type = client_apply::patch_type(json::api_version(desired));
        let patch = client_apply::three_way_patch(original.as_ref(), &modified, live, patch_type);
        if patch.as_object().is_some_and(|p| p.is_empty()) {
            return Ok((live.clone(), ClientApplyOutcome::Unchanged));
        }
        let patched = self
            .patch(desired, &patch, patch_type, validate, dry_run)
            .await?;
        Ok((patched, ClientApplyOutcome::Configured))
    }

    /// `Replace=true`: PUT over the live object, or create it.
    pub async fn replace(
        &self,
        object: &Value,
        live: Option<&Value>,
    ) -> Result<Value, ClusterError> {
        let resolved = self.resolved(object).await?;
        let api = self.api(&resolved, json::namespace(object));
        let mut object = object.clone();
        let typed: DynamicObject;
        self.count();
        let result = match live {
            Some(live) => {
                let version = json::str_at(live, &["metadata", "resourceVersion"]).to_string();
                if let Some(metadata) = json::metadata_mut(&mut object) {
                    metadata.insert("resourceVersion".into(), Value::String(version));
                }
                typed = serde_json::from_value(object)
                    .map_err(|e| ClusterError::Other(e.to_string()))?;
                api.replace(
                    &typed.metadata.name.clone().unwrap_or_default(),
                    &PostParams {
                        dry_run: false,
                        field_manager: Some(FIELD_MANAGER.to_string()),
                    },
                    &typed,
                )
                .await
            }
            None => {
                typed = serde_json::from_value(object)
                    .map_err(|e| ClusterError::Other(e.to_string()))?;
                api.create(
                    &PostParams {
                        dry_run: false,
                        field_manager: Some(FIELD_MANAGER.to_string()),
                    },
                    &typed,
                )
                .await
            }
        };
        result.map_err(|e| self.kube_error(e)).and_then(to_value)
    }

    /// Deletes an object; absent objects count as deleted.
    pub async fn delete(
        &self,
        object: &Value,
        propagation: crate::sync::PropagationPolicy,
    ) -> Result<(), ClusterError> {
        let resolved = self.resolved(object).await?;
        let api = self.api(&resolved, json::namespace(object));
        let policy = match propagation {
            crate::sync::PropagationPolicy::Foreground => kube::api::PropagationPolicy::Foreground,
            crate::sync::PropagationPolicy::Background => kube::api::PropagationPolicy::Background,
            crate::sync::PropagationPolicy::Orphan => kube::api::PropagationPolicy::Orphan,
        };
        let params = DeleteParams {
            propagation_policy: Some(policy),
            ..DeleteParams::default()
        };
        self.count();
        match api.delete(json::name(object), &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(self.kube_error(error)),
        }
        // What was cached about the object is about a live version that is going away.
        let key = diff::object_key(object);
        lock(&self.predictions).remove(&key);
        self.results.forget(&key);
        Ok(())
    }

    /// The server's prediction of `desired` written the way `mode` says (SSA dry-run, or
    /// the dry-run of a client-side apply's create or three-way patch), cached by the live
    /// object's resourceVersion and the hash of the desired object and mode.
    pub async fn predict(
        &self,
        key: &ResourceKey,
        desired: &Value,
        live: Option<&Value>,
        mode: ApplyMode,
    ) -> Result<Value, ClusterError> {
        let live_version = live
            .map(|l| json::str_at(l, &["metadata", "resourceVersion"]).to_string())
            .unwrap_or_default();
        let hash = mode.hash(desired);
        if let Some(entry) = lock(&self.predictions).get(key)
            && entry.live_resource_version == live_version
            && entry.desired_hash == hash
        {
            return Ok(entry.predicted.clone());
        }
        let predicted = match (live, mode.server_side) {
            // A new object: a dry-run create asks the server for the same defaulting,
            // validation and admission at a fraction of an apply's cost.
            // (Without validation an apply is what refuses undeclared fields, so ask it.)
            (None, true) if mode.validate => self.create(desired, true, true).await?,
            (_, true) => self.apply(desired, mode.validate, true).await?,
            (_, false) => {
                self.client_side_apply(desired, live, mode.validate, true)
                    .await?
                    .0
            }
        };
        lock(&self.predictions).insert(
            key.clone(),
            CachedPrediction {
                live_resource_version: live_version,
                desired_hash: hash,
                predicted: predicted.clone(),
            },
        );
        Ok(predicted)
    }

    /// Compare results of this cluster's objects, for [`diff::compare_app`].
    pub fn compare_results(&self) -> &diff::CompareCache {
        &self.results
    }

    /// Whether a prediction for this (key, live, desired, mode) is cached.
    pub fn is_cached(
        &self,
        key: &ResourceKey,
        desired: &Value,
        live: Option<&Value>,
        mode: ApplyMode,
    ) -> bool {
        let live_version = live
            .map(|l| json::str_at(l, &["metadata", "resourceVersion"]).to_string())
            .unwrap_or_default();
        lock(&self.predictions).get(key).is_some_and(|e| {
            e.live_resource_version == live_version && e.desired_hash == mode.hash(desired)
        })
    }
}

/// Scopes declared by CRDs among `objects`, by (group, kind).
pub fn crd_scopes(objects: &[Value]) -> HashMap<(String, String), Scope> {
    objects
        .iter()
        .filter(|o| {
            json::kind(o) == "CustomResourceDefinition" && json::group(o) == "apiextensions.k8s.io"
        })
        .map(|crd| {
            let group = json::str_at(crd, &["spec", "group"]).to_string();
            let kind = json::str_at(crd, &["spec", "names", "kind"]).to_string();
            let scope = if json::str_at(crd, &["spec", "scope"]) == "Cluster" {
                Scope::Cluster
            } else {
                Scope::Namespaced
            };
            ((group, kind), scope)
        })
        .collect()
}

impl Cluster {
    /// Lists the objects of a kind in a namespace ("" = cluster-wide or cluster-scoped).
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
    ) -> Result<Vec<Value>, ClusterError> {
        let Some(resolved) = self.resolve(api_version, kind).await? else {
            return Ok(Vec::new());
        };
        let api = if resolved.namespaced && namespace.is_empty() {
            Api::all_with(self.client.clone(), &resolved.resource)
        } else {
            self.api(&resolved, namespace)
        };
        self.count();
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| self.kube_error(e))?;
        list.items
            .into_iter()
            .map(|item| {
                let mut object = to_value(item)?;
                if let Some(map) = object.as_object_mut() {
                    map.insert("apiVersion".into(), Value::String(api_version.to_string()));
                    map.insert("kind".into(), Value::String(kind.to_string()));
                }
                Ok(object)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(group: &str, kind: &str, namespaced: bool) -> ResolvedKind {
        let api_version = if group.is_empty() {
            "v1".to_string()
        } else {
            format!("{group}/v1")
        };
        ResolvedKind {
            resource: ApiResource {
                group: group.into(),
                version: "v1".into(),
                api_version,
                kind: kind.into(),
                plural: format!("{}s", kind.to_lowercase()),
            },
            namespaced,
        }
    }

    /// (namespace, whole, skipped namespaces) of each list, for comparing plans.
    fn shape(lists: &[KindList]) -> Vec<(Option<&str>, bool, Vec<&str>)> {
        lists
            .iter()
            .map(|list| {
                (
                    list.namespace.as_deref(),
                    list.whole,
                    list.skip_namespaces.iter().map(String::as_str).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn kinds_the_app_does_not_declare_are_listed_as_metadata_cluster_wide() {
        let lists = KindList::for_kind(kind("apps", "ReplicaSet", true), None);
        assert_eq!(shape(&lists), vec![(None, false, vec![])]);
    }

    #[test]
    fn declared_namespaced_kinds_are_read_whole_only_in_their_namespaces() {
        let lists = KindList::for_kind(
            kind("", "ConfigMap", true),
            Some(vec!["shop".into(), "staging".into()]),
        );
        assert_eq!(
            shape(&lists),
            vec![
                (Some("shop"), true, vec![]),
                (Some("staging"), true, vec![]),
                (None, false, vec!["shop", "staging"]),
            ]
        );
    }

    #[test]
    fn declared_cluster_kinds_and_widely_spread_kinds_are_read_whole_cluster_wide() {
        let cluster_scoped = KindList::for_kind(
            kind("rbac.authorization.k8s.io", "ClusterRole", false),
            Some(Vec::new()),
        );
        assert_eq!(shape(&cluster_scoped), vec![(None, true, vec![])]);
        let spread: Vec<String> = (0..=WHOLE_LIST_NAMESPACES)
            .map(|i| format!("team-{i}"))
            .collect();
        let lists = KindList::for_kind(kind("", "Secret", true), Some(spread));
        assert_eq!(shape(&lists), vec![(None, true, vec![])]);
        // A namespaced object declared without a namespace (reported elsewhere as an
        // error) leaves nothing to narrow the list by.
        let lists = KindList::for_kind(kind("", "Service", true), Some(Vec::new()));
        assert_eq!(shape(&lists), vec![(None, true, vec![])]);
    }
}
