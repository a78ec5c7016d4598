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

// Bounds on the cost parameters of imported hashes: a hash with absurd
// parameters would let one login burn a core for minutes or exhaust memory.
const (
	maxArgon2MemoryKiB  = 256 * 1024 // 256 MiB
	maxArgon2Time       = 16
	maxArgon2Threads    = 16
	maxPBKDF2Iterations = 5_000_000
	maxHashBytes        = 512
)

// ErrUnknownHash is an imported hash in no supported scheme.
var ErrUnknownHash = errors.New("password hash is in no supported format (bcrypt $2a$/$2b$/$2y$, argon2id PHC string, Django pbkdf2_sha256)")

// HashScheme names the scheme of a stored or imported hash and checks its
// shape and parameters.
func HashScheme(hash string) (string, error) {
	if len(hash) > maxHashBytes {
		return "", fmt.Errorf("password hash is longer than %d bytes", maxHashBytes)
	}
	switch {
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return "", fmt.Errorf("bcrypt hash is malformed: %v", err)
		}
		if len(hash) != 60 {
			return "", fmt.Errorf("bcrypt hash must be 60 characters, not %d", len(hash))
		}
		_ = cost
		return SchemeBcrypt, nil
	case strings.HasPrefix(hash, "$argon2id$"):
		if _, err := parseArgon2(hash); err != nil {
			return "", err
		}
		return SchemeArgon2, nil
	case strings.HasPrefix(hash, "pbkdf2_sha256$"):
		if _, err := parsePBKDF2(hash); err != nil {
			return "", err
		}
		return SchemePBKDF2, nil
	}
	return "", ErrUnknownHash
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
	case p.memory > maxArgon2MemoryKiB || p.time > maxArgon2Time || p.threads > maxArgon2Threads:
		return nil, fmt.Errorf("argon2id parameters m=%d,t=%d,p=%d exceed the accepted m<=%d,t<=%d,p<=%d",
			p.memory, p.time, p.threads, maxArgon2MemoryKiB, maxArgon2Time, maxArgon2Threads)
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
	if err != nil || n < 1 || n > maxPBKDF2Iterations {
		return nil, fmt.Errorf("pbkdf2_sha256 iterations %q must be 1 to %d", parts[1], maxPBKDF2Iterations)
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

// checkImported verifies password against an argon2id or pbkdf2_sha256
// hash in constant time; false for anything malformed.
func checkImported(hash, password string) bool {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		p, err := parseArgon2(hash)
		if err != nil {
			return false
		}
		got := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
		return subtle.ConstantTimeCompare(got, p.key) == 1
	case strings.HasPrefix(hash, "pbkdf2_sha256$"):
		p, err := parsePBKDF2(hash)
		if err != nil {
			return false
		}
		got := pbkdf2.Key([]byte(password), []byte(p.salt), p.iterations, sha256.Size, sha256.New)
		return subtle.ConstantTimeCompare(got, p.key) == 1
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
