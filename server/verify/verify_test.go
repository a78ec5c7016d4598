package verify_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/server/verify"
	"userve.dev/userve/server/verify/verifytest"
)

func TestGenerateCode(t *testing.T) {
	for n := 2; n <= 8; n++ {
		want := min(max(n, 4), 6)
		seen := map[string]bool{}
		for i := 0; i < 200; i++ {
			c, err := verify.GenerateCode(n)
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`^[0-9]+$`).MatchString(c) || len(c) != want {
				t.Fatalf("GenerateCode(%d) = %q, want %d digits", n, c, want)
			}
			seen[c] = true
		}
		if len(seen) < 100 {
			t.Errorf("GenerateCode(%d): only %d distinct codes in 200", n, len(seen))
		}
	}
}

func TestHashCodeBindsKeyAndTarget(t *testing.T) {
	k1, k2 := []byte("k1"), []byte("k2")
	h := verify.HashCode(k1, "a@b.c", "123456")
	if h == verify.HashCode(k2, "a@b.c", "123456") || h == verify.HashCode(k1, "x@b.c", "123456") ||
		h == verify.HashCode(k1, "a@b.c", "123457") || strings.Contains(h, "123456") {
		t.Fatal("hash does not depend on key, target and code, or shows the code")
	}
	if h != verify.HashCode(k1, "a@b.c", "123456") {
		t.Fatal("hash is not deterministic")
	}
}

func TestWebhookSenderSigns(t *testing.T) {
	secret := []byte("hook-secret")
	wh := verifytest.NewWebhook(t, secret)
	s := verify.WebhookSender{URL: wh.URL, Secret: secret}
	m := verify.Message{Tenant: "ns/t", Channel: verify.ChannelSMS, To: "+8613800000000", Code: "0421", Purpose: "register", TTL: 5 * time.Minute}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	h := wh.Next(t)
	if !h.SignedOK {
		t.Fatal("signature did not verify")
	}
	if h.Body["code"] != "0421" || h.Body["to"] != "+8613800000000" || h.Body["channel"] != "sms" ||
		h.Body["expires_in"] != float64(300) || h.Body["tenant"] != "ns/t" {
		t.Fatalf("body = %v", h.Body)
	}
	if verify.CheckSignature([]byte("wrong"), h.Timestamp, h.Raw, verify.Sign(secret, h.Timestamp, h.Raw)) {
		t.Fatal("signature checked with the wrong secret")
	}

	wh.SetStatus(http.StatusInternalServerError)
	if err := s.Send(context.Background(), m); err == nil {
		t.Fatal("a 500 from the receiver was taken as delivered")
	}
	wh.Next(t)
	bad := verify.WebhookSender{URL: "http://127.0.0.1:1/", Secret: secret}
	if err := bad.Send(context.Background(), m); err == nil {
		t.Fatal("unreachable webhook reported success")
	}
}

func TestSMTPSenderDelivers(t *testing.T) {
	srv := verifytest.NewSMTPServer(t)
	s := verify.SMTPSender{Host: srv.Host, Port: srv.Port, From: "noreply@acme.test", Username: "mailer", Password: "pw"}
	m := verify.Message{Channel: verify.ChannelMail, To: "ann@example.com", Code: "987654", TTL: 5 * time.Minute}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := srv.Next(t)
	if got.From != "noreply@acme.test" || len(got.To) != 1 || got.To[0] != "ann@example.com" {
		t.Fatalf("envelope = %+v", got)
	}
	if got.AuthUser != "mailer" || got.AuthPass != "pw" {
		t.Fatalf("auth = %q/%q", got.AuthUser, got.AuthPass)
	}
	if !strings.Contains(got.Data, "987654") || !strings.Contains(got.Data, "expires in 5 minute") ||
		!strings.Contains(got.Data, "To: ann@example.com\r\n") {
		t.Fatalf("data = %q", got.Data)
	}
	evil := m
	evil.To = "a@b.c\r\nBcc: x@y.z"
	if err := s.Send(context.Background(), evil); err == nil {
		t.Fatal("header injection accepted")
	}
}

func TestRouter(t *testing.T) {
	var got []verify.Channel
	rec := senderFunc(func(m verify.Message) { got = append(got, m.Channel) })
	r := verify.Router{Default: rec}
	for _, c := range []verify.Channel{verify.ChannelSMS, verify.ChannelMail} {
		if err := r.Send(context.Background(), verify.Message{Channel: c}); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 2 {
		t.Fatalf("default sender got %v", got)
	}
	if err := r.Send(context.Background(), verify.Message{Channel: "fax"}); err == nil {
		t.Fatal("unknown channel accepted")
	}
	if err := (verify.Router{}).Send(context.Background(), verify.Message{Channel: verify.ChannelSMS}); err == nil {
		t.Fatal("router without senders reported success")
	}
}

type senderFunc func(verify.Message)

func (f senderFunc) Send(_ context.Context, m verify.Message) error { f(m); return nil }
