package main

import (
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type servedKind struct {
	apiVersion, kind string
	object           any
}

// The built-in kinds of crates/apiserver/src/registry.rs, and the other bodies typed clients
// send: DeleteOptions (registered in every group version, so "*" matches any apiVersion) and
// the scale subresource's Scale.
var servedKinds = []servedKind{
	{"v1", "Namespace", &corev1.Namespace{}},
	{"v1", "ConfigMap", &corev1.ConfigMap{}},
	{"v1", "Secret", &corev1.Secret{}},
	{"v1", "Service", &corev1.Service{}},
	{"v1", "ServiceAccount", &corev1.ServiceAccount{}},
	{"v1", "Pod", &corev1.Pod{}},
	{"v1", "PersistentVolumeClaim", &corev1.PersistentVolumeClaim{}},
	{"v1", "PersistentVolume", &corev1.PersistentVolume{}},
	{"v1", "Endpoints", &corev1.Endpoints{}},
	{"v1", "Event", &corev1.Event{}},
	{"v1", "LimitRange", &corev1.LimitRange{}},
	{"v1", "ResourceQuota", &corev1.ResourceQuota{}},
	{"apps/v1", "Deployment", &appsv1.Deployment{}},
	{"apps/v1", "StatefulSet", &appsv1.StatefulSet{}},
	{"apps/v1", "DaemonSet", &appsv1.DaemonSet{}},
	{"apps/v1", "ReplicaSet", &appsv1.ReplicaSet{}},
	{"apps/v1", "ControllerRevision", &appsv1.ControllerRevision{}},
	{"batch/v1", "Job", &batchv1.Job{}},
	{"batch/v1", "CronJob", &batchv1.CronJob{}},
	{"networking.k8s.io/v1", "Ingress", &networkingv1.Ingress{}},
	{"networking.k8s.io/v1", "IngressClass", &networkingv1.IngressClass{}},
	{"networking.k8s.io/v1", "NetworkPolicy", &networkingv1.NetworkPolicy{}},
	{"rbac.authorization.k8s.io/v1", "Role", &rbacv1.Role{}},
	{"rbac.authorization.k8s.io/v1", "RoleBinding", &rbacv1.RoleBinding{}},
	{"rbac.authorization.k8s.io/v1", "ClusterRole", &rbacv1.ClusterRole{}},
	{"rbac.authorization.k8s.io/v1", "ClusterRoleBinding", &rbacv1.ClusterRoleBinding{}},
	{"policy/v1", "PodDisruptionBudget", &policyv1.PodDisruptionBudget{}},
	{"autoscaling/v2", "HorizontalPodAutoscaler", &autoscalingv2.HorizontalPodAutoscaler{}},
	{"coordination.k8s.io/v1", "Lease", &coordinationv1.Lease{}},
	{"storage.k8s.io/v1", "StorageClass", &storagev1.StorageClass{}},
	{"events.k8s.io/v1", "Event", &eventsv1.Event{}},
	{"apiextensions.k8s.io/v1", "CustomResourceDefinition", &apiextensionsv1.CustomResourceDefinition{}},
	{"autoscaling/v1", "Scale", &autoscalingv1.Scale{}},
	{"*", "DeleteOptions", &metav1.DeleteOptions{}},
	// Added later, last so that the random golden objects of the kinds above stay as they were.
	{"v1", "Node", &corev1.Node{}},
	{"v1", "PodTemplate", &corev1.PodTemplate{}},
	{"v1", "ReplicationController", &corev1.ReplicationController{}},
	{"discovery.k8s.io/v1", "EndpointSlice", &discoveryv1.EndpointSlice{}},
}
