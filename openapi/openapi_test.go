package openapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/openapi"
)

func build(t *testing.T, d openapi.Dialect, spec v1alpha1.UserServiceSpec, routes []openapi.Route) map[string]any {
	t.Helper()
	raw, err := openapi.Build(d, spec, routes)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := libopenapi.NewDocument(raw)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("%s: %s", e.Message, e.Reason)
		}
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// A route the router holds but the package does not describe fails the
// build, naming it: a new route cannot ship undescribed.
func TestUndescribedRouteFailsTheBuild(t *testing.T) {
	_, err := openapi.Build(openapi.Management, v1alpha1.UserServiceSpec{}, []openapi.Route{
		{Method: "GET", Path: "/userve/v1/user-group/"},
		{Method: "POST", Path: "/userve/v1/brand-new/"},
	})
	if err == nil || !strings.Contains(err.Error(), "POST /v1/brand-new/") {
		t.Fatalf("Build = %v, want an error naming POST /v1/brand-new/", err)
	}
}

// Only the routes given are described, and only those of the dialect.
func TestDocumentHoldsExactlyTheDialectsRoutes(t *testing.T) {
	routes := []openapi.Route{
		{Method: "GET", Path: "/healthz"},
		{Method: "GET", Path: "/userve/v1/user-group/"},
		{Method: "GET", Path: "/oserve/v1/user-group/"},
		{Method: "GET", Path: "/api/v2/users"},
	}
	doc := build(t, openapi.Management, v1alpha1.UserServiceSpec{}, routes)
	paths := doc["paths"].(map[string]any)
	if len(paths) != 1 || paths["/userve/v1/user-group/"] == nil {
		t.Fatalf("management paths = %v, want only /userve/v1/user-group/", keys(paths))
	}
	doc = build(t, openapi.EndUser, v1alpha1.UserServiceSpec{}, routes)
	if paths := doc["paths"].(map[string]any); len(paths) != 1 || paths["/api/v2/users"] == nil {
		t.Fatalf("end-user paths = %v, want only /api/v2/users", keys(paths))
	}
}

// The tenant's custom fields appear in its profile schemas with their
// types and limits; required ones are required at creation.
func TestCustomFieldsAreInTheProfileSchemas(t *testing.T) {
	five := int32(5)
	spec := v1alpha1.UserServiceSpec{Profile: v1alpha1.ProfileSpec{CustomFields: []v1alpha1.CustomField{
		{Name: "level", Type: v1alpha1.FieldInteger, Required: true},
		{Name: "motto", Type: v1alpha1.FieldString, MaxLength: &five},
		{Name: "tags", Type: v1alpha1.FieldArray, MaxLength: &five},
		{Name: "birthday", Type: v1alpha1.FieldDate},
	}}}
	doc := build(t, openapi.Management, spec, []openapi.Route{{Method: "GET", Path: "/userve/v2.0/miniapp/user_profile/"}})
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	profile := schemas["Profile"].(map[string]any)
	props := profile["properties"].(map[string]any)
	want := map[string]string{
		"level":    `{"format":"int64","type":["integer","null"],"x-userve-custom-field":"integer"}`,
		"motto":    `{"maxLength":5,"type":["string","null"],"x-userve-custom-field":"string"}`,
		"tags":     `{"items":{},"maxItems":5,"type":["array","null"],"x-userve-custom-field":"array"}`,
		"birthday": `{"description":"RFC 3339; answered in UTC at millisecond precision","format":"date-time","type":["string","null"],"x-userve-custom-field":"date"}`,
	}
	for name, w := range want {
		got, _ := json.Marshal(props[name])
		if string(got) != w {
			t.Errorf("Profile.%s = %s, want %s", name, got, w)
		}
	}
	if !contains(profile["required"], "level") || !contains(profile["required"], "motto") {
		t.Errorf("Profile.required = %v: every custom field is always answered (null when unset)", profile["required"])
	}
	create := schemas["ProfileCreate"].(map[string]any)
	if !contains(create["required"], "level") || contains(create["required"], "motto") {
		t.Errorf("ProfileCreate.required = %v, want level only", create["required"])
	}
	if create["additionalProperties"] != false {
		t.Error("ProfileCreate must refuse undeclared fields, as the server does")
	}
	// Without custom fields, the base document has none of them.
	base := build(t, openapi.Management, v1alpha1.UserServiceSpec{}, []openapi.Route{{Method: "GET", Path: "/userve/v2.0/miniapp/user_profile/"}})
	baseProps := base["components"].(map[string]any)["schemas"].(map[string]any)["Profile"].(map[string]any)["properties"].(map[string]any)
	if baseProps["level"] != nil {
		t.Error("the base document names a custom field")
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func contains(list any, s string) bool {
	l, _ := list.([]any)
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}
