//! The live cache: one watch per destination and kind (not per app) of the kinds apps
//! manage. It serves two purposes. Events queue the owning app at once, so a `kubectl
//! delete` or `kubectl edit` of a managed object is seen as it happens. And the objects it
//! holds answer the app's compares ([`LiveReader`]), so a reconcile reads no list and no
//! discovery from the cluster: with a thousand apps on one cluster, listing per compare
//! costs each app in proportion to everyone's objects.
//!
//! What it keeps: for every object of a watched kind its key and owning app; whole objects
//! (without `managedFields`) only for objects an app tracks. Untracked objects at a desired
//! key (about to be adopted) are read from the cluster by the compare.

use crate::destinations::Destination;
use crate::queue::WorkQueue;
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher;
use plumb_engine::compare::{CachedLive, LiveReader};
use plumb_engine::settings::TrackingMethod;
use plumb_model::ResourceKey;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// (group, kind)
pub type KindKey = (String, String);

/// (destination server, tracking method, group, version, kind)
type WatchKey = (String, TrackingMethod, String, String, String);

/// How long a reconcile waits for a kind's first list before comparing without the cache.
const FIRST_LIST_WAIT: Duration = Duration::from_secs(2);

/// One live object as the cache keeps it.
#[derive(Debug)]
struct Entry {
    owner: Option<String>,
    /// The whole object, for objects an app tracks.
    object: Option<Arc<Value>>,
}

#[derive(Debug, Default)]
struct State {
    /// Kinds whose watch has listed and is current.
    synced: HashSet<KindKey>,
    /// The apiVersion each watched kind is served at (for stubs of objects to read).
    api_versions: HashMap<KindKey, String>,
    /// When each kind's watch started (its first list is awaited that long at most).
    started_at: HashMap<KindKey, tokio::time::Instant>,
    objects: HashMap<ResourceKey, Entry>,
    by_app: HashMap<String, HashSet<ResourceKey>>,
}

impl State {
    fn remove(&mut self, key: &ResourceKey) -> Option<Entry> {
        let entry = self.objects.remove(key)?;
        if let Some(owner) = &entry.owner
            && let Some(keys) = self.by_app.get_mut(owner)
        {
            keys.remove(key);
            if keys.is_empty() {
                self.by_app.remove(owner);
            }
        }
        Some(entry)
    }

    fn insert(&mut self, key: ResourceKey, entry: Entry) -> Option<Entry> {
        let old = self.remove(&key);
        if let Some(owner) = &entry.owner {
            self.by_app
                .entry(owner.clone())
                .or_default()
                .insert(key.clone());
        }
        self.objects.insert(key, entry);
        old
    }
}

/// The cache of one destination, read with one tracking method.
#[derive(Debug)]
pub struct DestinationCache {
    method: TrackingMethod,
    state: RwLock<State>,
}

impl DestinationCache {
    fn state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn state_mut(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Objects held and tracked (whole objects kept), for the measurements.
    pub fn len(&self) -> (usize, usize) {
        let state = self.state();
        let held = state
            .objects
            .values()
            .filter(|e| e.object.is_some())
            .count();
        (state.objects.len(), held)
    }

    /// An entry for a live object: its owner, and the object itself when it has one.
    fn entry(&self, object: Value) -> (ResourceKey, Entry) {
        let key = plumb_engine::diff::object_key(&object);
        let owner = plumb_engine::tracking::owner(&object, self.method);
        let object = owner.as_ref().map(|_| {
            let mut object = object;
            if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.remove("managedFields");
            }
            Arc::new(object)
        });
        (key, Entry { owner, object })
    }
}

/// The live caches and their watches, by destination.
pub struct LiveCache {
    caches: Mutex<HashMap<(String, TrackingMethod), Arc<DestinationCache>>>,
    started: Mutex<HashSet<WatchKey>>,
    cancel: CancellationToken,
}

impl Default for LiveCache {
    fn default() -> Self {
        Self {
            caches: Mutex::new(HashMap::new()),
            started: Mutex::new(HashSet::new()),
            cancel: CancellationToken::new(),
        }
    }
}

impl LiveCache {
    /// The cache of `destination` under `method`, created empty on first use.
    pub fn cache(&self, server: &str, method: TrackingMethod) -> Arc<DestinationCache> {
        self.caches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((server.to_string(), method))
            .or_insert_with(|| {
                Arc::new(DestinationCache {
                    method,
                    state: RwLock::new(State::default()),
                })
            })
            .clone()
    }

    /// Makes sure each of `kinds` (group, version, kind) is watched on `destination`;
    /// events queue the owning app. Returns the destination's cache.
    pub fn watch(
        &self,
        queue: &Arc<WorkQueue>,
        destination: &Destination,
        kinds: impl Iterator<Item = (String, String, String)>,
        method: TrackingMethod,
    ) -> Arc<DestinationCache> {
        let cache = self.cache(&destination.server, method);
        for (group, version, kind) in kinds {
            if version.is_empty() || kind.is_empty() {
                continue;
            }
            let key = (
                destination.server.clone(),
                method,
                group.clone(),
                version.clone(),
                kind.clone(),
            );
            if !self
                .started
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key)
            {
                continue;
            }
            cache
                .state_mut()
                .started_at
                .insert((group.clone(), kind.clone()), tokio::time::Instant::now());
            let api_version = if group.is_empty() {
                version
            } else {
                format!("{group}/{version}")
            };
            tokio::spawn(watch_kind(
                destination.clone(),
                api_version,
                kind,
                queue.clone(),
                cache.clone(),
                self.cancel.clone(),
            ));
        }
        cache
    }

    /// Objects the watches know of, by destination server (`argocd_cluster_api_resource_objects`).
    pub fn object_counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for ((server, _), cache) in self.caches.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let (objects, _) = cache.len();
            *counts.entry(server.clone()).or_default() += objects as u64;
        }
        counts
    }

    /// How many (destination, kind) watches run.
    pub fn len(&self) -> usize {
        self.started.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn shut_down(&self) {
        self.cancel.cancel();
    }
}

/// Whether `kinds` are listed, waiting for watches that started less than
/// [`FIRST_LIST_WAIT`] ago to list: a burst of new apps then reads the cache rather than
/// each listing the whole cluster. A kind whose watch cannot list (not served, cluster
/// away) is not waited for again.
pub async fn wait_covered(cache: &DestinationCache, kinds: &[KindKey]) -> bool {
    loop {
        let deadline = {
            let state = cache.state();
            let mut deadline = None;
            for kind in kinds {
                if state.synced.contains(kind) {
                    continue;
                }
                match state.started_at.get(kind) {
                    Some(started) if started.elapsed() < FIRST_LIST_WAIT => {
                        deadline = Some(*started + FIRST_LIST_WAIT);
                    }
                    _ => return false,
                }
            }
            match deadline {
                None => return true,
                Some(deadline) => deadline,
            }
        };
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One app's view of a destination's cache, as the engine's compare reads it.
#[derive(Debug)]
pub struct AppLiveView {
    pub cache: Arc<DestinationCache>,
    /// Kinds the app had resources of, beyond the desired ones (prune candidates).
    pub extra_kinds: Vec<KindKey>,
    /// Read held objects from the cluster anyway: ignore rules on `managedFieldsManagers`
    /// need the `managedFields` the cache drops.
    pub read_whole: bool,
}

impl LiveReader for AppLiveView {
    fn read(&self, app: &str, desired: &BTreeMap<ResourceKey, Value>) -> Option<CachedLive> {
        let kinds: HashSet<KindKey> = desired
            .keys()
            .map(|k| (k.group.clone(), k.kind.clone()))
            .chain(self.extra_kinds.iter().cloned())
            .collect();
        let state = self.cache.state();
        if !kinds.iter().all(|kind| state.synced.contains(kind)) {
            return None;
        }
        let mut cached = CachedLive::default();
        let mut take = |key: &ResourceKey, entry: &Entry| match (&entry.object, self.read_whole) {
            (Some(object), false) => {
                cached.objects.insert(key.clone(), (**object).clone());
            }
            _ => {
                let kind = (key.group.clone(), key.kind.clone());
                if let Some(api_version) = state.api_versions.get(&kind) {
                    let mut stub = serde_json::json!({
                        "apiVersion": api_version,
                        "kind": key.kind,
                        "metadata": {"name": key.name},
                    });
                    if !key.namespace.is_empty() {
                        stub["metadata"]["namespace"] = key.namespace.clone().into();
                    }
                    cached.unread.push(stub);
                }
            }
        };
        for key in desired.keys() {
            if let Some(entry) = state.objects.get(key) {
                take(key, entry);
            }
        }
        for key in state.by_app.get(app).into_iter().flatten() {
            if !desired.contains_key(key)
                && kinds.contains(&(key.group.clone(), key.kind.clone()))
                && let Some(entry) = state.objects.get(key)
            {
                take(key, entry);
            }
        }
        Some(cached)
    }
}

/// A watched object as a JSON value with its apiVersion and kind (list items lack them).
fn to_value(object: &DynamicObject, api_version: &str, kind: &str) -> Option<Value> {
    let mut value = serde_json::to_value(object).ok()?;
    let map = value.as_object_mut()?;
    map.insert("apiVersion".into(), Value::String(api_version.to_string()));
    map.insert("kind".into(), Value::String(kind.to_string()));
    Some(value)
}

async fn watch_kind(
    destination: Destination,
    api_version: String,
    kind: String,
    queue: Arc<WorkQueue>,
    cache: Arc<DestinationCache>,
    cancel: CancellationToken,
) {
    // The kind may not be served yet (a CRD the app itself creates): look again later.
    let resource = loop {
        match destination.cluster.resolve(&api_version, &kind).await {
            Ok(Some(resolved)) => break resolved.resource,
            Ok(None) | Err(_) => {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                destination.cluster.forget_unknown_kinds();
            }
        }
    };
    let kind_key: KindKey = (resource.group.clone(), resource.kind.clone());
    let api_version = resource.api_version.clone();
    cache
        .state_mut()
        .api_versions
        .insert(kind_key.clone(), api_version.clone());
    let api: Api<DynamicObject> = Api::all_with(destination.cluster.client().clone(), &resource);
    let stream = watcher(api, watcher::Config::default());
    let mut stream = std::pin::pin!(stream);
    let mut listing: Vec<(ResourceKey, Entry)> = Vec::new();
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            event = stream.next() => event,
        };
        let Some(event) = event else { return };
        let mut owners: Vec<String> = Vec::new();
        match event {
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(object)) => {
                if let Some(value) = to_value(&object, &api_version, &kind) {
                    listing.push(cache.entry(value));
                }
            }
            Ok(watcher::Event::InitDone) => {
                // The list replaces what was held of this kind; every owner before or
                // after is looked at again (events while no watch ran are in the list).
                let mut state = cache.state_mut();
                let stale: Vec<ResourceKey> = state
                    .objects
                    .keys()
                    .filter(|k| k.group == kind_key.0 && k.kind == kind_key.1)
                    .cloned()
                    .collect();
                for key in stale {
                    if let Some(Entry {
                        owner: Some(owner), ..
                    }) = state.remove(&key)
                    {
                        owners.push(owner);
                    }
                }
                for (key, entry) in listing.drain(..) {
                    owners.extend(entry.owner.clone());
                    state.insert(key, entry);
                }
                state.synced.insert(kind_key.clone());
            }
            Ok(watcher::Event::Apply(object)) => {
                if let Some(value) = to_value(&object, &api_version, &kind) {
                    let (key, entry) = cache.entry(value);
                    owners.extend(entry.owner.clone());
                    if let Some(old) = cache.state_mut().insert(key, entry) {
                        owners.extend(old.owner);
                    }
                }
            }
            Ok(watcher::Event::Delete(object)) => {
                if let Some(value) = to_value(&object, &api_version, &kind) {
                    let key = plumb_engine::diff::object_key(&value);
                    if let Some(old) = cache.state_mut().remove(&key) {
                        owners.extend(old.owner);
                    }
                }
            }
            Err(error) => {
                // Until the watch lists again, compares read the cluster (and see whether
                // it is reachable) instead of trusting what may be stale.
                cache.state_mut().synced.remove(&kind_key);
                tracing::debug!(server = %destination.server, %kind, %error, "live watch; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
        owners.sort();
        owners.dedup();
        for owner in owners {
            queue.add(&owner);
        }
    }
}
