//! The table of served resources: the built-in kinds plus those CustomResourceDefinitions
//! add at runtime. Pure data, no I/O.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// Which names a kind accepts (Kubernetes validates names per kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (Namespace, Service).
    Label,
    /// Any path segment (RBAC kinds allow `system:controller:x`).
    PathSegment,
}

/// An extra column of `kubectl get` output (a `Table` column).
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `date`, ...
    pub type_: String,
    /// A simple JSONPath such as `.spec.replicas`; `#len:.data` counts a map's entries.
    pub json_path: String,
    /// 0 is shown always, 1 only with `-o wide`.
    pub priority: u8,
}

/// One served resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceInfo {
    pub group: String,
    /// Served versions; the first is the preferred (and storage) version.
    pub versions: Vec<String>,
    /// Plural, lower-case: `configmaps`.
    pub resource: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    /// Has a `status` subresource: writes to the main resource keep the old status, and
    /// writes to `/status` change only the status.
    pub status_subresource: bool,
    /// `metadata.generation` is kept (bumped on changes outside metadata and status).
    pub generation: bool,
    pub name_rule: NameRule,
    pub printer_columns: Vec<PrinterColumn>,
    /// Comes from a CustomResourceDefinition.
    pub custom: bool,
    /// CRDs: the structural schema (`openAPIV3Schema`) of each served version.
    pub schemas: BTreeMap<String, Arc<serde_json::Value>>,
}

/// The verbs every resource here supports.
pub const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceInfo {
    /// The key objects of this resource are stored under: `apps/deployments`, `/configmaps`.
    pub fn store_key(&self) -> String {
        format!("{}/{}", self.group, self.resource)
    }
    /// `apps/v1` or `v1` for the given version.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }
    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }
    /// Whole collections can be deleted at once (`deletecollection`): not namespaces, as
    /// in kube-apiserver.
    pub fn deletes_collections(&self) -> bool {
        !(self.group.is_empty() && self.resource == "namespaces")
    }
    /// Has a `scale` subresource (`autoscaling/v1` Scale).
    pub fn has_scale(&self) -> bool {
        matches!(
            (self.group.as_str(), self.resource.as_str()),
            ("apps", "deployments" | "statefulsets" | "replicasets")
                | ("", "replicationcontrollers")
        )
    }
}

/// All served resources.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    resources: Vec<Arc<ResourceInfo>>,
    /// The aggregated discovery documents, written once per registry (a registry is
    /// replaced, never changed, when CRDs come and go).
    aggregated: OnceLock<Arc<crate::discovery::Aggregated>>,
}

/// Marker of `count entries` columns.
const LEN_PREFIX: &str = "#len:";
/// Marker of columns computed as Kubernetes' printers compute them (see [`computed`]).
const COMPUTED_PREFIX: &str = "#computed:";
/// Marker of `kind/name` columns (an object reference as kubectl prints it).
const REF_PREFIX: &str = "#ref:";

fn col(name: &str, type_: &str, path: &str, priority: u8) -> PrinterColumn {
    PrinterColumn {
        name: name.into(),
        type_: type_.into(),
        json_path: path.into(),
        priority,
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    resource: &str,
    kind: &str,
    short_names: &[&str],
    namespaced: bool,
    status: bool,
    generation: bool,
) -> ResourceInfo {
    let name_rule = match (group, resource) {
        ("", "namespaces") | ("", "services") => NameRule::Label,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    };
    let all = [
        "pods",
        "replicationcontrollers",
        "services",
        "deployments",
        "statefulsets",
        "daemonsets",
        "replicasets",
        "jobs",
        "cronjobs",
        "horizontalpodautoscalers",
    ];
    ResourceInfo {
        group: group.into(),
        versions: vec![version.into()],
        resource: resource.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        categories: if all.contains(&resource) {
            vec!["all".into()]
        } else {
            vec![]
        },
        namespaced,
        status_subresource: status,
        generation,
        name_rule,
        printer_columns: builtin_columns(group, resource),
        custom: false,
        schemas: BTreeMap::new(),
    }
}

fn builtin_columns(group: &str, resource: &str) -> Vec<PrinterColumn> {
    match (group, resource) {
        ("", "namespaces") => vec![col("Status", "string", ".status.phase", 0)],
        ("", "configmaps") => vec![col("Data", "integer", "#len:.data", 0)],
        ("", "secrets") => vec![
            col("Type", "string", ".type", 0),
            col("Data", "integer", "#len:.data", 0),
        ],
        ("", "services") => vec![
            col("Type", "string", ".spec.type", 0),
            col("Cluster-IP", "string", ".spec.clusterIP", 0),
            col("External-IP", "string", "#computed:service-external-ip", 0),
            col("Port(s)", "string", "#computed:service-ports", 0),
        ],
        ("", "pods") => vec![
            col("Ready", "string", "#computed:pod-ready", 0),
            col("Status", "string", "#computed:pod-status", 0),
            col("Restarts", "integer", "#computed:pod-restarts", 0),
            col("IP", "string", ".status.podIP", 1),
            col("Node", "string", ".spec.nodeName", 1),
        ],
        ("", "replicationcontrollers") => vec![
            col("Desired", "integer", ".spec.replicas", 0),
            col("Current", "integer", ".status.replicas", 0),
            col("Ready", "integer", ".status.readyReplicas", 0),
        ],
        ("apps", "replicasets") => vec![
            col("Desired", "integer", ".spec.replicas", 0),
            col("Current", "integer", ".status.replicas", 0),
            col("Ready", "integer", ".status.readyReplicas", 0),
        ],
        ("apps", "deployments") => vec![
            col("Ready", "string", "#computed:ready-of-replicas", 0),
            col("Up-to-date", "integer", ".status.updatedReplicas", 0),
            col("Available", "integer", ".status.availableReplicas", 0),
        ],
        ("apps", "statefulsets") => vec![col("Ready", "string", "#computed:ready-of-replicas", 0)],
        ("apps", "daemonsets") => vec![
            col("Desired", "integer", ".status.desiredNumberScheduled", 0),
            col("Current", "integer", ".status.currentNumberScheduled", 0),
            col("Ready", "integer", ".status.numberReady", 0),
            col("Up-to-date", "integer", ".status.updatedNumberScheduled", 0),
            col("Available", "integer", ".status.numberAvailable", 0),
        ],
        ("batch", "jobs") => vec![
            col("Status", "string", "#computed:job-status", 0),
            col("Completions", "string", "#computed:job-completions", 0),
        ],
        ("batch", "cronjobs") => vec![col("Schedule", "string", ".spec.schedule", 0)],
        // kube-apiserver's event table: no leading Name, no Age.
        ("", "events") => vec![
            col("Last Seen", "date", ".lastTimestamp", 0),
            col("Type", "string", ".type", 0),
            col("Reason", "string", ".reason", 0),
            col("Object", "string", "#ref:.involvedObject", 0),
            col("Source", "string", ".source.component", 1),
            col("Message", "string", ".message", 0),
            col("First Seen", "date", ".firstTimestamp", 1),
            col("Count", "integer", ".count", 1),
            col("Name", "string", ".metadata.name", 1),
        ],
        ("discovery.k8s.io", "endpointslices") => vec![
            col("AddressType", "string", ".addressType", 0),
            col("Ports", "integer", "#len:.ports", 0),
            col("Endpoints", "integer", "#len:.endpoints", 0),
        ],
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            vec![col("Created At", "date", ".metadata.creationTimestamp", 0)]
        }
        _ => vec![],
    }
}

/// The built-in kinds, exactly the list the embedded server promises.
pub fn builtins() -> Vec<ResourceInfo> {
    vec![
        builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            &["ns"],
            false,
            true,
            false,
        ),
        builtin(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            &["cm"],
            true,
            false,
            false,
        ),
        builtin("", "v1", "secrets", "Secret", &[], true, false, false),
        builtin("", "v1", "services", "Service", &["svc"], true, true, false),
        builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            &["sa"],
            true,
            false,
            false,
        ),
        builtin("", "v1", "pods", "Pod", &["po"], true, true, true),
        builtin(
            "",
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            &["pvc"],
            true,
            true,
            false,
        ),
        builtin(
            "",
            "v1",
            "persistentvolumes",
            "PersistentVolume",
            &["pv"],
            false,
            true,
            false,
        ),
        builtin(
            "",
            "v1",
            "endpoints",
            "Endpoints",
            &["ep"],
            true,
            false,
            false,
        ),
        builtin("", "v1", "events", "Event", &["ev"], true, false, false),
        builtin(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "EndpointSlice",
            &[],
            true,
            false,
            false,
        ),
        builtin(
            "",
            "v1",
            "limitranges",
            "LimitRange",
            &["limits"],
            true,
            false,
            false,
        ),
        builtin(
            "",
            "v1",
            "resourcequotas",
            "ResourceQuota",
            &["quota"],
            true,
            true,
            false,
        ),
        builtin("", "v1", "nodes", "Node", &["no"], false, true, false),
        builtin(
            "",
            "v1",
            "podtemplates",
            "PodTemplate",
            &[],
            true,
            false,
            true,
        ),
        builtin(
            "",
            "v1",
            "replicationcontrollers",
            "ReplicationController",
            &["rc"],
            true,
            true,
            true,
        ),
        builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            &["deploy"],
            true,
            true,
            true,
        ),
        builtin(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            &["sts"],
            true,
            true,
            true,
        ),
        builtin(
            "apps",
            "v1",
            "daemonsets",
            "DaemonSet",
            &["ds"],
            true,
            true,
            true,
        ),
        builtin(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            &["rs"],
            true,
            true,
            true,
        ),
        builtin(
            "apps",
            "v1",
            "controllerrevisions",
            "ControllerRevision",
            &[],
            true,
            false,
            false,
        ),
        builtin("batch", "v1", "jobs", "Job", &[], true, true, true),
        builtin(
            "batch",
            "v1",
            "cronjobs",
            "CronJob",
            &["cj"],
            true,
            true,
            true,
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "ingresses",
            "Ingress",
            &["ing"],
            true,
            true,
            true,
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "ingressclasses",
            "IngressClass",
            &[],
            false,
            false,
            false,
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            &["netpol"],
            true,
            false,
            true,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "Role",
            &[],
            true,
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            &[],
            true,
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            &[],
            false,
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            &[],
            false,
            false,
            false,
        ),
        builtin(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            &["pdb"],
            true,
            true,
            true,
        ),
        builtin(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            &["hpa"],
            true,
            true,
            true,
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            &[],
            true,
            false,
            false,
        ),
        builtin(
            "storage.k8s.io",
            "v1",
            "storageclasses",
            "StorageClass",
            &["sc"],
            false,
            false,
            false,
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            &["ev"],
            true,
            false,
            false,
        ),
        ResourceInfo {
            categories: vec!["api-extensions".into()],
            ..builtin(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                &["crd", "crds"],
                false,
                true,
                true,
            )
        },
    ]
}

impl Registry {
    /// The built-ins plus the given custom resources (custom entries never shadow built-ins).
    pub fn new(custom: Vec<ResourceInfo>) -> Self {
        let mut resources: Vec<Arc<ResourceInfo>> = builtins().into_iter().map(Arc::new).collect();
        for c in custom {
            if !resources
                .iter()
                .any(|r| r.group == c.group && r.resource == c.resource)
            {
                resources.push(Arc::new(c));
            }
        }
        Registry {
            resources,
            aggregated: OnceLock::new(),
        }
    }

    /// The aggregated discovery documents of this registry, written on first use.
    pub(crate) fn aggregated(
        &self,
        write: impl FnOnce(&Registry) -> crate::discovery::Aggregated,
    ) -> Arc<crate::discovery::Aggregated> {
        Arc::clone(self.aggregated.get_or_init(|| Arc::new(write(self))))
    }

    /// The resource at `/apis/<group>/<version>/<resource>`.
    pub fn find(&self, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceInfo>> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.resource == resource && r.serves(version))
            .cloned()
    }

    /// The resource serving `kind` in `group`.
    pub fn find_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.kind == kind)
            .cloned()
    }

    pub fn all(&self) -> &[Arc<ResourceInfo>] {
        &self.resources
    }

    /// Whether any resource serves `group/version`.
    pub fn serves_group_version(&self, group: &str, version: &str) -> bool {
        self.resources
            .iter()
            .any(|r| r.group == group && r.serves(version))
    }

    /// Groups with their versions, core group excluded, as kube-apiserver's `/apis` lists
    /// them: built-in groups in its priority order, then custom groups (which all have the
    /// same priority) by the name of their first `<version>.<group>` APIService, the order
    /// kube-apiserver's aggregator sorts them in. Versions are in Kubernetes' version
    /// priority (GA before beta before alpha, higher first), so the first is the preferred.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut builtin: Vec<(String, Vec<String>)> = Vec::new();
        let mut custom: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &self.resources {
            if r.group.is_empty() {
                continue;
            }
            let target: &mut Vec<String> = if r.custom {
                custom.entry(r.group.clone()).or_default()
            } else {
                match builtin.iter().position(|(g, _)| *g == r.group) {
                    Some(i) => &mut builtin[i].1,
                    None => {
                        builtin.push((r.group.clone(), Vec::new()));
                        let last = builtin.len() - 1;
                        &mut builtin[last].1
                    }
                }
            };
            for v in &r.versions {
                if !target.contains(v) {
                    target.push(v.clone());
                }
            }
        }
        builtin.sort_by_key(|(g, _)| group_priority_rank(g));
        let mut custom: Vec<(String, Vec<String>)> = custom.into_iter().collect();
        custom.sort_by_cached_key(|(group, versions)| {
            versions
                .iter()
                .map(|v| format!("{v}.{group}"))
                .min()
                .unwrap_or_default()
        });
        let mut out = builtin;
        out.extend(custom);
        for (_, versions) in &mut out {
            versions.sort_by(|a, b| kube_version_order(a, b));
        }
        out
    }

    /// Whether `group` comes from CustomResourceDefinitions.
    pub fn is_custom_group(&self, group: &str) -> bool {
        self.resources.iter().any(|r| r.group == group && r.custom)
    }

    /// Resources served in `group/version`.
    pub fn resources_in(&self, group: &str, version: &str) -> Vec<Arc<ResourceInfo>> {
        self.resources
            .iter()
            .filter(|r| r.group == group && r.serves(version))
            .cloned()
            .collect()
    }
}

/// Where kube-apiserver ranks a built-in group (its APIService group priorities, highest
/// first); unknown groups after them.
fn group_priority_rank(group: &str) -> usize {
    const ORDER: [&str; 21] = [
        "apiregistration.k8s.io",
        "apps",
        "events.k8s.io",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "networking.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "scheduling.k8s.io",
        "coordination.k8s.io",
        "node.k8s.io",
        "discovery.k8s.io",
        "resource.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "storagemigration.k8s.io",
    ];
    ORDER
        .iter()
        .position(|g| *g == group)
        .unwrap_or(ORDER.len())
}

/// Kubernetes' version priority as an ordering (the higher priority first): versions like
/// `v1`, `v2beta1`, `v1alpha2` come first, GA before beta before alpha, higher major then
/// higher minor first; other names after them, alphabetically.
pub fn kube_version_order(a: &str, b: &str) -> Ordering {
    /// (stability: 2 GA, 1 beta, 0 alpha; major; minor) of a Kubernetes-like version.
    fn parse(v: &str) -> Option<(u8, u64, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (major, tail) = rest.split_at(digits);
        if major.is_empty() {
            return None;
        }
        let major = major.parse().ok()?;
        if tail.is_empty() {
            return Some((2, major, 0));
        }
        let (stability, minor) = if let Some(m) = tail.strip_prefix("beta") {
            (1, m)
        } else {
            (0, tail.strip_prefix("alpha")?)
        };
        if minor.is_empty() || !minor.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some((stability, major, minor.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y.cmp(&x).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// Field selectors a resource accepts beyond `metadata.name` and `metadata.namespace`
/// (Kubernetes registers these per kind).
pub fn extra_field_selectors(group: &str, resource: &str) -> &'static [&'static str] {
    match (group, resource) {
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "events") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ],
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "secrets") => &["type"],
        ("", "namespaces") => &["status.phase"],
        ("", "persistentvolumeclaims") => &["status.phase"],
        ("", "persistentvolumes") => &["status.phase"],
        ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        _ => &[],
    }
}

/// Evaluates a printer column's path on an object (`.a.b`, `.a[0].b`, `#len:.data`).
pub fn column_value(object: &serde_json::Value, path: &str) -> serde_json::Value {
    if let Some(inner) = path.strip_prefix(LEN_PREFIX) {
        return match lookup_path(object, inner) {
            Some(serde_json::Value::Object(m)) => m.len().into(),
            Some(serde_json::Value::Array(a)) => a.len().into(),
            _ => 0.into(),
        };
    }
    if let Some(name) = path.strip_prefix(COMPUTED_PREFIX) {
        return computed(object, name);
    }
    if let Some(inner) = path.strip_prefix(REF_PREFIX) {
        let reference = lookup_path(object, inner);
        let field = |f: &str| {
            reference
                .and_then(|r| r.get(f))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
        };
        return format!("{}/{}", field("kind").to_lowercase(), field("name")).into();
    }
    lookup_path(object, path)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// The cells Kubernetes' printers compute rather than read (pure).
fn computed(object: &serde_json::Value, name: &str) -> serde_json::Value {
    use serde_json::Value;
    let int = |path: &str| {
        lookup_path(object, path)
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let items = |path: &str| {
        lookup_path(object, path)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    match name {
        "pod-ready" => {
            let statuses = items(".status.containerStatuses");
            let total = items(".spec.containers").len();
            let ready = statuses
                .iter()
                .filter(|s| s.get("ready") == Some(&Value::Bool(true)))
                .count();
            format!("{ready}/{total}").into()
        }
        "pod-restarts" => items(".status.containerStatuses")
            .iter()
            .map(|s| s.get("restartCount").and_then(Value::as_i64).unwrap_or(0))
            .sum::<i64>()
            .into(),
        "pod-status" => {
            if lookup_path(object, ".metadata.deletionTimestamp").is_some() {
                return "Terminating".into();
            }
            let mut reason = lookup_path(object, ".status.reason")
                .or_else(|| lookup_path(object, ".status.phase"))
                .and_then(Value::as_str)
                .unwrap_or("Unknown")
                .to_string();
            // As kubectl's printer: the last container that is waiting or terminated names
            // the state (ContainerCreating, ImagePullBackOff, CrashLoopBackOff, Completed).
            for status in items(".status.containerStatuses").iter().rev() {
                let state = status.get("state").cloned().unwrap_or(Value::Null);
                if let Some(waiting) = state.get("waiting") {
                    let r = text(waiting, "reason");
                    if !r.is_empty() {
                        reason = r;
                        break;
                    }
                } else if let Some(terminated) = state.get("terminated") {
                    let r = text(terminated, "reason");
                    reason = if r.is_empty() { "Terminated".into() } else { r };
                    break;
                }
            }
            reason.into()
        }
        "ready-of-replicas" => {
            format!("{}/{}", int(".status.readyReplicas"), int(".spec.replicas")).into()
        }
        "job-completions" => {
            let completions = lookup_path(object, ".spec.completions").and_then(Value::as_i64);
            match completions {
                Some(n) => format!("{}/{n}", int(".status.succeeded")).into(),
                None => format!(
                    "{}/1 of {}",
                    int(".status.succeeded"),
                    int(".spec.parallelism").max(1)
                )
                .into(),
            }
        }
        "job-status" => {
            let conditions = items(".status.conditions");
            let holds = |t: &str| {
                conditions
                    .iter()
                    .any(|c| text(c, "type") == t && text(c, "status") == "True")
            };
            if holds("Complete") {
                "Complete".into()
            } else if holds("Failed") {
                "Failed".into()
            } else if holds("FailureTarget") {
                "FailureTarget".into()
            } else if holds("SuccessCriteriaMet") {
                "SuccessCriteriaMet".into()
            } else if lookup_path(object, ".spec.suspend") == Some(&Value::Bool(true)) {
                "Suspended".into()
            } else {
                "Running".into()
            }
        }
        "service-external-ip" => {
            let mut addresses: Vec<String> = items(".status.loadBalancer.ingress")
                .iter()
                .map(|i| {
                    let ip = text(i, "ip");
                    if ip.is_empty() {
                        text(i, "hostname")
                    } else {
                        ip
                    }
                })
                .collect();
            addresses.extend(
                items(".spec.externalIPs")
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string)),
            );
            let kind = lookup_path(object, ".spec.type")
                .and_then(Value::as_str)
                .unwrap_or("");
            if kind == "ExternalName" {
                return lookup_path(object, ".spec.externalName")
                    .cloned()
                    .unwrap_or_else(|| "<none>".into());
            }
            if addresses.is_empty() {
                return if kind == "LoadBalancer" {
                    "<pending>"
                } else {
                    "<none>"
                }
                .into();
            }
            addresses.join(",").into()
        }
        "service-ports" => {
            let ports: Vec<String> = items(".spec.ports")
                .iter()
                .map(|p| {
                    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                    let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    match p.get("nodePort").and_then(Value::as_i64) {
                        Some(node) => format!("{port}:{node}/{protocol}"),
                        None => format!("{port}/{protocol}"),
                    }
                })
                .collect();
            if ports.is_empty() {
                "<none>".into()
            } else {
                ports.join(",").into()
            }
        }
        _ => Value::Null,
    }
}

fn lookup_path<'a>(object: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let mut current = object;
    for part in path
        .trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
    {
        let (field, index) = match part.find('[') {
            Some(i) => (
                &part[..i],
                part[i + 1..].trim_end_matches(']').parse::<usize>().ok(),
            ),
            None => (part, None),
        };
        if !field.is_empty() {
            current = current.get(field)?;
        }
        if let Some(i) = index {
            current = current.get(i)?;
        }
    }
    Some(current)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_the_promised_list() {
        let r = Registry::new(vec![]);
        assert_eq!(r.all().len(), 36);
        assert!(r.find("", "v1", "configmaps").is_some_and(|c| c.namespaced));
        assert!(
            r.find("apps", "v1", "deployments")
                .is_some_and(|d| d.status_subresource)
        );
        assert!(r.find("apps", "v2", "deployments").is_none());
        assert!(
            r.find("autoscaling", "v2", "horizontalpodautoscalers")
                .is_some()
        );
        assert!(
            r.find("", "v1", "namespaces")
                .is_some_and(|n| !n.namespaced)
        );
    }

    #[test]
    fn groups_list_builtin_groups_in_order_then_custom() {
        let mut crd = builtins()[1].clone();
        crd.group = "argoproj.io".into();
        crd.versions = vec!["v1alpha1".into()];
        crd.resource = "applications".into();
        crd.custom = true;
        let groups = Registry::new(vec![crd]).groups();
        assert_eq!(groups[0].0, "apps");
        assert_eq!(groups.last().map(|g| g.0.as_str()), Some("argoproj.io"));
    }

    #[test]
    fn column_paths() {
        let o =
            serde_json::json!({"spec": {"r": 3, "l": [{"a": "x"}]}, "data": {"a": "1", "b": "2"}});
        assert_eq!(column_value(&o, ".spec.r"), serde_json::json!(3));
        assert_eq!(column_value(&o, ".spec.l[0].a"), serde_json::json!("x"));
        assert_eq!(column_value(&o, "#len:.data"), serde_json::json!(2));
        let event = serde_json::json!({"involvedObject": {"kind": "Pod", "name": "web-1"}});
        assert_eq!(
            column_value(&event, "#ref:.involvedObject"),
            serde_json::json!("pod/web-1")
        );
        assert_eq!(column_value(&o, ".missing"), serde_json::Value::Null);
    }

    #[test]
    fn versions_in_kubernetes_priority() {
        let mut versions = vec![
            "v1alpha1",
            "foo",
            "v2beta1",
            "v1",
            "v10",
            "v1beta2",
            "v1beta1",
            "v2",
            "bar",
            "v11alpha2",
        ];
        versions.sort_by(|a, b| kube_version_order(a, b));
        assert_eq!(
            versions,
            [
                "v10",
                "v2",
                "v1",
                "v2beta1",
                "v1beta2",
                "v1beta1",
                "v11alpha2",
                "v1alpha1",
                "bar",
                "foo"
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn version_order_is_a_total_order(a in "v?[0-9]{0,2}((alpha|beta)[0-9]{0,2})?[a-z]?", b in "v?[0-9]{0,2}((alpha|beta)[0-9]{0,2})?", c in "v[0-9]{1,2}(beta[0-9])?") {
            use std::cmp::Ordering::*;
            proptest::prop_assert_eq!(kube_version_order(&a, &b), kube_version_order(&b, &a).reverse());
            proptest::prop_assert_eq!(kube_version_order(&a, &a), Equal);
            if kube_version_order(&a, &b) != Greater && kube_version_order(&b, &c) != Greater {
                proptest::prop_assert_ne!(kube_version_order(&a, &c), Greater);
            }
        }
    }

    #[test]
    fn custom_groups_follow_their_first_apiservice_name_and_versions_their_priority() {
        let custom = |group: &str, resource: &str, versions: &[&str]| {
            let mut info = builtins()[1].clone();
            info.group = group.into();
            info.resource = resource.into();
            info.versions = versions.iter().map(|v| v.to_string()).collect();
            info.custom = true;
            info
        };
        // As kube-apiserver 1.37 listed the same CRDs at /apis: `foo.mmm.example` sorts
        // before `v1.aaa.example`.
        let registry = Registry::new(vec![
            custom("zzz.example", "things", &["v1alpha1"]),
            custom("aaa.example", "things", &["v1beta1", "v1"]),
            custom("aaa.example", "bars", &["v2"]),
            custom("mmm.example", "things", &["v1", "foo", "v10"]),
        ]);
        let groups = registry.groups();
        let tail: Vec<(&str, Vec<&str>)> = groups[groups.len() - 3..]
            .iter()
            .map(|(g, vs)| (g.as_str(), vs.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            tail,
            [
                ("mmm.example", vec!["v10", "v1", "foo"]),
                ("aaa.example", vec!["v2", "v1", "v1beta1"]),
                ("zzz.example", vec!["v1alpha1"]),
            ]
        );
        // Built-in groups in kube-apiserver's priority order.
        let builtin: Vec<&str> = groups[..groups.len() - 3]
            .iter()
            .map(|(g, _)| g.as_str())
            .collect();
        assert_eq!(
            builtin,
            [
                "apps",
                "events.k8s.io",
                "autoscaling",
                "batch",
                "networking.k8s.io",
                "policy",
                "rbac.authorization.k8s.io",
                "storage.k8s.io",
                "apiextensions.k8s.io",
                "coordination.k8s.io",
                "discovery.k8s.io",
            ]
        );
    }
}
