package v1alpha1

import "k8s.io/apimachinery/pkg/runtime/schema"

// The tenant contract: what a tenant's server (`userve serve`) is given and
// what the operator keeps for a tenant. The renderer, the server's
// configuration, the sandbox, the CLI and the controller all read it from
// here, so that a new consumer (a shared pool) cannot drift from them.

// Environment of the tenant server.
const (
	EnvMongoURI      = "USERVE_MONGO_URI"
	EnvMongoDatabase = "USERVE_MONGO_DATABASE"
	EnvAdminTokens   = "USERVE_ADMIN_TOKENS"
	EnvJWTKey        = "USERVE_JWT_KEY"
	EnvWebhookSecret = "USERVE_WEBHOOK_SECRET"
	EnvSMTPPassword  = "USERVE_SMTP_PASSWORD"
	EnvWeChatSecret  = "USERVE_WECHAT_APP_SECRET"
	// EnvMemoryLimit is the container's memory limit in bytes: the server
	// gives a quarter of it to password checks.
	EnvMemoryLimit = "USERVE_MEMORY_LIMIT"
	// EnvGOMAXPROCS comes from the CPU limit, when there is one.
	EnvGOMAXPROCS = "GOMAXPROCS"
)

// TenantSecretRef is a Secret key, in the tenant's namespace, that the spec
// names and whose value the tenant's server reads from Env.
// +kubebuilder:object:generate=false
type TenantSecretRef struct {
	Env   string // the server's environment variable
	Field string // where the spec names it, e.g. "spec.wechat.appSecretRef"
	Ref   SecretKeyRef
}

// TenantSecretRefs lists every Secret key the spec names, in a fixed order
// (so that the first missing one is always the same). What the spec leaves
// out comes from the operator: the MongoDB URI from its default, the admin
// tokens and the JWT key from the credentials Secret it generates.
func TenantSecretRefs(spec *UserServiceSpec) []TenantSecretRef {
	var out []TenantSecretRef
	add := func(env, field string, ref *SecretKeyRef) {
		if ref != nil {
			out = append(out, TenantSecretRef{Env: env, Field: field, Ref: *ref})
		}
	}
	add(EnvMongoURI, "spec.mongo.uriSecretRef", spec.Mongo.URISecretRef)
	add(EnvAdminTokens, "spec.adminTokensSecretRef", spec.AdminTokensSecretRef)
	if sms := spec.Verification.SMS; sms != nil && sms.Webhook != nil {
		add(EnvWebhookSecret, "spec.verification.sms.webhook.secretRef", sms.Webhook.SecretRef)
	}
	if mail := spec.Verification.Mail; mail != nil && mail.SMTP != nil {
		add(EnvSMTPPassword, "spec.verification.mail.smtp.passwordSecretRef", mail.SMTP.PasswordSecretRef)
	}
	if wc := spec.WeChat; wc != nil {
		add(EnvWeChatSecret, "spec.wechat.appSecretRef", &wc.AppSecretRef)
	}
	return out
}

// TenantSecretRefFor is the Secret key the spec names for env, if any.
func TenantSecretRefFor(spec *UserServiceSpec, env string) (TenantSecretRef, bool) {
	for _, r := range TenantSecretRefs(spec) {
		if r.Env == env {
			return r, true
		}
	}
	return TenantSecretRef{}, false
}

// OwnedKind is a kind of object the operator creates for a tenant, in the
// tenant's namespace, with the UserService as its controller owner.
// +kubebuilder:object:generate=false
type OwnedKind struct {
	schema.GroupVersionKind
	// Optional kinds exist only while the spec asks for them; the operator
	// deletes them when it no longer does.
	Optional bool
}

// OwnedKinds lists every kind the operator owns for a tenant: the kinds it
// applies, watches and caches, and that go with the tenant.
func OwnedKinds() []OwnedKind {
	return []OwnedKind{
		{GroupVersionKind: schema.GroupVersionKind{Version: "v1", Kind: "ServiceAccount"}},
		{GroupVersionKind: schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}},
		{GroupVersionKind: schema.GroupVersionKind{Version: "v1", Kind: "Secret"}},
		{GroupVersionKind: schema.GroupVersionKind{Version: "v1", Kind: "Service"}},
		{GroupVersionKind: schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}},
		{GroupVersionKind: schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"}, Optional: true},
		{GroupVersionKind: schema.GroupVersionKind{Group: "autoscaling", Version: "v2", Kind: "HorizontalPodAutoscaler"}, Optional: true},
		{GroupVersionKind: schema.GroupVersionKind{Group: "policy", Version: "v1", Kind: "PodDisruptionBudget"}, Optional: true},
		{GroupVersionKind: schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"}, Optional: true},
		// The endpoints of a pooled tenant's Service: the pool's pods.
		{GroupVersionKind: schema.GroupVersionKind{Group: "discovery.k8s.io", Version: "v1", Kind: "EndpointSlice"}, Optional: true},
	}
}
