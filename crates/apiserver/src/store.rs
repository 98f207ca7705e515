//! Durable object storage: an in-memory index over a redb file, a single writer thread
//! doing group commit, and the watch event history.
//!
//! Architecture invariant: nothing is visible to readers or watchers before it is durable.
//! The writer drains every pending request, checks preconditions against the index plus
//! the batch's own earlier changes, writes the whole batch in ONE redb transaction
//! (fsync), and only then applies it to the index, records the events and acknowledges.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::Error;

/// The on-disk format this build writes and reads.
///
/// 2: objects carry `metadata.managedFields`, which this build keeps up to date on every
/// write; a build of format 1 would leave them stale, so it must refuse such a store.
/// A format-1 store (objects without managedFields) is upgraded in place when opened:
/// its objects are valid format-2 objects whose fields no manager owns yet.
pub(crate) const FORMAT_VERSION: u64 = 2;

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_FORMAT: &str = "format_version";
const META_RV: &str = "resource_version";

/// Most requests one batch takes, so one huge burst still acknowledges progressively.
const MAX_BATCH: usize = 4096;

/// One stored object: its JSON bytes plus the fields selectors and listing need.
#[derive(Debug)]
pub(crate) struct Obj {
    pub bytes: Bytes,
    pub namespace: String,
    pub name: String,
    /// Compact (a boxed slice of pairs): a BTreeMap costs a 500-byte node per object.
    pub labels: Box<[(Box<str>, Box<str>)]>,
    /// The uids of `metadata.ownerReferences` (for garbage collection).
    pub owners: Box<[Box<str>]>,
    pub rv: u64,
    /// Where `metadata` lies in `bytes` ([`metadata_span`]), found once per write so that
    /// metadata-only lists and watches copy it without scanning.
    pub metadata: MetadataSpan,
}

/// A byte range of an object's serialized `metadata`; empty when it has none.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MetadataSpan {
    start: u32,
    end: u32,
}

/// Where `bytes`' top-level `metadata` value lies.
pub(crate) fn metadata_span(bytes: &[u8]) -> MetadataSpan {
    crate::partial::metadata_span(bytes)
        .and_then(|span| {
            Some(MetadataSpan {
                start: u32::try_from(span.start).ok()?,
                end: u32::try_from(span.end).ok()?,
            })
        })
        .unwrap_or_default()
}

impl Obj {
    pub fn value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(&self.bytes)
    }

    /// The serialized `metadata` value, if the object has one.
    pub fn metadata_bytes(&self) -> Option<&[u8]> {
        let MetadataSpan { start, end } = self.metadata;
        (end > start)
            .then(|| self.bytes.get(start as usize..end as usize))
            .flatten()
    }

    /// Whether the object passes a field selector (parsing it only for content fields).
    pub fn matches_fields(&self, fields: &crate::selector::FieldSelector) -> bool {
        if fields.needs_object() {
            let value = self.value().ok();
            fields.matches_object(&self.namespace, &self.name, value.as_ref())
        } else {
            fields.matches(&self.namespace, &self.name)
        }
    }
}

/// Where an object lives: resource (`group/resource`), namespace ("" if cluster-scoped),
/// name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ObjKey {
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl ObjKey {
    fn encode(&self) -> String {
        format!("{}\0{}\0{}", self.resource, self.namespace, self.name)
    }
    fn decode(s: &str) -> Option<ObjKey> {
        let mut parts = s.splitn(3, '\0');
        Some(ObjKey {
            resource: parts.next()?.to_string(),
            namespace: parts.next()?.to_string(),
            name: parts.next()?.to_string(),
        })
    }
}

/// What a write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Create: nothing there yet.
    Absent,
    /// The object exists with exactly this resourceVersion.
    Rv(u64),
}

/// One write.
#[derive(Debug)]
pub(crate) enum Op {
    /// Store `object` (its metadata.resourceVersion is set by the store).
    Put {
        key: ObjKey,
        expect: Expect,
        object: Value,
    },
    /// Remove the object.
    Delete { key: ObjKey, expect: Expect },
}

/// What happened to one write.
#[derive(Debug)]
pub(crate) enum Outcome {
    Written(Arc<Obj>),
    NotFound,
    AlreadyExists,
    Conflict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// A change, as watchers see it.
#[derive(Debug)]
pub(crate) struct Event {
    pub type_: EventType,
    pub resource: String,
    /// The object after the change (for DELETED: the last state, with the deletion's RV).
    pub object: Arc<Obj>,
    /// The object before the change (for MODIFIED and DELETED).
    pub previous: Option<Arc<Obj>>,
}

impl Event {
    pub fn rv(&self) -> u64 {
        self.object.rv
    }
}

struct WatcherSlot {
    resource: String,
    namespace: Option<String>,
    tx: mpsc::Sender<Arc<Event>>,
}

/// A watch from a resourceVersion that history no longer holds.
#[derive(Debug)]
pub(crate) struct Expired {
    pub requested: u64,
    pub oldest: u64,
}

/// A registered watcher: the events it must send first, then the live queue.
pub(crate) struct Subscription {
    pub backlog: Vec<Arc<Event>>,
    /// The cluster's resourceVersion when the watcher registered.
    pub snapshot_rv: u64,
    pub rx: mpsc::Receiver<Arc<Event>>,
}

struct State {
    objects: HashMap<String, BTreeMap<(String, String), Arc<Obj>>>,
    rv: u64,
    history: VecDeque<Arc<Event>>,
    history_cap: usize,
    /// Highest resourceVersion whose event is no longer in history.
    compacted_rv: u64,
    watchers: Vec<WatcherSlot>,
    /// How many objects name each owner uid: deletes of objects nobody owns (nearly all)
    /// skip the scan for dependents.
    owned: HashMap<Box<str>, usize>,
}

impl State {
    fn count_owners(&mut self, obj: &Obj, delta: isize) {
        for uid in obj.owners.iter() {
            let entry = self.owned.entry(uid.clone()).or_insert(0);
            *entry = entry.saturating_add_signed(delta);
            if *entry == 0 {
                self.owned.remove(uid);
            }
        }
    }
}

impl State {
    fn get(&self, key: &ObjKey) -> Option<Arc<Obj>> {
        self.objects
            .get(&key.resource)?
            .get(&(key.namespace.clone(), key.name.clone()))
            .cloned()
    }
}

type Reply = oneshot::Sender<Result<Vec<Outcome>, StoreError>>;

struct WriteRequest {
    ops: Vec<Op>,
    reply: oneshot::Sender<Result<Vec<Outcome>, StoreError>>,
}

/// A write could not be made durable (or the store is shutting down).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct StoreError(pub String);

/// The store: shared by all handlers.
pub(crate) struct Store {
    state: RwLock<State>,
    writer: std::sync::Mutex<Option<mpsc::Sender<WriteRequest>>>,
    writer_thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn storage<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError(e.to_string())
}

fn corrupt(path: &Path, detail: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

#[derive(serde::Deserialize)]
struct MetaOnly {
    metadata: MetaFields,
}

#[derive(serde::Deserialize)]
struct MetaFields {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default, rename = "ownerReferences")]
    owner_references: Vec<OwnerRef>,
    #[serde(default, rename = "resourceVersion")]
    resource_version: Option<String>,
}

#[derive(serde::Deserialize)]
struct OwnerRef {
    #[serde(default)]
    uid: String,
}

/// Builds an [`Obj`] from serialized bytes already carrying their resourceVersion.
fn obj_from_bytes(key: &ObjKey, bytes: Bytes) -> Result<Obj, String> {
    let meta: MetaOnly = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    let rv = meta
        .metadata
        .resource_version
        .as_deref()
        .and_then(|s| s.parse().ok())
        .ok_or("missing resourceVersion")?;
    Ok(Obj {
        metadata: metadata_span(&bytes),
        bytes,
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        labels: meta
            .metadata
            .labels
            .into_iter()
            .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
            .collect(),
        owners: meta
            .metadata
            .owner_references
            .into_iter()
            .map(|o| o.uid.into_boxed_str())
            .collect(),
        rv,
    })
}

/// Puts `apiVersion` and `kind` first, so lists can drop them from items cheaply (as
/// Kubernetes' typed lists do) by cutting a known prefix.
fn type_fields_first(object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let mut keys = map.keys();
    if keys.next().map(String::as_str) == Some("apiVersion")
        && keys.next().map(String::as_str) == Some("kind")
    {
        return;
    }
    let old = std::mem::take(map);
    let mut rest = serde_json::Map::new();
    for (k, v) in old {
        match k.as_str() {
            "apiVersion" | "kind" => {
                map.insert(k, v);
            }
            _ => {
                rest.insert(k, v);
            }
        }
    }
    // `map` now holds at most apiVersion then kind in the order met; fix it if reversed.
    if map.keys().next().map(String::as_str) == Some("kind") {
        let kind = map.remove("kind");
        let api_version = map.remove("apiVersion");
        if let Some(av) = api_version {
            map.insert("apiVersion".into(), av);
        }
        if let Some(k) = kind {
            map.insert("kind".into(), k);
        }
    }
    map.extend(rest);
}

fn stamp(key: &ObjKey, mut object: Value, rv: u64) -> Result<Obj, StoreError> {
    type_fields_first(&mut object);
    let owners = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid")?.as_str())
                .map(Box::from)
                .collect()
        })
        .unwrap_or_default();
    let labels = object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str().into(), v.as_str()?.into())))
                .collect()
        })
        .unwrap_or_default();
    match object.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(meta) => {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        None => return Err(StoreError("object without metadata".into())),
    }
    // Into a boxed slice: the serializer's spare capacity would otherwise stay allocated
    // for the object's lifetime.
    let bytes = Bytes::from(
        serde_json::to_vec(&object)
            .map_err(storage)?
            .into_boxed_slice(),
    );
    Ok(Obj {
        metadata: metadata_span(&bytes),
        bytes,
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        labels,
        owners,
        rv,
    })
}

impl Store {
    /// Opens or creates the store file; never modifies a file it refuses.
    pub(crate) fn open(
        path: &Path,
        cache_bytes: usize,
        history_cap: usize,
    ) -> Result<Arc<Store>, Error> {
        let exists = path.exists();
        if exists {
            // Look first through a read-only handle, which cannot modify the file: a store
            // we refuse must stay byte-for-byte as it was.
            match redb::ReadOnlyDatabase::open(path) {
                Ok(ro) => {
                    check_format(&ro, path)?;
                }
                // Not shut down cleanly (a crash or SIGKILL): opening it for writing below
                // runs redb's recovery to the last committed transaction.
                Err(redb::DatabaseError::RepairAborted) => {}
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    return Err(Error::InUse {
                        path: path.to_path_buf(),
                    });
                }
                Err(other) => return Err(corrupt(path, other)),
            }
        }
        let mut builder = redb::Database::builder();
        builder.set_cache_size(cache_bytes);
        let opened = if exists {
            builder.open(path)
        } else {
            builder.create(path)
        };
        let db = opened.map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::InUse {
                path: path.to_path_buf(),
            },
            other => corrupt(path, other),
        })?;
        let (rv, objects) = if exists {
            load(&db, path)?
        } else {
            init(&db)
                .map_err(|e| Error::Storage(format!("{}: initialising: {e}", path.display())))?;
            (0, HashMap::new())
        };
        let mut owned: HashMap<Box<str>, usize> = HashMap::new();
        for obj in objects.values().flat_map(|m| m.values()) {
            for uid in obj.owners.iter() {
                *owned.entry(uid.clone()).or_insert(0) += 1;
            }
        }
        let state = State {
            owned,
            objects,
            rv,
            history: VecDeque::with_capacity(history_cap.min(100_000)),
            history_cap: history_cap.max(1),
            compacted_rv: rv,
            watchers: Vec::new(),
        };
        let store = Arc::new(Store {
            state: RwLock::new(state),
            writer: std::sync::Mutex::new(None),
            writer_thread: std::sync::Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel::<WriteRequest>(8192);
        let for_thread = Arc::clone(&store);
        let path_owned: PathBuf = path.to_path_buf();
        let handle = std::thread::Builder::new()
            .name("plumb-store-writer".into())
            .spawn(move || writer_loop(db, for_thread, rx, path_owned))
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if let Ok(mut w) = store.writer.lock() {
            *w = Some(tx);
        }
        if let Ok(mut t) = store.writer_thread.lock() {
            *t = Some(handle);
        }
        Ok(store)
    }

    /// Applies the writes (each on its own: one failing precondition does not stop the
    /// others) and returns once they are durable.
    pub(crate) async fn write(&self, ops: Vec<Op>) -> Result<Vec<Outcome>, StoreError> {
        let tx = self
            .writer
            .lock()
            .map_err(|_| StoreError("store lock poisoned".into()))?
            .clone()
            .ok_or_else(|| StoreError("the server is shutting down".into()))?;
        let (reply, rx) = oneshot::channel();
        tx.send(WriteRequest { ops, reply })
            .await
            .map_err(|_| StoreError("the server is shutting down".into()))?;
        rx.await
            .map_err(|_| StoreError("the store writer stopped".into()))?
    }

    /// One write.
    pub(crate) async fn write_one(&self, op: Op) -> Result<Outcome, StoreError> {
        self.write(vec![op])
            .await?
            .pop()
            .ok_or_else(|| StoreError("no outcome".into()))
    }

    /// Stops the writer after it has finished everything already queued.
    pub(crate) fn close(&self) {
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
        let handle = self.writer_thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
        if let Ok(mut s) = self.state.write() {
            s.watchers.clear();
        }
    }

    pub(crate) fn get(&self, key: &ObjKey) -> Option<Arc<Obj>> {
        self.state.read().ok()?.get(key)
    }

    pub(crate) fn current_rv(&self) -> u64 {
        self.state.read().map(|s| s.rv).unwrap_or(0)
    }

    /// All objects of a resource (in one namespace when given), ordered by namespace and
    /// name, starting after `after`, plus the resourceVersion of this snapshot.
    pub(crate) fn list(
        &self,
        resource: &str,
        namespace: Option<&str>,
        after: Option<&(String, String)>,
    ) -> (Vec<Arc<Obj>>, u64) {
        let Ok(state) = self.state.read() else {
            return (Vec::new(), 0);
        };
        let rv = state.rv;
        let Some(map) = state.objects.get(resource) else {
            return (Vec::new(), rv);
        };
        use std::ops::Bound;
        let lower = match after {
            Some(k) => Bound::Excluded(k.clone()),
            None => match namespace {
                Some(ns) => Bound::Included((ns.to_string(), String::new())),
                None => Bound::Unbounded,
            },
        };
        let items = map
            .range((lower, Bound::Unbounded))
            .take_while(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
            .map(|(_, o)| Arc::clone(o))
            .collect();
        (items, rv)
    }

    /// Objects (with their resource) that name `uid` among their owners.
    pub(crate) fn dependents_of(&self, uid: &str) -> Vec<(String, Arc<Obj>)> {
        let Ok(state) = self.state.read() else {
            return Vec::new();
        };
        if !state.owned.contains_key(uid) {
            return Vec::new();
        }
        state
            .objects
            .iter()
            .flat_map(|(resource, map)| {
                map.values()
                    .filter(|o| o.owners.iter().any(|u| &**u == uid))
                    .map(|o| (resource.clone(), Arc::clone(o)))
            })
            .collect()
    }

    /// Resources that have objects in `namespace`.
    pub(crate) fn resources_with_objects_in(&self, namespace: &str) -> Vec<String> {
        let Ok(state) = self.state.read() else {
            return Vec::new();
        };
        state
            .objects
            .iter()
            .filter(|(_, m)| {
                m.range((namespace.to_string(), String::new())..)
                    .next()
                    .is_some_and(|((ns, _), _)| ns == namespace)
            })
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Registers a watcher. `from_rv` None (or 0) means "current state first, as ADDED".
    pub(crate) fn subscribe(
        &self,
        resource: &str,
        namespace: Option<&str>,
        from_rv: Option<u64>,
        queue: usize,
    ) -> Result<Subscription, Expired> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let Ok(mut state) = self.state.write() else {
            return Err(Expired {
                requested: from_rv.unwrap_or(0),
                oldest: 0,
            });
        };
        let backlog = match from_rv {
            Some(rv) if rv > 0 => {
                if rv < state.compacted_rv {
                    return Err(Expired {
                        requested: rv,
                        oldest: state.compacted_rv,
                    });
                }
                state
                    .history
                    .iter()
                    .filter(|e| {
                        e.rv() > rv
                            && e.resource == resource
                            && namespace.is_none_or(|ns| ns == e.object.namespace)
                    })
                    .cloned()
                    .collect()
            }
            _ => state
                .objects
                .get(resource)
                .map(|m| {
                    m.values()
                        .filter(|o| namespace.is_none_or(|ns| ns == o.namespace))
                        .map(|o| {
                            Arc::new(Event {
                                type_: EventType::Added,
                                resource: resource.to_string(),
                                object: Arc::clone(o),
                                previous: None,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        state.watchers.push(WatcherSlot {
            resource: resource.to_string(),
            namespace: namespace.map(str::to_string),
            tx,
        });
        Ok(Subscription {
            backlog,
            snapshot_rv: state.rv,
            rx,
        })
    }

    /// Ends every watch (their streams finish); used on shutdown.
    pub(crate) fn end_watches(&self) {
        if let Ok(mut s) = self.state.write() {
            s.watchers.clear();
        }
    }
}

fn init(db: &redb::Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(META_FORMAT, FORMAT_VERSION)?;
        meta.insert(META_RV, 0)?;
        txn.open_table(OBJECTS)?;
    }
    txn.commit()?;
    Ok(())
}

type Loaded = (u64, HashMap<String, BTreeMap<(String, String), Arc<Obj>>>);

/// Refuses stores of a newer format or without plumb's format record; returns the
/// stored resourceVersion.
fn check_format(db: &impl redb::ReadableDatabase, path: &Path) -> Result<u64, Error> {
    let txn = db.begin_read().map_err(|e| corrupt(path, e))?;
    let meta = txn
        .open_table(META)
        .map_err(|e| corrupt(path, format!("no format record: {e}")))?;
    let format = meta
        .get(META_FORMAT)
        .map_err(|e| corrupt(path, e))?
        .map(|g| g.value())
        .ok_or_else(|| corrupt(path, "no format record"))?;
    if format > FORMAT_VERSION {
        return Err(Error::NewerFormat {
            path: path.to_path_buf(),
            found: format,
            supported: FORMAT_VERSION,
        });
    }
    if format == 0 {
        return Err(corrupt(path, "format version 0"));
    }
    let rv = meta
        .get(META_RV)
        .map_err(|e| corrupt(path, e))?
        .map(|g| g.value())
        .ok_or_else(|| corrupt(path, "no resourceVersion record"))?;
    Ok(rv)
}

fn load(db: &redb::Database, path: &Path) -> Result<Loaded, Error> {
    let rv = check_format(db, path)?;
    upgrade_format(db)
        .map_err(|e| Error::Storage(format!("{}: upgrading the format: {e}", path.display())))?;
    let txn = db.begin_read().map_err(|e| corrupt(path, e))?;
    let table = txn.open_table(OBJECTS).map_err(|e| corrupt(path, e))?;
    let mut objects: HashMap<String, BTreeMap<(String, String), Arc<Obj>>> = HashMap::new();
    for entry in table.iter().map_err(|e| corrupt(path, e))? {
        let (k, v) = entry.map_err(|e| corrupt(path, e))?;
        let key = ObjKey::decode(k.value())
            .ok_or_else(|| corrupt(path, format!("bad key {:?}", k.value())))?;
        let obj = obj_from_bytes(&key, Bytes::copy_from_slice(v.value()))
            .map_err(|e| corrupt(path, format!("object {:?}: {e}", k.value())))?;
        objects
            .entry(key.resource.clone())
            .or_default()
            .insert((key.namespace, key.name), Arc::new(obj));
    }
    Ok((rv, objects))
}

/// Records the current format in an older store this build can read as is.
fn upgrade_format(db: &redb::Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        let stored = meta.get(META_FORMAT)?.map(|g| g.value());
        if stored.is_some_and(|f| f < FORMAT_VERSION) {
            meta.insert(META_FORMAT, FORMAT_VERSION)?;
        }
    }
    txn.commit()?;
    Ok(())
}

fn writer_loop(
    db: redb::Database,
    store: Arc<Store>,
    mut rx: mpsc::Receiver<WriteRequest>,
    path: PathBuf,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        commit_batch(&db, &store, batch, &path);
    }
}

/// Decides, persists, publishes and acknowledges one batch.
fn commit_batch(db: &redb::Database, store: &Store, batch: Vec<WriteRequest>, path: &Path) {
    let mut overlay: HashMap<ObjKey, Option<Arc<Obj>>> = HashMap::new();
    let mut events: Vec<Arc<Event>> = Vec::new();
    let mut replies: Vec<(Reply, Result<Vec<Outcome>, StoreError>)> =
        Vec::with_capacity(batch.len());
    let mut rv = {
        let Ok(state) = store.state.read() else {
            for r in batch {
                let _ = r.reply.send(Err(StoreError("store lock poisoned".into())));
            }
            return;
        };
        let mut rv = state.rv;
        for request in batch {
            let mut outcomes = Vec::with_capacity(request.ops.len());
            let mut failed: Option<StoreError> = None;
            for op in request.ops {
                let key = match &op {
                    Op::Put { key, .. } | Op::Delete { key, .. } => key.clone(),
                };
                let current = match overlay.get(&key) {
                    Some(v) => v.clone(),
                    None => state.get(&key),
                };
                let expect = match &op {
                    Op::Put { expect, .. } | Op::Delete { expect, .. } => *expect,
                };
                let precondition = match (expect, &current) {
                    (Expect::Absent, Some(_)) => Some(Outcome::AlreadyExists),
                    (Expect::Absent, None) => None,
                    (_, None) => Some(Outcome::NotFound),
                    (Expect::Rv(want), Some(cur)) if cur.rv != want => Some(Outcome::Conflict),
                    _ => None,
                };
                if let Some(o) = precondition {
                    outcomes.push(o);
                    continue;
                }
                let next_rv = rv + 1;
                let result = match op {
                    Op::Put { object, .. } => stamp(&key, object, next_rv).map(|obj| {
                        let obj = Arc::new(obj);
                        let type_ = if current.is_some() {
                            EventType::Modified
                        } else {
                            EventType::Added
                        };
                        overlay.insert(key.clone(), Some(Arc::clone(&obj)));
                        (obj, type_)
                    }),
                    Op::Delete { .. } => {
                        // `current` is Some here: the precondition rejected absence.
                        let Some(cur) = current.as_ref() else {
                            outcomes.push(Outcome::NotFound);
                            continue;
                        };
                        cur.value()
                            .map_err(storage)
                            .and_then(|v| stamp(&key, v, next_rv))
                            .map(|obj| {
                                overlay.insert(key.clone(), None);
                                (Arc::new(obj), EventType::Deleted)
                            })
                    }
                };
                match result {
                    Ok((obj, type_)) => {
                        rv = next_rv;
                        events.push(Arc::new(Event {
                            type_,
                            resource: key.resource.clone(),
                            object: Arc::clone(&obj),
                            previous: current,
                        }));
                        outcomes.push(Outcome::Written(obj));
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            let result = match failed {
                Some(e) => Err(e),
                None => Ok(outcomes),
            };
            replies.push((request.reply, result));
        }
        rv
    };
    if !overlay.is_empty() {
        if let Err(e) = persist(db, &overlay, rv) {
            tracing::error!(store = %path.display(), error = %e, "store commit failed; the batch was not applied");
            let err = StoreError(format!("store commit failed: {e}"));
            for (reply, _) in replies {
                let _ = reply.send(Err(err.clone()));
            }
            return;
        }
    } else {
        rv = store.current_rv();
    }
    if let Ok(mut state) = store.state.write() {
        for (key, value) in overlay {
            let map = state.objects.entry(key.resource).or_default();
            let (old, new) = match value {
                Some(obj) => (
                    map.insert((key.namespace, key.name), Arc::clone(&obj)),
                    Some(obj),
                ),
                None => (map.remove(&(key.namespace, key.name)), None),
            };
            if let Some(old) = old {
                state.count_owners(&old, -1);
            }
            if let Some(new) = new {
                state.count_owners(&new, 1);
            }
        }
        state.rv = rv;
        for event in events {
            publish(&mut state, event);
        }
    }
    for (reply, result) in replies {
        let _ = reply.send(result);
    }
}

fn persist(
    db: &redb::Database,
    overlay: &HashMap<ObjKey, Option<Arc<Obj>>>,
    rv: u64,
) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(OBJECTS)?;
        for (key, value) in overlay {
            let k = key.encode();
            match value {
                Some(obj) => {
                    table.insert(k.as_str(), obj.bytes.as_ref())?;
                }
                None => {
                    table.remove(k.as_str())?;
                }
            }
        }
        let mut meta = txn.open_table(META)?;
        meta.insert(META_RV, rv)?;
    }
    txn.commit()?;
    Ok(())
}

/// Records the event in history and hands it to matching watchers; a watcher whose queue
/// is full is dropped (its stream ends), so a slow watcher never holds a writer up.
fn publish(state: &mut State, event: Arc<Event>) {
    state.watchers.retain(|w| {
        if w.resource != event.resource
            || w.namespace
                .as_ref()
                .is_some_and(|ns| *ns != event.object.namespace)
        {
            return !w.tx.is_closed();
        }
        match w.tx.try_send(Arc::clone(&event)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::info!(resource = %w.resource, "dropping a watcher whose queue is full");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    });
    if state.history.len() >= state.history_cap
        && let Some(old) = state.history.pop_front()
    {
        state.compacted_rv = old.rv();
    }
    state.history.push_back(event);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn type_fields_come_first() {
        let mut v: Value = serde_json::from_str(
            r#"{"metadata":{"name":"a"},"kind":"ConfigMap","data":{},"apiVersion":"v1"}"#,
        )
        .unwrap();
        type_fields_first(&mut v);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{}}"#
        );
        let mut ok: Value =
            serde_json::from_str(r#"{"apiVersion":"v1","kind":"Secret","type":"Opaque"}"#).unwrap();
        type_fields_first(&mut ok);
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"apiVersion":"v1","kind":"Secret","type":"Opaque"}"#
        );
    }
}
