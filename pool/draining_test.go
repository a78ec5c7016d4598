package pool

import (
	"context"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
)

// A tenant moving out (its Secret marked draining) is still answered, each
// answer closing its connection, so that a client kube-proxy pinned to this
// pod reconnects to the tenant's own pods; its neighbours keep their
// connections, and so does the tenant once the mark goes (a move back in).
// On the real node a pinned connection got the pool's 404 once the Secret
// went.
func TestDrainingTenantClosesItsConnections(t *testing.T) {
	e := newPoolEnv(t, Options{}, testHooks{})
	acme := e.add("team-a", "acme")
	other := e.add("team-b", "globex")
	closes := func(c *tenantCreds) bool {
		r := e.must(http.StatusOK, c.host(), "GET", "/userve/v1/user-group/", nil, c.admin())
		return r.close
	}
	if closes(acme) || closes(other) {
		t.Fatal("a tenant that is not draining closes its connections")
	}

	mark := func(draining bool) {
		t.Helper()
		var s corev1.Secret
		key := client.ObjectKey{Namespace: e.ns, Name: v1alpha1.PoolTenantSecretName(poolName, acme.ns, acme.name)}
		if err := kube.Client.Get(context.Background(), key, &s); err != nil {
			t.Fatal(err)
		}
		s.Annotations = map[string]string{}
		if draining {
			s.Annotations[v1alpha1.PoolTenantDrainingAnnotation] = "true"
		}
		if err := kube.Client.Update(context.Background(), &s); err != nil {
			t.Fatal(err)
		}
		e.waitFor("the pool to apply the mark", func() bool {
			tn, _ := e.pool.registry.lookup(acme.host())
			return tn != nil && tn.draining.Load() == draining
		})
	}
	mark(true)
	if !closes(acme) {
		t.Error("a draining tenant's answer keeps its connection open")
	}
	if closes(other) {
		t.Error("a neighbour of a draining tenant closes its connections")
	}
	mark(false)
	if closes(acme) {
		t.Error("a tenant no longer draining still closes its connections")
	}
}
