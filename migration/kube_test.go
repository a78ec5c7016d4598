package migration

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/test/kubefixture"
)

// --kube reads the tenant's URL and first admin token from a real API
// server: the operator's credentials Secret, or spec.adminTokensSecretRef.
func TestFromCluster(t *testing.T) {
	env, err := kubefixture.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	c := env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenants"}}); err != nil {
		t.Fatal(err)
	}
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: "tenants"}}
	if err := c.Create(ctx, us); err != nil {
		t.Fatal(err)
	}
	if _, err := FromCluster(ctx, env.Config, "tenants/acme"); err == nil || !strings.Contains(err.Error(), "acme-credentials") {
		t.Fatalf("without the Secret: %v", err)
	}
	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "acme-credentials", Namespace: "tenants"},
		Data: map[string][]byte{"admin-tokens": []byte(" first-token ,second-token")}}
	if err := c.Create(ctx, creds); err != nil {
		t.Fatal(err)
	}
	got, err := FromCluster(ctx, env.Config, "tenants/acme")
	if err != nil || got.Token != "first-token" || got.URL != "http://acme.tenants.svc:8080" {
		t.Fatalf("%+v, %v", got, err)
	}
	us.Status.Endpoint = "https://users.example.com"
	if err := c.Status().Update(ctx, us); err != nil {
		t.Fatal(err)
	}
	own := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "mine", Namespace: "tenants"},
		Data: map[string][]byte{"tokens": []byte("\nops : own-token\n")}}
	if err := c.Create(ctx, own); err != nil {
		t.Fatal(err)
	}
	us.Spec.AdminTokensSecretRef = &v1alpha1.SecretKeyRef{Name: "mine", Key: "tokens"}
	if err := c.Update(ctx, us); err != nil {
		t.Fatal(err)
	}
	got, err = FromCluster(ctx, env.Config, "tenants/acme")
	if err != nil || got.Token != "own-token" || got.URL != "https://users.example.com" {
		t.Fatalf("%+v, %v", got, err)
	}
	for _, ref := range []string{"acme", "tenants/", "/acme", "a/b/c"} {
		if _, err := FromCluster(ctx, env.Config, ref); err == nil || !strings.Contains(err.Error(), "namespace/name") {
			t.Fatalf("%q: %v", ref, err)
		}
	}
	if _, err := FromCluster(ctx, env.Config, "tenants/nope"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing tenant: %v", err)
	}
}
