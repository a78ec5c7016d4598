// Package plus is the end-user dialect, compatible with ThinkSNS Plus API v2
// users: verification codes, registration, login with JWTs, the user's own
// profile, follows and wallets. Handlers turn HTTP into store calls; input
// parsing and validation are plain functions (body.go, validate.go).
//
// Errors: 422 {"message","errors":{"field":["..."]}} for invalid input,
// {"message"} otherwise; 401 for a protected route without a valid token.
package plus

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/auth"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/telemetry"
	"userve.dev/userve/server/verify"
)

// Options are the optional dependencies of New.
type Options struct {
	// HashCost is the bcrypt cost; 0 means bcrypt's default (10).
	HashCost int
	// CheckMemory and CheckWait bound concurrent password checks
	// (account.Options); 0 means auth's defaults.
	CheckMemory int64
	CheckWait   time.Duration
	// SharedCheckMemory is a budget shared with other tenants of the
	// process (a pool); nil: none.
	SharedCheckMemory *auth.SharedCheckMemory
	// Now is the token clock; nil means time.Now.
	Now func() time.Time
	// Sender replaces the delivery configured in spec.verification.
	Sender verify.Sender
	// Metrics records logins, codes, wallet operations and store errors;
	// nil records nothing.
	Metrics *telemetry.Metrics
	// Accounts is the tenant's account service (attempt limiter,
	// credentials, codes) shared with the other dialects; nil builds one
	// from the options above.
	Accounts *account.Service
	// WeChatHTTP replaces the HTTP client of WeChat calls (tests: shorter
	// timeouts).
	WeChatHTTP *http.Client
}

// AccountOptions are the options of the account service o describes (the
// server builds the one every end-user dialect shares from them).
func (o Options) AccountOptions() account.Options {
	return account.Options{HashCost: o.HashCost, CheckMemory: o.CheckMemory, CheckWait: o.CheckWait,
		SharedCheckMemory: o.SharedCheckMemory, Sender: o.Sender, Metrics: o.Metrics}
}

// Handler serves the /api/v2 routes of one tenant.
type Handler struct {
	store    *store.Store
	cfg      *config.Config
	log      *slog.Logger
	tokens   *auth.Issuer
	accounts *account.Service
	metrics  *telemetry.Metrics

	defaultLimit, maxLimit int64
	trustedProxies         []netip.Prefix // see account.ClientAddress
	reauthWindow           time.Duration  // spec.api.plus.reauthWindow (reauth.go)

	wechat *account.MiniProgram // nil unless spec.wechat is set
}

// New builds the handlers. The configuration has been validated by
// config.Load (a JWT key of at least 32 bytes while this dialect is on).
func New(st *store.Store, cfg *config.Config, log *slog.Logger, opts Options) (*Handler, error) {
	if log == nil {
		log = slog.Default()
	}
	spec := cfg.Spec()
	p := spec.API.Plus
	tokens, err := account.NewIssuer(cfg, opts.Now)
	if err != nil {
		return nil, err
	}
	trusted, err := config.TrustedProxies(spec)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		store: st, cfg: cfg, log: log, tokens: tokens, trustedProxies: trusted,
		accounts:     opts.Accounts,
		metrics:      opts.Metrics,
		defaultLimit: int64(max(p.DefaultLimit, 1)),
		maxLimit:     int64(max(p.MaxLimit, 1)),
	}
	if h.defaultLimit > h.maxLimit {
		h.defaultLimit = h.maxLimit
	}
	h.reauthWindow = account.ReauthWindow(cfg)
	if h.accounts == nil {
		h.accounts = account.New(st, cfg, log, opts.AccountOptions())
	}
	if h.wechat, err = account.NewMiniProgram(st, cfg, opts.WeChatHTTP); err != nil {
		return nil, err
	}
	if spec.Verification.LogCodes {
		log.Warn("verification codes are written to this log (spec.verification.logCodes): development only, whoever reads the log can take over accounts")
	}
	return h, nil
}

// ---- responses ------------------------------------------------------------

// apiError is an error response: 422 with per-field errors, or a status
// with a message.
type apiError struct {
	status   int
	message  string
	fields   map[string][]string
	conflict string // 409: what is taken ("openid", "unionid", "phone")
	// retryAfter is the Retry-After of a 429, in seconds (0: none).
	retryAfter int64
}

func (e *apiError) Error() string { return e.message }

func newError(status int, msg string) *apiError { return &apiError{status: status, message: msg} }

// invalid is a 422 naming one field.
func invalid(field, msg string) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, message: msg, fields: map[string][]string{field: {msg}}}
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpx.WriteJSON(w, status, v) }

func (e *apiError) write(w http.ResponseWriter) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(e.retryAfter, 10))
	}
	if e.status == http.StatusUnprocessableEntity {
		fields := e.fields
		if fields == nil {
			fields = map[string][]string{}
		}
		writeJSON(w, e.status, map[string]any{"message": e.message, "errors": fields})
		return
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="userve"`)
	}
	if e.conflict != "" {
		writeJSON(w, e.status, map[string]string{"message": e.message, "conflict": e.conflict})
		return
	}
	writeJSON(w, e.status, map[string]string{"message": e.message})
}

// fail writes err: an *apiError as it is, store errors mapped to statuses
// (the store away or busy → 503, as in the management dialect), anything
// else a logged 500.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var ce *store.ConflictError
	var banned *account.Banned
	switch {
	case errors.As(err, &ae):
		ae.write(w)
	case errors.As(err, &banned):
		newError(http.StatusForbidden, banned.Error()).write(w)
	case errors.Is(err, auth.ErrBusy):
		// The process's password checks are at their memory budget.
		h.log.Warn("password check refused: checks busy", "method", r.Method, "path", account.LogPath(r.URL.Path))
		w.Header().Set("Retry-After", httpx.RetryAfterSeconds)
		newError(http.StatusServiceUnavailable, auth.ErrBusy.Error()).write(w)
	case httpx.StoreUnavailable(w, err):
		h.metrics.StoreError(telemetry.StoreUnavailable)
		h.log.Warn("store unavailable", "method", r.Method, "path", account.LogPath(r.URL.Path), "error", err)
		newError(http.StatusServiceUnavailable, httpx.UnavailableMessage).write(w)
	case errors.Is(err, store.ErrNotFound):
		newError(http.StatusNotFound, "not found").write(w)
	case errors.As(err, &ce):
		field := plusField(ce.Field)
		invalid(field, field+" is already taken").write(w)
	default:
		h.metrics.StoreError(telemetry.StoreInternal)
		h.log.Error("end-user request failed", "method", r.Method, "path", account.LogPath(r.URL.Path), "error", err)
		newError(http.StatusInternalServerError, "internal error").write(w)
	}
}

// plusField names a store field as this dialect does.
func plusField(f string) string {
	switch f {
	case store.FieldUsername:
		return "name"
	case "":
		return "value"
	}
	return f
}

func noContent(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

// ---- authentication -------------------------------------------------------

type callerKey struct{}

// caller is the authenticated user of a request.
type caller struct {
	profile *store.Profile
	claims  auth.Claims
}

func callerOf(r *http.Request) *caller {
	c, _ := r.Context().Value(callerKey{}).(*caller)
	return c
}

var errUnauthenticated = newError(http.StatusUnauthorized, "Unauthenticated.")

// authenticate checks the bearer token: signature, issuer and expiry, then
// revocation and the user's token epoch in the store (shared by every
// replica). No token at all is (nil, nil).
func (h *Handler) authenticate(r *http.Request) (*caller, error) {
	hdr := r.Header.Get("Authorization")
	if hdr == "" {
		return nil, nil
	}
	scheme, token, ok := strings.Cut(hdr, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, newError(http.StatusUnauthorized, "Authorization must be: Bearer <token>")
	}
	claims, err := h.tokens.Verify(strings.TrimSpace(token))
	if err != nil {
		return nil, newError(http.StatusUnauthorized, "token is invalid or expired")
	}
	return h.checkLive(r.Context(), claims)
}

// checkLive is the caller of a token whose signature, issuer and expiry
// were checked, or a 401 saying why the token is dead
// (account.CheckToken: revocations of the token and of its login, the
// user, its password changes).
func (h *Handler) checkLive(ctx context.Context, claims auth.Claims) (*caller, error) {
	p, err := h.accounts.CheckToken(ctx, claims)
	if err != nil {
		return nil, tokenError(err)
	}
	return &caller{profile: p, claims: claims}, nil
}

// tokenError is the 401 of a dead token (the account package's words), or
// err itself (the store).
func tokenError(err error) error {
	for _, dead := range []error{account.ErrTokenRevoked, account.ErrLoginEnded, account.ErrUserGone,
		account.ErrPasswordChanged, account.ErrRefreshReused} {
		if errors.Is(err, dead) {
			return newError(http.StatusUnauthorized, dead.Error())
		}
	}
	return err
}

// Authed requires a valid token.
func (h *Handler) Authed(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := h.authenticate(r)
		if err == nil && c == nil {
			err = errUnauthenticated
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	}
}

// MaybeAuthed admits anonymous requests; a token, if sent, must be valid.
func (h *Handler) MaybeAuthed(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := h.authenticate(r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if c != nil {
			r = r.WithContext(context.WithValue(r.Context(), callerKey{}, c))
		}
		next(w, r)
	}
}

// clientIP is the address key the per-address budgets count a request
// against.
func (h *Handler) clientIP(r *http.Request) string {
	return account.ClientAddress(r, h.trustedProxies)
}

const timeLayout = "2006-01-02 15:04:05"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}
