package plus

import (
	"net/http"
	"strings"
	"time"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/auth"
	"userve.dev/userve/server/store"
)

func (h *Handler) minutes(d time.Duration) int64 { return int64(d / time.Minute) }

// startLogin issues the first token of a login of p by method (refused
// when p is banned) and records its session (account.StartLogin).
func (h *Handler) startLogin(r *http.Request, p *store.Profile, method string) (string, auth.Claims, error) {
	return h.accounts.StartLogin(r.Context(), h.tokens, p, account.LoginOf(r, h.trustedProxies, account.APIPlus, method))
}

// writeToken answers a login with a fresh token for p.
func (h *Handler) writeToken(w http.ResponseWriter, r *http.Request, p *store.Profile, method string) {
	token, claims, err := h.startLogin(r, p, method)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeIssued(w, token, claims, nil)
}

// writeIssued is the body of login and refresh. expires_in and refresh_ttl
// are what is left of this token and of its login's refresh window, in
// minutes (at login: the tenant's tokenTTL and refreshTTL).
func (h *Handler) writeIssued(w http.ResponseWriter, token string, claims auth.Claims, err error) {
	if err != nil {
		newError(http.StatusInternalServerError, "internal error").write(w)
		return
	}
	writeJSON(w, http.StatusOK, h.issuedBody(token, claims))
}

// issuedBody is the /auth/login answer for a token just issued.
func (h *Handler) issuedBody(token string, claims auth.Claims) map[string]any {
	return map[string]any{
		"access_token": token, "token_type": "Bearer",
		"expires_in":  h.minutes(claims.ExpiresAt.Sub(claims.IssuedAt)),
		"refresh_ttl": h.minutes(claims.RefreshDeadline(h.tokens.RefreshTTL).Sub(claims.IssuedAt)),
	}
}

// Refresh is POST /auth/refresh: the bearer token (expired or not, within
// its refresh window) for a new one, once (account.RefreshToken). The new
// token keeps the login time and family, so no chain of refreshes outlives
// login plus refreshTTL, and a logout or a reuse ends the chain.
func (h *Handler) Refresh(w http.ResponseWriter, r *http.Request) {
	if _, err := noInput.read(r); err != nil {
		h.fail(w, r, err)
		return
	}
	hdr := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(hdr, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		h.fail(w, r, errUnauthenticated)
		return
	}
	claims, err := h.tokens.VerifyForRefresh(strings.TrimSpace(token))
	if err != nil {
		h.fail(w, r, newError(http.StatusUnauthorized, "token is invalid or past its refresh window; log in again"))
		return
	}
	fresh, freshClaims, err := h.accounts.RefreshToken(r.Context(), h.tokens, claims)
	if err != nil {
		h.fail(w, r, tokenError(err))
		return
	}
	h.writeIssued(w, fresh, freshClaims, nil)
}

// Logout is POST /auth/logout: the token and every token refreshed from
// the same login stop working on every replica.
func (h *Handler) Logout(w http.ResponseWriter, r *http.Request) {
	if _, err := noInput.read(r); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.accounts.EndLogin(r.Context(), h.tokens, callerOf(r).claims, "logout"); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "logged out"})
}
