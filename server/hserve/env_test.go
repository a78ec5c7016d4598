package hserve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	"userve.dev/userve/openapi/conformance"
	"userve.dev/userve/server"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/plus"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/verify/verifytest"
	"userve.dev/userve/server/wechat/wechattest"
	"userve.dev/userve/test/mongofixture"
)

func TestMain(m *testing.M) { os.Exit(mongofixture.Run(m)) }

const (
	adminToken    = "admin-token-for-hserve-tests-0123456789"
	jwtKey        = "hserve-test-jwt-key-0123456789abcdef01"
	clientID      = "a4d2d62965ddb57fa4d6"
	allowedOrigin = "https://app.acme.test"
	webhookSecret = "webhook-secret-for-hserve-tests"
	weChatAppID   = "wx00000000000000aa"
	weChatSecret  = "wechat-secret-for-hserve-tests"
)

// tenant is one tenant with the MinApp SDK dialect on, a custom field
// (age), SMS codes through a signed webhook the test reads, and WeChat
// answered by the local fake.
type tenant struct {
	t      *testing.T
	srv    *httptest.Server
	store  *store.Store
	hook   *verifytest.Webhook
	mail   *verifytest.SMTPServer
	wechat *wechattest.Fake
	wxBase string // the fake WeChat's URL
	clock  *clock // the tenant's clock
}

// clock is the wall clock plus an offset tests move forward (tokens, code
// intervals and rate-limit windows).
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

func newTenant(t *testing.T) *tenant {
	t.Helper()
	tn := &tenant{t: t, clock: &clock{}, hook: verifytest.NewWebhook(t, []byte(webhookSecret)), mail: verifytest.NewSMTPServer(t),
		wechat: wechattest.New(weChatAppID, weChatSecret)}
	wxBase, stop := tn.wechat.Start()
	t.Cleanup(stop)
	tn.wxBase = wxBase
	us := &v1alpha1.UserService{Spec: v1alpha1.UserServiceSpec{
		API: v1alpha1.APISpec{HServe: &v1alpha1.HServeAPISpec{Enabled: true, ClientID: clientID, AllowedOrigins: []string{allowedOrigin}}},
		Profile: v1alpha1.ProfileSpec{CustomFields: []v1alpha1.CustomField{
			{Name: "age", Type: v1alpha1.FieldInteger}, {Name: "motto", Type: v1alpha1.FieldString}}},
		Verification: v1alpha1.VerificationSpec{SMS: &v1alpha1.SMSSpec{Webhook: &v1alpha1.WebhookSpec{
			URL: tn.hook.URL, SecretRef: &v1alpha1.SecretKeyRef{Name: "s", Key: "k"}}},
			Mail: &v1alpha1.MailSpec{SMTP: &v1alpha1.SMTPSpec{Host: tn.mail.Host, Port: int32(tn.mail.Port), From: "noreply@acme.test"}}},
		WeChat: &v1alpha1.WeChatSpec{AppID: weChatAppID, APIBaseURL: wxBase, AppSecretRef: v1alpha1.SecretKeyRef{Name: "wx", Key: "secret"}},
	}}
	us.Name, us.Namespace = "acme", "tenants"
	v1alpha1.SetDefaults(us)
	cfg := &config.Config{Service: us, MongoURI: mongofixture.URI(t), Database: mongofixture.NewDatabase(t).Name(),
		AdminTokens: []config.AdminToken{{Name: "admin-1", Token: adminToken}}, JWTKey: []byte(jwtKey), Issuer: "tenants/acme",
		WebhookSecret: webhookSecret, WeChatSecret: weChatSecret}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, cfg.MongoURI, cfg.Database, store.WithClock(tn.clock.Now))
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	var logOut io.Writer = io.Discard
	if os.Getenv("USERVE_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	s := server.New(cfg, st, server.Options{
		Logger: slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Plus:   plus.Options{HashCost: 4, Now: tn.clock.Now, WeChatHTTP: &http.Client{Timeout: 2 * time.Second}},
	})
	if err := st.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	tn.srv = httptest.NewServer(conformance.Handler(t, s))
	t.Cleanup(tn.srv.Close)
	tn.store = st
	return tn
}

// code is the code delivered next to a phone (by the webhook, signed with
// the tenant's secret) or an e-mail address (by SMTP).
func (tn *tenant) code(to string) string {
	tn.t.Helper()
	code, err := tn.nextCode(to)
	if err != nil {
		tn.t.Fatal(err)
	}
	return code
}

// nextCode is code without failing the test, for handlers (t.Fatal
// belongs to the test's goroutine).
func (tn *tenant) nextCode(to string) (string, error) {
	timeout := time.After(10 * time.Second)
	// Only the channel of the address is read: other deliveries stay
	// queued for whoever waits for them.
	mails, hooks := tn.mail.Mails, tn.hook.Hooks
	if strings.Contains(to, "@") {
		hooks = nil
	} else {
		mails = nil
	}
	for {
		select {
		case m := <-mails:
			i := strings.Index(m.Data, "code is ")
			if len(m.To) != 1 || m.To[0] != to || i < 0 {
				return "", fmt.Errorf("next mail is not a code to %s: %+v", to, m)
			}
			return m.Data[i+8 : i+14], nil
		case h := <-hooks:
			if !h.SignedOK {
				return "", fmt.Errorf("webhook delivery not signed with the tenant secret: %s", h.Raw)
			}
			if code, _ := h.Body["code"].(string); h.Body["to"] == to && code != "" {
				return code, nil
			}
		case <-timeout:
			return "", fmt.Errorf("no code delivered to %s within 10s", to)
		}
	}
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

// call sends a request with headers given as "Name: value"; body is sent
// as JSON unless it is a string.
func (tn *tenant) call(method, path string, body any, headers ...string) resp {
	tn.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			tn.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, tn.srv.URL+path, rd)
	if err != nil {
		tn.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tn.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, body: data, header: res.Header}
}

// sdk is call as the SDK sends it: the client ID, and the token if any.
func (tn *tenant) sdk(method, path, token string, body any, headers ...string) resp {
	tn.t.Helper()
	headers = append(headers, "X-Hydrogen-Client-ID: "+clientID)
	if token != "" {
		headers = append(headers, "Authorization: Hydrogen-r1 "+token)
	}
	return tn.call(method, path, body, headers...)
}

func expect(t *testing.T, r resp, status int) resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

// expectError checks an error answer: status and an error_msg containing
// want.
func expectError(t *testing.T, r resp, status int, want string) {
	t.Helper()
	expect(t, r, status)
	m := r.obj(t)
	if msg, _ := m["error_msg"].(string); !strings.Contains(msg, want) || m["status"] != "error" {
		t.Fatalf("error_msg %q, want it to contain %q: %s", msg, want, r.body)
	}
}

// register makes a user through the SDK routes; returns id and token.
func (tn *tenant) register(name, password string) (int64, string) {
	tn.t.Helper()
	m := expect(tn.t, tn.sdk("POST", "/hserve/v2.1/register/username/", "", map[string]any{"username": name, "password": password}), http.StatusCreated).obj(tn.t)
	return int64(m["user_id"].(float64)), m["token"].(string)
}
