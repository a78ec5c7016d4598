// Package console is the tenant console (issue 23, docs/console.md): HTML
// pages for a tenant's admins, served by the tenant server at
// /userve/console/ and /oserve/console/. Pages are Go templates with a
// little JavaScript, every asset embedded; the browser talks to nothing
// but this server (Content-Security-Policy default-src 'self').
//
// The console has no data access of its own: every read and every change
// is a management API request run in-process as the signed-in admin
// (API.Do), so it has exactly the API's rules, errors and audit log. It
// owns only its sessions (store.ConsoleSession), the login form and CSRF.
package console

import (
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/account"
	"userve.dev/userve/server/store"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Answer is a management API answer.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// API is the management API, run in-process.
type API interface {
	// Do runs method path (with its query; body JSON or nil) as admin; r
	// is the console request being served.
	Do(r *http.Request, admin, method, path string, body []byte) Answer
	// Forward is Do with the answer written to w as it comes (downloads).
	Forward(w http.ResponseWriter, r *http.Request, admin, method, path string)
	// CheckToken is the management API's admin token check: the token's
	// name, compared in constant time.
	CheckToken(token string) (name string, ok bool)
	// TokenKeys are the SHA-256s (hex) of the tenant's admin tokens now.
	TokenKeys() []string
}

// Options are New's dependencies.
type Options struct {
	Prefix   string // "/userve" or "/oserve": the API the console calls
	Store    *store.Store
	Accounts *account.Service // the attempt limiter every login shares
	API      API
	Spec     *v1alpha1.UserServiceSpec
	// TrustedProxies are the proxies whose X-Forwarded-For and
	// X-Forwarded-Proto are believed (spec.api.plus.trustedProxies).
	TrustedProxies []netip.Prefix
	Log            *slog.Logger
	// SessionTTL and IdleTimeout bound a session (defaults SessionTTL,
	// IdleTimeout).
	SessionTTL, IdleTimeout time.Duration
}

// Session limits (docs/console.md).
const (
	SessionTTL  = 8 * time.Hour    // a session's absolute life
	IdleTimeout = 30 * time.Minute // a session unused this long ends
)

// Handler is the console of one prefix.
type Handler struct {
	o      Options
	base   string // Prefix + "/console"
	mux    *http.ServeMux
	pages  map[string]*template.Template
	fields []v1alpha1.CustomField
	keys   map[string]bool // the admin tokens' SHA-256s: a session's token must be one
}

// New builds the console.
func New(o Options) *Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = SessionTTL
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = IdleTimeout
	}
	h := &Handler{o: o, base: o.Prefix + "/console", mux: http.NewServeMux(), pages: pages()}
	if o.Spec != nil {
		h.fields = o.Spec.Profile.CustomFields
	}
	h.keys = map[string]bool{}
	for _, k := range o.API.TokenKeys() {
		h.keys[k] = true
	}
	h.routes()
	return h
}

// routes lists the console's pages and actions; every POST is checked for
// its session's CSRF token (h.action).
func (h *Handler) routes() {
	b := h.base
	static, _ := fs.Sub(staticFiles, "static")
	h.mux.Handle("GET "+b+"/static/", http.StripPrefix(b+"/static/", http.FileServerFS(static)))
	h.mux.HandleFunc("GET "+b+"/{$}", h.home)
	h.mux.HandleFunc("GET "+b+"/login", h.loginPage)
	h.mux.HandleFunc("POST "+b+"/login", h.login)
	h.mux.HandleFunc("POST "+b+"/logout", h.action(h.logout))
	h.mux.HandleFunc("GET "+b+"/lang", h.setLang)

	// Users (users.go, user.go, useractions.go).
	h.mux.HandleFunc("GET "+b+"/users/{$}", h.page(h.usersPage))
	h.mux.HandleFunc("GET "+b+"/users/{id}/{$}", h.page(h.userPage))
	h.mux.HandleFunc("POST "+b+ExportPath, h.action(h.exportUsers))

	// The audit log (audit.go).
	h.mux.HandleFunc("GET "+b+"/audit/{$}", h.page(h.auditPage))
	for name, act := range h.userActions() {
		h.mux.HandleFunc("POST "+b+"/users/{id}/"+name, h.action(act))
	}

	// Anything else under the console is a page that does not exist.
	h.mux.HandleFunc(b+"/", func(w http.ResponseWriter, r *http.Request) { h.fail(w, r, nil, http.StatusNotFound, "err_not_found") })
}

// ServeHTTP answers with the console's security headers on every answer.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method == http.MethodPost && !sameOrigin(r) {
		h.fail(w, r, nil, http.StatusForbidden, "err_origin")
		return
	}
	h.mux.ServeHTTP(w, r)
}

// ContentSecurityPolicy lets pages load only this server's scripts,
// styles and images: no inline script or style, no framing, forms posted
// only here.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// sameOrigin refuses a POST whose Origin (sent by every current browser
// on a POST) names another site: a second line behind the CSRF token.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	_, host, ok := strings.Cut(origin, "://")
	return ok && strings.EqualFold(host, r.Host)
}

func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	if _, err := h.session(r); err == nil {
		http.Redirect(w, r, h.base+"/users/", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, h.base+"/login", http.StatusSeeOther)
}
