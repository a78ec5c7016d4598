package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"userve.dev/userve/server"
	"userve.dev/userve/server/store"
	"userve.dev/userve/test/mongofixture"
)

// otherToken is the test tenant's unnamed first admin token ("admin-1").
const otherToken = "other-token"

// auditEntries reads the audit log with query, as alice.
func (e *env) auditEntries(query string) []map[string]any {
	e.t.Helper()
	r := e.do("GET", "/userve/v1/audit/?"+query, nil).want(e.t, http.StatusOK)
	var out []map[string]any
	for _, o := range r.body["objects"].([]any) {
		out = append(out, o.(map[string]any))
	}
	return out
}

// Each kind of admin action leaves exactly one entry, named after the token
// that made it, with the users it concerned; a profile change keeps the
// fields before and after, and no password (hash) ever.
func TestAuditRecordsEachAdminAction(t *testing.T) {
	e := newEnv(t)
	other := "Bearer " + otherToken
	g := e.do("POST", "/userve/v1/user-group/", map[string]any{"name": "vip"}).want(t, http.StatusCreated)
	group := num(t, g.body["id"])
	a := e.createUser(map[string]any{"nickname": "ann", "age": 30})
	b := e.createUser(map[string]any{"nickname": "bob"})
	e.doAuth("PUT", fmt.Sprintf("/userve/v2.0/miniapp/user_profile/%d/", a), map[string]any{"age": 31, "motto": "hi"}, other).want(t, http.StatusOK)
	e.doAuth("PUT", fmt.Sprintf("/oserve/v2.2/miniapp/user_profile/%d/", a), map[string]any{"age": "old"}, other).want(t, http.StatusBadRequest)
	e.do("PATCH", "/userve/v1/miniapp/group/membership/", fmt.Sprintf(`[{"op":"add","path":"/membership","users":[%d,%d],"groups":[%d]}]`, a, b, group)).want(t, http.StatusNoContent)
	e.do("POST", "/userve/v1/wallet/transactions/", map[string]any{"user_id": b, "account": "wallet", "amount": 100}).want(t, http.StatusCreated)
	e.do("POST", "/userve/v1/user-merge/", map[string]any{"from": b, "into": a}).want(t, http.StatusOK)
	e.do("GET", "/userve/v1/export/users/?include=password_hash", nil).want(t, http.StatusOK)
	e.importBatch("format=thinksns", `{"id": 77, "name": "imported", "password": "$2y$10$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234"}`)
	e.do("DELETE", fmt.Sprintf("/userve/v2.0/miniapp/user_profile/%d/", a), nil).want(t, http.StatusNoContent)
	// Reads other than the export are not admin actions.
	e.do("GET", "/userve/v2.0/miniapp/user_profile/", nil).want(t, http.StatusOK)
	e.do("GET", "/userve/v1/user-group/", nil).want(t, http.StatusOK)

	entries := e.auditEntries("limit=100")
	type row struct{ admin, action, state, users string }
	var got []row
	for i := len(entries) - 1; i >= 0; i-- { // oldest first
		en := entries[i]
		got = append(got, row{en["admin"].(string), en["action"].(string), en["state"].(string), fmt.Sprint(en["user_ids"])})
	}
	u := func(ids ...int64) string {
		s := make([]string, len(ids))
		for i, id := range ids {
			s[i] = fmt.Sprint(id)
		}
		return "[" + strings.Join(s, " ") + "]"
	}
	want := []row{
		{"alice", "createGroup", "done", "[]"},
		{"alice", "createProfileV20", "done", u(a)},
		{"alice", "createProfileV20", "done", u(b)},
		{"admin-1", "updateProfileV20", "done", u(a)},
		{"admin-1", "updateProfileV22", "failed", u(a)},
		{"alice", "patchMembership", "done", u(a, b)},
		{"alice", "createWalletTransaction", "done", u(b)},
		{"alice", "mergeUsers", "done", u(b, a)},
		{"alice", "exportUsers", "done", "[]"},
		{"alice", "importUsers", "done", "[]"},
		{"alice", "deleteProfileV20", "done", u(a)},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("audit log, oldest first:\n got %v\nwant %v", got, want)
	}
	if strings.Contains(strings.ToLower(string(e.do("GET", "/userve/v1/audit/?limit=100", nil).raw)), "$2y$") {
		t.Error("a password hash reached the audit log")
	}

	if q := entries[2]["query"]; q != "include=password_hash" {
		t.Errorf("export entry query %q", q)
	}
	update := entries[len(entries)-4]
	changes := fmt.Sprint(update["changes"])
	if changes != "[map[after:31 before:30 field:age] map[after:hi before:<nil> field:motto]]" {
		t.Errorf("update changes: %s", changes)
	}
	if fmt.Sprint(update["status"]) != "200" || !strings.HasPrefix(update["path"].(string), "/userve/v2.0/miniapp/user_profile/") {
		t.Errorf("update entry: %v", update)
	}
	if c := fmt.Sprint(entries[len(entries)-2]["changes"]); !strings.Contains(c, "field:nickname") || !strings.Contains(c, "after:ann") {
		t.Errorf("create changes (nothing before, the new profile after): %s", c)
	}
	if c := fmt.Sprint(entries[0]["changes"]); !strings.Contains(c, "after:<nil> before:ann field:nickname") {
		t.Errorf("delete changes (the profile before, nothing after): %s", c)
	}
}

// 30 admin actions at once leave exactly 30 entries, each with its admin.
func TestAuditThirtyParallelActions(t *testing.T) {
	e := newEnv(t)
	id := e.createUser(map[string]any{"nickname": "x"})
	const n = 30
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := adminToken
			if i%3 == 0 {
				token = otherToken
			}
			statuses <- e.doAuth("PUT", fmt.Sprintf("/userve/v2.0/miniapp/user_profile/%d/", id), map[string]any{"age": i}, "Bearer "+token).status
		}()
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("a parallel update answered %d", s)
		}
	}
	all := e.auditEntries("action=updateProfileV20&limit=100")
	byAdmin := map[string]int{}
	for _, en := range all {
		if en["state"] != "done" {
			t.Errorf("entry not sealed: %v", en)
		}
		byAdmin[en["admin"].(string)]++
	}
	if len(all) != n || byAdmin["admin-1"] != 10 || byAdmin["alice"] != 20 {
		t.Fatalf("%d entries by admin %v, want 30: admin-1 10, alice 20", len(all), byAdmin)
	}
}

// failingAudit is the store's audit log with its inserts or seals failing,
// as they would with the database gone for the audit collection alone.
type failingAudit struct {
	*store.Store
	begin, seal bool
}

var errAuditDown = errors.New("audit collection unavailable")

func (f failingAudit) BeginAudit(ctx context.Context, e *store.AuditEntry) error {
	if f.begin {
		return errAuditDown
	}
	return f.Store.BeginAudit(ctx, e)
}

func (f failingAudit) SealAudit(ctx context.Context, e *store.AuditEntry) error {
	if f.seal {
		return errAuditDown
	}
	return f.Store.SealAudit(ctx, e)
}

// An action whose entry cannot be written is not applied: the request
// answers 503 and the profile is as before.
func TestAuditWriteFailureRefusesTheAction(t *testing.T) {
	e := newEnvWith(t, testSpec(), mongofixture.URI(t), "", server.Options{
		AuditLog: func(st *store.Store) server.AuditWriter { return failingAudit{Store: st, begin: true} }})
	p := &store.Profile{Nickname: "kept", Custom: map[string]any{"age": int64(5)}}
	if err := e.store.CreateProfile(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/userve/v2.0/miniapp/user_profile/%d/", p.ID)
	e.do("PUT", path, map[string]any{"age": 6}).wantError(t, http.StatusServiceUnavailable, "audit log", "not applied")
	e.do("DELETE", path, nil).wantError(t, http.StatusServiceUnavailable, "audit log")
	e.do("POST", "/userve/v1/user-group/", map[string]any{"name": "vip"}).wantError(t, http.StatusServiceUnavailable, "audit log")
	if age := num(t, e.do("GET", path, nil).want(t, http.StatusOK).body["age"]); age != 5 {
		t.Fatalf("age %d: the refused update was applied", age)
	}
	if g := e.do("GET", "/userve/v1/user-group/", nil).want(t, http.StatusOK); len(g.body["objects"].([]any)) != 0 {
		t.Fatalf("the refused group exists: %s", g.raw)
	}
}

// When the outcome cannot be recorded, the entry written before the action
// stays, pending: the action is in the log, its result marked unknown.
func TestAuditSealFailureLeavesThePendingEntry(t *testing.T) {
	e := newEnvWith(t, testSpec(), mongofixture.URI(t), "", server.Options{
		AuditLog: func(st *store.Store) server.AuditWriter { return failingAudit{Store: st, seal: true} }})
	e.do("POST", "/userve/v1/user-group/", map[string]any{"name": "vip"}).want(t, http.StatusCreated)
	en := e.auditEntries("")
	if len(en) != 1 || en[0]["state"] != "pending" || en[0]["status"] != nil || en[0]["admin"] != "alice" || en[0]["action"] != "createGroup" {
		t.Fatalf("entries %v", en)
	}
}

// The log's filters: admin, user, action, time range, paging and cursor;
// bad values are 400s that name the parameter.
func TestAuditFilters(t *testing.T) {
	e := newEnv(t)
	t0 := e.clock.now
	a := e.createUser(map[string]any{"nickname": "a"})
	e.clock.now = t0.Add(time.Hour)
	b := e.createUser(map[string]any{"nickname": "b"})
	e.doAuth("PUT", fmt.Sprintf("/userve/v2.0/miniapp/user_profile/%d/", b), map[string]any{"age": 1}, "Bearer "+otherToken).want(t, http.StatusOK)
	e.clock.now = t0.Add(2 * time.Hour)
	e.do("DELETE", fmt.Sprintf("/userve/v2.0/miniapp/user_profile/%d/", a), nil).want(t, http.StatusNoContent)

	actions := func(query string) string {
		var out []string
		for _, en := range e.auditEntries(query) {
			out = append(out, en["action"].(string))
		}
		return strings.Join(out, ",")
	}
	for query, want := range map[string]string{
		"":                           "deleteProfileV20,updateProfileV20,createProfileV20,createProfileV20",
		"admin=admin-1":              "updateProfileV20",
		"admin=alice":                "deleteProfileV20,createProfileV20,createProfileV20",
		"admin=nobody":               "",
		fmt.Sprintf("user_id=%d", a): "deleteProfileV20,createProfileV20",
		fmt.Sprintf("user_id=%d", b): "updateProfileV20,createProfileV20",
		"action=createProfileV20":    "createProfileV20,createProfileV20",
		fmt.Sprintf("since=%d", t0.Add(time.Hour).Unix()):                                      "deleteProfileV20,updateProfileV20,createProfileV20",
		fmt.Sprintf("until=%d", t0.Add(time.Hour).Unix()):                                      "createProfileV20",
		fmt.Sprintf("since=%d&until=%d", t0.Add(time.Hour).Unix(), t0.Add(2*time.Hour).Unix()): "updateProfileV20,createProfileV20",
		"limit=2":          "deleteProfileV20,updateProfileV20",
		"limit=2&offset=2": "createProfileV20,createProfileV20",
	} {
		if got := actions(query); got != want {
			t.Errorf("?%s: %s, want %s", query, got, want)
		}
	}
	first := e.do("GET", "/userve/v1/audit/?limit=1", nil).want(t, http.StatusOK)
	if first.body["meta"].(map[string]any)["next"] == nil {
		t.Errorf("a full page has no next link: %s", first.raw)
	}
	cursor := first.body["objects"].([]any)[0].(map[string]any)["id"].(string)
	if got := actions("after=" + cursor); got != "updateProfileV20,createProfileV20,createProfileV20" {
		t.Errorf("after the newest: %s", got)
	}
	for query, msg := range map[string]string{
		"user_id=0":                        "user_id",
		"since=soon":                       "since",
		"after=xyz":                        "after",
		"admin=" + strings.Repeat("a", 65): "admin",
		"color=red":                        "unknown parameter",
		"admin=a&admin=b":                  "given 2 times",
	} {
		e.do("GET", "/userve/v1/audit/?"+query, nil).wantError(t, http.StatusBadRequest, msg)
	}
	e.doAuth("GET", "/userve/v1/audit/", nil, "").wantError(t, http.StatusUnauthorized, "bearer")
}

// No route edits or deletes the log: every other method is refused and
// the entries stay as they were.
func TestAuditLogIsReadOnly(t *testing.T) {
	e := newEnv(t)
	e.createUser(map[string]any{"nickname": "a"})
	before := string(e.do("GET", "/userve/v1/audit/", nil).want(t, http.StatusOK).raw)
	id := e.auditEntries("")[0]["id"].(string)
	for _, method := range []string{"PUT", "PATCH", "DELETE", "POST"} {
		for _, path := range []string{"/userve/v1/audit/", "/oserve/v1/audit/"} {
			if r := e.do(method, path, map[string]any{"admin": "x"}); r.status != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d, want 405", method, path, r.status)
			}
		}
		if r := e.do(method, "/userve/v1/audit/"+id+"/", map[string]any{"admin": "x"}); r.status != http.StatusNotFound {
			t.Errorf("%s on an entry: %d, want 404", method, r.status)
		}
	}
	if after := string(e.do("GET", "/userve/v1/audit/", nil).want(t, http.StatusOK).raw); after != before {
		t.Errorf("the log changed:\n%s\n%s", before, after)
	}
}

// Entries older than the retention period are deleted; newer ones stay.
func TestAuditExpiry(t *testing.T) {
	e := newEnv(t)
	t0 := e.clock.now
	e.createUser(map[string]any{"nickname": "old"})
	e.clock.now = t0.Add(100 * 24 * time.Hour)
	e.createUser(map[string]any{"nickname": "new"})
	n, err := e.store.ExpireAudit(context.Background(), e.clock.now.Add(-30*24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("expired %d (%v), want 1", n, err)
	}
	if en := e.auditEntries(""); len(en) != 1 || en[0]["at"].(interface{ String() string }).String() != fmt.Sprint(e.clock.now.Unix()) {
		t.Fatalf("left %v", en)
	}
}

// A ban and an unban are admin actions on a user: each entry names the
// user and the ban fields before and after (the ban routes answer with the
// profile, as the profile routes do).
func TestAuditRecordsBansWithTheirFields(t *testing.T) {
	e := newEnv(t)
	id := e.createUser(map[string]any{"nickname": "mallory"})
	path := fmt.Sprintf("/userve/v1/users/%d/ban/", id)
	e.do("PUT", path, map[string]any{"reason": "spam"}).want(t, http.StatusOK)
	e.do("DELETE", path, nil).want(t, http.StatusOK)
	entries := e.auditEntries("user_id=" + fmt.Sprint(id))
	if len(entries) != 3 {
		t.Fatalf("%d entries for the user, want create, ban and unban: %v", len(entries), entries)
	}
	unban, ban := fmt.Sprint(entries[0]["changes"]), fmt.Sprint(entries[1]["changes"])
	if !strings.Contains(ban, "after:true before:false field:_banned") || !strings.Contains(ban, "after:spam") {
		t.Errorf("ban changes: %s", ban)
	}
	if !strings.Contains(unban, "after:false before:true field:_banned") || strings.Contains(unban, "field:nickname") {
		t.Errorf("unban changes (the ban fields only): %s", unban)
	}
}
