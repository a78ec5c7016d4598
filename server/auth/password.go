package auth

import (
	"context"
	"errors"
	"sync"
	"time"

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

// Hasher hashes passwords with bcrypt at a fixed cost, and checks them
// against the tenant's bcrypt or an imported scheme through the check gate
// (gate.go): this is the one place a password hash is verified.
type Hasher struct {
	Cost int

	gate      *gate
	dummyOnce sync.Once
	dummy     []byte
}

// HasherOptions configure NewHasherWith; zero values are the defaults.
type HasherOptions struct {
	Cost        int           // bcrypt cost; 0: bcrypt.DefaultCost (10)
	CheckMemory int64         // bytes checks may hold at once; 0: DefaultCheckMemory
	CheckWait   time.Duration // longest wait for the gate; 0: DefaultCheckWait
	// Shared is a budget this hasher's checks also draw from (a pool's,
	// shared by its tenants); nil: none.
	Shared *SharedCheckMemory
}

// NewHasher returns a hasher with the default gate; cost 0 means
// bcrypt.DefaultCost.
func NewHasher(cost int) *Hasher { return NewHasherWith(HasherOptions{Cost: cost}) }

// NewHasherWith returns a hasher configured by o.
func NewHasherWith(o HasherOptions) *Hasher {
	if o.Cost == 0 {
		o.Cost = bcrypt.DefaultCost
	}
	g := newGate(o.CheckMemory, o.CheckWait)
	if o.Shared != nil {
		g.parent = o.Shared.g
	}
	return &Hasher{Cost: o.Cost, gate: g}
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

// Verify reports whether password matches hash: the tenant's bcrypt or an
// imported scheme (see hashes.go). An empty hash (no password set) or a
// hash outside the accepted bounds never matches, but still costs one
// bcrypt comparison, so that the response time does not tell whether an
// account exists. The check first waits for its memory in the gate; when
// the wait runs out (or ctx ends) it is ErrBusy and nothing was checked.
func (h *Hasher) Verify(ctx context.Context, hash, password string) (bool, error) {
	var p *parsedHash
	if hash != "" && len(password) <= MaxPasswordBytes {
		p, _ = parseHash(hash)
	}
	weight := int64(checkOverhead)
	if p != nil {
		weight = p.info().Memory
	}
	leave, err := h.gate.enter(ctx, weight)
	if err != nil {
		return false, err
	}
	defer leave()
	if p == nil {
		h.dummyOnce.Do(func() {
			h.dummy, _ = bcrypt.GenerateFromPassword([]byte("userve-dummy-password"), h.Cost)
		})
		_ = bcrypt.CompareHashAndPassword(h.dummy, []byte(password))
		return false, nil
	}
	return p.matches(password), nil
}
