package plus_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"userve.dev/userve/server/store"
)

// Password checks against heavy imported hashes share a memory budget per
// replica (server/auth's gate; issue 21). In these tests each account's
// hash is an argon2id as heavy as the replica's whole budget, so one check
// runs at a time.

// importedArgon2 makes a user whose password hash is an argon2id PHC
// string of m KiB and "passes" passes, as an import stores it.
func importedArgon2(t *testing.T, rp *replica, name, password string, m, passes uint32) *store.Profile {
	t.Helper()
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(password), salt, passes, m, 1, 32)
	hash := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=1$%s$%s", m, passes,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
	p := &store.Profile{Username: name, Nickname: name, PasswordHash: hash}
	if err := rp.store.CreateProfile(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

// 30 parallel logins into 30 such accounts queue for the budget: every
// one gets its token (and its hash replaced by the tenant's bcrypt).
func TestHeavyHashLoginsQueueForTheCheckBudget(t *testing.T) {
	tn := newTenant(t)
	tn.checkMemory, tn.checkWait = 8<<20, time.Minute
	rp := tn.replica()
	const n = 30
	for i := range n {
		importedArgon2(t, rp, fmt.Sprintf("heavy%02d", i), "right-password", 8192, 1)
	}
	rs := burst(n, func(i int) resp {
		return rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": fmt.Sprintf("heavy%02d", i), "password": "right-password"})
	})
	if got := statuses(rs); got[http.StatusOK] != n {
		t.Fatalf("statuses %v: want all %d logins to wait their turn and succeed", got, n)
	}
	p, err := rp.store.FindProfileBy(context.Background(), store.FieldUsername, "heavy07")
	if err != nil || !strings.HasPrefix(p.PasswordHash, "$2a$") {
		t.Errorf("after the login the hash is %q (%v), want the tenant's bcrypt", p.PasswordHash, err)
	}
}

// When the budget stays taken for longer than the bounded wait (1 ms
// here), a login is refused 503 with Retry-After before its password is
// judged, and the refusal gives its attempt slots back. 32 parallel wrong
// passwords for one account: at most five are judged (422, the account's
// budget); some find the checks busy (503); the rest are 429. Since the
// 503s cost nothing, more than five requests may get past the account
// budget in all, and while fewer than five were judged the right password
// still gets in. Before the gate, every admitted attempt ran its check at
// once (5 x 64 MiB with PHP's default hash): no 503 at all.
func TestBusyChecksAreRefusedAndCostNoAttempts(t *testing.T) {
	tn := newTenant(t)
	tn.checkMemory, tn.checkWait = 16<<20, time.Millisecond
	rp := tn.replica()
	// 16 MiB and ten passes: each check lasts long enough (a few hundred
	// ms) that the five admitted attempts meet at the gate.
	importedArgon2(t, rp, "target", "right-password", 16384, 10)
	const n = 32
	rs := burst(n, func(i int) resp {
		return rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "target", "password": fmt.Sprintf("wrong-%02d", i)})
	})
	got := statuses(rs)
	t.Logf("%d parallel wrong passwords: %d judged (422), %d refused as busy (503), %d over the account budget (429)", n, got[422], got[503], got[429])
	if got[503] < 1 || got[422] < 1 || got[422] > 5 || got[422]+got[503]+got[429] != n {
		t.Fatalf("statuses %v: want 1 to 5 judged, some 503 and the rest 429", got)
	}
	for _, r := range rs {
		if r.status == http.StatusServiceUnavailable && (r.header.Get("Retry-After") == "" || !strings.Contains(r.obj(t)["message"].(string), "password checks")) {
			t.Fatalf("503 without Retry-After or message: %v %s", r.header, r.body)
		}
	}
	if busy := value(t, rp.scrape(), "userve_login_throttled_total", "kind", "checks_busy"); busy != float64(got[503]) {
		t.Errorf("checks_busy counted %v, 503 answers %d", busy, got[503])
	}
	if got[422] < 5 {
		expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "target", "password": "right-password"}), http.StatusOK)
	}
}
