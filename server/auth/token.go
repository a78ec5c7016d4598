// Package auth issues and verifies the end-user dialect's access tokens
// (JWT, HS256 only) and hashes passwords.
package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MinKeyBytes is the shortest signing key accepted: HS256 keys shorter than
// the hash output (32 bytes) make brute-forcing a captured token cheaper.
const MinKeyBytes = 32

// Errors of Verify and VerifyForRefresh. They are deliberately coarse: a
// client learns only that its token is no good.
var (
	ErrInvalidToken = errors.New("token is invalid")
	ErrExpiredToken = errors.New("token has expired")
)

// Claims are what a token carries. Epoch is the user's token_epoch when the
// token was issued: a password change bumps the stored epoch, and every
// token carrying an older one is dead. AuthTime is when the user logged in
// (claim auth_time, as in OpenID Connect): a refreshed token keeps it, so
// the refresh window is fixed at login. Family names the login (claim fam):
// every token refreshed from one login shares it, so that one revocation
// ends all of them (logout, or a refresh token presented twice).
type Claims struct {
	UserID    int64
	ID        string // jti, the handle revocation uses
	Family    string // fam, the login's tokens; a token from before families: its jti
	Epoch     int64
	AuthTime  time.Time
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// RefreshDeadline is the last moment the token, or any token refreshed from
// it, may be used or exchanged for a new one: login plus the refresh TTL.
// Revocation records must live until then.
func (c Claims) RefreshDeadline(refreshTTL time.Duration) time.Time {
	return c.AuthTime.Add(refreshTTL)
}

// Issuer signs and checks tokens for one tenant.
type Issuer struct {
	key        []byte
	issuer     string
	TTL        time.Duration
	RefreshTTL time.Duration
	now        func() time.Time
}

// NewIssuer makes an issuer for tenant iss ("<namespace>/<name>").
func NewIssuer(key []byte, iss string, ttl, refreshTTL time.Duration) (*Issuer, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("JWT key must be at least %d bytes, got %d", MinKeyBytes, len(key))
	}
	if iss == "" {
		return nil, errors.New("JWT issuer must not be empty")
	}
	if ttl <= 0 || refreshTTL <= 0 {
		return nil, errors.New("token TTLs must be positive")
	}
	if refreshTTL < ttl {
		refreshTTL = ttl
	}
	k := make([]byte, len(key))
	copy(k, key)
	return &Issuer{key: k, issuer: iss, TTL: ttl, RefreshTTL: refreshTTL, now: time.Now}, nil
}

// SetClock replaces the clock (tests).
func (is *Issuer) SetClock(now func() time.Time) { is.now = now }

type wireClaims struct {
	Epoch int64 `json:"epoch"`
	// AuthTime is absent from tokens of earlier versions: their iat stands
	// in for it (never later than the login, so never a longer window).
	AuthTime *jwt.NumericDate `json:"auth_time,omitempty"`
	// Family is absent from tokens of earlier versions: their jti stands in
	// for it (and their successors inherit that).
	Family string `json:"fam,omitempty"`
	jwt.RegisteredClaims
}

// Issue signs a new token for a user who just logged in (or registered):
// a new login, so a new family.
func (is *Issuer) Issue(userID, epoch int64) (string, Claims, error) {
	return is.issue(userID, epoch, time.Time{}, "")
}

// IssueRefreshed signs the successor of a token being refreshed: same login
// time, so the same refresh deadline, and the same family. Its expiry never
// passes that deadline.
func (is *Issuer) IssueRefreshed(prev Claims, epoch int64) (string, Claims, error) {
	if prev.AuthTime.IsZero() || prev.Family == "" {
		return "", Claims{}, ErrInvalidToken
	}
	return is.issue(prev.UserID, epoch, prev.AuthTime, prev.Family)
}

func (is *Issuer) issue(userID, epoch int64, authTime time.Time, family string) (string, Claims, error) {
	now := is.now().Truncate(time.Second)
	if authTime.IsZero() {
		authTime = now
	}
	jti, err := randomID()
	if err != nil {
		return "", Claims{}, err
	}
	if family == "" {
		if family, err = randomID(); err != nil {
			return "", Claims{}, err
		}
	}
	c := Claims{
		UserID:    userID,
		ID:        jti,
		Family:    family,
		Epoch:     epoch,
		AuthTime:  authTime,
		IssuedAt:  now,
		ExpiresAt: now.Add(is.TTL),
	}
	if d := c.RefreshDeadline(is.RefreshTTL); c.ExpiresAt.After(d) {
		c.ExpiresAt = d
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, wireClaims{
		Epoch:    epoch,
		AuthTime: jwt.NewNumericDate(c.AuthTime),
		Family:   c.Family,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    is.issuer,
			Subject:   strconv.FormatInt(userID, 10),
			ID:        c.ID,
			IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
		},
	})
	s, err := tok.SignedString(is.key)
	if err != nil {
		return "", Claims{}, err
	}
	return s, c, nil
}

// randomID is 128 random bits, base64url.
func randomID() (string, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(raw[:]), nil
}

// Verify checks signature (HS256 with this tenant's key only), issuer and
// expiry. It does not know about revocation or epochs: the caller checks
// those against the store.
func (is *Issuer) Verify(token string) (Claims, error) {
	c, err := is.parse(token)
	if err != nil {
		return Claims{}, err
	}
	if !is.now().Before(c.ExpiresAt) {
		return Claims{}, ErrExpiredToken
	}
	return c, nil
}

// VerifyForRefresh accepts an expired token as long as its refresh deadline
// (login time plus the refresh TTL) has not passed.
func (is *Issuer) VerifyForRefresh(token string) (Claims, error) {
	c, err := is.parse(token)
	if err != nil {
		return Claims{}, err
	}
	if !is.now().Before(c.RefreshDeadline(is.RefreshTTL)) {
		return Claims{}, ErrExpiredToken
	}
	return c, nil
}

func (is *Issuer) parse(token string) (Claims, error) {
	if len(token) > 4096 {
		return Claims{}, ErrInvalidToken
	}
	var wc wireClaims
	// Time claims are checked by the callers against our clock, so that
	// refresh can accept an expired token; everything else is strict.
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(is.issuer),
		jwt.WithoutClaimsValidation(),
	)
	_, err := p.ParseWithClaims(token, &wc, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodHS256 {
			return nil, ErrInvalidToken
		}
		return is.key, nil
	})
	if err != nil {
		return Claims{}, ErrInvalidToken
	}
	// WithoutClaimsValidation also skips the issuer check: do it here.
	if wc.Issuer != is.issuer || wc.ID == "" || wc.ExpiresAt == nil || wc.IssuedAt == nil {
		return Claims{}, ErrInvalidToken
	}
	uid, err := strconv.ParseInt(wc.Subject, 10, 64)
	if err != nil || uid <= 0 {
		return Claims{}, ErrInvalidToken
	}
	authTime := wc.IssuedAt.Time
	if wc.AuthTime != nil {
		authTime = wc.AuthTime.Time
	}
	if authTime.After(wc.IssuedAt.Time) {
		return Claims{}, ErrInvalidToken // a login after the token: not ours
	}
	family := wc.Family
	if family == "" {
		family = wc.ID
	}
	return Claims{
		UserID:    uid,
		ID:        wc.ID,
		Family:    family,
		Epoch:     wc.Epoch,
		AuthTime:  authTime,
		IssuedAt:  wc.IssuedAt.Time,
		ExpiresAt: wc.ExpiresAt.Time,
	}, nil
}
