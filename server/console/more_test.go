package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"userve.dev/userve/server/console"
	"userve.dev/userve/server/store"
)

// rawPost posts body to a console path with the CSRF header.
func (e *env) rawPost(c *http.Client, path, csrf, body string) page {
	e.t.Helper()
	headers := []string{"Content-Type: application/x-ndjson"}
	if csrf != "" {
		headers = append(headers, console.CSRFHeader+": "+csrf)
	}
	req, err := http.NewRequest(http.MethodPost, e.console+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return page{status: res.StatusCode, header: res.Header, body: string(data)}
}

func (e *env) userCount() int64 {
	e.t.Helper()
	status, body := e.api("GET", "/userve/v2.2/miniapp/user_profile/?limit=1&return_total_count=1", nil)
	if status != http.StatusOK {
		e.t.Fatalf("users: %d %v", status, body)
	}
	return num(e.t, body["meta"].(map[string]any)["total_count"])
}

type importAnswer struct {
	Created, Updated, Skipped, Errors int
	Results                           []struct {
		Index  int
		Status string
		Error  string
	}
}

// The import page's batch route: it needs the session's CSRF token
// (without it nothing is imported), takes only the import's parameters,
// passes the API's refusals through in its words, and 30 batches of the
// same records sent at once import each record exactly once (the others
// are skipped), as the API does.
func TestImportBatchRoute(t *testing.T) {
	e := newEnv(t)
	c := e.browser()
	csrf := e.signIn(c, adminToken)
	var lines []string
	for i := range 20 {
		lines = append(lines, fmt.Sprintf(`{"id": %d, "name": "batch%02d", "sex": 1}`, 5000+i, i))
	}
	body := strings.Join(lines, "\n")

	e.rawPost(c, "/import/batch?format=thinksns", "", body).want(t, http.StatusForbidden)
	e.rawPost(c, "/import/batch?format=thinksns", csrf+"x", body).want(t, http.StatusForbidden)
	if n := e.userCount(); n != 0 {
		t.Fatalf("refused batches imported %d users", n)
	}
	if p := e.rawPost(c, "/import/batch?format=thinksns&verbose=1", csrf, body).want(t, http.StatusBadRequest); !strings.Contains(p.body, "verbose: unknown parameter") {
		t.Fatalf("unknown parameter: %s", p.body)
	}
	if p := e.rawPost(c, "/import/batch", csrf, body).want(t, http.StatusBadRequest); !strings.Contains(p.body, "format is required") {
		t.Fatalf("no format: %s", p.body)
	}
	if p := e.rawPost(c, "/import/batch?format=thinksns", csrf, "not json").want(t, http.StatusBadRequest); !strings.Contains(p.body, "not JSON") {
		t.Fatalf("not JSON: %s", p.body)
	}
	huge := strings.Repeat(lines[0]+"\n", (1<<20)/len(lines[0])+10)
	if p := e.rawPost(c, "/import/batch?format=thinksns", csrf, huge); p.status != http.StatusBadRequest && p.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("a batch over 1 MiB: %d %.300s", p.status, p.body)
	}
	if n := e.userCount(); n != 0 {
		t.Fatalf("refused batches imported %d users", n)
	}

	const n = 30
	answers := make([]importAnswer, n)
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := e.rawPost(c, "/import/batch?format=thinksns&on_conflict=skip", csrf, body)
			statuses[i] = p.status
			_ = json.Unmarshal([]byte(p.body), &answers[i])
		}()
	}
	wg.Wait()
	created, skipped := 0, 0
	for i, a := range answers {
		if statuses[i] != http.StatusOK || a.Errors != 0 || len(a.Results) != 20 {
			t.Fatalf("batch %d: %d %+v", i, statuses[i], a)
		}
		created += a.Created
		skipped += a.Skipped
	}
	if created != 20 || skipped != 20*(n-1) {
		t.Fatalf("30 parallel batches of the same 20 records: %d created, %d skipped; want 20 and %d", created, skipped, 20*(n-1))
	}
	if got := e.userCount(); got != 20 {
		t.Fatalf("%d users after the parallel batches, want 20", got)
	}
	accepted := 0
	for _, a := range e.audit("admin=alice&action=importUsers&limit=100") {
		if fmt.Sprint(a["status"]) == "200" {
			accepted++
		}
	}
	if accepted != n {
		t.Fatalf("%d audit entries of accepted importUsers by alice, want %d", accepted, n)
	}
}

// The import page's export button downloads every user as JSON Lines,
// as an attachment, through the console session only; password hashes
// only when ticked. Each download is the audit entry exportUsers of the
// admin.
func TestExportDownload(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := range 300 {
		p := &store.Profile{Username: fmt.Sprintf("exp%03d", i), Nickname: "x", PasswordHash: "$2a$04$abcdefghijklmnopqrstuv0123456789012345678901234567890"}
		if err := e.store.CreateProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	e.post(e.browser(), console.ExportPath, url.Values{}).want(t, http.StatusUnauthorized)
	c := e.browser()
	csrf := e.signIn(c, adminToken)
	p := e.post(c, console.ExportPath, url.Values{"csrf": {csrf}}).want(t, http.StatusOK)
	if cd := p.header.Get("Content-Disposition"); !regexp.MustCompile(`^attachment; filename="users-\d{8}-\d{6}\.jsonl"$`).MatchString(cd) {
		t.Fatalf("Content-Disposition %q", cd)
	}
	if ct := p.header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("Content-Type %q", ct)
	}
	lines := strings.Split(strings.TrimSpace(p.body), "\n")
	if len(lines) != 300 || strings.Contains(p.body, "_password_hash") || !strings.Contains(p.body, `"exp299"`) {
		t.Fatalf("export: %d lines, want 300 without hashes: %.300s", len(lines), p.body)
	}
	withHashes := e.post(c, console.ExportPath, url.Values{"csrf": {csrf}, "include": {"password_hash"}}).want(t, http.StatusOK)
	if strings.Count(withHashes.body, "_password_hash") != 300 {
		t.Fatalf("export with hashes: %d hashes", strings.Count(withHashes.body, "_password_hash"))
	}
	got := e.audit("admin=alice&action=exportUsers")
	if len(got) != 2 || got[0]["query"] != "include=password_hash" || got[1]["query"] != "" {
		t.Fatalf("audit of the exports: %v", got)
	}
}

// The group pages refuse what the API refuses, in its words, and a
// deletion without its confirmation deletes nothing.
func TestGroupActionsRefusals(t *testing.T) {
	e := newEnv(t)
	c := e.browser()
	csrf := e.signIn(c, adminToken)
	if p := e.post(c, "/groups/create", url.Values{"csrf": {csrf}, "name": {"  "}}).want(t, http.StatusBadRequest); !strings.Contains(p.body, "name must not be empty") {
		t.Fatalf("empty name: %.2000s", p.body)
	}
	e.post(c, "/groups/create", url.Values{"csrf": {csrf}, "name": {"top"}}).want(t, http.StatusSeeOther)
	top := e.groupID("top")
	e.post(c, "/groups/create", url.Values{"csrf": {csrf}, "name": {"child"}, "parent": {fmt.Sprint(top)}}).want(t, http.StatusSeeOther)
	child := e.groupID("child")
	p := e.post(c, fmt.Sprintf("/groups/%d/move", top), url.Values{"csrf": {csrf}, "parent": {fmt.Sprint(child)}}).want(t, http.StatusBadRequest)
	if !strings.Contains(p.body, "cannot be its own ancestor") {
		t.Fatalf("a loop: %.2000s", p.body)
	}
	if p := e.get(c, fmt.Sprintf("/groups/%d/", top)).want(t, http.StatusOK); strings.Contains(p.body, fmt.Sprintf(`<option value="%d"`, child)) {
		t.Fatal("the move form offers the group's own child as its parent")
	}
	e.post(c, fmt.Sprintf("/groups/%d/delete", top), url.Values{"csrf": {csrf}}).want(t, http.StatusBadRequest)
	e.post(c, fmt.Sprintf("/groups/%d/delete", top), url.Values{"confirm": {"yes"}}).want(t, http.StatusForbidden)
	if len(e.groups()) != 2 {
		t.Fatal("a refused deletion deleted")
	}
	e.post(c, fmt.Sprintf("/groups/%d/delete", top), url.Values{"csrf": {csrf}, "confirm": {"yes"}}).want(t, http.StatusSeeOther)
	if gs := e.groups(); len(gs) != 1 || gs[0]["parent"] != nil {
		t.Fatalf("after deleting the parent: %v", gs)
	}
	e.get(c, fmt.Sprintf("/groups/%d/", top)).want(t, http.StatusNotFound)
	e.post(c, fmt.Sprintf("/groups/%d/rename", top), url.Values{"csrf": {csrf}, "name": {"x"}}).want(t, http.StatusNotFound)
}

// Batch membership: 30 identical batches at once leave each user in the
// group once and the group's count exact; a batch without users or group
// changes nothing and says why on the list it came from (never another
// site).
func TestBatchMembershipParallel(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for i := range 3 {
		id, _ := e.user(fmt.Sprintf("par%d", i), nil)
		ids = append(ids, fmt.Sprint(id))
	}
	c := e.browser()
	csrf := e.signIn(c, adminToken)
	e.post(c, "/groups/create", url.Values{"csrf": {csrf}, "name": {"crowd"}}).want(t, http.StatusSeeOther)
	g := fmt.Sprint(e.groupID("crowd"))
	const n = 30
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.post(c, "/users/membership", url.Values{"csrf": {csrf}, "user": ids, "group": {g}, "op": {"add"},
				"back": {"/userve/console/users/?nickname=par"}}).status
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusSeeOther {
			t.Fatalf("batch %d: %d", i, s)
		}
	}
	if gs := e.groups(); num(t, gs[0]["members"]) != 3 {
		t.Fatalf("after 30 identical batches: %v", gs)
	}
	for _, id := range ids {
		var uid int64
		fmt.Sscan(id, &uid)
		if got := e.userGroups(uid); len(got) != 1 {
			t.Fatalf("user %s groups %v", id, got)
		}
	}
	p := e.post(c, "/users/membership", url.Values{"csrf": {csrf}, "group": {g}, "op": {"remove"}, "back": {"https://evil.example/"}}).want(t, http.StatusSeeOther)
	if loc := p.header.Get("Location"); loc != "/userve/console/users/?note=members_none" {
		t.Fatalf("no users ticked: to %q", loc)
	}
	if page := e.get(c, "/users/?note=members_none").want(t, http.StatusOK); !strings.Contains(page.body, "Tick at least one user first") {
		t.Fatal("the note is not shown")
	}
	p = e.post(c, "/users/membership", url.Values{"csrf": {csrf}, "user": ids, "op": {"remove"}, "back": {"/userve/console/users/?offset=20"}}).want(t, http.StatusSeeOther)
	if loc := p.header.Get("Location"); loc != "/userve/console/users/?note=members_no_group&offset=20" {
		t.Fatalf("no group: to %q", loc)
	}
	if gs := e.groups(); num(t, gs[0]["members"]) != 3 {
		t.Fatalf("refused batches changed the group: %v", gs)
	}
}

// The audit page filters by time (UTC, the whole minute typed included),
// user and action, pages 50 entries at a time, and explains a bad filter.
func TestAuditPageFilters(t *testing.T) {
	e := newEnv(t)
	c := e.browser()
	csrf := e.signIn(c, adminToken)
	start := e.clock.Now()
	e.post(c, "/groups/create", url.Values{"csrf": {csrf}, "name": {"early"}}).want(t, http.StatusSeeOther)
	e.clock.Add(20 * time.Minute) // within the session's idle timeout
	for i := range 55 {
		e.post(c, "/groups/create", url.Values{"csrf": {csrf}, "name": {fmt.Sprintf("late%d", i)}}).want(t, http.StatusSeeOther)
	}
	entries := regexp.MustCompile(`<td>createGroup</td>`)
	q := url.Values{"admin": {"alice"}, "action": {"createGroup"},
		"from": {start.UTC().Format("2006-01-02T15:04")}, "to": {start.UTC().Format("2006-01-02T15:04")}} // the minute of the entry
	if p := e.get(c, "/audit/?"+q.Encode()).want(t, http.StatusOK); len(entries.FindAllString(p.body, -1)) != 1 {
		t.Fatalf("the first hour: %d entries", len(entries.FindAllString(p.body, -1)))
	}
	p := e.get(c, "/audit/?action=createGroup").want(t, http.StatusOK)
	if len(entries.FindAllString(p.body, -1)) != 50 || !strings.Contains(p.body, `id="next"`) || !strings.Contains(p.body, "entries 1–50") {
		t.Fatalf("first page: %d entries", len(entries.FindAllString(p.body, -1)))
	}
	p = e.get(c, "/audit/?action=createGroup&offset=50").want(t, http.StatusOK)
	if len(entries.FindAllString(p.body, -1)) != 6 || strings.Contains(p.body, `id="next"`) || !strings.Contains(p.body, `id="prev"`) {
		t.Fatalf("second page: %d entries", len(entries.FindAllString(p.body, -1)))
	}
	if p := e.get(c, "/audit/?user_id=abc&from=yesterday").want(t, http.StatusBadRequest); !strings.Contains(p.body, "is not a whole number") || !strings.Contains(p.body, "is not a date and time") {
		t.Fatalf("bad filters: %.3000s", p.body)
	}
	if p := e.get(c, "/audit/?admin="+strings.Repeat("a", 65)).want(t, http.StatusBadRequest); !strings.Contains(p.body, "longer than 64 bytes") {
		t.Fatalf("a long admin filter: %.3000s", p.body)
	}
}

// A dead delivery retried from 30 console pages at once goes back to
// pending: each page either retried it or shows the API's words that it
// is not dead (never an error of its own); without the CSRF token nothing
// is retried. The page shows the API's refusal of a bad filter.
//
// (On MongoDB exactly one retry wins. FerretDB v1.24's findAndModify is
// not isolated, and several of the 30 may see the entry still dead: the
// store's RetryDeadEvent, reported to the events slice.)
func TestDeliveryRetryParallel(t *testing.T) {
	hk := newHook(t)
	e := newEventsEnv(t, hk)
	_, u := e.api("POST", "/userve/v2.0/miniapp/user_profile/", map[string]any{"nickname": "lost"})
	d := e.waitDelivery(num(t, u["user_id"]), "dead")
	c := e.browser()
	csrf := e.signIn(c, adminToken)
	path := fmt.Sprintf("/deliveries/%v/retry", d["id"])
	e.post(c, path, url.Values{}).want(t, http.StatusForbidden)
	if _, body := e.api("GET", "/userve/v1/events/deliveries/?status=dead", nil); len(body["objects"].([]any)) != 1 {
		t.Fatalf("a refused retry retried: %v", body)
	}
	const n = 30
	pages := make([]page, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pages[i] = e.post(c, path, url.Values{"csrf": {csrf}, "back": {"/userve/console/deliveries/?status=dead"}})
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for _, p := range pages {
		count[p.status]++
		switch p.status {
		case http.StatusSeeOther:
			if loc := p.header.Get("Location"); loc != "/userve/console/deliveries/?done=delivery_retried&status=dead" {
				t.Fatalf("after the retry: to %q", loc)
			}
		case http.StatusNotFound:
			if !strings.Contains(p.body, fmt.Sprintf("dead event delivery %v not found", d["id"])) {
				t.Fatalf("a refused retry says: %.3000s", p.body)
			}
		}
	}
	if count[http.StatusSeeOther] < 1 || count[http.StatusSeeOther]+count[http.StatusNotFound] != n {
		t.Fatalf("30 parallel retries: %v, want 303 (retried) or 404 (not dead)", count)
	}
	if _, body := e.api("GET", "/userve/v1/events/deliveries/?status=pending", nil); len(body["objects"].([]any)) != 1 {
		t.Fatalf("after the retries: %v", body)
	}
	if p := e.get(c, "/deliveries/?status=late").want(t, http.StatusBadRequest); !strings.Contains(p.body, "is not a delivery status (pending, delivered or dead)") {
		t.Fatalf("a bad status filter: %.3000s", p.body)
	}
}
