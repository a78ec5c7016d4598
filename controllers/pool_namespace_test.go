package controllers

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"userve.dev/userve/api/v1alpha1"
)

// A pool never runs in the operator's namespace (its pods could read the
// operator's Secrets), nor nowhere.
func TestPoolNamespaceRefusal(t *testing.T) {
	pool := &v1alpha1.UserServicePool{ObjectMeta: metav1.ObjectMeta{Name: "shared"}}
	for _, c := range []struct{ ns, operator, want string }{
		{"userve-pools", "userve-system", ""},
		{"userve-system", "userve-system", "the operator's own"},
		{"", "userve-system", "no spec.namespace"},
		{"userve-pools", "", ""},
	} {
		got := poolNamespaceRefusal(pool, c.ns, c.operator)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("poolNamespaceRefusal(%q, %q) = %q, want %q", c.ns, c.operator, got, c.want)
		}
	}
}
