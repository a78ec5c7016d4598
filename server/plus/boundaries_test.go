package plus_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/server/wechat/wechattest"
	"userve.dev/userve/test/syncbuf"
)

// Issue 21, section 2: accounts cannot be locked out from one address,
// brute-forced from many, or enumerated, and costly anonymous calls are
// bounded. Every limit is tried with a parallel burst.

// behindProxy makes the test server's peer a trusted proxy, so that each
// request's X-Forwarded-For is its client address.
func behindProxy(tn *tenant) { tn.spec.API.Plus.TrustedProxies = []string{"127.0.0.0/8"} }

func from(addr string) string { return "X-Forwarded-For: " + addr }

// One attacker address sends 36 parallel wrong passwords and wrong codes at
// an account (by name, e-mail and phone): at most 5 are judged, and the
// owner from another address still logs in, by password and by code.
// (Before: the account's budget was the same for every address, so the
// owner got 429 everywhere for 15 minutes.)
func TestOneAddressCannotLockTheOwnerOut(t *testing.T) {
	tn := newTenant(t)
	behindProxy(tn)
	rp := tn.replica()
	const phone = "13500000101"
	tn.accountWithThreeNames(rp, "owner", "owner@example.com", phone, "right-password")
	logins := []string{"owner", "owner@example.com", phone}
	const n = 36
	rs := burst(n, func(i int) resp {
		body := map[string]any{"login": logins[i%3], "password": fmt.Sprintf("wrong-%02d", i)}
		if i%2 == 1 {
			body = map[string]any{"login": phone, "verifiable_code": fmt.Sprintf("%06d", i)}
		}
		return rp.call("POST", "/api/v2/auth/login", "", body, from("198.51.100.66"))
	})
	got := statuses(rs)
	t.Logf("%d parallel wrong logins from one address: %d judged (422), %d refused (429)", n, got[422], got[429])
	if got[422] != 5 || got[429] != n-5 {
		t.Fatalf("statuses %v: want 5 judged and the rest 429", got)
	}
	for _, r := range rs {
		if r.status == http.StatusTooManyRequests && (r.header.Get("Retry-After") == "" ||
			!strings.Contains(r.obj(t)["message"].(string), "this account from this address")) {
			t.Fatalf("429 = %s (Retry-After %q)", r.body, r.header.Get("Retry-After"))
		}
	}
	// The attacker's address stays locked out of the account, even with the
	// right password.
	expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "owner", "password": "right-password"}, from("198.51.100.66")), http.StatusTooManyRequests)

	// The owner, elsewhere: password, then a code.
	expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "owner", "password": "right-password"}, from("203.0.113.5")), http.StatusOK)
	expect(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": phone}, from("203.0.113.5")), http.StatusAccepted)
	code := tn.outbox.code(t, phone)
	expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": phone, "verifiable_code": code}, from("203.0.113.6")), http.StatusOK)
}

// Many addresses together: 40 parallel wrong passwords, each from its own
// address, are judged 25 times (the account's ceiling), and then the
// account waits, from a fresh address too. (Before: 5 were judged; the
// point here is that per-address counting opens no brute force.)
func TestManyAddressesShareTheAccountCeiling(t *testing.T) {
	tn := newTenant(t)
	behindProxy(tn)
	rp := tn.replica()
	tn.accountWithThreeNames(rp, "popular", "popular@example.com", "13500000102", "right-password")
	const n = 40
	rs := burst(n, func(i int) resp {
		return rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "popular", "password": fmt.Sprintf("wrong-%02d", i)},
			from(fmt.Sprintf("198.51.100.%d", i+1)))
	})
	got := statuses(rs)
	t.Logf("%d parallel wrong passwords from %d addresses: %d judged (422), %d refused (429)", n, n, got[422], got[429])
	if got[422] != 25 || got[429] != n-25 {
		t.Fatalf("statuses %v: want 25 judged (the account's ceiling) and the rest 429", got)
	}
	r := expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "popular", "password": "right-password"}, from("203.0.113.9")), http.StatusTooManyRequests)
	if msg := r.obj(t)["message"].(string); !strings.Contains(msg, "for this account") || strings.Contains(msg, "from this address") {
		t.Fatalf("429 = %s", r.body)
	}
	tn.clock.Add(15 * time.Minute)
	expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "popular", "password": "right-password"}, from("203.0.113.9")), http.StatusOK)
}

// The caller's own password checks share the per-address budget with
// logins: a stolen token's holder guessing old passwords from one address
// leaves the owner's logins from another address alone.
func TestWrongOldPasswordsLockOnlyTheirAddress(t *testing.T) {
	tn := newTenant(t)
	behindProxy(tn)
	rp := tn.replica()
	_, token := tn.quickUser(rp, "holder")
	const n = 30
	rs := burst(n, func(i int) resp {
		return rp.call("PUT", "/api/v2/user/password", token, map[string]any{
			"old_password": fmt.Sprintf("wrong-%02d", i), "password": "new-secret", "password_confirmation": "new-secret"}, from("198.51.100.7"))
	})
	if got := statuses(rs); got[422] != 5 || got[429] != n-5 {
		t.Fatalf("statuses %v: want 5 judged and the rest 429", got)
	}
	expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "holder", "password": "secret-holder"}, from("198.51.100.7")), http.StatusTooManyRequests)
	expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "holder", "password": "secret-holder"}, from("203.0.113.7")), http.StatusOK)
}

// Password retrieval: a wrong code answers alike whether or not anybody has
// the phone or e-mail, and the tries count against the address's failure
// budget: 60 parallel tries from one address, at most 50 judged. (Before:
// "no user has this phone" before any code check, and no limit at all for
// unknown contacts.)
func TestRetrievePasswordIsNoOracleAndCountsPerAddress(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	tn.accountWithThreeNames(rp, "known", "known@example.com", "13500000103", "right-password")
	retrieve := func(field, value string) resp {
		vtype := map[string]string{"phone": "sms", "email": "mail"}[field]
		return rp.call("PUT", "/api/v2/user/retrieve-password", "", map[string]any{
			"verifiable_type": vtype, field: value, "verifiable_code": "123456", "password": "new-secret"})
	}
	for _, pair := range [][3]string{{"phone", "13500000103", "13500000999"}, {"email", "known@example.com", "unknown@example.com"}} {
		known, unknown := retrieve(pair[0], pair[1]), retrieve(pair[0], pair[2])
		if known.status != unknown.status || string(known.body) != string(unknown.body) {
			t.Fatalf("a wrong code tells contacts apart: known %s %d %s, unknown %s %d %s",
				pair[1], known.status, known.body, pair[2], unknown.status, unknown.body)
		}
		expectInvalid(t, known, "verifiable_code")
	}
	tn.clock.Add(15 * time.Minute)
	const n = 60
	rs := burst(n, func(i int) resp { return retrieve("phone", fmt.Sprintf("135000%05d", i)) })
	got := statuses(rs)
	t.Logf("%d parallel password retrievals from one address: %d judged (422), %d refused (429)", n, got[422], got[429])
	if got[422] != 50 || got[429] != n-50 {
		t.Fatalf("statuses %v: want 50 judged and the rest 429", got)
	}
	for _, r := range rs {
		if r.status == http.StatusTooManyRequests && r.header.Get("Retry-After") == "" {
			t.Fatalf("429 without Retry-After: %s", r.body)
		}
	}
}

// GET /users/{user} by phone or e-mail: an anonymous caller gets the same
// 401 whether or not the contact is registered (and so do the followers
// and followings routes); a signed-in caller gets answers, 30 an hour.
// Lookups by id and name are not counted. (Before: 200 or 404 for anyone,
// without limit.)
func TestLookupsByContact(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	owner := tn.accountWithThreeNames(rp, "looked_up", "looked@example.com", "13500000104", "right-password")
	_, token := tn.quickUser(rp, "looker")

	var first resp
	for i, path := range []string{
		"/api/v2/users/13500000104", "/api/v2/users/13500000999", "/api/v2/users/looked@example.com",
		"/api/v2/users/nobody@example.com", "/api/v2/users/+8613500000104", "/api/v2/users/13500000104/followers",
		"/api/v2/users/nobody@example.com/followings",
	} {
		r := expect(t, rp.call("GET", path, "", nil), http.StatusUnauthorized)
		if i == 0 {
			first = r
		} else if string(r.body) != string(first.body) {
			t.Fatalf("anonymous %s answers %s, but %s", path, r.body, first.body)
		}
	}
	// An id stays public (it says nothing about phones), and so does a name.
	expect(t, rp.call("GET", fmt.Sprintf("/api/v2/users/%d", owner.ID), "", nil), http.StatusOK)
	expect(t, rp.call("GET", "/api/v2/users/looked_up", "", nil), http.StatusOK)

	const n = 40
	rs := burst(n, func(i int) resp {
		ident := []string{"13500000104", "looked@example.com", fmt.Sprintf("1350000%04d", 2000+i), fmt.Sprintf("n%d@example.com", i)}[i%4]
		return rp.call("GET", "/api/v2/users/"+ident, token, nil)
	})
	got := statuses(rs)
	t.Logf("%d parallel lookups by phone or e-mail by one caller: %d found, %d not found, %d refused (429)", n, got[200], got[404], got[429])
	if got[200]+got[404] != 30 || got[429] != n-30 {
		t.Fatalf("statuses %v: want 30 answered and the rest 429", got)
	}
	for _, r := range rs {
		if r.status == http.StatusTooManyRequests && r.header.Get("Retry-After") == "" {
			t.Fatalf("429 without Retry-After: %s", r.body)
		}
	}
	expect(t, rp.call("GET", fmt.Sprintf("/api/v2/users/%d", owner.ID), token, nil), http.StatusOK)
	expect(t, rp.call("GET", "/api/v2/users/looked_up", token, nil), http.StatusOK)
	tn.clock.Add(time.Hour)
	token = expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "looker", "password": "secret-looker"}), http.StatusOK).obj(t)["access_token"].(string)
	expect(t, rp.call("GET", "/api/v2/users/looked@example.com", token, nil), http.StatusOK)
}

// The access log records paths without the phones and e-mails in them.
// (Before: GET /api/v2/users/13500000105 was logged as it came.)
func TestAccessLogHasNoContacts(t *testing.T) {
	tn := newTenant(t)
	log := &syncbuf.Buffer{}
	tn.logOut = log
	rp := tn.replica()
	tn.accountWithThreeNames(rp, "logged", "logged@example.com", "13500000105", "right-password")
	_, token := tn.quickUser(rp, "reader")
	expect(t, rp.call("GET", "/api/v2/users/13500000105", token, nil), http.StatusOK)
	expect(t, rp.call("GET", "/api/v2/users/logged@example.com/followers", token, nil), http.StatusOK)
	rp.call("GET", "/api/v2/users/13500000105", "", nil) // logged whatever it answers
	expect(t, rp.call("GET", "/api/v2/no-such/someone@example.com", "", nil), http.StatusNotFound)
	out := log.String()
	for _, secret := range []string{"13500000105", "logged@example.com", "someone@example.com"} {
		if strings.Contains(out, secret) {
			t.Fatalf("the log shows %s:\n%s", secret, out)
		}
	}
	if strings.Count(out, "{contact}") < 4 {
		t.Fatalf("the access log does not record the redacted paths:\n%s", out)
	}
}

// 60 parallel bogus wx.login codes from one address reach WeChat at most 50
// times (the address's failure budget, taken before WeChat is asked); a
// real code from another address still logs in. (Before: every code was
// sent to WeChat, spending the app's quota.)
func TestWeChatLoginFloodIsBoundedBeforeWeChat(t *testing.T) {
	tn, fake := weChatTenant(t, true)
	behindProxy(tn)
	rp := tn.replica()
	const n = 60
	rs := burst(n, func(i int) resp {
		return rp.call("POST", "/api/v2/auth/wechat", "", map[string]any{"code": fmt.Sprintf("bogus-%02d", i)}, from("198.51.100.8"))
	})
	got := statuses(rs)
	calls := fake.Calls(wechattest.OpSession)
	t.Logf("%d parallel bogus WeChat codes from one address: %d reached WeChat, statuses %v", n, calls, got)
	if calls > 50 || got[429] < n-50 || got[422]+got[429] != n {
		t.Fatalf("%d calls reached WeChat, statuses %v: want at most 50, the rest 429", calls, got)
	}
	expect(t, rp.call("POST", "/api/v2/auth/wechat", "", map[string]any{"code": fake.Login("o-real", "")}, from("198.51.100.8")), http.StatusTooManyRequests)
	r := rp.call("POST", "/api/v2/auth/wechat", "", map[string]any{"code": fake.Login("o-real", "")}, from("203.0.113.8"))
	if r.status != http.StatusCreated {
		t.Fatalf("a real code from another address: %d %s", r.status, r.body)
	}
}

// Substring searches by name: 30 a minute per address (40 parallel, the
// rest 429); exact names and ids are not counted. (Before: unbounded.)
func TestNameSearchesAreBoundedPerAddress(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	tn.quickUser(rp, "searched")
	const n = 40
	rs := burst(n, func(i int) resp { return rp.call("GET", "/api/v2/users?name=ear", "", nil) })
	got := statuses(rs)
	t.Logf("%d parallel name searches from one address: %d answered, %d refused (429)", n, got[200], got[429])
	if got[200] != 30 || got[429] != n-30 {
		t.Fatalf("statuses %v: want 30 answered and the rest 429", got)
	}
	expect(t, rp.call("GET", "/api/v2/users?fetch_by=username&name=searched", "", nil), http.StatusOK)
	tn.clock.Add(time.Minute)
	expect(t, rp.call("GET", "/api/v2/users?name=ear", "", nil), http.StatusOK)
}

// Deep offsets are refused: the store walks every skipped row. (Before:
// up to 1,000,000.)
func TestDeepOffsetsAreRefused(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	id, token := tn.quickUser(rp, "pager")
	for _, path := range []string{fmt.Sprintf("/api/v2/users/%d/followers", id), "/api/v2/user/followings", "/api/v2/plus-pay/orders"} {
		expect(t, rp.call("GET", path+"?offset=10000", token, nil), http.StatusOK)
		expectInvalid(t, rp.call("GET", path+"?offset=10001", token, nil), "offset")
	}
}
