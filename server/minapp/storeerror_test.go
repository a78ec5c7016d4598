package minapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"userve.dev/userve/server/store"
	"userve.dev/userve/server/store/storetest"
)

// Store trouble that passes by itself is a 503 with Retry-After, classified
// by the store or not (FerretDB's SQLITE_BUSY used to be a 500).
func TestStoreErrorAnswersTransientTroubleWith503(t *testing.T) {
	h := &Handler{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	req := httptest.NewRequest(http.MethodGet, "/userve/v2.0/miniapp/user_profile/1/", nil)
	for name, err := range storetest.TransientErrors() {
		rec := httptest.NewRecorder()
		h.storeError(rec, req, err, "user")
		var body map[string]string
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "2" ||
			body["status"] != "error" || body["error_msg"] != "user store unavailable, try again" {
			t.Errorf("%s: %d Retry-After %q %s", name, rec.Code, rec.Header().Get("Retry-After"), rec.Body)
		}
	}
	// The same key still being processed by another request (concurrent
	// replays of an import batch) is a 409 to retry, not a 500.
	rec := httptest.NewRecorder()
	h.storeError(rec, req, fmt.Errorf("opening balance: %w", store.ErrInProgress), "import")
	if rec.Code != http.StatusConflict || rec.Header().Get("Retry-After") != "1" {
		t.Errorf("in progress: %d Retry-After %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	// A bug stays a 500 without details.
	rec = httptest.NewRecorder()
	h.storeError(rec, req, errors.New("store: unknown operator $foo"), "user")
	if rec.Code != http.StatusInternalServerError || rec.Header().Get("Retry-After") != "" {
		t.Errorf("bug: %d %s", rec.Code, rec.Body)
	}
}
