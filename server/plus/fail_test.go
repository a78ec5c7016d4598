package plus

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"userve.dev/userve/server/store/storetest"
)

// Store trouble that passes by itself is a 503 with Retry-After, as in the
// management dialect (a raw network or timeout error used to be a 500).
func TestFailAnswersTransientTroubleWith503(t *testing.T) {
	h := &Handler{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	req := httptest.NewRequest(http.MethodGet, "/api/v2/user", nil)
	for name, err := range storetest.TransientErrors() {
		rec := httptest.NewRecorder()
		h.fail(rec, req, err)
		var body map[string]string
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "2" ||
			body["message"] != "user store unavailable, try again" || len(body) != 1 {
			t.Errorf("%s: %d Retry-After %q %s", name, rec.Code, rec.Header().Get("Retry-After"), rec.Body)
		}
	}
	// A bug stays a 500 without details.
	rec := httptest.NewRecorder()
	h.fail(rec, req, errors.New("store: unknown operator $foo"))
	if rec.Code != http.StatusInternalServerError || rec.Header().Get("Retry-After") != "" {
		t.Errorf("bug: %d %s", rec.Code, rec.Body)
	}
}
