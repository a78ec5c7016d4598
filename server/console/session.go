package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/store"
)

// Cookie names. The session cookie is scoped to the console's path, so
// it never reaches the API routes (which take only bearer tokens).
const (
	sessionCookie = "userve_console"
	langCookie    = "userve_console_lang"
)

// CSRFField and CSRFHeader carry the session's CSRF token on every POST:
// a form field, or a header for scripts (fetch).
const (
	CSRFField  = "csrf"
	CSRFHeader = "X-CSRF-Token"
)

var errNoSession = errors.New("no console session")

// session is the request's live session: errNoSession without one (none,
// unknown, expired, idle), another error when the store cannot tell.
func (h *Handler) session(r *http.Request) (*store.ConsoleSession, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return nil, errNoSession
	}
	id := sessionID(c.Value)
	cs, err := h.o.Store.GetConsoleSession(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, err
	}
	now := h.o.Store.Now()
	if now.Sub(cs.LastUsed) > h.o.IdleTimeout || !h.keys[cs.TokenKey] {
		if err := h.o.Store.DeleteConsoleSession(r.Context(), id); err != nil {
			h.o.Log.Warn("console: deleting an idle session failed", "error", err)
		}
		return nil, errNoSession
	}
	if err := h.o.Store.TouchConsoleSession(r.Context(), id, now); err != nil {
		h.o.Log.Warn("console: recording a session's use failed", "error", err)
	}
	return cs, nil
}

// sessionID is the stored id of a cookie value (its SHA-256).
func sessionID(cookie string) string {
	sum := sha256.Sum256([]byte(cookie))
	return hex.EncodeToString(sum[:])
}

// TokenKey is what a session keeps of its admin token: its SHA-256 (hex).
// Admin tokens are at least 32 random bytes, so the digest gives nothing
// away.
func TokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// page serves a page to a signed-in admin; others go to the login form,
// which brings them back.
func (h *Handler) page(fn func(http.ResponseWriter, *http.Request, *view)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cs, err := h.session(r)
		if errors.Is(err, errNoSession) {
			http.Redirect(w, r, h.base+"/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if err != nil {
			h.storeDown(w, r, err)
			return
		}
		fn(w, r, h.newView(r, cs))
	}
}

// action serves a change: a signed-in admin's POST with the session's CSRF
// token (compared in constant time). Without one it is refused, and
// nothing is done.
func (h *Handler) action(fn func(http.ResponseWriter, *http.Request, *view)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cs, err := h.session(r)
		if errors.Is(err, errNoSession) {
			h.fail(w, r, nil, http.StatusUnauthorized, "err_signed_out")
			return
		}
		if err != nil {
			h.storeDown(w, r, err)
			return
		}
		token := r.Header.Get(CSRFHeader)
		if token == "" {
			token = r.PostFormValue(CSRFField)
		}
		if subtle.ConstantTimeCompare([]byte(token), []byte(cs.CSRF)) != 1 {
			h.fail(w, r, h.newView(r, cs), http.StatusForbidden, "err_csrf")
			return
		}
		fn(w, r, h.newView(r, cs))
	}
}

func (h *Handler) storeDown(w http.ResponseWriter, r *http.Request, err error) {
	h.o.Log.Warn("console: session store unavailable", "error", err)
	w.Header().Set("Retry-After", "2")
	h.fail(w, r, nil, http.StatusServiceUnavailable, "err_store")
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, err := h.session(r); err == nil {
		http.Redirect(w, r, h.next(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	v := h.newView(r, nil)
	v.Title = v.Lang.T("login_title")
	v.Data = loginData{Next: r.URL.Query().Get("next")}
	h.render(w, http.StatusOK, "login", v)
}

type loginData struct{ Next string }

// login checks an admin token typed into the form. Each try first takes
// an attempt slot of the client address from the limiter every login
// shares (account.Service.Begin), so parallel guesses cannot outrun it; a
// right token gives its slot back.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	v := h.newView(r, nil)
	v.Title = v.Lang.T("login_title")
	v.Data = loginData{Next: r.PostFormValue("next")}
	ctx := r.Context()
	addr := account.ClientAddress(r, h.o.TrustedProxies)
	attempt, err := h.o.Accounts.Begin(ctx, addr, account.Account{})
	var throttled *account.Throttled
	if errors.As(err, &throttled) {
		w.Header().Set("Retry-After", itoa(throttled.Seconds()))
		v.Error = v.Lang.Tf("err_throttled", throttled.Seconds())
		h.render(w, http.StatusTooManyRequests, "login", v)
		return
	}
	if err != nil {
		h.storeDown(w, r, err)
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	admin, ok := h.o.API.CheckToken(token)
	if !ok {
		v.Error = v.Lang.T("err_token")
		h.render(w, http.StatusUnauthorized, "login", v)
		return
	}
	attempt.Succeeded(ctx)
	raw, now := randomToken(), h.o.Store.Now()
	cs := &store.ConsoleSession{ID: sessionID(raw), Admin: admin, CSRF: randomToken(), TokenKey: TokenKey(token), Address: addr,
		UserAgent: clip(r.UserAgent(), 200), Created: now, LastUsed: now, ExpiresAt: now.Add(h.o.SessionTTL)}
	if err := h.o.Store.CreateConsoleSession(ctx, cs); err != nil {
		h.storeDown(w, r, err)
		return
	}
	h.auditSession(r, admin, "consoleLogin", http.StatusSeeOther)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: raw, Path: h.base + "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: h.secure(r), MaxAge: int(h.o.SessionTTL / time.Second)})
	http.Redirect(w, r, h.next(r.PostFormValue("next")), http.StatusSeeOther)
}

// logout ends the session on every replica.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, v *view) {
	c, _ := r.Cookie(sessionCookie)
	if err := h.o.Store.DeleteConsoleSession(r.Context(), sessionID(c.Value)); err != nil {
		h.storeDown(w, r, err)
		return
	}
	h.auditSession(r, v.Admin, "consoleLogout", http.StatusSeeOther)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: h.base + "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: h.secure(r), MaxAge: -1})
	http.Redirect(w, r, h.base+"/login", http.StatusSeeOther)
}

// auditSession records a console login or logout in the audit log, next
// to the actions the session's admin takes (those are logged by the API).
func (h *Handler) auditSession(r *http.Request, admin, action string, status int) {
	ctx := context.WithoutCancel(r.Context())
	e := &store.AuditEntry{Admin: admin, Action: action, Method: r.Method, Path: r.URL.Path, Remote: r.RemoteAddr, Via: store.AuditViaConsole}
	err := h.o.Store.BeginAudit(ctx, e)
	if err == nil {
		e.State, e.Status = store.AuditDone, status
		err = h.o.Store.SealAudit(ctx, e)
	}
	if err != nil {
		h.o.Log.Warn("console: audit entry of a session not written", "action", action, "admin", admin, "error", err)
	}
}

// secure tells whether the browser reached us over TLS: directly, or
// through a trusted proxy that says so.
func (h *Handler) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	for _, p := range h.o.TrustedProxies {
		if p.Contains(peer.Unmap()) {
			return strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https")
		}
	}
	return false
}

// next is where a login or a language switch returns: a console path, or
// the user list (never another site).
func (h *Handler) next(target string) string {
	if strings.HasPrefix(target, h.base+"/") && !strings.ContainsAny(target, "\\\r\n") && !strings.Contains(target, "//") {
		return target
	}
	return h.base + "/users/"
}

// setLang switches the console's language (a cookie) and goes back.
func (h *Handler) setLang(w http.ResponseWriter, r *http.Request) {
	if l, ok := parseLang(r.URL.Query().Get("set")); ok {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: string(l), Path: h.base + "/", HttpOnly: true,
			SameSite: http.SameSiteLaxMode, Secure: h.secure(r), MaxAge: 365 * 24 * 3600})
	}
	http.Redirect(w, r, h.next(r.URL.Query().Get("next")), http.StatusSeeOther)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
