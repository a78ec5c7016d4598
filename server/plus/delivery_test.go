package plus_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/verify/verifytest"
	"userve.dev/userve/test/syncbuf"
)

func TestWebhookDeliversSignedCode(t *testing.T) {
	secret := []byte("webhook-secret-for-tests")
	hook := verifytest.NewWebhook(t, secret)
	tn := newTenant(t)
	tn.noOutbox = true
	tn.spec.Verification.SMS = &v1alpha1.SMSSpec{Webhook: &v1alpha1.WebhookSpec{URL: hook.URL,
		SecretRef: &v1alpha1.SecretKeyRef{Name: "s", Key: "k"}}}
	tn.cfgEdit = func(c *config.Config) { c.WebhookSecret = string(secret) }
	rp := tn.replica()

	r := expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "+8613800000000"}), http.StatusAccepted)
	h := hook.Next(t)
	if !h.SignedOK {
		t.Fatal("webhook signature does not verify with the tenant secret")
	}
	code, _ := h.Body["code"].(string)
	if h.Body["to"] != "+8613800000000" || h.Body["channel"] != "sms" || h.Body["tenant"] != "tenants/acme" ||
		h.Body["purpose"] != "register" || h.Body["expires_in"] != float64(300) || len(code) != 6 {
		t.Fatalf("webhook body = %s", h.Raw)
	}
	noSecrets(t, r.body, code)
	expect(t, rp.call("POST", "/api/v2/users", "", map[string]any{
		"name": "hooked", "phone": "+8613800000000", "password": "secret1", "verifiable_type": "sms", "verifiable_code": code,
	}), http.StatusCreated)

	// A failing relay: 503, and the user may ask again at once.
	hook.SetStatus(http.StatusBadGateway)
	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "13800000009"}), http.StatusServiceUnavailable)
	hook.Next(t)
	hook.SetStatus(0)
	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "13800000009"}), http.StatusAccepted)
	if h := hook.Next(t); !h.SignedOK || h.Body["to"] != "13800000009" {
		t.Fatalf("retry delivery = %s", h.Raw)
	}
}

func TestSMTPDeliversCode(t *testing.T) {
	mail := verifytest.NewSMTPServer(t)
	tn := newTenant(t)
	tn.noOutbox = true
	tn.spec.Verification.CodeTTL = nil
	tn.spec.Verification.Mail = &v1alpha1.MailSpec{SMTP: &v1alpha1.SMTPSpec{
		Host: mail.Host, Port: int32(mail.Port), From: "noreply@acme.test", Username: "mailer",
		PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "s", Key: "p"}}}
	tn.cfgEdit = func(c *config.Config) { c.SMTPPassword = "smtp-pass" }
	rp := tn.replica()

	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"email": "mailuser@example.com"}), http.StatusAccepted)
	m := mail.Next(t)
	if m.From != "noreply@acme.test" || len(m.To) != 1 || m.To[0] != "mailuser@example.com" || m.AuthUser != "mailer" || m.AuthPass != "smtp-pass" {
		t.Fatalf("mail envelope = %+v", m)
	}
	i := strings.Index(m.Data, "code is ")
	if i < 0 {
		t.Fatalf("mail has no code: %q", m.Data)
	}
	code := m.Data[i+8 : i+14]
	expect(t, rp.call("POST", "/api/v2/users", "", map[string]any{
		"name": "mailuser", "email": "mailuser@example.com", "password": "secret1", "verifiable_type": "mail", "verifiable_code": code,
	}), http.StatusCreated)

	// Phone codes without a webhook go nowhere: refused, naming the field,
	// before anything is counted or stored.
	r := rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "13800000010"})
	expectInvalid(t, r, "phone")
	if msg := r.obj(t)["message"].(string); !strings.Contains(msg, "cannot be sent to phone numbers") {
		t.Fatalf("no-delivery refusal = %s", r.body)
	}
	_ = time.Second
}

// Log delivery only when chosen: spec.verification.logCodes. The code then
// appears in the server log, and the server warned at start.
func TestLogDeliveryOnlyWhenChosen(t *testing.T) {
	var logs syncbuf.Buffer
	tn := newTenant(t)
	tn.noOutbox = true
	tn.logOut = &logs
	tn.spec.Verification.LogCodes = true
	rp := tn.replica()
	if !strings.Contains(logs.String(), "verification codes are written to this log") {
		t.Fatalf("no warning at start:\n%s", logs.String())
	}
	expect(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"phone": "13800000011"}), http.StatusAccepted)
	if !strings.Contains(logs.String(), "to=13800000011 code=") {
		t.Fatalf("the code is not in the log:\n%s", logs.String())
	}

	quiet := newTenant(t)
	quiet.noOutbox = true
	var none syncbuf.Buffer
	quiet.logOut = &none
	rp = quiet.replica()
	expectInvalid(t, rp.call("POST", "/api/v2/verifycodes/register", "", map[string]any{"email": "someone@example.com"}), "email")
	if strings.Contains(none.String(), "verification code") {
		t.Fatalf("codes mentioned in the log without logCodes:\n%s", none.String())
	}
}
