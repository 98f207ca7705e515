package main

import (
	"bytes"
	"fmt"
	"reflect"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/randfill"
)

type sample struct {
	name   string
	object runtime.Object
}

func encodeProtobuf(obj runtime.Object) ([]byte, error) {
	var buf bytes.Buffer
	s := protobuf.NewSerializer(runtime.NewScheme(), runtime.NewScheme())
	if err := s.Encode(obj, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func typed(obj runtime.Object, apiVersion, kind string) runtime.Object {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		panic(err)
	}
	obj.GetObjectKind().SetGroupVersionKind(gv.WithKind(kind))
	return obj
}

func ptr[T any](v T) *T { return &v }

// samples: hand-written objects covering the special types (what kubectl's generators send
// and more), then seeded random objects of every kind.
func samples() []sample {
	out := []sample{
		{"deployment", typed(&appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"note": "<&>"}},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr(int32(3)),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}, MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}}},
				Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: ptr(intstr.FromString("25%")), MaxUnavailable: ptr(intstr.FromInt32(1))}},
				Template: corev1.PodTemplateSpec{
					// The template carries what the selector asks for (kube-apiserver refuses it otherwise).
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "tier": "a"}},
					Spec: corev1.PodSpec{
						Priority:                      ptr(int32(-5)),
						TerminationGracePeriodSeconds: ptr(int64(0)),
						Containers: []corev1.Container{{
							Name: "nginx", Image: "nginx:1.27", Args: []string{"-g", "daemon off;"},
							Ports:          []corev1.ContainerPort{{ContainerPort: 80, Protocol: corev1.ProtocolTCP}},
							Env:            []corev1.EnvVar{{Name: "MODE", Value: "prod"}, {Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
							Resources:      corev1.ResourceRequirements{Limits: corev1.ResourceList{"cpu": resource.MustParse("500m"), "memory": resource.MustParse("128Mi")}, Requests: corev1.ResourceList{"cpu": resource.MustParse("0.1")}},
							ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}, PeriodSeconds: 10},
						}},
						Volumes: []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "conf"}, DefaultMode: ptr(int32(0o644))}}}},
					},
				},
			},
		}, "apps/v1", "Deployment")},
		{"service", typed(&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeNodePort,
				Selector: map[string]string{"app": "web"},
				Ports: []corev1.ServicePort{
					{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), NodePort: 30080, Protocol: corev1.ProtocolTCP},
					{Name: "metrics", Port: 9090, TargetPort: intstr.FromString("metrics")},
				},
				IPFamilies:            []corev1.IPFamily{corev1.IPv4Protocol},
				SessionAffinity:       corev1.ServiceAffinityClientIP,
				SessionAffinityConfig: &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr(int32(10800))}},
			},
		}, "v1", "Service")},
		{"secret", typed(&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "creds"},
			Data:       map[string][]byte{"password": []byte("hunter2"), "binary": {0, 1, 2, 255}, "empty": {}},
			StringData: map[string]string{"user": "admin"},
			Type:       corev1.SecretTypeOpaque,
			Immutable:  ptr(false),
		}, "v1", "Secret")},
		{"configmap", typed(&corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "settings-", Finalizers: []string{"example.com/keep"}},
			Data:       map[string]string{"a": "1", "unicode": "grüße ✓"},
			BinaryData: map[string][]byte{"blob": {0xde, 0xad}},
		}, "v1", "ConfigMap")},
		{"cronjob", typed(&batchv1.CronJob{
			ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
			Spec: batchv1.CronJobSpec{
				Schedule: "0 3 * * *", TimeZone: ptr("Etc/UTC"), Suspend: ptr(false),
				JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
					BackoffLimit: ptr(int32(0)),
					Template:     corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyOnFailure, Containers: []corev1.Container{{Name: "job", Image: "busybox", Command: []string{"date"}}}}},
				}},
			},
		}, "batch/v1", "CronJob")},
		{"pod-metadata", typed(&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name: "p", Namespace: "default", UID: "3b1c6a2e-0000-4000-8000-000000000001", ResourceVersion: "42", Generation: 7,
				CreationTimestamp:          metav1.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
				DeletionTimestamp:          ptr(metav1.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)),
				DeletionGracePeriodSeconds: ptr(int64(30)),
				OwnerReferences:            []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1", UID: "u", Controller: ptr(true), BlockOwnerDeletion: ptr(true)}},
				ManagedFields:              []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: ptr(metav1.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)), FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{}}}`)}}},
			},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}, ActiveDeadlineSeconds: ptr(int64(-1))},
		}, "v1", "Pod")},
		{"pdb", typed(&policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr(intstr.FromString("50%")), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
		}, "policy/v1", "PodDisruptionBudget")},
		{"controllerrevision", typed(&appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{Name: "web-1"},
			Data:       runtime.RawExtension{Raw: []byte(`{"spec":{"template":{"metadata":{"labels":{"app":"web"}}}}}`)},
			Revision:   3,
		}, "apps/v1", "ControllerRevision")},
		{"lease", typed(&coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: "leader"},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr("me"), LeaseDurationSeconds: ptr(int32(15)),
				AcquireTime: ptr(metav1.NewMicroTime(time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC))),
				RenewTime:   ptr(metav1.NewMicroTime(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)))},
		}, "coordination.k8s.io/v1", "Lease")},
		{"event", typed(&eventsv1.Event{
			ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "default"},
			EventTime:  metav1.NewMicroTime(time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)),
			Reason:     "Started", Action: "Start", Type: "Normal", ReportingController: "plumb", ReportingInstance: "x",
			Series: &eventsv1.EventSeries{Count: 2, LastObservedTime: metav1.NewMicroTime(time.Date(2024, 1, 2, 3, 4, 6, 0, time.UTC))},
		}, "events.k8s.io/v1", "Event")},
		{"crd", typed(&apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.com"},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: "example.com", Scope: apiextensionsv1.NamespaceScoped,
				Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ShortNames: []string{"wd"}},
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
					Name: "v1", Served: true, Storage: true,
					Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
					Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
						Type: "object",
						Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"spec": {Type: "object", XPreserveUnknownFields: ptr(true),
								Properties: map[string]apiextensionsv1.JSONSchemaProps{
									"size":  {Type: "integer", Maximum: ptr(5.0), Minimum: ptr(-1.5), Default: &apiextensionsv1.JSON{Raw: []byte(`3`)}},
									"color": {Type: "string", Enum: []apiextensionsv1.JSON{{Raw: []byte(`"red"`)}, {Raw: []byte(`"blue"`)}}},
									"tags":  {Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"}}},
									"extra": {Type: "object", AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{Allows: false}},
									"map":   {Type: "object", AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{Allows: true, Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"}}},
								},
								Dependencies: apiextensionsv1.JSONSchemaDependencies{"size": {Property: []string{"color"}}},
							},
						},
					}},
					AdditionalPrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{{Name: "Size", Type: "integer", JSONPath: ".spec.size"}},
				}},
			},
		}, "apiextensions.k8s.io/v1", "CustomResourceDefinition")},
		{"deleteoptions", typed(&metav1.DeleteOptions{
			GracePeriodSeconds: ptr(int64(0)),
			Preconditions:      &metav1.Preconditions{UID: ptr(types.UID("abc")), ResourceVersion: ptr("7")},
			PropagationPolicy:  ptr(metav1.DeletePropagationForeground),
			DryRun:             []string{"All"},
		}, "meta.k8s.io/v1", "DeleteOptions")},
	}
	return append(out, randomSamples()...)
}

// randomSamples: per kind, seeded random objects (randfill), with the special types given
// values their JSON form can carry.
func randomSamples() []sample {
	var out []sample
	for i, k := range servedKinds {
		for n := 0; n < 2; n++ {
			f := randfill.NewWithSeed(int64(1000*i+n)).NilChance(0.25).NumElements(0, 2).MaxDepth(12).Funcs(
				func(q *resource.Quantity, c randfill.Continue) {
					*q = *resource.NewMilliQuantity(c.Int63n(1_000_000), resource.DecimalSI)
				},
				func(x *intstr.IntOrString, c randfill.Continue) {
					if c.Bool() {
						*x = intstr.FromInt32(c.Int31() - c.Int31())
					} else {
						*x = intstr.FromString(c.String(8))
					}
				},
				func(t *metav1.Time, c randfill.Continue) {
					if c.Intn(4) == 0 {
						*t = metav1.Time{}
						return
					}
					*t = metav1.Unix(c.Int63n(4_000_000_000), 0)
				},
				func(t *metav1.MicroTime, c randfill.Continue) {
					if c.Intn(4) == 0 {
						*t = metav1.MicroTime{}
						return
					}
					*t = metav1.NewMicroTime(time.Unix(c.Int63n(4_000_000_000), c.Int63n(1_000_000)*1000))
				},
				func(r *runtime.RawExtension, c randfill.Continue) {
					r.Raw = []byte(fmt.Sprintf(`{"n":%d,"s":[true,null]}`, c.Intn(100)))
				},
				func(r *metav1.FieldsV1, c randfill.Continue) {
					r.Raw = []byte(fmt.Sprintf(`{"f:spec":{"f:n%d":{}}}`, c.Intn(100)))
				},
				func(j *apiextensionsv1.JSON, c randfill.Continue) {
					j.Raw = []byte(fmt.Sprintf(`[%d,"x",{"y":1.5}]`, c.Intn(100)))
				},
				func(s *apiextensionsv1.JSONSchemaPropsOrBool, c randfill.Continue) {
					s.Allows = c.Bool()
					if c.Bool() {
						s.Allows = true
						s.Schema = &apiextensionsv1.JSONSchemaProps{Type: c.String(5)}
					}
				},
				func(s *apiextensionsv1.JSONSchemaPropsOrArray, c randfill.Continue) {
					if c.Bool() {
						s.Schema = &apiextensionsv1.JSONSchemaProps{Type: c.String(5)}
					} else {
						s.JSONSchemas = []apiextensionsv1.JSONSchemaProps{{Type: "a"}, {Format: c.String(5)}}
					}
				},
				func(s *apiextensionsv1.JSONSchemaPropsOrStringArray, c randfill.Continue) {
					if c.Bool() {
						s.Schema = &apiextensionsv1.JSONSchemaProps{Type: c.String(5)}
					} else {
						s.Property = []string{c.String(5)}
					}
				},
				// Bounded recursion: JSONSchemaProps nests itself through maps.
				func(s *apiextensionsv1.JSONSchemaProps, c randfill.Continue) {
					c.FillNoCustom(s)
					s.Properties = map[string]apiextensionsv1.JSONSchemaProps{"p": {Type: c.String(4), Maximum: ptr(c.Float64() * 1e6)}}
					s.PatternProperties = nil
					s.Definitions = nil
					s.AllOf, s.OneOf, s.AnyOf, s.Not = nil, nil, nil, nil
					s.Items = nil
					s.AdditionalItems = nil
					s.AdditionalProperties = &apiextensionsv1.JSONSchemaPropsOrBool{Allows: c.Bool()}
					s.Dependencies = apiextensionsv1.JSONSchemaDependencies{"d": {Property: []string{"x"}}}
				},
			)
			obj := reflect.New(reflect.TypeOf(k.object).Elem()).Interface().(runtime.Object)
			f.Fill(obj)
			apiVersion := k.apiVersion
			if apiVersion == "*" {
				apiVersion = "meta.k8s.io/v1"
			}
			typed(obj, apiVersion, k.kind)
			out = append(out, sample{fmt.Sprintf("random-%s-%s-%d", sanitize(apiVersion), k.kind, n), obj})
		}
	}
	return out
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '/' || c == '.' {
			b[i] = '_'
		}
	}
	return string(b)
}
