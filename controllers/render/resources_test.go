package render

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"userve.dev/userve/api/v1alpha1"
)

func list(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

// Each key spec.resources leaves out gets its default; given keys are kept;
// a default never contradicts a given value.
func TestServerResourcesFillsTheDefaults(t *testing.T) {
	cases := []struct {
		name             string
		spec             corev1.ResourceRequirements
		requests, limits corev1.ResourceList
	}{
		{"nothing given", corev1.ResourceRequirements{},
			list("cpu", "50m", "memory", "64Mi"), list("memory", "256Mi")},
		{"everything given", corev1.ResourceRequirements{Requests: list("cpu", "1", "memory", "1Gi"), Limits: list("cpu", "2", "memory", "2Gi")},
			list("cpu", "1", "memory", "1Gi"), list("cpu", "2", "memory", "2Gi")},
		{"only a memory limit", corev1.ResourceRequirements{Limits: list("memory", "512Mi")},
			list("cpu", "50m", "memory", "64Mi"), list("memory", "512Mi")},
		{"a memory limit below the default request", corev1.ResourceRequirements{Limits: list("memory", "32Mi")},
			list("cpu", "50m", "memory", "32Mi"), list("memory", "32Mi")},
		{"a CPU limit below the default request", corev1.ResourceRequirements{Limits: list("cpu", "20m")},
			list("cpu", "20m", "memory", "64Mi"), list("cpu", "20m", "memory", "256Mi")},
		{"a memory request above the default limit", corev1.ResourceRequirements{Requests: list("memory", "1Gi")},
			list("cpu", "50m", "memory", "1Gi"), list("memory", "1Gi")},
		{"a CPU request, no limit", corev1.ResourceRequirements{Requests: list("cpu", "250m")},
			list("cpu", "250m", "memory", "64Mi"), list("memory", "256Mi")},
		{"other resources kept", corev1.ResourceRequirements{Limits: list("ephemeral-storage", "1Gi")},
			list("cpu", "50m", "memory", "64Mi"), list("memory", "256Mi", "ephemeral-storage", "1Gi")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := c.spec.DeepCopy()
			got := ServerResources(c.spec)
			if !equalLists(got.Requests, c.requests) || !equalLists(got.Limits, c.limits) {
				t.Errorf("requests %v limits %v; want %v %v", got.Requests, got.Limits, c.requests, c.limits)
			}
			for name, req := range got.Requests {
				if limit, ok := got.Limits[name]; ok && req.Cmp(limit) > 0 {
					t.Errorf("%s request %s above its limit %s", name, req.String(), limit.String())
				}
			}
			if !equalLists(c.spec.Requests, before.Requests) || !equalLists(c.spec.Limits, before.Limits) {
				t.Errorf("the spec was changed: %+v", c.spec)
			}
		})
	}
}

func equalLists(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || v.Cmp(w) != 0 {
			return false
		}
	}
	return true
}

// The tenant container gets them; an HPA's utilization then has a CPU
// request to divide by, and GOMAXPROCS still follows a CPU limit only.
func TestDeploymentHasDefaultResources(t *testing.T) {
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MaxReplicas: 4}
	})
	c := Deployment(us, params(us)).Spec.Template.Spec.Containers[0]
	if !equalLists(c.Resources.Requests, list("cpu", DefaultCPURequest, "memory", DefaultMemoryRequest)) ||
		!equalLists(c.Resources.Limits, list("memory", DefaultMemoryLimit)) {
		t.Errorf("resources = %+v", c.Resources)
	}
	for _, e := range c.Env {
		if e.Name == v1alpha1.EnvGOMAXPROCS {
			t.Errorf("%s set without a CPU limit", v1alpha1.EnvGOMAXPROCS)
		}
	}
}
