package plus_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

func login(t *testing.T, rp *replica, name, password string) string {
	t.Helper()
	return expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": name, "password": password}), http.StatusOK).obj(t)["access_token"].(string)
}

func refreshed(t *testing.T, rp *replica, token string) string {
	t.Helper()
	return expect(t, rp.call("POST", "/api/v2/auth/refresh", token, nil), http.StatusOK).obj(t)["access_token"].(string)
}

// A refresh token presented a second time is a theft signal (OAuth 2.0
// Security BCP): it is refused and every token of its login dies, the
// newest included, on every replica. Other logins live on. On main the
// reuse was refused but the thief's (or user's) newest token kept working.
func TestRefreshTokenReuseEndsTheLogin(t *testing.T) {
	tn := newTenant(t)
	a, b := tn.replica(), tn.replica()
	tn.register(a, "famuser", "13600000001", "secret1")
	t1 := login(t, a, "famuser", "secret1")
	other := login(t, a, "famuser", "secret1")
	t2 := refreshed(t, a, t1)
	t3 := refreshed(t, b, t2)
	expect(t, b.call("GET", "/api/v2/user", t3, nil), http.StatusOK)
	r := expect(t, a.call("POST", "/api/v2/auth/refresh", t1, nil), http.StatusUnauthorized)
	if !strings.Contains(string(r.body), "refreshed before") {
		t.Fatalf("reuse answer: %s", r.body)
	}
	for _, rp := range []*replica{a, b} {
		r := expect(t, rp.call("GET", "/api/v2/user", t3, nil), http.StatusUnauthorized)
		if !strings.Contains(string(r.body), "login has ended") {
			t.Fatalf("newest token after reuse: %s", r.body)
		}
		expect(t, rp.call("POST", "/api/v2/auth/refresh", t3, nil), http.StatusUnauthorized)
	}
	expect(t, b.call("GET", "/api/v2/user", other, nil), http.StatusOK)
}

// 30 refreshes of one token at once, on two replicas: at most one is
// answered with a token, and since the token was presented more than once
// that answer's token is dead too. On main one refresh won and its token
// lived on, whoever got it.
func TestParallelRefreshesOfOneToken(t *testing.T) {
	tn := newTenant(t)
	a, b := tn.replica(), tn.replica()
	tn.register(a, "raceuser", "13600000002", "secret1")
	tok := login(t, a, "raceuser", "secret1")
	const n = 30
	var mu sync.Mutex
	var issued []string
	refused := 0
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := []*replica{a, b}[i%2].call("POST", "/api/v2/auth/refresh", tok, nil)
			mu.Lock()
			defer mu.Unlock()
			switch r.status {
			case http.StatusOK:
				issued = append(issued, r.obj(t)["access_token"].(string))
			case http.StatusUnauthorized:
				refused++
			default:
				t.Errorf("status %d: %s", r.status, r.body)
			}
		}()
	}
	wg.Wait()
	if len(issued) > 1 || len(issued)+refused != n {
		t.Fatalf("%d tokens issued, %d refused", len(issued), refused)
	}
	for _, fresh := range issued {
		expect(t, b.call("GET", "/api/v2/user", fresh, nil), http.StatusUnauthorized)
	}
}

// Logout ends the login, refreshes racing it included: 15 refreshes and 15
// logouts of one token at once; afterwards no token of that login works.
// On main a refresh that won the race against the logout kept its token.
func TestLogoutEndsTheLoginEvenAgainstRacingRefreshes(t *testing.T) {
	tn := newTenant(t)
	a, b := tn.replica(), tn.replica()
	tn.register(a, "outuser", "13600000003", "secret1")
	tok := login(t, a, "outuser", "secret1")
	other := login(t, a, "outuser", "secret1")
	const n = 30
	var mu sync.Mutex
	var issued []string
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rp := []*replica{a, b}[i%2]
			if i%2 == 0 {
				r := rp.call("POST", "/api/v2/auth/logout", tok, nil)
				if r.status != http.StatusOK && r.status != http.StatusUnauthorized {
					t.Errorf("logout: %d %s", r.status, r.body)
				}
				return
			}
			r := rp.call("POST", "/api/v2/auth/refresh", tok, nil)
			if r.status == http.StatusOK {
				mu.Lock()
				issued = append(issued, r.obj(t)["access_token"].(string))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, tk := range append(issued, tok) {
		expect(t, a.call("GET", "/api/v2/user", tk, nil), http.StatusUnauthorized)
		expect(t, b.call("POST", "/api/v2/auth/refresh", tk, nil), http.StatusUnauthorized)
	}
	expect(t, a.call("GET", "/api/v2/user", other, nil), http.StatusOK)
}

// Every answer that carries a token or personal data says
// Cache-Control: no-store, in both dialects. On main none did.
func TestTokensAndPersonalDataAreNotStored(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	id, tok := tn.register(rp, "cacheuser", "13600000004", "secret1")
	answers := map[string]resp{
		"login":   rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "cacheuser", "password": "secret1"}),
		"me":      rp.call("GET", "/api/v2/user", tok, nil),
		"export":  rp.call("GET", "/api/v2/user/export", tok, nil),
		"user":    rp.call("GET", "/api/v2/users/"+fmtInt(id), tok, nil),
		"refresh": rp.call("POST", "/api/v2/auth/refresh", tok, nil),
		"profile": rp.call("GET", "/userve/v2.0/miniapp/user_profile/"+fmtInt(id)+"/", adminToken, nil),
		"401":     rp.call("GET", "/api/v2/user", "", nil),
	}
	for name, r := range answers {
		if got := r.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s (%d): Cache-Control %q", name, r.status, got)
		}
	}
}
