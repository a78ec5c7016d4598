package plus_test

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
	"sync"
	"testing"
	"time"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/internal/egress"
	"userve.dev/userve/openapi/conformance"
	"userve.dev/userve/server"
	"userve.dev/userve/server/auth"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/plus"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/store/storetest"
	"userve.dev/userve/server/verify"
	"userve.dev/userve/test/mongofixture"
)

func TestMain(m *testing.M) { os.Exit(mongofixture.Run(m)) }

// settleWait is how long the replicas' retries wait for a live holder of
// their idempotency key (store.WithSettleWait).
const settleWait = 300 * time.Millisecond

const (
	adminToken = "admin-token-for-plus-tests-0123456789"
	jwtKey     = "plus-test-jwt-key-0123456789abcdef0123"
)

// expectInjected500 is the header of a request whose 500 a test provokes
// with an injected store fault (see conformance.ExpectUndocumented).
const expectInjected500 = conformance.ExpectUndocumented + ": 500"

// clock is the fake time shared by a tenant's stores and token issuers.
type clock struct {
	mu     sync.Mutex
	t      time.Time
	real   bool          // follow the wall clock (plus offset) instead
	offset time.Duration // added to the wall clock when real
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real {
		return time.Now().Add(c.offset)
	}
	return c.t
}
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.offset += d
	c.mu.Unlock()
}

// outbox captures codes instead of delivering them.
type outbox struct {
	mu   sync.Mutex
	msgs []verify.Message
	fail error
}

func (o *outbox) Send(_ context.Context, m verify.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail != nil {
		return o.fail
	}
	o.msgs = append(o.msgs, m)
	return nil
}

// code is the last code sent to `to`.
func (o *outbox) code(t *testing.T, to string) string {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.msgs) - 1; i >= 0; i-- {
		if o.msgs[i].To == to && o.msgs[i].Purpose != verify.PurposeNotice {
			return o.msgs[i].Code
		}
	}
	t.Fatalf("no code was sent to %s", to)
	return ""
}

// notices are the account notices sent to `to`, oldest first.
func (o *outbox) notices(to string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, m := range o.msgs {
		if m.To == to && m.Purpose == verify.PurposeNotice {
			out = append(out, m.Notice)
		}
	}
	return out
}

func (o *outbox) count() int { o.mu.Lock(); defer o.mu.Unlock(); return len(o.msgs) }

// tenant is one tenant database; replicas are servers over it.
type tenant struct {
	t        *testing.T
	uri, db  string
	clock    *clock
	outbox   *outbox
	spec     v1alpha1.UserServiceSpec
	cfgEdit  func(*config.Config)
	noOutbox bool      // use the configured delivery (webhook, SMTP, log)
	logOut   io.Writer // the servers' log (info and up); nil: warnings, if USERVE_TEST_LOG
	// weChatHTTP is the client of WeChat calls (short timeouts in tests).
	weChatHTTP *http.Client
	// checkMemory and checkWait bound the replicas' password checks
	// (plus.Options); zero: auth's defaults.
	checkMemory int64
	checkWait   time.Duration
	// events tune the replicas' event workers (spec.events; events_test.go).
	events server.EventsOptions
	// egress guards the replicas' outbound calls (server.Options.Egress).
	egress *egress.Guard
	// ledgerLease is the replicas' store.WithLedgerLease; zero: the default.
	ledgerLease time.Duration
	// crash, when armed, stops the replicas' ledger steps half-way.
	crash storetest.Crash
}

func newTenant(t *testing.T) *tenant {
	t.Helper()
	return &tenant{
		t: t, uri: mongofixture.URI(t), db: mongofixture.NewDatabase(t).Name(),
		clock:  &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)},
		outbox: &outbox{},
	}
}

func (tn *tenant) config() *config.Config {
	us := &v1alpha1.UserService{Spec: tn.spec}
	us.Name, us.Namespace = "acme", "tenants"
	v1alpha1.SetDefaults(us)
	cfg := &config.Config{Service: us, MongoURI: tn.uri, Database: tn.db,
		AdminTokens: []config.AdminToken{{Name: "admin-1", Token: adminToken}}, JWTKey: []byte(jwtKey), Issuer: "tenants/acme"}
	if tn.cfgEdit != nil {
		tn.cfgEdit(cfg)
	}
	return cfg
}

// replica is one server process's worth of state: its own store client
// and handlers over the tenant's database.
type replica struct {
	t     *testing.T
	srv   *httptest.Server
	store *store.Store
	// metrics serves the server's MetricsHandler, as its own listener does.
	metrics *httptest.Server
	server  *server.Server
}

func (tn *tenant) replica() *replica {
	t := tn.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	storeOpts := []store.Option{store.WithClock(tn.clock.Now), store.WithSettleWait(settleWait), store.WithFault(tn.crash.Fault)}
	if tn.ledgerLease > 0 {
		storeOpts = append(storeOpts, store.WithLedgerLease(tn.ledgerLease))
	}
	st, err := store.Open(ctx, tn.uri, tn.db, storeOpts...)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	var logOut io.Writer = io.Discard
	if os.Getenv("USERVE_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	level := slog.LevelWarn
	if tn.logOut != nil {
		logOut, level = tn.logOut, slog.LevelInfo
	}
	opts := server.Options{
		Logger: slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level})),
		Plus: plus.Options{HashCost: 4, Now: tn.clock.Now, WeChatHTTP: tn.weChatHTTP,
			CheckMemory: tn.checkMemory, CheckWait: tn.checkWait},
		Egress: tn.egress,
	}
	if !tn.noOutbox {
		opts.Plus.Sender = tn.outbox
	}
	opts.Events = tn.events
	s := server.New(tn.config(), st, opts)
	if tn.spec.Events.Webhook != nil {
		// As a pool would: the background work (the event worker among
		// it) without Run.
		s.Start(context.Background())
		t.Cleanup(s.Close)
	}
	srv := httptest.NewServer(conformance.Handler(t, s))
	t.Cleanup(srv.Close)
	metrics := httptest.NewServer(s.MetricsHandler())
	t.Cleanup(metrics.Close)
	return &replica{t: t, srv: srv, store: st, metrics: metrics, server: s}
}

type resp struct {
	status int
	body   []byte
	header http.Header
}

func (r resp) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %s", r.status, r.body)
	}
	return m
}

func (r resp) list(t *testing.T) []map[string]any {
	t.Helper()
	var l []map[string]any
	if err := json.Unmarshal(r.body, &l); err != nil {
		t.Fatalf("response %d is not a JSON array: %s", r.status, r.body)
	}
	return l
}

// call sends a request; body is a string (sent as is) or marshalled.
// Extra headers come as "Name: value".
func (rp *replica) call(method, path, token string, body any, headers ...string) resp {
	rp.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			rp.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, rp.srv.URL+path, rd)
	if err != nil {
		rp.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		rp.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, body: data, header: res.Header}
}

// expect fails unless the response has status; it returns the response.
func expect(t *testing.T, r resp, status int) resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

// expectInvalid checks a 422 naming field.
func expectInvalid(t *testing.T, r resp, field string) {
	t.Helper()
	expect(t, r, http.StatusUnprocessableEntity)
	m := r.obj(t)
	errs, _ := m["errors"].(map[string]any)
	if _, ok := errs[field]; !ok || m["message"] == "" {
		t.Fatalf("422 does not name %q: %s", field, r.body)
	}
}

// register makes a user through codes and POST /users; returns id and token.
func (tn *tenant) register(rp *replica, name, phone, password string) (int64, string) {
	t := tn.t
	t.Helper()
	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": phone}), http.StatusAccepted)
	code := tn.outbox.code(t, phone)
	r := expect(t, rp.call("POST", "/api/v2/users", "", map[string]any{
		"name": name, "phone": phone, "password": password, "verifiable_type": "sms", "verifiable_code": code,
	}), http.StatusCreated)
	token, _ := r.obj(t)["token"].(string)
	me := expect(t, rp.call("GET", "/api/v2/user", token, nil), http.StatusOK).obj(t)
	return int64(me["id"].(float64)), token
}

// quickUser makes a user in the store directly (no code round trip) and
// logs in; for tests about other things than registration.
func (tn *tenant) quickUser(rp *replica, name string) (int64, string) {
	t := tn.t
	t.Helper()
	hash, err := auth.NewHasher(4).Hash("secret-" + name)
	if err != nil {
		t.Fatal(err)
	}
	p := &store.Profile{Username: name, Nickname: name, PasswordHash: hash}
	if err := rp.store.CreateProfile(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	r := expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": name, "password": "secret-" + name}), http.StatusOK)
	return p.ID, r.obj(t)["access_token"].(string)
}

// noSecrets fails if a response body shows a password hash or a code.
func noSecrets(t *testing.T, body []byte, codes ...string) {
	t.Helper()
	s := string(body)
	if strings.Contains(s, "$2a$") || strings.Contains(s, "password") {
		t.Fatalf("response shows a password (hash): %s", s)
	}
	for _, c := range codes {
		if c != "" && strings.Contains(s, c) {
			t.Fatalf("response shows code %s: %s", c, s)
		}
	}
}
