package server_test

import (
	"io"
	"log/slog"
	"runtime"
	"testing"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/internal/egress"
	"userve.dev/userve/server"
	"userve.dev/userve/server/config"
)

// BenchmarkNew is the cost of building one tenant's server (without its
// store), which a pool pays on every tenant's first request:
//
//	go test ./server -run '^$' -bench New -benchmem
func BenchmarkNew(b *testing.B) {
	cfg, opts := benchTenant()
	b.ReportAllocs()
	for b.Loop() {
		if server.New(cfg, nil, opts).Handler() == nil {
			b.Fatal("no handler")
		}
	}
}

// benchTenant is a tenant with every dialect and every outbound call.
func benchTenant() (*config.Config, server.Options) {
	spec := plusSpec()
	spec.API.HServe = &v1alpha1.HServeAPISpec{Enabled: true, ClientID: "0123456789abcdef0123"}
	spec.Verification.SMS = &v1alpha1.SMSSpec{Webhook: &v1alpha1.WebhookSpec{URL: "https://sms.example.com/hook",
		SecretRef: &v1alpha1.SecretKeyRef{Name: "s", Key: "k"}}}
	spec.Verification.Mail = &v1alpha1.MailSpec{SMTP: &v1alpha1.SMTPSpec{Host: "smtp.example.com", From: "noreply@example.com"}}
	spec.WeChat = &v1alpha1.WeChatSpec{AppID: "wx0123456789abcdef", AppSecretRef: v1alpha1.SecretKeyRef{Name: "wx", Key: "secret"}}
	us := &v1alpha1.UserService{Spec: spec}
	us.Name, us.Namespace = "acme", "tenants"
	v1alpha1.SetDefaults(us)
	cfg := &config.Config{Service: us, Database: "acme", AdminTokens: []config.AdminToken{{Name: "admin", Token: adminToken}},
		JWTKey: []byte(jwtKey), Issuer: "tenants/acme", WebhookSecret: "hook-secret", WeChatSecret: "0123456789abcdef0123456789abcdef"}
	return cfg, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Egress: egress.New(egress.Options{})}
}

// TestServerRetainedHeap reports what one built server keeps on the heap
// (go test ./server -run RetainedHeap -v).
func TestServerRetainedHeap(t *testing.T) {
	cfg, opts := benchTenant()
	const n = 50
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	kept := make([]*server.Server, n)
	for i := range kept {
		kept[i] = server.New(cfg, nil, opts)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("retained heap per server: %d KiB", (after.HeapAlloc-before.HeapAlloc)/n/1024)
	runtime.KeepAlive(kept)
}
