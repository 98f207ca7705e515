//! Strategic-merge metadata of the built-in kinds: Kubernetes' `patchStrategy` and
//! `patchMergeKey` struct tags of `k8s.io/api` (served by kube-apiserver as
//! `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` in `/openapi/v2`), as one
//! table shared by the API server (which applies strategic merge patches) and the engine
//! (which builds them for client-side apply). Data and its lookup, no I/O.
//!
//! A field is found by the field names on the way from the object's root (list indices left
//! out, map keys kept), because one field name can mean different fields: `ports` of a
//! container merge by `containerPort`, `ports` of a Service by `port`, and `ports` of a
//! NetworkPolicy rule are replaced whole. The walk follows the Go types: [`Cursor`] steps from
//! a kind's root type into fields, list items and map values.
//!
//! The table holds only the fields that carry tags and the fields on the way to them; every
//! other field has no strategy (lists replaced whole, maps merged). The testcluster test
//! `patch_meta::the_table_matches_kube_apiserver_openapi` compares it with what the real
//! kube-apiserver serves, path by path, for every kind.

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

/// The tags of one field, as Kubernetes spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PatchTags {
    /// `patchStrategy`: `merge`, `retainKeys`, `merge,retainKeys`, `replace`, or empty.
    pub strategy: &'static str,
    /// `patchMergeKey`, empty when none.
    pub merge_key: &'static str,
}

impl PatchTags {
    fn has(&self, strategy: &str) -> bool {
        self.strategy.split(',').any(|s| s == strategy)
    }

    /// How the field merges when it is a list.
    pub fn list_strategy(&self) -> ListStrategy {
        match (self.has("merge"), self.merge_key) {
            (false, _) => ListStrategy::Atomic,
            (true, "") => ListStrategy::MergePrimitives,
            (true, key) => ListStrategy::MergeByKey(key),
        }
    }

    /// `retainKeys`: a patch of the field (or of each list element) lists with
    /// `$retainKeys` the keys to keep, and the others are cleared.
    pub fn retains_keys(&self) -> bool {
        self.has("retainKeys")
    }

    /// `replace`: the field (a map) is replaced whole instead of merged.
    pub fn replaces(&self) -> bool {
        self.has("replace")
    }
}

/// What is below a field on the way to tagged fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Below {
    /// Nothing the table follows.
    Leaf,
    /// A struct of this type (for a list: the type of its items).
    Struct(&'static str),
    /// A map whose values are of this type.
    Map(&'static str),
}
use Below::{Leaf, Map, Struct};

#[derive(Debug, Clone, Copy)]
struct Field {
    ty: &'static str,
    name: &'static str,
    tags: PatchTags,
    below: Below,
}

const fn f(
    ty: &'static str,
    name: &'static str,
    strategy: &'static str,
    merge_key: &'static str,
    below: Below,
) -> Field {
    Field {
        ty,
        name,
        tags: PatchTags {
            strategy,
            merge_key,
        },
        below,
    }
}

/// The root type of objects of a kind the table does not name: only their `metadata` is
/// known (every kind's is an ObjectMeta, whose `finalizers` and `ownerReferences` merge).
const ANY_KIND: &str = "*";

/// A place in an object while walking it from the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    at: Below,
    tags: PatchTags,
}

impl Cursor {
    /// The root of an object of `kind` (a built-in kind; custom resources have no tags).
    pub fn root(kind: &str) -> Cursor {
        let ty = KINDS
            .binary_search_by(|(k, _)| (*k).cmp(kind))
            .map_or(ANY_KIND, |i| KINDS[i].1);
        Cursor {
            at: Struct(ty),
            tags: PatchTags::default(),
        }
    }

    /// The field `name` of the struct here, or the value of key `name` in the map here.
    pub fn field(self, name: &str) -> Cursor {
        match self.at {
            Struct(ty) => FIELDS
                .binary_search_by(|f| (f.ty, f.name).cmp(&(ty, name)))
                .map_or(UNKNOWN, |i| Cursor {
                    at: FIELDS[i].below,
                    tags: FIELDS[i].tags,
                }),
            Map(ty) => Cursor {
                at: Struct(ty),
                tags: PatchTags::default(),
            },
            Leaf => UNKNOWN,
        }
    }

    /// The tags of the field this cursor stepped into.
    pub fn tags(&self) -> PatchTags {
        self.tags
    }
}

const UNKNOWN: Cursor = Cursor {
    at: Leaf,
    tags: PatchTags {
        strategy: "",
        merge_key: "",
    },
};

/// The tags of the field at `path` (field names from the root, list indices left out) in an
/// object of `kind`; none for fields the table does not know.
pub fn field_tags(kind: &str, path: &[&str]) -> PatchTags {
    path.iter()
        .fold(Cursor::root(kind), |c, name| c.field(name))
        .tags()
}

/// The strategy of the list at `path` (field names from the root) in an object of `kind`.
/// Lists the table does not know are atomic, which is what a strategic merge patch does with
/// lists that carry no patch strategy.
pub fn list_strategy(kind: &str, path: &[&str]) -> ListStrategy {
    field_tags(kind, path).list_strategy()
}

// Generated from the /openapi/v2 of the test cluster's kube-apiserver (Kubernetes 1.37; see
// the module documentation for the test that keeps it so): type names are the OpenAPI
// definitions' without their `io.k8s.api.` (and similar) prefix. Kinds are named without
// their group and version: the only kinds served in several (HorizontalPodAutoscaler v1/v2,
// core and events.k8s.io Event) do not disagree on any tagged path, which that test checks
// for every served version. Both tables are sorted, for binary search.
#[rustfmt::skip]
const KINDS: &[(&str, &str)] = &[
    ("APIService", "apiregistration.v1.APIService"),
    ("CSINode", "storage.v1.CSINode"),
    ("ComponentStatus", "core.v1.ComponentStatus"),
    ("CronJob", "batch.v1.CronJob"),
    ("CustomResourceDefinition", "apiextensions.v1.CustomResourceDefinition"),
    ("DaemonSet", "apps.v1.DaemonSet"),
    ("Deployment", "apps.v1.Deployment"),
    ("DeviceTaintRule", "resource.v1.DeviceTaintRule"),
    ("FlowSchema", "flowcontrol.v1.FlowSchema"),
    ("HorizontalPodAutoscaler", "autoscaling.v2.HorizontalPodAutoscaler"),
    ("Job", "batch.v1.Job"),
    ("MutatingAdmissionPolicy", "admissionregistration.v1.MutatingAdmissionPolicy"),
    ("MutatingWebhookConfiguration", "admissionregistration.v1.MutatingWebhookConfiguration"),
    ("Namespace", "core.v1.Namespace"),
    ("Node", "core.v1.Node"),
    ("PersistentVolumeClaim", "core.v1.PersistentVolumeClaim"),
    ("Pod", "core.v1.Pod"),
    ("PodCertificateRequest", "certificates.v1.PodCertificateRequest"),
    ("PodDisruptionBudget", "policy.v1.PodDisruptionBudget"),
    ("PodTemplate", "core.v1.PodTemplate"),
    ("PriorityLevelConfiguration", "flowcontrol.v1.PriorityLevelConfiguration"),
    ("ReplicaSet", "apps.v1.ReplicaSet"),
    ("ReplicationController", "core.v1.ReplicationController"),
    ("ResourceClaim", "resource.v1.ResourceClaim"),
    ("ResourceClaimTemplate", "resource.v1.ResourceClaimTemplate"),
    ("Service", "core.v1.Service"),
    ("ServiceAccount", "core.v1.ServiceAccount"),
    ("ServiceCIDR", "networking.v1.ServiceCIDR"),
    ("StatefulSet", "apps.v1.StatefulSet"),
    ("StorageVersionMigration", "storagemigration.v1.StorageVersionMigration"),
    ("ValidatingAdmissionPolicy", "admissionregistration.v1.ValidatingAdmissionPolicy"),
    ("ValidatingWebhookConfiguration", "admissionregistration.v1.ValidatingWebhookConfiguration"),
];

#[rustfmt::skip]
const FIELDS: &[Field] = &[
    f("*", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("admissionregistration.v1.MutatingAdmissionPolicy", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("admissionregistration.v1.MutatingAdmissionPolicy", "spec", "", "", Struct("admissionregistration.v1.MutatingAdmissionPolicySpec")),
    f("admissionregistration.v1.MutatingAdmissionPolicySpec", "matchConditions", "merge", "name", Leaf),
    f("admissionregistration.v1.MutatingWebhook", "matchConditions", "merge", "name", Leaf),
    f("admissionregistration.v1.MutatingWebhookConfiguration", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("admissionregistration.v1.MutatingWebhookConfiguration", "webhooks", "merge", "name", Struct("admissionregistration.v1.MutatingWebhook")),
    f("admissionregistration.v1.ValidatingAdmissionPolicy", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("admissionregistration.v1.ValidatingAdmissionPolicy", "spec", "", "", Struct("admissionregistration.v1.ValidatingAdmissionPolicySpec")),
    f("admissionregistration.v1.ValidatingAdmissionPolicySpec", "matchConditions", "merge", "name", Leaf),
    f("admissionregistration.v1.ValidatingAdmissionPolicySpec", "variables", "merge", "name", Leaf),
    f("admissionregistration.v1.ValidatingWebhook", "matchConditions", "merge", "name", Leaf),
    f("admissionregistration.v1.ValidatingWebhookConfiguration", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("admissionregistration.v1.ValidatingWebhookConfiguration", "webhooks", "merge", "name", Struct("admissionregistration.v1.ValidatingWebhook")),
    f("apiextensions.v1.CustomResourceDefinition", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("apiextensions.v1.CustomResourceDefinition", "spec", "", "", Struct("apiextensions.v1.CustomResourceDefinitionSpec")),
    f("apiextensions.v1.CustomResourceDefinitionSpec", "versions", "", "", Struct("apiextensions.v1.CustomResourceDefinitionVersion")),
    f("apiextensions.v1.CustomResourceDefinitionVersion", "schema", "", "", Struct("apiextensions.v1.CustomResourceValidation")),
    f("apiextensions.v1.CustomResourceValidation", "openAPIV3Schema", "", "", Struct("apiextensions.v1.JSONSchemaProps")),
    f("apiextensions.v1.JSONSchemaProps", "allOf", "", "", Struct("apiextensions.v1.JSONSchemaProps")),
    f("apiextensions.v1.JSONSchemaProps", "anyOf", "", "", Struct("apiextensions.v1.JSONSchemaProps")),
    f("apiextensions.v1.JSONSchemaProps", "definitions", "", "", Map("apiextensions.v1.JSONSchemaProps")),
    f("apiextensions.v1.JSONSchemaProps", "not", "", "", Struct("apiextensions.v1.JSONSchemaProps")),
    f("apiextensions.v1.JSONSchemaProps", "oneOf", "", "", Struct("apiextensions.v1.JSONSchemaProps")),
    f("apiextensions.v1.JSONSchemaProps", "patternProperties", "", "", Map("apiextensions.v1.JSONSchemaProps")),
    f("apiextensions.v1.JSONSchemaProps", "properties", "", "", Map("apiextensions.v1.JSONSchemaProps")),
    f("apiextensions.v1.JSONSchemaProps", "x-kubernetes-validations", "merge", "rule", Leaf),
    f("apiregistration.v1.APIService", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("apiregistration.v1.APIService", "status", "", "", Struct("apiregistration.v1.APIServiceStatus")),
    f("apiregistration.v1.APIServiceStatus", "conditions", "merge", "type", Leaf),
    f("apps.v1.DaemonSet", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("apps.v1.DaemonSet", "spec", "", "", Struct("apps.v1.DaemonSetSpec")),
    f("apps.v1.DaemonSet", "status", "", "", Struct("apps.v1.DaemonSetStatus")),
    f("apps.v1.DaemonSetSpec", "template", "", "", Struct("core.v1.PodTemplateSpec")),
    f("apps.v1.DaemonSetStatus", "conditions", "merge", "type", Leaf),
    f("apps.v1.Deployment", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("apps.v1.Deployment", "spec", "", "", Struct("apps.v1.DeploymentSpec")),
    f("apps.v1.Deployment", "status", "", "", Struct("apps.v1.DeploymentStatus")),
    f("apps.v1.DeploymentSpec", "strategy", "retainKeys", "", Leaf),
    f("apps.v1.DeploymentSpec", "template", "", "", Struct("core.v1.PodTemplateSpec")),
    f("apps.v1.DeploymentStatus", "conditions", "merge", "type", Leaf),
    f("apps.v1.ReplicaSet", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("apps.v1.ReplicaSet", "spec", "", "", Struct("apps.v1.ReplicaSetSpec")),
    f("apps.v1.ReplicaSet", "status", "", "", Struct("apps.v1.ReplicaSetStatus")),
    f("apps.v1.ReplicaSetSpec", "template", "", "", Struct("core.v1.PodTemplateSpec")),
    f("apps.v1.ReplicaSetStatus", "conditions", "merge", "type", Leaf),
    f("apps.v1.StatefulSet", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("apps.v1.StatefulSet", "spec", "", "", Struct("apps.v1.StatefulSetSpec")),
    f("apps.v1.StatefulSet", "status", "", "", Struct("apps.v1.StatefulSetStatus")),
    f("apps.v1.StatefulSetSpec", "template", "", "", Struct("core.v1.PodTemplateSpec")),
    f("apps.v1.StatefulSetSpec", "volumeClaimTemplates", "", "", Struct("core.v1.PersistentVolumeClaim")),
    f("apps.v1.StatefulSetStatus", "conditions", "merge", "type", Leaf),
    f("autoscaling.v2.HorizontalPodAutoscaler", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("autoscaling.v2.HorizontalPodAutoscaler", "status", "", "", Struct("autoscaling.v2.HorizontalPodAutoscalerStatus")),
    f("autoscaling.v2.HorizontalPodAutoscalerStatus", "conditions", "merge", "type", Leaf),
    f("batch.v1.CronJob", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("batch.v1.CronJob", "spec", "", "", Struct("batch.v1.CronJobSpec")),
    f("batch.v1.CronJobSpec", "jobTemplate", "", "", Struct("batch.v1.JobTemplateSpec")),
    f("batch.v1.Job", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("batch.v1.Job", "spec", "", "", Struct("batch.v1.JobSpec")),
    f("batch.v1.Job", "status", "", "", Struct("batch.v1.JobStatus")),
    f("batch.v1.JobSchedulingConfiguration", "resourceClaims", "merge", "name", Leaf),
    f("batch.v1.JobSpec", "scheduling", "", "", Struct("batch.v1.JobSchedulingConfiguration")),
    f("batch.v1.JobSpec", "template", "", "", Struct("core.v1.PodTemplateSpec")),
    f("batch.v1.JobStatus", "conditions", "merge", "type", Leaf),
    f("batch.v1.JobTemplateSpec", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("batch.v1.JobTemplateSpec", "spec", "", "", Struct("batch.v1.JobSpec")),
    f("certificates.v1.PodCertificateRequest", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("certificates.v1.PodCertificateRequest", "status", "", "", Struct("certificates.v1.PodCertificateRequestStatus")),
    f("certificates.v1.PodCertificateRequestStatus", "conditions", "merge", "type", Leaf),
    f("core.v1.ComponentStatus", "conditions", "merge", "type", Leaf),
    f("core.v1.ComponentStatus", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("core.v1.Container", "env", "merge", "name", Leaf),
    f("core.v1.Container", "ports", "merge", "containerPort", Leaf),
    f("core.v1.Container", "volumeDevices", "merge", "devicePath", Leaf),
    f("core.v1.Container", "volumeMounts", "merge", "mountPath", Leaf),
    f("core.v1.ContainerStatus", "allocatedResourcesStatus", "merge", "name", Leaf),
    f("core.v1.ContainerStatus", "volumeMounts", "merge", "mountPath", Leaf),
    f("core.v1.EphemeralContainer", "env", "merge", "name", Leaf),
    f("core.v1.EphemeralContainer", "ports", "merge", "containerPort", Leaf),
    f("core.v1.EphemeralContainer", "volumeDevices", "merge", "devicePath", Leaf),
    f("core.v1.EphemeralContainer", "volumeMounts", "merge", "mountPath", Leaf),
    f("core.v1.EphemeralVolumeSource", "volumeClaimTemplate", "", "", Struct("core.v1.PersistentVolumeClaimTemplate")),
    f("core.v1.Namespace", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("core.v1.Namespace", "status", "", "", Struct("core.v1.NamespaceStatus")),
    f("core.v1.NamespaceStatus", "conditions", "merge", "type", Leaf),
    f("core.v1.Node", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("core.v1.Node", "spec", "", "", Struct("core.v1.NodeSpec")),
    f("core.v1.Node", "status", "", "", Struct("core.v1.NodeStatus")),
    f("core.v1.NodeAllocatableResourceClaimStatus", "mapping", "merge", "name", Leaf),
    f("core.v1.NodeAllocatableResourceClaimStatus", "overhead", "merge", "name", Leaf),
    f("core.v1.NodeSpec", "podCIDRs", "merge", "", Leaf),
    f("core.v1.NodeStatus", "addresses", "merge", "type", Leaf),
    f("core.v1.NodeStatus", "conditions", "merge", "type", Leaf),
    f("core.v1.PersistentVolumeClaim", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("core.v1.PersistentVolumeClaim", "status", "", "", Struct("core.v1.PersistentVolumeClaimStatus")),
    f("core.v1.PersistentVolumeClaimStatus", "conditions", "merge", "type", Leaf),
    f("core.v1.PersistentVolumeClaimStatus", "healthStatus", "", "", Struct("core.v1.VolumeHealthStatus")),
    f("core.v1.PersistentVolumeClaimTemplate", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("core.v1.Pod", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("core.v1.Pod", "spec", "", "", Struct("core.v1.PodSpec")),
    f("core.v1.Pod", "status", "", "", Struct("core.v1.PodStatus")),
    f("core.v1.PodSpec", "containers", "merge", "name", Struct("core.v1.Container")),
    f("core.v1.PodSpec", "ephemeralContainers", "merge", "name", Struct("core.v1.EphemeralContainer")),
    f("core.v1.PodSpec", "evictionResponders", "merge", "name", Leaf),
    f("core.v1.PodSpec", "hostAliases", "merge", "ip", Leaf),
    f("core.v1.PodSpec", "imagePullSecrets", "merge", "name", Leaf),
    f("core.v1.PodSpec", "initContainers", "merge", "name", Struct("core.v1.Container")),
    f("core.v1.PodSpec", "resourceClaims", "merge,retainKeys", "name", Leaf),
    f("core.v1.PodSpec", "schedulingGates", "merge", "name", Leaf),
    f("core.v1.PodSpec", "topologySpreadConstraints", "merge", "topologyKey", Leaf),
    f("core.v1.PodSpec", "volumes", "merge,retainKeys", "name", Struct("core.v1.Volume")),
    f("core.v1.PodStatus", "conditions", "merge", "type", Leaf),
    f("core.v1.PodStatus", "containerStatuses", "", "", Struct("core.v1.ContainerStatus")),
    f("core.v1.PodStatus", "ephemeralContainerStatuses", "", "", Struct("core.v1.ContainerStatus")),
    f("core.v1.PodStatus", "hostIPs", "merge", "ip", Leaf),
    f("core.v1.PodStatus", "initContainerStatuses", "", "", Struct("core.v1.ContainerStatus")),
    f("core.v1.PodStatus", "nodeAllocatableResourceClaimStatuses", "merge", "resourceClaimName", Struct("core.v1.NodeAllocatableResourceClaimStatus")),
    f("core.v1.PodStatus", "podIPs", "merge", "ip", Leaf),
    f("core.v1.PodStatus", "resourceClaimStatuses", "merge,retainKeys", "name", Leaf),
    f("core.v1.PodStatus", "volumeHealth", "", "", Struct("core.v1.PodVolumeHealth")),
    f("core.v1.PodTemplate", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("core.v1.PodTemplate", "template", "", "", Struct("core.v1.PodTemplateSpec")),
    f("core.v1.PodTemplateSpec", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("core.v1.PodTemplateSpec", "spec", "", "", Struct("core.v1.PodSpec")),
    f("core.v1.PodVolumeHealth", "healthConditions", "merge", "status", Leaf),
    f("core.v1.ReplicationController", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("core.v1.ReplicationController", "spec", "", "", Struct("core.v1.ReplicationControllerSpec")),
    f("core.v1.ReplicationController", "status", "", "", Struct("core.v1.ReplicationControllerStatus")),
    f("core.v1.ReplicationControllerSpec", "template", "", "", Struct("core.v1.PodTemplateSpec")),
    f("core.v1.ReplicationControllerStatus", "conditions", "merge", "type", Leaf),
    f("core.v1.Service", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("core.v1.Service", "spec", "", "", Struct("core.v1.ServiceSpec")),
    f("core.v1.Service", "status", "", "", Struct("core.v1.ServiceStatus")),
    f("core.v1.ServiceAccount", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("core.v1.ServiceAccount", "secrets", "merge", "name", Leaf),
    f("core.v1.ServiceSpec", "ports", "merge", "port", Leaf),
    f("core.v1.ServiceStatus", "conditions", "merge", "type", Leaf),
    f("core.v1.Volume", "ephemeral", "", "", Struct("core.v1.EphemeralVolumeSource")),
    f("core.v1.VolumeHealthStatus", "healthConditions", "merge", "status", Leaf),
    f("flowcontrol.v1.FlowSchema", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("flowcontrol.v1.FlowSchema", "status", "", "", Struct("flowcontrol.v1.FlowSchemaStatus")),
    f("flowcontrol.v1.FlowSchemaStatus", "conditions", "merge", "type", Leaf),
    f("flowcontrol.v1.PriorityLevelConfiguration", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("flowcontrol.v1.PriorityLevelConfiguration", "status", "", "", Struct("flowcontrol.v1.PriorityLevelConfigurationStatus")),
    f("flowcontrol.v1.PriorityLevelConfigurationStatus", "conditions", "merge", "type", Leaf),
    f("meta.v1.ObjectMeta", "finalizers", "merge", "", Leaf),
    f("meta.v1.ObjectMeta", "ownerReferences", "merge", "uid", Leaf),
    f("networking.v1.ServiceCIDR", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("networking.v1.ServiceCIDR", "status", "", "", Struct("networking.v1.ServiceCIDRStatus")),
    f("networking.v1.ServiceCIDRStatus", "conditions", "merge", "type", Leaf),
    f("policy.v1.PodDisruptionBudget", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("policy.v1.PodDisruptionBudget", "spec", "", "", Struct("policy.v1.PodDisruptionBudgetSpec")),
    f("policy.v1.PodDisruptionBudget", "status", "", "", Struct("policy.v1.PodDisruptionBudgetStatus")),
    f("policy.v1.PodDisruptionBudgetSpec", "selector", "replace", "", Leaf),
    f("policy.v1.PodDisruptionBudgetStatus", "conditions", "merge", "type", Leaf),
    f("resource.v1.DeviceTaintRule", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("resource.v1.DeviceTaintRule", "status", "", "", Struct("resource.v1.DeviceTaintRuleStatus")),
    f("resource.v1.DeviceTaintRuleStatus", "conditions", "merge", "type", Leaf),
    f("resource.v1.ResourceClaim", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("resource.v1.ResourceClaim", "status", "", "", Struct("resource.v1.ResourceClaimStatus")),
    f("resource.v1.ResourceClaimStatus", "reservedFor", "merge", "uid", Leaf),
    f("resource.v1.ResourceClaimTemplate", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("resource.v1.ResourceClaimTemplate", "spec", "", "", Struct("resource.v1.ResourceClaimTemplateSpec")),
    f("resource.v1.ResourceClaimTemplateSpec", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("storage.v1.CSINode", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("storage.v1.CSINode", "spec", "", "", Struct("storage.v1.CSINodeSpec")),
    f("storage.v1.CSINode", "status", "", "", Struct("storage.v1.CSINodeStatus")),
    f("storage.v1.CSINodeSpec", "drivers", "merge", "name", Leaf),
    f("storage.v1.CSINodeStatus", "storageHealth", "merge", "name", Leaf),
    f("storagemigration.v1.StorageVersionMigration", "metadata", "", "", Struct("meta.v1.ObjectMeta")),
    f("storagemigration.v1.StorageVersionMigration", "status", "", "", Struct("storagemigration.v1.StorageVersionMigrationStatus")),
    f("storagemigration.v1.StorageVersionMigrationStatus", "conditions", "merge", "type", Leaf),
];

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
    fn tables_are_sorted_and_every_type_they_name_has_fields() {
        assert!(KINDS.windows(2).all(|w| w[0].0 < w[1].0), "KINDS unsorted");
        assert!(
            FIELDS
                .windows(2)
                .all(|w| (w[0].ty, w[0].name) < (w[1].ty, w[1].name)),
            "FIELDS unsorted or duplicated"
        );
        let has_fields = |ty: &str| FIELDS.iter().any(|f| f.ty == ty);
        for (kind, ty) in KINDS {
            assert!(has_fields(ty), "{kind}: {ty}");
        }
        for field in FIELDS {
            if let Struct(ty) | Map(ty) = field.below {
                assert!(has_fields(ty), "{}.{} -> {ty}", field.ty, field.name);
            }
        }
        assert!(has_fields(ANY_KIND));
    }

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
        // NetworkPolicy ports carry no tags: replaced whole.
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
        // Every kind's metadata, named in the table or not.
        assert_eq!(
            list_strategy("ConfigMap", &["metadata", "finalizers"]),
            ListStrategy::MergePrimitives
        );
        assert_eq!(
            list_strategy(
                "Deployment",
                &["spec", "template", "metadata", "ownerReferences"]
            ),
            ListStrategy::MergeByKey("uid")
        );
        assert_eq!(
            list_strategy("ClusterRole", &["rules"]),
            ListStrategy::Atomic
        );
        // Conditions merge by type only where Kubernetes says so.
        assert_eq!(
            list_strategy("Deployment", &["status", "conditions"]),
            ListStrategy::MergeByKey("type")
        );
        assert_eq!(
            list_strategy("CustomResourceDefinition", &["status", "conditions"]),
            ListStrategy::Atomic
        );
    }

    #[test]
    fn map_values_and_other_strategies() {
        // A CRD schema's properties are a map of schemas: the key is a path element.
        let rules = [
            "spec",
            "versions",
            "schema",
            "openAPIV3Schema",
            "properties",
            "spec",
            "x-kubernetes-validations",
        ];
        assert_eq!(
            list_strategy("CustomResourceDefinition", &rules),
            ListStrategy::MergeByKey("rule")
        );
        let volumes = field_tags("StatefulSet", &["spec", "template", "spec", "volumes"]);
        assert_eq!(volumes.list_strategy(), ListStrategy::MergeByKey("name"));
        assert!(volumes.retains_keys());
        let strategy = field_tags("Deployment", &["spec", "strategy"]);
        assert!(strategy.retains_keys() && !strategy.replaces());
        assert!(field_tags("PodDisruptionBudget", &["spec", "selector"]).replaces());
        assert_eq!(
            list_strategy("Node", &["spec", "podCIDRs"]),
            ListStrategy::MergePrimitives
        );
        assert_eq!(field_tags("Nope", &["spec", "x"]), PatchTags::default());
    }

    #[test]
    fn custom_resources_and_unscheduled_groups_are_not_strategic() {
        assert!(is_strategic_group(""));
        assert!(is_strategic_group("apps"));
        assert!(!is_strategic_group("apiextensions.k8s.io"));
        assert!(!is_strategic_group("example.com"));
    }
}
