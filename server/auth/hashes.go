package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/pbkdf2"
)

// Imported password hashes. A migration hands over hashes made by other
// systems: bcrypt from PHP/Laravel ($2y$) and most others ($2a$, $2b$),
// argon2id in the PHC string format, and Django's pbkdf2_sha256. They are
// stored as they come and checked in their own scheme; the first successful
// login replaces them with the tenant's bcrypt (Hasher.NeedsRehash).
// Anything else is refused on import: an unrecognised string could be a
// plaintext password, which must never be stored.

// Hash schemes.
const (
	SchemeBcrypt = "bcrypt"
	SchemeArgon2 = "argon2id"
	SchemePBKDF2 = "pbkdf2_sha256"
)

// Bounds on the cost parameters of imported hashes. One check must stay a
// small, bounded share of a tenant pod (256 MiB by default): argon2's memory
// is held for the whole check, and a burst of checks shares the pod through
// the check gate (gate.go), which admits at most its budget at once, so no
// single hash may need more than the smallest sensible budget. The time
// bounds keep one login under about a second of one core.
const (
	MaxBcryptCost       = 14        // about 1 s; PHP and Laravel default to 10
	MaxArgon2MemoryKiB  = 64 * 1024 // 64 MiB: PHP's default m=65536 fits
	MaxArgon2Time       = 10
	MaxArgon2Threads    = 16
	MaxPBKDF2Iterations = 1_000_000 // Django 5.2's default
	maxHashBytes        = 512
)

// OWASP's minimums (Password Storage Cheat Sheet). A hash below them is the
// user's real hash, so the import keeps it, counts it as weak, and the first
// login replaces it with the tenant's bcrypt like every imported hash.
const (
	minStrongBcryptCost = 10
	minStrongPBKDF2     = 600_000
)

// owaspArgon2 are OWASP's equivalent argon2id configurations (memory in
// KiB, passes); a hash at or above one of them in both is not weak.
var owaspArgon2 = [...]struct{ memory, time uint32 }{
	{47104, 1}, {19456, 2}, {12288, 3}, {9216, 4}, {7168, 5},
}

// ErrUnknownHash is an imported hash in no supported scheme.
var ErrUnknownHash = errors.New("password hash is in no supported format (bcrypt $2a$/$2b$/$2y$, argon2id PHC string, Django pbkdf2_sha256)")

// HashInfo describes a stored or imported hash.
type HashInfo struct {
	Scheme string
	// Weak: below OWASP's minimums (bcrypt cost < 10, argon2id under all of
	// OWASP's configurations, pbkdf2_sha256 < 600,000 iterations).
	Weak bool
	// Memory is what one check of it holds, in bytes: the check gate's
	// weight.
	Memory int64
}

// checkOverhead is the memory of a check besides argon2's blocks: bcrypt's
// 4 KiB state, pbkdf2's buffers, the goroutine. Rounded up generously.
const checkOverhead = 64 << 10

// InspectHash names the scheme of a stored or imported hash, checks its
// shape and its parameters against the bounds above, and tells whether it
// is weak. An error is a precise reason, fit for an import report.
func InspectHash(hash string) (HashInfo, error) {
	p, err := parseHash(hash)
	if err != nil {
		return HashInfo{}, err
	}
	return p.info(), nil
}

// HashScheme is InspectHash's scheme.
func HashScheme(hash string) (string, error) {
	info, err := InspectHash(hash)
	return info.Scheme, err
}

// parsedHash is a hash read once: its scheme and the parameters its check
// needs.
type parsedHash struct {
	raw        string
	scheme     string
	bcryptCost int
	argon2     *argon2Params
	pbkdf2     *pbkdf2Params
}

func (p *parsedHash) info() HashInfo {
	info := HashInfo{Scheme: p.scheme, Memory: checkOverhead}
	switch p.scheme {
	case SchemeBcrypt:
		info.Weak = p.bcryptCost < minStrongBcryptCost
	case SchemeArgon2:
		info.Memory += int64(p.argon2.memory) << 10
		info.Weak = true
		for _, c := range owaspArgon2 {
			if p.argon2.memory >= c.memory && p.argon2.time >= c.time {
				info.Weak = false
			}
		}
	case SchemePBKDF2:
		info.Weak = p.pbkdf2.iterations < minStrongPBKDF2
	}
	return info
}

func parseHash(hash string) (*parsedHash, error) {
	if len(hash) > maxHashBytes {
		return nil, fmt.Errorf("password hash is longer than %d bytes", maxHashBytes)
	}
	switch {
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, fmt.Errorf("bcrypt hash is malformed: %v", err)
		}
		if len(hash) != 60 {
			return nil, fmt.Errorf("bcrypt hash must be 60 characters, not %d", len(hash))
		}
		if cost > MaxBcryptCost {
			return nil, fmt.Errorf("bcrypt cost %d exceeds the accepted %d", cost, MaxBcryptCost)
		}
		return &parsedHash{raw: hash, scheme: SchemeBcrypt, bcryptCost: cost}, nil
	case strings.HasPrefix(hash, "$argon2id$"):
		p, err := parseArgon2(hash)
		if err != nil {
			return nil, err
		}
		return &parsedHash{scheme: SchemeArgon2, argon2: p}, nil
	case strings.HasPrefix(hash, "pbkdf2_sha256$"):
		p, err := parsePBKDF2(hash)
		if err != nil {
			return nil, err
		}
		return &parsedHash{scheme: SchemePBKDF2, pbkdf2: p}, nil
	}
	return nil, ErrUnknownHash
}

type argon2Params struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

// parseArgon2 reads "$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>" (salt
// and hash in unpadded standard base64, as the reference implementation
// writes them).
func parseArgon2(hash string) (*argon2Params, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return nil, errors.New("argon2id hash must look like $argon2id$v=19$m=...,t=...,p=...$salt$hash")
	}
	if parts[2] != "v=19" {
		return nil, fmt.Errorf("argon2id version %q is not supported (only v=19)", parts[2])
	}
	var p argon2Params
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil || n == 0 {
			return nil, fmt.Errorf("argon2id parameter %q is malformed", kv)
		}
		switch k {
		case "m":
			p.memory = uint32(n)
		case "t":
			p.time = uint32(n)
		case "p":
			if n > 255 {
				return nil, fmt.Errorf("argon2id parallelism %d is out of range", n)
			}
			p.threads = uint8(n)
		default:
			return nil, fmt.Errorf("argon2id parameter %q is unknown", k)
		}
	}
	switch {
	case p.memory == 0 || p.time == 0 || p.threads == 0:
		return nil, errors.New("argon2id hash needs m, t and p")
	case p.memory > MaxArgon2MemoryKiB || p.time > MaxArgon2Time || p.threads > MaxArgon2Threads:
		return nil, fmt.Errorf("argon2id parameters m=%d,t=%d,p=%d exceed the accepted m<=%d (64 MiB),t<=%d,p<=%d",
			p.memory, p.time, p.threads, MaxArgon2MemoryKiB, MaxArgon2Time, MaxArgon2Threads)
	case p.memory < 8*uint32(p.threads):
		return nil, errors.New("argon2id memory must be at least 8 KiB per thread")
	}
	var err error
	if p.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(p.salt) < 8 {
		return nil, errors.New("argon2id salt must be at least 8 bytes of unpadded base64")
	}
	if p.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > 128 {
		return nil, errors.New("argon2id hash must be 16 to 128 bytes of unpadded base64")
	}
	return &p, nil
}

type pbkdf2Params struct {
	iterations int
	salt       string
	key        []byte
}

// parsePBKDF2 reads Django's "pbkdf2_sha256$<iterations>$<salt>$<base64>".
func parsePBKDF2(hash string) (*pbkdf2Params, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2_sha256" {
		return nil, errors.New("pbkdf2_sha256 hash must look like pbkdf2_sha256$iterations$salt$hash")
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil || n < 1 || n > MaxPBKDF2Iterations {
		return nil, fmt.Errorf("pbkdf2_sha256 iterations %q must be 1 to %d", parts[1], MaxPBKDF2Iterations)
	}
	if parts[2] == "" {
		return nil, errors.New("pbkdf2_sha256 salt is empty")
	}
	key, err := base64.StdEncoding.DecodeString(parts[3])
	if err != nil || len(key) != sha256.Size {
		return nil, errors.New("pbkdf2_sha256 hash must be 32 bytes of padded base64")
	}
	return &pbkdf2Params{iterations: n, salt: parts[2], key: key}, nil
}

// matches verifies password against the parsed hash in constant time.
func (p *parsedHash) matches(password string) bool {
	switch p.scheme {
	case SchemeBcrypt:
		return bcrypt.CompareHashAndPassword([]byte(p.raw), []byte(password)) == nil
	case SchemeArgon2:
		a := p.argon2
		got := argon2.IDKey([]byte(password), a.salt, a.time, a.memory, a.threads, uint32(len(a.key)))
		return subtle.ConstantTimeCompare(got, a.key) == 1
	case SchemePBKDF2:
		k := p.pbkdf2
		got := pbkdf2.Key([]byte(password), []byte(k.salt), k.iterations, sha256.Size, sha256.New)
		return subtle.ConstantTimeCompare(got, k.key) == 1
	}
	return false
}

// NeedsRehash reports a stored hash that is not the tenant's bcrypt: an
// imported scheme, PHP's $2y$/$2b$ prefix or another cost. The login that
// has just checked the password replaces it.
func (h *Hasher) NeedsRehash(hash string) bool {
	if !strings.HasPrefix(hash, "$2a$") {
		return hash != ""
	}
	cost, err := bcrypt.Cost([]byte(hash))
	return err != nil || cost != h.Cost
}
