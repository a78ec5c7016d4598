package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"userve.dev/userve/test/mongofixture"
)

// Each tenant serves its dialects' documents, the management one to admin
// tokens only (it names the tenant's custom fields), the end-user one to
// anybody; both hold the tenant's custom fields.
func TestTenantServesItsOwnDocuments(t *testing.T) {
	e := newEnvWith(t, plusSpec(), mongofixture.URI(t), "")
	for _, path := range []string{"/userve/openapi.json", "/oserve/openapi.json"} {
		if r := e.doAuth("GET", path, nil, ""); r.status != http.StatusUnauthorized {
			t.Errorf("GET %s without a token = %d, want 401", path, r.status)
		}
		r := e.do("GET", path, nil)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s = %d %s", path, r.status, r.header.Get("Content-Type"))
		}
		checkDocument(t, r.raw, "/userve/v2.0/miniapp/user_profile/", "Profile")
	}
	r := e.doAuth("GET", "/api/v2/openapi.json", nil, "")
	if r.status != http.StatusOK {
		t.Fatalf("GET /api/v2/openapi.json = %d", r.status)
	}
	checkDocument(t, r.raw, "/api/v2/users", "SelfExport")
}

// checkDocument: an OpenAPI 3.1 document holding path, whose schema named
// schema has the test tenant's custom fields with their types.
func checkDocument(t *testing.T, raw []byte, path, schema string) {
	t.Helper()
	var doc struct {
		OpenAPI    string                     `json:"openapi"`
		Paths      map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || doc.Paths[path] == nil {
		t.Fatalf("document %q lacks %s", doc.OpenAPI, path)
	}
	var s bytes.Buffer
	if err := json.Compact(&s, doc.Components.Schemas[schema]); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"motto":{"maxLength":5,`, `"birthday":{`, `"tags":{`, `"x-userve-custom-field":"date"`} {
		if !bytes.Contains(s.Bytes(), []byte(field)) {
			t.Errorf("%s schema lacks %s: %.300s", schema, field, s.Bytes())
		}
	}
}

// A tenant with the end-user dialect off describes no end-user route.
func TestDocumentsFollowTheEnabledDialects(t *testing.T) {
	e := newEnv(t) // management only
	if r := e.doAuth("GET", "/api/v2/openapi.json", nil, ""); r.status != http.StatusNotFound {
		t.Errorf("GET /api/v2/openapi.json with the end-user API off = %d, want 404", r.status)
	}
	r := e.do("GET", "/userve/openapi.json", nil)
	if bytes.Contains(r.raw, []byte(`"/api/v2/`)) {
		t.Error("the management document names end-user paths")
	}
}
