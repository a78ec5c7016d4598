package plus_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The admin's login history of a user keeps every attempt on the account
// (wrong password, success, wrong code, banned), newest first with its
// method and address, for spec.api.plus.loginHistory and no longer: the
// expiry is compared in code. On main there was no history (404).
func TestLoginHistory(t *testing.T) {
	tn := newTenant(t)
	tn.spec.API.Plus.LoginHistory = &metav1.Duration{Duration: time.Hour}
	rp := tn.replica()
	id, _ := tn.register(rp, "histuser", "13600000061", "secret1")
	history := func() []map[string]any {
		t.Helper()
		var out []map[string]any
		for _, o := range expect(t, rp.call("GET", fmt.Sprintf("/userve/v1/users/%d/logins/", id), adminToken, nil), http.StatusOK).obj(t)["objects"].([]any) {
			out = append(out, o.(map[string]any))
		}
		return out
	}

	tn.clock.Add(time.Minute)
	expectInvalid(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "histuser", "password": "wrong"}), "password")
	tn.clock.Add(time.Minute)
	login(t, rp, "histuser", "secret1")
	tn.clock.Add(time.Minute)
	expectInvalid(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "13600000061", "verifiable_code": "000000"}), "verifiable_code")
	tn.clock.Add(time.Minute)
	ban(t, rp, id, map[string]any{"reason": "audit"})
	expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "histuser", "password": "secret1"}), http.StatusForbidden)

	got := history()
	want := []struct{ method, result string }{
		{"password", "banned"}, {"code", "wrong_code"}, {"password", "ok"}, {"password", "wrong_password"}, {"register", "ok"},
	}
	if len(got) != len(want) {
		t.Fatalf("history: %v", got)
	}
	for i, w := range want {
		if got[i]["method"] != w.method || got[i]["result"] != w.result || got[i]["api"] != "v2" || got[i]["address"] != "127.0.0.1" {
			t.Fatalf("entry %d: %v, want %s %s", i, got[i], w.method, w.result)
		}
	}
	start := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	if got[4]["at"] != float64(start.Unix()) || got[0]["at"] != float64(start.Add(4*time.Minute).Unix()) {
		t.Fatalf("times: %v", got)
	}

	// An hour after registering, that entry is past the retention; the rest follow minute by minute.
	tn.clock.Add(time.Hour - 4*time.Minute)
	if got := history(); len(got) != 4 {
		t.Fatalf("history an hour after the first attempt: %v", got)
	}
	tn.clock.Add(4 * time.Minute)
	if got := history(); len(got) != 0 {
		t.Fatalf("history past the retention: %v", got)
	}
	expect(t, rp.call("GET", "/userve/v1/users/999999/logins/", adminToken, nil), http.StatusNotFound)
}
