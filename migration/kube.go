package migration

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
)

// Tenant is where a tenant answers and one of its admin tokens.
type Tenant struct {
	URL   string
	Token string
}

// FromCluster finds the tenant "namespace/name": its URL from
// status.endpoint (the ingress or the in-cluster Service; see
// render.Endpoint) and its first admin token from the Secret the tenant
// reads them from (spec.adminTokensSecretRef, or the operator's
// "<name>-credentials" Secret, key admin-tokens). Reading the Secret
// needs RBAC to get Secrets in that namespace, which is the point: only
// who may read the tenant's credentials can import into it.
func FromCluster(ctx context.Context, cfg *rest.Config, ref string) (Tenant, error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return Tenant{}, fmt.Errorf("--kube %q must be namespace/name", ref)
	}
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return Tenant{}, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return Tenant{}, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return Tenant{}, err
	}
	var us v1alpha1.UserService
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &us); err != nil {
		return Tenant{}, fmt.Errorf("UserService %s: %w", ref, err)
	}
	t := Tenant{URL: us.Status.Endpoint}
	if t.URL == "" {
		t.URL = render.Endpoint(&us)
	}
	secretName, key := render.CredentialsSecretName(&us), render.KeyAdminTokens
	if us.Status.CredentialsSecret != "" {
		secretName = us.Status.CredentialsSecret
	}
	if r, ok := v1alpha1.TenantSecretRefFor(&us.Spec, v1alpha1.EnvAdminTokens); ok {
		secretName, key = r.Ref.Name, r.Ref.Key
	}
	var sec corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: secretName}, &sec); err != nil {
		return Tenant{}, fmt.Errorf("admin token Secret %s/%s: %w", ns, secretName, err)
	}
	t.Token = FirstToken(string(sec.Data[key]))
	if t.Token == "" {
		return Tenant{}, fmt.Errorf("Secret %s/%s has no admin token under key %s", ns, secretName, key)
	}
	return t, nil
}

// FirstToken is the token of the first of comma- or newline-separated
// entries, each "name:token" or a bare token (config.ParseAdminTokens).
func FirstToken(s string) string {
	for _, t := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if _, token, named := strings.Cut(t, ":"); named {
			t = token
		}
		if t = strings.TrimSpace(t); t != "" {
			return t
		}
	}
	return ""
}
