package account

// Token liveness and families, for every dialect that takes the tenant's
// tokens: a token is live when neither it nor its login (family) was
// revoked, its user exists and is not being deleted or merged away, and no
// password change came after it. Families: every token refreshed from one
// login shares the login's family (claim fam). A logout ends the family;
// so does a refresh token (the previous access token) presented a second
// time, which only happens when two parties hold it: the user and a thief,
// or a client that lost the answer of its first refresh. OAuth 2.0
// Security BCP (RFC 9700, 4.14.2): the server cannot tell which of the two
// is the legitimate one, so it revokes the whole family and both log in
// again. Revocations are in the store, so every replica refuses them at
// once.

import (
	"context"
	"errors"
	"time"

	"userve.dev/userve/server/auth"
	"userve.dev/userve/server/store"
)

// Why CheckToken refuses a token. Each dialect words them its way.
var (
	// ErrTokenRevoked: the token itself was revoked (refreshed, or logged
	// out before families).
	ErrTokenRevoked = errors.New("token has been revoked")
	// ErrLoginEnded: its login (family) was ended: logged out, or a
	// refresh token was used twice.
	ErrLoginEnded = errors.New("token's login has ended (logged out, or a refresh token was used twice); log in again")
	// ErrUserGone: its user was deleted, merged away, or is being.
	ErrUserGone = errors.New("token's user no longer exists")
	// ErrPasswordChanged: a password change (or reset) came after it.
	ErrPasswordChanged = errors.New("token was ended by a password change; log in again")
	// ErrRefreshReused: a token presented for refresh a second time; its
	// family is revoked.
	ErrRefreshReused = errors.New("this token was refreshed before: a refresh token used twice may have been stolen, so every token of this login is revoked; log in again")
)

// CheckToken is the user of a token whose signature, issuer and expiry
// were checked (auth.Issuer), or why the token is dead, or *Banned. It
// records the use on the token's session (at most once a minute).
func (s *Service) CheckToken(ctx context.Context, claims auth.Claims) (*store.Profile, error) {
	revoked, err := s.store.FamilyRevoked(ctx, claims.Family)
	if err != nil {
		return nil, err
	}
	if revoked {
		return nil, ErrLoginEnded
	}
	if revoked, err = s.store.TokenRevoked(ctx, claims.ID); err != nil {
		return nil, err
	}
	if revoked {
		return nil, ErrTokenRevoked
	}
	p, err := s.store.GetProfile(ctx, claims.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUserGone
	}
	if err != nil {
		return nil, err
	}
	if p.TokenEpoch != claims.Epoch {
		return nil, ErrPasswordChanged
	}
	// A deleted user's id is never given out again (store tombstones);
	// should one be all the same, a login older than the user is someone
	// else's. Tokens count whole seconds, so the comparison does too.
	if !p.Created.IsZero() && claims.AuthTime.Before(p.Created.Truncate(time.Second)) {
		return nil, ErrUserGone
	}
	// The ban is in the profile just read: it holds from the request after
	// it was written, on every replica.
	if b := p.ActiveBan(s.store.Now()); b != nil {
		return nil, bannedError(b)
	}
	s.touch(ctx, claims)
	return p, nil
}

// RefreshToken exchanges a token (verified for refresh by tokens) for its
// successor: same login time and family. The old token is revoked by the
// same atomic insert that admits the refresh, so a token refreshes once; a
// second presentation, concurrent or later, ends the family
// (ErrRefreshReused).
func (s *Service) RefreshToken(ctx context.Context, tokens *auth.Issuer, claims auth.Claims) (string, auth.Claims, error) {
	p, err := s.CheckToken(ctx, claims)
	if errors.Is(err, ErrTokenRevoked) {
		return "", auth.Claims{}, s.refreshReused(ctx, tokens, claims)
	}
	if err != nil {
		return "", auth.Claims{}, err
	}
	first, err := s.store.RevokeToken(ctx, claims.ID, claims.RefreshDeadline(tokens.RefreshTTL))
	if err != nil {
		return "", auth.Claims{}, err
	}
	if !first {
		return "", auth.Claims{}, s.refreshReused(ctx, tokens, claims)
	}
	return tokens.IssueRefreshed(claims, p.TokenEpoch)
}

func (s *Service) refreshReused(ctx context.Context, tokens *auth.Issuer, claims auth.Claims) error {
	s.log.Warn("a refresh token was presented twice; every token of its login is revoked",
		"user", claims.UserID, "family", claims.Family)
	if err := s.EndLogin(ctx, tokens, claims, "reuse"); err != nil {
		return err
	}
	return ErrRefreshReused
}

// EndLogin revokes every token of the login claims belongs to, until they
// would have died anyway (the login's refresh deadline); reason is kept
// for the record ("logout", "reuse"). The token itself is revoked too, so
// that a check that knows only jtis refuses it as well. Its session is
// forgotten.
func (s *Service) EndLogin(ctx context.Context, tokens *auth.Issuer, claims auth.Claims, reason string) error {
	ctx = context.WithoutCancel(ctx)
	until := claims.RefreshDeadline(tokens.RefreshTTL)
	if err := s.store.RevokeFamily(ctx, claims.Family, until, reason); err != nil {
		return err
	}
	if _, err := s.store.RevokeToken(ctx, claims.ID, until); err != nil {
		return err
	}
	return s.store.DeleteSession(ctx, claims.Family)
}
