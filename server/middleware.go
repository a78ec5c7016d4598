package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"userve.dev/userve/openapi"
	"userve.dev/userve/server/account"
	"userve.dev/userve/server/console"
	"userve.dev/userve/server/hserve"
	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/minapp"
	"userve.dev/userve/server/telemetry"
)

// RequestTimeout bounds a whole request; store operations have shorter
// bounds of their own, so an outage answers 503 well before this.
const RequestTimeout = 15 * time.Second

// routeKey carries a *routeInfo from observe to the router, which fills in
// the matched route template (metrics must not be labelled by raw paths).
type routeKey struct{}

// routeInfo also names the server the request came in through, for the
// shared router's routes (routelist.go).
type routeInfo struct {
	template string
	server   *Server
}

// observe records metrics and writes one access log line per request.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		info := &routeInfo{server: s}
		sw := &httpx.StatusWriter{ResponseWriter: w}
		s.metrics.inFlight.Inc()
		defer s.metrics.inFlight.Dec()
		defer s.activeEnd(s.activeStart(r.URL.Path))
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), routeKey{}, info)))
		if sw.Status == 0 {
			sw.Status = http.StatusOK
		}
		elapsed := s.now().Sub(start)
		route := info.template
		if route == "" {
			route = "unmatched"
		}
		code := strconv.Itoa(sw.Status)
		method := metricMethod(r.Method)
		s.metrics.requests.WithLabelValues(method, route, code).Inc()
		s.metrics.latency.WithLabelValues(method, route, code).Observe(elapsed.Seconds())
		level := slog.LevelInfo
		if sw.Status >= 500 {
			level = slog.LevelWarn
		}
		// The query string is left out: it carries openids and nicknames.
		s.log.LogAttrs(r.Context(), level, "request",
			slog.String("method", r.Method),
			slog.String("path", account.LogPath(r.URL.Path)), // no phones or e-mails in clear
			slog.String("route", route),
			slog.Int("status", sw.Status),
			slog.Int("bytes", sw.Bytes),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
			slog.String("remote", r.RemoteAddr),
			slog.String("user_agent", r.UserAgent()),
		)
	})
}

// metricMethod is the method label: a client may send any token as a
// method, and each would be a new series, so the unknown ones are "other".
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// recordRoute runs inside the router (mux middleware) where the matched
// route is known.
func recordRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info, ok := r.Context().Value(routeKey{}).(*routeInfo); ok {
			if route := mux.CurrentRoute(r); route != nil {
				info.template, _ = route.GetPathTemplate()
			}
		}
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a handler panic into a 500 in the dialect's shape and
// logs the stack; a bug must not take the process down.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic serving request", "method", r.Method, "path", account.LogPath(r.URL.Path),
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			s.writeError(w, r, http.StatusInternalServerError, "internal error")
		}()
		next.ServeHTTP(w, r)
	})
}

// limitBody caps request bodies at 1 MiB and bounds the request's time.
// The bulk routes are left their larger body cap only: their longer
// deadlines are granted by extendBulk once the admin token is checked, so
// an anonymous request stays within the server-wide deadlines.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if limit, _, bulk := bulkLimits(r.URL.Path); bulk {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > httpx.MaxBody {
			s.writeError(w, r, http.StatusBadRequest, fmt.Sprintf("request body exceeds %d bytes (1 MiB)", httpx.MaxBody))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, httpx.MaxBody)
		ctx, cancel := context.WithTimeout(r.Context(), RequestTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// extendBulk runs behind requireAdmin: an authenticated bulk import or
// export gets the longer read and write deadlines and request time it
// needs (bulkLimits); every other request keeps limitBody's bounds.
func (s *Server) extendBulk(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, timeout, bulk := bulkLimits(r.URL.Path)
		if !bulk {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(timeout))
		_ = rc.SetWriteDeadline(time.Now().Add(timeout + 15*time.Second))
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// requireAdmin admits requests bearing one of the tenant's admin tokens and
// puts that token's name in the request's context (AdminName).
func (s *Server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The console's in-process requests carry the admin its session
		// proved (console_api.go); no HTTP request can.
		if name, ok := r.Context().Value(consoleAdminKey{}).(string); ok && name != "" {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), adminKey{}, name)))
			return
		}
		token, ok := bearerToken(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="userve"`)
			s.writeError(w, r, http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <admin token>")
			return
		}
		name, ok := s.adminTokenName(token)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="userve", error="invalid_token"`)
			s.writeError(w, r, http.StatusUnauthorized, "invalid admin token")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), adminKey{}, name)))
	})
}

// adminTokenName is the name of the admin token equal to token. Every
// token is compared in constant time, and all of them are compared, so
// timing tells nothing about which one nearly matched.
func (s *Server) adminTokenName(token string) (string, bool) {
	match, which := 0, 0
	for i, t := range s.adminTokens {
		eq := subtle.ConstantTimeCompare([]byte(token), t.token)
		match |= eq
		which = subtle.ConstantTimeSelect(eq, i, which)
	}
	if match != 1 {
		return "", false
	}
	return s.adminTokens[which].name, true
}

// adminToken is one admin token and its name (config.AdminToken).
type adminToken struct {
	name  string
	token []byte
}

type adminKey struct{}

// AdminName is the name of the admin token that authenticated the request
// ("" outside the management routes).
func AdminName(ctx context.Context) string {
	name, _ := ctx.Value(adminKey{}).(string)
	return name
}

func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// requireStore answers 503 until the store's indexes exist: without the
// unique indexes, writes could create duplicates.
func (s *Server) requireStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.store.Ready() {
			s.metrics.domain.StoreError(telemetry.StoreNotReady)
			w.Header().Set("Retry-After", httpx.RetryAfterSeconds)
			s.writeError(w, r, http.StatusServiceUnavailable, "user store not ready yet, try again")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeError answers in the shape of the dialect the path belongs to.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	WriteError(w, r, status, msg)
}

// WriteError answers in the shape of the dialect r's path belongs to: the
// end-user dialect's {"message"} under /api/, the MinApp SDK's under
// /hserve/, the management dialect's {"status","error_msg"} elsewhere. A
// pool answers with it for requests no tenant's server sees.
func WriteError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	switch path := r.URL.Path; {
	case isEndUserPath(path):
		httpx.WriteJSON(w, status, map[string]string{"message": msg})
	case path == hserve.Prefix || strings.HasPrefix(path, hserve.Prefix+"/"):
		hserve.WriteError(w, status, msg)
	default:
		httpx.WriteJSON(w, status, map[string]string{"status": "error", "error_msg": msg})
	}
}

// isEndUserPath tells the ThinkSNS-style dialect's paths from the rest.
func isEndUserPath(path string) bool { return strings.HasPrefix(path, "/api/") }

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, http.StatusNotFound, "no such route: "+r.URL.Path)
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path))
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is ready when the store answers a ping and its indexes exist.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if !s.store.Ready() {
		httpx.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "error", "error_msg": "user store indexes not created yet"})
		return
	}
	if err := s.store.Ping(ctx); err != nil {
		msg := "user store unreachable"
		if !errors.Is(err, context.DeadlineExceeded) {
			s.log.Warn("readiness check failed", "error", err)
		}
		httpx.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "error", "error_msg": msg})
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Limits of the bulk routes (see bulkLimits).
const (
	ImportRequestTimeout = 5 * time.Minute
	ExportRequestTimeout = 2 * time.Hour
)

// bulkLimits are the body limit and deadline of the import and export
// routes: a batch of 1,000 records may exceed 1 MiB and take longer than
// RequestTimeout on a slow store, and an export streams every user.
func bulkLimits(path string) (body int64, timeout time.Duration, ok bool) {
	for _, prefix := range []string{"/userve", "/oserve"} {
		switch path {
		case prefix + "/v1/import/users/":
			return minapp.MaxImportBodyBytes, ImportRequestTimeout, true
		case prefix + "/v1/export/users/", prefix + openapi.ConsolePath + console.ExportPath:
			// The console's download is the export, run once its session
			// is checked (server/console).
			return httpx.MaxBody, ExportRequestTimeout, true
		}
	}
	return 0, 0, false
}
