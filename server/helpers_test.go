package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
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

const (
	adminToken = "test-admin-token-0123456789abcdef0123"
	jwtKey     = "test-jwt-key-0123456789abcdef0123456789"
)

// env is one tenant server over a fresh database.
type env struct {
	t     testing.TB
	srv   *httptest.Server
	store *store.Store
	clock *fakeClock
	// handler is the server's http.Handler, for benchmarks without a network.
	handler http.Handler
	// metrics serves the server's MetricsHandler, as its own listener does.
	metrics *httptest.Server
	// server is the server under test, for the tests of its background
	// work (Start).
	server *server.Server
	// crash, when armed, stops the store's ledger steps half-way.
	crash *storetest.Crash
}

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// testSpec is a tenant with one custom field of every type.
func testSpec() v1alpha1.UserServiceSpec {
	maxLen := int32(5)
	return v1alpha1.UserServiceSpec{
		API: v1alpha1.APISpec{Plus: v1alpha1.PlusAPISpec{Enabled: new(false)}},
		Profile: v1alpha1.ProfileSpec{CustomFields: []v1alpha1.CustomField{
			{Name: "name", Type: v1alpha1.FieldString},
			{Name: "motto", Type: v1alpha1.FieldString, MaxLength: &maxLen},
			{Name: "age", Type: v1alpha1.FieldInteger},
			{Name: "score", Type: v1alpha1.FieldNumber},
			{Name: "vip", Type: v1alpha1.FieldBoolean},
			{Name: "tags", Type: v1alpha1.FieldArray, MaxLength: &maxLen},
			{Name: "prefs", Type: v1alpha1.FieldObject},
			{Name: "birthday", Type: v1alpha1.FieldDate},
		}},
	}
}

func newEnv(t *testing.T) *env { return newEnvWith(t, testSpec(), mongofixture.URI(t), "") }

// newEnvWith starts a server for spec on the MongoDB at uri (a fresh
// database unless one is named).
func newEnvWith(t testing.TB, spec v1alpha1.UserServiceSpec, uri, database string, opts ...server.Options) *env {
	t.Helper()
	if database == "" {
		database = mongofixture.NewDatabase(t).Name()
	}
	us := &v1alpha1.UserService{Spec: spec}
	us.Name, us.Namespace = "acme", "tenants"
	v1alpha1.SetDefaults(us)
	cfg := &config.Config{Service: us, MongoURI: uri, Database: database,
		AdminTokens: []config.AdminToken{{Name: "admin-1", Token: "other-token"}, {Name: "alice", Token: adminToken}}, JWTKey: []byte(jwtKey), Issuer: "tenants/acme"}
	clock := &fakeClock{now: time.Unix(1_600_000_000, 0)}
	var names []string
	for _, f := range spec.Profile.CustomFields {
		names = append(names, f.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	crash := &storetest.Crash{}
	st, err := store.Open(ctx, uri, database, store.WithClock(clock.Now), store.WithCustomFieldIndexes(names...), store.WithFault(crash.Fault))
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	var logOut io.Writer = io.Discard
	if os.Getenv("USERVE_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	log := slog.New(slog.NewJSONHandler(logOut, nil))
	var o server.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	o.Logger = log
	s := server.New(cfg, st, o)
	srv := httptest.NewServer(conformance.Handler(t, s))
	t.Cleanup(srv.Close)
	metrics := httptest.NewServer(s.MetricsHandler())
	t.Cleanup(metrics.Close)
	return &env{t: t, srv: srv, store: st, clock: clock, handler: s.Handler(), metrics: metrics, server: s, crash: crash}
}

// scrape is the Prometheus text of the server's metrics listener.
func (e *env) scrape() string {
	e.t.Helper()
	res, err := e.metrics.Client().Get(e.metrics.URL + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /metrics on the metrics listener: %d %s", res.StatusCode, body)
	}
	return string(body)
}

// plusSpec is testSpec with the end-user dialect on.
func plusSpec() v1alpha1.UserServiceSpec {
	spec := testSpec()
	spec.API.Plus.Enabled = nil
	return spec
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
	list   []any
}

// do sends a request with the admin token; body may be a string (sent as
// is), nil, or anything JSON-encodable.
func (e *env) do(method, path string, body any) response {
	e.t.Helper()
	return e.doAuth(method, path, body, "Bearer "+adminToken)
}

func (e *env) doAuth(method, path string, body any, auth string, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ": ")
		req.Header.Set(name, value)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	if len(bytes.TrimSpace(raw)) > 0 {
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			e.t.Fatalf("%s %s: %d answer is not JSON: %s", method, path, res.StatusCode, raw)
		}
		switch x := v.(type) {
		case map[string]any:
			r.body = x
		case []any:
			r.list = x
		}
	}
	return r
}

// want fails unless the status matches.
func (r response) want(t testing.TB, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

// wantError checks an error status, the error shape, and that the message
// contains every fragment.
func (r response) wantError(t *testing.T, status int, fragments ...string) {
	t.Helper()
	r.want(t, status)
	if r.body["status"] != "error" {
		t.Fatalf("error body lacks status=error: %s", r.raw)
	}
	msg, _ := r.body["error_msg"].(string)
	for _, f := range fragments {
		if !strings.Contains(msg, f) {
			t.Fatalf("error_msg %q does not mention %q", msg, f)
		}
	}
}

// wantMessage checks an end-user dialect error: the status and
// {"message": ...} containing every fragment, without the management shape.
func (r response) wantMessage(t *testing.T, status int, fragments ...string) {
	t.Helper()
	r.want(t, status)
	msg, ok := r.body["message"].(string)
	if !ok || r.body["status"] != nil || r.body["error_msg"] != nil {
		t.Fatalf("not an end-user error body: %s", r.raw)
	}
	for _, f := range fragments {
		if !strings.Contains(msg, f) {
			t.Fatalf("message %q does not mention %q", msg, f)
		}
	}
}

// createUser creates a profile and returns its id.
func (e *env) createUser(fields map[string]any) int64 {
	e.t.Helper()
	r := e.do("POST", "/userve/v2.0/miniapp/user_profile/", fields).want(e.t, http.StatusCreated)
	return num(e.t, r.body["user_id"])
}

func num(t testing.TB, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a number", v, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("%v is not an integer", v)
	}
	return i
}

// ids lists the user_id of each object of a list answer.
func ids(t *testing.T, r response) []int64 {
	t.Helper()
	objs, ok := r.body["objects"].([]any)
	if !ok {
		t.Fatalf("no objects: %s", r.raw)
	}
	out := []int64{}
	for _, o := range objs {
		out = append(out, num(t, o.(map[string]any)["user_id"]))
	}
	return out
}

func meta(t *testing.T, r response) map[string]any {
	t.Helper()
	m, ok := r.body["meta"].(map[string]any)
	if !ok {
		t.Fatalf("no meta: %s", r.raw)
	}
	return m
}
