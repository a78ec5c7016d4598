package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// (The CPU-request rule below compares with literals: a quantity inside
// spec.resources is an int-or-string of unbounded size, and the API server's
// cost budget refuses parsing it with quantity(). The spellings of zero users
// write are listed; any other positive-or-not value is left to the schema.)

// UserServiceSpec declares one tenant's user service. The tenant server reads
// api, profile and verification; everything else tells the operator how to run
// it.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.replicas) && has(self.autoscaling))",message="spec.replicas and spec.autoscaling are mutually exclusive: remove replicas while autoscaling is on"
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || !has(self.resources) || ((!has(self.resources.requests) || !('cpu' in self.resources.requests) || (self.resources.requests.cpu != 0 && !(self.resources.requests.cpu in ['0', '0m', '0.0', '+0', '0k']))) && (!has(self.resources.limits) || !('cpu' in self.resources.limits) || (self.resources.limits.cpu != 0 && !(self.resources.limits.cpu in ['0', '0m', '0.0', '+0', '0k']))))",message="spec.autoscaling needs a CPU request above zero: the autoscaler scales on CPU use relative to spec.resources.requests.cpu (leave it out to get the default 50m)"
type UserServiceSpec struct {
	// Replicas of the tenant server. Unset means 1, or the autoscaler's
	// choice when autoscaling is on (the two may not be set together).
	// `kubectl scale usvc/NAME --replicas=N` sets this field.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Image of the tenant server; defaults to the operator's --server-image.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// Suspend scales the tenant to zero pods (and removes its autoscaler);
	// its database, Service and credentials are kept.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// Mongo says where the tenant's database lives.
	// +kubebuilder:default={}
	// +optional
	Mongo MongoSpec `json:"mongo,omitempty"`

	// DeletionPolicy says what happens to the tenant database when the
	// UserService is deleted: Retain keeps it, Delete drops it. With Delete
	// the UserService stays (phase Deleting, Degraded) until the database is
	// dropped; switching to Retain then lets it go without dropping.
	// +kubebuilder:validation:Enum=Retain;Delete
	// +kubebuilder:default=Retain
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// API configures the REST dialects.
	// +kubebuilder:default={}
	// +optional
	API APISpec `json:"api,omitempty"`

	// AdminTokensSecretRef names a Secret key holding the management API's
	// bearer tokens, comma-separated, each at least 32 bytes (the server
	// refuses to start with a shorter one). Unset: the operator generates one
	// token (64 hex characters) into the tenant's credentials Secret
	// (status.credentialsSecret, key admin-tokens) and keeps it.
	// +optional
	AdminTokensSecretRef *SecretKeyRef `json:"adminTokensSecretRef,omitempty"`

	// Profile declares the tenant's custom profile fields.
	// +optional
	Profile ProfileSpec `json:"profile,omitempty"`

	// Verification configures one-time codes and how they are delivered.
	// +kubebuilder:default={}
	// +optional
	Verification VerificationSpec `json:"verification,omitempty"`

	// Ingress exposes the tenant on a host name; status.endpoint then shows
	// its URL. Unset: no Ingress, the tenant is reachable in the cluster only.
	// +optional
	Ingress *IngressSpec `json:"ingress,omitempty"`

	// Autoscaling adds a HorizontalPodAutoscaler on CPU. While it is set the
	// operator leaves the Deployment's replicas to the autoscaler, and
	// spec.replicas must be unset.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// Resources of the tenant server container. Each key left out gets a
	// default: requests cpu 50m and memory 64Mi, limits memory 256Mi (no
	// CPU limit); a default request is never above a given limit, nor the
	// default limit below a given request. A CPU limit also sets the
	// server's GOMAXPROCS. With autoscaling the CPU request must be above
	// zero.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// PodTemplate holds scheduling settings copied into the tenant pods.
	// +optional
	PodTemplate PodTemplateSpec `json:"podTemplate,omitempty"`

	// NetworkPolicy, when enabled, confines the tenant pods' traffic:
	// ingress to the API port from the tenant's namespace and the ingress
	// controller (or the peers named here), to the metrics port from
	// metricsFrom only; egress to DNS, MongoDB and the code delivery targets
	// only.
	// +optional
	NetworkPolicy NetworkPolicySpec `json:"networkPolicy,omitempty"`

	// PodDisruptionBudget adds a PodDisruptionBudget for the tenant pods.
	// +optional
	PodDisruptionBudget *PodDisruptionBudgetSpec `json:"podDisruptionBudget,omitempty"`

	// WeChat turns on WeChat mini-program login on the end-user API
	// (POST /api/v2/auth/wechat and /api/v2/user/wechat...). Unset: off.
	// +optional
	WeChat *WeChatSpec `json:"wechat,omitempty"`
}

// WeChatSpec is the tenant's WeChat mini-program.
type WeChatSpec struct {
	// AppID of the mini-program (wx followed by 16 hex digits, as the
	// WeChat console shows it; any 1-64 letters, digits, '_' or '-' are
	// accepted for test apps).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	AppID string `json:"appID"`
	// AppSecretRef names the Secret key holding the mini-program's
	// AppSecret; its value reaches the server as USERVE_WECHAT_APP_SECRET.
	// Session keys are stored encrypted under a key derived from it.
	AppSecretRef SecretKeyRef `json:"appSecretRef"`
	// APIBaseURL is where WeChat's server API is (tests and `make dev`
	// point it at a local fake).
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('https://') || self.startsWith('http://')",message="wechat.apiBaseURL must be an http:// or https:// URL"
	// +kubebuilder:validation:XValidation:rule="!self.contains('?') && !self.contains('#')",message="wechat.apiBaseURL must not carry a query or fragment"
	// +kubebuilder:default="https://api.weixin.qq.com"
	// +optional
	APIBaseURL string `json:"apiBaseURL,omitempty"`
	// CreateUsers lets a WeChat login create a user for a WeChat account
	// nobody has linked yet. false: such a login is a 404 until a signed-in
	// user links the account (PUT /api/v2/user/wechat).
	// +kubebuilder:default=true
	// +optional
	CreateUsers *bool `json:"createUsers,omitempty"`
}

// DeletionPolicy is Retain or Delete.
type DeletionPolicy string

const (
	DeletionPolicyRetain DeletionPolicy = "Retain"
	DeletionPolicyDelete DeletionPolicy = "Delete"
)

// SecretKeyRef names one key of a Secret in the UserService's namespace. The
// operator labels such a Secret miniapp.userve.dev/watched=true so that a new
// value reaches the tenant's pods at once (they are rolled).
type SecretKeyRef struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key within the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// MongoSpec locates the tenant database.
// +kubebuilder:validation:XValidation:rule="has(self.database) == has(oldSelf.database) && (!has(self.database) || self.database == oldSelf.database)",message="spec.mongo.database is immutable: it can only be set when the UserService is created"
type MongoSpec struct {
	// URISecretRef names the Secret key holding the MongoDB URI. Unset: the
	// operator's --default-mongo-uri-secret.
	// +optional
	URISecretRef *SecretKeyRef `json:"uriSecretRef,omitempty"`

	// Database name. Unset: "<namespace>_<name>" (which must then fit in 63
	// characters). Immutable: it can only be given when the UserService is
	// created, so a tenant never moves to another (empty) database. A
	// database another UserService uses is refused (reason DatabaseInUse),
	// and so is one that holds data but no ownership record naming this
	// UserService (reason DatabaseNotOwned). A name of the form
	// "<namespace>_<name>" is another namespace's default name and refused
	// outside that namespace (reason InvalidDatabase). MongoDB's own
	// databases (admin, local, config) are refused at admission.
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="!(self.lowerAscii() in ['admin', 'local', 'config'])",message="spec.mongo.database may not be admin, local or config: those are MongoDB's own databases"
	// +optional
	Database string `json:"database,omitempty"`
}

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

// IngressSpec exposes the tenant.
type IngressSpec struct {
	// Host name routed to the tenant, for example users.example.com.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Host string `json:"host"`
	// ClassName of the ingress controller.
	// +optional
	ClassName *string `json:"className,omitempty"`
	// TLSSecretName turns on TLS with this certificate Secret (in the
	// UserService's namespace); the endpoint becomes https://HOST.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	TLSSecretName string `json:"tlsSecretName,omitempty"`
}

// AutoscalingSpec configures a HorizontalPodAutoscaler.
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",message="autoscaling.minReplicas must not exceed maxReplicas"
type AutoscalingSpec struct {
	// MinReplicas is the autoscaler's floor.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=1
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	// MaxReplicas is the autoscaler's ceiling.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxReplicas int32 `json:"maxReplicas"`
	// TargetCPUUtilizationPercentage is the average CPU use to aim for.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=80
	// +optional
	TargetCPUUtilizationPercentage *int32 `json:"targetCPUUtilizationPercentage,omitempty"`
}

// PodTemplateSpec holds the scheduling settings of tenant pods.
type PodTemplateSpec struct {
	// NodeSelector of the tenant pods.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Tolerations of the tenant pods.
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// Affinity of the tenant pods.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`
	// TopologySpreadConstraints of the tenant pods. Their labelSelector may
	// match the pods' labels app.kubernetes.io/name=userve-server and
	// app.kubernetes.io/instance=NAME.
	// +optional
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
	// PriorityClassName of the tenant pods.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`
}

// NetworkPolicySpec configures the tenant's NetworkPolicy. Each peer list
// replaces its default when set. Peers follow NetworkPolicy semantics: a
// podSelector alone selects pods of the tenant's namespace, a
// namespaceSelector alone every pod of the selected namespaces, both
// together the selected pods of the selected namespaces, an ipBlock
// addresses outside the cluster (or node addresses). Kubelet probes come
// from the node and are admitted by every common CNI without a rule.
type NetworkPolicySpec struct {
	// Enabled adds the NetworkPolicy. Without it the tenant pods accept and
	// open any connection the cluster allows.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// IngressFrom are the peers that may reach the API port (8080). Unset:
	// every pod of the tenant's own namespace, and every pod of the
	// namespace named by ingressControllerNamespace.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	IngressFrom []NetworkPeer `json:"ingressFrom,omitempty"`

	// IngressControllerNamespace is the namespace of the ingress controller
	// (matched by its kubernetes.io/metadata.name label), admitted to the API
	// port while ingressFrom is unset. Unset: ingress-nginx. Empty (""):
	// none, only the tenant's namespace.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$`
	// +optional
	IngressControllerNamespace *string `json:"ingressControllerNamespace,omitempty"`

	// MetricsFrom are the peers that may scrape the metrics port (9090),
	// for example the monitoring namespace:
	// [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}].
	// Unset: nobody (the Service and the Ingress never route that port).
	// +kubebuilder:validation:MaxItems=32
	// +optional
	MetricsFrom []NetworkPeer `json:"metricsFrom,omitempty"`

	// DNSTo are the DNS servers the pods may query on port 53 (UDP and TCP).
	// Unset: the kube-dns pods (k8s-app=kube-dns) of kube-system, which
	// CoreDNS keeps by default. Clusters with NodeLocal DNSCache add its
	// address as an ipBlock (for example 169.254.20.10/32).
	// +kubebuilder:validation:MaxItems=32
	// +optional
	DNSTo []NetworkPeer `json:"dnsTo,omitempty"`

	// MongoTo are the MongoDB servers, on mongoPorts. Unset: any address on
	// mongoPorts (the URI names a host, not an address the policy could
	// match); name the MongoDB pods or CIDRs to narrow it.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	MongoTo []NetworkPeer `json:"mongoTo,omitempty"`

	// MongoPorts are the TCP ports of MongoDB. Unset: 27017.
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65535
	// +optional
	MongoPorts []int32 `json:"mongoPorts,omitempty"`

	// DeliveryTo are the code delivery targets: the SMS webhook and the SMTP
	// server of spec.verification, on the ports their URL and smtp.port
	// name. Unset: any address on those ports. No rule at all when codes
	// are only logged.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	DeliveryTo []NetworkPeer `json:"deliveryTo,omitempty"`

	// AdditionalEgress admits further destinations, for example an API the
	// tenant server calls that this version does not know of.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	AdditionalEgress []NetworkEgressRule `json:"additionalEgress,omitempty"`
}

// NetworkPeer is one side of a connection, as in a NetworkPolicy: pods by
// labels (podSelector, namespaceSelector) or addresses (ipBlock), not both.
// +kubebuilder:validation:XValidation:rule="has(self.podSelector) || has(self.namespaceSelector) || has(self.ipBlock)",message="a network peer needs podSelector, namespaceSelector or ipBlock"
// +kubebuilder:validation:XValidation:rule="!has(self.ipBlock) || (!has(self.podSelector) && !has(self.namespaceSelector))",message="a network peer's ipBlock cannot be combined with podSelector or namespaceSelector: use two peers"
type NetworkPeer struct {
	// PodSelector selects pods: of the tenant's namespace alone, or of the
	// namespaces namespaceSelector selects. {} selects every pod.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
	// NamespaceSelector selects namespaces by their labels (every namespace
	// has kubernetes.io/metadata.name=<its name>). {} selects every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// IPBlock selects addresses.
	// +optional
	IPBlock *IPBlock `json:"ipBlock,omitempty"`
}

// IPBlock is a CIDR, minus the CIDRs in except.
// +kubebuilder:validation:XValidation:rule="!has(self.except) || !isCIDR(self.cidr) || self.except.all(e, !isCIDR(e) || (cidr(self.cidr).containsCIDR(e) && cidr(e).prefixLength() > cidr(self.cidr).prefixLength()))",message="ipBlock.except must hold CIDRs strictly inside ipBlock.cidr"
type IPBlock struct {
	// CIDR such as 10.0.0.0/8 or fd00::/8.
	// +kubebuilder:validation:MaxLength=49
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="ipBlock.cidr must be a CIDR such as 10.0.0.0/8 or fd00::/8"
	CIDR string `json:"cidr"`
	// Except are CIDRs inside cidr left out of it.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=49
	// +kubebuilder:validation:XValidation:rule="self.all(e, isCIDR(e))",message="ipBlock.except must be CIDRs such as 10.1.0.0/16"
	// +optional
	Except []string `json:"except,omitempty"`
}

// NetworkEgressRule admits connections to peers on ports.
type NetworkEgressRule struct {
	// To are the destinations. Unset: any destination on ports.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	To []NetworkPeer `json:"to,omitempty"`
	// Ports are the destination ports.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Ports []NetworkPort `json:"ports"`
}

// NetworkPort is a destination port.
type NetworkPort struct {
	// Port number.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
	// Protocol: TCP, UDP or SCTP.
	// +kubebuilder:validation:Enum=TCP;UDP;SCTP
	// +kubebuilder:default=TCP
	// +optional
	Protocol corev1.Protocol `json:"protocol,omitempty"`
}

// PodDisruptionBudgetSpec configures a PDB.
type PodDisruptionBudgetSpec struct {
	// MinAvailable pods during voluntary disruptions.
	// +kubebuilder:default=1
	// +optional
	MinAvailable *intstr.IntOrString `json:"minAvailable,omitempty"`
}

// UserServiceStatus is what the operator observed.
type UserServiceStatus struct {
	// Phase summarizes the conditions: Pending, Ready, Degraded, Suspended
	// or Deleting.
	// +kubebuilder:validation:Enum=Pending;Ready;Degraded;Suspended;Deleting
	// +optional
	Phase string `json:"phase,omitempty"`
	// Conditions, following kstatus: Ready (normal-true: the tenant serves
	// its current spec), Progressing and Degraded (abnormal-true: a rollout is
	// under way; the operator cannot converge, see the reason), and
	// DatabaseReady (the operator reached the tenant's MongoDB and the
	// database is the tenant's), and DatabaseIsolated (whether the store
	// confines the tenant's database user to its database).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the generation whose desired objects were last
	// applied successfully.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Replicas is the number of tenant pods (the scale subresource's status).
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// ReadyReplicas is the number of ready tenant pods.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// Selector of the tenant pods, for the scale subresource.
	// +optional
	Selector string `json:"selector,omitempty"`
	// Endpoint is the tenant's base URL inside the cluster (or its ingress).
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// Database is the MongoDB database name in use.
	// +optional
	Database string `json:"database,omitempty"`
	// CredentialsSecret names the Secret holding the generated admin tokens
	// (key admin-tokens) and the JWT signing key (key jwt-key).
	// +optional
	CredentialsSecret string `json:"credentialsSecret,omitempty"`
}

// Phases.
const (
	PhasePending   = "Pending"
	PhaseReady     = "Ready"
	PhaseDegraded  = "Degraded"
	PhaseSuspended = "Suspended"
	PhaseDeleting  = "Deleting"
)

// Condition types.
const (
	ConditionReady         = "Ready"
	ConditionProgressing   = "Progressing"
	ConditionDegraded      = "Degraded"
	ConditionDatabaseReady = "DatabaseReady"
	// ConditionDatabaseIsolated: True when the tenant's own database user
	// holds readWrite on its database only; False where the store cannot
	// confine it (FerretDB v1) or credentials are shared; Unknown for a
	// tenant's own URI.
	ConditionDatabaseIsolated = "DatabaseIsolated"
)

// UserService is one tenant's user service: a Deployment of `userve serve`
// with its Service and configuration, backed by the tenant's own MongoDB
// database. Its name must be a DNS label because it names the tenant's
// Service.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=usvc,categories=userve
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`,priority=1
// +kubebuilder:printcolumn:name="Database",type=string,JSONPath=`.status.database`,priority=1
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label (lower case letters, digits and '-', starting with a letter, at most 63 characters): it names the tenant's Service"
type UserService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:default={}
	// +optional
	Spec UserServiceSpec `json:"spec,omitempty"`
	// +optional
	Status UserServiceStatus `json:"status,omitempty"`
}

// UserServiceList is a list of UserServices.
//
// +kubebuilder:object:root=true
type UserServiceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []UserService `json:"items"`
}

func init() {
	SchemeBuilder.Register(&UserService{}, &UserServiceList{})
}
