package controllers

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The filter's authentication failure becomes a 401; every other answer,
// a 500 for another reason included, passes unchanged.
func TestAuthFailureWriter(t *testing.T) {
	for name, tc := range map[string]struct {
		handler  http.HandlerFunc
		code     int
		body     string
		noSniffs bool
	}{
		"authentication failed": {func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "Authentication failed", http.StatusInternalServerError)
		}, 401, "Unauthorized\n", true},
		"authorization error": {func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "Authorization for user x failed", http.StatusInternalServerError)
		}, 500, "Authorization for user x failed\n", true},
		"500 without a body": {func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
		}, 500, "", false},
		"forbidden": {func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "Authorization denied for user x", http.StatusForbidden)
		}, 403, "Authorization denied for user x\n", true},
		"metrics": {func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("up 1\n"))
		}, 200, "up 1\n", false},
	} {
		rec := httptest.NewRecorder()
		aw := &authFailureWriter{ResponseWriter: rec}
		tc.handler(aw, httptest.NewRequest("GET", "/metrics", nil))
		aw.flush()
		if rec.Code != tc.code || rec.Body.String() != tc.body {
			t.Errorf("%s: %d %q, want %d %q", name, rec.Code, rec.Body.String(), tc.code, tc.body)
		}
		if tc.noSniffs && rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", name, rec.Header())
		}
	}
}
