package minapp

import (
	"slices"
	"testing"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/httpx"
)

// FuzzSelfUpdate: whatever JSON object a user sends to update themselves,
// SelfUpdate never panics, and what it accepts only touches the writable
// built-ins and declared custom fields.
func FuzzSelfUpdate(f *testing.F) {
	for _, seed := range []string{
		`{"nickname":"a","gender":1,"age":3}`, `{"openid":"x"}`, `{"age":null}`, `{"gender":3}`,
		`{"tags":[1,{"$x":1}]}`, `{"meta":{"a.b":1}}`, `{"age":1e400}`, `{"created_at":1}`,
	} {
		f.Add([]byte(seed))
	}
	schema := NewSchema([]v1alpha1.CustomField{
		{Name: "age", Type: v1alpha1.FieldInteger}, {Name: "tags", Type: v1alpha1.FieldArray},
		{Name: "meta", Type: v1alpha1.FieldObject}, {Name: "born", Type: v1alpha1.FieldDate},
	})
	writable := map[string]bool{}
	for _, name := range SelfWritable {
		writable[builtinFields[name].path] = true
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var body map[string]any
		if httpx.Unmarshal(data, &body) != nil || body == nil {
			return
		}
		builtins, set, unset, err := schema.SelfUpdate(body)
		if err != nil {
			return
		}
		for k := range builtins {
			if !writable[k] {
				t.Fatalf("accepted a write of %s", k)
			}
		}
		for k := range set {
			if !slices.Contains(schema.names, k) {
				t.Fatalf("accepted undeclared field %s", k)
			}
		}
		for _, k := range unset {
			if !slices.Contains(schema.names, k) {
				t.Fatalf("unsets undeclared field %s", k)
			}
		}
	})
}
