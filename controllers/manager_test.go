package controllers

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
)

func TestParseSecretLocation(t *testing.T) {
	l, err := ParseSecretLocation("userve-system/mongo/uri")
	if err != nil || *l != (render.SecretLocation{Namespace: "userve-system", Name: "mongo", Key: "uri"}) {
		t.Fatalf("got %+v, %v", l, err)
	}
	for _, bad := range []string{"", "mongo/uri", "a/b/c/d", "/mongo/uri", "ns//uri", "ns/mongo/", "NS/mongo/uri", "ns/mongo/bad key"} {
		if _, err := ParseSecretLocation(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseNamespaces(t *testing.T) {
	got, err := ParseNamespaces(" a, b,,c ")
	if err != nil || !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("got %v, %v", got, err)
	}
	if got, err := ParseNamespaces(""); err != nil || got != nil {
		t.Errorf("empty: %v, %v (want all namespaces)", got, err)
	}
	if _, err := ParseNamespaces("a,B_c"); err == nil {
		t.Error("invalid namespace accepted")
	}
}

func TestCacheOptionsNarrowTheCache(t *testing.T) {
	all := CacheOptions(nil, "userve-system")
	if all.DefaultNamespaces != nil {
		t.Errorf("no --watch-namespaces must watch all namespaces: %v", all.DefaultNamespaces)
	}
	if all.DefaultTransform == nil {
		t.Error("managedFields are not stripped")
	}
	some := CacheOptions([]string{"a", "b"}, "userve-system")
	if len(some.DefaultNamespaces) != 3 {
		t.Errorf("namespaces = %v, want the watched ones and the pools'", some.DefaultNamespaces)
	}
	// Every owned kind, the pools' Roles and RoleBindings, their Pods, and
	// UserServices (of the watched namespaces only).
	if len(some.ByObject) != len(objectsOwned())+4 {
		t.Fatalf("%d kinds restricted, want every owned kind (%d) and 4 more", len(some.ByObject), len(objectsOwned()))
	}
	mine := labels.Set{render.LabelManagedBy: render.ManagedBy}
	for obj, by := range some.ByObject {
		if _, ok := obj.(*v1alpha1.UserService); ok {
			if len(by.Namespaces) != 2 {
				t.Errorf("UserServices cached in %v, want a and b only", by.Namespaces)
			}
			if _, ok := by.Namespaces["userve-system"]; ok {
				t.Errorf("UserServices of the pool namespace are cached: %v", by.Namespaces)
			}
			continue
		}
		if _, ok := obj.(*corev1.Secret); ok {
			if !by.Label.Matches(labels.Set{render.LabelWatched: "true"}) || by.Label.Matches(mine) {
				t.Errorf("Secrets cached by %q, want the watched label only", by.Label)
			}
			continue
		}
		if _, ok := obj.(*corev1.Pod); ok {
			pool := labels.Set{render.LabelManagedBy: render.ManagedBy, render.LabelComponent: render.PoolComponent}
			if !by.Label.Matches(pool) || by.Label.Matches(mine) {
				t.Errorf("Pods cached by %q, want the pools' only, never tenants'", by.Label)
			}
			continue
		}
		if by.Label == nil || !by.Label.Matches(mine) || by.Label.Matches(labels.Set{}) {
			t.Errorf("%T cached by %v, want the managed-by label", obj, by.Label)
		}
	}
}

func FuzzParseSecretLocation(f *testing.F) {
	for _, seed := range []string{"userve-system/mongo/uri", "a/b/c", "a/b", "a/b/c/d", "", "//", "ns/na.me/k_e-y.1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseSecretLocation(s)
		if err != nil {
			return
		}
		if l.Namespace == "" || l.Name == "" || l.Key == "" {
			t.Fatalf("%q accepted with an empty part: %+v", s, l)
		}
		if l.String() != s {
			t.Fatalf("%q parsed to %+v, which prints as %q", s, l, l.String())
		}
	})
}
