package server

import (
	"fmt"
	"strings"
	"testing"
)

// An entry stays bounded whatever the profile: at most auditMaxChanges
// fields, long values replaced by their size, never a password field,
// updated_at left out.
func TestDiffFieldsIsBounded(t *testing.T) {
	before, after := map[string]any{"updated_at": int64(1), "password_hash": "x"}, map[string]any{"updated_at": int64(2), "_password": "y"}
	for i := range auditMaxChanges + 10 {
		after[fmt.Sprintf("f%03d", i)] = int64(i)
	}
	after["f000"] = strings.Repeat("z", auditMaxValueBytes+1)
	changes, truncated := diffFields(before, after)
	if len(changes) != auditMaxChanges || !truncated {
		t.Fatalf("%d changes, truncated %v", len(changes), truncated)
	}
	if changes[0].Field != "f000" || changes[0].After != fmt.Sprintf("(%d bytes, not kept)", auditMaxValueBytes+3) {
		t.Errorf("long value kept: %+v", changes[0])
	}
	for _, c := range changes {
		if strings.Contains(c.Field, "password") || c.Field == "updated_at" {
			t.Errorf("field %s logged", c.Field)
		}
	}
	if changes, _ := diffFields(map[string]any{"a": int64(1)}, map[string]any{"a": int64(1)}); len(changes) != 0 {
		t.Errorf("unchanged field logged: %+v", changes)
	}
}

// FuzzBodyUsers: any body yields at most a bounded list of positive ids.
func FuzzBodyUsers(f *testing.F) {
	for _, s := range []string{
		`{"user_id":3,"account":"wallet","amount":1}`, `{"from":1,"into":2}`, `[{"op":"add","users":[1,2],"groups":[3]}]`,
		`{"user_id":"3"}`, `[{"users":[1.5,-2,"x"]}]`, `null`, `[`, `{"to_user_id":9223372036854775808}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ids := bodyUsers(data)
		if len(ids) > auditMaxUsers+1 {
			t.Fatalf("%d ids", len(ids))
		}
		for _, id := range ids {
			if id < 1 {
				t.Fatalf("id %d from %q", id, data)
			}
		}
	})
}
