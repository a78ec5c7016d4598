package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// The console speaks the browser's language (Accept-Language) until the
// switch picks one; the switch returns only to console pages.
func TestConsoleSpeaksChinese(t *testing.T) {
	e := newEnv(t)
	c := e.browser()
	zh := e.get(c, "/login", "Accept-Language: zh-CN,zh;q=0.9,en;q=0.5").want(t, http.StatusOK)
	if !strings.Contains(zh.body, `<html lang="zh-CN">`) || !strings.Contains(zh.body, "管理员令牌") {
		t.Fatalf("login page for zh-CN: %.600s", zh.body)
	}
	sw := e.get(c, "/lang?set=en&next="+url.QueryEscape("/userve/console/login"), "Accept-Language: zh-CN").want(t, http.StatusSeeOther)
	if sw.header.Get("Location") != "/userve/console/login" || !strings.Contains(sw.header.Get("Set-Cookie"), "userve_console_lang=en") {
		t.Fatalf("switch: %v", sw.header)
	}
	if en := e.get(c, "/login", "Accept-Language: zh-CN").want(t, http.StatusOK); !strings.Contains(en.body, "Admin token") {
		t.Fatalf("after switching to English: %.600s", en.body)
	}
	if away := e.get(c, "/lang?set=zh&next="+url.QueryEscape("https://evil.example/")).want(t, http.StatusSeeOther); away.header.Get("Location") != "/userve/console/users/" {
		t.Fatalf("the switch sent the browser to %q", away.header.Get("Location"))
	}
	// The pages are signed in per prefix: /oserve/ has its own console.
	e.signIn(c, adminToken)
	if users := e.get(c, "/users/").want(t, http.StatusOK); !strings.Contains(users.body, "共 0 个用户") {
		t.Fatalf("users page in Chinese: %.2000s", users.body)
	}
	missing := e.get(c, "/no-such-page").want(t, http.StatusNotFound)
	if !strings.Contains(missing.body, "页面不存在") || missing.header.Get("Content-Security-Policy") == "" {
		t.Fatalf("a missing page: %.500s", missing.body)
	}
}

// spec.api.console.enabled: false turns the console off, and so does
// turning the management API off; /oserve/ serves it like /userve/.
func TestConsoleCanBeTurnedOff(t *testing.T) {
	on := newEnv(t)
	res, err := http.Get(on.srv.URL + "/oserve/console/login")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("/oserve/console/login: %v %v", res, err)
	}
	res.Body.Close()
	off := consoleSpec()
	off.API.Console.Enabled = new(false)
	noAPI := consoleSpec()
	noAPI.API.MinApp.Enabled = new(false)
	for name, spec := range map[string]func() *env{"console off": func() *env { return newEnvWith(t, off) }, "minapp off": func() *env { return newEnvWith(t, noAPI) }} {
		e := spec()
		res, err := http.Get(e.console + "/login")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: /userve/console/login answers %d", name, res.StatusCode)
		}
	}
}

// The audit log page shows the API's log with its filters, newest first;
// a malformed filter names itself.
func TestConsoleAuditPage(t *testing.T) {
	e := newEnv(t)
	id, _ := e.user("annie", nil)
	other := e.browser()
	e.signIn(other, otherToken)
	c := e.browser()
	csrf := e.signIn(c, adminToken)
	e.post(c, fmt.Sprintf("/users/%d/ban", id), url.Values{"csrf": {csrf}, "reason": {"spam"}}).want(t, http.StatusSeeOther)
	e.post(c, fmt.Sprintf("/users/%d/unban", id), url.Values{"csrf": {csrf}}).want(t, http.StatusSeeOther)
	rows := func(q string) string {
		body := e.get(c, "/audit/?"+q).want(t, http.StatusOK).body
		var actions []string
		for _, m := range auditRow.FindAllStringSubmatch(body, -1) {
			actions = append(actions, m[1]+"/"+m[2])
		}
		return strings.Join(actions, " ")
	}
	today := e.clock.Now().Format("2006-01-02")
	for q, want := range map[string]string{
		"":                               "alice/unbanUser alice/banUser alice/consoleLogin admin-1/consoleLogin",
		"admin=alice&action=banUser":     "alice/banUser",
		fmt.Sprintf("user_id=%d", id):    "alice/unbanUser alice/banUser",
		"admin=admin-1":                  "admin-1/consoleLogin",
		"from=" + today + "&to=" + today: "alice/unbanUser alice/banUser alice/consoleLogin admin-1/consoleLogin",
		"to=2000-01-01":                  "",
	} {
		if got := rows(q); got != want {
			t.Errorf("audit/?%s: %q, want %q", q, got, want)
		}
	}
	if p := e.get(c, "/audit/?user_id=x").want(t, http.StatusBadRequest); !strings.Contains(p.body, `is not a whole number`) {
		t.Fatalf("a malformed filter: %.300s", p.body)
	}
}

var auditRow = regexp.MustCompile(`<tr>\s*<td>[^<]*</td><td>([^<]*)</td><td>console</td><td>([^<]*)</td>`)
