package pool

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"userve.dev/userve/api/v1alpha1"
)

// Every form of Host a client may send reaches the tenant it names: the
// Service's DNS name short, with the namespace, .svc and
// .svc.cluster.local, with or without port, in any case, with a trailing
// dot, and the Ingress host. The admin token of the tenant is accepted
// only by its own server, so a 200 proves which tenant answered.
func TestEveryHostFormRoutesToItsTenant(t *testing.T) {
	e := newPoolEnv(t, Options{}, testHooks{})
	acme := e.add("team-a", "acme")
	other := e.add("team-b", "globex")
	for _, host := range []string{
		"acme", "acme.team-a", "acme.team-a.svc", "acme.team-a.svc.cluster.local",
		"acme:8080", "acme.team-a:8080", "acme.team-a.svc:8080", "acme.team-a.svc.cluster.local:8080",
		"ACME.Team-A.SVC", "acme.team-a.svc.cluster.local.", "acme.team-a.example.com", "acme.team-a.example.com:443",
	} {
		e.must(http.StatusOK, host, "GET", "/userve/v1/user-group/", nil, acme.admin())
		// The other tenant's token is not this one's.
		e.must(http.StatusUnauthorized, host, "GET", "/userve/v1/user-group/", nil, other.admin())
	}
	e.must(http.StatusOK, "globex.team-b.svc.cluster.local", "GET", "/userve/v1/user-group/", nil, other.admin())
}

// A Host that names no tenant gets 404 in the error shape of the dialect
// its path belongs to, never a tenant's answer; the pool's own /healthz
// and /readyz answer there (the kubelet probes by the pod's IP).
func TestUnknownHostIs404InTheDialectsShape(t *testing.T) {
	e := newPoolEnv(t, Options{}, testHooks{})
	acme := e.add("team-a", "acme")
	for _, host := range []string{"nobody.team-a", "acme.team-b", "10.0.0.7:8080", "[fd00::1]:8080", "", "acme.team-a.svc.cluster.evil"} {
		for _, c := range []struct {
			path  string
			shape string // the key that carries the message
		}{
			{"/api/v2/users", "message"},
			{"/userve/v1/user-group/", "error_msg"},
			{"/oserve/v1/user-group/", "error_msg"},
			{"/hserve/v2.5/user/info/", "error_msg"},
			{"/", "error_msg"},
		} {
			r := e.must(http.StatusNotFound, host, "GET", c.path, nil, acme.admin())
			m := r.obj(t)
			msg, _ := m[c.shape].(string)
			if !strings.Contains(msg, "no user service answers to host") || len(m) != map[string]int{"message": 1, "error_msg": 2}[c.shape] {
				t.Errorf("Host %q %s: %s, want the dialect's error shape naming the host", host, c.path, r.body)
			}
			if c.shape == "error_msg" && m["status"] != "error" {
				t.Errorf("Host %q %s: %s, want status error", host, c.path, r.body)
			}
		}
	}
	if n := testutil.ToFloat64(e.pool.metrics.rejections.WithLabelValues(reasonUnknownHost)); n != 30 {
		t.Errorf("rejections{unknown_host} = %v, want 30", n)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		e.must(http.StatusOK, "10.0.0.7:8080", "GET", path, nil)
	}
}

// Two tenants named alike in two namespaces both claim the short Host
// "acme": it routes to neither (404, counted as ambiguous), while every
// longer form routes to each; when one leaves, the short name is the
// other's again.
func TestAHostTwoTenantsClaimRoutesToNeither(t *testing.T) {
	e := newPoolEnv(t, Options{}, testHooks{})
	a := e.add("team-a", "acme")
	b := e.add("team-b", "acme")
	for _, c := range []*tenantCreds{a, b} {
		e.must(http.StatusNotFound, "acme", "GET", "/userve/v1/user-group/", nil, c.admin())
		e.must(http.StatusOK, c.host(), "GET", "/userve/v1/user-group/", nil, c.admin())
		e.must(http.StatusOK, c.host()+".svc.cluster.local", "GET", "/userve/v1/user-group/", nil, c.admin())
	}
	if n := testutil.ToFloat64(e.pool.metrics.ambiguousHosts); n != 1 {
		t.Errorf("ambiguous hosts = %v, want 1 (acme)", n)
	}
	if n := testutil.ToFloat64(e.pool.metrics.rejections.WithLabelValues(reasonAmbiguousHost)); n != 2 {
		t.Errorf("rejections{ambiguous_host} = %v, want 2", n)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: v1alpha1.PoolTenantSecretName(poolName, b.ns, b.name)}}
	if err := kube.Client.Delete(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the short host to route to the remaining tenant", func() bool {
		tn, _ := e.pool.registry.lookup("acme")
		return tn != nil
	})
	e.must(http.StatusOK, "acme", "GET", "/userve/v1/user-group/", nil, a.admin())
	e.must(http.StatusNotFound, b.host(), "GET", "/userve/v1/user-group/", nil, b.admin())
	if n := testutil.ToFloat64(e.pool.metrics.ambiguousHosts); n != 0 {
		t.Errorf("ambiguous hosts = %v, want 0", n)
	}
}
