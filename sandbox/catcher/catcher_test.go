package catcher

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"userve.dev/userve/server/verify"
)

// directory is the tenants the sandbox pointed at the sinks.
type directory struct {
	secrets map[string][]byte
	smtp    []SMTPTenant
}

func (d directory) WebhookSecret(_ context.Context, tenant string) ([]byte, error) {
	s, ok := d.secrets[tenant]
	if !ok {
		return nil, fmt.Errorf("no tenant %s has its webhook here", tenant)
	}
	return s, nil
}

func (d directory) SMTPTenants(context.Context, string, int) ([]SMTPTenant, error) {
	return d.smtp, nil
}

type recorder struct {
	mu       sync.Mutex
	caught   []Code
	rejected []string
}

func (r *recorder) codes() []Code {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Code(nil), r.caught...)
}

func (r *recorder) rejections() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.rejected...)
}

func start(t *testing.T) (*Catcher, *recorder) {
	t.Helper()
	rec := &recorder{}
	c, err := Start(Options{
		WebhookAddr: "127.0.0.1:0", SMTPAddr: "127.0.0.1:0",
		Directory: directory{
			secrets: map[string][]byte{"default/acme": []byte("acme-hmac")},
			smtp: []SMTPTenant{
				{Tenant: "default/acme", From: "no-reply@acme.example.com", Username: "no-reply@acme.example.com", Password: []byte("acme-smtp")},
				{Tenant: "shop/open", From: "codes@open.example.com"},
			},
		},
		Caught: func(c Code) { rec.mu.Lock(); rec.caught = append(rec.caught, c); rec.mu.Unlock() },
		Rejected: func(via, why string) {
			rec.mu.Lock()
			rec.rejected = append(rec.rejected, via+": "+why)
			rec.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, rec
}

func message(to string) verify.Message {
	return verify.Message{Tenant: "default/acme", Channel: verify.ChannelSMS, To: to, Code: "493817", Purpose: "register", TTL: 10 * time.Minute}
}

// The server's own webhook sender, signing with the tenant's secret, gets
// its codes through; the sink prints what the log delivery would.
func TestWebhookSinkCatchesSignedCodes(t *testing.T) {
	c, rec := start(t)
	s := verify.WebhookSender{URL: c.WebhookURL, Secret: []byte("acme-hmac")}
	if err := s.Send(context.Background(), message("+8613800000000")); err != nil {
		t.Fatal(err)
	}
	got := rec.codes()
	want := Code{Tenant: "default/acme", Channel: "sms", Via: "webhook", To: "+8613800000000", Code: "493817", Purpose: "register", ExpiresIn: 10 * time.Minute}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("caught %+v, want %+v", got, want)
	}
}

// What a relay must refuse, the sink refuses, saying why.
func TestWebhookSinkRefusesWhatARelayMust(t *testing.T) {
	c, rec := start(t)
	for _, tc := range []struct {
		name   string
		sender verify.WebhookSender
		want   string
	}{
		{"another secret", verify.WebhookSender{URL: c.WebhookURL, Secret: []byte("guess")}, "the signature does not match its webhook secret"},
		{"a replay", verify.WebhookSender{URL: c.WebhookURL, Secret: []byte("acme-hmac"), Now: func() time.Time { return time.Now().Add(-time.Hour) }}, "a replay?"},
		{"a wrong path", verify.WebhookSender{URL: strings.TrimSuffix(c.WebhookURL, WebhookPath) + "/sms", Secret: []byte("acme-hmac")}, "no such path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.sender.Send(context.Background(), message("+8613800000001"))
			if err == nil || !strings.Contains(err.Error(), "webhook answered 4") {
				t.Fatalf("err = %v, want a 4xx", err)
			}
			if r := rec.rejections(); len(r) == 0 || !strings.Contains(r[len(r)-1], tc.want) {
				t.Errorf("rejections %q, want one with %q", r, tc.want)
			}
		})
	}
	// Hand-made requests: an unknown tenant, a malformed signature, a
	// wrong content type, an unknown field.
	now := fmt.Sprint(time.Now().Unix())
	for _, tc := range []struct {
		name, contentType, sig, body string
		status                       int
	}{
		{"unknown tenant", "application/json", "", `{"tenant":"default/other","channel":"sms","to":"+1","code":"1","purpose":"verify","expires_in":60}`, 401},
		{"signature format", "application/json", "md5=abc", `{"tenant":"default/acme","to":"+1","code":"1"}`, 401},
		{"content type", "text/plain", "", `{}`, 415},
		{"unknown field", "application/json", "", `{"tenant":"default/acme","to":"+1","code":"1","extra":true}`, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig := tc.sig
			if sig == "" {
				sig = verify.Sign([]byte("acme-hmac"), now, []byte(tc.body))
			}
			req, _ := http.NewRequest(http.MethodPost, c.WebhookURL, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			req.Header.Set(verify.HeaderTimestamp, now)
			req.Header.Set(verify.HeaderSignature, sig)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
	if got := rec.codes(); len(got) != 0 {
		t.Errorf("caught %+v from refused requests", got)
	}
}

// The server's own SMTP sender, authenticating as the tenant, gets its
// mail through; a wrong password does not; a tenant without a username is
// known by its From address.
func TestSMTPSinkCatchesMail(t *testing.T) {
	c, rec := start(t)
	m := message("alice@example.org")
	m.Channel = verify.ChannelMail
	acme := verify.SMTPSender{Host: c.SMTPHost, Port: c.SMTPPort, From: "no-reply@acme.example.com", Username: "no-reply@acme.example.com", Password: "acme-smtp"}
	if err := acme.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := rec.codes()
	if len(got) != 1 || got[0].Tenant != "default/acme" || got[0].To != "alice@example.org" || got[0].Code != "493817" || got[0].Via != "smtp" || got[0].Subject != "Your verification code" {
		t.Fatalf("caught %+v", got)
	}

	wrong := acme
	wrong.Password = "guess"
	if err := wrong.Send(context.Background(), m); err == nil || !strings.Contains(err.Error(), "smtp auth") {
		t.Errorf("a wrong password: err = %v", err)
	}
	stranger := verify.SMTPSender{Host: c.SMTPHost, Port: c.SMTPPort, From: "someone@else.example"}
	if err := stranger.Send(context.Background(), m); err == nil {
		t.Error("mail from an unknown sender without AUTH was taken")
	}
	open := verify.SMTPSender{Host: c.SMTPHost, Port: c.SMTPPort, From: "codes@open.example.com"}
	if err := open.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if got := rec.codes(); len(got) != 2 || got[1].Tenant != "shop/open" {
		t.Errorf("caught %+v", got)
	}
}

// 30 deliveries at once over each sink: every one is caught once.
func TestSinksTakeParallelDeliveries(t *testing.T) {
	c, rec := start(t)
	const n = 30
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- verify.WebhookSender{URL: c.WebhookURL, Secret: []byte("acme-hmac")}.Send(context.Background(), message(fmt.Sprintf("+86138%08d", i)))
		}()
		go func() {
			defer wg.Done()
			m := message(fmt.Sprintf("u%d@example.org", i))
			m.Channel = verify.ChannelMail
			errs <- verify.SMTPSender{Host: c.SMTPHost, Port: c.SMTPPort, From: "no-reply@acme.example.com", Username: "no-reply@acme.example.com", Password: "acme-smtp"}.Send(context.Background(), m)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	seen := map[string]bool{}
	for _, code := range rec.codes() {
		if seen[code.To] {
			t.Errorf("%s caught twice", code.To)
		}
		seen[code.To] = true
	}
	if len(seen) != 2*n {
		t.Errorf("caught %d distinct deliveries, want %d", len(seen), 2*n)
	}
}
