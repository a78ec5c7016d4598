package conformance_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/openapi"
	"userve.dev/userve/openapi/conformance"
)

// fakeServer serves one answer per path from a table and describes the
// group routes.
type fakeServer struct {
	answer func(w http.ResponseWriter, r *http.Request)
}

func (f fakeServer) Handler() http.Handler { return http.HandlerFunc(f.answer) }

func (f fakeServer) OpenAPI(d openapi.Dialect) ([]byte, error) {
	return openapi.Build(d, v1alpha1.UserServiceSpec{}, []openapi.Route{
		{Method: "GET", Path: "/userve/v1/user-group/{id}/"},
		{Method: "POST", Path: "/userve/v1/user-group/"},
	})
}

// failures records what the checker reports instead of failing.
type failures struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

func (f *failures) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
}

func TestCheckerCatchesDrift(t *testing.T) {
	const auth = "Bearer 0123456789abcdef0123456789abcdef"
	cases := []struct {
		name, method, path, body string
		header                   string
		status                   int
		answer                   string
		want                     string // "" : no failure
	}{
		{"a matching answer", "GET", "/userve/v1/user-group/1/", "", "", 200, `{"id":1,"name":"vip","members":0,"parent":null}`, ""},
		{"the alias path", "GET", "/oserve/v1/user-group/1/", "", "", 200, `{"id":1,"name":"vip","members":0,"parent":null}`, ""},
		{"a described error", "GET", "/userve/v1/user-group/9/", "", "", 404, `{"status":"error","error_msg":"group 9 not found"}`, ""},
		{"an answer missing a field", "GET", "/userve/v1/user-group/1/", "", "", 200, `{"id":1,"name":"vip","parent":null}`, "members"},
		{"an answer with an undescribed field", "GET", "/userve/v1/user-group/1/", "", "", 200, `{"id":1,"name":"vip","members":0,"parent":null,"secret":1}`, "does not match"},
		{"an error in the other dialect's shape", "GET", "/userve/v1/user-group/9/", "", "", 404, `{"message":"not found"}`, "does not match"},
		{"an undescribed status", "GET", "/userve/v1/user-group/1/", "", "", 500, `{"status":"error","error_msg":"internal error"}`, "500"},
		{"an expected injected 500", "GET", "/userve/v1/user-group/1/", "", conformance.ExpectUndocumented + ": 500", 500, `{"status":"error","error_msg":"internal error"}`, ""},
		{"a body field the document refuses, accepted", "POST", "/userve/v1/user-group/", `{"name":"vip","colour":"red"}`, "", 201, `{"id":1,"name":"vip","members":0,"parent":null}`, "refuses a request the server accepted"},
		{"a body field the document refuses, refused", "POST", "/userve/v1/user-group/", `{"name":"vip","colour":"red"}`, "", 400, `{"status":"error","error_msg":"unknown field colour"}`, ""},
		{"a route the document lacks, served", "GET", "/userve/v1/secret/", "", "", 200, `{}`, "not in the document"},
		{"a route the document lacks, refused", "GET", "/userve/v1/secret/", "", "", 404, `{"status":"error","error_msg":"no such route"}`, ""},
		{"a path outside the dialects", "GET", "/healthz", "", "", 200, `anything`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var sawHeader bool
			srv := fakeServer{answer: func(w http.ResponseWriter, r *http.Request) {
				sawHeader = r.Header.Get(conformance.ExpectUndocumented) != ""
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.answer)
			}}
			rec := &failures{TB: t}
			h := conformance.Handler(rec, srv)
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", auth)
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if name, value, ok := strings.Cut(tc.header, ": "); ok {
				req.Header.Set(name, value)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.status || w.Body.String() != tc.answer {
				t.Fatalf("the answer was changed: %d %s", w.Code, w.Body)
			}
			if sawHeader {
				t.Error("the server saw the checker's header")
			}
			got := strings.Join(rec.msgs, "\n")
			switch {
			case tc.want == "" && got != "":
				t.Errorf("unexpected failure: %s", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Errorf("failure = %q, want one mentioning %q", got, tc.want)
			}
		})
	}
}
