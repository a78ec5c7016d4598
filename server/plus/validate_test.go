package plus

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNameRules(t *testing.T) {
	ok := []string{"abcd", "a_b1", "创始", "创始人", "张三_abc", "abcdefghijklmnopqrstuvwx", "一二三四五六七八九十一二", "Ωmega", "x9yz"}
	bad := map[string]string{
		"":                          "required",
		"a":                         "at least",
		"abc":                       "at least",
		"张":                         "at least",
		"abcdefghijklmnopqrstuvwxy": "at most",
		"一二三四五六七八九十一二三": "at most",
		"1abc":       "digit",
		"١abc":       "digit",
		"ab cd":      "only",
		"ab-cd":      "only",
		"a@b.c":      "only",
		"ab\x00cd":   "only",
		"abc😀":       "only",
		"\xff\xfeab": "UTF-8",
	}
	for _, n := range ok {
		if p := nameProblem(n); p != "" {
			t.Errorf("nameProblem(%q) = %q, want ok", n, p)
		}
	}
	for n, want := range bad {
		if p := nameProblem(n); !strings.Contains(p, want) {
			t.Errorf("nameProblem(%q) = %q, want it to mention %q", n, p, want)
		}
	}
}

func TestEmailAndPhone(t *testing.T) {
	for in, want := range map[string]string{
		"Ann@Example.com": "ann@example.com", "a.b+c@x.io": "a.b+c@x.io",
		"ann": "", "ann@": "", "@x.com": "", "Ann <ann@x.com>": "", "ann@localhost": "", "a b@x.com": "",
		strings.Repeat("a", 250) + "@x.com": "",
	} {
		if got := normalizeEmail(in); got != want {
			t.Errorf("normalizeEmail(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]bool{"18364758373": true, "+8613800000000": true, "12345": true, "1234": false, "12a45": false, "+": false, "123456789012345678901": false} {
		if got := looksLikePhone(in); got != want {
			t.Errorf("looksLikePhone(%q) = %v", in, got)
		}
	}
}

func TestDetectIdentity(t *testing.T) {
	for in, want := range map[string]identityKind{
		"Ann@Example.com": byEmail, "18364758373": byPhone, "+8613800000000": byPhone, "alice": byName,
		"42": byID, "1234": byID, "创始人": byName, "": byNothing, "a@": byNothing, "0": byNothing, "-1": byNothing, "a b": byNothing,
	} {
		if got, _ := detectIdentity(in); got != want {
			t.Errorf("detectIdentity(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestPasswordRules(t *testing.T) {
	if passwordProblem("12345") == "" || passwordProblem("密码密码密") == "" || passwordProblem(strings.Repeat("x", 73)) == "" {
		t.Error("weak or overlong password accepted")
	}
	if passwordProblem("123456") != "" || passwordProblem("密码密码密码") != "" {
		t.Error("fine password refused")
	}
}

// FuzzDecodeBody feeds arbitrary bodies through the parser and every field
// reader the handlers use: no panic, and every refusal is a 4xx naming a
// message.
func FuzzDecodeBody(f *testing.F) {
	seeds := []string{
		`{"name":"abc","phone":"18364758373","password":"secret1","verifiable_type":"sms","verifiable_code":"123456"}`,
		`{"login":"a@b.c","verifiable_code":1234}`, `{"sex":"2","amount":1e3,"user":"5"}`, `[]`, `{`, `null`,
		`{"phone":null,"email":["x"]}`, `{"amount":99999999999999999999999}`, `{"name":"\ud800"}`,
		`login=a&password=b`, `%zz=1`, ``, `{"a":1} x`,
	}
	for _, s := range seeds {
		f.Add("application/json", []byte(s))
		f.Add("application/x-www-form-urlencoded", []byte(s))
	}
	f.Add("text/plain", []byte(`{"a":1}`))
	f.Fuzz(func(t *testing.T, contentType string, data []byte) {
		fm, aerr := decodeBody(contentType, data)
		if aerr != nil {
			if aerr.status < 400 || aerr.status > 499 || aerr.message == "" {
				t.Fatalf("refusal %d %q", aerr.status, aerr.message)
			}
			return
		}
		// The handler's next step: a field POST /users does not take is a
		// 422 naming it, and nothing unknown gets past.
		if uerr := registerInput.check(nil, fm.values); uerr != nil {
			expectUnknownRefused(t, uerr, nil, fm.values, registerInput)
			return
		}
		for name := range fm.values {
			if !slices.Contains(registerInput.body, name) {
				t.Fatalf("unknown field %q accepted", name)
			}
		}
		for _, field := range []string{"name", "password", "login", "bio", "location", "avatar"} {
			if s, ok := fm.str(field, false, 64); ok && utf8.RuneCountInString(s) > 64 {
				t.Fatalf("%s longer than its limit accepted", field)
			}
		}
		if n, ok := fm.integer("sex", false, 0, 2); ok && (n < 0 || n > 2) {
			t.Fatalf("sex %d out of range accepted", n)
		}
		if n, ok := fm.integer("amount", false, 1, 1e12); ok && (n < 1 || n > 1e12) {
			t.Fatalf("amount %d out of range accepted", n)
		}
		if c, ok := readContact(fm, ""); ok {
			if c.Field == "phone" && !looksLikePhone(c.Value) || c.Field == "email" && normalizeEmail(c.Value) != c.Value {
				t.Fatalf("bad contact accepted: %+v", c)
			}
		}
		if code, ok := readCode(fm); ok && (len(code) < 4 || len(code) > 6 || strings.Trim(code, "0123456789") != "") {
			t.Fatalf("bad code accepted: %q", code)
		}
		readVerifiableType(fm, false)
		if name, ok := fm.str("name", false, 64); ok {
			_ = nameProblem(name)
		}
		if err := fm.err(); err != nil {
			ae := err.(*apiError)
			if ae.status != http.StatusUnprocessableEntity || ae.message == "" || len(ae.fields) == 0 {
				t.Fatalf("validation error %+v", ae)
			}
		}
	})
}

// FuzzParseListUsers: any query string gives a valid store query or a 422.
func FuzzParseListUsers(f *testing.F) {
	for _, s := range []string{"", "limit=50&order=asc&since=3", "fetch_by=username&name=a,b", "id=1,2,3", "limit=0", "name=%E5%88%9B", "id=" + strings.Repeat("1,", 60)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		if uerr := listUsersInput.check(v, nil); uerr != nil {
			expectUnknownRefused(t, uerr, v, nil, listUsersInput)
			return
		}
		for name := range v {
			if !slices.Contains(listUsersInput.query, name) {
				t.Fatalf("unknown parameter %q accepted", name)
			}
		}
		q, perr := parseListUsers(v, 20, 50)
		if perr != nil {
			if ae, ok := perr.(*apiError); !ok || ae.status != http.StatusUnprocessableEntity {
				t.Fatalf("refusal %v", perr)
			}
			return
		}
		if q.Limit < 1 || q.Limit > 50 {
			t.Fatalf("limit %d", q.Limit)
		}
		if err := q.Filter.Validate(); err != nil {
			t.Fatalf("invalid filter from %q: %v", raw, err)
		}
	})
}

// expectUnknownRefused checks a refusal of unknown names: a 422 naming
// exactly the names in takes does not list.
func expectUnknownRefused(t *testing.T, e *apiError, query url.Values, body map[string]any, takes input) {
	t.Helper()
	if e.status != http.StatusUnprocessableEntity || e.message == "" {
		t.Fatalf("unknown names refused with %d %q", e.status, e.message)
	}
	want := map[string]bool{}
	for name := range query {
		if !slices.Contains(takes.query, name) {
			want[name] = true
		}
	}
	for name := range body {
		if !slices.Contains(takes.body, name) {
			want[name] = true
		}
	}
	if len(want) != len(e.fields) {
		t.Fatalf("refusal names %v, want %v", e.fields, want)
	}
	for name := range e.fields {
		if !want[name] {
			t.Fatalf("refusal names known %q", name)
		}
	}
}

func TestInputCheckNamesEveryUnknown(t *testing.T) {
	in := input{query: []string{"limit"}, body: []string{"name"}}
	if e := in.check(url.Values{"limit": {"1"}}, map[string]any{"name": "x"}); e != nil {
		t.Fatalf("known names refused: %+v", e)
	}
	if e := in.check(nil, nil); e != nil {
		t.Fatalf("nothing refused: %+v", e)
	}
	e := in.check(url.Values{"limit": {"1"}, "zz": {""}, "b": {"1"}}, map[string]any{"name": "x", "nmae": "y", "limit": 1})
	if e == nil || e.status != http.StatusUnprocessableEntity {
		t.Fatalf("unknown names accepted: %+v", e)
	}
	if e.message != `unknown query parameter "b"` {
		t.Errorf("message %q, want the first unknown name in order", e.message)
	}
	for name, want := range map[string]string{"b": "unknown parameter", "zz": "unknown parameter", "nmae": "unknown field", "limit": "unknown field"} {
		if got := e.fields[name]; len(got) != 1 || got[0] != want {
			t.Errorf("errors[%q] = %v, want [%q]", name, got, want)
		}
	}
	if len(e.fields) != 4 {
		t.Errorf("errors = %v, want 4 names", e.fields)
	}
}
