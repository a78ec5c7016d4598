package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"userve.dev/userve/server/store"
	"userve.dev/userve/server/store/storetest"
)

const samples = "../docs/migration/samples"

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(samples, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type importAnswer struct {
	Created, Updated, Skipped, Errors int
	Results                           []struct {
		Index  int
		Status string
		UserID int64 `json:"user_id"`
		Error  string
	}
}

func (e *env) importBatch(query string, body any) importAnswer {
	e.t.Helper()
	r := e.do("POST", "/userve/v1/import/users/?"+query, body).want(e.t, http.StatusOK)
	var a importAnswer
	if err := json.Unmarshal(r.raw, &a); err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (a importAnswer) statuses() []string {
	out := make([]string, len(a.Results))
	for i, r := range a.Results {
		out[i] = r.Status
		if r.Status == "error" {
			out[i] += ": " + r.Error
		}
	}
	return out
}

func followCounts(t *testing.T, st *store.Store, ids ...int64) map[int64][2]int64 {
	t.Helper()
	followers, followings, err := st.FollowCounts(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64][2]int64{}
	for _, id := range ids {
		out[id] = [2]int64{followers[id], followings[id]}
	}
	return out
}

func balances(t *testing.T, st *store.Store, id int64) [3]int64 {
	t.Helper()
	w, err := st.GetWallet(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return [3]int64{w.Wallet, w.NewWallet, w.Currency}
}

func TestImportThinkSNSSampleKeepsIDsFollowsAndBalances(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"thinksns-users.json", "thinksns-users.jsonl"} {
		a := e.importBatch("format=thinksns", sample(t, name))
		if a.Created != 4 || a.Errors != 0 {
			t.Fatalf("%s: %+v", name, a.statuses())
		}
	}
	ctx := context.Background()
	for _, base := range []int64{0, 100} {
		for i, r := range []int64{1, 2, 3, 4} {
			p, err := e.store.GetProfile(ctx, base+r)
			if err != nil {
				t.Fatalf("user %d: %v", base+r, err)
			}
			if p.ImportSource != fmt.Sprintf("thinksns:%d", base+r) || p.PasswordHash == "" && i < 3 {
				t.Fatalf("user %d: %+v", base+r, p)
			}
		}
		// 1 follows 2,3; 2 follows 1; 3 follows 1,2,4; 4 follows 3.
		got := followCounts(t, e.store, base+1, base+2, base+3, base+4)
		want := map[int64][2]int64{base + 1: {2, 2}, base + 2: {2, 1}, base + 3: {2, 3}, base + 4: {1, 1}}
		for id, w := range want {
			if got[id] != w {
				t.Errorf("user %d followers/followings = %v, want %v", id, got[id], w)
			}
		}
		if b := balances(t, e.store, base+1); b != [3]int64{1000, 250, 30} {
			t.Errorf("user %d balances %v", base+1, b)
		}
		if b := balances(t, e.store, base+3); b != [3]int64{0, 0, 5} {
			t.Errorf("user %d balances %v", base+3, b)
		}
	}
	p, _ := e.store.GetProfile(ctx, 1)
	if p.Username != "创始人" || p.Email != "root@example.com" || p.Phone != "18781993582" || p.Bio != "我是大管理员" ||
		p.Created.Format("2006-01-02 15:04:05") != "2017-06-02 08:43:54" || p.Updated.Format("2006-01-02 15:04:05") != "2018-01-22 10:05:44" ||
		!strings.HasPrefix(p.PasswordHash, "$2y$10$") {
		t.Fatalf("user 1 = %+v", p)
	}
	// New users get ids past every imported one.
	if id := e.createUser(map[string]any{"nickname": "new"}); id <= 104 {
		t.Fatalf("a new user got id %d, at or below the imported ids", id)
	}
}

func TestImportMinAppSampleWithGroupsAndCustomFields(t *testing.T) {
	e := newEnv(t)
	a := e.importBatch("format=minapp", sample(t, "minapp-userprofile.jsonl"))
	if a.Created != 3 || a.Errors != 0 {
		t.Fatalf("%v", a.statuses())
	}
	r := e.do("GET", "/userve/v2.0/miniapp/user_profile/36619759/", nil).want(t, http.StatusOK)
	if r.body["nickname"] != "Tom" || num(t, r.body["age"]) != 30 || r.body["vip"] != true || r.body["_email"] != "tom@example.com" ||
		num(t, r.body["created_at"]) != 1504600000 || num(t, r.body["updated_at"]) != 1504700000 {
		t.Fatalf("imported profile: %s", r.raw)
	}
	g := e.do("GET", "/userve/v1/user-group/137/", nil).want(t, http.StatusOK)
	if g.body["name"] != "VIP" || num(t, g.body["members"]) != 2 {
		t.Fatalf("group 137: %s", g.raw)
	}
	e.do("GET", "/userve/v1/user-group/138/", nil).want(t, http.StatusOK)
	// A new group gets an id past the imported ones.
	ng := e.do("POST", "/userve/v1/user-group/", map[string]any{"name": "new"}).want(t, http.StatusCreated)
	if num(t, ng.body["id"]) <= 138 {
		t.Fatalf("new group id %s", ng.raw)
	}
}

func TestImportUserveSample(t *testing.T) {
	e := newEnv(t)
	a := e.importBatch("format=userve", sample(t, "userve-export.jsonl"))
	if a.Created != 2 || a.Errors != 0 {
		t.Fatalf("%v", a.statuses())
	}
	if got := followCounts(t, e.store, 7, 8); got[7] != [2]int64{1, 1} || got[8] != [2]int64{1, 1} {
		t.Fatalf("follows %v", got)
	}
	if b := balances(t, e.store, 7); b != [3]int64{0, 500, 12} {
		t.Fatalf("balances %v", b)
	}
	p, _ := e.store.GetProfile(context.Background(), 7)
	if p.Bio != "hello" || p.Location != "Berlin" || p.Username != "ann" || !strings.HasPrefix(p.PasswordHash, "$2y$") {
		t.Fatalf("%+v", p)
	}
}

func TestImportConflictPolicies(t *testing.T) {
	e := newEnv(t)
	native := e.createUser(map[string]any{"nickname": "native", "_email": "taken@example.com"})
	rec := `{"id": 50, "name": "dora", "email": "taken@example.com", "bio": "imported"}`

	a := e.importBatch("format=thinksns&on_conflict=fail", rec)
	if a.Errors != 1 || !strings.Contains(a.Results[0].Error, fmt.Sprintf("_email already belong(s) to user %d", native)) {
		t.Fatalf("fail: %+v", a)
	}
	a = e.importBatch("format=thinksns&on_conflict=skip", rec)
	if a.Skipped != 1 || a.Results[0].UserID != native {
		t.Fatalf("skip: %+v", a)
	}
	p, _ := e.store.GetProfile(context.Background(), native)
	if p.Bio != "" || p.Username != "" {
		t.Fatalf("skip changed the user: %+v", p)
	}
	for round := 0; round < 2; round++ {
		a = e.importBatch("format=thinksns&on_conflict=update", rec)
		if a.Updated != 1 || a.Results[0].UserID != native {
			t.Fatalf("update: %+v", a)
		}
		p2, _ := e.store.GetProfile(context.Background(), native)
		if p2.Bio != "imported" || p2.Username != "dora" || p2.Nickname != "dora" || p2.ImportSource != "thinksns:50" {
			t.Fatalf("update round %d: %+v", round, p2)
		}
		if round == 1 && (p2.Updated != p.Updated) {
			t.Fatalf("a repeated update changed updated_at: %v -> %v", p.Updated, p2.Updated)
		}
		p = p2
	}
	if _, err := e.store.GetProfile(context.Background(), 50); err == nil {
		t.Fatal("the source id was used although the record matched an existing user")
	}
	// Keys matching two different users are an error under every policy.
	other := e.createUser(map[string]any{"nickname": "other", "_phone": "13900000000"})
	two := `{"id": 51, "name": "eve", "email": "taken@example.com", "phone": "13900000000"}`
	for _, policy := range []string{"skip", "update", "fail"} {
		a = e.importBatch("format=thinksns&on_conflict="+policy, two)
		if a.Errors != 1 || !strings.Contains(a.Results[0].Error, fmt.Sprintf("match user %d", other)) {
			t.Fatalf("%s: %+v", policy, a)
		}
	}
}

func TestImportReplayedBatchChangesNothing(t *testing.T) {
	e := newEnv(t)
	body := sample(t, "thinksns-users.json")
	first := e.importBatch("format=thinksns", body)
	if first.Created != 4 {
		t.Fatalf("%v", first.statuses())
	}
	before := followCounts(t, e.store, 1, 2, 3, 4)
	entries, _, err := e.store.ListLedger(context.Background(), store.LedgerQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, policy := range []string{"skip", "update"} {
		a := e.importBatch("format=thinksns&on_conflict="+policy, body)
		if policy == "skip" && a.Skipped != 4 || policy == "update" && a.Updated != 4 {
			t.Fatalf("%s replay: %v", policy, a.statuses())
		}
		for i, r := range a.Results {
			if r.UserID != first.Results[i].UserID {
				t.Fatalf("replay answered user %d for record %d, first %d", r.UserID, i, first.Results[i].UserID)
			}
		}
	}
	a := e.importBatch("format=thinksns&on_conflict=fail", body)
	if a.Errors != 4 || !strings.Contains(a.Results[0].Error, "already imported as user 1") {
		t.Fatalf("fail replay: %v", a.statuses())
	}
	if after := followCounts(t, e.store, 1, 2, 3, 4); !equalMaps(before, after) {
		t.Fatalf("follows changed: %v -> %v", before, after)
	}
	again, _, _ := e.store.ListLedger(context.Background(), store.LedgerQuery{Limit: 100})
	if len(again) != len(entries) || len(entries) != 4 {
		t.Fatalf("ledger entries %d -> %d, want 4 opening entries", len(entries), len(again))
	}
	if b := balances(t, e.store, 1); b != [3]int64{1000, 250, 30} {
		t.Fatalf("balances after replays %v", b)
	}
}

func equalMaps[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// 30 parallel requests importing the same batch: each user exists once,
// every answer is per record created or skipped, follows and balances are
// exact.
func TestImportSameBatchInParallel(t *testing.T) {
	e := newEnv(t)
	var lines []string
	const n = 12
	for i := 1; i <= n; i++ {
		next := i%n + 1
		lines = append(lines, fmt.Sprintf(`{"id": %d, "name": "user_%d", "email": "u%d@example.com", "followings": [%d], "currency_sum": %d}`, i, i, i, next, i))
	}
	body := strings.Join(lines, "\n")
	const parallel = 30
	answers := make([]importAnswer, parallel)
	var wg sync.WaitGroup
	for k := 0; k < parallel; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[k] = e.importBatch("format=thinksns", body)
		}()
	}
	wg.Wait()
	created := 0
	for _, a := range answers {
		if a.Errors != 0 {
			t.Fatalf("errors: %v", a.statuses())
		}
		created += a.Created
		for i, r := range a.Results {
			if r.UserID != int64(i+1) {
				t.Fatalf("record %d answered user %d", i, r.UserID)
			}
		}
	}
	if created != n {
		t.Fatalf("%d records created over all requests, want %d", created, n)
	}
	page, err := e.store.ListProfiles(context.Background(), store.ProfileQuery{Limit: 100, Count: true})
	if err != nil || *page.Total != n {
		t.Fatalf("%d profiles, %v", *page.Total, err)
	}
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(i + 1)
		if b := balances(t, e.store, ids[i]); b[2] != int64(i+1) {
			t.Fatalf("user %d currency %d, want %d", i+1, b[2], i+1)
		}
	}
	for id, c := range followCounts(t, e.store, ids...) {
		if c != [2]int64{1, 1} {
			t.Fatalf("user %d follows %v, want one each way", id, c)
		}
	}
}

func TestImportTakenIDIsRemappedAndFollowsFollow(t *testing.T) {
	e := newEnv(t)
	native := e.createUser(map[string]any{"nickname": "native"}) // id 1
	// Record 2 follows 1 before 1 arrives: its edge must end at the
	// imported user 1, not at the native user holding id 1.
	a := e.importBatch("format=thinksns", `{"id": 2, "name": "two", "followings": [1]}`)
	if a.Created != 1 {
		t.Fatalf("%v", a.statuses())
	}
	a = e.importBatch("format=thinksns", `{"id": 1, "name": "one", "followings": [2]}`)
	if a.Created != 1 || a.Results[0].UserID == native || a.Results[0].UserID == 1 {
		t.Fatalf("%+v", a)
	}
	one := a.Results[0].UserID
	got := followCounts(t, e.store, native, one, 2)
	if got[native] != [2]int64{0, 0} || got[one] != [2]int64{1, 1} || got[2] != [2]int64{1, 1} {
		t.Fatalf("follows %v (native %d, imported one %d)", got, native, one)
	}
	// A later batch naming source id 1 follows the remapped user too.
	a = e.importBatch("format=thinksns", `{"id": 3, "name": "three", "followings": [1]}`)
	if got := followCounts(t, e.store, native, one); got[native] != [2]int64{0, 0} || got[one][0] != 2 {
		t.Fatalf("after a later batch: %v %v", got, a.statuses())
	}
}

func TestImportBadBodiesAndRecords(t *testing.T) {
	e := newEnv(t)
	e.do("POST", "/userve/v1/import/users/?format=thinksns", "id,name\n1,bob").wantError(t, http.StatusBadRequest, "not JSON")
	e.do("POST", "/userve/v1/import/users/?format=thinksns", "").wantError(t, http.StatusBadRequest, "empty")
	e.do("POST", "/userve/v1/import/users/?format=thinksns", `[{"id":1},`).wantError(t, http.StatusBadRequest, "record 1 is not valid JSON")
	e.do("POST", "/userve/v1/import/users/?format=csv", `{"id":1}`).wantError(t, http.StatusBadRequest, "format")
	e.do("POST", "/userve/v1/import/users/?format=thinksns&on_conflict=merge", `{"id":1}`).wantError(t, http.StatusBadRequest, "on_conflict")
	e.do("POST", "/userve/v1/import/users/?format=thinksns&size=3", `{"id":1}`).wantError(t, http.StatusBadRequest, "unknown parameter")
	e.doAuth("POST", "/userve/v1/import/users/?format=thinksns", `{"id":1}`, "").want(t, http.StatusUnauthorized)
	var over bytes.Buffer
	for i := 1; i <= 1001; i++ {
		fmt.Fprintf(&over, "{\"id\": %d, \"name\": \"u_%d\"}\n", i, i)
	}
	e.do("POST", "/userve/v1/import/users/?format=thinksns", over.Bytes()).wantError(t, http.StatusBadRequest, "at most 1000 records")
	if page, _ := e.store.ListProfiles(context.Background(), store.ProfileQuery{Limit: 1, Count: true}); *page.Total != 0 {
		t.Fatalf("a refused batch wrote %d users", *page.Total)
	}
	body := strings.Join([]string{
		`{"id": 1, "name": "ok_one"}`,
		`{"id": 2, "name": "plain", "password": "secret123"}`,
		`{"id": 3, "name": "md5", "password": "5f4dcc3b5aa765d61d8327deb882cf99"}`,
		`not json`,
		`{"name": "no_id"}`,
		`{"id": 6, "name": "bad_sex", "sex": 7, "created_at": "yesterday"}`,
		`{"id": 7, "name": "self", "followings": [7]}`,
		`{"id": 8, "name": "ok_two", "followings": [1]}`,
	}, "\n")
	for _, dry := range []string{"1", "0"} {
		a := e.importBatch("format=thinksns&dry_run="+dry, body)
		want := []string{"created", "error: password: password hash is in no supported format",
			"error: password: password hash is in no supported format", "error: line 4 is not valid JSON",
			"error: id is required", "error: sex: must be 0 (unknown), 1 (male) or 2 (female), not 7; created_at \"yesterday\"",
			"error: followings: a user cannot follow itself (7)", "created"}
		got := a.statuses()
		for i := range want {
			if !strings.HasPrefix(got[i], want[i]) {
				t.Fatalf("dry_run=%s record %d: %q, want %q", dry, i, got[i], want[i])
			}
		}
		page, _ := e.store.ListProfiles(context.Background(), store.ProfileQuery{Limit: 10, Count: true})
		if dry == "1" && *page.Total != 0 || dry == "0" && *page.Total != 2 {
			t.Fatalf("dry_run=%s: %d users stored", dry, *page.Total)
		}
	}
	p, _ := e.store.GetProfile(context.Background(), 2)
	if p != nil {
		t.Fatalf("a record with a plaintext password was stored: %+v", p)
	}
}

func TestExportRoundTrip(t *testing.T) {
	src := newEnv(t)
	for _, s := range []struct{ format, file string }{
		{"thinksns", "thinksns-users.json"}, {"minapp", "minapp-userprofile.jsonl"}, {"userve", "userve-export.jsonl"},
	} {
		if a := src.importBatch("format="+s.format, sample(t, s.file)); a.Errors != 0 {
			t.Fatalf("%s: %v", s.file, a.statuses())
		}
	}
	exported := src.do("GET", "/userve/v1/export/users/?include=password_hash", nil)
	if exported.status != http.StatusOK || exported.header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export: %d %s", exported.status, exported.raw)
	}
	lines := nonEmptyLines(exported.raw)
	if len(lines) != 9 {
		t.Fatalf("export has %d lines, want 9", len(lines))
	}
	if !bytes.Contains(exported.raw, []byte(`"_password_hash":"$2y$10$`)) {
		t.Fatal("include=password_hash exported no hash")
	}
	plain := src.do("GET", "/userve/v1/export/users/", nil).want(t, http.StatusOK)
	if bytes.Contains(plain.raw, []byte("password_hash")) || bytes.Contains(plain.raw, []byte("$2y$")) {
		t.Fatal("the export without include=password_hash shows hashes")
	}
	filtered := src.do("GET", `/userve/v1/export/users/?where={"gender":2}`, nil).want(t, http.StatusOK)
	if n := len(nonEmptyLines(filtered.raw)); n != 4 {
		t.Fatalf("where gender=2 exported %d users, want 4", n)
	}

	dst := newEnv(t)
	if a := dst.importBatch("format=userve", exported.raw); a.Created != 9 || a.Errors != 0 {
		t.Fatalf("re-import: %v", a.statuses())
	}
	list := func(e *env) []any {
		r := e.do("GET", "/userve/v2.2/miniapp/user_profile/?limit=100", nil).want(t, http.StatusOK)
		return r.body["objects"].([]any)
	}
	a, b := list(src), list(dst)
	aj, _ := json.Marshal(a)
	bj, _ := json.Marshal(b)
	if !bytes.Equal(aj, bj) {
		t.Fatalf("profile lists differ:\n%s\n%s", aj, bj)
	}
	ids := []int64{1, 2, 3, 4, 7, 8, 36619758, 36619759, 36619760}
	if fa, fb := followCounts(t, src.store, ids...), followCounts(t, dst.store, ids...); !equalMaps(fa, fb) {
		t.Fatalf("follows differ: %v vs %v", fa, fb)
	}
	for _, id := range ids {
		if balances(t, src.store, id) != balances(t, dst.store, id) {
			t.Fatalf("user %d balances differ", id)
		}
		pa, _ := src.store.GetProfile(context.Background(), id)
		pb, _ := dst.store.GetProfile(context.Background(), id)
		if pa.PasswordHash != pb.PasswordHash || pa.Bio != pb.Bio || pa.Location != pb.Location || !slices.Equal(pa.Groups, pb.Groups) {
			t.Fatalf("user %d differs: %+v vs %+v", id, pa, pb)
		}
	}
	ga := src.do("GET", "/userve/v1/user-group/?limit=100", nil).want(t, http.StatusOK)
	gb := dst.do("GET", "/userve/v1/user-group/?limit=100", nil).want(t, http.StatusOK)
	if !bytes.Equal(ga.raw, gb.raw) {
		t.Fatalf("groups differ:\n%s\n%s", ga.raw, gb.raw)
	}
}

func nonEmptyLines(b []byte) [][]byte {
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			out = append(out, append([]byte(nil), sc.Bytes()...))
		}
	}
	return out
}

// A batch may exceed the server-wide 1 MiB body limit: 1,000 records of
// 1.4 KiB each go in.
func TestImportBatchOverOneMiB(t *testing.T) {
	e := newEnv(t)
	var b bytes.Buffer
	bio, avatar := strings.Repeat("b", 1000), "https://example.com/"+strings.Repeat("a", 400)
	for i := 1; i <= 1000; i++ {
		fmt.Fprintf(&b, "{\"id\": %d, \"name\": \"u_%d\", \"bio\": %q, \"avatar\": %q}\n", i, i, bio, avatar)
	}
	if b.Len() <= 1<<20 {
		t.Fatalf("body of %d bytes is not over 1 MiB", b.Len())
	}
	if a := e.importBatch("format=thinksns", b.Bytes()); a.Created != 1000 {
		t.Fatalf("%d created: %v", a.Created, a.statuses()[:1])
	}
}

// While two exports stream, a third is a 429 with Retry-After, not a third
// chunk in memory; once they end, exports go through again.
func TestExportWhileTwoStreamIsTooManyRequests(t *testing.T) {
	e := newEnv(t)
	e.createUser(map[string]any{"nickname": "u"})
	release := storetest.HoldExports(e.store, 2)
	r := e.do("GET", "/userve/v1/export/users/", nil).want(t, http.StatusTooManyRequests)
	if r.header.Get("Retry-After") == "" || !strings.Contains(fmt.Sprint(r.body["error_msg"]), "maximum of 2 exports") {
		t.Errorf("answer: %v %s", r.header, r.raw)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if n := len(nonEmptyLines(e.do("GET", "/userve/v1/export/users/", nil).want(t, http.StatusOK).raw)); n != 1 {
		t.Errorf("export after the two: %d lines", n)
	}
}
