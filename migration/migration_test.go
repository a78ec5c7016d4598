package migration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/openapi/conformance"
	"userve.dev/userve/server"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/store/storetest"
	"userve.dev/userve/test/mongofixture"
)

func TestMain(m *testing.M) { os.Exit(mongofixture.Run(m)) }

const token = "migration-test-admin-token-0123456789"

// tenant is one tenant server over a fresh database.
type tenant struct {
	url   string
	store *store.Store
}

func newTenant(t *testing.T) *tenant {
	t.Helper()
	us := &v1alpha1.UserService{}
	us.Name, us.Namespace = "acme", "tenants"
	v1alpha1.SetDefaults(us)
	db := mongofixture.NewDatabase(t).Name()
	cfg := &config.Config{Service: us, MongoURI: mongofixture.URI(t), Database: db,
		AdminTokens: []config.AdminToken{{Name: "admin-1", Token: token}}, JWTKey: []byte("migration-test-jwt-key-0123456789abcdef"), Issuer: "tenants/acme"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, cfg.MongoURI, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	s := server.New(cfg, st, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := httptest.NewServer(conformance.Handler(t, s))
	t.Cleanup(srv.Close)
	return &tenant{url: srv.URL, store: st}
}

func (tn *tenant) client() *Client { return &Client{BaseURL: tn.url, Token: token, Retries: 2} }

func (tn *tenant) count(t *testing.T) int64 {
	t.Helper()
	page, err := tn.store.ListProfiles(context.Background(), store.ProfileQuery{Limit: 1, Count: true})
	if err != nil {
		t.Fatal(err)
	}
	return *page.Total
}

// writeThinkSNS writes n users (each following the next) plus bad lines.
func writeThinkSNS(t *testing.T, n int, bad map[int]string) string {
	t.Helper()
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		if line, ok := bad[i]; ok {
			b.WriteString(line + "\n")
			continue
		}
		fmt.Fprintf(&b, `{"id": %d, "name": "user_%d", "email": "u%d@example.com", "followings": [%d], "created_at": "2018-01-22 10:05:44"}`+"\n", i, i, i, i%n+1)
	}
	path := filepath.Join(t.TempDir(), "users.jsonl")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// An import stopped after its second batch resumes where it stopped. The
// checkpoint is set back one batch, as if the process died after the
// tenant took a batch but before the checkpoint recorded it: that batch's
// records come back skipped, and nothing exists twice.
func TestImportResumesAfterInterruption(t *testing.T) {
	tn := newTenant(t)
	const n = 300
	path := writeThinkSNS(t, n, map[int]string{7: `{"id": 7, "name": "user_7", "password": "plaintext!"}`, 250: `{not json`})
	ctx, cancel := context.WithCancel(context.Background())
	var plain bytes.Buffer
	opt := ImportOptions{Client: tn.client(), File: path, Format: "thinksns", Policy: "skip", BatchSize: 50,
		Progress: &plain, Interval: time.Nanosecond,
		afterBatch: func(b int) {
			if b == 3 {
				cancel()
			}
		}}
	sum, err := Import(ctx, opt)
	if !errors.Is(err, context.Canceled) || sum.Complete || sum.Created != 149 {
		t.Fatalf("interrupted run: %+v, %v", sum, err)
	}
	cp, err := readCheckpoint(path + ".checkpoint")
	if err != nil || cp == nil || cp.Done != 150 {
		t.Fatalf("checkpoint %+v, %v", cp, err)
	}
	cp.Done = 100 // the third batch went in, its checkpoint did not
	if err := writeCheckpoint(path+".checkpoint", *cp); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plain.String(), "import: 100 records") {
		t.Fatalf("no progress lines: %q", plain.String())
	}

	opt.afterBatch = nil
	sum, err = Import(context.Background(), opt)
	if err != nil || !sum.Complete {
		t.Fatalf("resumed run: %+v, %v", sum, err)
	}
	if sum.Resumed != 100 || sum.Skipped != 50 || sum.Created != 149 || sum.Errors != 1 {
		t.Fatalf("resumed run: %+v", sum)
	}
	if got := tn.count(t); got != n-2 {
		t.Fatalf("%d users, want %d", got, n-2)
	}
	if _, err := os.Stat(path + ".checkpoint"); !os.IsNotExist(err) {
		t.Fatal("the checkpoint outlived a complete run")
	}
	// The error report holds both runs' failures, with the source records.
	report, _ := os.ReadFile(path + ".errors.jsonl")
	lines := strings.Split(strings.TrimSpace(string(report)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"record":6`) || !strings.Contains(lines[0], "password") ||
		!strings.Contains(lines[0], `"source":{"id":7`) || !strings.Contains(lines[1], `"record":249`) {
		t.Fatalf("error report:\n%s", report)
	}
	// Follows are exact: everyone has one follower and one following but
	// the followers of the failed users 7 and 250 (none).
	ids := []int64{1, 5, 6, 8, 100, 101, 150, 249, 251, 300}
	followers, followings, err := tn.store.FollowCounts(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		wantIn, wantOut := int64(1), int64(1)
		if id == 8 || id == 251 {
			wantIn = 0 // their followers (7, 900) failed
		}
		if id == 6 || id == 249 {
			wantOut = 1 // the edge to the failed user is kept: it may come later
		}
		if followers[id] != wantIn || followings[id] != wantOut {
			t.Errorf("user %d: %d followers, %d followings; want %d, %d", id, followers[id], followings[id], wantIn, wantOut)
		}
	}
	// A fixed record imported later gets the edges waiting for it.
	fixed := filepath.Join(t.TempDir(), "fixed.jsonl")
	_ = os.WriteFile(fixed, []byte(`{"id": 7, "name": "user_7", "followings": [8]}`+"\n"), 0o600)
	if sum, err := Import(context.Background(), ImportOptions{Client: tn.client(), File: fixed, Format: "thinksns", Policy: "skip", BatchSize: 10}); err != nil || sum.Created != 1 {
		t.Fatalf("fixed record: %+v, %v", sum, err)
	}
	followers, followings, _ = tn.store.FollowCounts(context.Background(), []int64{7, 8})
	if followers[7] != 1 || followings[7] != 1 || followers[8] != 1 {
		t.Fatalf("after the fix: followers %v followings %v", followers, followings)
	}
}

func TestImportRefusesAForeignCheckpoint(t *testing.T) {
	tn := newTenant(t)
	path := writeThinkSNS(t, 3, nil)
	_ = writeCheckpoint(path+".checkpoint", checkpoint{Size: 1, Format: "thinksns", Done: 1})
	_, err := Import(context.Background(), ImportOptions{Client: tn.client(), File: path, Format: "thinksns", Policy: "skip", BatchSize: 10})
	if err == nil || !strings.Contains(err.Error(), "another file") {
		t.Fatalf("err = %v", err)
	}
	if tn.count(t) != 0 {
		t.Fatal("imported despite the checkpoint mismatch")
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	tn := newTenant(t)
	path := writeThinkSNS(t, 50, nil)
	var bar bytes.Buffer
	sum, err := Import(context.Background(), ImportOptions{Client: tn.client(), File: path, Format: "thinksns", Policy: "skip", DryRun: true, BatchSize: 20,
		Progress: &bar, Terminal: true})
	if err != nil || sum.Created != 50 || tn.count(t) != 0 {
		t.Fatalf("%+v, %v, %d users", sum, err, tn.count(t))
	}
	// The progress bar (drawn as on a terminal) shows records and errors.
	if !strings.Contains(bar.String(), "import 50 records") || !strings.Contains(bar.String(), "0 errors") || !strings.Contains(bar.String(), "100%") {
		t.Fatalf("progress bar: %q", bar.String())
	}
	if _, err := os.Stat(path + ".checkpoint"); !os.IsNotExist(err) {
		t.Fatal("a dry run wrote a checkpoint")
	}
}

func TestExportStreamsAndReimports(t *testing.T) {
	src, dst := newTenant(t), newTenant(t)
	path := writeThinkSNS(t, 120, nil)
	if _, err := Import(context.Background(), ImportOptions{Client: src.client(), File: path, Format: "thinksns", Policy: "skip", BatchSize: 100}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	n, _, err := Export(context.Background(), ExportOptions{Client: src.client(), Out: &out})
	if err != nil || n != 120 {
		t.Fatalf("export %d, %v", n, err)
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	_ = os.WriteFile(file, out.Bytes(), 0o600)
	sum, err := Import(context.Background(), ImportOptions{Client: dst.client(), File: file, Format: "userve", Policy: "skip", BatchSize: 1000})
	if err != nil || sum.Created != 120 {
		t.Fatalf("%+v, %v", sum, err)
	}
	f1, g1, _ := src.store.FollowCounts(context.Background(), []int64{1, 60, 120})
	f2, g2, _ := dst.store.FollowCounts(context.Background(), []int64{1, 60, 120})
	if fmt.Sprint(f1, g1) != fmt.Sprint(f2, g2) {
		t.Fatalf("follows differ: %v %v vs %v %v", f1, g1, f2, g2)
	}
	// A wrong token is the tenant's 401, not a broken file.
	bad := src.client()
	bad.Token = "wrong"
	var apiErr *APIError
	if _, _, err := Export(context.Background(), ExportOptions{Client: bad, Out: io.Discard}); !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Fatalf("wrong token: %v", err)
	}
}

func TestRecordReader(t *testing.T) {
	in := "[\n  {\"id\": 1,\n   \"name\": \"a\"},\n  {\"id\": 2}\n]"
	rr := NewRecordReader(strings.NewReader(in))
	var got []string
	for {
		raw, bad, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || bad != nil {
			t.Fatal(err, bad)
		}
		got = append(got, string(raw))
	}
	if strings.Join(got, "|") != `{"id":1,"name":"a"}|{"id":2}` {
		t.Fatalf("%q", got)
	}
	if _, _, err := NewRecordReader(strings.NewReader("id,name")).Next(); err == nil {
		t.Fatal("a CSV file was read as records")
	}
	var js json.RawMessage
	_ = js
}

// Batches sent several at a time all go in, and an interruption leaves a
// checkpoint that only counts batches whose answers came back, so the
// resumed run ends with every user once and follows exact.
func TestConcurrentBatchesResume(t *testing.T) {
	tn := newTenant(t)
	const n = 400
	path := writeThinkSNS(t, n, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opt := ImportOptions{Client: tn.client(), File: path, Format: "thinksns", Policy: "skip", BatchSize: 20, Concurrency: 4,
		afterBatch: func(b int) {
			if b == 6 {
				cancel()
			}
		}}
	if _, err := Import(ctx, opt); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	cp, err := readCheckpoint(path + ".checkpoint")
	if err != nil || cp == nil || cp.Done%20 != 0 || cp.Done < 120 || int64(cp.Done) > tn.count(t) {
		t.Fatalf("checkpoint %+v (%v) with %d users in", cp, err, tn.count(t))
	}
	opt.afterBatch = nil
	sum, err := Import(context.Background(), opt)
	if err != nil || !sum.Complete || sum.Errors != 0 || sum.Resumed != cp.Done || sum.Created+sum.Skipped != n-cp.Done {
		t.Fatalf("resumed run: %+v, %v", sum, err)
	}
	if got := tn.count(t); got != n {
		t.Fatalf("%d users, want %d", got, n)
	}
	ids := []int64{1, 20, 21, 119, 120, 121, 200, 399, 400}
	followers, followings, err := tn.store.FollowCounts(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if followers[id] != 1 || followings[id] != 1 {
			t.Errorf("user %d: %d followers, %d followings; want 1, 1", id, followers[id], followings[id])
		}
	}
}

// The CLI's client bounds the wait for headers, not the exchange: an export
// streaming for longer than that bound still arrives whole, and a tenant
// that never answers is an error after it.
func TestHTTPClientBoundsHeadersNotStreams(t *testing.T) {
	const bound = 300 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("where") == "silent" {
			time.Sleep(3 * bound)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		for i := 1; i <= 10; i++ { // 10 lines over about 3 bounds
			fmt.Fprintf(w, "{\"id\":%d}\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(bound / 3)
		}
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, Token: token, HTTP: NewHTTPClient(bound)}
	n := 0
	if err := c.Export(context.Background(), "", false, io.Discard, func() { n++ }); err != nil || n != 10 {
		t.Fatalf("a stream longer than the header bound: %d lines, %v", n, err)
	}
	if err := c.Export(context.Background(), "silent", false, io.Discard, func() {}); err == nil {
		t.Fatal("a tenant that never answered was not an error")
	}
}

// An export asked for while the replica streams its maximum of two waits
// out the 429's Retry-After and then comes whole.
func TestExportWaitsForAFreeSlot(t *testing.T) {
	tn := newTenant(t)
	path := writeThinkSNS(t, 5, nil)
	if _, err := Import(context.Background(), ImportOptions{Client: tn.client(), File: path, Format: "thinksns", Policy: "skip", BatchSize: 100}); err != nil {
		t.Fatal(err)
	}
	release := storetest.HoldExports(tn.store, 2)
	released := make(chan error, 1)
	time.AfterFunc(time.Second, func() { released <- release() })
	started := time.Now()
	n, _, err := Export(context.Background(), ExportOptions{Client: tn.client(), Out: io.Discard})
	if err != nil || n != 5 {
		t.Fatalf("export: %d users, %v", n, err)
	}
	if waited := time.Since(started); waited < time.Second {
		t.Errorf("the export came after %v, before a slot was free", waited)
	}
	if err := <-released; err != nil {
		t.Fatal(err)
	}
}
