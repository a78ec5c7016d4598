package plus_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Two servers (separate store clients and handlers, as two pods) on one
// database: codes, resend limits, login failure limits and revocations
// hold across them, because they live only in MongoDB.
func TestStateHoldsAcrossReplicas(t *testing.T) {
	tn := newTenant(t)
	a, b := tn.replica(), tn.replica()

	// A code sent through A is accepted through B, once.
	expect(t, a.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "13500000000"}), http.StatusAccepted)
	code := tn.outbox.code(t, "13500000000")
	// B refuses a resend to the same target within the minute.
	expect(t, b.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "13500000000"}), http.StatusForbidden)
	body := map[string]any{"name": "replicated", "phone": "13500000000", "password": "secret1", "verifiable_type": "sms", "verifiable_code": code}
	r := expect(t, b.call("POST", "/api/v2/users", "", body), http.StatusCreated)
	token := r.obj(t)["token"].(string)
	body["name"] = "replicated2"
	expect(t, a.call("POST", "/api/v2/users", "", body), http.StatusUnprocessableEntity)

	// A token from A works on B; logout on A kills it on B.
	expect(t, b.call("GET", "/api/v2/user", token, nil), http.StatusOK)
	expect(t, a.call("POST", "/api/v2/auth/logout", token, nil), http.StatusOK)
	expect(t, b.call("GET", "/api/v2/user", token, nil), http.StatusUnauthorized)

	// A refresh on A, then the same old token on B: refused (single use).
	tok := expect(t, a.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "replicated", "password": "secret1"}), http.StatusOK).obj(t)["access_token"].(string)
	expect(t, a.call("POST", "/api/v2/auth/refresh", tok, nil), http.StatusOK)
	expect(t, b.call("POST", "/api/v2/auth/refresh", tok, nil), http.StatusUnauthorized)

	// One code, many concurrent uses through both replicas: exactly one wins.
	tn.clock.Add(time.Minute)
	expect(t, a.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": "13500000000"}), http.StatusAccepted)
	code = tn.outbox.code(t, "13500000000")
	var wins atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(rp *replica) {
			defer wg.Done()
			r := rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "13500000000", "verifiable_code": code})
			// A loser is judged (422) or finds the account's attempt
			// slots taken (429).
			if r.status == http.StatusOK {
				wins.Add(1)
			} else if r.status != http.StatusUnprocessableEntity && r.status != http.StatusTooManyRequests {
				t.Errorf("racing code use: %d %s", r.status, r.body)
			}
		}([]*replica{a, b}[i%2])
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("one code logged in %d times", wins.Load())
	}
	// The racing code logins spent this address's tries on the account:
	// start a new window.
	tn.clock.Add(15 * time.Minute)

	// Login failures alternate between replicas and still add up.
	for i := 0; i < 5; i++ {
		rp := a
		if i%2 == 1 {
			rp = b
		}
		expectInvalid(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "replicated", "password": "wrong-" + itoa(i)}), "password")
	}
	expect(t, a.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "replicated", "password": "secret1"}), http.StatusTooManyRequests)
	expect(t, b.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "replicated", "password": "secret1"}), http.StatusTooManyRequests)
	tn.clock.Add(16 * time.Minute)
	expect(t, b.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "replicated", "password": "secret1"}), http.StatusOK)
}
