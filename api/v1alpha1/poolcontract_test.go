package v1alpha1

import (
	"slices"
	"testing"
)

func TestTenantHostsListsEveryServiceFormAndIngress(t *testing.T) {
	got := TenantHosts("shop", "users", "", "Users.Example.COM.", "")
	want := []string{"users", "users.shop", "users.shop.svc", "users.shop.svc.cluster.local", "users.example.com"}
	if !slices.Equal(got, want) {
		t.Fatalf("TenantHosts = %q, want %q", got, want)
	}
	if got := TenantHosts("shop", "users", "corp.internal"); got[3] != "users.shop.svc.corp.internal" {
		t.Fatalf("cluster domain not used: %q", got)
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"users.shop.svc:8080":              "users.shop.svc",
		"USERS.shop.svc.cluster.local.":    "users.shop.svc.cluster.local",
		"users.shop.svc.cluster.local.:80": "users.shop.svc.cluster.local",
		"10.0.0.7:8080":                    "",
		"[::1]:8080":                       "",
		"::1":                              "",
		"":                                 "",
		" ":                                "",
	} {
		if got := NormalizeHost(in); got != want {
			t.Errorf("NormalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPoolTenantSecretNameIsUniquePerTenant(t *testing.T) {
	if a, b := PoolTenantSecretName("p", "a-b", "c"), PoolTenantSecretName("p", "a", "b-c"); a == b {
		t.Fatalf("two tenants share the Secret name %q", a)
	}
	long := "a23456789012345678901234567890123456789012345678901234567890123"
	if n := len(PoolTenantSecretName(long, long, long)); n > PoolTenantSecretNameLimit {
		t.Fatalf("name of %d characters", n)
	}
}
