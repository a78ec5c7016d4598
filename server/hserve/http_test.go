package hserve_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"userve.dev/userve/server/wechat/wechattest"
)

// CORS answers the tenant's allowed origins only, preflights included, and
// never with "*" or credentials; other origins get no
// Access-Control-Allow-Origin at all.
func TestCORS(t *testing.T) {
	tn := newTenant(t)
	const path = "/hserve/v2.1/login/username/"
	pre := tn.call("OPTIONS", path, nil, "Origin: "+allowedOrigin, "Access-Control-Request-Method: POST",
		"Access-Control-Request-Headers: authorization,content-type,x-hydrogen-client-id")
	expect(t, pre, http.StatusNoContent)
	if pre.header.Get("Access-Control-Allow-Origin") != allowedOrigin || pre.header.Get("Access-Control-Allow-Methods") != "POST" ||
		!strings.Contains(pre.header.Get("Access-Control-Allow-Headers"), "X-Hydrogen-Client-ID") ||
		!strings.Contains(pre.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight from an allowed origin: %v", pre.header)
	}
	info := tn.call("OPTIONS", "/hserve/v2.5/user/info/", nil, "Origin: "+allowedOrigin, "Access-Control-Request-Method: PUT")
	if got := expect(t, info, http.StatusNoContent).header.Get("Access-Control-Allow-Methods"); got != "GET, PUT" {
		t.Fatalf("preflight methods of user/info/: %q", got)
	}
	for _, origin := range []string{"https://evil.example", "https://app.acme.test.evil.example", "null", ""} {
		r := tn.call("OPTIONS", path, nil, "Origin: "+origin, "Access-Control-Request-Method: POST")
		expectError(t, r, http.StatusForbidden, "allowedOrigins")
		if v := r.header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Fatalf("preflight from %q answered Access-Control-Allow-Origin %q", origin, v)
		}
	}

	// Actual requests: the allowed origin can read the answer, errors
	// included; another origin cannot.
	_, token := tn.register("cora", "secret-cora")
	ok := tn.sdk("GET", "/hserve/v2.5/user/info/", token, nil, "Origin: "+allowedOrigin)
	expect(t, ok, http.StatusOK)
	denied := tn.call("GET", "/hserve/v2.5/user/info/", nil, "Origin: "+allowedOrigin)
	expectError(t, denied, http.StatusUnauthorized, "X-Hydrogen-Client-ID")
	for _, r := range []resp{ok, denied} {
		if r.header.Get("Access-Control-Allow-Origin") != allowedOrigin || !strings.Contains(r.header.Get("Vary"), "Origin") {
			t.Fatalf("answer to an allowed origin: %v", r.header)
		}
	}
	other := tn.sdk("GET", "/hserve/v2.5/user/info/", token, nil, "Origin: https://evil.example")
	expect(t, other, http.StatusOK)
	for _, r := range []resp{pre, ok, denied, other} {
		if r.header.Get("Access-Control-Allow-Origin") == "*" || r.header.Get("Access-Control-Allow-Credentials") != "" {
			t.Fatalf("wildcard or credentials in CORS headers: %v", r.header)
		}
	}
	if v := other.header.Get("Access-Control-Allow-Origin"); v != "" {
		t.Fatalf("another origin got Access-Control-Allow-Origin %q", v)
	}
}

// Every route needs the tenant's client ID; errors are in the SDK's shape.
func TestClientIDAndErrorShape(t *testing.T) {
	tn := newTenant(t)
	body := map[string]any{"username": "dave", "password": "secret-dave"}
	expectError(t, tn.call("POST", "/hserve/v2.1/register/username/", body), http.StatusUnauthorized, "missing X-Hydrogen-Client-ID")
	expectError(t, tn.call("POST", "/hserve/v2.1/register/username/", body, "X-Hydrogen-Client-ID: "+clientID+"x"),
		http.StatusUnauthorized, "not this service's client ID")
	expectError(t, tn.call("POST", "/hserve/v2.1/register/username/", body, "X-Hydrogen-Client-ID: "+strings.ToUpper(clientID)),
		http.StatusUnauthorized, "not this service's client ID")
	id, token := tn.register("dave", "secret-dave")

	// Precise 400s.
	expectError(t, tn.sdk("POST", "/hserve/v2.1/register/username/", "", map[string]any{"username": "erin", "password": "secret-erin", "admin": true}),
		http.StatusBadRequest, "unknown field admin")
	expectError(t, tn.sdk("POST", "/hserve/v2.1/register/username/", "", map[string]any{"username": "erin", "password": 12345678}),
		http.StatusBadRequest, "password must be a string")
	expectError(t, tn.sdk("POST", "/hserve/v2.1/register/username/", "", map[string]any{"username": "9lives", "password": "secret-9"}),
		http.StatusBadRequest, "may not start with a digit")
	expectError(t, tn.sdk("POST", "/hserve/v2.1/register/email/", "", map[string]any{"email": "not-an-address", "password": "secret-erin"}),
		http.StatusBadRequest, "email is not a valid e-mail address")
	expectError(t, tn.sdk("PUT", "/hserve/v2.5/user/info/", token, map[string]any{"age": "old", "nickname": 3, "shoe": 1}),
		http.StatusBadRequest, `field "shoe" is not declared`)
	expectError(t, tn.sdk("PUT", "/hserve/v2.5/user/info/", token, `{"age": 1`), http.StatusBadRequest, "")

	// Tokens: the Hydrogen-r1 scheme; another user's profile is not served.
	expectError(t, tn.call("GET", "/hserve/v2.5/user/info/", nil, "X-Hydrogen-Client-ID: "+clientID, "Authorization: Bearer "+token),
		http.StatusUnauthorized, "Hydrogen-r1")
	expectError(t, tn.sdk("GET", fmt.Sprintf("/hserve/v2.5/user/info/%d/", id+1), token, nil), http.StatusForbidden, "only their own")
	me := expect(t, tn.sdk("GET", fmt.Sprintf("/hserve/v2.5/user/info/%d/", id), token, nil), http.StatusOK).obj(t)
	if me["_username"] != "dave" || me["age"] != nil || me["_anonymous"] != false || me["_email"] != nil {
		t.Fatalf("user object: %v", me)
	}

	// A token of the end-user API works here: one key, one user.
	plus := expect(t, tn.call("POST", "/api/v2/auth/login", map[string]any{"login": "dave", "password": "secret-dave"}), http.StatusOK).obj(t)
	expect(t, tn.sdk("GET", "/hserve/v2.5/user/info/", plus["access_token"].(string), nil), http.StatusOK)
	expectError(t, tn.sdk("GET", "/hserve/v9/nothing/", token, nil), http.StatusNotFound, "no such route")
}

// Failed logins through the SDK and through /api/v2 spend one budget: 30
// parallel wrong passwords here leave the account locked there too.
func TestOneLimiterForBothDialects(t *testing.T) {
	tn := newTenant(t)
	tn.register("frank", "secret-frank")
	const n = 30
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- tn.sdk("POST", "/hserve/v2.1/login/username/", "", map[string]any{"username": "frank", "password": "wrong-pass"}).status
		}()
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	// The account's budget is 5 failures per window (server/account).
	if counts[http.StatusUnauthorized] != 5 || counts[http.StatusTooManyRequests] != n-5 {
		t.Fatalf("%d parallel wrong passwords: %v, want 5 judged (401) and %d refused (429)", n, counts, n-5)
	}
	r := tn.call("POST", "/api/v2/auth/login", map[string]any{"login": "frank", "password": "secret-frank"})
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("end-user login after the SDK spent the budget: %d %s", r.status, r.body)
	}
	expect(t, tn.sdk("POST", "/hserve/v2.1/login/username/", "", map[string]any{"username": "frank", "password": "secret-frank"}), http.StatusTooManyRequests)
}

// Registration and anonymous login make users without a code: 20 an hour
// per client address, exactly, under 30 parallel requests.
func TestSignupsPerAddress(t *testing.T) {
	tn := newTenant(t)
	const n = 30
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- tn.sdk("POST", "/hserve/v2.0/login/anonymous/", "", nil).status
		}()
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	if counts[http.StatusCreated] != 20 || counts[http.StatusTooManyRequests] != n-20 {
		t.Fatalf("%d parallel anonymous logins: %v, want 20 created and %d refused", n, counts, n-20)
	}
	expectError(t, tn.sdk("POST", "/hserve/v2.1/register/username/", "", map[string]any{"username": "gina", "password": "secret-gina"}),
		http.StatusTooManyRequests, "retry in")
}

// The account: anonymous users have none; a new password needs the old
// one and ends every token; a new name, e-mail or phone needs the password
// or a recent login, and a new contact is unverified.
func TestAccountRules(t *testing.T) {
	tn := newTenant(t)
	anon := expect(t, tn.sdk("POST", "/hserve/v2.0/login/anonymous/", "", nil), http.StatusCreated).obj(t)
	if anon["user_info"].(map[string]any)["_anonymous"] != true {
		t.Fatalf("anonymous session: %v", anon)
	}
	expectError(t, tn.sdk("PUT", "/hserve/v2.2/user/account/", anon["token"].(string), map[string]any{"username": "anon_x"}),
		http.StatusForbidden, "anonymous")

	_, token := tn.register("hank", "secret-hank")
	expectError(t, tn.sdk("PUT", "/hserve/v2.2/user/account/", token, map[string]any{"new_password": "secret-new"}),
		http.StatusBadRequest, "password (the current one) is required")
	u := expect(t, tn.sdk("PUT", "/hserve/v2.2/user/account/", token, map[string]any{"email": "Hank@Example.com"}), http.StatusOK).obj(t)
	if u["_email"] != "hank@example.com" || u["_email_verified"] != false {
		t.Fatalf("new e-mail: %v", u)
	}

	// Past the recent-login window a stolen token alone moves nothing.
	tn.clock.Add(11 * time.Minute)
	expectError(t, tn.sdk("PUT", "/hserve/v2.2/user/account/", token, map[string]any{"phone": "13700000001"}),
		http.StatusForbidden, "current password")
	expectError(t, tn.sdk("PUT", "/hserve/v2.2/user/account/", token, map[string]any{"phone": "13700000001", "password": "wrong-pass"}),
		http.StatusBadRequest, "password (the current one) is wrong")
	u = expect(t, tn.sdk("PUT", "/hserve/v2.2/user/account/", token, map[string]any{"phone": "13700000001", "password": "secret-hank"}), http.StatusOK).obj(t)
	if u["_phone"] != "13700000001" || u["_phone_verified"] != false {
		t.Fatalf("new phone: %v", u)
	}
	// The e-mail the account had is told of the new phone.
	if m := tn.mail.Next(t); len(m.To) != 1 || m.To[0] != "hank@example.com" || strings.Contains(m.Data, "code is ") {
		t.Fatalf("no notice of the phone change to the account's e-mail: %+v", m)
	}

	// A taken name changes nothing, the password included.
	tn.register("ivy_x", "secret-ivy")
	expectError(t, tn.sdk("PUT", "/hserve/v2.2/user/account/", token, map[string]any{"username": "ivy_x", "password": "secret-hank", "new_password": "secret-next"}),
		http.StatusBadRequest, "_username is already taken")
	expect(t, tn.sdk("GET", "/hserve/v2.5/user/info/", token, nil), http.StatusOK)

	// The unverified phone is verified by a code sent to it.
	expect(t, tn.sdk("POST", "/hserve/v2.2/sms-verification-code/", "", map[string]any{"phone": "13700000001"}), http.StatusOK)
	code := tn.code("13700000001")
	expectError(t, tn.sdk("POST", "/hserve/v2.1/sms-phone-verification/", token, map[string]any{"code": "000000"}), http.StatusBadRequest, "wrong")
	expect(t, tn.sdk("POST", "/hserve/v2.1/sms-phone-verification/", token, map[string]any{"code": code}), http.StatusOK)
	if u := expect(t, tn.sdk("GET", "/hserve/v2.5/user/info/", token, nil), http.StatusOK).obj(t); u["_phone_verified"] != true {
		t.Fatalf("after verification: %v", u)
	}

	// A new password ends the caller's token as well.
	expect(t, tn.sdk("PUT", "/hserve/v2.2/user/account/", token, map[string]any{"password": "secret-hank", "new_password": "secret-next"}), http.StatusOK)
	expectError(t, tn.sdk("GET", "/hserve/v2.5/user/info/", token, nil), http.StatusUnauthorized, "password change")
	expect(t, tn.call("POST", "/api/v2/auth/login", map[string]any{"login": "hank", "password": "secret-next"}), http.StatusOK)
}

// SMS login: the code is judged before whether the number has a user is
// told; a number on an account that never verified it is not taken over.
func TestSMSLoginRules(t *testing.T) {
	tn := newTenant(t)
	send := func(phone string) string {
		expect(t, tn.sdk("POST", "/hserve/v2.2/sms-verification-code/", "", map[string]any{"phone": phone}), http.StatusOK)
		return tn.code(phone)
	}
	code := send("13600000001")
	expectError(t, tn.sdk("POST", "/hserve/v2.1/login/sms/", "", map[string]any{"phone": "13600000001", "code": "000000", "create_user": false}),
		http.StatusBadRequest, "wrong")
	expectError(t, tn.sdk("POST", "/hserve/v2.1/login/sms/", "", map[string]any{"phone": "13600000001", "code": code, "create_user": false}),
		http.StatusNotFound, "no user has this phone number")

	// Registered by phone and password: unverified, so SMS login refuses.
	expect(t, tn.sdk("POST", "/hserve/v2.1/register/phone/", "", map[string]any{"phone": "13600000002", "password": "secret-ph"}), http.StatusCreated)
	code = send("13600000002")
	expectError(t, tn.sdk("POST", "/hserve/v2.1/login/sms/", "", map[string]any{"phone": "13600000002", "code": code}),
		http.StatusForbidden, "has not verified it")
	expect(t, tn.sdk("POST", "/hserve/v2.1/login/phone/", "", map[string]any{"phone": "13600000002", "password": "secret-ph"}), http.StatusCreated)

	// A second code within a minute is refused with Retry-After.
	r := tn.sdk("POST", "/hserve/v2.2/sms-verification-code/", "", map[string]any{"phone": "13600000002"})
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("second code within a minute: %d %s", r.status, r.body)
	}

	// verifySmsCode uses the code.
	code = send("13600000003")
	expect(t, tn.sdk("POST", "/hserve/v1.8/sms-verification-code/verify/", "", map[string]any{"phone": "13600000003", "code": code}), http.StatusOK)
	expectError(t, tn.sdk("POST", "/hserve/v1.8/sms-verification-code/verify/", "", map[string]any{"phone": "13600000003", "code": code}),
		http.StatusBadRequest, "used already")
}

// The e-mail flows end with codes: a password reset answers alike for
// unknown addresses and its code works on /api/v2/user/retrieve-password;
// the e-mail verification takes its code on the same route.
func TestEmailFlows(t *testing.T) {
	tn := newTenant(t)
	m := expect(t, tn.sdk("POST", "/hserve/v2.1/register/email/", "", map[string]any{"email": "Eve@Example.com", "password": "secret-eve"}), http.StatusCreated).obj(t)
	token := m["token"].(string)
	if info := m["user_info"].(map[string]any); info["_email"] != "eve@example.com" || info["_email_verified"] != false {
		t.Fatalf("registered by e-mail: %v", info)
	}
	expect(t, tn.sdk("POST", "/hserve/v2.0/user/email-verify/", token, nil), http.StatusOK)
	code := tn.code("eve@example.com")
	expectError(t, tn.sdk("POST", "/hserve/v2.0/user/email-verify/", token, map[string]any{"code": "000000"}), http.StatusBadRequest, "wrong")
	expect(t, tn.sdk("POST", "/hserve/v2.0/user/email-verify/", token, map[string]any{"code": code}), http.StatusOK)
	if u := expect(t, tn.sdk("GET", "/hserve/v2.5/user/info/", token, nil), http.StatusOK).obj(t); u["_email_verified"] != true {
		t.Fatalf("after verification: %v", u)
	}

	// No user has this address: the same answer, and no mail (the next
	// mail is the one to eve). A minute on, eve may have a new code.
	tn.clock.Add(61 * time.Second)
	expect(t, tn.sdk("POST", "/hserve/v2.0/user/password/reset/", "", map[string]any{"email": "nobody@example.com"}), http.StatusOK)
	expect(t, tn.sdk("POST", "/hserve/v2.0/user/password/reset/", "", map[string]any{"email": "eve@example.com"}), http.StatusOK)
	code = tn.code("eve@example.com")
	expect(t, tn.call("PUT", "/api/v2/user/retrieve-password", map[string]any{"verifiable_type": "mail", "email": "eve@example.com",
		"verifiable_code": code, "password": "secret-eve-2"}), http.StatusNoContent)
	expect(t, tn.sdk("POST", "/hserve/v2.1/login/email/", "", map[string]any{"email": "eve@example.com", "password": "secret-eve-2"}), http.StatusCreated)
	expectError(t, tn.sdk("GET", "/hserve/v2.5/user/info/", token, nil), http.StatusUnauthorized, "password change")
}

// The dialect's document is served, public, with the tenant's custom
// fields; every exchange of these tests is checked against it.
func TestServesItsDocument(t *testing.T) {
	tn := newTenant(t)
	r := expect(t, tn.call("GET", "/hserve/openapi.json", nil), http.StatusOK)
	for _, want := range []string{`"/hserve/v2.1/login/username/"`, `"options"`, `"x-userve-custom-field": "integer"`, `"X-Hydrogen-Client-ID"`} {
		if !strings.Contains(string(r.body), want) {
			t.Fatalf("document lacks %s", want)
		}
	}
}

// Anonymous WeChat logins spend the app's WeChat quota, so, as on
// /api/v2/auth/wechat, each one is an attempt of the client address's
// failure budget before WeChat is asked: 60 parallel bogus codes from one
// address reach WeChat at most 50 times, the rest are 429, and the phone
// login is then refused before WeChat too. (Before: all 60 reached it.)
func TestWeChatLoginFloodIsBoundedBeforeWeChat(t *testing.T) {
	tn := newTenant(t)
	const n = 60
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- tn.sdk("POST", "/hserve/v2.5/idp/wechat/silent-login/", "", map[string]any{"code": fmt.Sprintf("bogus-%02d", i)}).status
		}()
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	calls := tn.wechat.Calls(wechattest.OpSession)
	t.Logf("%d parallel bogus silent logins from one address: %d reached WeChat, statuses %v", n, calls, counts)
	if calls > 50 || counts[http.StatusTooManyRequests] < n-50 || counts[http.StatusBadRequest]+counts[http.StatusTooManyRequests] != n {
		t.Fatalf("%d calls reached WeChat, statuses %v: want at most 50, the rest 429", calls, counts)
	}
	phoneCalls := tn.wechat.Calls(wechattest.OpPhone)
	expect(t, tn.sdk("POST", "/hserve/v2.7/idp/wechat/phone-login/", "", map[string]any{"phone_code": "bogus-phone"}), http.StatusTooManyRequests)
	if got := tn.wechat.Calls(wechattest.OpPhone); got != phoneCalls {
		t.Fatalf("a refused phone login reached WeChat (%d calls, was %d)", got, phoneCalls)
	}
}
