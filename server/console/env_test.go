package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/openapi/conformance"
	"userve.dev/userve/server"
	"userve.dev/userve/server/auth"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/store"
	"userve.dev/userve/test/mongofixture"
)

func TestMain(m *testing.M) { os.Exit(mongofixture.Run(m)) }

const (
	adminToken = "console-admin-token-0123456789abcdef"
	otherToken = "console-other-token-0123456789abcdef"
	jwtKey     = "console-jwt-key-0123456789abcdef0123456"
)

// env is one tenant server, end-user API on, over a fresh database, with
// a clock the test moves.
type env struct {
	t       *testing.T
	srv     *httptest.Server
	store   *store.Store
	clock   *clock
	console string // the console's URL
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// consoleSpec has a custom field of each kind the console edits, and
// trusts the loopback as a proxy (tests send X-Forwarded-For).
func consoleSpec() v1alpha1.UserServiceSpec {
	maxLen := int32(10)
	return v1alpha1.UserServiceSpec{
		API: v1alpha1.APISpec{Plus: v1alpha1.PlusAPISpec{TrustedProxies: []string{"127.0.0.0/8", "::1/128"}}},
		Profile: v1alpha1.ProfileSpec{CustomFields: []v1alpha1.CustomField{
			{Name: "motto", Type: v1alpha1.FieldString, MaxLength: &maxLen},
			{Name: "level", Type: v1alpha1.FieldInteger},
			{Name: "vip", Type: v1alpha1.FieldBoolean},
			{Name: "tags", Type: v1alpha1.FieldArray},
		}},
	}
}

func newEnv(t *testing.T) *env { return newEnvWith(t, consoleSpec()) }

func newEnvWith(t *testing.T, spec v1alpha1.UserServiceSpec) *env {
	t.Helper()
	return newReplica(t, spec, mongofixture.NewDatabase(t).Name(), nil, defaultTokens)
}

// defaultTokens are the tenant's admin tokens: alice's, and an unnamed one.
var defaultTokens = []config.AdminToken{{Name: "admin-1", Token: otherToken}, {Name: "alice", Token: adminToken}}

// replica is another server of the same tenant: same database and clock;
// with tokens, the pod of a new version of the tenant's admin tokens.
func (e *env) replica(tokens ...config.AdminToken) *env {
	e.t.Helper()
	if tokens == nil {
		tokens = defaultTokens
	}
	return newReplica(e.t, consoleSpec(), e.store.Database(), e.clock, tokens)
}

func newReplica(t *testing.T, spec v1alpha1.UserServiceSpec, database string, c *clock, tokens []config.AdminToken) *env {
	t.Helper()
	uri := mongofixture.URI(t)
	us := &v1alpha1.UserService{Spec: spec}
	us.Name, us.Namespace = "acme", "tenants"
	v1alpha1.SetDefaults(us)
	cfg := &config.Config{Service: us, MongoURI: uri, Database: database, JWTKey: []byte(jwtKey), Issuer: "tenants/acme",
		AdminTokens: tokens}
	if c == nil {
		c = &clock{now: time.Now().UTC().Truncate(time.Second)}
	}
	var names []string
	for _, f := range spec.Profile.CustomFields {
		names = append(names, f.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := store.Open(ctx, uri, database, store.WithClock(c.Now), store.WithCustomFieldIndexes(names...))
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	var logOut io.Writer = io.Discard
	if os.Getenv("USERVE_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	s := server.New(cfg, st, server.Options{Logger: slog.New(slog.NewJSONHandler(logOut, nil)), Now: c.Now})
	srv := httptest.NewServer(conformance.Handler(t, s))
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, store: st, clock: c, console: srv.URL + "/userve/console"}
}

// browser is an HTTP client with its own cookies that does not follow
// redirects (tests look at them).
func (e *env) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// page is an answer's status, headers and body.
type page struct {
	status  int
	header  http.Header
	body    string
	request *http.Request
}

func (e *env) get(c *http.Client, path string, headers ...string) page {
	e.t.Helper()
	return e.send(c, http.MethodGet, path, nil, headers...)
}

func (e *env) post(c *http.Client, path string, form url.Values, headers ...string) page {
	e.t.Helper()
	return e.send(c, http.MethodPost, path, form, headers...)
}

func (e *env) send(c *http.Client, method, path string, form url.Values, headers ...string) page {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.console+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return page{status: res.StatusCode, header: res.Header, body: string(data), request: req}
}

func (p page) want(t *testing.T, status int) page {
	t.Helper()
	if p.status != status {
		t.Fatalf("status %d, want %d: %.2000s", p.status, status, p.body)
	}
	return p
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn logs c in with token and returns the session's CSRF token.
func (e *env) signIn(c *http.Client, token string) string {
	e.t.Helper()
	e.post(c, "/login", url.Values{"token": {token}}).want(e.t, http.StatusSeeOther)
	m := csrfInput.FindStringSubmatch(e.get(c, "/users/").want(e.t, http.StatusOK).body)
	if m == nil {
		e.t.Fatal("the users page has no CSRF token")
	}
	return m[1]
}

// api calls the management API with the admin token.
func (e *env) api(method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	return e.call(method, path, "Bearer "+adminToken, body)
}

func (e *env) call(method, path, authz string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	d := json.NewDecoder(res.Body)
	d.UseNumber()
	_ = d.Decode(&m)
	return res.StatusCode, m
}

// user creates an end user who can log in (name, password "secret-"+name)
// and returns the id and an access token of the end-user API.
func (e *env) user(name string, custom map[string]any) (int64, string) {
	e.t.Helper()
	hash, err := auth.NewHasher(4).Hash("secret-" + name)
	if err != nil {
		e.t.Fatal(err)
	}
	p := &store.Profile{Username: name, Nickname: name, PasswordHash: hash, Custom: custom}
	if err := e.store.CreateProfile(context.Background(), p); err != nil {
		e.t.Fatal(err)
	}
	status, body := e.call("POST", "/api/v2/auth/login", "", map[string]any{"login": name, "password": "secret-" + name})
	if status != http.StatusOK {
		e.t.Fatalf("end-user login of %s: %d %v", name, status, body)
	}
	return p.ID, body["access_token"].(string)
}

// audit is the audit log, newest first, filtered by query.
func (e *env) audit(query string) []map[string]any {
	e.t.Helper()
	status, body := e.api("GET", "/userve/v1/audit/?"+query, nil)
	if status != http.StatusOK {
		e.t.Fatalf("audit log: %d %v", status, body)
	}
	var out []map[string]any
	for _, o := range body["objects"].([]any) {
		out = append(out, o.(map[string]any))
	}
	return out
}
