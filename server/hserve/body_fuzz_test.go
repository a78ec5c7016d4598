package hserve

import (
	"bytes"
	"net/http/httptest"
	"slices"
	"testing"
)

// FuzzReadForm: any body is a form of the allowed fields or a 400, never a
// panic; an accepted form holds only allowed fields, and code readers
// accept only 4 to 6 digits.
func FuzzReadForm(f *testing.F) {
	for _, seed := range []string{`{"phone":"13800000000","code":"123456"}`, `{"code":123456}`, `null`, ``, `[]`,
		`{"phone":"1","phone":"2"}`, `{"x":1}`, `{"code":"12 34"}`, `{"create_user":"yes"}`} {
		f.Add([]byte(seed))
	}
	allowed := []string{"phone", "code", "create_user"}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/hserve/v2.1/login/sms/", bytes.NewReader(body))
		form, err := readForm(r, true, allowed...)
		if err != nil {
			if _, ok := err.(*apiError); !ok {
				t.Fatalf("error %T %v is not an answer", err, err)
			}
			return
		}
		for k := range form.values {
			if !slices.Contains(allowed, k) {
				t.Fatalf("accepted field %q", k)
			}
		}
		code := readCode(form)
		form.boolean("create_user", true)
		if form.err() == nil && (len(code) < 4 || len(code) > 6) {
			t.Fatalf("accepted code %q", code)
		}
	})
}
