package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/store"
)

func tenantConfig(name, token string, plusOn bool) *config.Config {
	us := &v1alpha1.UserService{}
	us.Spec.API.Plus.Enabled = &plusOn
	us.Name, us.Namespace = name, "tenants"
	v1alpha1.SetDefaults(us)
	return &config.Config{Service: us, Database: name, AdminTokens: []config.AdminToken{{Name: "admin", Token: token}},
		JWTKey: []byte("test-jwt-key-0123456789abcdef0123456789"), Issuer: "tenants/" + name}
}

// Servers with the same routes share one router, which holds no tenant
// state: a request is served by the handlers of the server it came in
// through, and a request that came through none is refused, not served.
func TestServersShareTheirRouter(t *testing.T) {
	quiet := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	// Stores that never connect: a request they would serve answers 503.
	st, err := store.Connect("mongodb://127.0.0.1:1/", "nowhere")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	a := New(tenantConfig("a", "token-of-tenant-a-0123456789", true), st, quiet)
	b := New(tenantConfig("b", "token-of-tenant-b-0123456789", true), st, quiet)
	other := New(tenantConfig("c", "token-of-tenant-c-0123456789", false), st, quiet)
	if a.openapi.router != b.openapi.router {
		t.Fatal("two servers with the same routes built two routers")
	}
	if a.openapi.router == other.openapi.router {
		t.Fatal("servers with different routes share a router")
	}

	// Each server checks its own admin tokens (a token it accepts gets
	// 503 from the absent store, one it refuses 401).
	get := func(s *Server, token string) int {
		req := httptest.NewRequest(http.MethodGet, "/userve/v1/user-group/", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	if got := get(a, "token-of-tenant-a-0123456789"); got != http.StatusServiceUnavailable {
		t.Fatalf("a with its token: %d", got)
	}
	if got := get(a, "token-of-tenant-b-0123456789"); got != http.StatusUnauthorized {
		t.Fatalf("a with b's token: %d", got)
	}
	if got := get(b, "token-of-tenant-b-0123456789"); got != http.StatusServiceUnavailable {
		t.Fatalf("b with its token: %d", got)
	}

	// The shared router alone serves nobody.
	for _, path := range []string{"/healthz", "/userve/v1/user-group/", "/no/such/route"} {
		rec := httptest.NewRecorder()
		a.openapi.router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusInternalServerError {
			t.Fatalf("%s through the bare shared router: %d %s", path, rec.Code, rec.Body)
		}
	}
}
