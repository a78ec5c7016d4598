package pool

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"userve.dev/userve/api/v1alpha1"
)

// A tenant's configuration comes from its Secret only: the pool process's
// own environment (which holds the pool's, not a tenant's, settings) never
// fills in what the Secret lacks.
func TestTenantConfigurationComesOnlyFromItsSecret(t *testing.T) {
	t.Setenv(v1alpha1.EnvJWTKey, "the-pool-process-own-key-0123456789abcdef")
	t.Setenv(v1alpha1.EnvAdminTokens, "pool-process-admin-token-0123456789abcdef")
	c := &tenantCreds{ns: "team-a", name: "acme", clientID: "client", database: "db", mongoURI: "mongodb://127.0.0.1:1/"}
	data := c.secretData(nil)
	delete(data, v1alpha1.EnvJWTKey)
	delete(data, v1alpha1.EnvAdminTokens)
	conf := confFromSecret(&corev1.Secret{Data: data}, "")
	if conf.err == nil || !strings.Contains(conf.err.Error(), "USERVE_ADMIN_TOKENS is empty") {
		t.Fatalf("a Secret without admin tokens: %v, want the tenant refused", conf.err)
	}
}

// The hosts a Secret lists, and the Service names the pool adds, are
// normalized and listed once.
func TestSecretHostsAreNormalized(t *testing.T) {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{
		v1alpha1.PoolTenantNamespaceLabel: "team-a", v1alpha1.PoolTenantNameLabel: "acme"}},
		Data: map[string][]byte{v1alpha1.PoolTenantHostsKey: []byte("ACME.team-a\n\n users.example.com:443 \n10.0.0.1\nusers.example.com.\n")}}
	got := confFromSecret(s, "corp.local").hosts
	want := []string{"acme.team-a", "users.example.com", "acme", "acme.team-a.svc", "acme.team-a.svc.corp.local"}
	if !slices.Equal(got, want) {
		t.Fatalf("hosts %q, want %q", got, want)
	}
}

// The hosts parser: whatever a Secret holds, every host it returns is a
// DNS name in the form lookups use, and listed once. (It found that
// NormalizeHost keeps inner whitespace: "x.\n.\n:\n" gave "x.\n", which no
// Host header can match; such entries are now left out.)
func FuzzParseHosts(f *testing.F) {
	for _, seed := range []string{"acme\nacme.team-a", "A.B:80\r\n[::1]:8080\n", "\x00\n\xff"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		hosts := parseHosts([]byte(data), []string{"acme", data})
		seen := map[string]bool{}
		for _, h := range hosts {
			if h == "" || v1alpha1.NormalizeHost(h) != h || len(validation.IsDNS1123Subdomain(h)) > 0 || seen[h] {
				t.Fatalf("host %q of %q: empty, not normalized or repeated (%q)", h, data, hosts)
			}
			seen[h] = true
		}
	})
}

// An idle tenant (known, never served, or evicted) costs its Secret in the
// informer's cache and its parsed configuration: 1,000 of them, with a
// manifest of the size the operator writes, stay under 64 KiB each.
func TestAnIdleTenantCostsLittle(t *testing.T) {
	p := newBarePool(Options{})
	const n = 1000
	secrets := make([]*corev1.Secret, 0, n) // the informer's cache holds them
	before := heapInUse()
	for i := range n {
		c := &tenantCreds{ns: fmt.Sprintf("team-%d", i), name: "acme", clientID: "client", database: fmt.Sprintf("db%d", i),
			mongoURI: "mongodb://user:password@mongo.example.com:27017/?authSource=admin", ingress: fmt.Sprintf("users-%d.example.com", i),
			adminToken: strings.Repeat("a", 64), jwtKey: strings.Repeat("k", 64)}
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("shared.team-%d.acme", i)}, Data: c.secretData(nil)}
		secrets = append(secrets, s)
		p.registry.upsert(p, s)
	}
	per := (heapInUse() - before) / n
	t.Logf("%d idle tenants: %.1f KiB each (the Secret and its parsed configuration)", n, float64(per)/1024)
	if per > 64<<10 {
		t.Errorf("an idle tenant costs %d bytes, more than 64 KiB", per)
	}
	runtime.KeepAlive(secrets)
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}
