package auth

import (
	"errors"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Password limits. bcrypt reads at most 72 bytes; a longer password would
// be silently truncated, so it is refused instead.
const (
	MinPasswordChars = 6
	MaxPasswordBytes = 72
)

// ErrPasswordTooLong is returned for passwords bcrypt cannot hash whole.
var ErrPasswordTooLong = errors.New("password may be at most 72 bytes")

// Hasher hashes passwords with bcrypt at a fixed cost.
type Hasher struct {
	Cost int

	dummyOnce sync.Once
	dummy     []byte
}

// NewHasher returns a hasher; cost 0 means bcrypt.DefaultCost.
func NewHasher(cost int) *Hasher {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	return &Hasher{Cost: cost}
}

// Hash returns the salted bcrypt hash of password.
func (h *Hasher) Hash(password string) (string, error) {
	if len(password) > MaxPasswordBytes {
		return "", ErrPasswordTooLong
	}
	b, err := bcrypt.GenerateFromPassword([]byte(password), h.Cost)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Check reports whether password matches hash: the tenant's bcrypt or an
// imported scheme (see hashes.go). An empty hash (no password
// set) never matches, but still costs one bcrypt comparison so that the
// response time does not tell whether an account exists.
func (h *Hasher) Check(hash, password string) bool {
	if hash == "" || len(password) > MaxPasswordBytes {
		h.dummyOnce.Do(func() {
			h.dummy, _ = bcrypt.GenerateFromPassword([]byte("userve-dummy-password"), h.Cost)
		})
		_ = bcrypt.CompareHashAndPassword(h.dummy, []byte(password))
		return false
	}
	if !strings.HasPrefix(hash, "$2") {
		return checkImported(hash, password)
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}
