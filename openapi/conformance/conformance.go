// Package conformance checks, in tests, that a server and the OpenAPI
// documents it serves agree: every request a test makes and every answer it
// gets goes through a validator of the tenant's own document
// (github.com/pb33f/libopenapi-validator, which reads OpenAPI 3.1 and JSON
// Schema 2020-12 natively). The test that made a mismatching request fails.
//
// The rules:
//   - every answer must match the document: its status must be described
//     for the operation, and its body must match that status's schema;
//   - a request the document refuses must not succeed: a 2xx to it means
//     the server takes something the document says it does not (or the
//     document is too strict);
//   - a path the document does not hold must be answered 404 or 405.
//
// Only the dialects' paths are checked (/userve/, /oserve/ as /userve/,
// /api/v2/, /hserve/); /healthz and /readyz are operations, not API, and
// the console's pages (/userve/console/) are HTML for browsers.
package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/content"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/helpers"

	"userve.dev/userve/openapi"
)

// ExpectUndocumented is a request header by which a test that provokes an
// answer no client should ever see (a 500 from an injected store fault)
// says so: that one status is not checked. The header never reaches the
// server. Every other 500 fails the test, since the documents describe
// none.
const ExpectUndocumented = "Conformance-Expect-Undocumented"

// Checker validates traffic against one tenant's documents.
type Checker struct {
	mu         sync.Mutex // the validator's caches are filled lazily
	validators map[openapi.Dialect]validator.Validator
}

// New builds a checker of the given documents (by dialect).
func New(docs map[openapi.Dialect][]byte) (*Checker, error) {
	c := &Checker{validators: map[openapi.Dialect]validator.Validator{}}
	for d, raw := range docs {
		doc, err := libopenapi.NewDocument(raw)
		if err != nil {
			return nil, fmt.Errorf("%s document: %w", d, err)
		}
		v, errs := validator.NewValidator(doc, config.WithURLEncodedBodyValidation(), config.WithFormatAssertions(),
			config.WithBodyDecoder(jsonLines, content.JSONDecoder()))
		if len(errs) > 0 {
			return nil, fmt.Errorf("%s document: %v", d, errs)
		}
		if ok, verrs := v.ValidateDocument(); !ok {
			return nil, fmt.Errorf("%s document is not valid OpenAPI: %s", d, describe(verrs))
		}
		c.validators[d] = v
	}
	return c, nil
}

// Wrap is next with every exchange checked; mismatches fail t.
func (c *Checker) Wrap(t testing.TB, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, path, ok := dialectOf(r.URL.Path)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		reqBody, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(reqBody))
		expected := r.Header.Get(ExpectUndocumented)
		r.Header.Del(ExpectUndocumented)
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if expected != "" && expected == strconv.Itoa(rec.status()) {
			return
		}
		if problems := c.check(d, r, path, reqBody, rec); problems != "" {
			t.Errorf("OpenAPI conformance: %s %s -> %d: %s\nrequest body: %.300s\nanswer: %.500s",
				r.Method, r.URL.RequestURI(), rec.status(), problems, reqBody, rec.body.Bytes())
		}
	})
}

// check is what is wrong with one exchange, or "".
func (c *Checker) check(d openapi.Dialect, r *http.Request, path string, reqBody []byte, rec *recorder) string {
	v := c.validators[d]
	if v == nil {
		return ""
	}
	vr := r.Clone(r.Context())
	vr.URL.Path, vr.URL.RawPath = path, ""
	vr.Body = io.NopCloser(bytes.NewReader(reqBody))
	status := rec.status()
	res := &http.Response{
		StatusCode: status,
		Header:     rec.Header().Clone(),
		Body:       io.NopCloser(bytes.NewReader(rec.body.Bytes())),
		Request:    vr,
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	_, reqErrs := validateRequest(v, vr, reqBody)
	if missingRoute(reqErrs) {
		if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
			return "" // an unknown route, refused as such
		}
		return "the route is not in the document: " + describe(reqErrs)
	}
	var problems []string
	if status < 300 && len(reqErrs) > 0 {
		problems = append(problems, "the document refuses a request the server accepted: "+describe(reqErrs))
	}
	if resErrs := validateResponse(v, vr, res, rec.body.Bytes()); len(resErrs) > 0 {
		problems = append(problems, "the answer does not match the document: "+describe(resErrs))
	}
	return strings.Join(problems, "; ")
}

// jsonLines is the media type of the import's and the export's streams.
const jsonLines = "application/x-ndjson"

// validateRequest validates r; a JSON Lines body (the import's, whatever
// its label) is validated a line at a time as that media type, since
// OpenAPI 3.1 describes a stream by the schema of one item.
func validateRequest(v validator.Validator, r *http.Request, body []byte) (bool, []*verrors.ValidationError) {
	lines := jsonLinesOf(body)
	if lines == nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		return v.ValidateHttpRequestSync(r)
	}
	var all []*verrors.ValidationError
	for _, line := range lines {
		lr := r.Clone(r.Context())
		lr.Header.Set("Content-Type", jsonLines)
		lr.Body, lr.ContentLength = io.NopCloser(bytes.NewReader(line)), int64(len(line))
		_, errs := v.ValidateHttpRequestSync(lr)
		all = append(all, errs...)
	}
	return len(all) == 0, all
}

// validateResponse validates res, a JSON Lines answer a line at a time.
func validateResponse(v validator.Validator, r *http.Request, res *http.Response, body []byte) []*verrors.ValidationError {
	if mt, _, _ := strings.Cut(res.Header.Get("Content-Type"), ";"); strings.TrimSpace(mt) != jsonLines {
		_, errs := v.ValidateHttpResponse(r, res)
		return errs
	}
	var all []*verrors.ValidationError
	for _, line := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
		lr := *res
		lr.Body = io.NopCloser(bytes.NewReader(line))
		_, errs := v.ValidateHttpResponse(r, &lr)
		all = append(all, errs...)
	}
	return all
}

// jsonLinesOf splits a body that is not one JSON value but several lines
// into its lines that are JSON (a malformed record is the server's to
// report in its answer); nil for anything else.
func jsonLinesOf(body []byte) [][]byte {
	if json.Valid(body) {
		return nil
	}
	var lines [][]byte
	for _, line := range bytes.Split(body, []byte("\n")) {
		if line = bytes.TrimSpace(line); len(line) > 0 && json.Valid(line) {
			lines = append(lines, line)
		}
	}
	if len(lines) < 2 {
		return nil
	}
	return lines
}

// dialectOf is the document a path belongs to and the path as that
// document names it.
func dialectOf(path string) (openapi.Dialect, string, bool) {
	switch {
	case openapi.IsConsolePath(path):
		return "", "", false // HTML pages for browsers, not API
	case strings.HasPrefix(path, openapi.EndUserPrefix+"/"):
		return openapi.EndUser, path, true
	case strings.HasPrefix(path, openapi.HServePrefix+"/"):
		return openapi.HServe, path, true
	case strings.HasPrefix(path, openapi.ManagementPrefix+"/"):
		return openapi.Management, path, true
	case strings.HasPrefix(path, openapi.ManagementAlias+"/"):
		return openapi.Management, openapi.ManagementPrefix + strings.TrimPrefix(path, openapi.ManagementAlias), true
	}
	return "", "", false
}

func missingRoute(errs []*verrors.ValidationError) bool {
	for _, e := range errs {
		if e.ValidationType == helpers.PathValidation &&
			(e.ValidationSubType == helpers.ValidationMissing || e.ValidationSubType == helpers.ValidationMissingOperation) {
			return true
		}
	}
	return false
}

func describe(errs []*verrors.ValidationError) string {
	var parts []string
	for _, e := range errs {
		msg := e.Message
		if e.Reason != "" && e.Reason != e.Message {
			msg += " (" + e.Reason + ")"
		}
		for _, se := range e.SchemaValidationErrors {
			msg += fmt.Sprintf(" [%s: %s]", se.FieldPath, se.Reason)
		}
		parts = append(parts, msg)
	}
	return strings.Join(parts, "; ")
}

// recorder passes an answer through and keeps a copy of it.
type recorder struct {
	http.ResponseWriter
	code int
	body bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// Flush keeps streamed answers (the export) streaming.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Server is what Handler needs of a userve server.
type Server interface {
	Handler() http.Handler
	OpenAPI(openapi.Dialect) ([]byte, error)
}

// checkers are built once per distinct pair of documents: tests start many
// servers of few configurations, and building a validator parses the
// documents.
var checkers sync.Map // the documents, concatenated -> *Checker

// Handler is s's handler with every exchange checked against the documents
// s serves; it fails t at once if s cannot describe itself.
func Handler(t testing.TB, s Server) http.Handler {
	t.Helper()
	docs := map[openapi.Dialect][]byte{}
	var key strings.Builder
	for _, d := range openapi.Dialects {
		doc, err := s.OpenAPI(d)
		if err != nil {
			t.Fatalf("OpenAPI %s document: %v", d, err)
		}
		docs[d] = doc
		key.Write(doc)
		key.WriteByte(0)
	}
	cached, ok := checkers.Load(key.String())
	if !ok {
		c, err := New(docs)
		if err != nil {
			t.Fatal(err)
		}
		cached, _ = checkers.LoadOrStore(key.String(), c)
	}
	return cached.(*Checker).Wrap(t, s.Handler())
}
