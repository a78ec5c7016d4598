package hserve

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"userve.dev/userve/server/httpx"
)

// form is a JSON object body read strictly: only the fields a route names,
// each of the right type. Problems are collected and answered together as
// one 400.
type form struct {
	values   map[string]any
	problems []string
}

// readForm reads r's body as a JSON object with only the fields allowed.
// An empty body (the SDK sends none on some POSTs) is an empty object
// when emptyOK.
func readForm(r *http.Request, emptyOK bool, allowed ...string) (*form, error) {
	data, err := httpx.ReadBody(r)
	if err != nil {
		return nil, badRequest("%s", err.Error())
	}
	f := &form{values: map[string]any{}}
	if len(strings.TrimSpace(string(data))) == 0 && emptyOK {
		return f, nil
	}
	if err := httpx.Unmarshal(data, &f.values); err != nil {
		return nil, badRequest("%s", err.Error())
	}
	if f.values == nil {
		return nil, badRequest("request body must be a JSON object, not null")
	}
	var unknown []string
	for k := range f.values {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, badRequest("unknown field %s (this route takes %s)", strings.Join(unknown, ", "), describeFields(allowed))
	}
	return f, nil
}

func describeFields(allowed []string) string {
	if len(allowed) == 0 {
		return "no fields"
	}
	return strings.Join(allowed, ", ")
}

func (f *form) add(format string, args ...any) {
	f.problems = append(f.problems, fmt.Sprintf(format, args...))
}

func (f *form) has(name string) bool { _, ok := f.values[name]; return ok }

// str reads a string field of at most maxLen characters (0: no bound).
func (f *form) str(name string, required bool, maxLen int) (string, bool) {
	v, ok := f.values[name]
	if !ok || v == nil {
		if required {
			f.add("%s is required", name)
		}
		return "", false
	}
	s, isStr := v.(string)
	if !isStr {
		f.add("%s must be a string", name)
		return "", false
	}
	if maxLen > 0 && utf8.RuneCountInString(s) > maxLen {
		f.add("%s is longer than %d characters", name, maxLen)
		return "", false
	}
	return s, true
}

// boolean reads an optional boolean field (def when absent).
func (f *form) boolean(name string, def bool) bool {
	v, ok := f.values[name]
	if !ok || v == nil {
		return def
	}
	b, isBool := v.(bool)
	if !isBool {
		f.add("%s must be true or false", name)
		return def
	}
	return b
}

func (f *form) err() error {
	if len(f.problems) == 0 {
		return nil
	}
	return badRequest("%s", strings.Join(f.problems, "; "))
}

// noQuery refuses a query string on routes that take none.
func noQuery(r *http.Request) error {
	if r.URL.RawQuery != "" {
		return badRequest("this route takes no query parameters")
	}
	return nil
}
