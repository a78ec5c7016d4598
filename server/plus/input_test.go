package plus_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// expectUnknown checks the 422 for one unknown name: errors[name] is
// exactly [want] and the message names it.
func expectUnknown(t *testing.T, r resp, name, want string) {
	t.Helper()
	expect(t, r, http.StatusUnprocessableEntity)
	m := r.obj(t)
	errs, _ := m["errors"].(map[string]any)
	got, _ := errs[name].([]any)
	if len(got) != 1 || got[0] != want {
		t.Fatalf("errors[%q] = %v, want [%q]: %s", name, errs[name], want, r.body)
	}
	if msg, _ := m["message"].(string); !strings.Contains(msg, `"`+name+`"`) {
		t.Fatalf("message %q does not name %q", msg, name)
	}
}

// expectNoUnknown checks that a request was not refused for its names:
// any answer but a 5xx, a malformed-input 400/415 or an "unknown" 422.
func expectNoUnknown(t *testing.T, r resp) {
	t.Helper()
	if r.status >= 500 || r.status == http.StatusBadRequest || r.status == http.StatusUnsupportedMediaType {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if r.status == http.StatusUnprocessableEntity {
		errs, _ := r.obj(t)["errors"].(map[string]any)
		for name, msgs := range errs {
			if strings.Contains(fmt.Sprint(msgs), "unknown") {
				t.Fatalf("documented name %q refused as unknown: %s", name, r.body)
			}
		}
	}
}

// Every /api/v2 route refuses a query parameter or body field it does not
// take with a 422 naming it, and still takes every documented one.
func TestUnknownParametersAndFieldsAreRefused(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	aliceID, alice := tn.register(rp, "alice", "13300000001", "secret1")
	bobID, _ := tn.quickUser(rp, "bob_b")
	_, spare := tn.quickUser(rp, "spare") // for logout and refresh
	bobPath := fmt.Sprintf("/users/%d", bobID)
	followBob := fmt.Sprintf("/user/followings/%d", bobID)

	type route struct {
		family, method, path, token string
	}
	routes := []route{
		{"codes", "POST", "/verifycodes/register", ""},
		{"codes", "POST", "/verifycodes", ""},
		{"accounts", "POST", "/users", ""},
		{"accounts", "POST", "/auth/login", ""},
		{"accounts", "POST", "/auth/refresh", spare},
		{"accounts", "POST", "/auth/logout", spare},
		{"accounts", "PUT", "/user/retrieve-password", ""},
		{"users", "GET", "/users", ""},
		{"users", "GET", bobPath, alice},
		{"users", "GET", bobPath + "/followings", ""},
		{"users", "GET", bobPath + "/followers", alice},
		{"self", "GET", "/user", alice},
		{"self", "PATCH", "/user", alice},
		{"self", "PUT", "/user", alice},
		{"self", "PUT", "/user/password", alice},
		{"self", "DELETE", "/user/phone", alice},
		{"self", "DELETE", "/user/email", alice},
		{"follows", "PUT", followBob, alice},
		{"follows", "DELETE", followBob, alice},
		{"follows", "GET", "/user/followings", alice},
		{"follows", "GET", "/user/followers", alice},
		{"wallet", "GET", "/plus-pay/orders", alice},
		{"wallet", "GET", "/currency/orders", alice},
		{"wallet", "POST", "/plus-pay/transfer", alice},
	}
	for _, rt := range routes {
		t.Run(rt.family+" "+rt.method+" "+rt.path, func(t *testing.T) {
			expectUnknown(t, rp.call(rt.method, "/api/v2"+rt.path+"?bogus=1", rt.token, nil), "bogus", "unknown parameter")
			expectUnknown(t, rp.call(rt.method, "/api/v2"+rt.path, rt.token, map[string]any{"bogus": 1}), "bogus", "unknown field")
			expectUnknown(t, rp.call(rt.method, "/api/v2"+rt.path, rt.token, "bogus=1",
				"Content-Type: application/x-www-form-urlencoded"), "bogus", "unknown field")
		})
	}
	// Known names do not excuse an unknown one, and all unknown ones are named.
	r := rp.call("GET", "/api/v2/users?limit=5&lmit=5&sort=id", "", nil)
	expectUnknown(t, r, "lmit", "unknown parameter")
	if errs, _ := r.obj(t)["errors"].(map[string]any); fmt.Sprint(errs["sort"]) != "[unknown parameter]" {
		t.Fatalf("second unknown name not in errors: %s", r.body)
	}
	r = rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "alice", "password": "secret1", "remember": true})
	expectUnknown(t, r, "remember", "unknown field")
	// A malformed query string is a 400, not silently cut short.
	expect(t, rp.call("GET", "/api/v2/users?limit=5&%zz", "", nil), http.StatusBadRequest)

	// Every documented query parameter, all at once, is served.
	for _, path := range []string{
		fmt.Sprintf("/users?limit=5&order=asc&since=1&name=b&fetch_by=id&id=%d,%d", aliceID, bobID),
		"/users?fetch_by=username&name=alice,bob_b",
		fmt.Sprintf("%s?following=%d&follower=%d", bobPath, aliceID, aliceID),
		bobPath + "/followings?limit=5&offset=0",
		bobPath + "/followers?limit=5&offset=1",
		"/user/followings?limit=5&offset=0",
		"/user/followers?limit=5&offset=0",
		"/plus-pay/orders?limit=5&offset=0&after=100&action=income",
		"/currency/orders?limit=5&offset=0&after=100&action=expenses",
	} {
		expect(t, rp.call("GET", "/api/v2"+path, alice, nil), http.StatusOK)
	}

	// Every documented body field is taken (some of these fail on their
	// values or on purpose, never for their names).
	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"email": "carol@example.com"}), http.StatusAccepted)
	expect(t, rp.call("POST", "/api/v2/users", "", map[string]any{
		"name": "carol", "phone": "13300000003", "email": "carol@example.com", "password": "secret1",
		"verifiable_type": "mail", "verifiable_code": tn.outbox.code(t, "carol@example.com"),
	}), http.StatusCreated)
	tn.clock.Add(time.Minute) // alice's registration code was sent just now
	expect(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": "13300000001"}), http.StatusAccepted)
	expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "alice", "password": "secret1", "verifiable_code": "123456"}), http.StatusOK)
	for _, c := range []struct {
		method, path string
		body         map[string]any
	}{
		{"POST", "/verifycodes", map[string]any{"email": "nobody@example.com"}},
		{"PUT", "/user/retrieve-password", map[string]any{"verifiable_type": "sms", "phone": "13300000001", "email": "a@example.com", "verifiable_code": "000000", "password": "secret2"}},
		{"PUT", "/user", map[string]any{"phone": "13300000007", "verifiable_code": "000000"}},
		{"PUT", "/user", map[string]any{"email": "alice@example.com", "verifiable_code": "000000"}},
		{"PUT", "/user/password", map[string]any{"old_password": "wrong1", "password": "secret2", "password_confirmation": "secret2"}},
		{"DELETE", "/user/phone", map[string]any{"password": "wrong1", "verifiable_code": "000000"}},
		{"DELETE", "/user/email", map[string]any{"password": "wrong1", "verifiable_code": "000000"}},
		{"POST", "/plus-pay/transfer", map[string]any{"user": bobID, "amount": 1, "title": "thanks"}},
	} {
		expectNoUnknown(t, rp.call(c.method, "/api/v2"+c.path, alice, c.body))
	}
	expect(t, rp.call("PATCH", "/api/v2/user", alice, map[string]any{
		"name": "alice", "bio": "hi", "sex": 2, "location": "Earth", "avatar": "https://example.com/a.png", "bg": "https://example.com/b.png",
	}), http.StatusNoContent)
	expect(t, rp.call("PUT", "/api/v2"+followBob, alice, nil), http.StatusNoContent)
	// The refused logout and refresh above revoked nothing.
	expect(t, rp.call("POST", "/api/v2/auth/refresh", spare, nil), http.StatusOK)
}
