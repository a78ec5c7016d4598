package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/telemetry"
)

// Bounds of one audit entry: an entry must stay small whatever the action.
const (
	auditMaxUsers       = 100       // user ids kept (a membership PATCH may name thousands)
	auditMaxChanges     = 50        // changed fields kept
	auditMaxValueBytes  = 1024      // a longer value is replaced by a note of its size
	auditMaxCaptureBody = 256 << 10 // profile answers read for the "after" side
	auditMaxQuery       = 1024      // query string kept (an export's where, an import's options)
)

// AuditWriter is where the audit middleware writes: the store, or a
// wrapper of it passed in Options (tests make writes fail with one).
type AuditWriter interface {
	BeginAudit(ctx context.Context, e *store.AuditEntry) error
	SealAudit(ctx context.Context, e *store.AuditEntry) error
	MaybeExpireAudit(ctx context.Context, retention time.Duration)
}

// audited logs one admin action: the entry is written (pending) BEFORE the
// action runs, and the request answers 503 without running it when that
// write fails, so no action goes unlogged. After the action the entry is
// sealed with the status and, for profile routes, the fields changed; if
// sealing fails, the entry stays pending (the outcome is unknown to the
// log, not the action) and the failure is logged.
func (s *Server) audited(action string, profile bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := &store.AuditEntry{Admin: AdminName(r.Context()), Action: action, Method: r.Method, Path: r.URL.Path, Remote: r.RemoteAddr,
			Query: r.URL.RawQuery}
		if _, console := r.Context().Value(consoleAdminKey{}).(string); console {
			e.Via = store.AuditViaConsole
		}
		if len(e.Query) > auditMaxQuery {
			e.Query, e.Truncated = e.Query[:auditMaxQuery], true
		}
		var pathUser int64
		if raw, ok := mux.Vars(r)["user_id"]; ok {
			if id, err := strconv.ParseInt(raw, 10, 64); err == nil && id > 0 {
				pathUser = id
				e.UserIDs = append(e.UserIDs, id)
			}
		}
		if _, _, bulk := bulkLimits(r.URL.Path); !bulk && r.Body != nil && r.Method != http.MethodGet {
			data, err := io.ReadAll(r.Body)
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(data), errReader{err}))
			e.UserIDs = append(e.UserIDs, bodyUsers(data)...)
		}
		var before map[string]any
		if profile && pathUser != 0 {
			snap, err := s.minapp.ProfileSnapshot(r.Context(), pathUser)
			if err != nil {
				s.auditUnavailable(w, r, err)
				return
			}
			before = normalize(snap)
		}
		if err := s.audit.BeginAudit(r.Context(), e); err != nil {
			s.auditUnavailable(w, r, err)
			return
		}
		cw := &captureWriter{ResponseWriter: w, keep: profile}
		next.ServeHTTP(cw, r)

		e.Status = cw.status
		if e.Status == 0 {
			e.Status = http.StatusOK
		}
		e.State = store.AuditDone
		if e.Status >= 400 {
			e.State = store.AuditFailed
		}
		if profile && e.State == store.AuditDone {
			var after map[string]any
			if !cw.overflow { // a deletion's 204 has no body: nothing after
				after = decodeObject(cw.body.Bytes())
			}
			if id, ok := after["user_id"].(int64); ok && pathUser == 0 {
				e.UserIDs = append(e.UserIDs, id) // a created user
			}
			e.Changes, e.Truncated = diffFields(before, after)
		}
		e.UserIDs = dedupeUsers(e.UserIDs)
		if len(e.UserIDs) > auditMaxUsers {
			e.UserIDs, e.Truncated = e.UserIDs[:auditMaxUsers], true
		}
		// The client may be gone; the record is still owed.
		ctx := context.WithoutCancel(r.Context())
		if err := s.audit.SealAudit(ctx, e); err != nil {
			s.log.Error("audit entry left pending: sealing it failed", "id", e.ID.Hex(), "action", action, "status", e.Status, "error", err)
		}
		s.audit.MaybeExpireAudit(ctx, s.auditRetention)
	})
}

// auditUnavailable refuses an action whose entry could not be written:
// 503 either way, in the store's words when the store is away (counted as
// such, like any handler's).
func (s *Server) auditUnavailable(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Warn("admin action refused: the audit log cannot be written", "path", r.URL.Path, "error", err)
	w.Header().Set("Retry-After", httpx.RetryAfterSeconds)
	msg := "the audit log cannot be written right now, so the action was not applied; try again"
	if store.IsTransient(err) {
		s.metrics.domain.StoreError(telemetry.StoreUnavailable)
		msg = httpx.UnavailableMessage + " (the action was not applied: its audit entry could not be written)"
	} else {
		s.metrics.domain.StoreError(telemetry.StoreInternal)
	}
	s.writeError(w, r, http.StatusServiceUnavailable, msg)
}

// errReader ends a replayed body with the error reading it met (a body over
// its cap), so the handler answers it as before.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	return 0, io.EOF
}

// captureWriter remembers the status and, when keep is set, up to
// auditMaxCaptureBody bytes of the answer.
type captureWriter struct {
	http.ResponseWriter
	status   int
	keep     bool
	body     bytes.Buffer
	overflow bool
}

func (w *captureWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *captureWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.keep && !w.overflow {
		if w.body.Len()+len(b) > auditMaxCaptureBody {
			w.overflow = true
		} else {
			w.body.Write(b)
		}
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps streaming answers (the export) streaming.
func (w *captureWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w *captureWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// bodyUsers are the users a management request body names: user_id and
// to_user_id (wallet), from and into (merge), the users of membership
// operations. Anything else names none; the handler judges the body.
func bodyUsers(data []byte) []int64 {
	var ids []int64
	add := func(raw json.RawMessage) {
		if id, err := strconv.ParseInt(string(raw), 10, 64); err == nil && id > 0 {
			ids = append(ids, id)
		}
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) == nil {
		for _, k := range []string{"user_id", "to_user_id", "from", "into"} {
			add(obj[k])
		}
		return ids
	}
	var ops []struct {
		Users []json.RawMessage `json:"users"`
	}
	if json.Unmarshal(data, &ops) == nil {
		for _, op := range ops {
			for _, u := range op.Users {
				add(u)
				if len(ids) > auditMaxUsers {
					return ids
				}
			}
		}
	}
	return ids
}

func dedupeUsers(ids []int64) []int64 {
	seen := map[int64]bool{}
	out := ids[:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// normalize gives a profile the shape its JSON answer decodes to, so the
// before and after sides compare.
func normalize(p map[string]any) map[string]any {
	if p == nil {
		return nil
	}
	data, err := json.Marshal(p)
	if err != nil {
		return nil
	}
	return decodeObject(data)
}

// decodeObject decodes a JSON object with integers kept as int64.
func decodeObject(data []byte) map[string]any {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var m map[string]any
	if d.Decode(&m) != nil {
		return nil
	}
	for k, v := range m {
		m[k] = httpx.Numbers(v)
	}
	return m
}

// diffFields lists the fields whose values differ, in name order, without
// updated_at (it changes with every write) or anything named like a
// password, each value bounded.
func diffFields(before, after map[string]any) (changes []store.AuditChange, truncated bool) {
	names := map[string]bool{}
	for k := range before {
		names[k] = true
	}
	for k := range after {
		names[k] = true
	}
	sorted := make([]string, 0, len(names))
	for k := range names {
		if k != "updated_at" && !strings.Contains(strings.ToLower(k), "password") {
			sorted = append(sorted, k)
		}
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		b, bok := before[k]
		a, aok := after[k]
		bj, _ := json.Marshal(b)
		aj, _ := json.Marshal(a)
		if bok == aok && bytes.Equal(bj, aj) {
			continue
		}
		if len(changes) == auditMaxChanges {
			return changes, true
		}
		c := store.AuditChange{Field: k, Before: bounded(b, bj), After: bounded(a, aj)}
		truncated = truncated || len(bj) > auditMaxValueBytes || len(aj) > auditMaxValueBytes
		changes = append(changes, c)
	}
	return changes, truncated
}

func bounded(v any, encoded []byte) any {
	if len(encoded) > auditMaxValueBytes {
		return "(" + strconv.Itoa(len(encoded)) + " bytes, not kept)"
	}
	return v
}
