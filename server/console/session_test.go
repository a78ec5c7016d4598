package console_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/console"
)

// The console asks for an admin token once, then keeps a session cookie
// that is HttpOnly, SameSite=Strict, scoped to the console, Secure behind
// TLS; the token itself is never sent back. Logout ends the session for
// good, and both show in the audit log under the token's name. (Before
// the console, /userve/console/ was a 404.)
func TestConsoleLoginSessionAndLogout(t *testing.T) {
	e := newEnv(t)
	c := e.browser()
	if p := e.get(c, "/").want(t, http.StatusSeeOther); p.header.Get("Location") != "/userve/console/login" {
		t.Fatalf("signed out, / goes to %q", p.header.Get("Location"))
	}
	if p := e.get(c, "/users/?nickname=x").want(t, http.StatusSeeOther); !strings.HasPrefix(p.header.Get("Location"), "/userve/console/login?next=") {
		t.Fatalf("signed out, a page goes to %q", p.header.Get("Location"))
	}
	login := e.get(c, "/login").want(t, http.StatusOK)
	for k, want := range map[string]string{"Content-Security-Policy": console.ContentSecurityPolicy, "X-Content-Type-Options": "nosniff",
		"Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"} {
		if got := login.header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(console.ContentSecurityPolicy, "default-src 'self'") || !strings.Contains(console.ContentSecurityPolicy, "frame-ancestors 'none'") ||
		strings.Contains(console.ContentSecurityPolicy, "unsafe-inline") {
		t.Errorf("CSP is not strict: %s", console.ContentSecurityPolicy)
	}

	wrong := e.post(c, "/login", url.Values{"token": {"not-a-token"}}).want(t, http.StatusUnauthorized)
	if len(wrong.header.Values("Set-Cookie")) != 0 || !strings.Contains(wrong.body, "not valid") {
		t.Fatalf("a wrong token: cookies %v, body %.300s", wrong.header.Values("Set-Cookie"), wrong.body)
	}
	ok := e.post(c, "/login", url.Values{"token": {adminToken}, "next": {"/userve/console/users/?gender=1"}}).want(t, http.StatusSeeOther)
	if loc := ok.header.Get("Location"); loc != "/userve/console/users/?gender=1" {
		t.Fatalf("after login: %q", loc)
	}
	cookie := ok.header.Get("Set-Cookie")
	for _, want := range []string{"userve_console=", "Path=/userve/console/", "HttpOnly", "SameSite=Strict", "Max-Age=28800"} {
		if !strings.Contains(cookie, want) {
			t.Fatalf("session cookie %q lacks %s", cookie, want)
		}
	}
	if strings.Contains(cookie, "Secure") || strings.Contains(cookie, adminToken) {
		t.Fatalf("session cookie over plain HTTP: %q", cookie)
	}
	users := e.get(c, "/users/").want(t, http.StatusOK)
	if !strings.Contains(users.body, `id="admin-name">alice<`) || strings.Contains(users.body, adminToken) {
		t.Fatalf("the users page does not name the admin, or shows the token: %.500s", users.body)
	}
	// An open redirect is not: next must be a console path.
	evil := e.post(e.browser(), "/login", url.Values{"token": {adminToken}, "next": {"//evil.example/"}}).want(t, http.StatusSeeOther)
	if evil.header.Get("Location") != "/userve/console/users/" {
		t.Fatalf("next=//evil.example/ went to %q", evil.header.Get("Location"))
	}

	// Behind a trusted proxy that terminated TLS, the cookie is Secure.
	viaTLS := e.post(e.browser(), "/login", url.Values{"token": {adminToken}}, "X-Forwarded-Proto: https").want(t, http.StatusSeeOther)
	if !strings.Contains(viaTLS.header.Get("Set-Cookie"), "Secure") {
		t.Fatalf("behind TLS the cookie is not Secure: %q", viaTLS.header.Get("Set-Cookie"))
	}

	csrf := csrfInput.FindStringSubmatch(users.body)[1]
	e.post(c, "/logout", url.Values{"csrf": {csrf}}).want(t, http.StatusSeeOther)
	e.get(c, "/users/").want(t, http.StatusSeeOther)
	// The cookie, replayed after logout, is dead on every replica (the
	// session lived in the store).
	e.post(c, "/users/1/ban", url.Values{"csrf": {csrf}, "reason": {"x"}}).want(t, http.StatusUnauthorized)

	var actions []string
	for _, a := range e.audit("admin=alice&limit=10") {
		actions = append(actions, fmt.Sprint(a["action"]))
	}
	if got := strings.Join(actions, ","); got != "consoleLogout,consoleLogin,consoleLogin,consoleLogin" {
		t.Fatalf("audit of alice's sessions: %s", got)
	}
}

// Sessions live in the store, so every replica honours a login and a
// logout at once; the store holds only a hash of the cookie.
func TestConsoleSessionsAreSharedByReplicas(t *testing.T) {
	a := newEnv(t)
	b := a.replica()
	c := a.browser()
	res := a.post(c, "/login", url.Values{"token": {adminToken}}).want(t, http.StatusSeeOther)
	cookie := strings.TrimPrefix(strings.Split(res.header.Get("Set-Cookie"), ";")[0], "userve_console=")
	if _, err := a.store.GetConsoleSession(t.Context(), cookie); err == nil {
		t.Fatal("the store holds the cookie's value itself")
	}
	sum := sha256.Sum256([]byte(cookie))
	if cs, err := a.store.GetConsoleSession(t.Context(), hex.EncodeToString(sum[:])); err != nil || cs.Admin != "alice" {
		t.Fatalf("the session under the cookie's hash: %v %v", cs, err)
	}
	// The same browser served by replica b (cookies are per host, not
	// per port): signed in there, and signed out everywhere from there.
	page := b.get(c, "/users/").want(t, http.StatusOK)
	csrf := csrfInput.FindStringSubmatch(page.body)[1]
	b.post(c, "/logout", url.Values{"csrf": {csrf}}).want(t, http.StatusSeeOther)
	c.Jar.SetCookies(res.request.URL, []*http.Cookie{{Name: "userve_console", Value: cookie}}) // the cookie, kept by a thief
	a.get(c, "/users/").want(t, http.StatusSeeOther)
}

// A session ends with its admin token: once the tenant's tokens are
// rotated (the operator rolls the pods with the new Secret), a session
// signed in with the old token is refused by the pods that have the new
// ones, though the name is the same; the others' sessions go on.
func TestConsoleSessionEndsWithItsToken(t *testing.T) {
	old := newEnv(t)
	alice, other := old.browser(), old.browser()
	old.signIn(alice, adminToken)
	old.signIn(other, otherToken)
	rotated := old.replica(config.AdminToken{Name: "admin-1", Token: otherToken},
		config.AdminToken{Name: "alice", Token: "console-new-alice-token-0123456789abcd"})
	rotated.get(alice, "/users/").want(t, http.StatusSeeOther)
	rotated.get(other, "/users/").want(t, http.StatusOK)
	old.get(alice, "/users/").want(t, http.StatusSeeOther) // ended for good: the store forgot it
}

// A session ends after IdleTimeout without use, and after SessionTTL
// however busy.
func TestConsoleSessionExpires(t *testing.T) {
	e := newEnv(t)
	idle := e.browser()
	e.signIn(idle, adminToken)
	e.clock.Add(console.IdleTimeout + time.Minute)
	e.get(idle, "/users/").want(t, http.StatusSeeOther)

	busy := e.browser()
	e.signIn(busy, adminToken)
	for used := time.Duration(0); used < console.SessionTTL-console.IdleTimeout; used += console.IdleTimeout - time.Minute {
		e.clock.Add(console.IdleTimeout - time.Minute)
		e.get(busy, "/users/").want(t, http.StatusOK)
	}
	e.clock.Add(console.IdleTimeout - time.Minute)
	e.get(busy, "/users/").want(t, http.StatusSeeOther)
}

// Every change needs the session's CSRF token: without it, with a wrong
// one, with another session's, or from another site's page, the change is
// refused (403) and nothing happens (the user is not banned, no audit
// entry of a ban exists). (Before the console there was no such form.)
func TestConsoleChangeWithoutCSRFIsRefused(t *testing.T) {
	e := newEnv(t)
	id, _ := e.user("victim", nil)
	c, other := e.browser(), e.browser()
	csrf := e.signIn(c, adminToken)
	otherCSRF := e.signIn(other, otherToken)
	path := fmt.Sprintf("/users/%d/ban", id)
	ban := url.Values{"reason": {"csrf"}}
	e.post(c, path, ban).want(t, http.StatusForbidden)
	e.post(c, path, url.Values{"reason": {"csrf"}, "csrf": {csrf + "x"}}).want(t, http.StatusForbidden)
	e.post(c, path, url.Values{"reason": {"csrf"}, "csrf": {otherCSRF}}).want(t, http.StatusForbidden)
	e.post(c, path, url.Values{"reason": {"csrf"}, "csrf": {csrf}}, "Origin: https://evil.example").want(t, http.StatusForbidden)
	if _, p := e.api("GET", fmt.Sprintf("/userve/v2.2/miniapp/user_profile/%d/", id), nil); p["_banned"] != false {
		t.Fatalf("a refused change banned the user: %v", p)
	}
	if got := e.audit("action=banUser"); len(got) != 0 {
		t.Fatalf("refused changes left audit entries: %v", got)
	}
	// The header works as well as the field (for scripts).
	e.post(c, path, ban, console.CSRFHeader+": "+csrf).want(t, http.StatusSeeOther)
	if _, p := e.api("GET", fmt.Sprintf("/userve/v2.2/miniapp/user_profile/%d/", id), nil); p["_banned"] != true {
		t.Fatalf("the change with the token did not ban: %v", p)
	}
}

// Console logins take the attempt slots every login takes, per client
// address: of 60 parallel wrong tokens from one address, exactly
// account.FailuresPerAddress are judged (401) and the rest refused (429,
// with Retry-After); then even the right token from that address waits,
// while another address signs in.
func TestConsoleLoginAttemptLimits(t *testing.T) {
	e := newEnv(t)
	const n = 60
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.post(e.browser(), "/login", url.Values{"token": {fmt.Sprintf("guess-%d", i)}}, "X-Forwarded-For: 203.0.113.7").status
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[http.StatusUnauthorized] != account.FailuresPerAddress || count[http.StatusTooManyRequests] != n-account.FailuresPerAddress {
		t.Fatalf("60 parallel guesses: %v, want %d judged and %d refused", count, account.FailuresPerAddress, n-account.FailuresPerAddress)
	}
	late := e.post(e.browser(), "/login", url.Values{"token": {adminToken}}, "X-Forwarded-For: 203.0.113.7").want(t, http.StatusTooManyRequests)
	if late.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	e.post(e.browser(), "/login", url.Values{"token": {adminToken}}, "X-Forwarded-For: 203.0.113.8").want(t, http.StatusSeeOther)
}
