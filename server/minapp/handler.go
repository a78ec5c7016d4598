// Package minapp is the management dialect, compatible with MinApp's user
// module: profiles (v2.0 query parameters, v2.2 where JSON), user groups and
// membership. Handlers turn HTTP into store calls; parsing and validation
// are pure functions in query.go, where.go, fields.go and body.go.
package minapp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/telemetry"
)

// Handler serves the management routes of one tenant.
type Handler struct {
	store  *store.Store
	log    *slog.Logger
	schema Schema
	limits Limits

	// Metrics records store errors and wallet operations; nil records
	// nothing. The server sets it.
	Metrics *telemetry.Metrics
	// Accounts ends sessions (lifecycle.go). The server sets it.
	Accounts *account.Service
}

// New builds the handlers.
func New(st *store.Store, cfg *config.Config, log *slog.Logger) *Handler {
	m := cfg.Spec().API.MinApp
	return &Handler{
		store:  st,
		log:    log,
		schema: NewSchema(cfg.Spec().Profile.CustomFields).WithClock(storeClock(st)),
		limits: Limits{Default: int64(m.DefaultLimit), Max: int64(m.MaxLimit)},
	}
}

// storeClock is st's clock, or the wall clock without a store.
func storeClock(st *store.Store) func() time.Time {
	if st == nil {
		return time.Now
	}
	return st.Now
}

// listMeta is the "meta" of every list.
type listMeta struct {
	Limit      int64   `json:"limit"`
	Next       *string `json:"next"`
	Offset     int64   `json:"offset"`
	Previous   *string `json:"previous"`
	TotalCount *int64  `json:"total_count,omitempty"`
}

type listBody struct {
	Meta    listMeta `json:"meta"`
	Objects []any    `json:"objects"`
}

// writeError answers {"status":"error","error_msg":...}.
func writeError(w http.ResponseWriter, status int, msg string) {
	httpx.WriteJSON(w, status, map[string]string{"status": "error", "error_msg": msg})
}

// storeError maps a store error: missing → 404, taken → 400, the store
// away or busy → 503 (httpx.StoreUnavailable, shared with the end-user
// dialect), anything else is our fault → 500 (logged, details not shown).
func (h *Handler) storeError(w http.ResponseWriter, r *http.Request, err error, what string) {
	var conflict *store.ConflictError
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, what+" not found")
	case errors.Is(err, store.ErrInProgress):
		// Another request with the same idempotency key (a replayed import
		// batch, say) is still running: retrying is safe and soon right.
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, store.ErrExportsBusy):
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, err.Error())
	case errors.As(err, &conflict):
		name := managementName(conflict.Field)
		if name == "" {
			writeError(w, http.StatusBadRequest, "a unique value (openid, unionid, _username, _email or _phone) is already taken")
			return
		}
		writeError(w, http.StatusBadRequest, name+" is already taken")
	case httpx.StoreUnavailable(w, err):
		h.Metrics.StoreError(telemetry.StoreUnavailable)
		h.log.Warn("store unavailable", "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, http.StatusServiceUnavailable, httpx.UnavailableMessage)
	default:
		h.Metrics.StoreError(telemetry.StoreInternal)
		h.log.Error("store error", "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// managementName is the management dialect's name of a store field.
func managementName(storeField string) string {
	for name, f := range builtinFields {
		if f.path == storeField && name != "id" {
			return name
		}
	}
	return ""
}

// badRequest answers a client mistake (body, parameter, validation).
func badRequest(w http.ResponseWriter, err error) {
	writeError(w, http.StatusBadRequest, err.Error())
}

// pathID reads a positive integer path variable, or answers 400.
func pathID(w http.ResponseWriter, r *http.Request, name, what string) (int64, bool) {
	raw := mux.Vars(r)[name]
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id < 1 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s id %q is not a positive integer", what, raw))
		return 0, false
	}
	return id, true
}

// query parses the query string strictly: url.Values drops malformed pairs
// (such as ';' separators) silently, which would widen a filter.
func query(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, "malformed query string: "+err.Error())
		return nil, false
	}
	return q, true
}
