package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// What the tenant server reads of a UserService: its dialects (api), the
// profile schema (profile) and how codes are delivered (verification).

// APISpec configures the dialects.
type APISpec struct {
	// MinApp is the management dialect (MinApp's user module).
	// +kubebuilder:default={}
	// +optional
	MinApp MinAppAPISpec `json:"minapp,omitempty"`

	// Plus is the end-user dialect (ThinkSNS Plus v2 users).
	// +kubebuilder:default={}
	// +optional
	Plus PlusAPISpec `json:"plus,omitempty"`

	// HServe is the dialect of MinApp's own client SDK (minapp-sdk), under
	// /hserve/. Off unless enabled. It shares the end-user dialect's users,
	// tokens and attempt limits.
	// +optional
	HServe *HServeAPISpec `json:"hserve,omitempty"`

	// Console is the web console for the tenant's admins, served at
	// /userve/console/ and /oserve/console/ (docs/console.md). It is served
	// only while the management API (minapp) is enabled.
	// +kubebuilder:default={}
	// +optional
	Console ConsoleAPISpec `json:"console,omitempty"`
}

// ConsoleAPISpec configures the tenant console (docs/console.md).
type ConsoleAPISpec struct {
	// Enabled serves the console; it needs api.minapp.enabled too.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
}

// HServeAPISpec configures the MinApp client SDK dialect (docs/hserve.md).
// +kubebuilder:validation:XValidation:rule="!(has(self.enabled) && self.enabled) || (has(self.clientID) && size(self.clientID) > 0)",message="api.hserve.clientID is required while api.hserve.enabled is true"
type HServeAPISpec struct {
	// Enabled serves the /hserve/ routes.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// ClientID is the app's MinApp client ID, the first argument of
	// BaaS.init(clientID, {host}). Every /hserve/ request must carry it in
	// X-Hydrogen-Client-ID (else 401). It is not a secret: it ships inside
	// the app.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]*$`
	// +optional
	ClientID string `json:"clientID,omitempty"`
	// AllowedOrigins are the web origins (scheme://host[:port]) whose
	// browser pages may call /hserve/ (CORS). Empty: no cross-origin
	// browser access (mini-programs and same-origin pages need none).
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.all(o, o.matches('^https?://[^/?#*]+$'))",message="api.hserve.allowedOrigins must be origins such as https://app.example.com (scheme and host, no path, no wildcard)"
	// +optional
	AllowedOrigins []string `json:"allowedOrigins,omitempty"`
}

// MinAppAPISpec configures the management dialect.
// +kubebuilder:validation:XValidation:rule="!has(self.defaultLimit) || !has(self.maxLimit) || self.defaultLimit <= self.maxLimit",message="api.minapp.defaultLimit must not exceed maxLimit"
type MinAppAPISpec struct {
	// Enabled serves the management routes.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// DefaultLimit is the page size when a list names no limit.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=20
	// +optional
	DefaultLimit int32 `json:"defaultLimit,omitempty"`
	// MaxLimit clamps the page size.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=1000
	// +optional
	MaxLimit int32 `json:"maxLimit,omitempty"`
	// AuditRetentionDays is how long the audit log keeps an admin action;
	// older entries are deleted by the server (docs/server.md).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3650
	// +kubebuilder:default=180
	// +optional
	AuditRetentionDays int32 `json:"auditRetentionDays,omitempty"`
}

// PlusAPISpec configures the end-user dialect.
// +kubebuilder:validation:XValidation:rule="!has(self.defaultLimit) || !has(self.maxLimit) || self.defaultLimit <= self.maxLimit",message="api.plus.defaultLimit must not exceed maxLimit"
type PlusAPISpec struct {
	// Enabled serves the /api/v2 routes.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// DefaultLimit is the page size when a list names no limit.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=50
	// +kubebuilder:default=20
	// +optional
	DefaultLimit int32 `json:"defaultLimit,omitempty"`
	// MaxLimit is the largest page a list accepts.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=50
	// +kubebuilder:default=50
	// +optional
	MaxLimit int32 `json:"maxLimit,omitempty"`
	// TokenTTL is the lifetime of an access token.
	// +kubebuilder:default="1h"
	// +optional
	TokenTTL *metav1.Duration `json:"tokenTTL,omitempty"`
	// RefreshTTL is how long after issue a token may still be refreshed.
	// +kubebuilder:default="336h"
	// +optional
	RefreshTTL *metav1.Duration `json:"refreshTTL,omitempty"`
	// ReauthWindow is how long after a login (password, code or WeChat) a
	// user may change a contact, link WeChat, bind WeChat's phone or set a
	// first password without proving again that it is them; later such a
	// change needs the password or a code sent to a contact already bound.
	// Refreshing a token does not reopen the window.
	// +kubebuilder:default="10m"
	// +optional
	ReauthWindow *metav1.Duration `json:"reauthWindow,omitempty"`
	// LoginHistory is how long each login attempt on a known account
	// (its time, client address, method and result) is kept for the
	// admin's login history of a user (GET /userve/v1/users/{id}/logins/).
	// +kubebuilder:default="720h"
	// +optional
	LoginHistory *metav1.Duration `json:"loginHistory,omitempty"`
	// TrustedProxies are the CIDRs of the proxies in front of the tenant
	// (ingress controllers, load balancers). A request that comes from one
	// of them counts, for the per-address rate limits, as coming from the
	// right-most X-Forwarded-For address that is not itself a trusted
	// proxy. Empty: the TCP peer is the client, whatever the header says
	// (behind an ingress, every user then shares the ingress's limits).
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=49
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="api.plus.trustedProxies must be CIDRs such as 10.0.0.0/8 or fd00::/8"
	// +optional
	TrustedProxies []string `json:"trustedProxies,omitempty"`
}

// ProfileSpec declares custom profile fields.
type ProfileSpec struct {
	// CustomFields are the tenant's own profile fields, served at the top
	// level of the management profile object.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:XValidation:rule="self.all(f, self.exists_one(g, g.name == f.name))",message="profile.customFields names must be unique"
	// +optional
	CustomFields []CustomField `json:"customFields,omitempty"`
}

// CustomFieldType is the JSON type a custom field holds.
// +kubebuilder:validation:Enum=string;integer;number;boolean;array;object;date
type CustomFieldType string

const (
	FieldString  CustomFieldType = "string"
	FieldInteger CustomFieldType = "integer"
	FieldNumber  CustomFieldType = "number"
	FieldBoolean CustomFieldType = "boolean"
	FieldArray   CustomFieldType = "array"
	FieldObject  CustomFieldType = "object"
	// FieldDate holds an RFC 3339 timestamp string.
	FieldDate CustomFieldType = "date"
)

// BuiltinProfileFields are the management profile's own keys; no custom
// field may take one of these names. Keep in step with the CEL rule below.
var BuiltinProfileFields = []string{
	"id", "user_id", "nickname", "avatar", "gender", "city", "province", "country",
	"language", "openid", "unionid", "user_group", "created_at", "updated_at",
}

// CustomField is one custom profile field.
// +kubebuilder:validation:XValidation:rule="!has(self.maxLength) || self.type == 'string' || self.type == 'array'",message="maxLength applies only to string and array custom fields"
type CustomField struct {
	// Name of the field: lower case letters, digits and underscores,
	// starting with a letter, and not a built-in profile field (id, user_id,
	// nickname, avatar, gender, city, province, country, language, openid,
	// unionid, user_group, created_at, updated_at).
	// +kubebuilder:validation:Pattern=`^[a-z][a-z0-9_]*$`
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="!(self in ['id','user_id','nickname','avatar','gender','city','province','country','language','openid','unionid','user_group','created_at','updated_at'])",message="custom field name collides with a built-in profile field"
	Name string `json:"name"`
	// Type of the field's values.
	Type CustomFieldType `json:"type"`
	// MaxLength bounds a string's length in characters, or an array's items.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxLength *int32 `json:"maxLength,omitempty"`
	// Required fields must be given when a user is created.
	// +optional
	Required bool `json:"required,omitempty"`
}

// VerificationSpec configures one-time codes.
type VerificationSpec struct {
	// CodeTTL is how long a code stays valid.
	// +kubebuilder:default="5m"
	// +optional
	CodeTTL *metav1.Duration `json:"codeTTL,omitempty"`
	// SMS delivers codes for phone numbers. Unset: no code is sent to a
	// phone number (422), unless logCodes is on.
	// +optional
	SMS *SMSSpec `json:"sms,omitempty"`
	// Mail delivers codes for e-mail addresses. Unset: no code is sent to an
	// e-mail address (422), unless logCodes is on.
	// +optional
	Mail *MailSpec `json:"mail,omitempty"`
	// LogCodes writes the codes of a channel without delivery (sms or mail
	// unset) to the server log instead. Development only: whoever reads the
	// tenant's logs can then take over its accounts, so the server warns at
	// start while it is on.
	// +optional
	LogCodes bool `json:"logCodes,omitempty"`
	// Limits bound how many codes are sent, against enumeration and
	// SMS-pumping fraud. Counted in the tenant's MongoDB, shared by every
	// replica.
	// +kubebuilder:default={}
	// +optional
	Limits CodeLimits `json:"limits,omitempty"`
}

// CodeLimits bound the sending of verification codes. A request over a
// limit is a 429 with Retry-After.
type CodeLimits struct {
	// PerAddressHourly is how many codes one client address may request per
	// hour (IPv6: one /64), counted first, before the target is looked up,
	// so it also bounds probing which phones and e-mails have accounts.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +kubebuilder:default=30
	// +optional
	PerAddressHourly int32 `json:"perAddressHourly,omitempty"`
	// PerTargetDaily is how many codes one phone number or e-mail address
	// receives per day (UTC), besides the one-a-minute resend interval.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=10
	// +optional
	PerTargetDaily int32 `json:"perTargetDaily,omitempty"`
	// PerTenantHourly is how many codes the tenant sends per hour over all
	// targets: the ceiling of its delivery bill.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +kubebuilder:default=1000
	// +optional
	PerTenantHourly int32 `json:"perTenantHourly,omitempty"`
}

// SMSSpec delivers phone codes.
type SMSSpec struct {
	// Webhook receives a JSON POST per code, signed with HMAC-SHA256.
	Webhook *WebhookSpec `json:"webhook,omitempty"`
}

// WebhookSpec is an HTTP endpoint that relays codes.
type WebhookSpec struct {
	// URL to POST to.
	// +kubebuilder:validation:Pattern=`^https?://`
	// +kubebuilder:validation:MaxLength=2048
	URL string `json:"url"`
	// SecretRef names the HMAC key; its value reaches the server as
	// USERVE_WEBHOOK_SECRET. Required: an unsigned webhook would let anyone
	// who can reach the relay forge code deliveries.
	SecretRef *SecretKeyRef `json:"secretRef"`
}

// MailSpec delivers e-mail codes.
type MailSpec struct {
	// SMTP server to send through.
	SMTP *SMTPSpec `json:"smtp,omitempty"`
}

// SMTPSpec is a mail relay.
type SMTPSpec struct {
	// Host of the SMTP server.
	// +kubebuilder:validation:MinLength=1
	Host string `json:"host"`
	// Port of the SMTP server.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=587
	// +optional
	Port int32 `json:"port,omitempty"`
	// From is the sender address.
	// +kubebuilder:validation:MinLength=3
	From string `json:"from"`
	// Username for SMTP AUTH; unset sends without authentication.
	// +optional
	Username string `json:"username,omitempty"`
	// PasswordSecretRef names the SMTP password; its value reaches the server
	// as USERVE_SMTP_PASSWORD.
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`
}
