package integration_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers"
	"userve.dev/userve/controllers/render"
)

func TestTenantsOutsideTheWatchedNamespacesAreLeftAlone(t *testing.T) {
	withDefaultMongo(t)
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "stranger", Namespace: outsideNamespace}}
	if err := k8s.Create(context.Background(), us); err != nil {
		t.Fatal(err)
	}
	// The operator's cache does not hold the namespace at all, so no event
	// of the tenant there reaches a reconciler.
	if err := mgr.GetCache().Get(context.Background(), client.ObjectKeyFromObject(us), &v1alpha1.UserService{}); err == nil {
		t.Error("the operator's cache reads a tenant outside --watch-namespaces")
	}
	// A watched tenant created after it converges, and the operator then
	// has nothing left to do.
	watched := newTenant(t)
	waitCondition(t, watched, v1alpha1.ConditionProgressing, metav1.ConditionTrue, "")
	waitIdle(t)
	got := tenant(t, us)
	if len(got.Finalizers) != 0 || got.Status.Phase != "" {
		t.Errorf("a tenant outside --watch-namespaces was reconciled: finalizers %v status %+v", got.Finalizers, got.Status)
	}
	if err := get(t, &appsv1.Deployment{}, outsideNamespace, "stranger"); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment outside the watched namespaces: err %v", err)
	}
}

// The manager's cache holds the operator's own objects only, without
// managedFields, so its memory grows with the tenants, not the cluster.
func TestCacheHoldsOnlyTheOperatorsObjects(t *testing.T) {
	ctx := context.Background()
	us := newTenant(t)
	deployment(t, us)
	foreign := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "foreign", Namespace: us.Namespace}, Data: map[string]string{"a": "b"}}
	if err := k8s.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	foreignSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "foreign", Namespace: us.Namespace}}
	if err := k8s.Create(ctx, foreignSecret); err != nil {
		t.Fatal(err)
	}

	cached := mgr.GetCache()
	var d appsv1.Deployment
	eventually(t, "the Deployment is cached", func() error {
		return cached.Get(ctx, types.NamespacedName{Namespace: us.Namespace, Name: "acme"}, &d)
	})
	if len(d.ManagedFields) != 0 {
		t.Errorf("cached Deployment keeps %d managedFields entries", len(d.ManagedFields))
	}
	var live appsv1.Deployment
	if err := get(t, &live, us.Namespace, "acme"); err != nil || len(live.ManagedFields) == 0 {
		t.Fatalf("test setup: the live Deployment has no managedFields (err %v)", err)
	}
	var creds corev1.Secret
	if err := cached.Get(ctx, types.NamespacedName{Namespace: us.Namespace, Name: "acme-credentials"}, &creds); err != nil {
		t.Errorf("credentials Secret not cached: %v", err)
	}
	// Touch an object of each kind that the cache holds after the foreign
	// ones were made: once the cache has the touch, its watch has passed
	// the foreign objects too, and would have delivered them had they
	// matched.
	touchedSeen(t, &corev1.ConfigMap{}, us.Namespace, render.ConfigMapName(us))
	touchedSeen(t, &corev1.Secret{}, us.Namespace, "acme-credentials")
	if err := cached.Get(ctx, types.NamespacedName{Namespace: us.Namespace, Name: "foreign"}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
		t.Errorf("a ConfigMap the operator does not own is cached (err %v)", err)
	}
	if err := cached.Get(ctx, types.NamespacedName{Namespace: us.Namespace, Name: "foreign"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("a Secret the operator does not read is cached (err %v)", err)
	}
}

func TestTenantsByPhaseMetric(t *testing.T) {
	ready := newTenant(t)
	markAvailable(t, ready)
	waitCondition(t, ready, v1alpha1.ConditionReady, metav1.ConditionTrue, "")
	suspended := newTenant(t, func(u *v1alpha1.UserService) { u.Spec.Suspend = true })
	markAvailable(t, suspended)
	waitCondition(t, suspended, v1alpha1.ConditionReady, metav1.ConditionTrue, "Suspended")

	eventually(t, "the metric matches the tenants' phases", func() error {
		var list v1alpha1.UserServiceList
		if err := k8s.List(context.Background(), &list); err != nil {
			return err
		}
		want := map[string]float64{}
		for _, us := range list.Items {
			if us.Namespace == outsideNamespace {
				continue
			}
			phase := us.Status.Phase
			if !us.DeletionTimestamp.IsZero() {
				phase = v1alpha1.PhaseDeleting
			} else if phase == "" {
				phase = v1alpha1.PhasePending
			}
			want[phase]++
		}
		families, err := ctrlmetrics.Registry.Gather()
		if err != nil {
			return err
		}
		for _, phase := range []string{"Pending", "Ready", "Degraded", "Suspended", "Deleting"} {
			if got := sumMetric(families, "userve_tenants", map[string]string{"phase": phase}); got != want[phase] {
				return fmt.Errorf("userve_tenants{phase=%q} = %v, want %v", phase, got, want[phase])
			}
		}
		if want[v1alpha1.PhaseReady] < 1 || want[v1alpha1.PhaseSuspended] < 1 {
			return fmt.Errorf("test setup: phases %v", want)
		}
		return nil
	})
}

// userve_tenant_ready is one series per tenant, 1 while Ready is True (a
// suspended tenant is Ready), 0 otherwise; the not-Ready alert reads it.
func TestTenantReadyMetric(t *testing.T) {
	ready := newTenant(t)
	markAvailable(t, ready)
	waitCondition(t, ready, v1alpha1.ConditionReady, metav1.ConditionTrue, "")
	// No Deployment status: the pods never become available.
	pending := newTenant(t)
	waitCondition(t, pending, v1alpha1.ConditionReady, metav1.ConditionFalse, "")

	eventually(t, "userve_tenant_ready follows each tenant's Ready condition", func() error {
		families, err := ctrlmetrics.Registry.Gather()
		if err != nil {
			return err
		}
		for us, want := range map[*v1alpha1.UserService]float64{ready: 1, pending: 0} {
			labels := map[string]string{"namespace": us.Namespace, "tenant": us.Name}
			if n := countSeries(families, "userve_tenant_ready", labels); n != 1 {
				return fmt.Errorf("%d series userve_tenant_ready%v, want 1", n, labels)
			}
			if got := sumMetric(families, "userve_tenant_ready", labels); got != want {
				return fmt.Errorf("userve_tenant_ready%v = %v, want %v", labels, got, want)
			}
		}
		return nil
	})
	deleteTenant(t, pending)
	eventually(t, "a deleted tenant's series goes", func() error {
		families, err := ctrlmetrics.Registry.Gather()
		if err != nil {
			return err
		}
		if n := countSeries(families, "userve_tenant_ready", map[string]string{"namespace": pending.Namespace, "tenant": pending.Name}); n != 0 {
			return fmt.Errorf("%d series left", n)
		}
		return nil
	})
}

// countSeries counts the series of a metric carrying all the given labels.
func countSeries(families []*dto.MetricFamily, name string, labels map[string]string) int {
	n := 0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			match := true
			for k, v := range labels {
				match = match && got[k] == v
			}
			if match {
				n++
			}
		}
	}
	return n
}

// A second manager, as `userve operator --leader-elect` would run it (with
// the operator's RBAC), serves its probes and metrics and takes the Lease.
// It watches a namespace without tenants so it leaves the tests' alone.
func TestManagerServesProbesMetricsAndElectsALeader(t *testing.T) {
	cfg, err := operatorIdentityConfig()
	if err != nil {
		t.Fatal(err)
	}
	probes, metrics := freeAddr(t), freeAddr(t)
	m, pool, err := controllers.NewManager(cfg, controllers.Options{
		ServerImage:                  serverImage,
		WatchNamespaces:              []string{operatorNamespace},
		LeaderElection:               true,
		LeaderElectionNamespace:      operatorNamespace,
		HealthProbeBindAddress:       probes,
		MetricsBindAddress:           metrics,
		SkipControllerNameValidation: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
		pool.Close(context.Background())
	})

	for _, path := range []string{"/healthz", "/readyz"} {
		eventually(t, path+" answers 200", func() error {
			_, err := httpGet("http://" + probes + path)
			return err
		})
	}
	eventually(t, "the Lease is held", func() error {
		var lease coordinationv1.Lease
		if err := get(t, &lease, operatorNamespace, "userve-operator.miniapp.userve.dev"); err != nil {
			return err
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return fmt.Errorf("no holder")
		}
		return nil
	})
	// /metrics is HTTPS, for callers the API server authenticates and
	// authorizes: none, a bad token and a token without the metrics-reader
	// ClusterRole are refused, a token bound to it reads the metrics.
	reader, err := env.ServiceAccountToken(context.Background(), operatorNamespace, "prometheus", "userve-metrics-reader")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := env.ServiceAccountToken(context.Background(), operatorNamespace, "stranger")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		who, token string
		want       int
	}{{"no token", "", 401}, {"a forged token", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", 401}, {"a token without metrics-reader", stranger, 403}, {"a metrics-reader token", reader, 200}} {
		eventually(t, "/metrics answers "+c.who+" with "+strconv.Itoa(c.want), func() error {
			code, body, err := scrape(metrics, c.token)
			if err != nil {
				return err
			}
			if code != c.want {
				return fmt.Errorf("%d %.200s", code, body)
			}
			if c.want != 200 && strings.Contains(body, "controller_runtime") {
				return fmt.Errorf("%s: metrics leaked: %.200s", c.who, body)
			}
			for _, want := range []string{"userve_tenants{phase=\"Ready\"}", "controller_runtime_reconcile_total"} {
				if c.want == 200 && !strings.Contains(body, want) {
					return fmt.Errorf("no %s in /metrics", want)
				}
			}
			return nil
		})
	}
	if _, err := httpGet("http://" + metrics + "/metrics"); err == nil {
		t.Error("/metrics answered plain HTTP")
	}
}

// scrape GETs https://addr/metrics with a bearer token (none when empty),
// trusting the manager's self-signed certificate (loopback only).
func scrape(addr, token string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed, loopback
	}}
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func httpGet(url string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s %s", url, resp.Status, body)
	}
	return string(body), err
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// touchedSeen annotates the live object and waits until the operator's
// cache holds that version of it.
func touchedSeen(t *testing.T, obj client.Object, ns, name string) {
	t.Helper()
	ctx := context.Background()
	patch := []byte(`{"metadata":{"annotations":{"test.userve.dev/touched":"` + strconv.FormatInt(time.Now().UnixNano(), 10) + `"}}}`)
	obj.SetNamespace(ns)
	obj.SetName(name)
	if err := k8s.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatal(err)
	}
	// etcd's resourceVersions are ordered integers; the cache may already
	// hold a later write of the operator's.
	want, _ := strconv.ParseInt(obj.GetResourceVersion(), 10, 64)
	cached := obj.DeepCopyObject().(client.Object)
	eventually(t, "the cache has the touched "+name, func() error {
		if err := mgr.GetCache().Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, cached); err != nil {
			return err
		}
		if got, _ := strconv.ParseInt(cached.GetResourceVersion(), 10, 64); got < want {
			return fmt.Errorf("resourceVersion %d, want %d or later", got, want)
		}
		return nil
	})
}
