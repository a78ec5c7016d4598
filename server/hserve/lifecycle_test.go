package hserve_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// The SDK dialect shares the ban and the sessions: a banned user's token is
// refused with the reason, and so is every login (password, SMS code,
// WeChat); a wrong password stays a wrong password. Logins here are
// sessions the admin sees (api hserve) and can end. On main there were
// neither bans nor sessions.
func TestBansAndSessionsInTheSDK(t *testing.T) {
	tn := newTenant(t)
	admin := "Authorization: Bearer " + adminToken
	banned := func(r resp) {
		t.Helper()
		expectError(t, r, http.StatusForbidden, "banned: terms of service")
	}
	sendCode := func(phone string) string {
		t.Helper()
		expect(t, tn.sdk("POST", "/hserve/v2.2/sms-verification-code/", "", map[string]any{"phone": phone}), http.StatusOK)
		return tn.code(phone)
	}

	pw, pwToken := tn.register("banned_pw", "secret-pw")
	sms := expect(t, tn.sdk("POST", "/hserve/v2.1/login/sms/", "", map[string]any{"phone": "13900000051", "code": sendCode("13900000051")}), http.StatusCreated).obj(t)
	wx := expect(t, tn.sdk("POST", "/hserve/v2.5/idp/wechat/silent-login/", "", map[string]any{"code": tn.wechat.Login("o-banned", ""), "create_user": true}), http.StatusCreated).obj(t)

	sessions := expect(t, tn.call("GET", fmt.Sprintf("/userve/v1/users/%d/sessions/", pw), nil, admin), http.StatusOK).obj(t)["objects"].([]any)
	if len(sessions) != 1 || sessions[0].(map[string]any)["api"] != "hserve" || sessions[0].(map[string]any)["method"] != "register" {
		t.Fatalf("the SDK registration's session: %v", sessions)
	}

	for _, id := range []any{pw, sms["user_id"], wx["user_id"]} {
		expect(t, tn.call("PUT", fmt.Sprintf("/userve/v1/users/%v/ban/", id), map[string]any{"reason": "terms of service"}, admin), http.StatusOK)
	}
	for _, tok := range []any{pwToken, sms["token"], wx["token"]} {
		banned(tn.sdk("GET", "/hserve/v2.5/user/info/", tok.(string), nil))
	}
	banned(tn.sdk("POST", "/hserve/v2.1/login/username/", "", map[string]any{"username": "banned_pw", "password": "secret-pw"}))
	expectError(t, tn.sdk("POST", "/hserve/v2.1/login/username/", "", map[string]any{"username": "banned_pw", "password": "wrong"}), http.StatusUnauthorized, "wrong")
	tn.clock.Add(61 * time.Second) // the SMS resend interval
	banned(tn.sdk("POST", "/hserve/v2.1/login/sms/", "", map[string]any{"phone": "13900000051", "code": sendCode("13900000051")}))
	banned(tn.sdk("POST", "/hserve/v2.5/idp/wechat/silent-login/", "", map[string]any{"code": tn.wechat.Login("o-banned", "")}))

	// The admin's login history shows the SDK's attempts, newest first.
	logins := expect(t, tn.call("GET", fmt.Sprintf("/userve/v1/users/%d/logins/", pw), nil, admin), http.StatusOK).obj(t)["objects"].([]any)
	var results []string
	for _, l := range logins {
		m := l.(map[string]any)
		if m["api"] != "hserve" {
			t.Fatalf("history entry: %v", m)
		}
		results = append(results, m["method"].(string)+" "+m["result"].(string))
	}
	if fmt.Sprint(results) != "[password wrong_password password banned register ok]" {
		t.Fatalf("SDK login history: %v", results)
	}

	// Unbanned, the password user's SDK session is ended by the admin.
	expect(t, tn.call("DELETE", fmt.Sprintf("/userve/v1/users/%d/ban/", pw), nil, admin), http.StatusOK)
	expect(t, tn.sdk("GET", "/hserve/v2.5/user/info/", pwToken, nil), http.StatusOK)
	sid := sessions[0].(map[string]any)["id"].(string)
	expect(t, tn.call("DELETE", fmt.Sprintf("/userve/v1/users/%d/sessions/%s/", pw, sid), nil, admin), http.StatusNoContent)
	expectError(t, tn.sdk("GET", "/hserve/v2.5/user/info/", pwToken, nil), http.StatusUnauthorized, "login has ended")
}
