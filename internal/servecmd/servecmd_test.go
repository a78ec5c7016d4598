package servecmd

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/test/mongofixture"
	"userve.dev/userve/test/syncbuf"
)

// testAdminToken is as long as the tokens the operator generates.
const testAdminToken = "serve-test-admin-token-0123456789abcdef"

const serveManifest = `apiVersion: miniapp.userve.dev/v1alpha1
kind: UserService
metadata:
  name: acme
spec:
  api:
    plus:
      enabled: false
  profile:
    customFields:
      - name: name
        type: string
`

// webhookSpec continues serveManifest's spec with an SMS webhook that names
// no secret.
const webhookSpec = `  verification:
    sms:
      webhook:
        url: https://sms.example.com/codes
`

func writeManifest(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "userservice.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// Bad or missing configuration: exit 1 with exactly one line naming the
// problem, before anything listens.
func TestServeBadConfigIsOneLine(t *testing.T) {
	goodEnv := map[string]string{"USERVE_MONGO_URI": "mongodb://127.0.0.1:1/", "USERVE_ADMIN_TOKENS": testAdminToken}
	plusOn := writeManifest(t, strings.Replace(serveManifest, "      enabled: false\n", "      enabled: true\n", 1))
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no --config", nil, goodEnv, "--config is required"},
		{"missing file", []string{"--config", "/nonexistent/us.yaml"}, goodEnv, "/nonexistent/us.yaml: no such file or directory"},
		{"unknown field", []string{"--config", writeManifest(t, strings.Replace(serveManifest, "  api:", "  apis:", 1))}, goodEnv, `unknown field "spec.apis"`},
		{"bad field type", []string{"--config", writeManifest(t, strings.Replace(serveManifest, "type: string", "type: text", 1))}, goodEnv, `customFields[0].type "text"`},
		{"no mongo uri", []string{"--config", writeManifest(t, serveManifest)}, map[string]string{"USERVE_ADMIN_TOKENS": testAdminToken}, "USERVE_MONGO_URI is required"},
		// Keys an attacker could brute-force: refused at start.
		{"one-byte admin token", []string{"--config", writeManifest(t, serveManifest)}, map[string]string{"USERVE_MONGO_URI": "mongodb://x/", "USERVE_ADMIN_TOKENS": "t"}, "USERVE_ADMIN_TOKENS: token 1 of 1 is 1 bytes, shorter than 32"},
		{"31-byte admin token", []string{"--config", writeManifest(t, serveManifest)}, map[string]string{"USERVE_MONGO_URI": "mongodb://x/", "USERVE_ADMIN_TOKENS": testAdminToken + "," + strings.Repeat("t", 31)}, "token 2 of 2 is 31 bytes, shorter than 32"},
		{"short JWT key", []string{"--config", plusOn}, map[string]string{"USERVE_MONGO_URI": "mongodb://x/", "USERVE_ADMIN_TOKENS": testAdminToken, "USERVE_JWT_KEY": "0123456789"}, "USERVE_JWT_KEY is 10 bytes, shorter than 32"},
		{"no admin tokens", []string{"--config", writeManifest(t, serveManifest)}, map[string]string{"USERVE_MONGO_URI": "mongodb://x/"}, "USERVE_ADMIN_TOKENS is empty"},
		// The operator's rules for a tenant's URI hold in the tenant's pod:
		// no mechanism that sends the pod's, node's or cloud's identity.
		{"OIDC mongo uri", []string{"--config", writeManifest(t, serveManifest)}, map[string]string{"USERVE_MONGO_URI": "mongodb://x/?authMechanism=MONGODB-OIDC&authMechanismProperties=ENVIRONMENT:gcp,TOKEN_RESOURCE:x", "USERVE_ADMIN_TOKENS": testAdminToken}, "USERVE_MONGO_URI: the MongoDB URI's authMechanism=MONGODB-OIDC is refused"},
		{"AWS mongo uri", []string{"--config", writeManifest(t, serveManifest)}, map[string]string{"USERVE_MONGO_URI": "mongodb://x/?authMechanism=MONGODB-AWS", "USERVE_ADMIN_TOKENS": testAdminToken}, "authMechanism=MONGODB-AWS is refused"},
		{"tls file mongo uri", []string{"--config", writeManifest(t, serveManifest)}, map[string]string{"USERVE_MONGO_URI": "mongodb://x/?tls=true&tlsCertificateKeyFile=/etc/ssl/key.pem", "USERVE_ADMIN_TOKENS": testAdminToken}, "option tlsCertificateKeyFile is refused"},
		// Without the secret, webhook requests would be signed with an empty key.
		{"webhook without secret", []string{"--config", writeManifest(t, serveManifest+webhookSpec)}, goodEnv, "USERVE_WEBHOOK_SECRET is required: spec.verification.sms.webhook is set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), tc.args, envOf(tc.env), &stdout, &stderr)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr %q", code, stderr.String())
			}
			msg := stderr.String()
			if strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, "\n") || !strings.HasPrefix(msg, "userve serve: ") || !strings.Contains(msg, tc.want) {
				t.Fatalf("stderr %q: want one line with %q", msg, tc.want)
			}
			if stdout.Len() != 0 {
				t.Fatalf("stdout %q", stdout.String())
			}
		})
	}
	var stderr bytes.Buffer
	if code := Run(context.Background(), []string{"--bogus"}, envOf(goodEnv), &bytes.Buffer{}, &stderr); code != 2 {
		t.Fatalf("bad flag exited %d", code)
	}
	stderr.Reset()
	if code := Run(context.Background(), []string{"--listen", ":8080", "--metrics-listen", ":8080"}, envOf(goodEnv), &bytes.Buffer{}, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), "--metrics-listen \":8080\" must differ from --listen") {
		t.Fatalf("metrics on the API address: exit %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	if code := Run(context.Background(), []string{"--release-after-quiet", "-1s"}, envOf(goodEnv), &bytes.Buffer{}, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), "--release-after-quiet -1s: want a duration of 0 (never) or more") {
		t.Fatalf("negative quiet time: exit %d, stderr %q", code, stderr.String())
	}
	if code := Run(context.Background(), []string{"--help"}, envOf(goodEnv), &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Fatalf("--help exited %d", code)
	}
}

// TestServeRunsAndStops runs `userve serve` in-process against a private
// FerretDB, serves the seed's list query, and exits 0 on cancellation.
func TestServeRunsAndStops(t *testing.T) {
	mongo := mongofixture.NewServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ln.Addr().String()
	ln.Close()
	env := map[string]string{"USERVE_MONGO_URI": mongo.URI, "USERVE_ADMIN_TOKENS": testAdminToken, "USERVE_MONGO_DATABASE": "serve_test"}
	profile := filepath.Join(t.TempDir(), "cpu.pprof")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"--config", writeManifest(t, serveManifest), "--listen", addr, "--metrics-listen", metricsAddr, "--cpu-profile", profile}, envOf(env), &stdout, &stderr)
	}()
	base := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready; stderr %s stdout %s", stderr.String(), stdout.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	req, _ := http.NewRequest("GET", base+"/userve/v2.0/miniapp/user_profile/?nickname__contains=Tom&gender=1&created_at__gt=1483228800&order_by=-created_at", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("seed list query: %d", res.StatusCode)
	}
	// /metrics: on --metrics-listen, counting the query above; 404 on --listen.
	for url, want := range map[string]int{base + "/metrics": 404, "http://" + metricsAddr + "/metrics": 200} {
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", url, res.StatusCode, want)
		}
		if want == 200 && !strings.Contains(string(body), `userve_http_requests_total{code="200",method="GET",route="/userve/v2.0/miniapp/user_profile/"} 1`) {
			t.Errorf("metrics lack the list query:\n%.800s", body)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d; stderr %s", code, stderr.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not stop")
	}
	// The profile is written when serve returns: gzip-compressed protobuf.
	if raw, err := os.ReadFile(profile); err != nil || len(raw) < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
		t.Errorf("--cpu-profile wrote %d bytes (%v); want a gzip-compressed pprof profile", len(raw), err)
	}
	logs := stdout.String()
	for _, want := range []string{`"msg":"serving"`, `"metrics_addr":"` + metricsAddr + `"`, `"msg":"request"`, `"tenant":"default/acme"`, `"msg":"shutting down`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

// Log delivery of codes is a choice, and the server says at start that it
// is on; without the choice it says nothing of it.
func TestServeWarnsOfLogDelivery(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	plusOn := strings.Replace(serveManifest, "      enabled: false\n", "      enabled: true\n", 1)
	env := map[string]string{"USERVE_MONGO_URI": "mongodb://127.0.0.1:1/", "USERVE_ADMIN_TOKENS": testAdminToken,
		"USERVE_JWT_KEY": strings.Repeat("k", 32)}
	run := func(manifest string) string {
		ctx, cancel := context.WithCancel(context.Background())
		var stdout, stderr syncbuf.Buffer
		done := make(chan int, 1)
		go func() {
			// No metrics listener: the default :9090 may be taken on a shared machine.
			done <- Run(ctx, []string{"--config", writeManifest(t, manifest), "--listen", addr, "--metrics-listen", ""}, envOf(env), &stdout, &stderr)
		}()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(stdout.String(), `"msg":"serving"`) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		return stdout.String()
	}
	const warning = `"level":"WARN","msg":"verification codes are written to this log`
	if logs := run(plusOn + "  verification:\n    logCodes: true\n"); !strings.Contains(logs, warning) {
		t.Errorf("logCodes on, but no warning at start:\n%s", logs)
	}
	if logs := run(plusOn); strings.Contains(logs, "verification codes are written") {
		t.Errorf("logCodes off, but the log says codes are logged:\n%s", logs)
	}
}

// The password-check budget: the flag, else a quarter of the memory limit
// the operator passes, else auth's default; a bad flag is refused.
func TestPasswordCheckMemory(t *testing.T) {
	for _, tc := range []struct {
		flag, limit string
		want        int64
		bad         bool
	}{
		{"", "", 64 << 20, false},
		{"", "268435456", 64 << 20, false}, // the default 256Mi limit
		{"", "1073741824", 256 << 20, false},
		{"", "garbage", 64 << 20, false},
		{"32Mi", "268435456", 32 << 20, false},
		{"100M", "", 100_000_000, false},
		{"12", "", 0, true},
		{"lots", "", 0, true},
	} {
		got, err := PasswordCheckMemory(tc.flag, tc.limit)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("PasswordCheckMemory(%q, %q) = %d, %v; want %d (error: %v)", tc.flag, tc.limit, got, err, tc.want, tc.bad)
		}
	}
}
