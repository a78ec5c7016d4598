package plus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"userve.dev/userve/server/httpx"
)

// input is what a route takes besides its path: query parameters and body
// fields. Each handler declares its own once; read refuses every other name
// with a 422 naming it, so a misspelt parameter is never silently dropped.
type input struct {
	query []string
	body  []string
}

// read checks r's query string and reads its body (JSON or url-encoded
// form, possibly empty) against in. Routes without body fields read the
// body too, so a field sent to them is refused like any other.
func (in input) read(r *http.Request) (*form, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, newError(http.StatusBadRequest, "query string is malformed: "+err.Error())
	}
	f, err := parseBody(r)
	if err != nil {
		return nil, err
	}
	if err := in.check(q, f.values); err != nil {
		return nil, err
	}
	return f, nil
}

// check is the 422 for query parameters and body fields in does not list,
// or nil. Names are reported sorted, query first, so "message" is stable.
func (in input) check(query url.Values, body map[string]any) *apiError {
	f := &form{errs: map[string][]string{}}
	for _, name := range slices.Sorted(maps.Keys(query)) {
		if !slices.Contains(in.query, name) {
			f.errs[name] = append(f.errs[name], "unknown parameter")
			if f.first == "" {
				f.first = fmt.Sprintf("unknown query parameter %q", name)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(body)) {
		if !slices.Contains(in.body, name) {
			f.errs[name] = append(f.errs[name], "unknown field")
			if f.first == "" {
				f.first = fmt.Sprintf("unknown body field %q", name)
			}
		}
	}
	if len(f.errs) == 0 {
		return nil
	}
	return &apiError{status: http.StatusUnprocessableEntity, message: f.first, fields: f.errs}
}

// form is a request body as field values. ThinkSNS clients send JSON
// objects or url-encoded forms; both arrive here. JSON values are kept as
// decoded (string, json.Number, bool, nil, []any, map[string]any); form
// values are strings. Fields a route does not take are refused by
// input.check before a handler looks at the rest.
type form struct {
	values map[string]any
	errs   map[string][]string
	first  string // message of the first error, shown as "message"
}

// parseBody reads r's body as JSON or a url-encoded form; handlers call it
// through input.read, which also refuses unknown names.
func parseBody(r *http.Request) (*form, error) {
	data, err := httpx.ReadBody(r)
	if err != nil {
		var be *httpx.BodyError
		if errors.As(err, &be) {
			return nil, newError(http.StatusBadRequest, be.Msg)
		}
		return nil, err
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	f, perr := decodeBody(ct, data)
	if perr != nil {
		return nil, perr
	}
	return f, nil
}

// decodeBody is parseBody over bytes (fuzzed).
func decodeBody(contentType string, data []byte) (*form, *apiError) {
	f := &form{values: map[string]any{}, errs: map[string][]string{}}
	if contentType == "application/x-www-form-urlencoded" {
		q, err := url.ParseQuery(string(data))
		if err != nil {
			return nil, newError(http.StatusBadRequest, "request body is not a valid url-encoded form: "+err.Error())
		}
		for k, v := range q {
			f.values[k] = v[0]
		}
		return f, nil
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return f, nil // every field absent; each handler says what it needs
	}
	if contentType != "" && contentType != "application/json" && !strings.HasSuffix(contentType, "+json") {
		return nil, newError(http.StatusUnsupportedMediaType, "Content-Type must be application/json or application/x-www-form-urlencoded")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, newError(http.StatusBadRequest, "request body is not valid JSON: "+strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, newError(http.StatusBadRequest, "request body has data after the JSON value")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, newError(http.StatusBadRequest, "request body must be a JSON object")
	}
	f.values = obj
	return f, nil
}

func (f *form) add(field, msg string) {
	if f.first == "" {
		f.first = msg
	}
	f.errs[field] = append(f.errs[field], msg)
}

// err is the 422 for every problem found, or nil.
func (f *form) err() error {
	if len(f.errs) == 0 {
		return nil
	}
	return &apiError{status: http.StatusUnprocessableEntity, message: f.first, fields: f.errs}
}

// has reports a field that is present and not null.
func (f *form) has(field string) bool {
	v, ok := f.values[field]
	return ok && v != nil
}

// str reads a string field; numbers are taken as their text (a code or a
// phone number sent as a JSON number). Absent or null gives "", false.
// maxChars bounds the length in characters.
func (f *form) str(field string, required bool, maxChars int) (string, bool) {
	v, ok := f.values[field]
	if !ok || v == nil {
		if required {
			f.add(field, field+" is required")
		}
		return "", false
	}
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case json.Number:
		s = x.String()
	default:
		f.add(field, field+" must be a string")
		return "", false
	}
	if !utf8.ValidString(s) {
		f.add(field, field+" must be valid UTF-8")
		return "", false
	}
	if maxChars > 0 && utf8.RuneCountInString(s) > maxChars {
		f.add(field, fmt.Sprintf("%s may be at most %d characters", field, maxChars))
		return "", false
	}
	if required && strings.TrimSpace(s) == "" {
		f.add(field, field+" is required")
		return "", false
	}
	return s, true
}

// integer reads an integer field within [min, max]; numeric strings count
// (forms carry only strings).
func (f *form) integer(field string, required bool, min, max int64) (int64, bool) {
	v, ok := f.values[field]
	if !ok || v == nil {
		if required {
			f.add(field, field+" is required")
		}
		return 0, false
	}
	var n int64
	var err error
	switch x := v.(type) {
	case json.Number:
		n, err = strconv.ParseInt(x.String(), 10, 64)
	case string:
		n, err = strconv.ParseInt(strings.TrimSpace(x), 10, 64)
	default:
		err = errors.New("not a number")
	}
	if err != nil {
		f.add(field, field+" must be an integer")
		return 0, false
	}
	if n < min || n > max {
		f.add(field, fmt.Sprintf("%s must be between %d and %d", field, min, max))
		return 0, false
	}
	return n, true
}
