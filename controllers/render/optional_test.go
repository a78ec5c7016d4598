package render

import (
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"userve.dev/userve/api/v1alpha1"
)

func TestIngress(t *testing.T) {
	if Ingress(tenant()) != nil {
		t.Fatal("ingress without spec.ingress")
	}
	class := "nginx"
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.Ingress = &v1alpha1.IngressSpec{Host: "users.example.com", ClassName: &class, TLSSecretName: "users-tls"}
	})
	ing := Ingress(us)
	assertOwned(t, us, ing, "acme")
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
		t.Errorf("class = %v", ing.Spec.IngressClassName)
	}
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "users.example.com" {
		t.Fatalf("rules = %+v", ing.Spec.Rules)
	}
	path := ing.Spec.Rules[0].HTTP.Paths[0]
	if path.Path != "/" || *path.PathType != networkingv1.PathTypePrefix || path.Backend.Service.Name != "acme" || path.Backend.Service.Port.Name != "http" {
		t.Errorf("path = %+v", path)
	}
	if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "users-tls" || ing.Spec.TLS[0].Hosts[0] != "users.example.com" {
		t.Errorf("tls = %+v", ing.Spec.TLS)
	}
	plain := Ingress(tenant(func(u *v1alpha1.UserService) { u.Spec.Ingress = &v1alpha1.IngressSpec{Host: "h.example.com"} }))
	if len(plain.Spec.TLS) != 0 || plain.Spec.IngressClassName != nil {
		t.Errorf("TLS or class without being asked: %+v", plain.Spec)
	}
}

func TestHorizontalPodAutoscaler(t *testing.T) {
	if HorizontalPodAutoscaler(tenant()) != nil {
		t.Fatal("HPA without spec.autoscaling")
	}
	two, fifty := int32(2), int32(50)
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MinReplicas: &two, MaxReplicas: 6, TargetCPUUtilizationPercentage: &fifty}
	})
	hpa := HorizontalPodAutoscaler(us)
	assertOwned(t, us, hpa, "acme")
	ref := hpa.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != "acme" {
		t.Errorf("target = %+v", ref)
	}
	if *hpa.Spec.MinReplicas != 2 || hpa.Spec.MaxReplicas != 6 {
		t.Errorf("min/max = %d/%d", *hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	}
	m := hpa.Spec.Metrics
	if len(m) != 1 || m[0].Type != autoscalingv2.ResourceMetricSourceType || m[0].Resource.Name != corev1.ResourceCPU ||
		m[0].Resource.Target.Type != autoscalingv2.UtilizationMetricType || *m[0].Resource.Target.AverageUtilization != 50 {
		t.Errorf("metrics = %+v", m)
	}
	unset := HorizontalPodAutoscaler(tenant(func(u *v1alpha1.UserService) { u.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MaxReplicas: 3} }))
	if *unset.Spec.MinReplicas != 1 || *unset.Spec.Metrics[0].Resource.Target.AverageUtilization != 80 {
		t.Errorf("defaults: min %d, target %d", *unset.Spec.MinReplicas, *unset.Spec.Metrics[0].Resource.Target.AverageUtilization)
	}
	suspended := tenant(func(u *v1alpha1.UserService) {
		u.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MaxReplicas: 3}
		u.Spec.Suspend = true
	})
	if HorizontalPodAutoscaler(suspended) != nil {
		t.Error("a suspended tenant keeps its HPA, which would scale it back up")
	}
}

func TestPodDisruptionBudget(t *testing.T) {
	if PodDisruptionBudget(tenant()) != nil {
		t.Fatal("PDB without spec.podDisruptionBudget")
	}
	half := intstr.FromString("50%")
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.PodDisruptionBudget = &v1alpha1.PodDisruptionBudgetSpec{MinAvailable: &half}
	})
	pdb := PodDisruptionBudget(us)
	assertOwned(t, us, pdb, "acme")
	if pdb.Spec.MinAvailable.String() != "50%" {
		t.Errorf("minAvailable = %s", pdb.Spec.MinAvailable.String())
	}
	if !labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels).Matches(labels.Set(Labels(us))) {
		t.Error("PDB does not select the tenant's pods")
	}
	def := PodDisruptionBudget(tenant(func(u *v1alpha1.UserService) { u.Spec.PodDisruptionBudget = &v1alpha1.PodDisruptionBudgetSpec{} }))
	if def.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("default minAvailable = %s", def.Spec.MinAvailable.String())
	}
}
