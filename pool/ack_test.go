package pool

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/resourceversion"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/internal/egress"
	"userve.dev/userve/server/verify/verifytest"
)

// atLeast reports whether the acknowledged resourceVersion covers rv.
func atLeast(acked, rv string) bool {
	c, err := resourceversion.CompareResourceVersion(acked, rv)
	return err == nil && c >= 0
}

// The pool is ready only once the Secrets its initial list found are
// applied and acknowledged on its Pod; later writes are acknowledged once
// applied, so that when the Pod says a Secret's resourceVersion, the
// tenant routes (what the operator waits for before moving a tenant in).
func TestAppliedSecretsAreAcknowledgedOnThePod(t *testing.T) {
	var first *tenantCreds
	var firstRV string
	e := newPoolEnv(t, Options{}, testHooks{before: func(e *poolEnv) {
		first = newCreds(t, "team-a", "acme")
		firstRV = e.put(first, first.secretData(nil))
	}})
	// newPoolEnv waited for readiness: the ack is already there.
	if acked := e.acknowledged(); !atLeast(acked, firstRV) {
		t.Fatalf("ready with %q acknowledged, want at least the initial list's %s", acked, firstRV)
	}
	e.must(http.StatusOK, first.host(), "GET", "/userve/v1/user-group/", nil, first.admin())

	second := newCreds(t, "team-b", "globex")
	rv := e.put(second, second.secretData(nil))
	e.waitFor("the new Secret to be acknowledged", func() bool { return atLeast(e.acknowledged(), rv) })
	if tn, _ := e.pool.registry.lookup(second.host()); tn == nil {
		t.Fatal("acknowledged a Secret the pool does not route")
	}
	e.must(http.StatusOK, second.host(), "GET", "/userve/v1/user-group/", nil, second.admin())

	// A rotated admin token: acknowledged once the new one is in force.
	second.adminToken = "rotated-" + second.adminToken
	rv = e.put(second, second.secretData(nil))
	e.waitFor("the rotation to be acknowledged", func() bool { return atLeast(e.acknowledged(), rv) })
	e.must(http.StatusOK, second.host(), "GET", "/userve/v1/user-group/", nil, second.admin())
}

// Outbound calls of pooled tenants go through the pool's egress guard: a
// tenant whose SMS webhook is on the loopback gets its delivery refused
// (503, the code withdrawn) unless the pool allows that range.
func TestTenantDeliveriesGoThroughThePoolsGuard(t *testing.T) {
	const secret = "pool-webhook-secret-0123456789"
	for _, allow := range []bool{false, true} {
		var opts Options
		if allow {
			opts.Egress = egress.New(egress.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
		}
		e := newPoolEnv(t, opts, testHooks{})
		hook := verifytest.NewWebhook(t, []byte(secret))
		c := newCreds(t, "team-a", "acme")
		data := c.secretData(func(us *v1alpha1.UserService) {
			us.Spec.Verification.SMS = &v1alpha1.SMSSpec{Webhook: &v1alpha1.WebhookSpec{URL: hook.URL,
				SecretRef: &v1alpha1.SecretKeyRef{Name: "sms", Key: "secret"}}}
		})
		data[v1alpha1.EnvWebhookSecret] = []byte(secret)
		e.put(c, data)
		e.waitFor("the tenant to route", func() bool { tn, _ := e.pool.registry.lookup(c.host()); return tn != nil })
		r, err := e.call(c.host(), "POST", "/hserve/v2.2/sms-verification-code/", map[string]any{"phone": "13700000001"}, c.sdk("")...)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case !allow && (r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "could not be delivered")):
			t.Errorf("a loopback webhook without --allow-egress: %d %s, want 503 not delivered", r.status, r.body)
		case allow && r.status != http.StatusOK:
			t.Errorf("a loopback webhook with --allow-egress 127.0.0.0/8: %d %s, want 200", r.status, r.body)
		case allow:
			if h := <-hook.Hooks; !h.SignedOK || h.Body["to"] != "13700000001" {
				t.Errorf("the allowed delivery: %+v", h)
			}
		}
	}
}
