package hserve_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"userve.dev/userve/server/hserve"
)

// TestSDKWebBuild drives the real minapp-sdk web build (testdata/sdk/web.js)
// against a tenant: a wrong client ID refused, register, login, current
// user, custom-field update, password change, SMS login with a code from
// the tenant's webhook, password reset and e-mail verification with codes
// by mail, anonymous login, logout. Then the same users are
// checked through the other two dialects: one store, three dialects.
func TestSDKWebBuild(t *testing.T) {
	tn := newTenant(t)

	// A user registered through the end-user API logs in through the SDK.
	expect(t, tn.call("POST", "/api/v2/verifycodes/register", map[string]any{"phone": "13900000002"}), http.StatusAccepted)
	code := tn.code("13900000002")
	expect(t, tn.call("POST", "/api/v2/users", map[string]any{"name": "bob_plus", "phone": "13900000002",
		"password": "secret-bob", "verifiable_type": "sms", "verifiable_code": code}), http.StatusCreated)

	var out struct {
		Alice, PlusUser, SMSUser, Anonymous int64
		OldToken, LoggedOutToken            string
	}
	runNode(t, "web.js", map[string]string{
		"HOST": tn.srv.URL, "CLIENT_ID": clientID, "SINK": tn.codeSink(),
		"PLUS_LOGIN": "bob_plus", "PLUS_PASSWORD": "secret-bob",
	}, &out)

	// alice, registered and edited through the SDK, is a user of the
	// management API with her custom field...
	admin := "Authorization: Bearer " + adminToken
	p := expect(t, tn.call("GET", fmt.Sprintf("/userve/v2.0/miniapp/user_profile/%d/", out.Alice), nil, admin), http.StatusOK).obj(t)
	if p["_username"] != "alice_sdk" || p["age"] != float64(31) || p["nickname"] != "Alice" {
		t.Fatalf("management profile of the SDK user: %v", p)
	}
	// ...and logs in on the end-user API with the password set through it.
	expect(t, tn.call("POST", "/api/v2/auth/login", map[string]any{"login": "alice_sdk", "password": "secret-456"}), http.StatusOK)
	expect(t, tn.call("POST", "/api/v2/auth/login", map[string]any{"login": "alice_sdk", "password": "secret-123"}), http.StatusUnprocessableEntity)

	var bob struct{ ID int64 }
	bobLogin := expect(t, tn.call("POST", "/api/v2/auth/login", map[string]any{"login": "bob_plus", "password": "secret-bob"}), http.StatusOK).obj(t)
	me := expect(t, tn.call("GET", "/api/v2/user", nil, "Authorization: Bearer "+bobLogin["access_token"].(string)), http.StatusOK).obj(t)
	bob.ID = int64(me["id"].(float64))
	if out.PlusUser != bob.ID {
		t.Fatalf("the SDK logged bob_plus in as user %d, the end-user API knows him as %d", out.PlusUser, bob.ID)
	}

	sms := expect(t, tn.call("GET", fmt.Sprintf("/userve/v2.0/miniapp/user_profile/%d/", out.SMSUser), nil, admin), http.StatusOK).obj(t)
	if sms["_phone"] != "13800000001" || sms["_phone_verified"] != true {
		t.Fatalf("SMS-login user: %v", sms)
	}

	// Revocation is the tenant's: the logged-out token and the token of
	// before the password change are dead here and on /api/v2.
	for name, token := range map[string]string{"logged out": out.LoggedOutToken, "before the password change": out.OldToken} {
		if token == "" {
			t.Fatalf("no %s token from the script", name)
		}
		expect(t, tn.sdk("GET", "/hserve/v2.5/user/info/", token, nil), http.StatusUnauthorized)
		expect(t, tn.call("GET", "/api/v2/user", nil, "Authorization: Bearer "+token), http.StatusUnauthorized)
	}
}

// The five lines `make dev` prints for a tenant with this dialect log in
// as printed (run against this test's tenant).
func TestDevSnippetLogsIn(t *testing.T) {
	tn := newTenant(t)
	snippet := hserve.DevSnippet(tn.srv.URL, clientID)
	lines := strings.Split(strings.TrimRight(snippet, "\n"), "\n")
	if len(lines) != 6 || !strings.Contains(lines[0], "npm i minapp-sdk@"+sdkVersion) {
		t.Fatalf("snippet is not an install line and five lines of code:\n%s", snippet)
	}
	code := strings.Join(lines[1:], "\n")
	for i := 0; i < 2; i++ { // the second run logs in instead of registering
		out := nodeEval(t, code)
		if !strings.Contains(out, "logged in as user") || !strings.Contains(out, "dev_user") {
			t.Fatalf("run %d of the snippet printed %q", i+1, out)
		}
	}
}
