package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server"
	"userve.dev/userve/server/config"
)

// Helpers of the browser tests of the groups, import/export, audit and
// deliveries pages.

// choose picks an option of a select by value.
func (tb *tab) choose(sel, value string) {
	tb.t.Helper()
	tb.do("choose "+value+" in "+sel, chromedp.SetValue(chromedp.CSS(sel), value))
}

// tick toggles a checkbox from the keyboard (focus, space).
func (tb *tab) tick(sel string) {
	tb.t.Helper()
	tb.do("tick "+sel, chromedp.Focus(chromedp.CSS(sel)), chromedp.KeyEvent(" "))
}

// groupID is the id of the group named name, through the API.
func (e *env) groupID(name string) int64 {
	e.t.Helper()
	for _, g := range e.groups() {
		if g["name"] == name {
			return num(e.t, g["id"])
		}
	}
	e.t.Fatalf("no group %q", name)
	return 0
}

func (e *env) groups() []map[string]any {
	e.t.Helper()
	status, body := e.api("GET", "/userve/v1/user-group/?limit=1000", nil)
	if status != http.StatusOK {
		e.t.Fatalf("groups: %d %v", status, body)
	}
	var out []map[string]any
	for _, o := range body["objects"].([]any) {
		out = append(out, o.(map[string]any))
	}
	return out
}

func num(t *testing.T, v any) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(fmt.Sprint(v), &n); err != nil {
		t.Fatalf("%v is not a number", v)
	}
	return n
}

// userGroups are user id's groups, through the API.
func (e *env) userGroups(id int64) []int64 {
	e.t.Helper()
	status, p := e.api("GET", fmt.Sprintf("/userve/v2.2/miniapp/user_profile/%d/", id), nil)
	if status != http.StatusOK {
		e.t.Fatalf("user %d: %d %v", id, status, p)
	}
	var out []int64
	for _, g := range p["user_group"].([]any) {
		out = append(out, num(e.t, g))
	}
	return out
}

// onPhone shows the page at a phone's width and fails if anything but a
// table's own scroll box is wider than the screen; the screenshot is
// name; then the viewport is the tests' desktop size again.
func (tb *tab) onPhone(name string) {
	tb.t.Helper()
	tb.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	wide := value(tb, "overflow", chromedp.Evaluate[[]string](`[...document.querySelectorAll("body *")]
		.filter(el => !el.closest(".scroll") && el.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
		.map(el => el.tagName + (el.id ? "#" + el.id : ""))`))
	if len(wide) != 0 {
		tb.t.Fatalf("%s on a phone: wider than the screen: %v", name, wide)
	}
	tb.screenshot(name)
	tb.do("desktop viewport", chromedp.EmulateViewport(1280, 900)) // the tabs' size
}

// auditFilter filters the audit page by the signed-in admin and action
// through its form and answers the rows' "action users" texts.
func (tb *tab) auditFilter(admin, action string) []string {
	tb.t.Helper()
	tb.open("/audit/")
	tb.fill("#a-admin", admin)
	tb.fill("#a-action", action)
	tb.submit("#audit-apply", "#audit")
	rows := value(tb, "audit rows", chromedp.Evaluate[[]string](`[...document.querySelectorAll("#audit tbody tr")].filter(tr => tr.cells.length >= 8)
		.map(tr => tr.cells[1].textContent + " " + tr.cells[3].textContent + " " + tr.cells[4].textContent.trim())`))
	return rows
}

// An admin builds groups in a real browser: creates two, nests one under
// the other by creating it there and a third by moving it, renames one,
// adds three users to a group in one batch from the user list (ticked
// from the keyboard) and removes one, deletes a group after ticking its
// confirmation; the audit page, filtered, shows each action under the
// admin's name.
func TestGroupsInBrowser(t *testing.T) {
	e := newEnv(t)
	var ids []int64
	for i := range 5 {
		id, _ := e.user(fmt.Sprintf("member%d", i), nil)
		ids = append(ids, id)
	}
	tb := e.tab(1280, 900)
	tb.signIn(adminToken)

	tb.open("/groups/")
	tb.fill("#g-name", "vip")
	tb.submit("#create-group", "#flash")
	vip := e.groupID("vip")
	tb.fill("#g-name", "gold")
	tb.choose("#g-parent", fmt.Sprint(vip))
	tb.submit("#create-group", "#flash")
	gold := e.groupID("gold")
	tb.fill("#g-name", "silver")
	tb.submit("#create-group", "#flash")
	silver := e.groupID("silver")
	if n := tb.unlabelled(); n != 0 {
		t.Fatalf("groups page: %d unlabelled controls", n)
	}

	// Move silver under vip, rename gold.
	tb.submit(fmt.Sprintf(`#group-%d > a`, silver), "#move-form")
	if n := tb.unlabelled(); n != 0 {
		t.Fatalf("group page: %d unlabelled controls", n)
	}
	tb.choose("#g-move", fmt.Sprint(vip))
	tb.submit("#move-group", "#flash")
	if got := tb.text("#group-path"); got != "vip / silver" {
		t.Fatalf("silver's path after the move: %q", got)
	}
	tb.open(fmt.Sprintf("/groups/%d/", gold))
	tb.fill("#g-rename", "golden")
	tb.submit("#rename-group", "#flash")
	tb.open("/groups/")
	nested := tb.text(fmt.Sprintf("#group-%d ul", vip))
	if !strings.Contains(nested, "golden") || !strings.Contains(nested, "silver") {
		t.Fatalf("vip's subgroups: %q", nested)
	}
	for _, g := range e.groups() {
		if id := num(t, g["id"]); (id == gold || id == silver) && num(t, g["parent"]) != vip {
			t.Fatalf("group %v: parent %v, want %d", g["name"], g["parent"], vip)
		}
	}

	// Batch: three users ticked on the list, added to golden in one go.
	tb.open("/users/?order=user_id")
	for _, id := range ids[:3] {
		tb.tick(fmt.Sprintf("#sel-%d", id))
	}
	tb.choose("#m-group", fmt.Sprint(gold))
	if n := tb.unlabelled(); n != 0 {
		t.Fatalf("users page with the batch form: %d unlabelled controls", n)
	}
	tb.screenshot("users-batch")
	tb.submit("#members-add", "#flash")
	for i, id := range ids {
		if in := slices.Contains(e.userGroups(id), gold); in != (i < 3) {
			t.Fatalf("user %d in golden: %v, want %v", id, in, i < 3)
		}
	}
	if got := tb.text("#users tbody"); strings.Count(got, "golden") != 3 {
		t.Fatalf("the list after the batch shows golden %d times: %q", strings.Count(got, "golden"), got)
	}
	// Remove one of them.
	tb.tick(fmt.Sprintf("#sel-%d", ids[2]))
	tb.choose("#m-group", fmt.Sprint(gold))
	tb.submit("#members-remove", "#flash")
	if slices.Contains(e.userGroups(ids[2]), gold) || !slices.Contains(e.userGroups(ids[0]), gold) {
		t.Fatalf("after removing user %d: %v / %v", ids[2], e.userGroups(ids[2]), e.userGroups(ids[0]))
	}

	tb.open("/groups/")
	if got := tb.text(fmt.Sprintf("#group-%d", gold)); !strings.Contains(got, "2 members") {
		t.Fatalf("golden on the groups page: %q", got)
	}
	tb.screenshot("groups")
	tb.onPhone("groups-phone")

	// Delete silver: the confirmation box must be ticked.
	tb.open(fmt.Sprintf("/groups/%d/", silver))
	tb.tick("#g-confirm")
	tb.submit("#delete-group", "#flash")
	for _, g := range e.groups() {
		if num(t, g["id"]) == silver {
			t.Fatal("silver still exists")
		}
	}

	// The audit page, filtered by admin and action, shows each.
	want := map[string]int{"createGroup": 3, "updateGroup": 2, "patchMembership": 2, "deleteGroup": 1}
	for action, n := range want {
		rows := tb.auditFilter("alice", action)
		if len(rows) != n {
			t.Fatalf("audit %s: %d rows, want %d: %q", action, len(rows), n, rows)
		}
		for _, r := range rows {
			if !strings.HasPrefix(r, "alice "+action) {
				t.Fatalf("audit row %q", r)
			}
		}
	}
	rows := tb.auditFilter("alice", "patchMembership")
	if last := rows[len(rows)-1]; last != fmt.Sprintf("alice patchMembership %d %d %d", ids[0], ids[1], ids[2]) {
		t.Fatalf("the batch's audit entry names %q", last)
	}
	if n := tb.unlabelled(); n != 0 {
		t.Fatalf("audit page: %d unlabelled controls", n)
	}
	if rows := tb.auditFilter("alice", ""); len(rows) != 9 { // the eight above and the sign-in
		t.Fatalf("alice's entries: %q", rows)
	}
	tb.screenshot("audit-log")
	tb.onPhone("audit-log-phone")
}

// thinkSNSFile is a ThinkSNS users export of n records as a pretty JSON
// array (the page cuts it into records without parsing it): the first
// three with weak bcrypt hashes, record 10 with a sex that is not one,
// and a last record repeating the first (skipped: it is in by then).
func thinkSNSFile(t *testing.T, n int) string {
	t.Helper()
	weak, err := bcrypt.GenerateFromPassword([]byte("secret123"), 4)
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	for i := range n - 1 {
		r := map[string]any{"id": 1000 + i, "name": fmt.Sprintf("imp%03d", i), "sex": i % 3,
			"created_at": "2019-03-04 05:06:07", "bio": "line with ] and } and \" inside"}
		if i < 3 {
			r["password"] = string(weak)
		}
		if i == 10 {
			r["sex"] = "nope"
		}
		recs = append(recs, r)
	}
	recs = append(recs, recs[0])
	data, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "thinksns-users.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// An admin imports a ThinkSNS file of 450 records in a real browser and
// watches the progress bar move batch by batch to the end; the results
// show per record (an error, a skipped repeat, weak hashes). Then the
// export downloads every imported user, and the audit page shows the
// import's batches and the export under the admin's name.
func TestImportExportInBrowser(t *testing.T) {
	e := newEnv(t)
	file := thinkSNSFile(t, 450)
	tb := e.tab(1280, 900)
	tb.signIn(adminToken)
	tb.open("/transfer/")
	if n := tb.unlabelled(); n != 0 {
		t.Fatalf("transfer page: %d unlabelled controls", n)
	}
	tb.choose("#import-format", "thinksns")
	tb.do("choose the file", chromedp.SetUploadFiles(chromedp.CSS("#import-file"), []string{file}))
	// Record every value the progress bar shows.
	value(tb, "watch the bar", chromedp.Evaluate[bool](`window.seen = [];
		new MutationObserver(() => { const b = document.getElementById("import-progress"); window.seen.push(b.value + "/" + b.max) })
			.observe(document.getElementById("import-progress"), {attributes: true}); true`))
	tb.do("import", chromedp.Click(chromedp.CSS("#import-start")),
		chromedp.WaitVisible(chromedp.CSS("#import-results")))
	if msg := value(tb, "error box", chromedp.Evaluate[string](`document.getElementById("import-error").hidden ? "" : document.getElementById("import-error").textContent`)); msg != "" {
		t.Fatalf("import error: %s", msg)
	}
	seen := value(tb, "bar values", chromedp.Evaluate[[]string](`window.seen`))
	for _, want := range []string{"200/450", "400/450", "450/450"} {
		if !slices.Contains(seen, want) {
			t.Fatalf("the progress bar never showed %s: %v", want, seen)
		}
	}
	if done := value(tb, "bar", chromedp.Evaluate[string](`const b = document.getElementById("import-progress"); b.value + "/" + b.max + " " + b.hasAttribute("data-done")`)); done != "450/450 true" {
		t.Fatalf("the bar at the end: %s", done)
	}
	counts := value(tb, "counts", chromedp.Evaluate[map[string]string](`Object.fromEntries([...document.querySelectorAll("[data-count]")].map(d => [d.dataset.count, d.textContent]))`))
	if fmt.Sprint(counts) != "map[created:448 errors:1 skipped:1 updated:0 weak_hashes:3]" {
		t.Fatalf("counts: %v", counts)
	}
	first := tb.text("#import-table tbody tr")
	if !strings.Contains(first, "11") || !strings.Contains(first, "error") || !strings.Contains(first, "sex") {
		t.Fatalf("the first result row (errors first): %q", first)
	}
	if got := tb.text("#import-status"); !strings.Contains(got, "450") {
		t.Fatalf("status: %q", got)
	}
	tb.screenshot("import")
	tb.onPhone("import-phone")

	// Export: the download holds every user, one JSON line each.
	dir := t.TempDir()
	progress := chromedp.Events(tb.ctx, browser.DownloadProgress)
	tb.do("download the export", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: ptr(true)})
		return err
	}), chromedp.Click(chromedp.CSS("#export-download")))
	var guid string
	for ev, err := range progress {
		if err != nil {
			t.Fatal(err)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			guid = ev.GUID
			break
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("the download was cancelled")
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, guid))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 448 || !strings.Contains(string(data), `"imp449"`) && !strings.Contains(string(data), `"imp448"`) {
		t.Fatalf("export: %d lines, want 448: %.300s", len(lines), data)
	}
	if strings.Contains(string(data), "$2a$04$") {
		t.Fatal("the export holds password hashes without include")
	}

	if rows := tb.auditFilter("alice", "importUsers"); len(rows) != 3 {
		t.Fatalf("audit importUsers (three batches): %q", rows)
	}
	if rows := tb.auditFilter("alice", "exportUsers"); len(rows) != 1 {
		t.Fatalf("audit exportUsers: %q", rows)
	}
}

func ptr[T any](v T) *T { return &v }

// hook is the tenant's backend receiving events: it fails (500) while
// down.
type hook struct {
	srv  *httptest.Server
	down atomic.Bool
}

func newHook(t *testing.T) *hook {
	h := &hook{}
	h.down.Store(true)
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if h.down.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// newEventsEnv is env with a webhook for user.created at hk, retries
// within milliseconds and dead letters after a minute of the env's clock.
func newEventsEnv(t *testing.T, hk *hook) *env {
	spec := consoleSpec()
	spec.Events.Webhook = &v1alpha1.EventWebhookSpec{URL: hk.srv.URL + "/hooks/userve",
		SecretRef: &v1alpha1.SecretKeyRef{Name: "events", Key: "secret"}, Events: []v1alpha1.EventType{v1alpha1.EventUserCreated}}
	return newEnvWith(t, spec, func(c *config.Config, o *server.Options) {
		c.EventsSecret = "console-events-secret-0123456789"
		o.Events = server.EventsOptions{Poll: 20 * time.Millisecond, RetryFirst: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
			Lease: 2 * time.Second, Grace: time.Second, DeadAfter: time.Minute}
	})
}

// waitDelivery waits until user id's user.created delivery has status,
// moving the clock past the dead-letter age when waiting for "dead".
func (e *env) waitDelivery(user int64, status string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	moved := false
	for {
		_, body := e.api("GET", fmt.Sprintf("/userve/v1/events/deliveries/?user_id=%d", user), nil)
		if objs, _ := body["objects"].([]any); len(objs) == 1 {
			d := objs[0].(map[string]any)
			if d["status"] == status {
				return d
			}
			if status == "dead" && !moved && num(e.t, d["attempts"]) >= 1 {
				e.clock.Add(2 * time.Minute) // the next failure is past DeadAfter
				moved = true
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("user %d's delivery never became %s: %v", user, status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The deliveries page lists the delivery log with its filters; a dead
// delivery is retried with its button (CSRF-checked), reaches the
// backend once it is up, and the retry is in the audit log under the
// admin's name.
func TestDeliveriesInBrowser(t *testing.T) {
	hk := newHook(t)
	e := newEventsEnv(t, hk)
	_, lost := e.api("POST", "/userve/v2.0/miniapp/user_profile/", map[string]any{"nickname": "lost"})
	lostID := num(t, lost["user_id"])
	dead := e.waitDelivery(lostID, "dead")
	hk.down.Store(false)
	_, fine := e.api("POST", "/userve/v2.0/miniapp/user_profile/", map[string]any{"nickname": "fine"})
	fineID := num(t, fine["user_id"])
	e.waitDelivery(fineID, "delivered")

	tb := e.tab(1280, 900)
	tb.signIn(adminToken)
	tb.open("/deliveries/")
	if got := tb.text("#delivery-total"); !strings.Contains(got, "2 deliveries") {
		t.Fatalf("unfiltered: %q", got)
	}
	if n := tb.unlabelled(); n != 0 {
		t.Fatalf("deliveries page: %d unlabelled controls", n)
	}
	tb.choose("#d-status", "dead")
	tb.submit("#delivery-apply", "#deliveries")
	rows := tb.text("#deliveries tbody")
	shown := value(tb, "rows", chromedp.Evaluate[[]string](`[...document.querySelectorAll("#deliveries tr.delivery")].map(tr => tr.id)`))
	if len(shown) != 1 || shown[0] != fmt.Sprintf("delivery-%v", dead["id"]) || !strings.Contains(rows, "user.created") {
		t.Fatalf("dead deliveries: %v %q", shown, rows)
	}
	if !strings.Contains(rows, "HTTP 500") {
		t.Fatalf("the dead delivery's last attempt is not shown: %q", rows)
	}
	tb.screenshot("deliveries")
	tb.onPhone("deliveries-phone")
	tb.submit(fmt.Sprintf("#retry-%v", dead["id"]), "#flash")
	if got := tb.text("#flash"); !strings.Contains(got, "pending again") {
		t.Fatalf("after the retry: %q", got)
	}
	e.waitDelivery(lostID, "delivered")
	tb.open("/deliveries/?status=delivered")
	if got := tb.text("#delivery-total"); !strings.Contains(got, "2 deliveries") {
		t.Fatalf("delivered after the retry: %q", got)
	}
	// In Chinese, switched with the link at the top.
	tb.submit(`a[hreflang="zh"]`, "#deliveries")
	if got := tb.text("h1"); got != "事件投递" {
		t.Fatalf("the Chinese page's title: %q", got)
	}
	tb.screenshot("deliveries-zh")
	tb.submit(`a[hreflang="en"]`, "#deliveries")
	if rows := tb.auditFilter("alice", "retryEventDelivery"); len(rows) != 1 || !strings.HasPrefix(rows[0], "alice retryEventDelivery") {
		t.Fatalf("audit of the retry: %q", rows)
	}
}
