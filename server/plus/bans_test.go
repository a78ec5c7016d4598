package plus_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// ban bans user id through the management dialect.
func ban(t *testing.T, rp *replica, id int64, body any) map[string]any {
	t.Helper()
	return expect(t, rp.call("PUT", fmt.Sprintf("/userve/v1/users/%d/ban/", id), adminToken, body), http.StatusOK).obj(t)
}

// expectBanned checks a 403 that tells the reason.
func expectBanned(t *testing.T, r resp, reason string) {
	t.Helper()
	expect(t, r, http.StatusForbidden)
	if msg, _ := r.obj(t)["message"].(string); !strings.Contains(msg, "banned") || !strings.Contains(msg, reason) {
		t.Fatalf("banned answer does not tell the reason %q: %s", reason, r.body)
	}
}

// A ban holds from the request after it, on every replica: 40 parallel
// requests with the user's tokens (three logins, a refreshed one) on
// another replica, sent right after the ban answered, are all refused with
// the reason, and so are refreshes. Unbanning lets the same tokens in
// again. On main there was no ban at all (the route was a 404).
func TestBanRefusesEveryTokenAtOnce(t *testing.T) {
	tn := newTenant(t)
	a, b := tn.replica(), tn.replica()
	id, first := tn.quickUser(a, "banme")
	tokens := []string{first, login(t, a, "banme", "secret-banme"), refreshed(t, a, login(t, b, "banme", "secret-banme"))}
	other, otherToken := tn.quickUser(a, "bystander")
	for _, tok := range tokens {
		expect(t, b.call("GET", "/api/v2/user", tok, nil), http.StatusOK)
	}

	p := ban(t, a, id, map[string]any{"reason": "spam in comments"})
	if p["_banned"] != true || p["_ban_reason"] != "spam in comments" || p["_ban_expires_at"] != nil {
		t.Fatalf("banned profile: %v", p)
	}
	rs := burst(40, func(i int) resp { return b.call("GET", "/api/v2/user", tokens[i%len(tokens)], nil) })
	for _, r := range rs {
		expectBanned(t, r, "spam in comments")
	}
	expectBanned(t, a.call("POST", "/api/v2/auth/refresh", tokens[2], nil), "spam in comments")
	expect(t, b.call("GET", "/api/v2/user", otherToken, nil), http.StatusOK)
	if got := expect(t, b.call("GET", fmt.Sprintf("/userve/v2.2/miniapp/user_profile/%d/", other), adminToken, nil), http.StatusOK).obj(t); got["_banned"] != false {
		t.Fatalf("a user never banned: %v", got)
	}

	p = expect(t, b.call("DELETE", fmt.Sprintf("/userve/v1/users/%d/ban/", id), adminToken, nil), http.StatusOK).obj(t)
	if p["_banned"] != false || p["_ban_reason"] != nil {
		t.Fatalf("unbanned profile: %v", p)
	}
	expect(t, a.call("GET", "/api/v2/user", tokens[0], nil), http.StatusOK)
	// /oserve/ takes the same routes.
	expect(t, a.call("PUT", fmt.Sprintf("/oserve/v1/users/%d/ban/", id), adminToken, map[string]any{"reason": "again"}), http.StatusOK)
	expectBanned(t, b.call("GET", "/api/v2/user", tokens[0], nil), "again")
}

// A banned user's logins are refused with 403 and the reason, by password
// and by code; a wrong password is still a wrong password (the ban is told
// only to whoever proves the account is theirs).
func TestBannedLoginsAreRefused(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	id, _ := tn.register(rp, "banlogin", "13600000031", "secret1")
	ban(t, rp, id, map[string]any{"reason": "chargeback fraud"})
	tn.clock.Add(61 * time.Second) // past the registration code's resend interval

	expectBanned(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "banlogin", "password": "secret1"}), "chargeback fraud")
	expectInvalid(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "banlogin", "password": "wrong"}), "password")
	expect(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": "13600000031"}), http.StatusAccepted)
	code := tn.outbox.code(t, "13600000031")
	expectBanned(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "13600000031", "verifiable_code": code}), "chargeback fraud")
}

// A banned WeChat user's login is refused with 403 and the reason.
func TestBannedWeChatLoginIsRefused(t *testing.T) {
	tn, fake := weChatTenant(t, true)
	rp := tn.replica()
	_, token, created := weChatLogin(t, rp, fake.Login("o-banned", ""))
	if !created {
		t.Fatal("first WeChat login made no user")
	}
	ban(t, rp, meID(t, rp, token), map[string]any{"reason": "bot account"})
	status, _, _ := weChatLogin(t, rp, fake.Login("o-banned", ""))
	if status != http.StatusForbidden {
		t.Fatalf("banned WeChat login: %d", status)
	}
	expectBanned(t, rp.call("POST", "/api/v2/auth/wechat", "", map[string]any{"code": fake.Login("o-banned", "")}), "bot account")
}

// A ban with an expiry lifts itself when the (test) clock passes it: the
// same tokens and logins work again, the profile says so, and the v2.2
// where filter _banned follows the clock. Nothing rewrites the document:
// the expiry is compared in code.
func TestBanExpires(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	id, token := tn.quickUser(rp, "tempban")
	free, _ := tn.quickUser(rp, "notbanned")
	until := tn.clock.Now().Add(10 * time.Minute).Unix()
	p := ban(t, rp, id, map[string]any{"reason": "cooling off", "expires_at": until})
	if p["_ban_expires_at"] != float64(until) {
		t.Fatalf("ban with expiry: %v", p)
	}
	expectBanned(t, rp.call("GET", "/api/v2/user", token, nil), "until")
	listed := func(where string) []int64 {
		var out []int64
		for _, o := range managementList(t, rp, "/userve/v2.2/miniapp/user_profile/?where="+url.QueryEscape(where)) {
			out = append(out, int64(o["user_id"].(float64)))
		}
		return out
	}
	if got := listed(`{"_banned":true}`); len(got) != 1 || got[0] != id {
		t.Fatalf(`_banned true while banned: %v, want [%d]`, got, id)
	}
	if got := listed(`{"_banned":{"$ne":true}}`); len(got) != 1 || got[0] != free {
		t.Fatalf(`_banned $ne true while banned: %v, want [%d]`, got, free)
	}

	tn.clock.Add(10*time.Minute - time.Second)
	expectBanned(t, rp.call("GET", "/api/v2/user", token, nil), "cooling off")
	tn.clock.Add(time.Second)
	expect(t, rp.call("GET", "/api/v2/user", token, nil), http.StatusOK)
	login(t, rp, "tempban", "secret-tempban")
	if got := expect(t, rp.call("GET", fmt.Sprintf("/userve/v2.2/miniapp/user_profile/%d/", id), adminToken, nil), http.StatusOK).obj(t); got["_banned"] != false {
		t.Fatalf("profile after the ban's expiry: %v", got)
	}
	if got := listed(`{"_banned":true}`); len(got) != 0 {
		t.Fatalf(`_banned true after expiry: %v`, got)
	}
	if got := listed(`{"_banned":false}`); len(got) != 2 {
		t.Fatalf(`_banned false after expiry: %v, want both users`, got)
	}
}

// Bad ban requests are 400s naming the problem and change nothing; an
// unknown user is a 404.
func TestBanInput(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	id, token := tn.quickUser(rp, "baninput")
	path := fmt.Sprintf("/userve/v1/users/%d/ban/", id)
	for body, want := range map[string]string{
		`{}`:               "reason is required",
		`{"reason":"   "}`: "reason must be",
		`{"reason":"` + strings.Repeat("x", 501) + `"}`: "reason must be",
		`{"reason":"x","expires_at":1}`:                 "in the future",
		`{"reason":"x","expires_at":"soon"}`:            "expires_at",
		`{"reason":"x","expires_at":1.5}`:               "expires_at",
		`{"reason":"x","until":5}`:                      "until",
		`{"reason":"x","expires_at":400000000000}`:      "too far",
		`[]`: "",
	} {
		r := expect(t, rp.call("PUT", path, adminToken, body), http.StatusBadRequest)
		if msg, _ := r.obj(t)["error_msg"].(string); !strings.Contains(msg, want) {
			t.Fatalf("%s: error_msg %q, want it to name %q", body, msg, want)
		}
	}
	expect(t, rp.call("GET", "/api/v2/user", token, nil), http.StatusOK)
	expect(t, rp.call("PUT", "/userve/v1/users/999999/ban/", adminToken, map[string]any{"reason": "x"}), http.StatusNotFound)
	expect(t, rp.call("DELETE", "/userve/v1/users/999999/ban/", adminToken, nil), http.StatusNotFound)
	expect(t, rp.call("PUT", path, "", map[string]any{"reason": "x"}), http.StatusUnauthorized)
	r := expect(t, rp.call("GET", "/userve/v2.2/miniapp/user_profile/?where="+url.QueryEscape(`{"_banned":{"$gt":true}}`), adminToken, nil), http.StatusBadRequest)
	if !strings.Contains(string(r.body), "$eq or $ne") {
		t.Fatalf("bad _banned operator: %s", r.body)
	}
	expect(t, rp.call("GET", "/userve/v2.2/miniapp/user_profile/?where="+url.QueryEscape(`{"_banned":"yes"}`), adminToken, nil), http.StatusBadRequest)
}
