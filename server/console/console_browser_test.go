package console_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// An admin works through the console in a real browser: signs in, filters
// the user list, edits a custom field (a refused value shows the API's
// message), bans a user, whose end-user token is refused at once, ends
// one of the user's sessions; each action is in the audit log under the
// admin's name. No page breaks its Content-Security-Policy, loads
// anything from another host, or has an unlabelled control.
func TestConsoleInBrowser(t *testing.T) {
	e := newEnv(t)
	annID, _ := e.user("annie", map[string]any{"motto": "hi", "level": int64(3)})
	bobID, bobToken := e.user("bobby", map[string]any{"level": int64(7), "tags": []any{"a"}})
	e.call("POST", "/api/v2/auth/login", "", map[string]any{"login": "bobby", "password": "secret-bobby"}) // a second session
	for i := range 25 {
		e.user(fmt.Sprintf("user%02d", i), nil)
	}

	tb := e.tab(1280, 900)
	tb.open("/login")
	if n := tb.unlabelled(); n != 0 {
		t.Fatalf("login page: %d unlabelled controls", n)
	}
	tb.screenshot("login")
	// By keyboard: the token field has the focus, Enter signs in.
	if focused := value(tb, "focus", chromedp.Evaluate[string](`document.activeElement.id`)); focused != "token" {
		t.Fatalf("the login page focuses %q, not the token field", focused)
	}
	value(tb, "mark", chromedp.Evaluate[bool](`document.body.dataset.left = "1"; true`))
	tb.do("type the token and Enter", chromedp.KeyEvent(adminToken+"\r"),
		chromedp.WaitReady(chromedp.CSS("body:not([data-left])")), chromedp.WaitVisible(chromedp.CSS("#users")))
	if got := tb.text("#total"); !strings.Contains(got, "27 users") || !strings.Contains(got, "showing 1–20") {
		t.Fatalf("unfiltered list: %q", got)
	}
	if n := tb.unlabelled(); n != 0 {
		t.Fatalf("users page: %d unlabelled controls", n)
	}
	tb.screenshot("users")
	tb.submit("#next", "#prev")
	if got := tb.text("#total"); !strings.Contains(got, "showing 21–27") {
		t.Fatalf("second page: %q", got)
	}

	// Filter: nickname contains "b", and a custom integer field.
	tb.open("/users/")
	tb.fill("#nickname", "b")
	tb.fill("#cf_level", "7")
	tb.submit("#apply", "#users")
	if got, rows := tb.text("#total"), tb.text("#users tbody"); !strings.Contains(got, "1 users") || !strings.Contains(rows, "bobby") || strings.Contains(rows, "annie") {
		t.Fatalf("filtered list: %q / %q", got, rows)
	}

	// Edit custom fields: a value the API refuses shows its words, what
	// was typed kept; a fitting one is saved. (The motto input holds at
	// most its declared maxLength.)
	tb.submit(fmt.Sprintf(`#users a[href$="/users/%d/"]`, bobID), "#fields-form")
	if n := tb.unlabelled(); n != 0 {
		t.Fatalf("user page: %d unlabelled controls", n)
	}
	tb.fill("#f_tags", `["a",`)
	tb.submit("#save-fields", "#error")
	if msg, kept := tb.text("#error"), value(tb, "tags", chromedp.Value(chromedp.CSS("#f_tags"))); !strings.Contains(msg, "tags") || kept != `["a",` {
		t.Fatalf("refused field: %q, input now %q", msg, kept)
	}
	tb.fill("#f_tags", `["a","b"]`)
	tb.fill("#f_motto", "carpe diem, and more")
	tb.submit("#save-fields", "#flash")
	if _, p := e.api("GET", fmt.Sprintf("/userve/v2.2/miniapp/user_profile/%d/", bobID), nil); p["motto"] != "carpe diem" || fmt.Sprint(p["tags"]) != "[a b]" || fmt.Sprint(p["level"]) != "7" {
		t.Fatalf("after the edit: %v", p)
	}
	tb.screenshot("user")

	// Ban: the user's token is refused by the end-user API from now on.
	if status, _ := e.call("GET", "/api/v2/user", "Bearer "+bobToken, nil); status != http.StatusOK {
		t.Fatalf("before the ban: %d", status)
	}
	tb.fill("#ban-reason", "spam")
	tb.submit("#ban", "#ban-state")
	if status, body := e.call("GET", "/api/v2/user", "Bearer "+bobToken, nil); status != http.StatusForbidden || !strings.Contains(fmt.Sprint(body["message"]), "spam") {
		t.Fatalf("a banned user's token: %d %v", status, body)
	}

	// End one session of two.
	if n := strings.Count(tb.text("#sessions tbody"), "password"); n != 2 {
		t.Fatalf("sessions before: %d", n)
	}
	tb.submit(".end-session", "#flash")
	if n := strings.Count(tb.text("#sessions tbody"), "password"); n != 1 {
		t.Fatalf("sessions after ending one: %d", n)
	}

	// The user's audit log, one click away, shows them too.
	tb.submit("#user-audit", "#audit")
	if rows := tb.text("#audit tbody"); !strings.Contains(rows, "banUser") || !strings.Contains(rows, "endUserSession") ||
		!strings.Contains(rows, "console") || !strings.Contains(rows, "carpe diem") {
		t.Fatalf("the user's audit log page: %q", rows)
	}
	tb.screenshot("audit")

	// Each action is audited under the admin's name, with the user.
	var got []string
	for _, a := range e.audit("admin=alice&limit=20") {
		users := fmt.Sprint(a["user_ids"])
		if a["state"] != "done" && a["action"] != "updateProfileV22" {
			continue
		}
		got = append(got, fmt.Sprintf("%s%s", a["action"], users))
	}
	want := []string{fmt.Sprintf("endUserSession[%d]", bobID), fmt.Sprintf("banUser[%d]", bobID), fmt.Sprintf("updateProfileV22[%d]", bobID),
		fmt.Sprintf("updateProfileV22[%d]", bobID), "consoleLogin[]"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("audit log:\n got %v\nwant %v", got, want)
	}
	_ = annID

	// On a phone the pages reflow: nothing wider than the screen but the
	// tables, which scroll inside their own box.
	phone := e.tab(390, 844)
	phone.signIn(adminToken)
	for _, path := range []string{"/users/", fmt.Sprintf("/users/%d/", bobID)} {
		phone.open(path)
		if over := value(phone, "overflow", chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`)); over > 0 {
			wide := value(phone, "wide elements", chromedp.Evaluate[string](`[...document.querySelectorAll("body *")]
				.filter(e => e.getBoundingClientRect().right > window.innerWidth).slice(0, 8)
				.map(e => e.tagName + "#" + e.id + "." + e.className).join(" ")`))
			t.Errorf("%s on a phone: %d px wider than the screen: %s", path, over, wide)
		}
	}
	phone.screenshot("user-phone")

	// The language switch, by keyboard: focus the link, press Enter.
	phone.open("/users/")
	value(phone, "mark", chromedp.Evaluate[bool](`document.body.dataset.left = "1"; true`))
	phone.do("switch to Chinese", chromedp.Focus(chromedp.CSS(`a[hreflang="zh"]`)), chromedp.KeyEvent("\r"),
		chromedp.WaitReady(chromedp.CSS("body:not([data-left])")), chromedp.WaitVisible(chromedp.CSS("#users")))
	if h1 := phone.text("h1"); h1 != "用户" {
		t.Fatalf("after switching to Chinese the heading is %q", h1)
	}
	phone.screenshot("users-zh-phone")
}
