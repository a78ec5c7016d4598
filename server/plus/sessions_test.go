package plus_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// mySessions lists the caller's sessions.
func mySessions(t *testing.T, rp *replica, token string) []map[string]any {
	t.Helper()
	return expect(t, rp.call("GET", "/api/v2/user/sessions", token, nil), http.StatusOK).list(t)
}

// currentSession is the id of the session token belongs to.
func currentSession(t *testing.T, rp *replica, token string) string {
	t.Helper()
	for _, s := range mySessions(t, rp, token) {
		if s["current"] == true {
			return s["id"].(string)
		}
	}
	t.Fatal("no session is marked current")
	return ""
}

// Each login is a session with its method, address, User-Agent and times;
// refreshing stays in it; the last use is written at most once a minute.
// Ending one (by the user, or the admin) ends every token of it on every
// replica and leaves the others; logout and a password change take
// sessions off the list. On main there were no sessions (404).
func TestSessionsListAndEnd(t *testing.T) {
	tn := newTenant(t)
	a, b := tn.replica(), tn.replica()
	id, _ := tn.register(a, "sessuser", "13600000041", "secret1")
	phone := expect(t, a.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "sessuser", "password": "secret1"},
		"User-Agent: ExampleApp/2.1 (iPhone)"), http.StatusOK).obj(t)["access_token"].(string)
	laptop := expect(t, b.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "sessuser", "password": "secret1"},
		"User-Agent: Laptop \xff\xfe/"+strings.Repeat("é", 300)), http.StatusOK).obj(t)["access_token"].(string)

	list := mySessions(t, a, phone)
	if len(list) != 3 { // registration, and two logins
		t.Fatalf("%d sessions after registering and two logins: %v", len(list), list)
	}
	byUA := map[string]map[string]any{}
	for _, s := range list {
		byUA[s["user_agent"].(string)] = s
		if s["api"] != "v2" || s["address"] != "127.0.0.1" || s["started_at"] != "2026-03-01 08:00:00" {
			t.Fatalf("session: %v", s)
		}
	}
	// A User-Agent that is not UTF-8 is kept mended, cut at 512 bytes on a character boundary.
	if s := byUA["Laptop \ufffd/"+strings.Repeat("é", 250)]; s == nil {
		t.Fatalf("the laptop's User-Agent: %v", list)
	}
	mine := byUA["ExampleApp/2.1 (iPhone)"]
	if mine == nil || mine["current"] != true || mine["method"] != "password" {
		t.Fatalf("the phone's session: %v in %v", mine, list)
	}
	methods := map[any]int{}
	for _, s := range list {
		methods[s["method"]]++
	}
	if methods["register"] != 1 || methods["password"] != 2 {
		t.Fatalf("methods: %v", methods)
	}

	// A refresh stays in its session; a use after a minute moves last_used_at, one within it does not.
	phone = refreshed(t, a, phone)
	tn.clock.Add(90 * time.Second)
	expect(t, b.call("GET", "/api/v2/user", phone, nil), http.StatusOK)
	tn.clock.Add(30 * time.Second)
	expect(t, a.call("GET", "/api/v2/user", phone, nil), http.StatusOK)
	for _, s := range mySessions(t, a, phone) {
		if s["id"] == mine["id"] && s["last_used_at"] != "2026-03-01 08:01:30" {
			t.Fatalf("last use of the phone's session: %v", s)
		}
	}

	// The phone ends the laptop's session; the laptop is out on every replica.
	laptopID := currentSession(t, b, laptop)
	expect(t, a.call("DELETE", "/api/v2/user/sessions/"+laptopID, phone, nil), http.StatusNoContent)
	for _, rp := range []*replica{a, b} {
		expect(t, rp.call("GET", "/api/v2/user", laptop, nil), http.StatusUnauthorized)
		expect(t, rp.call("POST", "/api/v2/auth/refresh", laptop, nil), http.StatusUnauthorized)
	}
	expect(t, a.call("DELETE", "/api/v2/user/sessions/"+laptopID, phone, nil), http.StatusNotFound)
	if got := mySessions(t, b, phone); len(got) != 2 {
		t.Fatalf("sessions after ending one: %v", got)
	}

	// Another user can neither see nor end them.
	_, stranger := tn.quickUser(a, "stranger")
	expect(t, a.call("DELETE", "/api/v2/user/sessions/"+mine["id"].(string), stranger, nil), http.StatusNotFound)
	expect(t, a.call("GET", "/api/v2/user", phone, nil), http.StatusOK)

	// The admin sees the same sessions and ends one.
	admin := expect(t, b.call("GET", fmt.Sprintf("/userve/v1/users/%d/sessions/", id), adminToken, nil), http.StatusOK).obj(t)
	objects := admin["objects"].([]any)
	if len(objects) != 2 || admin["meta"].(map[string]any)["total_count"] != float64(2) {
		t.Fatalf("admin list: %v", admin)
	}
	first := objects[0].(map[string]any)
	if first["started_at"] != float64(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC).Unix()) || first["user_agent"] == nil {
		t.Fatalf("admin session object: %v", first)
	}
	expect(t, a.call("DELETE", fmt.Sprintf("/userve/v1/users/%d/sessions/%s/", id, mine["id"]), adminToken, nil), http.StatusNoContent)
	expect(t, b.call("GET", "/api/v2/user", phone, nil), http.StatusUnauthorized)
	expect(t, a.call("DELETE", fmt.Sprintf("/userve/v1/users/%d/sessions/%s/", id+1000, mine["id"]), adminToken, nil), http.StatusNotFound)

	// Logout takes its session off the list; a password change takes all.
	t1 := login(t, a, "sessuser", "secret1")
	t2 := login(t, a, "sessuser", "secret1")
	expect(t, a.call("POST", "/api/v2/auth/logout", t1, nil), http.StatusOK)
	for _, s := range mySessions(t, a, t2) {
		if s["current"] != true && s["method"] == "password" {
			t.Fatalf("a logged-out session is listed: %v", s)
		}
	}
	expect(t, a.call("PUT", "/api/v2/user/password", t2, map[string]any{"old_password": "secret1", "password": "secret2", "password_confirmation": "secret2"}), http.StatusNoContent)
	t3 := login(t, b, "sessuser", "secret2")
	if got := mySessions(t, b, t3); len(got) != 1 || got[0]["current"] != true {
		t.Fatalf("sessions after a password change: %v", got)
	}

	// The admin ends every session at once.
	t4 := login(t, a, "sessuser", "secret2")
	expect(t, a.call("DELETE", fmt.Sprintf("/userve/v1/users/%d/sessions/", id), adminToken, nil), http.StatusNoContent)
	for _, tok := range []string{t3, t4} {
		expect(t, b.call("GET", "/api/v2/user", tok, nil), http.StatusUnauthorized)
	}
}

// 30 requests with a session's token (reads and refreshes) race its end
// on another replica: each is answered 200 or 401, never an error; once
// the end has answered, every token of the session, the ones refreshed
// during the race included, is refused on both replicas.
func TestSessionEndRacesRequests(t *testing.T) {
	tn := newTenant(t)
	a, b := tn.replica(), tn.replica()
	tn.quickUser(a, "racer")
	_, keeper := tn.quickUser(a, "keeper")
	token := login(t, a, "racer", "secret-racer")
	victim := currentSession(t, a, token)
	keep := login(t, a, "racer", "secret-racer")

	const n = 30
	rs := burst(n+1, func(i int) resp {
		switch {
		case i == n:
			return b.call("DELETE", "/api/v2/user/sessions/"+victim, keep, nil)
		case i%3 == 0:
			return a.call("POST", "/api/v2/auth/refresh", token, nil)
		default:
			return []*replica{a, b}[i%2].call("GET", "/api/v2/user", token, nil)
		}
	})
	tokens := []string{token}
	reused := false // a refresh refused: the token was presented twice, which ends the session
	for i, r := range rs[:n] {
		switch r.status {
		case http.StatusOK:
			if i%3 == 0 {
				tokens = append(tokens, r.obj(t)["access_token"].(string))
			}
		case http.StatusUnauthorized:
			reused = reused || i%3 == 0
		default:
			t.Fatalf("request %d racing the end: %d %s", i, r.status, r.body)
		}
	}
	// The end answers 204, or 404 when the reuse of a refreshed token ended
	// the session before it.
	if rs[n].status != http.StatusNoContent && !(reused && rs[n].status == http.StatusNotFound) {
		t.Fatalf("ending the session: %d %s", rs[n].status, rs[n].body)
	}
	after := burst(n, func(i int) resp {
		return []*replica{a, b}[i%2].call("GET", "/api/v2/user", tokens[i%len(tokens)], nil)
	})
	for i, r := range after {
		if r.status != http.StatusUnauthorized {
			t.Fatalf("request %d after the end answered: %d %s", i, r.status, r.body)
		}
	}
	expect(t, a.call("GET", "/api/v2/user", keep, nil), http.StatusOK)
	expect(t, a.call("GET", "/api/v2/user", keeper, nil), http.StatusOK)
}
