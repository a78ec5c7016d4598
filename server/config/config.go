// Package config loads what `userve serve` needs: the tenant's UserService
// manifest (YAML or JSON, the same file one would kubectl apply) and the
// environment holding the store location and secrets.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"

	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/internal/mongouri"
)

// MinJWTKeyLength is the shortest accepted HMAC key, in bytes (256 bits).
const MinJWTKeyLength = 32

// MinAdminTokenLength is the shortest accepted admin token, in bytes. The
// operator generates 64 hex characters (32 random bytes).
const MinAdminTokenLength = 32

// Config is one tenant server's configuration.
type Config struct {
	// Service is the manifest with every default applied.
	Service *v1alpha1.UserService

	MongoURI      string
	Database      string
	AdminTokens   []AdminToken // management bearer tokens, named (ParseAdminTokens)
	JWTKey        []byte       // end-user token signing key
	WebhookSecret string       // HMAC key of the SMS webhook
	SMTPPassword  string
	WeChatSecret  string // the mini-program's AppSecret (spec.wechat)
	// Issuer is the JWT iss: "<namespace>/<name>".
	Issuer string
}

// Spec is a shortcut to the defaulted spec.
func (c *Config) Spec() *v1alpha1.UserServiceSpec { return &c.Service.Spec }

// IndexedCustomFields are the custom fields the store indexes (every type
// but object, which nobody filters on).
func (c *Config) IndexedCustomFields() []string {
	var out []string
	for _, f := range c.Service.Spec.Profile.CustomFields {
		if f.Type != v1alpha1.FieldObject {
			out = append(out, f.Name)
		}
	}
	return out
}

// CustomField looks a declared custom profile field up by name.
func (c *Config) CustomField(name string) (v1alpha1.CustomField, bool) {
	for _, f := range c.Service.Spec.Profile.CustomFields {
		if f.Name == name {
			return f, true
		}
	}
	return v1alpha1.CustomField{}, false
}

// Load reads the manifest at path and the environment through getenv (the
// variables of the tenant contract, v1alpha1.Env*).
// Errors are one line naming the problem.
func Load(path string, getenv func(string) string) (*Config, error) {
	if path == "" {
		return nil, errors.New("--config is required: the path of a UserService manifest (YAML or JSON)")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, unwrapPathError(err))
	}
	us, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return FromManifest(us, getenv)
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ParseManifest decodes a UserService strictly (unknown fields are errors),
// checks it as the CRD would, and applies the defaults.
func ParseManifest(data []byte) (*v1alpha1.UserService, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("empty file; expected a UserService manifest")
	}
	if multipleDocuments(data) {
		return nil, errors.New("more than one YAML document; expected exactly one UserService")
	}
	jsonData, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("not valid YAML or JSON: %s", oneLine(err.Error()))
	}
	if bytes.Equal(bytes.TrimSpace(jsonData), []byte("null")) {
		return nil, errors.New("empty document; expected a UserService manifest")
	}
	// Strict like the API server: unknown and duplicate fields are errors,
	// named by their path (spec.api.minapp.maxLimt).
	var us v1alpha1.UserService
	strictErrs, err := sigsjson.UnmarshalStrict(jsonData, &us, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("decoding UserService: %s", describeDecodeError(err))
	}
	if len(strictErrs) > 0 {
		msgs := make([]string, len(strictErrs))
		for i, e := range strictErrs {
			msgs[i] = oneLine(strings.TrimPrefix(e.Error(), "json: "))
		}
		return nil, fmt.Errorf("decoding UserService: %s", strings.Join(msgs, "; "))
	}
	wantAPI := v1alpha1.GroupVersion.String()
	if us.APIVersion != wantAPI || us.Kind != "UserService" {
		return nil, fmt.Errorf("apiVersion/kind is %q/%q, want %q/%q", us.APIVersion, us.Kind, wantAPI, "UserService")
	}
	if us.Name == "" {
		return nil, errors.New("metadata.name is required")
	}
	if err := validateSpec(&us.Spec); err != nil {
		return nil, err
	}
	v1alpha1.SetDefaults(&us)
	if err := validateLimits(&us.Spec); err != nil {
		return nil, err
	}
	return &us, nil
}

var (
	customFieldPattern  = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	databaseNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// validateSpec repeats the CRD's rules that the server depends on, since a
// manifest given to `userve serve` by hand never met the API server.
func validateSpec(s *v1alpha1.UserServiceSpec) error {
	if d := s.Mongo.Database; d != "" && (!databaseNamePattern.MatchString(d) || len(d) > 63) {
		return fmt.Errorf("spec.mongo.database %q: must be 1-63 letters, digits, '_' or '-'", d)
	}
	fields := s.Profile.CustomFields
	if len(fields) > 64 {
		return fmt.Errorf("spec.profile.customFields: %d fields, at most 64", len(fields))
	}
	seen := map[string]bool{}
	for i, f := range fields {
		at := fmt.Sprintf("spec.profile.customFields[%d]", i)
		switch {
		case !customFieldPattern.MatchString(f.Name) || len(f.Name) > 64:
			return fmt.Errorf("%s.name %q: must be lower case letters, digits and '_', starting with a letter, at most 64", at, f.Name)
		case slices.Contains(v1alpha1.BuiltinProfileFields, f.Name):
			return fmt.Errorf("%s.name %q collides with a built-in profile field", at, f.Name)
		case seen[f.Name]:
			return fmt.Errorf("%s.name %q is declared twice", at, f.Name)
		}
		seen[f.Name] = true
		switch f.Type {
		case v1alpha1.FieldString, v1alpha1.FieldInteger, v1alpha1.FieldNumber, v1alpha1.FieldBoolean,
			v1alpha1.FieldArray, v1alpha1.FieldObject, v1alpha1.FieldDate:
		default:
			return fmt.Errorf("%s.type %q: must be one of string, integer, number, boolean, array, object, date", at, f.Type)
		}
		// maxLength on other types is meaningless but the CRD admits it, so
		// it is ignored rather than refused: a manifest the API server took
		// must not crash the tenant's pods.
		if f.MaxLength != nil && *f.MaxLength < 1 {
			return fmt.Errorf("%s.maxLength must be at least 1", at)
		}
	}
	if err := validateWeChat(s.WeChat); err != nil {
		return err
	}
	if err := validateHServe(s.API.HServe); err != nil {
		return err
	}
	_, err := TrustedProxies(s)
	return err
}

var (
	hserveClientIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{0,64}$`)
	originPattern         = regexp.MustCompile(`^https?://[^/?#*]+$`)
)

// validateHServe repeats the CRD's rules on spec.api.hserve.
func validateHServe(h *v1alpha1.HServeAPISpec) error {
	if h == nil {
		return nil
	}
	if !hserveClientIDPattern.MatchString(h.ClientID) {
		return fmt.Errorf("spec.api.hserve.clientID %q: must be at most 64 letters, digits, '_' or '-'", h.ClientID)
	}
	if h.Enabled && h.ClientID == "" {
		return errors.New("spec.api.hserve.clientID is required while spec.api.hserve.enabled is true")
	}
	if len(h.AllowedOrigins) > 32 {
		return fmt.Errorf("spec.api.hserve.allowedOrigins: %d entries, at most 32", len(h.AllowedOrigins))
	}
	for i, o := range h.AllowedOrigins {
		if !originPattern.MatchString(o) || len(o) > 2048 {
			return fmt.Errorf("spec.api.hserve.allowedOrigins[%d] %q: must be an origin such as https://app.example.com (scheme and host, no path, no wildcard)", i, o)
		}
	}
	return nil
}

var weChatAppIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// validateWeChat repeats the CRD's rules on spec.wechat.
func validateWeChat(w *v1alpha1.WeChatSpec) error {
	if w == nil {
		return nil
	}
	if !weChatAppIDPattern.MatchString(w.AppID) {
		return fmt.Errorf("spec.wechat.appID %q: must be 1-64 letters, digits, '_' or '-'", w.AppID)
	}
	if u := w.APIBaseURL; u != "" {
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") || strings.ContainsAny(u, "?#") || len(u) > 2048 {
			return fmt.Errorf("spec.wechat.apiBaseURL %q: must be an http:// or https:// URL without query or fragment", u)
		}
	}
	return nil
}

func validateLimits(s *v1alpha1.UserServiceSpec) error {
	m, p := s.API.MinApp, s.API.Plus
	switch {
	case m.DefaultLimit < 1 || m.DefaultLimit > 1000 || m.MaxLimit < 1 || m.MaxLimit > 1000:
		return errors.New("spec.api.minapp: defaultLimit and maxLimit must be within 1..1000")
	case m.DefaultLimit > m.MaxLimit:
		return errors.New("spec.api.minapp.defaultLimit must not exceed maxLimit")
	case m.AuditRetentionDays < 1 || m.AuditRetentionDays > 3650:
		return fmt.Errorf("spec.api.minapp.auditRetentionDays: %d, must be within 1..3650", m.AuditRetentionDays)
	case p.DefaultLimit < 1 || p.DefaultLimit > 50 || p.MaxLimit < 1 || p.MaxLimit > 50:
		return errors.New("spec.api.plus: defaultLimit and maxLimit must be within 1..50")
	case p.DefaultLimit > p.MaxLimit:
		return errors.New("spec.api.plus.defaultLimit must not exceed maxLimit")
	case p.TokenTTL.Duration < 0 || p.RefreshTTL.Duration < 0 || s.Verification.CodeTTL.Duration < 0 || p.ReauthWindow.Duration < 0:
		return errors.New("spec: tokenTTL, refreshTTL, reauthWindow and codeTTL must not be negative")
	}
	// The CRD's bounds of spec.verification.limits.
	l := s.Verification.Limits
	for _, b := range []struct {
		name     string
		v, upper int32
	}{
		{"perAddressHourly", l.PerAddressHourly, 10000},
		{"perTargetDaily", l.PerTargetDaily, 1000},
		{"perTenantHourly", l.PerTenantHourly, 1000000},
	} {
		if b.v < 1 || b.v > b.upper {
			return fmt.Errorf("spec.verification.limits.%s: %d, must be within 1..%d", b.name, b.v, b.upper)
		}
	}
	return nil
}

// TrustedProxies parses spec.api.plus.trustedProxies.
func TrustedProxies(s *v1alpha1.UserServiceSpec) ([]netip.Prefix, error) {
	cidrs := s.API.Plus.TrustedProxies
	if len(cidrs) > 32 {
		return nil, fmt.Errorf("spec.api.plus.trustedProxies: %d entries, at most 32", len(cidrs))
	}
	out := make([]netip.Prefix, 0, len(cidrs))
	for i, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("spec.api.plus.trustedProxies[%d] %q: must be a CIDR such as 10.0.0.0/8 or fd00::/8", i, c)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// FromManifest completes a parsed manifest with the environment.
func FromManifest(us *v1alpha1.UserService, getenv func(string) string) (*Config, error) {
	ns := us.Namespace
	if ns == "" {
		ns = "default"
	}
	c := &Config{
		Service:       us,
		MongoURI:      strings.TrimSpace(getenv(v1alpha1.EnvMongoURI)),
		Database:      strings.TrimSpace(getenv(v1alpha1.EnvMongoDatabase)),
		JWTKey:        []byte(getenv(v1alpha1.EnvJWTKey)),
		WebhookSecret: getenv(v1alpha1.EnvWebhookSecret),
		SMTPPassword:  getenv(v1alpha1.EnvSMTPPassword),
		WeChatSecret:  getenv(v1alpha1.EnvWeChatSecret),
		Issuer:        ns + "/" + us.Name,
	}
	if c.MongoURI == "" {
		return nil, fmt.Errorf("%s is required (e.g. mongodb://127.0.0.1:27017/)", v1alpha1.EnvMongoURI)
	}
	if !strings.HasPrefix(c.MongoURI, "mongodb://") && !strings.HasPrefix(c.MongoURI, "mongodb+srv://") {
		return nil, fmt.Errorf("%s must start with mongodb:// or mongodb+srv://", v1alpha1.EnvMongoURI)
	}
	// The same rules as the operator's for a tenant's URI: nothing that
	// makes the driver send the pod's, node's or cloud's identity.
	if err := mongouri.Check(c.MongoURI); err != nil {
		return nil, fmt.Errorf("%s: %w", v1alpha1.EnvMongoURI, err)
	}
	if c.Database == "" {
		c.Database = us.Spec.Mongo.Database
	}
	if c.Database == "" {
		c.Database = ns + "_" + us.Name
	}
	if !databaseNamePattern.MatchString(c.Database) || len(c.Database) > 63 {
		return nil, fmt.Errorf("database name %q: must be 1-63 letters, digits, '_' or '-' (set %s or spec.mongo.database)", c.Database, v1alpha1.EnvMongoDatabase)
	}
	tokens, err := ParseAdminTokens(getenv(v1alpha1.EnvAdminTokens))
	if err != nil {
		return nil, err
	}
	c.AdminTokens = tokens
	spec := &us.Spec
	if v1alpha1.Enabled(spec.API.MinApp.Enabled) && len(c.AdminTokens) == 0 {
		return nil, fmt.Errorf("%s is empty but the management API (spec.api.minapp) is enabled", v1alpha1.EnvAdminTokens)
	}
	if v1alpha1.Enabled(spec.API.Plus.Enabled) && len(c.JWTKey) == 0 {
		return nil, fmt.Errorf("%s is required while the end-user API (spec.api.plus) is enabled", v1alpha1.EnvJWTKey)
	}
	if v1alpha1.HServeEnabled(spec) && len(c.JWTKey) == 0 {
		return nil, fmt.Errorf("%s is required while the MinApp SDK API (spec.api.hserve) is enabled", v1alpha1.EnvJWTKey)
	}
	if len(c.JWTKey) > 0 && len(c.JWTKey) < MinJWTKeyLength {
		return nil, fmt.Errorf("%s is %d bytes, shorter than %d (generate one with: openssl rand -hex 32)",
			v1alpha1.EnvJWTKey, len(c.JWTKey), MinJWTKeyLength)
	}
	// Codes sent to the webhook are signed with the secret; with an empty
	// key anyone could forge them, so no secret means no start.
	if sms := spec.Verification.SMS; sms != nil && sms.Webhook != nil && c.WebhookSecret == "" {
		return nil, fmt.Errorf("%s is required: spec.verification.sms.webhook is set and its requests are signed with it (set spec.verification.sms.webhook.secretRef)", v1alpha1.EnvWebhookSecret)
	}
	if m := spec.Verification.Mail; m != nil && m.SMTP != nil && m.SMTP.PasswordSecretRef != nil && c.SMTPPassword == "" {
		return nil, fmt.Errorf("%s is required: spec.verification.mail.smtp.passwordSecretRef is set", v1alpha1.EnvSMTPPassword)
	}
	if spec.WeChat != nil && c.WeChatSecret == "" {
		return nil, fmt.Errorf("%s is required: spec.wechat is set (set spec.wechat.appSecretRef)", v1alpha1.EnvWeChatSecret)
	}
	return c, nil
}

var typeErrorPattern = regexp.MustCompile(`cannot unmarshal (\w+) into Go struct field \w+\.(\S+) of type (\S+)`)

// describeDecodeError rewrites encoding/json's type errors into the
// manifest's terms: "spec.api.minapp.maxLimit: got a string, want int32".
func describeDecodeError(err error) string {
	msg := oneLine(strings.TrimPrefix(err.Error(), "json: "))
	if m := typeErrorPattern.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s: got a %s, want %s", m[2], m[1], m[3])
	}
	return msg
}

// multipleDocuments reports more than one YAML document with content.
func multipleDocuments(data []byte) bool {
	docs, content := 0, false
	for _, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case t == "---" || strings.HasPrefix(t, "--- ") || t == "...":
			if content {
				docs++
			}
			content = false
		case t != "" && !strings.HasPrefix(t, "#"):
			content = true
		}
	}
	if content {
		docs++
	}
	return docs > 1
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
