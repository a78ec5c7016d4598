package plus

// Token families: every token refreshed from one login shares the login's
// family (claim fam). A logout ends the family; so does a refresh token
// (the previous access token) presented a second time, which only happens
// when two parties hold it: the user and a thief, or a client that lost
// the answer of its first refresh. OAuth 2.0 Security BCP (RFC 9700,
// 4.14.2): the server cannot tell which of the two is the legitimate one,
// so it revokes the whole family and both log in again. Revocations are in
// the store, so every replica refuses them at once.

import (
	"context"
	"errors"
	"net/http"

	"userve.dev/userve/server/auth"
)

var errRefreshReused = newError(http.StatusUnauthorized,
	"this token was refreshed before: a refresh token used twice may have been stolen, so every token of this login is revoked; log in again")

// endFamily revokes every token of the login claims belongs to, until they
// would have died anyway (the login's refresh deadline).
func (h *Handler) endFamily(ctx context.Context, claims auth.Claims, reason string) error {
	return h.store.RevokeFamily(context.WithoutCancel(ctx), claims.Family, claims.RefreshDeadline(h.tokens.RefreshTTL), reason)
}

// refreshToken exchanges a token (already verified for refresh) for its
// successor. The old token is revoked by the same atomic insert that
// admits the refresh, so a token refreshes once; a second presentation,
// concurrent or later, ends the family.
func (h *Handler) refreshToken(ctx context.Context, claims auth.Claims) (string, auth.Claims, error) {
	c, err := h.checkLive(ctx, claims)
	if errors.Is(err, errTokenRevoked) {
		return "", auth.Claims{}, h.refreshReused(ctx, claims)
	}
	if err != nil {
		return "", auth.Claims{}, err
	}
	first, err := h.store.RevokeToken(ctx, claims.ID, claims.RefreshDeadline(h.tokens.RefreshTTL))
	if err != nil {
		return "", auth.Claims{}, err
	}
	if !first {
		return "", auth.Claims{}, h.refreshReused(ctx, claims)
	}
	return h.tokens.IssueRefreshed(claims, c.profile.TokenEpoch)
}

// refreshReused ends the family of a token presented for refresh again.
func (h *Handler) refreshReused(ctx context.Context, claims auth.Claims) error {
	h.log.Warn("a refresh token was presented twice; every token of its login is revoked",
		"user", claims.UserID, "family", claims.Family)
	if err := h.endFamily(ctx, claims, "reuse"); err != nil {
		return err
	}
	return errRefreshReused
}
