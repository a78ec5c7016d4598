package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// The user page's actions, each one management request audited under the
// signed-in admin: a wallet adjustment books once however often its form
// is sent (30 parallel sends of one form: one entry), a debit beyond the
// balance is refused in the API's words, a ban is lifted, every session
// ends (the user's token is refused), a merge moves to the surviving
// user, and a deletion needs the id typed again.
func TestConsoleUserActions(t *testing.T) {
	e := newEnv(t)
	annie, _ := e.user("annie", nil)
	bobby, bobbyToken := e.user("bobby", nil)
	carol, _ := e.user("carol", nil)
	if status, _ := e.call("PUT", fmt.Sprintf("/api/v2/user/followings/%d", annie), "Bearer "+bobbyToken, nil); status != http.StatusNoContent {
		t.Fatalf("follow: %d", status)
	}
	c := e.browser()
	csrf := e.signIn(c, adminToken)
	act := func(user int64, action string, form url.Values) page {
		form.Set("csrf", csrf)
		return e.post(c, fmt.Sprintf("/users/%d/%s", user, action), form)
	}
	overview := func(user int64) map[string]any {
		status, o := e.api("GET", fmt.Sprintf("/userve/v1/users/%d/overview/", user), nil)
		if status != http.StatusOK {
			t.Fatalf("overview: %d %v", status, o)
		}
		return o
	}

	// One form (one Idempotency-Key) sent 30 times at once books once.
	form := url.Values{"account": {"wallet"}, "amount": {"500"}, "title": {"gift"}, "idempotency_key": {"form-key-1"}}
	var wg sync.WaitGroup
	statuses := make([]int, 30)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := url.Values{}
			for k, v := range form {
				f[k] = v
			}
			statuses[i] = act(annie, "wallet", f).status
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusSeeOther {
			t.Fatalf("send %d of the wallet form: %d", i, s)
		}
	}
	if o := overview(annie); fmt.Sprint(o["wallet"]) != "500" || fmt.Sprint(o["followers_count"]) != "1" {
		t.Fatalf("after 30 sends of one form: %v", o)
	}
	refused := act(annie, "wallet", url.Values{"account": {"wallet"}, "amount": {"-501"}, "idempotency_key": {"form-key-2"}})
	if refused.status < 400 || refused.status >= 500 || !strings.Contains(refused.body, `id="error"`) {
		t.Fatalf("a debit beyond the balance: %d %.400s", refused.status, refused.body)
	}
	page := e.get(c, fmt.Sprintf("/users/%d/", annie)).want(t, http.StatusOK).body
	if !strings.Contains(page, "<b>500</b>") || !strings.Contains(page, "1 followers") {
		t.Fatalf("the user page does not show the balance and follows: %.3000s", page)
	}

	act(bobby, "ban", url.Values{"reason": {"spam"}, "expires": {"2099-01-02T03:04"}}).want(t, http.StatusSeeOther)
	if _, p := e.api("GET", fmt.Sprintf("/userve/v2.2/miniapp/user_profile/%d/", bobby), nil); p["_banned"] != true || fmt.Sprint(p["_ban_expires_at"]) != "4071006240" {
		t.Fatalf("ban with an end: %v", p)
	}
	act(bobby, "unban", url.Values{}).want(t, http.StatusSeeOther)
	act(bobby, "end-sessions", url.Values{}).want(t, http.StatusSeeOther)
	if status, _ := e.call("GET", "/api/v2/user", "Bearer "+bobbyToken, nil); status != http.StatusUnauthorized {
		t.Fatalf("a token of an ended session: %d", status)
	}

	if loc := act(carol, "merge", url.Values{"into": {fmt.Sprint(annie)}}).want(t, http.StatusSeeOther).header.Get("Location"); loc != fmt.Sprintf("/userve/console/users/%d/?done=merged", annie) {
		t.Fatalf("after a merge: %q", loc)
	}
	if status, _ := e.api("GET", fmt.Sprintf("/userve/v2.2/miniapp/user_profile/%d/", carol), nil); status != http.StatusNotFound {
		t.Fatalf("the merged user: %d", status)
	}

	act(bobby, "delete", url.Values{"confirm": {"1"}}).want(t, http.StatusBadRequest)
	if status, _ := e.api("GET", fmt.Sprintf("/userve/v2.2/miniapp/user_profile/%d/", bobby), nil); status != http.StatusOK {
		t.Fatalf("an unconfirmed deletion deleted: %d", status)
	}
	act(bobby, "delete", url.Values{"confirm": {fmt.Sprint(bobby)}}).want(t, http.StatusSeeOther)
	if status, _ := e.api("GET", fmt.Sprintf("/userve/v2.2/miniapp/user_profile/%d/", bobby), nil); status != http.StatusNotFound {
		t.Fatalf("a confirmed deletion: %d", status)
	}

	// The same admin through the API: its entry says so.
	if status, _ := e.api("PUT", fmt.Sprintf("/userve/v1/users/%d/ban/", annie), map[string]any{"reason": "api"}); status != http.StatusOK {
		t.Fatalf("ban through the API: %d", status)
	}
	done := map[string]int{}
	for i, a := range e.audit("admin=alice&limit=100") {
		if want := map[bool]string{true: "api", false: "console"}[i == 0]; a["via"] != want {
			t.Errorf("entry %d (%s) via %v, want %s", i, a["action"], a["via"], want)
		}
		if a["state"] == "done" {
			done[fmt.Sprint(a["action"])]++
		}
	}
	for _, action := range []string{"createWalletTransaction", "banUser", "unbanUser", "endUserSessions", "mergeUsers", "deleteProfileV22"} {
		if done[action] == 0 {
			t.Errorf("no audit entry of %s by alice: %v", action, done)
		}
	}
}

// The list's download is the API's export of the users its filters
// select, named as a file, audited under the admin as via the console;
// without the CSRF token it is refused and nothing is exported.
func TestConsoleExportDownload(t *testing.T) {
	e := newEnv(t)
	for _, n := range []string{"annie", "anna", "bobby"} {
		e.user(n, nil)
	}
	c := e.browser()
	csrf := e.signIn(c, adminToken)
	list := e.get(c, "/users/?nickname=ann").want(t, http.StatusOK)
	if !strings.Contains(list.body, `action="/userve/console/users/export?nickname=ann"`) {
		t.Fatalf("the list's export form: %.3000s", list.body)
	}
	e.post(c, "/users/export?nickname=ann", url.Values{}).want(t, http.StatusForbidden)
	if got := e.audit("action=exportUsers"); len(got) != 0 {
		t.Fatalf("a refused export was run: %v", got)
	}
	p := e.post(c, "/users/export?nickname=ann", url.Values{"csrf": {csrf}}).want(t, http.StatusOK)
	if cd := p.header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="users-`) {
		t.Fatalf("Content-Disposition %q", cd)
	}
	lines := strings.Split(strings.TrimSpace(p.body), "\n")
	if len(lines) != 2 || !strings.Contains(p.body, `"annie"`) || !strings.Contains(p.body, `"anna"`) || strings.Contains(p.body, "bobby") {
		t.Fatalf("export of nickname contains ann: %s", p.body)
	}
	got := e.audit("action=exportUsers")
	if len(got) != 1 || got[0]["admin"] != "alice" || got[0]["via"] != "console" || !strings.Contains(fmt.Sprint(got[0]["query"]), "where=") {
		t.Fatalf("audit of the export: %v", got)
	}
	e.post(c, "/users/export?user_id=x", url.Values{"csrf": {csrf}}).want(t, http.StatusBadRequest)
}
