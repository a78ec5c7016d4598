package controllers

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"userve.dev/userve/api/v1alpha1"
)

// Phases reported by the tenants metric, always all of them so that a
// phase falling to zero shows as zero.
var phases = []string{
	v1alpha1.PhasePending, v1alpha1.PhaseReady, v1alpha1.PhaseDegraded,
	v1alpha1.PhaseSuspended, v1alpha1.PhaseDeleting,
}

var tenantsDesc = prometheus.NewDesc(
	"userve_tenants",
	"UserServices by status.phase (no phase yet counts as Pending).",
	[]string{"phase"}, nil,
)

// tenantReadyDesc is one series per tenant (bounded by the UserServices the
// operator owns): 1 while its Ready condition is True, else 0. The alert
// "tenant not Ready for 10 minutes" reads it. Tenants being deleted have no
// series. The labels are the tenant's namespace and name; the chart's
// ServiceMonitor keeps them (honorLabels) instead of the operator pod's.
var tenantReadyDesc = prometheus.NewDesc(
	"userve_tenant_ready",
	"1 while the UserService's Ready condition is True, else 0; by namespace and tenant (its name).",
	[]string{"namespace", "tenant"}, nil,
)

// tenantCollector counts tenants from the manager's cache at scrape time,
// so the metric is right on every replica, leader or not, and never drifts
// from the cluster.
type tenantCollector struct {
	reader atomic.Pointer[client.Reader]
}

var (
	tenants         = &tenantCollector{}
	registerTenants sync.Once
)

// registerTenantMetrics points the tenants metric at a manager's cache. The
// first manager of a process keeps it (tests run more than one).
func registerTenantMetrics(r client.Reader) {
	tenants.reader.CompareAndSwap(nil, &r)
	registerTenants.Do(func() { ctrlmetrics.Registry.MustRegister(tenants) })
}

func (c *tenantCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- tenantsDesc
	ch <- tenantReadyDesc
}

func (c *tenantCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.reader.Load()
	if r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var list v1alpha1.UserServiceList
	// Read only: no copy of every tenant at every scrape.
	if err := (*r).List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return // cache not started yet: no sample rather than a wrong one
	}
	counts := map[string]int{}
	for _, us := range list.Items {
		phase := us.Status.Phase
		if !us.DeletionTimestamp.IsZero() {
			phase = v1alpha1.PhaseDeleting
		} else if phase == "" {
			phase = v1alpha1.PhasePending
		}
		counts[phase]++
		if phase != v1alpha1.PhaseDeleting {
			ready := 0.0
			if meta.IsStatusConditionTrue(us.Status.Conditions, v1alpha1.ConditionReady) {
				ready = 1
			}
			ch <- prometheus.MustNewConstMetric(tenantReadyDesc, prometheus.GaugeValue, ready, us.Namespace, us.Name)
		}
	}
	for _, p := range phases {
		ch <- prometheus.MustNewConstMetric(tenantsDesc, prometheus.GaugeValue, float64(counts[p]), p)
	}
}
