package plus_test

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/internal/egress"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/verify/verifytest"
	"userve.dev/userve/server/wechat/wechattest"
	"userve.dev/userve/test/syncbuf"
)

// sdkClientID is the SDK dialect's client ID in these tests.
const sdkClientID = "egress-test-client-0123"

// probe is a listener on 127.0.0.1 that only accepts.
type probe struct {
	ln    net.Listener
	conns chan net.Conn
}

func newProbe(t *testing.T) *probe {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &probe{ln: ln, conns: make(chan net.Conn, 16)}
	go func() {
		defer close(p.conns)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *probe) port() string { return strconv.Itoa(p.ln.Addr().(*net.TCPAddr).Port) }

// sawNothing proves no connection reached the probe so far: the first
// connection it accepts must be a marker opened now (accepts are first in,
// first out).
func (p *probe) sawNothing(t *testing.T) {
	t.Helper()
	marker, err := net.Dial("tcp", p.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer marker.Close()
	select {
	case c := <-p.conns:
		defer c.Close()
		if c.RemoteAddr().String() != marker.LocalAddr().String() {
			t.Fatalf("the listener on %s accepted a connection before the marker", p.ln.Addr())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the probe accepted nothing")
	}
}

// A tenant whose SMS webhook, SMTP relay and WeChat API point at the
// loopback, with the egress guard on: each call fails as a failed delivery
// does today (503), the listener sees no connection, the refusal is
// counted by class and logged without the URL (which may hold a token).
func TestEgressGuardRefusesLoopbackCalls(t *testing.T) {
	hook, relay, wx := newProbe(t), newProbe(t), newProbe(t)
	tn := newTenant(t)
	tn.noOutbox = true
	logs := &syncbuf.Buffer{}
	tn.logOut = logs
	tn.egress = egress.New(egress.Options{})
	tn.spec.Verification.SMS = &v1alpha1.SMSSpec{Webhook: &v1alpha1.WebhookSpec{
		URL: "http://127.0.0.1:" + hook.port() + "/sms?token=url-token-secret", SecretRef: &v1alpha1.SecretKeyRef{Name: "s", Key: "k"}}}
	tn.spec.Verification.Mail = &v1alpha1.MailSpec{SMTP: &v1alpha1.SMTPSpec{
		Host: "127.0.0.1", Port: int32(relay.ln.Addr().(*net.TCPAddr).Port), From: "noreply@acme.test"}}
	tn.spec.WeChat = &v1alpha1.WeChatSpec{AppID: weChatAppID, APIBaseURL: "http://localhost:" + wx.port(),
		AppSecretRef: v1alpha1.SecretKeyRef{Name: "wx", Key: "secret"}}
	tn.spec.API.HServe = &v1alpha1.HServeAPISpec{Enabled: true, ClientID: sdkClientID}
	tn.cfgEdit = func(c *config.Config) { c.WebhookSecret, c.WeChatSecret = "hook-secret", weChatSecret }
	rp := tn.replica()

	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "13800000001"}), http.StatusServiceUnavailable)
	hook.sawNothing(t)
	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"email": "a@example.com"}), http.StatusServiceUnavailable)
	relay.sawNothing(t)
	r := expect(t, rp.call("POST", "/api/v2/auth/wechat", "", map[string]any{"code": "any-code"}), http.StatusServiceUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Fatalf("WeChat refusal without Retry-After: %s", r.body)
	}
	wx.sawNothing(t)
	// The SDK dialect's WeChat login goes through the same guard.
	expect(t, rp.call("POST", "/hserve/v2.5/idp/wechat/silent-login/", "", map[string]any{"code": "any-code"},
		"X-Hydrogen-Client-ID: "+sdkClientID), http.StatusServiceUnavailable)
	wx.sawNothing(t)

	m := rp.scrape()
	if v := value(t, m, "userve_egress_refused_total", "class", "loopback"); v < 4 {
		t.Fatalf("egress refusals counted: %v, want one per call at least (4)", v)
	}
	for _, ch := range []string{"sms", "mail"} {
		if v := value(t, m, "userve_code_delivery_failures_total", "channel", ch); v != 1 {
			t.Fatalf("%s delivery failures = %v, want 1", ch, v)
		}
	}
	log := logs.String()
	if strings.Count(log, "egress refused: 127.0.0.1:") < 2 || !strings.Contains(log, "is a loopback address") {
		t.Fatalf("the log does not record the refusals:\n%s", log)
	}
	if strings.Contains(log, "url-token-secret") {
		t.Fatalf("the log shows the webhook URL's token:\n%s", log)
	}
}

// The same calls with the loopback allowed go through (real receivers).
func TestEgressGuardAllowsListedRanges(t *testing.T) {
	secret := []byte("hook-secret")
	hook := verifytest.NewWebhook(t, secret)
	mail := verifytest.NewSMTPServer(t)
	fake := wechattest.New(weChatAppID, weChatSecret)
	base, stop := fake.Start()
	t.Cleanup(stop)
	tn := newTenant(t)
	tn.noOutbox = true
	tn.egress = egress.New(egress.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	tn.spec.Verification.SMS = &v1alpha1.SMSSpec{Webhook: &v1alpha1.WebhookSpec{URL: hook.URL, SecretRef: &v1alpha1.SecretKeyRef{Name: "s", Key: "k"}}}
	tn.spec.Verification.Mail = &v1alpha1.MailSpec{SMTP: &v1alpha1.SMTPSpec{Host: mail.Host, Port: int32(mail.Port), From: "noreply@acme.test"}}
	tn.spec.WeChat = &v1alpha1.WeChatSpec{AppID: weChatAppID, APIBaseURL: base, AppSecretRef: v1alpha1.SecretKeyRef{Name: "wx", Key: "secret"}}
	tn.spec.API.HServe = &v1alpha1.HServeAPISpec{Enabled: true, ClientID: sdkClientID}
	tn.cfgEdit = func(c *config.Config) { c.WebhookSecret, c.WeChatSecret = string(secret), weChatSecret }
	rp := tn.replica()

	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "13800000001"}), http.StatusAccepted)
	if h := hook.Next(t); !h.SignedOK || h.Body["to"] != "13800000001" {
		t.Fatalf("webhook delivery = %s", h.Raw)
	}
	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"email": "a@example.com"}), http.StatusAccepted)
	if m := mail.Next(t); len(m.To) != 1 || m.To[0] != "a@example.com" {
		t.Fatalf("mail = %+v", m)
	}
	if status, token, _ := weChatLogin(t, rp, fake.Login("o-allowed", "")); status != http.StatusCreated || token == "" {
		t.Fatalf("WeChat login through an allowed range: %d", status)
	}
	expect(t, rp.call("POST", "/hserve/v2.5/idp/wechat/silent-login/", "", map[string]any{"code": fake.Login("o-allowed", "")},
		"X-Hydrogen-Client-ID: "+sdkClientID), http.StatusOK)
	if v := value(t, rp.scrape(), "userve_egress_refused_total", "class", "loopback"); v != 0 {
		t.Fatalf("egress refusals = %v with the loopback allowed", v)
	}
}
