// Package base builds the base OpenAPI documents committed under
// docs/openapi/: a tenant with every dialect and WeChat login on, and no
// custom profile fields. A tenant's own documents add its custom fields.
package base

import (
	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/openapi"
	"userve.dev/userve/server"
	"userve.dev/userve/server/config"
)

// FileName is the committed file of dialect d under docs/openapi/.
func FileName(d openapi.Dialect) string { return string(d) + ".json" }

// Documents are the base documents by dialect.
func Documents() (map[openapi.Dialect][]byte, error) {
	us := &v1alpha1.UserService{Spec: v1alpha1.UserServiceSpec{
		WeChat: &v1alpha1.WeChatSpec{AppID: "wx0000000000000000", AppSecretRef: v1alpha1.SecretKeyRef{Name: "wechat", Key: "app-secret"}},
	}}
	us.Name, us.Namespace = "example", "default"
	us.Spec.API.HServe = &v1alpha1.HServeAPISpec{Enabled: true, ClientID: "0123456789abcdef0123", AllowedOrigins: []string{"https://app.example.com"}}
	v1alpha1.SetDefaults(us)
	// Placeholders: the documents do not depend on the secrets' values.
	cfg := &config.Config{Service: us, AdminTokens: []config.AdminToken{{Name: "admin-1", Token: "0123456789abcdef0123456789abcdef"}},
		JWTKey: []byte("0123456789abcdef0123456789abcdef"), WeChatSecret: "placeholder", Issuer: "default/example"}
	return server.OpenAPIDocuments(cfg)
}
