package console

import (
	"encoding/json"
	"net/url"
	"testing"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/minapp"
)

// Whatever is typed into the user list's filter form, the console either
// names what is wrong with it, or builds a v2.2 where the management API
// accepts: the form never earns a 400 from the API it calls, nor a panic.
func FuzzUsersWhere(f *testing.F) {
	f.Add("ann", "1", "3", "2026-01-02", "2026-02-03", "o-1", "u-1", "7", "hi", "12", "true", "2.5")
	f.Add("", "x", "", "2026-13-01", "", "", "", "-1", "", "1e3", "maybe", "NaN")
	f.Add("$and", "9999999999999999999", "0", "0001-01-01", "9999-12-31", `{"$ne":1}`, "\x00", "", "\xff", "", "", "Inf")
	fields := []v1alpha1.CustomField{
		{Name: "motto", Type: v1alpha1.FieldString}, {Name: "level", Type: v1alpha1.FieldInteger},
		{Name: "vip", Type: v1alpha1.FieldBoolean}, {Name: "score", Type: v1alpha1.FieldNumber},
		{Name: "tags", Type: v1alpha1.FieldArray},
	}
	h := &Handler{fields: fields}
	schema := minapp.NewSchema(fields)
	f.Fuzz(func(t *testing.T, nickname, gender, group, from, to, openid, unionid, userID, motto, level, vip, score string) {
		q := url.Values{"nickname": {nickname}, "gender": {gender}, "group": {group}, "created_from": {from}, "created_to": {to},
			"openid": {openid}, "unionid": {unionid}, "user_id": {userID},
			"cf_motto": {motto}, "cf_level": {level}, "cf_vip": {vip}, "cf_score": {score}, "cf_tags": {"x"}}
		conds, problems := h.usersWhere(q, langEN)
		if len(problems) > 0 || len(conds) == 0 {
			return
		}
		data, err := json.Marshal(map[string]any{"$and": conds})
		if err != nil {
			t.Fatalf("where does not encode: %v", err)
		}
		if _, err := minapp.ParseWhere(string(data), schema); err != nil {
			t.Fatalf("the API refuses the where the form made: %v\nwhere: %s", err, data)
		}
	})
}

// Whatever is typed into a custom field's input, the value sent encodes
// as JSON (the API, not the console, judges it).
func FuzzTypedValue(f *testing.F) {
	for _, s := range []string{"", " ", "12", "1.5", "NaN", "-Inf", "true", `["a"]`, `{"k":1}`, "[1,", "\xff"} {
		f.Add(s)
	}
	types := []v1alpha1.CustomFieldType{v1alpha1.FieldString, v1alpha1.FieldInteger, v1alpha1.FieldNumber,
		v1alpha1.FieldBoolean, v1alpha1.FieldArray, v1alpha1.FieldObject, v1alpha1.FieldDate}
	f.Fuzz(func(t *testing.T, s string) {
		for _, ty := range types {
			if _, err := json.Marshal(map[string]any{"f": typedValue(ty, s)}); err != nil {
				t.Fatalf("%s input %q: %v", ty, s, err)
			}
		}
	})
}
