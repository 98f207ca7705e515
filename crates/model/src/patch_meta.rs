//! Strategic-merge metadata of the built-in kinds' list fields: which lists merge by a key
//! (`patchStrategy: merge` + `patchMergeKey` in k8s.io/api), which merge as sets of scalars,
//! and which are replaced whole (atomic). Data only, shared by whoever builds or applies
//! strategic merge patches.
//!
//! A list is identified by the field names on the way from the object's root (list indices
//! left out), because one field name can mean different lists: `ports` of a container merge
//! by `containerPort`, `ports` of a Service by `port`, and `ports` of a NetworkPolicy rule
//! are atomic.

/// How a list field is merged by a strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// Elements are maps merged by this key.
    MergeByKey(&'static str),
    /// Elements are scalars merged as a set (`$deleteFromPrimitiveList` removes).
    MergePrimitives,
    /// The list is replaced whole.
    Atomic,
}

const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// The strategy of the list at `path` (field names from the root) in an object of `kind`.
/// Lists the table does not know are atomic, which is what a strategic merge patch does with
/// lists that carry no patch strategy.
pub fn list_strategy(kind: &str, path: &[&str]) -> ListStrategy {
    let Some((&field, parents)) = path.split_last() else {
        return ListStrategy::Atomic;
    };
    let parent = parents.last().copied().unwrap_or("");
    let in_container = CONTAINER_LISTS.contains(&parent);
    // A pod spec is `spec` of a Pod or the `spec` of a `template`.
    let in_pod_spec = parent == "spec"
        && ((kind == "Pod" && parents.len() == 1)
            || parents.len() >= 2 && parents[parents.len() - 2] == "template");
    match field {
        "finalizers" if parent == "metadata" => ListStrategy::MergePrimitives,
        "ownerReferences" if parent == "metadata" => ListStrategy::MergeByKey("uid"),
        "containers" | "initContainers" | "ephemeralContainers" if in_pod_spec => {
            ListStrategy::MergeByKey("name")
        }
        "volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims" if in_pod_spec => {
            ListStrategy::MergeByKey("name")
        }
        "hostAliases" if in_pod_spec => ListStrategy::MergeByKey("ip"),
        "topologySpreadConstraints" if in_pod_spec => ListStrategy::MergeByKey("topologyKey"),
        "env" if in_container => ListStrategy::MergeByKey("name"),
        "volumeMounts" if in_container => ListStrategy::MergeByKey("mountPath"),
        "volumeDevices" if in_container => ListStrategy::MergeByKey("devicePath"),
        "ports" if in_container => ListStrategy::MergeByKey("containerPort"),
        "ports" if kind == "Service" && path == ["spec", "ports"] => {
            ListStrategy::MergeByKey("port")
        }
        "secrets" if kind == "ServiceAccount" && path.len() == 1 => {
            ListStrategy::MergeByKey("name")
        }
        "conditions" if parent == "status" => ListStrategy::MergeByKey("type"),
        _ => ListStrategy::Atomic,
    }
}

/// API groups whose kinds kubectl knows as Go types (client-go's scheme) and therefore
/// patches with a strategic merge patch; every other group (custom resources, and also
/// `apiextensions.k8s.io` and `apiregistration.k8s.io`) gets a JSON merge patch.
pub const STRATEGIC_GROUPS: &[&str] = &[
    "",
    "admissionregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "extensions",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

/// Whether kubectl patches objects of `group` with a strategic merge patch.
pub fn is_strategic_group(group: &str) -> bool {
    STRATEGIC_GROUPS.contains(&group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_field_name_means_different_lists() {
        let template = ["spec", "template", "spec"];
        let containers = [&template[..], &["containers"]].concat();
        assert_eq!(
            list_strategy("Deployment", &containers),
            ListStrategy::MergeByKey("name")
        );
        let ports = [&containers[..], &["ports"]].concat();
        assert_eq!(
            list_strategy("Deployment", &ports),
            ListStrategy::MergeByKey("containerPort")
        );
        assert_eq!(
            list_strategy("Service", &["spec", "ports"]),
            ListStrategy::MergeByKey("port")
        );
        assert_eq!(
            list_strategy("NetworkPolicy", &["spec", "ingress", "ports"]),
            ListStrategy::Atomic
        );
        assert_eq!(
            list_strategy("Pod", &["spec", "containers"]),
            ListStrategy::MergeByKey("name")
        );
        let cron = [
            "spec",
            "jobTemplate",
            "spec",
            "template",
            "spec",
            "initContainers",
            "env",
        ];
        assert_eq!(
            list_strategy("CronJob", &cron),
            ListStrategy::MergeByKey("name")
        );
        assert_eq!(
            list_strategy("Pod", &["spec", "containers", "volumeDevices"]),
            ListStrategy::MergeByKey("devicePath")
        );
        assert_eq!(
            list_strategy("Deployment", &["spec", "template", "spec", "tolerations"]),
            ListStrategy::Atomic
        );
        assert_eq!(
            list_strategy("ConfigMap", &["metadata", "finalizers"]),
            ListStrategy::MergePrimitives
        );
        assert_eq!(
            list_strategy("ClusterRole", &["rules"]),
            ListStrategy::Atomic
        );
    }

    #[test]
    fn custom_resources_and_unscheduled_groups_are_not_strategic() {
        assert!(is_strategic_group(""));
        assert!(is_strategic_group("apps"));
        assert!(!is_strategic_group("apiextensions.k8s.io"));
        assert!(!is_strategic_group("example.com"));
    }
}
