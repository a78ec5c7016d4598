package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"userve.dev/userve/api/v1alpha1"
)

// A cached tenant older than the reconciler's last write of it is not
// fresh; once the cache shows that write (or a later one), it is, and the
// write is forgotten. Tenants never written are read from the cache.
func TestTenantFloorsFollowTheReconcilersWrites(t *testing.T) {
	var f tenantFloors
	key := types.NamespacedName{Namespace: "ns", Name: "acme"}
	if !f.fresh(key, "5") {
		t.Fatal("a tenant the reconciler never wrote is not fresh in the cache")
	}
	f.wrote(&v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "acme", ResourceVersion: "100"}})
	for _, rv := range []string{"99", "5", "", "garbage"} {
		if f.fresh(key, rv) {
			t.Errorf("a cached copy at %q counts as fresh after a write at 100", rv)
		}
	}
	if !f.fresh(key, "101") {
		t.Fatal("a cached copy past the write is not fresh")
	}
	if !f.fresh(key, "99") {
		t.Error("the write was not forgotten once the cache had shown it")
	}
	other := types.NamespacedName{Namespace: "ns", Name: "other"}
	f.wrote(&v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "other", ResourceVersion: "7"}})
	f.forget(other)
	if !f.fresh(other, "3") {
		t.Error("a forgotten tenant still needs a fresh read")
	}
}
