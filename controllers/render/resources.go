package render

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The tenant server's default resources, for every key spec.resources leaves
// out (docs/install.md, "Resources"). Measured by make bench (docs/bench.md):
// an idle tenant holds about 13 MiB, 26-33 MiB at its peak under load, and a
// bcrypt login is 60 ms of one core.
//   - requests.cpu 50m: enough to schedule many idle tenants per node, and
//     what an HPA's utilization is measured against (without a CPU request
//     it computes nothing);
//   - requests.memory 64Mi: twice the peak under load;
//   - limits.memory 256Mi: a leak or a runaway request is killed before it
//     hurts the node's other tenants.
//
// No CPU limit by default: limits throttle a Go server's latency, and the
// server runs one P (GOMAXPROCS=1) unless a CPU limit says more.
const (
	DefaultCPURequest    = "50m"
	DefaultMemoryRequest = "64Mi"
	DefaultMemoryLimit   = "256Mi"
)

// ServerResources is spec.resources with the defaults filled in for each key
// it leaves out. A default never contradicts what is given: a default request
// is at most the given limit, and the default memory limit at least the given
// request (the API server rejects a pod whose request exceeds its limit).
func ServerResources(spec corev1.ResourceRequirements) corev1.ResourceRequirements {
	return withDefaults(spec, DefaultCPURequest, DefaultMemoryRequest, DefaultMemoryLimit)
}

// withDefaults fills in the keys spec leaves out (see ServerResources).
func withDefaults(spec corev1.ResourceRequirements, cpuRequest, memoryRequest, memoryLimit string) corev1.ResourceRequirements {
	out := *spec.DeepCopy()
	if out.Requests == nil {
		out.Requests = corev1.ResourceList{}
	}
	if out.Limits == nil {
		out.Limits = corev1.ResourceList{}
	}
	defaultRequest := func(name corev1.ResourceName, value string) {
		if _, ok := out.Requests[name]; ok {
			return
		}
		q := resource.MustParse(value)
		if limit, ok := out.Limits[name]; ok && limit.Cmp(q) < 0 {
			q = limit.DeepCopy()
		}
		out.Requests[name] = q
	}
	defaultRequest(corev1.ResourceCPU, cpuRequest)
	defaultRequest(corev1.ResourceMemory, memoryRequest)
	if _, ok := out.Limits[corev1.ResourceMemory]; !ok {
		q := resource.MustParse(memoryLimit)
		if req := out.Requests[corev1.ResourceMemory]; req.Cmp(q) > 0 {
			q = req.DeepCopy()
		}
		out.Limits[corev1.ResourceMemory] = q
	}
	return out
}
