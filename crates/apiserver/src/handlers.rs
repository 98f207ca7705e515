//! Request handling: routing Kubernetes paths, the verbs, and object semantics (defaults,
//! validation, generation, status subresource, finalizers, namespace and CRD cleanup).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use hyper::Response;
use hyper::http::request::Parts;
use serde_json::{Value, json};

use crate::api_error::{ApiError, Cause};
use crate::http::{Body, error_response, json_response};
use crate::managed::{self, Managers, Requested, Rules, Scope, Types, Writer};
use crate::negotiation::{self, MetaVersion, Representation};
use crate::objects::{
    apply_defaults, generated_name, meta_mut, meta_str, now_rfc3339, service_cluster_ip_update,
    spec_changed, string_items,
};
use crate::registry::{Registry, ResourceInfo};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Expect, Obj, ObjKey, Op, Outcome, Store};
use crate::{Error, discovery, openapi, partial, table, watch};

const NAMESPACES: &str = "/namespaces";

/// The store key of the namespace `name`.
fn namespace_key(name: &str) -> ObjKey {
    ObjKey {
        resource: NAMESPACES.into(),
        namespace: String::new(),
        name: name.into(),
    }
}
const CRDS: &str = "apiextensions.k8s.io/customresourcedefinitions";
/// kube-controller-manager's annotation on `kube-root-ca.crt`.
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";
/// How often a write whose precondition was computed from a read is retried.
const CONFLICT_RETRIES: usize = 20;

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Inner>);

struct Inner {
    store: Arc<Store>,
    registry: RwLock<Arc<Registry>>,
    watch_limits: watch::WatchLimits,
    address: Mutex<String>,
    /// Namespaces and CRDs whose cleanup task is running.
    cleanups: Mutex<std::collections::HashSet<String>>,
    /// The CA that signed the serving certificate, published in every namespace as the
    /// `kube-root-ca.crt` ConfigMap.
    ca_pem: String,
    /// Whether `/api` and `/apis` may answer the aggregated discovery list.
    aggregated_discovery: bool,
    /// Set once the server shuts down: background controllers stop.
    closing: std::sync::atomic::AtomicBool,
    /// The range Service cluster IPs come from.
    service_cidr: crate::services::ServiceCidr,
    /// Whether the simulated kubelet runs: Pods on its node are then deleted gracefully
    /// (marked, and removed by the kubelet), as kube-apiserver deletes a scheduled Pod.
    graceful_pods: std::sync::atomic::AtomicBool,
    /// Cluster IPs and node ports allocated by writes not yet stored.
    service_allocator: crate::services::Allocator,
}

/// A resolved resource path.
struct Target {
    info: Arc<ResourceInfo>,
    version: String,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
    /// The `scale` subresource (answers `autoscaling/v1` Scale objects).
    scale: bool,
    /// `fieldValidation=Strict`: fields a CRD's schema does not declare are refused
    /// instead of pruned.
    strict: bool,
    /// `fieldValidation=Ignore`: unknown fields of built-in kinds are dropped without a
    /// warning (otherwise, below `Strict`, each gets a `Warning` header).
    ignore_unknown: bool,
    /// `includeObject` of a Table request: what each row carries.
    include_object: table::IncludeObject,
    /// The request's field manager: `fieldManager`, else the user agent up to its first
    /// `/` (as kube-apiserver derives it).
    manager: String,
    /// `force=true`: a server-side apply takes over conflicting fields.
    force: bool,
}

impl Target {
    /// How this request's fields are typed and which of them it may own.
    fn rules(&self) -> Rules<'_> {
        let types = if self.info.custom {
            Types::Custom(self.info.schemas.get(&self.version).map(|s| &**s))
        } else {
            Types::BuiltIn
        };
        let scope = if self.status {
            Scope::OnlyStatus
        } else if self.info.status_subresource {
            Scope::WithoutStatus
        } else {
            Scope::All
        };
        Rules { types, scope }
    }

    /// This request's field manager as a managedFields writer, for `api_version` at `time`.
    fn writer<'a>(&'a self, api_version: &'a str, time: &'a str) -> Writer<'a> {
        Writer {
            manager: &self.manager,
            api_version,
            subresource: self.subresource(),
            time,
        }
    }

    fn subresource(&self) -> &'static str {
        if self.status {
            "status"
        } else if self.scale {
            "scale"
        } else {
            ""
        }
    }

    /// Records this request as an Update of its field manager in `object`'s managedFields.
    /// `old` is the stored object (None for a create); `base` the entries to start from.
    fn record_update(&self, base: Managers, old: Option<&Value>, object: &mut Value) {
        let mut managers = base;
        let api_version = self.info.api_version(&self.version);
        let time = now_rfc3339();
        let writer = self.writer(&api_version, &time);
        let rules = self.rules();
        let empty;
        let old = match old {
            Some(old) => old,
            None => {
                empty = managed::empty_object(&self.info.group, &self.info.kind, self.info.custom);
                &empty
            }
        };
        managed::update(
            &mut managers,
            old,
            object,
            &writer,
            rules.types,
            rules.scope,
        );
        managers.store(object);
    }

    /// Server-side apply of `config` onto `live` (None: the object does not exist yet).
    fn server_side_apply(&self, live: Option<&Value>, config: &Value) -> Result<Value, ApiError> {
        if config
            .pointer("/metadata/managedFields")
            .is_some_and(|m| !m.is_null())
        {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        let mut managers = live.map(Managers::of).unwrap_or_default();
        let api_version = config
            .get("apiVersion")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| self.info.api_version(&self.version));
        let time = now_rfc3339();
        let writer = self.writer(&api_version, &time);
        let empty = managed::empty_object(&self.info.group, &self.info.kind, self.info.custom);
        let rules = self.rules();
        // kubectl's server-side apply takes over from its client-side apply (the manager
        // `kubectl` and a last-applied annotation, as kube-apiserver decides it).
        let last_applied: Option<Value> = live
            .filter(|_| self.manager == "kubectl")
            .and_then(|l| l.pointer("/metadata/annotations"))
            .and_then(|a| a.get(managed::LAST_APPLIED))
            .and_then(Value::as_str)
            .and_then(|text| serde_json::from_str(text).ok());
        let applied = match managed::apply(
            &mut managers,
            live,
            &empty,
            config,
            &writer,
            self.force,
            rules,
        ) {
            Ok(applied) => applied,
            Err(conflicts) => {
                let (Some(last), Some(live_value)) = (&last_applied, live) else {
                    return Err(ApiError::apply_conflict(&conflicts));
                };
                let remaining = managed::unresolved_after_client_side_apply(
                    &conflicts,
                    last,
                    live_value,
                    rules.types,
                );
                if !remaining.is_empty() {
                    return Err(ApiError::apply_conflict(&managed::Conflicts {
                        items: remaining,
                    }));
                }
                // Only fields still as client-side apply left them: take them over.
                managers = Managers::of(live_value);
                managed::apply(&mut managers, live, &empty, config, &writer, true, rules)
                    .map_err(|c| ApiError::apply_conflict(&c))?
            }
        };
        let mut object = applied.object;
        if last_applied.is_some()
            && let Some(annotations) = object
                .pointer_mut("/metadata/annotations")
                .and_then(Value::as_object_mut)
        {
            annotations.insert(
                managed::LAST_APPLIED.into(),
                Value::String(managed::last_applied_annotation(config)),
            );
        }
        managers.store(&mut object);
        Ok(object)
    }

    fn key(&self, name: &str) -> ObjKey {
        ObjKey {
            resource: self.info.store_key(),
            namespace: self.namespace.clone().unwrap_or_default(),
            name: name.to_string(),
        }
    }
}

type Query = HashMap<String, String>;

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> Query {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn flag(q: &Query, name: &str) -> bool {
    matches!(q.get(name).map(String::as_str), Some("true" | "1" | ""))
}

fn page_not_found() -> Response<Body> {
    let mut r = Response::new(crate::http::full("404 page not found\n"));
    *r.status_mut() = hyper::StatusCode::NOT_FOUND;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The two paths that answer the aggregated discovery list.
#[derive(Debug, Clone, Copy)]
enum AggregatedRoot {
    Api,
    Apis,
}

/// An aggregated discovery document, or `304 Not Modified` when the client's
/// `If-None-Match` names it. Like kube-apiserver, it may be cached publicly and varies
/// with `Accept`.
fn aggregated_response(
    document: &discovery::AggregatedDocument,
    request_headers: &hyper::HeaderMap,
) -> Response<Body> {
    use hyper::header::{self, HeaderValue};
    let unchanged = request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == document.etag || tag.trim() == "*");
    let mut r = if unchanged {
        let mut r = Response::new(crate::http::full(Bytes::new()));
        *r.status_mut() = hyper::StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(crate::http::full(document.body.clone()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
        );
        r
    };
    let headers = r.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public"));
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    if let Ok(etag) = HeaderValue::from_str(&document.etag) {
        headers.insert(header::ETAG, etag);
    }
    r
}

fn ok_json(code: u16, v: &Value) -> Response<Body> {
    json_response(code, v.to_string())
}

impl AppState {
    pub(crate) async fn new(
        store: Arc<Store>,
        watch_limits: watch::WatchLimits,
        ca_pem: String,
        aggregated_discovery: bool,
        service_cidr: crate::services::ServiceCidr,
    ) -> Result<AppState, Error> {
        let state = AppState(Arc::new(Inner {
            store,
            registry: RwLock::new(Arc::new(Registry::new(vec![]))),
            watch_limits,
            address: Mutex::new(String::new()),
            cleanups: Mutex::new(Default::default()),
            ca_pem,
            aggregated_discovery,
            closing: std::sync::atomic::AtomicBool::new(false),
            service_cidr,
            service_allocator: Default::default(),
            graceful_pods: std::sync::atomic::AtomicBool::new(false),
        }));
        state.refresh_registry();
        state.bootstrap().await?;
        Ok(state)
    }

    pub(crate) fn set_address(&self, addr: std::net::SocketAddr) {
        if let Ok(mut a) = self.0.address.lock() {
            *a = addr.to_string();
        }
    }

    /// Turns graceful deletion of the simulated node's Pods on (the workloads run).
    pub(crate) fn set_graceful_pods(&self, on: bool) {
        self.0
            .graceful_pods
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// How a delete of a Pod bound to the simulated node goes while its kubelet runs: marked
    /// with `deletionTimestamp` = now + grace period (the request's `gracePeriodSeconds`,
    /// else the Pod's `terminationGracePeriodSeconds`, else 30) and left for the kubelet to
    /// remove; a grace period of 0 removes it. `None`: the usual deletion.
    fn pod_deletion_step(&self, t: &Target, v: &Value, options: &Value) -> Option<DeletionStep> {
        if t.info.store_key() != "/pods"
            || !self
                .0
                .graceful_pods
                .load(std::sync::atomic::Ordering::SeqCst)
            || v.pointer("/spec/nodeName").and_then(Value::as_str) != Some(crate::NODE_NAME)
            || matches!(
                v.pointer("/status/phase").and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            )
        {
            return None;
        }
        let grace = options
            .get("gracePeriodSeconds")
            .and_then(Value::as_i64)
            .or_else(|| {
                v.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30)
            .max(0);
        if meta_str(v, "deletionTimestamp").is_some() {
            let has_finalizers = v
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            return Some(if grace == 0 && !has_finalizers {
                DeletionStep::Remove
            } else {
                DeletionStep::AlreadyDeleting
            });
        }
        if grace == 0 {
            return None;
        }
        let mut marked = v.clone();
        let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(grace);
        if let Some(meta) = meta_mut(&mut marked) {
            meta.insert(
                "deletionTimestamp".into(),
                json!(crate::objects::format_rfc3339(at)),
            );
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        }
        Some(DeletionStep::MarkDeleting(marked))
    }

    pub(crate) fn end_watches(&self) {
        self.0
            .closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.0.store.end_watches();
    }

    /// Whether the server is shutting down.
    pub(crate) fn is_closing(&self) -> bool {
        self.0.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The store, for in-process readers (the workload controllers).
    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.0.store
    }

    pub(crate) async fn close(&self) {
        let store = Arc::clone(&self.0.store);
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }

    fn registry(&self) -> Arc<Registry> {
        self.0
            .registry
            .read()
            .map(|r| Arc::clone(&r))
            .unwrap_or_default()
    }

    /// Rebuilds the served resources from the stored CRDs.
    fn refresh_registry(&self) {
        let (crds, _) = self.0.store.list(CRDS, None, None);
        let infos = crds
            .iter()
            .filter_map(|o| o.value().ok())
            .filter_map(|v| crate::crd::resource_info(&v))
            .collect();
        if let Ok(mut r) = self.0.registry.write() {
            *r = Arc::new(Registry::new(infos));
        }
    }

    /// Creates the namespaces every cluster has, and resumes interrupted cleanups.
    async fn bootstrap(&self) -> Result<(), Error> {
        let registry = self.registry();
        let Some(ns_info) = registry.find("", "v1", "namespaces") else {
            return Ok(());
        };
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let key = namespace_key(name);
            if self.0.store.get(&key).is_some() {
                continue;
            }
            let mut obj =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            self.stamp_new(&ns_info, &mut obj);
            apply_defaults(&ns_info, &mut obj, true);
            self.0
                .store
                .write_one(Op::Put {
                    key,
                    expect: Expect::Absent,
                    object: obj,
                })
                .await
                .map_err(|e| Error::Storage(e.0))?;
        }
        // Every namespace has what kube-controller-manager puts there (also in stores
        // written before this was done).
        let (namespaces, _) = self.0.store.list(NAMESPACES, None, None);
        for ns in namespaces {
            let terminating = ns
                .value()
                .ok()
                .and_then(|v| meta_str(&v, "deletionTimestamp").map(str::to_string))
                .is_some();
            if !terminating {
                self.namespace_defaults(&ns.name)
                    .await
                    .map_err(|e| Error::Storage(e.message))?;
            }
        }
        for resource in [NAMESPACES, CRDS] {
            let (objs, _) = self.0.store.list(resource, None, None);
            for o in objs {
                if o.value()
                    .ok()
                    .and_then(|v| meta_str(&v, "deletionTimestamp").map(str::to_string))
                    .is_some()
                {
                    self.spawn_cleanup(resource == NAMESPACES, o.name.clone());
                }
            }
        }
        Ok(())
    }

    /// What kube-controller-manager creates in every namespace of a real cluster: the
    /// `default` ServiceAccount (serviceaccounts-controller) and the `kube-root-ca.crt`
    /// ConfigMap with the cluster's CA (root-ca-cert-publisher), recorded as its writes.
    async fn namespace_defaults(&self, namespace: &str) -> Result<(), ApiError> {
        let registry = self.registry();
        let defaults = [
            (
                "serviceaccounts",
                json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": namespace}}),
            ),
            (
                "configmaps",
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "kube-root-ca.crt", "namespace": namespace,
                        "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
                    "data": {"ca.crt": self.0.ca_pem}}),
            ),
        ];
        let time = now_rfc3339();
        let writer = Writer {
            manager: "kube-controller-manager",
            api_version: "v1",
            subresource: "",
            time: &time,
        };
        let mut ops = Vec::new();
        for (resource, mut object) in defaults {
            let Some(info) = registry.find("", "v1", resource) else {
                continue;
            };
            let key = ObjKey {
                resource: info.store_key(),
                namespace: namespace.to_string(),
                name: meta_str(&object, "name").unwrap_or("").to_string(),
            };
            if self.0.store.get(&key).is_some() {
                continue;
            }
            self.stamp_new(&info, &mut object);
            apply_defaults(&info, &mut object, true);
            let mut managers = Managers::default();
            managed::update(
                &mut managers,
                &managed::empty_object("", &info.kind, false),
                &object,
                &writer,
                Types::BuiltIn,
                Scope::All,
            );
            managers.store(&mut object);
            ops.push(Op::Put {
                key,
                expect: Expect::Absent,
                object,
            });
        }
        if ops.is_empty() {
            return Ok(());
        }
        // AlreadyExists means someone created it meanwhile: nothing to do.
        self.0
            .store
            .write(ops)
            .await
            .map_err(|e| ApiError::internal(e.0))?;
        Ok(())
    }

    /// kube-controller-manager puts a deleted default ServiceAccount or kube-root-ca.crt
    /// back, unless its namespace is going away.
    fn spawn_namespace_defaults(&self, namespace: String) {
        let state = self.clone();
        tokio::spawn(async move {
            let live = state
                .0
                .store
                .get(&namespace_key(&namespace))
                .and_then(|ns| ns.value().ok())
                .is_some_and(|v| meta_str(&v, "deletionTimestamp").is_none());
            if live && let Err(e) = state.namespace_defaults(&namespace).await {
                tracing::warn!(namespace, error = %e.message, "re-creating the namespace defaults failed");
            }
        });
    }

    fn stamp_new(&self, info: &ResourceInfo, obj: &mut Value) {
        if let Some(meta) = meta_mut(obj) {
            meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
            for f in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
                "managedFields",
            ] {
                meta.remove(f);
            }
            if info.generation {
                meta.insert("generation".into(), json!(1));
            } else {
                meta.remove("generation");
            }
        }
    }

    pub(crate) async fn handle(&self, parts: Parts, body: Bytes) -> Response<Body> {
        match self.route(&parts, body).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        }
    }

    async fn route(&self, parts: &Parts, body: Bytes) -> Result<Response<Body>, ApiError> {
        let path = parts.uri.path().to_string();
        let query = parse_query(parts.uri.query());
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let get = parts.method == hyper::Method::GET;
        let registry = self.registry();
        let discovery_get = |v: Option<Value>| -> Result<Response<Body>, ApiError> {
            if !get {
                return Err(ApiError::method_not_allowed());
            }
            v.map(|v| ok_json(200, &v)).ok_or_else(ApiError::no_route)
        };
        let accept = parts
            .headers
            .get(hyper::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // Discovery documents are negotiated: `/api` and `/apis` may answer the aggregated
        // list, every discovery path refuses what it cannot produce. kube-apiserver answers
        // `/apis` and `/apis/<group>` whatever the method, the other paths only to GET.
        let discovery = |any_method: bool,
                         root: Option<AggregatedRoot>,
                         plain: &dyn Fn() -> Option<Value>|
         -> Result<Response<Body>, ApiError> {
            if !get && !any_method {
                return Err(ApiError::method_not_allowed());
            }
            // Without aggregated discovery the roots are negotiated like any other
            // discovery document, as kube-apiserver before 1.26 did: an aggregated clause
            // is passed over, and a request asking for nothing else is not acceptable.
            let aggregated_here = root.is_some() && self.0.aggregated_discovery;
            match negotiation::negotiate_discovery(accept, aggregated_here)? {
                negotiation::DiscoveryAnswer::Aggregated => {
                    let documents = discovery::aggregated(&registry);
                    let document = match root {
                        Some(AggregatedRoot::Api) => &documents.api,
                        _ => &documents.apis,
                    };
                    Ok(aggregated_response(document, &parts.headers))
                }
                negotiation::DiscoveryAnswer::Plain => plain()
                    .map(|v| ok_json(200, &v))
                    .ok_or_else(ApiError::no_route),
            }
        };
        // Kubernetes answers paths outside any served group/version with a plain-text 404
        // (its HTTP mux), and unknown resources inside one with a NotFound Status.
        let served = match segs.as_slice() {
            ["api", v, ..] => *v == "v1",
            ["apis", g, v, ..] => registry.serves_group_version(g, v),
            ["apis", g] => registry.groups().iter().any(|(name, _)| name == g),
            _ => true,
        };
        if !served {
            return Ok(page_not_found());
        }
        match segs.as_slice() {
            ["healthz" | "livez" | "readyz"] => {
                let mut r = Response::new(crate::http::full("ok"));
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("text/plain"),
                );
                Ok(r)
            }
            ["version"] => discovery_get(Some(discovery::version())),
            ["api"] => discovery(false, Some(AggregatedRoot::Api), &|| {
                let addr = self.0.address.lock().map(|a| a.clone()).unwrap_or_default();
                Some(discovery::api_versions(&addr))
            }),
            ["apis"] => discovery(true, Some(AggregatedRoot::Apis), &|| {
                Some(discovery::api_group_list(&registry))
            }),
            ["api", v] => discovery(false, None, &|| discovery::resource_list(&registry, "", v)),
            ["apis", g] => discovery(true, None, &|| discovery::api_group(&registry, g)),
            ["apis", g, v] => discovery(false, None, &|| discovery::resource_list(&registry, g, v)),
            ["openapi", "v2"] => {
                if !get {
                    return Err(ApiError::method_not_allowed());
                }
                let accept = parts
                    .headers
                    .get(hyper::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                Ok(openapi::v2_response(accept))
            }
            ["openapi", "v3"] => discovery_get(Some(openapi::v3_root(&registry))),
            ["openapi", "v3", "api", v] => discovery_get(self.openapi_gv(&registry, "", v)),
            ["openapi", "v3", "apis", g, v] => discovery_get(self.openapi_gv(&registry, g, v)),
            ["api", v, rest @ ..] => {
                self.resource_request(&registry, parts, &query, "", v, rest, body)
                    .await
            }
            ["apis", g, v, rest @ ..] => {
                self.resource_request(&registry, parts, &query, g, v, rest, body)
                    .await
            }
            ["openapi", ..] => Err(ApiError::no_route()),
            _ => Ok(page_not_found()),
        }
    }

    fn openapi_gv(&self, registry: &Registry, group: &str, version: &str) -> Option<Value> {
        let store = &self.0.store;
        openapi::v3_group_version_with(registry, group, version, &|info| {
            let key = ObjKey {
                resource: CRDS.into(),
                namespace: String::new(),
                name: format!("{}.{}", info.resource, info.group),
            };
            let crd = store.get(&key)?.value().ok()?;
            crd.pointer("/spec/versions")?
                .as_array()?
                .iter()
                .find(|v| v.get("name").and_then(Value::as_str) == Some(version))?
                .pointer("/schema/openAPIV3Schema")
                .cloned()
        })
    }

    fn resolve(
        &self,
        registry: &Registry,
        group: &str,
        version: &str,
        rest: &[&str],
    ) -> Result<Target, ApiError> {
        let find = |resource: &str| {
            registry
                .find(group, version, resource)
                .ok_or_else(ApiError::no_route)
        };
        let core_ns = |name: &str| -> Result<Target, ApiError> {
            Ok(Target {
                info: find("namespaces")?,
                version: version.into(),
                namespace: None,
                name: Some(name.into()),
                status: false,
                scale: false,
                strict: false,
                ignore_unknown: false,
                include_object: table::IncludeObject::Metadata,
                manager: String::new(),
                force: false,
            })
        };
        let (info, namespace, name, sub) = match rest {
            [res] => (find(res)?, None, None, None),
            ["namespaces", ns] if group.is_empty() => return core_ns(ns),
            [res, name] => (find(res)?, None, Some(*name), None),
            ["namespaces", ns, res] => {
                if group.is_empty() && registry.find(group, version, res).is_none() {
                    // `/api/v1/namespaces/<name>/status` and friends.
                    let mut t = core_ns(ns)?;
                    t.status = *res == "status";
                    if !t.status {
                        return Err(ApiError::no_route());
                    }
                    return Ok(t);
                }
                (find(res)?, Some(*ns), None, None)
            }
            [res, name, sub] => (find(res)?, None, Some(*name), Some(*sub)),
            ["namespaces", ns, res, name] => (find(res)?, Some(*ns), Some(*name), None),
            ["namespaces", ns, res, name, sub] => (find(res)?, Some(*ns), Some(*name), Some(*sub)),
            _ => return Err(ApiError::no_route()),
        };
        if namespace.is_some() && !info.namespaced {
            return Err(ApiError::no_route());
        }
        if namespace.is_none() && name.is_some() && info.namespaced {
            return Err(ApiError::no_route());
        }
        let (status, scale) = match sub {
            None => (false, false),
            Some("status") if info.status_subresource => (true, false),
            Some("scale") if info.has_scale() => (false, true),
            Some(_) => return Err(ApiError::no_route()),
        };
        Ok(Target {
            info,
            version: version.into(),
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            status,
            scale,
            strict: false,
            ignore_unknown: false,
            include_object: table::IncludeObject::Metadata,
            manager: String::new(),
            force: false,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn resource_request(
        &self,
        registry: &Registry,
        parts: &Parts,
        query: &Query,
        group: &str,
        version: &str,
        rest: &[&str],
        body: Bytes,
    ) -> Result<Response<Body>, ApiError> {
        let mut target = self.resolve(registry, group, version, rest)?;
        // kube-apiserver negotiates the answer before it reads options or bodies.
        let accept = parts
            .headers
            .get(hyper::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let representation = negotiation::negotiate(&accept)?;
        target.strict = query.get("fieldValidation").map(String::as_str) == Some("Strict");
        target.ignore_unknown = query.get("fieldValidation").map(String::as_str) == Some("Ignore");
        target.force = flag(query, "force");
        target.include_object = table::IncludeObject::from_query(query.get("includeObject"));
        target.manager = match query.get("fieldManager").filter(|m| !m.is_empty()) {
            Some(manager) => manager.clone(),
            None => parts
                .headers
                .get(hyper::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .split('/')
                .next()
                .unwrap_or("")
                .chars()
                .take(128)
                .collect(),
        };
        // kube-apiserver's name for the writer of a request without a user agent.
        if target.manager.is_empty() {
            target.manager = "unknown".to_string();
        }
        let options_kind = match parts.method {
            hyper::Method::POST => "CreateOptions",
            hyper::Method::PUT => "UpdateOptions",
            hyper::Method::PATCH => "PatchOptions",
            _ => "",
        };
        if let Some(explicit) = query.get("fieldManager").filter(|m| !m.is_empty())
            && !options_kind.is_empty()
        {
            let causes = field_manager_causes(explicit);
            if !causes.is_empty() {
                return Err(options_invalid(options_kind, causes));
            }
        }
        let content_type = parts
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string();
        let dry_run = match query.get("dryRun").map(String::as_str) {
            None | Some("") => false,
            Some("All") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "unsupported dryRun value {other:?}: supported values: \"All\""
                )));
            }
        };
        use hyper::Method;
        let answer = match (&parts.method, &target.name) {
            (&Method::GET, None) if flag(query, "watch") => {
                return watch::serve(
                    self.0.store.clone(),
                    &target.info,
                    &target.version,
                    target.namespace.as_deref(),
                    query,
                    representation,
                    self.0.watch_limits,
                );
            }
            (&Method::GET, None) => return self.list(&target, query, representation),
            (&Method::POST, None) if !target.status => {
                self.create(&target, &content_type, &body, dry_run).await
            }
            (&Method::DELETE, None) if !target.info.deletes_collections() => {
                return Err(ApiError::method_not_allowed());
            }
            (&Method::DELETE, None) => self.delete_collection(&target, query, dry_run).await,
            (&Method::GET, Some(name)) => self.get(&target, name, representation),
            (&Method::PUT | &Method::PATCH, Some(name)) if target.scale => {
                self.update_scale(&target, name, &parts.method, &content_type, &body, dry_run)
                    .await
            }
            (&Method::PUT, Some(name)) => {
                self.update(&target, name, &content_type, &body, dry_run)
                    .await
            }
            (&Method::PATCH, Some(name)) => {
                self.patch(&target, name, &content_type, &body, query, dry_run)
                    .await
            }
            (&Method::DELETE, Some(name)) if !target.status && !target.scale => {
                self.delete(&target, name, &body, dry_run).await
            }
            _ => Err(ApiError::method_not_allowed()),
        }?;
        match representation {
            Representation::Partial(version) => {
                metadata_only(&target, answer, version, false).await
            }
            Representation::PartialList(version) => {
                metadata_only(&target, answer, version, true).await
            }
            Representation::Object | Representation::Table(_) => Ok(answer),
        }
    }

    // ----- reads -----

    fn get(
        &self,
        t: &Target,
        name: &str,
        representation: Representation,
    ) -> Result<Response<Body>, ApiError> {
        let obj = self
            .0
            .store
            .get(&t.key(name))
            .ok_or_else(|| ApiError::not_found(&t.info.group, &t.info.resource, name))?;
        if t.scale {
            let v = obj.value().map_err(|e| ApiError::internal(e.to_string()))?;
            return Ok(ok_json(200, &respond(t, v)));
        }
        if let Representation::Table(version) = representation {
            let v = obj.value().map_err(|e| ApiError::internal(e.to_string()))?;
            let rv = obj.rv.to_string();
            return Ok(ok_json(
                200,
                &table::table(&t.info, &[v], &rv, None, version, t.include_object),
            ));
        }
        Ok(json_response(200, render(&t.info, &t.version, &obj)))
    }

    fn list(
        &self,
        t: &Target,
        query: &Query,
        representation: Representation,
    ) -> Result<Response<Body>, ApiError> {
        let labels =
            LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = FieldSelector::parse_with(
            query.get("fieldSelector").map(String::as_str).unwrap_or(""),
            crate::registry::extra_field_selectors(&t.info.group, &t.info.resource),
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let limit = match query.get("limit").map(String::as_str) {
            None | Some("") | Some("0") => usize::MAX,
            Some(l) => l
                .parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        };
        let after = match query.get("continue").map(String::as_str) {
            None | Some("") => None,
            Some(token) => Some(decode_continue(token)?),
        };
        // kube-apiserver lists first (bad options are a 400) and then fails to convert.
        if let Representation::Partial(_) = representation {
            return Err(partial::list_refused(
                &t.info,
                &t.info.api_version(&t.version),
            ));
        }
        let (items, rv) =
            self.0
                .store
                .list(&t.info.store_key(), t.namespace.as_deref(), after.as_ref());
        let mut matching = items
            .into_iter()
            .filter(|o| labels.matches(&*o.labels) && o.matches_fields(&fields));
        let page: Vec<Arc<Obj>> = matching.by_ref().take(limit).collect();
        let remaining = matching.count();
        let continue_token = (remaining > 0)
            .then(|| page.last().map(|o| encode_continue(&o.namespace, &o.name)))
            .flatten();
        if let Representation::Table(version) = representation {
            let values: Vec<Value> = page.iter().filter_map(|o| o.value().ok()).collect();
            return Ok(ok_json(
                200,
                &table::table(
                    &t.info,
                    &values,
                    &rv.to_string(),
                    continue_token.as_deref(),
                    version,
                    t.include_object,
                ),
            ));
        }
        let mut meta = format!("{{\"resourceVersion\":\"{rv}\"");
        if let Some(c) = &continue_token {
            meta.push_str(&format!(",\"continue\":\"{c}\""));
            // Kubernetes counts the rest only for unfiltered lists.
            if labels.is_empty() && fields.terms.is_empty() {
                meta.push_str(&format!(",\"remainingItemCount\":{remaining}"));
            }
        }
        meta.push('}');
        if let Representation::PartialList(version) = representation {
            let items = page.iter().map(|o| o.metadata_bytes());
            return Ok(json_response(
                200,
                partial::list_bytes(version, &meta, items),
            ));
        }
        let api_version = t.info.api_version(&t.version);
        let mut out =
            Vec::with_capacity(page.iter().map(|o| o.bytes.len() + 1).sum::<usize>() + 128);
        out.extend_from_slice(format!("{{\"kind\":\"{}\",\"apiVersion\":\"{api_version}\",\"metadata\":{meta},\"items\":[", t.info.list_kind).as_bytes());
        let item_prefix = format!(
            "{{\"apiVersion\":\"{api_version}\",\"kind\":\"{}\",",
            t.info.kind
        );
        for (i, o) in page.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Built-in lists leave kind and apiVersion out of their items, as Kubernetes'
            // typed lists do (the store writes them first, so this is a prefix cut).
            if !t.info.custom
                && let Some(rest) = o.bytes.strip_prefix(item_prefix.as_bytes())
            {
                out.push(b'{');
                out.extend_from_slice(rest);
            } else {
                out.extend_from_slice(&render(&t.info, &t.version, o));
            }
        }
        out.extend_from_slice(b"]}");
        Ok(json_response(200, out))
    }

    // ----- writes -----

    fn decode(&self, t: &Target, content_type: &str, body: &Bytes) -> Result<Value, ApiError> {
        let value = decode_body(&t.info.kind, content_type, body)?;
        if !value.is_object() {
            return Err(ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {}): the body is not a JSON object",
                t.info.kind
            )));
        }
        if let Some(kind) = value.get("kind").and_then(Value::as_str)
            && kind != t.info.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the body ({kind}) does not match the resource {} (kind {})",
                t.info.resource, t.info.kind
            )));
        }
        if let Some(av) = value.get("apiVersion").and_then(Value::as_str)
            && av != t.info.api_version(&t.version)
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                t.info.api_version(&t.version)
            )));
        }
        Ok(value)
    }

    /// Checks a namespaced write's namespace: present, consistent, existing, not terminating.
    fn check_namespace(&self, t: &Target, obj: &mut Value, name: &str) -> Result<(), ApiError> {
        if !t.info.namespaced {
            if let Some(meta) = meta_mut(obj) {
                meta.remove("namespace");
            }
            return Ok(());
        }
        let path_ns = t.namespace.clone().ok_or_else(|| {
            ApiError::bad_request("a namespace is required for this resource".to_string())
        })?;
        match meta_str(obj, "namespace") {
            Some(ns) if !ns.is_empty() && ns != path_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                if let Some(meta) = meta_mut(obj) {
                    meta.insert("namespace".into(), json!(path_ns));
                }
            }
        }
        let ns = self
            .0
            .store
            .get(&namespace_key(&path_ns))
            .ok_or_else(|| ApiError::not_found("", "namespaces", &path_ns))?;
        let terminating = ns
            .value()
            .ok()
            .and_then(|v| meta_str(&v, "deletionTimestamp").map(str::to_string))
            .is_some();
        if terminating {
            let mut e = ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {path_ns} because it is being terminated",
                crate::api_error::qualified(&t.info.group, &t.info.resource)
            ));
            e.details = Some(
                json!({"name": name, "kind": t.info.resource, "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {path_ns} is being terminated"), "field": "metadata.namespace"}]}),
            );
            return Err(e);
        }
        Ok(())
    }

    /// `old`: the stored object of an update (custom resources' validation ratchets on it).
    fn validate(&self, t: &Target, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        let mut causes = crate::validation::metadata_causes(obj, t.info.name_rule);
        if t.info.store_key() == CRDS {
            causes.extend(crate::crd::validate_crd(obj));
        }
        if let Some(schema) = custom_schema(t) {
            causes.extend(crate::crd_schema::validate_object(obj, old, schema));
        }
        if matches!(t.info.store_key().as_str(), "/configmaps" | "/secrets") {
            if let Some(why) =
                crate::validation::undecodable_base64(obj, t.info.resource == "secrets")
            {
                return Err(ApiError::bad_request(format!(
                    "{kind} in version \"v1\" cannot be handled as a {kind}: {why}",
                    kind = t.info.kind
                )));
            }
            causes.extend(crate::validation::data_key_causes(obj));
            causes.extend(crate::validation::data_size_cause(
                obj,
                t.info.resource == "secrets",
            ));
            if t.info.resource == "secrets" {
                causes.extend(crate::validation::secret_type_causes(obj));
            }
        }
        if t.info.store_key() == "/services" {
            causes.extend(crate::services::cluster_ip_causes(obj));
        }
        if !t.status {
            causes.extend(crate::workload_validation::workload_causes(
                &t.info.group,
                &t.info.resource,
                obj,
                old,
            ));
        }
        if causes.is_empty() {
            return Ok(());
        }
        let name = meta_str(obj, "name").unwrap_or("");
        let mut e = ApiError::invalid(&t.info.kind, &t.info.group, name, causes);
        if t.info.custom || t.info.store_key() == CRDS {
            // kube-apiserver names a custom resource's (and a CRD's) kind with its group here
            // (`Widget.example.com "w" is invalid`), while details keep the bare kind.
            let kind = &t.info.kind;
            e.message = e
                .message
                .replacen(kind, &format!("{kind}.{}", t.info.group), 1);
        }
        Err(e)
    }

    /// A Service's cluster IP and node ports, as kube-apiserver's Service registry
    /// allocates them (nothing for other kinds). A malformed IP is left to validation.
    fn allocate_service(
        &self,
        t: &Target,
        name: &str,
        old: Option<&Value>,
        obj: &mut Value,
    ) -> Result<(), ApiError> {
        if t.info.store_key() != "/services" || !crate::services::cluster_ip_causes(obj).is_empty()
        {
            return Ok(());
        }
        let namespace = t.namespace.as_deref().unwrap_or("");
        let mut in_use = crate::services::InUse::default();
        let (services, _) = self.0.store.list("/services", None, None);
        for service in services {
            if service.namespace == namespace && service.name == name {
                continue;
            }
            if let Ok(value) = service.value() {
                in_use.add_service(&value);
            }
        }
        self.0
            .service_allocator
            .assign(
                self.0.service_cidr,
                in_use,
                old,
                &format!("{namespace}/{name}"),
                obj,
            )
            .map_err(|causes| ApiError::invalid(&t.info.kind, &t.info.group, name, causes))
    }

    /// Builds the object a create stores (everything but the resourceVersion).
    /// `applied`: the managedFields a server-side apply computed (else the create is
    /// recorded as an Update of the request's field manager).
    fn prepare_create(
        &self,
        t: &Target,
        mut obj: Value,
        applied: Option<Managers>,
    ) -> Result<(String, Value), ApiError> {
        let requested = Managers::requested(&obj);
        obj["apiVersion"] = json!(t.info.api_version(&t.info.versions[0]));
        obj["kind"] = json!(t.info.kind);
        let mut name = meta_str(&obj, "name").unwrap_or("").to_string();
        if name.is_empty()
            && let Some(prefix) = meta_str(&obj, "generateName").filter(|p| !p.is_empty())
        {
            name = generated_name(prefix);
            if let Some(meta) = meta_mut(&mut obj) {
                meta.insert("name".into(), json!(name));
            }
        }
        if name.is_empty() {
            let causes = vec![Cause::required(
                "metadata.name",
                "name or generateName is required",
            )];
            return Err(ApiError::invalid(&t.info.kind, &t.info.group, "", causes));
        }
        self.stamp_new(&t.info, &mut obj);
        // A create sets no status, except a Node's (a kubelet registers its node with it).
        if t.info.status_subresource
            && !(t.info.group.is_empty() && t.info.resource == "nodes")
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        apply_defaults(&t.info, &mut obj, true);
        prune_custom(t, &mut obj)?;
        match applied {
            Some(managers) => managers.store(&mut obj),
            None => {
                let base = match requested {
                    Requested::Set(managers) => managers,
                    Requested::Keep | Requested::Reset => Managers::default(),
                };
                t.record_update(base, None, &mut obj);
            }
        }
        // After managedFields: what the registry allocates is no manager's, as with
        // kube-apiserver, whose Service storage allocates after field management.
        self.allocate_service(t, &name, None, &mut obj)?;
        self.validate(t, &obj, None)?;
        self.check_namespace(t, &mut obj, &name)?;
        Ok((name, obj))
    }

    async fn create(
        &self,
        t: &Target,
        content_type: &str,
        body: &Bytes,
        dry_run: bool,
    ) -> Result<Response<Body>, ApiError> {
        let mut obj = self.decode(t, content_type, body)?;
        let warnings = unknown_fields_of_body(t, &mut obj)?;
        self.create_decoded(t, obj, dry_run)
            .await
            .map(|r| with_warnings(r, &warnings))
    }

    async fn create_decoded(
        &self,
        t: &Target,
        obj: Value,
        dry_run: bool,
    ) -> Result<Response<Body>, ApiError> {
        let (name, obj) = self.prepare_create(t, obj, None)?;
        if dry_run {
            if t.info.store_key() == "/services" {
                let namespace = t.namespace.as_deref().unwrap_or("");
                self.0
                    .service_allocator
                    .release(&format!("{namespace}/{name}"));
            }
            if self.0.store.get(&t.key(&name)).is_some() {
                return Err(ApiError::already_exists(
                    &t.info.group,
                    &t.info.resource,
                    &name,
                ));
            }
            return Ok(ok_json(201, &obj));
        }
        let outcome = self
            .write(Op::Put {
                key: t.key(&name),
                expect: Expect::Absent,
                object: obj,
            })
            .await?;
        match outcome {
            Outcome::Written(o) => {
                self.after_write(t);
                if t.info.store_key() == NAMESPACES {
                    self.namespace_defaults(&name).await?;
                }
                Ok(json_response(201, render(&t.info, &t.version, &o)))
            }
            Outcome::AlreadyExists => Err(ApiError::already_exists(
                &t.info.group,
                &t.info.resource,
                &name,
            )),
            Outcome::NotFound | Outcome::Conflict => {
                Err(ApiError::internal("unexpected store outcome for a create"))
            }
        }
    }

    async fn write(&self, op: Op) -> Result<Outcome, ApiError> {
        // A Service's allocations are held only until its write is stored or refused: from
        // then on the store says what is in use.
        let service = match &op {
            Op::Put { key, .. } if key.resource == "/services" => {
                Some(format!("{}/{}", key.namespace, key.name))
            }
            _ => None,
        };
        // What etcd refuses under kube-apiserver (a dry-run never reaches it).
        let too_large = matches!(&op, Op::Put { object, .. }
            if crate::validation::stored_size_lower_bound(object)
                > crate::validation::ETCD_MAX_REQUEST_BYTES);
        let result = if too_large {
            Err(ApiError::unclassified("etcdserver: request is too large"))
        } else {
            self.0
                .store
                .write_one(op)
                .await
                .map_err(|e| ApiError::internal(e.0))
        };
        if let Some(service) = service {
            self.0.service_allocator.release(&service);
        }
        result
    }

    fn after_write(&self, t: &Target) {
        if t.info.store_key() == CRDS {
            self.refresh_registry();
        }
    }

    /// Computes what an update of `old` to `new` stores, or None when nothing changes.
    /// `applied`: `new` carries the managedFields a server-side apply computed (else the
    /// change is recorded as an Update of the request's field manager).
    fn prepare_update(
        &self,
        t: &Target,
        name: &str,
        old: &Obj,
        mut new: Value,
        applied: bool,
    ) -> Result<UpdatePlan, ApiError> {
        let old_v = old.value().map_err(|e| ApiError::internal(e.to_string()))?;
        // Which managedFields to start from: a subresource never sets them; a body may
        // replace ([]/[{}] resets them), or leave them out to keep the stored ones.
        let base = if t.status || t.scale {
            Managers::of(&old_v)
        } else {
            match Managers::requested(&new) {
                Requested::Keep => Managers::of(&old_v),
                Requested::Reset => Managers::default(),
                Requested::Set(managers) => managers,
            }
        };
        let applied_fields = if applied {
            Some(new.pointer("/metadata/managedFields").cloned())
        } else {
            None
        };
        if !new.is_object() {
            return Err(ApiError::bad_request("the object must be a JSON object"));
        }
        match meta_str(&new, "name") {
            Some(n) if !n.is_empty() && n != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            _ => {}
        }
        if t.info.namespaced {
            match meta_str(&new, "namespace") {
                Some(ns) if !ns.is_empty() && Some(ns) != t.namespace.as_deref() => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {}
            }
        }
        let mut result = if t.status {
            let mut r = old_v.clone();
            match new.get("status") {
                Some(s) => r["status"] = s.clone(),
                None => {
                    if let Some(o) = r.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            r
        } else {
            if t.info.status_subresource
                && let Some(o) = new.as_object_mut()
            {
                match old_v.get("status") {
                    Some(s) => {
                        o.insert("status".into(), s.clone());
                    }
                    None => {
                        o.remove("status");
                    }
                }
            }
            new
        };
        result["apiVersion"] = old_v
            .get("apiVersion")
            .cloned()
            .unwrap_or_else(|| json!(t.info.api_version(&t.info.versions[0])));
        result["kind"] = json!(t.info.kind);
        if let Some(meta) = meta_mut(&mut result) {
            match applied_fields {
                Some(Some(fields)) => {
                    meta.insert("managedFields".into(), fields);
                }
                Some(None) => {
                    meta.remove("managedFields");
                }
                None => {}
            }
            meta.insert("name".into(), json!(name));
            if let Some(ns) = &t.namespace {
                meta.insert("namespace".into(), json!(ns));
            }
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match old_v.pointer(&format!("/metadata/{f}")) {
                    Some(v) => {
                        meta.insert(f.into(), v.clone());
                    }
                    None => {
                        meta.remove(f);
                    }
                }
            }
            meta.insert("resourceVersion".into(), json!(old.rv.to_string()));
        }
        if t.info.store_key() == "/services"
            && !t.status
            && let Some(cause) = service_cluster_ip_update(&old_v, &mut result)
        {
            return Err(ApiError::invalid(
                &t.info.kind,
                &t.info.group,
                name,
                vec![cause],
            ));
        }
        apply_defaults(&t.info, &mut result, false);
        prune_custom(t, &mut result)?;
        self.validate(t, &result, Some(&old_v))?;
        if t.info.generation && spec_changed(&t.info, &old_v, &result) {
            let g = old_v
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            if let Some(meta) = meta_mut(&mut result) {
                meta.insert("generation".into(), json!(g));
            }
        }
        if !applied {
            t.record_update(base, Some(&old_v), &mut result);
        }
        if !t.status {
            // After managedFields, as on create.
            self.allocate_service(t, name, Some(&old_v), &mut result)?;
        }
        if result == old_v {
            return Ok(UpdatePlan::Unchanged(old_v));
        }
        if matches!(t.info.store_key().as_str(), "/configmaps" | "/secrets")
            && old_v.get("immutable").and_then(Value::as_bool) == Some(true)
        {
            let mut causes = Vec::new();
            for field in ["data", "binaryData"] {
                if old_v.get(field) != result.get(field) {
                    causes.push(Cause::forbidden(
                        field,
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
            if result.get("immutable").and_then(Value::as_bool) != Some(true) {
                causes.push(Cause::forbidden(
                    "immutable",
                    "field is immutable when `immutable` is set",
                ));
            }
            if !causes.is_empty() {
                return Err(ApiError::invalid(&t.info.kind, &t.info.group, name, causes));
            }
        }
        if meta_str(&old_v, "deletionTimestamp").is_some() {
            let finalizers = |v: &Value| string_items(v.pointer("/metadata/finalizers"));
            let before = finalizers(&old_v);
            let added: Vec<String> = finalizers(&result)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                let cause = Cause::forbidden(
                    "metadata.finalizers",
                    format!(
                        "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                        added
                            .iter()
                            .map(|f| format!("{f:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                return Err(ApiError::invalid(
                    &t.info.kind,
                    &t.info.group,
                    name,
                    vec![cause],
                ));
            }
        }
        let finalizers_empty = result
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if meta_str(&result, "deletionTimestamp").is_some()
            && finalizers_empty
            && !is_cleanup_managed(&t.info)
        {
            return Ok(UpdatePlan::Delete(result));
        }
        Ok(UpdatePlan::Put(result))
    }

    /// Runs a read-compute-write cycle, retrying on conflicts when `retry`.
    async fn update_with<F>(
        &self,
        t: &Target,
        name: &str,
        dry_run: bool,
        retry: bool,
        applied: bool,
        mut compute: F,
    ) -> Result<Response<Body>, ApiError>
    where
        F: FnMut(&Obj) -> Result<Value, ApiError>,
    {
        for _ in 0..CONFLICT_RETRIES {
            let mut released = None;
            let key = t.key(name);
            let old = self
                .0
                .store
                .get(&key)
                .ok_or_else(|| ApiError::not_found(&t.info.group, &t.info.resource, name))?;
            let new = compute(&old)?;
            if let Some(rv) = meta_str(&new, "resourceVersion").filter(|s| !s.is_empty()) {
                let parsed: u64 = rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?;
                if parsed != old.rv {
                    return Err(ApiError::stale(&t.info.group, &t.info.resource, name));
                }
            }
            let plan = self.prepare_update(t, name, &old, new, applied)?;
            let op = match plan {
                UpdatePlan::Unchanged(v) => return Ok(ok_json(200, &respond(t, v))),
                UpdatePlan::Put(v) | UpdatePlan::Delete(v) if dry_run => {
                    return Ok(ok_json(200, &respond(t, v)));
                }
                UpdatePlan::Put(v) => Op::Put {
                    key,
                    expect: Expect::Rv(old.rv),
                    object: v,
                },
                UpdatePlan::Delete(v) => {
                    // Answered with the update that released it, as kube-apiserver does.
                    released = Some(v);
                    Op::Delete {
                        key,
                        expect: Expect::Rv(old.rv),
                    }
                }
            };
            let removing = matches!(op, Op::Delete { .. });
            match self.write(op).await? {
                Outcome::Written(o) => {
                    if removing {
                        self.spawn_collect(&o, false);
                    }
                    self.after_write(t);
                    if let Some(v) = released {
                        return Ok(ok_json(200, &respond(t, v)));
                    }
                    if t.scale {
                        let v = o.value().map_err(|e| ApiError::internal(e.to_string()))?;
                        return Ok(ok_json(200, &respond(t, v)));
                    }
                    return Ok(json_response(200, render(&t.info, &t.version, &o)));
                }
                Outcome::NotFound => {
                    return Err(ApiError::not_found(&t.info.group, &t.info.resource, name));
                }
                Outcome::Conflict if retry => continue,
                Outcome::Conflict => {
                    return Err(ApiError::stale(&t.info.group, &t.info.resource, name));
                }
                Outcome::AlreadyExists => {
                    return Err(ApiError::internal("unexpected store outcome for an update"));
                }
            }
        }
        Err(ApiError::stale(&t.info.group, &t.info.resource, name))
    }

    async fn update(
        &self,
        t: &Target,
        name: &str,
        content_type: &str,
        body: &Bytes,
        dry_run: bool,
    ) -> Result<Response<Body>, ApiError> {
        let mut new = self.decode(t, content_type, body)?;
        let warnings = unknown_fields_of_body(t, &mut new)?;
        // As Kubernetes: a body naming another object is a 400 before any lookup.
        if let Some(n) = meta_str(&new, "name").filter(|n| !n.is_empty() && *n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        // No resourceVersion in the body means an unconditional update (retried on races).
        let unconditional = meta_str(&new, "resourceVersion").is_none_or(str::is_empty);
        // Custom resources allow no unconditional update of an existing object (their
        // strategy says so in kube-apiserver), named by resource, not kind.
        if unconditional && t.info.custom && self.0.store.get(&t.key(name)).is_some() {
            let cause = Cause {
                reason: "FieldValueInvalid",
                message: "Invalid value: 0: must be specified for an update".into(),
                field: "metadata.resourceVersion".into(),
            };
            let resource = &t.info.resource;
            let mut e = ApiError::invalid(resource, &t.info.group, name, vec![cause]);
            e.message = e.message.replacen(
                resource.as_str(),
                &crate::api_error::qualified(&t.info.group, resource),
                1,
            );
            return Err(e);
        }
        self.update_with(t, name, dry_run, unconditional, false, |_| Ok(new.clone()))
            .await
            .map(|r| with_warnings(r, &warnings))
    }

    /// PUT or PATCH of `/scale`: the change is computed on the Scale view and written as
    /// the parent's `spec.replicas`.
    async fn update_scale(
        &self,
        t: &Target,
        name: &str,
        method: &hyper::Method,
        content_type: &str,
        body: &Bytes,
        dry_run: bool,
    ) -> Result<Response<Body>, ApiError> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let body_value: Value = if *method == hyper::Method::PUT {
            decode_body("Scale", content_type, body)?
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
        };
        let put = *method == hyper::Method::PUT;
        self.update_with(t, name, dry_run, true, false, |old| {
            let mut live = old.value().map_err(|e| ApiError::internal(e.to_string()))?;
            let current = to_scale(&live);
            let wanted = if put {
                body_value.clone()
            } else {
                match media.as_str() {
                    "application/merge-patch+json" => {
                        crate::patch::merge_patch(&current, &body_value)
                    }
                    "application/strategic-merge-patch+json" => {
                        crate::patch::strategic_merge_patch("Scale", &current, &body_value)
                    }
                    "application/json-patch+json" => {
                        crate::patch::json_patch(&current, &body_value)
                            .map_err(|e| ApiError::bad_request(e.to_string()))?
                    }
                    other => return Err(ApiError::unsupported_media_type(other)),
                }
            };
            if let Some(rv) = meta_str(&wanted, "resourceVersion").filter(|rv| !rv.is_empty())
                && rv != old.rv.to_string()
            {
                return Err(ApiError::stale(&t.info.group, &t.info.resource, name));
            }
            let replicas = wanted
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if replicas < 0 {
                let cause = Cause::invalid(
                    "spec.replicas",
                    &replicas.to_string(),
                    "must be greater than or equal to 0",
                );
                return Err(ApiError::invalid("Scale", "autoscaling", name, vec![cause]));
            }
            live["spec"]["replicas"] = json!(replicas);
            if let Some(meta) = meta_mut(&mut live) {
                meta.remove("resourceVersion");
            }
            Ok(live)
        })
        .await
    }

    async fn patch(
        &self,
        t: &Target,
        name: &str,
        content_type: &str,
        body: &Bytes,
        query: &Query,
        dry_run: bool,
    ) -> Result<Response<Body>, ApiError> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let patch_kind = match media.as_str() {
            "application/merge-patch+json" => PatchKind::Merge,
            "application/json-patch+json" => PatchKind::Json,
            "application/strategic-merge-patch+json" if !t.info.custom => PatchKind::Strategic,
            "application/strategic-merge-patch+json" => {
                return Err(ApiError::unsupported_media_type(&format!(
                    "{media} (strategic merge patch is not supported for custom resources; use a merge patch)"
                )));
            }
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => PatchKind::Apply,
            other => return Err(ApiError::unsupported_media_type(other)),
        };
        let patch: Value = match patch_kind {
            PatchKind::Apply => decode_body(&t.info.kind, "application/yaml", body)?,
            _ => serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
        };
        if patch_kind == PatchKind::Apply {
            if query.get("fieldManager").is_none_or(String::is_empty) {
                return Err(options_invalid(
                    "PatchOptions",
                    vec![Cause::required(
                        "fieldManager",
                        "is required for apply patch",
                    )],
                ));
            }
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "the applied configuration must be an object",
                ));
            }
            undeclared_in_apply_patch(t, name, &patch)?;
            if self.0.store.get(&t.key(name)).is_none() && !t.status {
                return self.apply_create(t, name, patch, dry_run).await;
            }
        }
        let applied = patch_kind == PatchKind::Apply;
        let mut warnings = Vec::new();
        self.update_with(t, name, dry_run, true, applied, |old| {
            let live = old.value().map_err(|e| ApiError::internal(e.to_string()))?;
            let mut out = match patch_kind {
                PatchKind::Merge => crate::patch::merge_patch(&live, &patch),
                PatchKind::Strategic => {
                    crate::patch::strategic_merge_patch(&t.info.kind, &live, &patch)
                }
                PatchKind::Apply => t.server_side_apply(Some(&live), &patch)?,
                PatchKind::Json => crate::patch::json_patch(&live, &patch).map_err(|e| {
                    let mut err = ApiError::invalid(&t.info.kind, &t.info.group, name, vec![]);
                    err.message = e.to_string();
                    err
                })?,
            };
            // A patch that does not mention resourceVersion must not act as a precondition.
            if patch.pointer("/metadata/resourceVersion").is_none()
                && patch_kind != PatchKind::Json
                && let Some(meta) = meta_mut(&mut out)
            {
                meta.remove("resourceVersion");
            }
            if patch_kind == PatchKind::Json
                && let Some(meta) = meta_mut(&mut out)
                && meta.get("resourceVersion").and_then(Value::as_str)
                    == Some(old.rv.to_string().as_str())
            {
                meta.remove("resourceVersion");
            }
            if !applied {
                warnings = unknown_fields_of_patched(t, patch_kind, &patch, &mut out)?;
            }
            Ok(out)
        })
        .await
        .map(|r| with_warnings(r, &warnings))
    }

    async fn apply_create(
        &self,
        t: &Target,
        name: &str,
        applied: Value,
        dry_run: bool,
    ) -> Result<Response<Body>, ApiError> {
        let mut obj = applied;
        if let Some(meta) = meta_mut(&mut obj) {
            match meta.get("name").and_then(Value::as_str) {
                Some(n) if n != name => {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    )));
                }
                _ => {
                    meta.insert("name".into(), json!(name));
                }
            }
        }
        let obj = t.server_side_apply(None, &obj)?;
        let managers = Managers::of(&obj);
        let (_, obj) = self.prepare_create(t, obj, Some(managers))?;
        if dry_run {
            return Ok(ok_json(201, &obj));
        }
        match self
            .write(Op::Put {
                key: t.key(name),
                expect: Expect::Absent,
                object: obj,
            })
            .await?
        {
            Outcome::Written(o) => {
                self.after_write(t);
                if t.info.store_key() == NAMESPACES {
                    self.namespace_defaults(name).await?;
                }
                Ok(json_response(201, render(&t.info, &t.version, &o)))
            }
            // Someone created it meanwhile: the client retries and gets the update path.
            _ => Err(ApiError::stale(&t.info.group, &t.info.resource, name)),
        }
    }

    // ----- deletes -----

    async fn delete(
        &self,
        t: &Target,
        name: &str,
        body: &Bytes,
        dry_run: bool,
    ) -> Result<Response<Body>, ApiError> {
        let options: Value = if body.is_empty() {
            json!({})
        } else if body.starts_with(b"k8s\0") {
            // client-go's typed clients send DeleteOptions as protobuf.
            crate::protobuf::decode(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
        };
        // As Kubernetes' namespace lifecycle admission: these stay.
        if t.info.store_key() == NAMESPACES
            && matches!(name, "default" | "kube-system" | "kube-public")
        {
            let mut e = ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            ));
            e.details = Some(json!({"name": name, "kind": "namespaces"}));
            return Err(e);
        }
        let dry_run = dry_run
            || options
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v == "All"));
        let want_rv = options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        // Orphan: dependents keep existing and only lose their reference to this owner.
        // Background and Foreground both delete dependents (in the background).
        let foreground =
            options.get("propagationPolicy").and_then(Value::as_str) == Some("Foreground");
        let orphan = options.get("propagationPolicy").and_then(Value::as_str) == Some("Orphan")
            || options.get("orphanDependents").and_then(Value::as_bool) == Some(true);
        let want_uid = options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        for _ in 0..CONFLICT_RETRIES {
            let key = t.key(name);
            let cur = self
                .0
                .store
                .get(&key)
                .ok_or_else(|| ApiError::not_found(&t.info.group, &t.info.resource, name))?;
            let v = cur.value().map_err(|e| ApiError::internal(e.to_string()))?;
            if want_rv.as_ref().is_some_and(|rv| *rv != cur.rv.to_string())
                || want_uid
                    .as_deref()
                    .is_some_and(|u| Some(u) != meta_str(&v, "uid"))
            {
                return Err(ApiError::conflict(
                    &t.info.group,
                    &t.info.resource,
                    name,
                    "the precondition of the delete was not met",
                ));
            }
            let dependents =
                meta_str(&v, "uid").is_some_and(|u| !self.0.store.dependents_of(u).is_empty());
            if foreground
                && dependents
                && !is_cleanup_managed(&t.info)
                && meta_str(&v, "deletionTimestamp").is_none()
            {
                let mut marked = v.clone();
                if let Some(meta) = meta_mut(&mut marked) {
                    meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
                    meta.insert("deletionGracePeriodSeconds".into(), json!(0));
                    let finalizers = meta.entry("finalizers").or_insert_with(|| json!([]));
                    if let Some(list) = finalizers.as_array_mut() {
                        list.push(json!(FOREGROUND));
                    }
                }
                if dry_run {
                    return Ok(ok_json(200, &marked));
                }
                match self
                    .write(Op::Put {
                        key: key.clone(),
                        expect: Expect::Rv(cur.rv),
                        object: marked,
                    })
                    .await?
                {
                    Outcome::Written(o) => {
                        if let Some(uid) = meta_str(&v, "uid") {
                            self.spawn_foreground(key, uid.to_string());
                        }
                        return Ok(json_response(200, render(&t.info, &t.version, &o)));
                    }
                    Outcome::Conflict => continue,
                    _ => return Err(ApiError::not_found(&t.info.group, &t.info.resource, name)),
                }
            }
            let step = self
                .pod_deletion_step(t, &v, &options)
                .unwrap_or_else(|| deletion_step(&t.info, &v));
            let op = match step {
                DeletionStep::AlreadyDeleting => return Ok(ok_json(200, &v)),
                DeletionStep::Remove => {
                    if dry_run {
                        return Ok(ok_json(200, &deleted_answer(&t.info, v)));
                    }
                    Op::Delete {
                        key,
                        expect: Expect::Rv(cur.rv),
                    }
                }
                DeletionStep::MarkDeleting(marked) => {
                    if dry_run {
                        return Ok(ok_json(200, &marked));
                    }
                    Op::Put {
                        key,
                        expect: Expect::Rv(cur.rv),
                        object: marked,
                    }
                }
            };
            let removing = matches!(op, Op::Delete { .. });
            match self.write(op).await? {
                Outcome::Written(o) => {
                    if removing {
                        self.spawn_collect(&o, orphan);
                    }
                    if is_cleanup_managed(&t.info) {
                        self.spawn_cleanup(t.info.store_key() == NAMESPACES, name.to_string());
                    }
                    if removing && is_namespace_default(&t.info, name) {
                        self.spawn_namespace_defaults(o.namespace.clone());
                    }
                    self.after_write(t);
                    if removing && !returns_deleted_object(&t.info) {
                        return Ok(ok_json(200, &deleted_answer(&t.info, v)));
                    }
                    return Ok(json_response(200, render(&t.info, &t.version, &o)));
                }
                Outcome::Conflict => continue,
                Outcome::NotFound => {
                    return Err(ApiError::not_found(&t.info.group, &t.info.resource, name));
                }
                Outcome::AlreadyExists => {
                    return Err(ApiError::internal("unexpected store outcome for a delete"));
                }
            }
        }
        Err(ApiError::stale(&t.info.group, &t.info.resource, name))
    }

    async fn delete_collection(
        &self,
        t: &Target,
        query: &Query,
        dry_run: bool,
    ) -> Result<Response<Body>, ApiError> {
        let labels =
            LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = FieldSelector::parse_with(
            query.get("fieldSelector").map(String::as_str).unwrap_or(""),
            crate::registry::extra_field_selectors(&t.info.group, &t.info.resource),
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let (items, _) = self
            .0
            .store
            .list(&t.info.store_key(), t.namespace.as_deref(), None);
        let mut deleted = Vec::new();
        for o in items
            .iter()
            .filter(|o| labels.matches(&*o.labels) && o.matches_fields(&fields))
        {
            let sub = Target {
                info: Arc::clone(&t.info),
                version: t.version.clone(),
                namespace: (!o.namespace.is_empty()).then(|| o.namespace.clone()),
                name: Some(o.name.clone()),
                status: false,
                scale: false,
                strict: false,
                ignore_unknown: false,
                include_object: table::IncludeObject::Metadata,
                manager: String::new(),
                force: false,
            };
            match self.delete(&sub, &o.name, &Bytes::new(), dry_run).await {
                Ok(_) => deleted.push(o.value().unwrap_or(Value::Null)),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let rv = self.0.store.current_rv().to_string();
        Ok(ok_json(
            200,
            &json!({"kind": t.info.list_kind, "apiVersion": t.info.api_version(&t.version), "metadata": {"resourceVersion": rv}, "items": deleted}),
        ))
    }

    /// Deletes a terminating namespace's contents (or a deleted CRD's objects), waits for
    /// their finalizers, then removes the namespace (CRD) itself.
    /// Expires Events as kube-apiserver's `--event-ttl` does (etcd leases there): once a
    /// minute, every core and `events.k8s.io` Event last seen more than `ttl` ago is
    /// removed (watchers see it deleted). Events are the one kind that grows with activity
    /// alone; this keeps them bounded by time.
    pub(crate) fn spawn_event_expiry(&self, ttl: std::time::Duration, every: std::time::Duration) {
        let state = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if state.is_closing() {
                    return;
                }
                state.expire_events(ttl).await;
            }
        });
    }

    async fn expire_events(&self, ttl: std::time::Duration) {
        let now = time::OffsetDateTime::now_utc();
        let Ok(ttl) = time::Duration::try_from(ttl) else {
            return;
        };
        for resource in ["/events", "events.k8s.io/events"] {
            let (events, _) = self.0.store.list(resource, None, None);
            for event in events {
                let Ok(v) = event.value() else { continue };
                let seen = ["/lastTimestamp", "/eventTime", "/series/lastObservedTime"]
                    .iter()
                    .filter_map(|p| v.pointer(p).and_then(Value::as_str))
                    .chain(meta_str(&v, "creationTimestamp"))
                    .filter_map(crate::objects::parse_rfc3339)
                    .max();
                if seen.is_some_and(|t| now - t > ttl) {
                    let key = ObjKey {
                        resource: resource.to_string(),
                        namespace: event.namespace.clone(),
                        name: event.name.clone(),
                    };
                    // A conflict means it changed just now: it is not expired.
                    let _ = self
                        .write(Op::Delete {
                            key,
                            expect: Expect::Rv(event.rv),
                        })
                        .await;
                }
            }
        }
    }

    fn spawn_cleanup(&self, namespace: bool, name: String) {
        let id = format!("{namespace}/{name}");
        if let Ok(mut running) = self.0.cleanups.lock()
            && !running.insert(id.clone())
        {
            return;
        }
        let state = self.clone();
        tokio::spawn(async move {
            if let Err(e) = state.cleanup(namespace, &name).await {
                tracing::warn!(%name, error = %e.message, "cleanup stopped; it resumes on the next start");
            }
            if let Ok(mut running) = state.0.cleanups.lock() {
                running.remove(&id);
            }
        });
    }

    async fn cleanup(&self, namespace: bool, name: &str) -> Result<(), ApiError> {
        let owner = if namespace {
            namespace_key(name)
        } else {
            ObjKey {
                resource: CRDS.into(),
                namespace: String::new(),
                name: name.into(),
            }
        };
        let crd_resource = if namespace {
            None
        } else {
            let crd = self.0.store.get(&owner).and_then(|o| o.value().ok());
            crd.and_then(|c| crate::crd::resource_info(&c))
                .map(|i| i.store_key())
        };
        loop {
            let Some(owner_obj) = self.0.store.get(&owner) else {
                return Ok(());
            };
            let victims: Vec<Arc<Obj>> = match &crd_resource {
                Some(resource) => self.0.store.list(resource, None, None).0,
                None if namespace => self
                    .0
                    .store
                    .resources_with_objects_in(name)
                    .into_iter()
                    .flat_map(|r| self.0.store.list(&r, Some(name), None).0)
                    .collect(),
                None => Vec::new(),
            };
            if victims.is_empty() {
                let outcome = self
                    .0
                    .store
                    .write_one(Op::Delete {
                        key: owner.clone(),
                        expect: Expect::Rv(owner_obj.rv),
                    })
                    .await
                    .map_err(|e| ApiError::internal(e.0))?;
                if matches!(outcome, Outcome::Conflict) {
                    continue;
                }
                if !namespace {
                    self.refresh_registry();
                }
                return Ok(());
            }
            let mut ops = Vec::new();
            let mut waiting = false;
            for v in &victims {
                let Ok(value) = v.value() else { continue };
                let resource = match &crd_resource {
                    Some(r) => r.clone(),
                    None => self.store_key_of(&value),
                };
                let key = ObjKey {
                    resource,
                    namespace: v.namespace.clone(),
                    name: v.name.clone(),
                };
                let info = self
                    .registry()
                    .all()
                    .iter()
                    .find(|i| i.store_key() == key.resource)
                    .cloned();
                let step = match &info {
                    Some(i) => deletion_step(i, &value),
                    None => DeletionStep::Remove,
                };
                match step {
                    DeletionStep::Remove => ops.push(Op::Delete {
                        key,
                        expect: Expect::Rv(v.rv),
                    }),
                    DeletionStep::MarkDeleting(m) => {
                        waiting = true;
                        ops.push(Op::Put {
                            key,
                            expect: Expect::Rv(v.rv),
                            object: m,
                        });
                    }
                    DeletionStep::AlreadyDeleting => waiting = true,
                }
            }
            if !ops.is_empty() {
                self.0
                    .store
                    .write(ops)
                    .await
                    .map_err(|e| ApiError::internal(e.0))?;
            }
            if waiting {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }

    /// Garbage collection after `removed` is gone: dependents (objects naming its uid in
    /// `ownerReferences`) lose that reference; with `orphan` that is all, otherwise a
    /// dependent left without owners is deleted (its finalizers honoured), and so on down.
    fn spawn_collect(&self, removed: &Obj, orphan: bool) {
        let Some(uid) = removed
            .value()
            .ok()
            .and_then(|v| meta_str(&v, "uid").map(str::to_string))
        else {
            return;
        };
        if self.0.store.dependents_of(&uid).is_empty() {
            return;
        }
        let state = self.clone();
        tokio::spawn(async move { state.collect(uid, orphan).await });
    }

    /// Foreground deletion: the owner (marked with the `foregroundDeletion` finalizer)
    /// stays until its dependents are gone, then that finalizer is removed.
    fn spawn_foreground(&self, key: ObjKey, uid: String) {
        let state = self.clone();
        tokio::spawn(async move {
            state.collect(uid.clone(), false).await;
            // Dependents with finalizers of their own may take a while.
            while !state.0.store.dependents_of(&uid).is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            for _ in 0..CONFLICT_RETRIES {
                let Some(cur) = state.0.store.get(&key) else {
                    return;
                };
                let Ok(mut value) = cur.value() else { return };
                if meta_str(&value, "uid") != Some(uid.as_str()) {
                    return;
                }
                let finalizers: Vec<Value> = value
                    .pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .map(|f| {
                        f.iter()
                            .filter(|x| x.as_str() != Some(FOREGROUND))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                let op = if finalizers.is_empty() {
                    Op::Delete {
                        key: key.clone(),
                        expect: Expect::Rv(cur.rv),
                    }
                } else {
                    if let Some(meta) = meta_mut(&mut value) {
                        meta.insert("finalizers".into(), Value::Array(finalizers));
                    }
                    Op::Put {
                        key: key.clone(),
                        expect: Expect::Rv(cur.rv),
                        object: value,
                    }
                };
                match state.0.store.write_one(op).await {
                    Ok(Outcome::Conflict) => continue,
                    _ => return,
                }
            }
        });
    }

    /// Collects the dependents of the removed owner `uid` (see [`AppState::spawn_collect`]).
    async fn collect(&self, uid: String, orphan: bool) {
        let mut owners = vec![(uid, orphan, 0usize)];
        while let Some((uid, orphan, attempt)) = owners.pop() {
            let mut conflicted = false;
            for (resource, dependent) in self.0.store.dependents_of(&uid) {
                let Ok(mut value) = dependent.value() else {
                    continue;
                };
                let key = ObjKey {
                    resource: resource.clone(),
                    namespace: dependent.namespace.clone(),
                    name: dependent.name.clone(),
                };
                let remaining: Vec<Value> = value
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .map(|refs| {
                        refs.iter()
                            .filter(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                let info = self
                    .registry()
                    .all()
                    .iter()
                    .find(|i| i.store_key() == resource)
                    .cloned();
                let op = if !orphan && remaining.is_empty() {
                    match info.as_deref().map(|i| deletion_step(i, &value)) {
                        Some(DeletionStep::AlreadyDeleting) => continue,
                        Some(DeletionStep::MarkDeleting(marked)) => Op::Put {
                            key,
                            expect: Expect::Rv(dependent.rv),
                            object: marked,
                        },
                        Some(DeletionStep::Remove) | None => Op::Delete {
                            key,
                            expect: Expect::Rv(dependent.rv),
                        },
                    }
                } else {
                    if let Some(meta) = meta_mut(&mut value) {
                        if remaining.is_empty() {
                            meta.remove("ownerReferences");
                        } else {
                            meta.insert("ownerReferences".into(), Value::Array(remaining));
                        }
                    }
                    Op::Put {
                        key,
                        expect: Expect::Rv(dependent.rv),
                        object: value,
                    }
                };
                let removing = matches!(op, Op::Delete { .. });
                match self.0.store.write_one(op).await {
                    Ok(Outcome::Written(o)) if removing => {
                        if let Some(child) = o
                            .value()
                            .ok()
                            .and_then(|v| meta_str(&v, "uid").map(str::to_string))
                        {
                            owners.push((child, false, 0));
                        }
                    }
                    Ok(Outcome::Conflict) => conflicted = true,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e.0, "garbage collection stopped");
                        return;
                    }
                }
            }
            // A dependent changed meanwhile: look again (bounded).
            if conflicted && attempt < CONFLICT_RETRIES {
                owners.push((uid, orphan, attempt + 1));
            }
        }
    }

    fn store_key_of(&self, value: &Value) -> String {
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        self.registry()
            .find_kind(group, kind)
            .map(|i| i.store_key())
            .unwrap_or_default()
    }
}

enum UpdatePlan {
    Unchanged(Value),
    Put(Value),
    Delete(Value),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PatchKind {
    Merge,
    Json,
    Strategic,
    Apply,
}

enum DeletionStep {
    /// Already has a deletionTimestamp: nothing more to do now.
    AlreadyDeleting,
    /// Set deletionTimestamp (finalizers pending, or a namespace / CRD to clean up).
    MarkDeleting(Value),
    Remove,
}

/// A custom resource's schema for the request's version (else the first served one).
fn custom_schema(t: &Target) -> Option<&Value> {
    if !t.info.custom {
        return None;
    }
    t.info
        .schemas
        .get(&t.version)
        .or_else(|| t.info.schemas.get(&t.info.versions[0]))
        .map(|s| &**s)
}

/// The fields (at any depth) of a create or update body its built-in kind does not declare:
/// refused under `fieldValidation=Strict` (400, listed in document order, as kube-
/// apiserver's strict JSON decoder finds them), else dropped; returned as warnings unless
/// the level is `Ignore`. Custom resources are pruned to their schema instead.
fn unknown_fields_of_body(t: &Target, object: &mut Value) -> Result<Vec<String>, ApiError> {
    if t.info.custom || t.scale {
        return Ok(Vec::new());
    }
    let unknown = crate::unknown_fields::unknown_fields(
        object,
        &t.info.api_version(&t.version),
        &t.info.kind,
    );
    drop_unknown(t, object, unknown, |fields| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {}",
            crate::unknown_fields::strict_decoding_error(fields),
            kind = t.info.kind,
            version = t.version
        ))
    })
}

/// The same for the object a merge, strategic merge or JSON patch produced: kube-apiserver
/// decodes the patched object, so the fields are listed sorted, and a refusal is a 422
/// quoting the patch (strategic, as Go prints the map) or the patched object (the others).
fn unknown_fields_of_patched(
    t: &Target,
    kind: PatchKind,
    patch: &Value,
    patched: &mut Value,
) -> Result<Vec<String>, ApiError> {
    if t.info.custom {
        return Ok(Vec::new());
    }
    let mut unknown = crate::unknown_fields::unknown_fields(
        patched,
        &t.info.api_version(&t.version),
        &t.info.kind,
    );
    unknown.sort();
    let quoted = match kind {
        PatchKind::Strategic => crate::unknown_fields::go_format(patch),
        _ => patched.to_string(),
    };
    drop_unknown(t, patched, unknown, |fields| {
        let cause = Cause::invalid(
            "patch",
            &quoted,
            crate::unknown_fields::strict_decoding_error(fields),
        );
        let mut e = ApiError::invalid("", "", "", vec![cause]);
        // kube-apiserver leaves the empty kind out of the details.
        if let Some(details) = e.details.as_mut().and_then(Value::as_object_mut) {
            details.remove("kind");
        }
        e
    })
}

/// Refuses (Strict) or drops `unknown` from `object`; the warnings to send, if any.
fn drop_unknown(
    t: &Target,
    object: &mut Value,
    unknown: Vec<crate::unknown_fields::FieldPath>,
    refusal: impl FnOnce(&[String]) -> ApiError,
) -> Result<Vec<String>, ApiError> {
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    let shown: Vec<String> = unknown.iter().map(ToString::to_string).collect();
    if t.strict {
        return Err(refusal(&shown));
    }
    crate::unknown_fields::remove(object, &unknown);
    if t.ignore_unknown {
        return Ok(Vec::new());
    }
    Ok(shown
        .into_iter()
        .map(|f| format!("unknown field {}", Value::String(f)))
        .collect())
}

/// A server-side apply of a built-in kind naming a top-level field the kind does not
/// declare fails whatever `fieldValidation` says, as kube-apiserver's typed patch does
/// (a 500 naming the first such field).
fn undeclared_in_apply_patch(t: &Target, name: &str, patch: &Value) -> Result<(), ApiError> {
    if t.info.custom || t.scale {
        return Ok(());
    }
    let api_version = t.info.api_version(&t.version);
    let unknown = crate::unknown_fields::unknown_fields(patch, &api_version, &t.info.kind);
    let Some(first) = unknown.first() else {
        return Ok(());
    };
    let first = crate::unknown_fields::apply_path(patch, first);
    let namespace = meta_str(patch, "namespace").unwrap_or("");
    let name = meta_str(patch, "name").unwrap_or(name);
    Err(ApiError::unclassified(format!(
        "failed to create typed patch object ({namespace}/{name}; {group}/{version}, Kind={kind}): {first}: field not declared in schema",
        group = t.info.group,
        version = t.version,
        kind = t.info.kind
    )))
}

/// Adds one `Warning: 299 - "<text>"` header per warning, as kube-apiserver does.
fn with_warnings(mut response: Response<Body>, warnings: &[String]) -> Response<Body> {
    for warning in warnings {
        let text = format!("299 - {}", Value::String(warning.clone()));
        if let Ok(value) = hyper::header::HeaderValue::from_str(&text) {
            response.headers_mut().append(hyper::header::WARNING, value);
        }
    }
    response
}

/// Drops (or with `fieldValidation=Strict` refuses) what a custom resource's schema does
/// not declare, as Kubernetes prunes to structural schemas.
fn prune_custom(t: &Target, object: &mut Value) -> Result<(), ApiError> {
    let Some(schema) = custom_schema(t) else {
        return Ok(());
    };
    // kube-apiserver drops nulls the schema does not allow before it validates.
    crate::crd_schema::drop_disallowed_nulls(object, schema);
    let removed = crate::prune::prune_object(object, schema);
    if t.strict && !removed.is_empty() {
        // kube-apiserver lists the unknown fields sorted by path.
        let mut fields: Vec<String> = removed
            .iter()
            .map(|p| format!("unknown field \"{}\"", p.trim_start_matches('.')))
            .collect();
        fields.sort();
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
            fields.join(", "),
            kind = t.info.kind,
            version = t.version
        )));
    }
    Ok(())
}

/// The finalizer of foreground deletion.
const FOREGROUND: &str = "foregroundDeletion";

/// Kinds with a `scale` subresource.
/// kube-apiserver's checks of a `fieldManager` query parameter: at most 128 bytes, and
/// printable (one cause per other character, at its byte position).
fn field_manager_causes(manager: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if manager.len() > 128 {
        causes.push(Cause::too_long(
            "fieldManager",
            "may not be more than 128 bytes",
        ));
    }
    for (index, c) in manager.char_indices() {
        // Go's unicode.IsPrint: no control characters, no spaces but U+0020.
        if c.is_control() || (c.is_whitespace() && c != ' ') {
            causes.push(Cause::invalid(
                "fieldManager",
                manager,
                format!(
                    "invalid character U+{:04X} (at position {index})",
                    u32::from(c)
                ),
            ));
        }
    }
    causes
}

/// 422 for bad request options (`CreateOptions.meta.k8s.io "" is invalid: ...`).
fn options_invalid(kind: &str, causes: Vec<Cause>) -> ApiError {
    let mut e = ApiError::invalid(kind, "meta.k8s.io", "", causes);
    e.message = e.message.replacen(kind, &format!("{kind}.meta.k8s.io"), 1);
    e
}

/// The objects kube-controller-manager keeps in every namespace.
fn is_namespace_default(info: &ResourceInfo, name: &str) -> bool {
    matches!(
        (info.store_key().as_str(), name),
        ("/serviceaccounts", "default") | ("/configmaps", "kube-root-ca.crt")
    )
}

/// The `autoscaling/v1` Scale view of a scalable object.
fn to_scale(object: &Value) -> Value {
    let meta = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let pick = |f: &str| meta.get(f).cloned().unwrap_or(Value::Null);
    // A ReplicationController's selector is a plain label map, the apps kinds' a
    // LabelSelector.
    let selector_labels =
        if object.get("kind").and_then(Value::as_str) == Some("ReplicationController") {
            object.pointer("/spec/selector")
        } else {
            object.pointer("/spec/selector/matchLabels")
        };
    let selector = selector_labels
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    // autoscaling/v1 leaves out a zero `spec.replicas` and an empty selector.
    let mut spec = json!({});
    if let Some(replicas) = object
        .pointer("/spec/replicas")
        .filter(|r| r.as_i64() != Some(0))
    {
        spec["replicas"] = replicas.clone();
    }
    let mut status =
        json!({"replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0))});
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": pick("name"), "namespace": pick("namespace"), "uid": pick("uid"), "resourceVersion": pick("resourceVersion"), "creationTimestamp": pick("creationTimestamp")},
        "spec": spec,
        "status": status,
    })
}

/// An answer as metadata only (`list`: as a `PartialObjectMetadataList`). Errors and
/// `Status` answers stay as they are; a write whose answer cannot be converted has
/// happened all the same, as with kube-apiserver.
async fn metadata_only(
    t: &Target,
    answer: Response<Body>,
    version: MetaVersion,
    list: bool,
) -> Result<Response<Body>, ApiError> {
    use http_body_util::BodyExt as _;
    let status = answer.status();
    if !status.is_success() {
        return Ok(answer);
    }
    let bytes = match answer.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let body: Value =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::internal(e.to_string()))?;
    let converted = partial::convert(&t.info, body, version, list)?;
    Ok(ok_json(status.as_u16(), &converted))
}

/// What a write answers: the object, or its Scale view for `/scale`.
fn respond(t: &Target, object: Value) -> Value {
    if t.scale { to_scale(&object) } else { object }
}

/// Resources whose delete answers the deleted object (kube-apiserver's registries with
/// `ReturnDeletedObject`); the others answer a `Status` once the object is gone.
fn returns_deleted_object(info: &ResourceInfo) -> bool {
    !info.custom
        && matches!(
            (info.group.as_str(), info.resource.as_str()),
            (
                "",
                "pods"
                    | "services"
                    | "serviceaccounts"
                    | "persistentvolumes"
                    | "persistentvolumeclaims"
                    | "resourcequotas"
            ) | ("storage.k8s.io", "storageclasses")
        )
}

/// What a delete that removed `object` answers: the object, or a success `Status` naming
/// it.
fn deleted_answer(info: &ResourceInfo, object: Value) -> Value {
    if returns_deleted_object(info) {
        return object;
    }
    let mut details =
        json!({"name": meta_str(&object, "name").unwrap_or_default(), "kind": info.resource});
    if !info.group.is_empty() {
        details["group"] = json!(info.group);
    }
    if let Some(uid) = meta_str(&object, "uid") {
        details["uid"] = json!(uid);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

/// Namespaces and CRDs are removed by a cleanup task after their contents.
fn is_cleanup_managed(info: &ResourceInfo) -> bool {
    let k = info.store_key();
    k == NAMESPACES || k == CRDS
}

fn deletion_step(info: &ResourceInfo, v: &Value) -> DeletionStep {
    if meta_str(v, "deletionTimestamp").is_some() {
        return DeletionStep::AlreadyDeleting;
    }
    let has_finalizers = v
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !has_finalizers && !is_cleanup_managed(info) {
        return DeletionStep::Remove;
    }
    let mut marked = v.clone();
    if let Some(meta) = meta_mut(&mut marked) {
        meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    }
    if info.store_key() == NAMESPACES {
        marked["status"] = json!({"phase": "Terminating"});
    }
    if info.store_key() == CRDS
        && let Some(Value::Array(conds)) = marked.pointer_mut("/status/conditions")
    {
        conds.push(json!({"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress", "message": "CustomResource deletion is in progress", "lastTransitionTime": now_rfc3339()}));
    }
    DeletionStep::MarkDeleting(marked)
}

/// The object's bytes as served at `version` (CRDs with several versions: apiVersion is
/// rewritten, the conversion strategy `None`).
pub(crate) fn render(info: &ResourceInfo, version: &str, obj: &Obj) -> Bytes {
    if info.versions.len() > 1
        && let Ok(mut v) = obj.value()
    {
        let want = info.api_version(version);
        if v.get("apiVersion").and_then(Value::as_str) != Some(want.as_str()) {
            v["apiVersion"] = json!(want);
            if let Ok(b) = serde_json::to_vec(&v) {
                return Bytes::from(b);
            }
        }
    }
    obj.bytes.clone()
}

fn decode_body(kind: &str, content_type: &str, body: &Bytes) -> Result<Value, ApiError> {
    if content_type.contains("application/vnd.kubernetes.protobuf") {
        return crate::protobuf::decode(body).map_err(|e| match e {
            crate::protobuf::ProtobufError::UnsupportedKind(_) => {
                ApiError::unsupported_media_type(&format!("{content_type}: {e}"))
            }
            other => ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {kind}): {other}"
            )),
        });
    }
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    if body.is_empty() {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {kind}): the request body is empty"
        )));
    }
    let yaml = content_type.contains("yaml");
    let parsed: Result<Value, String> = if yaml {
        std::str::from_utf8(body)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_saphyr::from_str::<Value>(s).map_err(|e| e.to_string()))
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {kind}): couldn't get version/kind; {} parse error: {e}",
            if yaml { "yaml" } else { "json" }
        ))
    })
}

fn encode_continue(namespace: &str, name: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"v": 1, "ns": namespace, "name": name}).to_string())
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    use base64::Engine as _;
    let bad = || ApiError::bad_request(format!("invalid continue token: {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let ns = v.get("ns").and_then(Value::as_str).ok_or_else(bad)?;
    let name = v.get("name").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}
