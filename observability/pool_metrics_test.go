package observability_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/pool"
	"userve.dev/userve/test/mongofixture"
)

// poolMetrics runs a pool process on envtest with one tenant on FerretDB,
// sends it a request and one for an unknown host, and scrapes its
// /metrics.
func poolMetrics(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	const ns = "pool-observed"
	if err := kube.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	us := &v1alpha1.UserService{TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "UserService"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "acme"}}
	v1alpha1.SetDefaults(us)
	manifest, err := json.Marshal(us)
	if err != nil {
		t.Fatal(err)
	}
	if err := kube.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: v1alpha1.PoolTenantSecretName("shared", "team-a", "acme"),
			Labels: map[string]string{v1alpha1.PoolLabel: "shared"}},
		Data: map[string][]byte{
			v1alpha1.PoolTenantManifestKey: manifest,
			v1alpha1.EnvMongoURI:           []byte(mongofixture.URI(t)),
			v1alpha1.EnvMongoDatabase:      []byte(mongofixture.NewDatabase(t).Name()),
			v1alpha1.EnvAdminTokens:        []byte(adminToken),
			v1alpha1.EnvJWTKey:             []byte(jwtKey),
			v1alpha1.PoolTenantHostsKey:    []byte("acme.team-a"),
		}}); err != nil {
		t.Fatal(err)
	}
	p, err := pool.New(kube.Config, pool.Options{Pool: "shared", Namespace: ns, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	p.Start(ctx)
	t.Cleanup(p.Close)
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	metrics := httptest.NewServer(p.Metrics())
	t.Cleanup(metrics.Close)

	call := func(host, path string, want int) bool {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+adminToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode == want
	}
	waitFor(t, "the pool to route the tenant", func() bool { return call("acme.team-a", "/userve/v1/user-group/", http.StatusOK) })
	if !call("nobody.team-a", "/userve/v1/user-group/", http.StatusNotFound) {
		t.Fatal("an unknown host was not answered 404")
	}
	return scrape(t, metrics.URL+"/metrics")
}

// waitFor polls cond until it holds, failing after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
