//! The table of served resources: the built-in kinds plus those CustomResourceDefinitions
//! add at runtime. Pure data, no I/O.

use std::collections::BTreeMap;
use std::sync::Arc;

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
}

/// All served resources.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    resources: Vec<Arc<ResourceInfo>>,
}

/// Marker of `count entries` columns.
const LEN_PREFIX: &str = "#len:";

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
        ],
        ("", "pods") => vec![
            col("Status", "string", ".status.phase", 0),
            col("Node", "string", ".spec.nodeName", 1),
        ],
        ("apps", "deployments") | ("apps", "statefulsets") | ("apps", "replicasets") => vec![
            col("Desired", "integer", ".spec.replicas", 0),
            col("Ready", "integer", ".status.readyReplicas", 0),
        ],
        ("batch", "cronjobs") => vec![col("Schedule", "string", ".spec.schedule", 0)],
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
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            &["crd", "crds"],
            false,
            true,
            true,
        ),
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
        Registry { resources }
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

    /// Groups with their versions (preferred first), core group excluded, in a stable order:
    /// built-in groups first as listed, then custom groups by name.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        let mut custom: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &self.resources {
            if r.group.is_empty() {
                continue;
            }
            let target: &mut Vec<String> = if r.custom {
                custom.entry(r.group.clone()).or_default()
            } else {
                match out.iter().position(|(g, _)| *g == r.group) {
                    Some(i) => &mut out[i].1,
                    None => {
                        out.push((r.group.clone(), Vec::new()));
                        let last = out.len() - 1;
                        &mut out[last].1
                    }
                }
            };
            for v in &r.versions {
                if !target.contains(v) {
                    target.push(v.clone());
                }
            }
        }
        out.extend(custom);
        out
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
    lookup_path(object, path)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
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
        assert_eq!(r.all().len(), 32);
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
        assert_eq!(column_value(&o, ".missing"), serde_json::Value::Null);
    }
}
