package account

import (
	"time"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/auth"
	"userve.dev/userve/server/config"
)

// The tenant's token settings (spec.api.plus), read once here for every
// end-user dialect: a token one dialect issues is a token of the others.

// NewIssuer is the tenant's token issuer: its JWT key, tokenTTL and
// refreshTTL (defaults where unset). now, when not nil, is its clock.
func NewIssuer(cfg *config.Config, now func() time.Time) (*auth.Issuer, error) {
	p := cfg.Spec().API.Plus
	ttl, refresh := v1alpha1.DefaultTokenTTL, v1alpha1.DefaultRefreshTTL
	if p.TokenTTL != nil && p.TokenTTL.Duration > 0 {
		ttl = p.TokenTTL.Duration
	}
	if p.RefreshTTL != nil && p.RefreshTTL.Duration > 0 {
		refresh = p.RefreshTTL.Duration
	}
	tokens, err := auth.NewIssuer(cfg.JWTKey, cfg.Issuer, ttl, refresh)
	if err != nil {
		return nil, err
	}
	if now != nil {
		tokens.SetClock(now)
	}
	return tokens, nil
}

// ReauthWindow is how long after a login sensitive account changes need
// no further proof (spec.api.plus.reauthWindow).
func ReauthWindow(cfg *config.Config) time.Duration {
	if w := cfg.Spec().API.Plus.ReauthWindow; w != nil {
		return w.Duration
	}
	return v1alpha1.DefaultReauthWindow
}
