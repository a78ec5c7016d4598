// Package hserve is the dialect of MinApp's own client SDK (minapp-sdk on
// npm, ifanrx/hydrogen-js-sdk): the /hserve/ user and auth routes its web
// and mini-program builds call, over the same store, tokens and attempt
// limits as the end-user dialect (server/plus). A tenant turns it on with
// spec.api.hserve; apps then point BaaS.init at the tenant with the host
// option. docs/hserve.md says what is compatible.
//
// Every request carries X-Hydrogen-Client-ID, which must be the tenant's
// clientID (401 otherwise); signed-in calls carry
// "Authorization: Hydrogen-r1 <token>", a token of the tenant's key.
// Errors are {"status":"error","error_msg":"..."} with the status the SDK's
// HError turns into its error code.
package hserve

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
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
	"userve.dev/userve/server/minapp"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/telemetry"
)

// Prefix is where the dialect's routes live.
const Prefix = "/hserve"

// Header names of the SDK.
const (
	HeaderClientID = "X-Hydrogen-Client-ID"
	// AuthScheme is the SDK's Authorization scheme (core/config AUTH_PREFIX).
	AuthScheme = "Hydrogen-r1"
)

// Options are the optional dependencies of New.
type Options struct {
	// Now is the token clock; nil means time.Now.
	Now func() time.Time
	// Metrics records store errors; nil records nothing.
	Metrics *telemetry.Metrics
	// WeChatHTTP replaces the HTTP client of WeChat calls (tests).
	WeChatHTTP *http.Client
}

// Handler serves the /hserve/ routes of one tenant.
type Handler struct {
	store    *store.Store
	cfg      *config.Config
	log      *slog.Logger
	accounts *account.Service
	tokens   *auth.Issuer
	schema   minapp.Schema
	metrics  *telemetry.Metrics
	clientID []byte
	origins  map[string]bool
	trusted  []netip.Prefix
	wechat   *account.MiniProgram // nil unless spec.wechat is set
	// reauthWindow is spec.api.plus.reauthWindow: how recent a login
	// must be for an account change without proof (account.Reauthenticate).
	reauthWindow time.Duration
}

// New builds the handlers over the tenant's one account service (shared
// with the end-user dialect, so both count the same attempts). The
// configuration has been validated by config.Load.
func New(st *store.Store, cfg *config.Config, accounts *account.Service, log *slog.Logger, opts Options) (*Handler, error) {
	if log == nil {
		log = slog.Default()
	}
	spec := cfg.Spec()
	hs := spec.API.HServe
	if hs == nil || hs.ClientID == "" {
		return nil, errors.New("spec.api.hserve.clientID is required while spec.api.hserve is enabled")
	}
	tokens, err := account.NewIssuer(cfg, opts.Now)
	if err != nil {
		return nil, err
	}
	trusted, err := config.TrustedProxies(spec)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		store: st, cfg: cfg, log: log, accounts: accounts, tokens: tokens,
		schema: minapp.NewSchema(spec.Profile.CustomFields), metrics: opts.Metrics,
		clientID: []byte(hs.ClientID), origins: map[string]bool{}, trusted: trusted,
	}
	h.reauthWindow = account.ReauthWindow(cfg)
	for _, o := range hs.AllowedOrigins {
		h.origins[o] = true
	}
	if h.wechat, err = account.NewMiniProgram(st, cfg, opts.WeChatHTTP); err != nil {
		return nil, err
	}
	return h, nil
}

// ---- errors ---------------------------------------------------------------

// apiError is an answer other than success: a status the SDK's HError turns
// into its error code, and error_msg.
type apiError struct {
	status     int
	msg        string
	retryAfter int64 // seconds, for 429 and 503
}

func (e *apiError) Error() string { return e.msg }

func newError(status int, msg string) *apiError { return &apiError{status: status, msg: msg} }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// WriteError answers in this dialect's shape (the router's 404 and 405 for
// /hserve/ paths use it too).
func WriteError(w http.ResponseWriter, status int, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", AuthScheme+` realm="userve"`)
	}
	httpx.WriteJSON(w, status, map[string]string{"status": "error", "error_msg": msg})
}

// fail writes err: an *apiError as it is, the account service's refusals
// in this dialect's words, store trouble as 503, anything else a logged
// 500.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var th *account.Throttled
	var ce *store.ConflictError
	var soon *store.TooSoonError
	var banned *account.Banned
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &banned):
		ae = newError(http.StatusForbidden, banned.Error())
	case errors.As(err, &th):
		ae = &apiError{status: http.StatusTooManyRequests, retryAfter: th.Seconds(),
			msg: fmt.Sprintf("too many attempts (%s); retry in %d seconds", th.Budget, th.Seconds())}
	case errors.As(err, &soon):
		ae = &apiError{status: http.StatusTooManyRequests, retryAfter: soon.Seconds(),
			msg: fmt.Sprintf("a code was sent to this number less than a minute ago; retry in %d seconds", soon.Seconds())}
	case errors.Is(err, account.ErrWrongPassword):
		ae = newError(http.StatusUnauthorized, "username, e-mail, phone or password is wrong")
	case errors.Is(err, account.ErrWrongCode):
		ae = newError(http.StatusBadRequest, "the verification code is wrong or has expired")
	case errors.Is(err, account.ErrCodeUsed):
		ae = newError(http.StatusBadRequest, "the verification code was used already; request a new one")
	case errors.Is(err, account.ErrCodeSpent):
		ae = newError(http.StatusTooManyRequests, fmt.Sprintf("this verification code has had %d tries and no longer works; request a new one", account.MaxCodeAttempts))
	case errors.Is(err, account.ErrNoDelivery):
		ae = newError(http.StatusBadRequest, "this service delivers no codes on this channel (spec.verification.sms or .mail)")
	case errors.Is(err, account.ErrUndelivered):
		ae = &apiError{status: http.StatusServiceUnavailable, retryAfter: 5, msg: "the verification code could not be delivered; try again later"}
	case httpx.StoreUnavailable(w, err):
		h.metrics.StoreError(telemetry.StoreUnavailable)
		h.log.Warn("store unavailable", "method", r.Method, "path", r.URL.Path, "error", err)
		ae = newError(http.StatusServiceUnavailable, httpx.UnavailableMessage)
	case errors.Is(err, store.ErrNotFound):
		ae = newError(http.StatusNotFound, "not found")
	case errors.As(err, &ce):
		ae = badRequest("%s is already taken", sdkField(ce.Field))
	default:
		h.metrics.StoreError(telemetry.StoreInternal)
		h.log.Error("MinApp SDK request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		ae = newError(http.StatusInternalServerError, "internal error")
	}
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(ae.retryAfter, 10))
	}
	WriteError(w, ae.status, ae.msg)
}

// sdkField names a store field as the SDK does.
func sdkField(f string) string {
	switch f {
	case store.FieldUsername, store.FieldEmail, store.FieldPhone:
		return "_" + f
	case "":
		return "value"
	}
	return f
}

// ---- the client ID, CORS and tokens ---------------------------------------

// corsHeaders are the request headers the SDK sends (core/utils
// mergeRequestHeader), which a preflight must allow.
const corsHeaders = "Authorization, Content-Type, X-Hydrogen-Client-ID, X-Hydrogen-Client-Version, X-Hydrogen-Client-Platform, X-Hydrogen-Client-SDK-Type, X-Hydrogen-Env-ID"

// allowOrigin sets Access-Control-Allow-Origin for an allowed Origin only:
// never "*", and no credentials (the SDK sends its token in a header, not
// a cookie). Vary tells caches the answer depends on Origin.
func (h *Handler) allowOrigin(w http.ResponseWriter, r *http.Request) bool {
	w.Header().Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" || !h.origins[origin] {
		return false
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	return true
}

// Preflight answers a CORS preflight (OPTIONS) for a path serving methods:
// 204 with the allowed methods and headers for an allowed origin, 403
// without any Access-Control-Allow-Origin otherwise. Preflights carry no
// client ID (browsers send no custom headers on them).
func (h *Handler) Preflight(methods ...string) http.HandlerFunc {
	allow := strings.Join(methods, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.allowOrigin(w, r) {
			WriteError(w, http.StatusForbidden, "this origin may not call this API: add it to spec.api.hserve.allowedOrigins")
			return
		}
		w.Header().Set("Access-Control-Allow-Methods", allow)
		w.Header().Set("Access-Control-Allow-Headers", corsHeaders)
		w.Header().Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
	}
}

// Client admits requests bearing the tenant's client ID (compared in
// constant time) and adds the CORS answer for allowed origins, errors
// included, so a page can read why it was refused.
func (h *Handler) Client(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.allowOrigin(w, r)
		got := r.Header.Get(HeaderClientID)
		if got == "" {
			WriteError(w, http.StatusUnauthorized, "missing "+HeaderClientID+": call BaaS.init(clientID, {host}) first")
			return
		}
		if subtle.ConstantTimeCompare([]byte(got), h.clientID) != 1 {
			WriteError(w, http.StatusUnauthorized, HeaderClientID+" is not this service's client ID")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// caller is the signed-in user of a request.
type caller struct {
	profile *store.Profile
	claims  auth.Claims
}

type callerKey struct{}

func callerOf(r *http.Request) *caller {
	c, _ := r.Context().Value(callerKey{}).(*caller)
	return c
}

// Authed requires "Authorization: Hydrogen-r1 <token>" with a live token of
// the tenant (the SDK's 604/401 otherwise).
func (h *Handler) Authed(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := h.authenticate(r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	}
}

var errNoToken = newError(http.StatusUnauthorized, "not logged in: send Authorization: "+AuthScheme+" <token>")

func (h *Handler) authenticate(r *http.Request) (*caller, error) {
	hdr := r.Header.Get("Authorization")
	if hdr == "" {
		return nil, errNoToken
	}
	scheme, token, ok := strings.Cut(hdr, " ")
	token = strings.TrimSpace(token)
	if !ok || scheme != AuthScheme || token == "" {
		return nil, newError(http.StatusUnauthorized, "Authorization must be: "+AuthScheme+" <token>")
	}
	claims, err := h.tokens.Verify(token)
	if err != nil {
		return nil, newError(http.StatusUnauthorized, "token is invalid or expired; log in again")
	}
	return h.checkLive(r.Context(), claims)
}

// checkLive is the tenant's one token check (account.CheckToken):
// revoked tokens and logins (families), deleted users and tokens older
// than the last password change are refused here exactly as on /api/v2.
func (h *Handler) checkLive(ctx context.Context, claims auth.Claims) (*caller, error) {
	p, err := h.accounts.CheckToken(ctx, claims)
	for _, dead := range []error{account.ErrTokenRevoked, account.ErrLoginEnded, account.ErrUserGone, account.ErrPasswordChanged} {
		if errors.Is(err, dead) {
			return nil, newError(http.StatusUnauthorized, err.Error())
		}
	}
	if err != nil {
		return nil, err
	}
	return &caller{profile: p, claims: claims}, nil
}

// clientAddress is what per-address limits count a request against.
func (h *Handler) clientAddress(r *http.Request) string {
	return account.ClientAddress(r, h.trusted)
}
