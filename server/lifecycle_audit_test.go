package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// Bans and unbans are admin actions: each leaves an audit entry with the
// user and the profile fields it changed; ending sessions leaves one too.
// Reading sessions or the login history does not.
func TestBansAndSessionEndsAreAudited(t *testing.T) {
	e := newEnv(t)
	a := e.createUser(map[string]any{"nickname": "ann"})
	e.do("PUT", fmt.Sprintf("/userve/v1/users/%d/ban/", a), map[string]any{"reason": "spam"}).want(t, http.StatusOK)
	e.do("DELETE", fmt.Sprintf("/userve/v1/users/%d/ban/", a), nil).want(t, http.StatusOK)
	e.do("GET", fmt.Sprintf("/userve/v1/users/%d/sessions/", a), nil).want(t, http.StatusOK)
	e.do("GET", fmt.Sprintf("/userve/v1/users/%d/logins/", a), nil).want(t, http.StatusOK)
	e.do("DELETE", fmt.Sprintf("/userve/v1/users/%d/sessions/", a), nil).want(t, http.StatusNoContent)

	entries := e.auditEntries("limit=10") // newest first
	if len(entries) != 4 {
		t.Fatalf("%d audit entries, want 4 (create, ban, unban, end sessions): %v", len(entries), entries)
	}
	want := []string{"endUserSessions", "unbanUser", "banUser"}
	for i, action := range want {
		if entries[i]["action"] != action || fmt.Sprint(entries[i]["user_ids"]) != fmt.Sprintf("[%d]", a) || entries[i]["state"] != "done" {
			t.Fatalf("entry %d: %v, want %s of user %d", i, entries[i], action, a)
		}
	}
	banned := fmt.Sprint(entries[2]["changes"])
	if !strings.Contains(banned, "after:true before:false field:_banned") || !strings.Contains(banned, "after:spam before:<nil> field:_ban_reason") {
		t.Fatalf("ban changes: %s", banned)
	}
	if lifted := fmt.Sprint(entries[1]["changes"]); !strings.Contains(lifted, "after:false before:true field:_banned") {
		t.Fatalf("unban changes: %s", lifted)
	}
}
