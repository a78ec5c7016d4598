package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/api/v1alpha1"
)

const goodYAML = `apiVersion: miniapp.userve.dev/v1alpha1
kind: UserService
metadata:
  name: acme
  namespace: shop
spec:
  api:
    minapp:
      maxLimit: 500
  profile:
    customFields:
      - name: name
        type: string
        maxLength: 32
      - name: age
        type: integer
        required: true
`

// webhookYAML continues goodYAML's spec with an SMS webhook;
// webhookSecretRefYAML names its secret.
const (
	webhookYAML = `  verification:
    sms:
      webhook:
        url: https://sms.example.com/codes
`
	webhookSecretRefYAML = `        secretRef:
          name: acme-delivery
          key: webhook-secret
`
)

const wechatYAML = `  wechat:
    appID: wx0123456789abcdef
    appSecretRef: {name: wx, key: secret}
`

func TestWeChatLoadsWithDefaults(t *testing.T) {
	e := map[string]string{v1alpha1.EnvWeChatSecret: "s3cret"}
	for k, v := range goodEnv {
		e[k] = v
	}
	cfg, err := Load(write(t, "us.yaml", goodYAML+wechatYAML), env(e))
	if err != nil {
		t.Fatal(err)
	}
	wc := cfg.Spec().WeChat
	if cfg.WeChatSecret != "s3cret" || wc.APIBaseURL != "https://api.weixin.qq.com" || wc.CreateUsers == nil || !*wc.CreateUsers {
		t.Fatalf("%+v", wc)
	}
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// Admin tokens as the operator generates them (64 hex characters).
var (
	tokA = strings.Repeat("a1", 32)
	tokB = strings.Repeat("b2", 32)
)

var goodEnv = map[string]string{
	v1alpha1.EnvMongoURI:    "mongodb://127.0.0.1:27017/",
	v1alpha1.EnvAdminTokens: " " + tokA + " , ," + tokB + " ",
	v1alpha1.EnvJWTKey:      strings.Repeat("k", 32),
}

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadYAMLAppliesDefaultsAndEnv(t *testing.T) {
	c, err := Load(write(t, "us.yaml", goodYAML), env(goodEnv))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Spec()
	if s.API.MinApp.DefaultLimit != 20 || s.API.MinApp.MaxLimit != 500 || s.API.Plus.TokenTTL.Duration != time.Hour ||
		s.Verification.CodeTTL.Duration != 5*time.Minute {
		t.Errorf("defaults not applied: %+v", s.API)
	}
	if l := s.Verification.Limits; l.PerAddressHourly != 30 || l.PerTargetDaily != 10 || l.PerTenantHourly != 1000 || s.Verification.LogCodes {
		t.Errorf("code limits not defaulted: %+v (logCodes %v)", l, s.Verification.LogCodes)
	}
	if c.Database != "shop_acme" || c.Issuer != "shop/acme" || fmt.Sprint(c.AdminTokens) != fmt.Sprint([]AdminToken{{"admin-1", tokA}, {"admin-2", tokB}}) {
		t.Errorf("config %+v", c)
	}
	if f, ok := c.CustomField("age"); !ok || !f.Required {
		t.Errorf("custom field age: %+v", f)
	}
}

// A webhook starts once its signing secret is in the environment.
func TestWebhookWithSecretLoads(t *testing.T) {
	withSecret := map[string]string{v1alpha1.EnvWebhookSecret: "s3cret"}
	for k, v := range goodEnv {
		withSecret[k] = v
	}
	c, err := Load(write(t, "us.yaml", goodYAML+webhookYAML), env(withSecret))
	if err != nil {
		t.Fatal(err)
	}
	if c.WebhookSecret != "s3cret" || c.Spec().Verification.SMS.Webhook.URL != "https://sms.example.com/codes" {
		t.Errorf("config %+v", c)
	}
}

func TestLeadingDocumentSeparatorIsFine(t *testing.T) {
	if _, err := Load(write(t, "us.yaml", "# tenant\n---\n"+goodYAML+"---\n"), env(goodEnv)); err != nil {
		t.Fatal(err)
	}
}

func TestLoadJSONAndDatabaseChoice(t *testing.T) {
	js := `{"apiVersion":"miniapp.userve.dev/v1alpha1","kind":"UserService","metadata":{"name":"acme"},
		"spec":{"mongo":{"database":"from_spec"}}}`
	c, err := Load(write(t, "us.json", js), env(goodEnv))
	if err != nil || c.Database != "from_spec" || c.Issuer != "default/acme" {
		t.Fatalf("%+v %v", c, err)
	}
	e := map[string]string{v1alpha1.EnvMongoDatabase: "from_env"}
	for k, v := range goodEnv {
		e[k] = v
	}
	c, err = Load(write(t, "us.json", js), env(e))
	if err != nil || c.Database != "from_env" {
		t.Fatalf("%+v %v", c, err)
	}
	noNS := strings.Replace(goodYAML, "  namespace: shop\n", "", 1)
	c, err = Load(write(t, "us.yaml", noNS), env(goodEnv))
	if err != nil || c.Database != "default_acme" {
		t.Fatalf("%+v %v", c, err)
	}
}

// TestLoadErrorsAreOneClearLine: every problem is one line naming it.
func TestLoadErrorsAreOneClearLine(t *testing.T) {
	plusOff := strings.Replace(goodYAML, "  api:\n", "  api:\n    plus:\n      enabled: false\n", 1)
	minappOff := strings.Replace(goodYAML, "  api:\n", "  api:\n    minapp:\n      enabled: false\n", 1)
	minappOff = strings.Replace(minappOff, "    minapp:\n      maxLimit: 500\n", "", 1)
	cases := []struct {
		name, file, want string
		env              map[string]string
	}{
		{"unknown field", strings.Replace(goodYAML, "  api:", "  apii:", 1), `unknown field "spec.apii"`, goodEnv},
		{"unknown nested field", strings.Replace(goodYAML, "type: integer", "type: integer\n        min: 3", 1), `unknown field "spec.profile.customFields[1].min"`, goodEnv},
		{"bad yaml", "kind: [", "not valid YAML or JSON", goodEnv},
		{"empty", "", "empty file", goodEnv},
		{"wrong kind", strings.Replace(goodYAML, "kind: UserService", "kind: Deployment", 1), `apiVersion/kind is "miniapp.userve.dev/v1alpha1"/"Deployment"`, goodEnv},
		{"no name", strings.Replace(goodYAML, "  name: acme\n", "", 1), "metadata.name is required", goodEnv},
		{"wrong type", strings.Replace(goodYAML, "maxLimit: 500", "maxLimit: lots", 1), "spec.api.minapp.maxLimit: got a string, want int32", goodEnv},
		{"two documents", goodYAML + "---\nkind: Other\n", "more than one YAML document", goodEnv},
		{"duplicate field", strings.Replace(goodYAML, "  name: acme\n", "  name: acme\n  name: other\n", 1), "duplicate", goodEnv},
		{"bad field type", strings.Replace(goodYAML, "type: integer", "type: int", 1), `spec.profile.customFields[1].type "int"`, goodEnv},
		{"builtin name", strings.Replace(goodYAML, "name: age", "name: nickname", 1), `"nickname" collides with a built-in`, goodEnv},
		{"bad name", strings.Replace(goodYAML, "name: age", "name: Age", 1), `customFields[1].name "Age"`, goodEnv},
		{"twice", strings.Replace(goodYAML, "name: age", "name: name", 1), `"name" is declared twice`, goodEnv},
		{"maxLength below 1", strings.Replace(goodYAML, "maxLength: 32", "maxLength: 0", 1), "customFields[0].maxLength must be at least 1", goodEnv},
		{"limits", strings.Replace(goodYAML, "maxLimit: 500", "maxLimit: 5", 1), "defaultLimit must not exceed maxLimit", goodEnv},
		{"audit retention", strings.Replace(goodYAML, "maxLimit: 500", "maxLimit: 500\n      auditRetentionDays: 3651", 1), "spec.api.minapp.auditRetentionDays: 3651, must be within 1..3650", goodEnv},
		{"trusted proxy", strings.Replace(goodYAML, "  api:\n", "  api:\n    plus:\n      trustedProxies: [10.0.0.0/8, 10.1.2.3]\n", 1), `spec.api.plus.trustedProxies[1] "10.1.2.3": must be a CIDR`, goodEnv},
		{"no mongo uri", goodYAML, "USERVE_MONGO_URI is required", map[string]string{v1alpha1.EnvAdminTokens: tokA, v1alpha1.EnvJWTKey: strings.Repeat("k", 32)}},
		{"bad mongo uri", goodYAML, "must start with mongodb://", map[string]string{v1alpha1.EnvMongoURI: "http://x", v1alpha1.EnvAdminTokens: tokA, v1alpha1.EnvJWTKey: strings.Repeat("k", 32)}},
		{"no tokens", plusOff, "USERVE_ADMIN_TOKENS is empty", map[string]string{v1alpha1.EnvMongoURI: "mongodb://x/"}},
		{"no jwt key", minappOff, "USERVE_JWT_KEY is required", map[string]string{v1alpha1.EnvMongoURI: "mongodb://x/"}},
		{"short jwt key", minappOff, "USERVE_JWT_KEY is 5 bytes, shorter than 32", map[string]string{v1alpha1.EnvMongoURI: "mongodb://x/", v1alpha1.EnvJWTKey: "short"}},
		{"31-byte jwt key", goodYAML, "USERVE_JWT_KEY is 31 bytes, shorter than 32", map[string]string{v1alpha1.EnvMongoURI: "mongodb://x/", v1alpha1.EnvAdminTokens: tokA, v1alpha1.EnvJWTKey: strings.Repeat("k", 31)}},
		{"short jwt key, end-user API off", plusOff, "USERVE_JWT_KEY is 8 bytes", map[string]string{v1alpha1.EnvMongoURI: "mongodb://x/", v1alpha1.EnvAdminTokens: tokA, v1alpha1.EnvJWTKey: "12345678"}},
		{"one-byte admin token", goodYAML, "USERVE_ADMIN_TOKENS: token 1 of 1 is 1 bytes, shorter than 32", map[string]string{v1alpha1.EnvMongoURI: "mongodb://x/", v1alpha1.EnvAdminTokens: "t", v1alpha1.EnvJWTKey: strings.Repeat("k", 32)}},
		{"second admin token short", goodYAML, "USERVE_ADMIN_TOKENS: token 2 of 2 is 31 bytes, shorter than 32", map[string]string{v1alpha1.EnvMongoURI: "mongodb://x/", v1alpha1.EnvAdminTokens: tokA + "," + strings.Repeat("x", 31), v1alpha1.EnvJWTKey: strings.Repeat("k", 32)}},
		{"bad admin name", goodYAML, "USERVE_ADMIN_TOKENS: token 2 of 2: the name before ':' must be", map[string]string{v1alpha1.EnvMongoURI: "mongodb://x/", v1alpha1.EnvAdminTokens: tokA + ",bad name:" + tokB, v1alpha1.EnvJWTKey: strings.Repeat("k", 32)}},
		{"named admin token short", goodYAML, "USERVE_ADMIN_TOKENS: token 1 of 1 is 31 bytes", map[string]string{v1alpha1.EnvMongoURI: "mongodb://x/", v1alpha1.EnvAdminTokens: "alice:" + strings.Repeat("x", 31), v1alpha1.EnvJWTKey: strings.Repeat("k", 32)}},
		{"admin name twice", goodYAML, `USERVE_ADMIN_TOKENS: token 2 of 2: the name "admin-1" is used twice`, map[string]string{v1alpha1.EnvMongoURI: "mongodb://x/", v1alpha1.EnvAdminTokens: tokA + ",admin-1:" + tokB, v1alpha1.EnvJWTKey: strings.Repeat("k", 32)}},
		{"code limit too high", strings.Replace(goodYAML, "  api:\n", "  verification:\n    limits:\n      perTargetDaily: 1001\n  api:\n", 1), "spec.verification.limits.perTargetDaily: 1001, must be within 1..1000", goodEnv},
		{"webhook without secret", goodYAML + webhookYAML, "USERVE_WEBHOOK_SECRET is required: spec.verification.sms.webhook is set", goodEnv},
		{"webhook secretRef without secret", goodYAML + webhookYAML + webhookSecretRefYAML, "USERVE_WEBHOOK_SECRET is required", goodEnv},
		{"wechat without secret", goodYAML + wechatYAML, "USERVE_WECHAT_APP_SECRET is required: spec.wechat is set", goodEnv},
		{"wechat bad appID", goodYAML + strings.Replace(wechatYAML, "wx0123456789abcdef", "wx 1", 1), `spec.wechat.appID "wx 1"`, goodEnv},
		{"wechat bad base", goodYAML + wechatYAML + "    apiBaseURL: ftp://x\n", `spec.wechat.apiBaseURL "ftp://x"`, goodEnv},
		{"wechat base with query", goodYAML + wechatYAML + "    apiBaseURL: https://x/?a=b\n", `spec.wechat.apiBaseURL`, goodEnv},
		{"hserve without clientID", strings.Replace(goodYAML, "  api:\n", "  api:\n    hserve:\n      enabled: true\n", 1), "spec.api.hserve.clientID is required", goodEnv},
		{"hserve bad clientID", strings.Replace(goodYAML, "  api:\n", "  api:\n    hserve:\n      clientID: a/b\n", 1), `spec.api.hserve.clientID "a/b"`, goodEnv},
		{"hserve origin with path", strings.Replace(goodYAML, "  api:\n", "  api:\n    hserve:\n      enabled: true\n      clientID: abc\n      allowedOrigins: [https://a.example.com/app]\n", 1), `allowedOrigins[0] "https://a.example.com/app"`, goodEnv},
		{"hserve wildcard origin", strings.Replace(goodYAML, "  api:\n", "  api:\n    hserve:\n      enabled: true\n      clientID: abc\n      allowedOrigins: ['*']\n", 1), `allowedOrigins[0] "*"`, goodEnv},
		{"hserve without jwt key", strings.Replace(plusOff, "  api:\n", "  api:\n    hserve:\n      enabled: true\n      clientID: abc\n", 1), "USERVE_JWT_KEY is required while the MinApp SDK API", map[string]string{v1alpha1.EnvMongoURI: "mongodb://x/", v1alpha1.EnvAdminTokens: tokA}},
		{"bad database", goodYAML, `database name "a.b"`, map[string]string{v1alpha1.EnvMongoURI: "mongodb://x/", v1alpha1.EnvAdminTokens: tokA, v1alpha1.EnvJWTKey: strings.Repeat("k", 32), v1alpha1.EnvMongoDatabase: "a.b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(write(t, "us.yaml", tc.file), env(tc.env))
			if err == nil {
				t.Fatal("accepted")
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line containing %q", msg, tc.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), env(goodEnv)); err == nil ||
		!strings.Contains(err.Error(), "missing.yaml: no such file or directory") {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := Load("", env(goodEnv)); err == nil || !strings.Contains(err.Error(), "--config is required") {
		t.Fatalf("no path: %v", err)
	}
}
