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

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers"
)

func TestTenantsOutsideTheWatchedNamespacesAreLeftAlone(t *testing.T) {
	withDefaultMongo(t)
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "stranger", Namespace: outsideNamespace}}
	if err := k8s.Create(context.Background(), us); err != nil {
		t.Fatal(err)
	}
	// A watched tenant created after it is converged well within this time.
	watched := newTenant(t)
	waitCondition(t, watched, v1alpha1.ConditionProgressing, metav1.ConditionTrue, "")
	time.Sleep(time.Second)
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
	// Give the informers time to see the foreign objects, had they matched.
	time.Sleep(500 * time.Millisecond)
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
