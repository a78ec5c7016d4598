package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/pbkdf2"
)

type phpHashes struct {
	Password string `json:"password"`
	Bcrypt2y string `json:"bcrypt_2y"`
	Argon2id string `json:"argon2id"`
}

func loadPHP(t *testing.T) phpHashes {
	t.Helper()
	b, err := os.ReadFile("testdata/php_password_hash.json")
	if err != nil {
		t.Fatal(err)
	}
	var h phpHashes
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

const djangoHash = "pbkdf2_sha256$260000$seasalt2024$3oSeptWmRE5EcGTmIXAIoSRL4SSAKNbtCnU8Z/V1Ecc="

func TestImportedHashesCheckAndNeedRehash(t *testing.T) {
	php := loadPHP(t)
	h := NewHasher(4)
	own, err := h.Hash("secret123")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, hash, scheme string
		rehash             bool
	}{
		{"php $2y$", php.Bcrypt2y, SchemeBcrypt, true},
		{"$2b$", "$2b$" + php.Bcrypt2y[4:], SchemeBcrypt, true},
		{"php argon2id", php.Argon2id, SchemeArgon2, true},
		{"django pbkdf2_sha256", djangoHash, SchemePBKDF2, true},
		{"tenant bcrypt", own, SchemeBcrypt, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scheme, err := HashScheme(tc.hash)
			if err != nil || scheme != tc.scheme {
				t.Fatalf("HashScheme = %q, %v; want %q", scheme, err, tc.scheme)
			}
			if !check(h, tc.hash, "secret123") {
				t.Error("the right password does not match")
			}
			if check(h, tc.hash, "secret124") {
				t.Error("a wrong password matches")
			}
			if got := h.NeedsRehash(tc.hash); got != tc.rehash {
				t.Errorf("NeedsRehash = %v, want %v", got, tc.rehash)
			}
		})
	}
}

func TestHashSchemeRefusesUnknownAndAbsurd(t *testing.T) {
	for _, tc := range []struct{ hash, want string }{
		{"secret123", "no supported format"},
		{"", "no supported format"},
		{"md5$abc$def", "no supported format"},
		{"$2x$10$Y6uK8I953KbZD5w4RcuYNONcd/3oF8hENZb62HtKU08bXbCnhsUTe", "no supported format"},
		{"$2y$10$short", "malformed"},
		{"$argon2i$v=19$m=65536,t=4,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "no supported format"},
		{"$argon2id$v=19$m=4194304,t=4,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "exceed"},
		// The pod-safety bounds: 64 MiB, t <= 10, p <= 16, bcrypt <= 14,
		// pbkdf2 <= 1,000,000 (issue 21).
		{"$argon2id$v=19$m=65537,t=4,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "exceed the accepted m<=65536"},
		{"$argon2id$v=19$m=262144,t=4,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "exceed"},
		{"$argon2id$v=19$m=65536,t=11,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "t<=10"},
		{"$argon2id$v=19$m=65536,t=4,p=17$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "p<=16"},
		{"$2y$15$Y6uK8I953KbZD5w4RcuYNONcd/3oF8hENZb62HtKU08bXbCnhsUTe", "bcrypt cost 15 exceeds the accepted 14"},
		{"$2a$31$Y6uK8I953KbZD5w4RcuYNONcd/3oF8hENZb62HtKU08bXbCnhsUTe", "bcrypt cost 31"},
		{"pbkdf2_sha256$1000001$salt$3oSeptWmRE5EcGTmIXAIoSRL4SSAKNbtCnU8Z/V1Ecc=", "must be 1 to 1000000"},
		{"$argon2id$v=16$m=65536,t=4,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "version"},
		{"$argon2id$v=19$m=65536,t=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "needs m, t and p"},
		{"pbkdf2_sha256$99999999$salt$3oSeptWmRE5EcGTmIXAIoSRL4SSAKNbtCnU8Z/V1Ecc=", "iterations"},
		{"pbkdf2_sha256$1000$salt$short", "32 bytes"},
	} {
		_, err := HashScheme(tc.hash)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("HashScheme(%q) = %v, want an error containing %q", tc.hash, err, tc.want)
		}
	}
}

// Whatever InspectHash accepts is within the bounds that keep one check
// small (its cost parameters, and the memory the gate will weigh), and
// checking it does not panic.
func FuzzHashScheme(f *testing.F) {
	f.Add(djangoHash)
	f.Add("$argon2id$v=19$m=65536,t=4,p=1$R1FsODdBUHJ1c0JNems1Uw$I6XAkxapcOSykXx85VLPrEq9323PVma+JLbjnm+hBl8")
	f.Add("$2y$10$Y6uK8I953KbZD5w4RcuYNONcd/3oF8hENZb62HtKU08bXbCnhsUTe")
	f.Add("$2y$15$Y6uK8I953KbZD5w4RcuYNONcd/3oF8hENZb62HtKU08bXbCnhsUTe")
	f.Add("$argon2id$v=19$m=65537,t=10,p=16$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("pbkdf2_sha256$1000000$s$3oSeptWmRE5EcGTmIXAIoSRL4SSAKNbtCnU8Z/V1Ecc=")
	h := NewHasher(4)
	f.Fuzz(func(t *testing.T, hash string) {
		info, err := InspectHash(hash)
		if err != nil {
			return
		}
		p, err := parseHash(hash)
		if err != nil || p.scheme != info.Scheme {
			t.Fatalf("InspectHash accepted %q as %s, parseHash: %v", hash, info.Scheme, err)
		}
		switch info.Scheme {
		case SchemeBcrypt:
			if p.bcryptCost > MaxBcryptCost || p.bcryptCost < bcrypt.MinCost {
				t.Fatalf("bcrypt cost %d accepted", p.bcryptCost)
			}
			return // a cost-14 check takes a second: not in the fuzz loop
		case SchemeArgon2:
			a := p.argon2
			if a.memory > MaxArgon2MemoryKiB || a.time > MaxArgon2Time || a.threads > MaxArgon2Threads ||
				a.memory == 0 || a.time == 0 || a.threads == 0 {
				t.Fatalf("argon2id m=%d,t=%d,p=%d accepted", a.memory, a.time, a.threads)
			}
		case SchemePBKDF2:
			if p.pbkdf2.iterations > MaxPBKDF2Iterations || p.pbkdf2.iterations < 1 {
				t.Fatalf("pbkdf2 iterations %d accepted", p.pbkdf2.iterations)
			}
		default:
			t.Fatalf("unknown scheme %q accepted", info.Scheme)
		}
		if info.Memory < checkOverhead || info.Memory > checkOverhead+MaxArgon2MemoryKiB<<10 || info.Memory > DefaultCheckMemory+checkOverhead {
			t.Fatalf("check weight %d out of bounds", info.Memory)
		}
		_, _ = h.Verify(context.Background(), hash, "x") // must not panic on anything InspectHash accepts
	})
}

// Hashes below OWASP's minimums are accepted, counted weak, and replaced
// at the first login like every imported hash; those at or above are not
// weak.
func TestWeakHashes(t *testing.T) {
	php := loadPHP(t)
	bcrypt4, err := bcrypt.GenerateFromPassword([]byte("secret123"), 4)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHasher(10)
	for _, tc := range []struct {
		name, hash string
		weak       bool
	}{
		{"php $2y$ cost 10", php.Bcrypt2y, false},
		{"bcrypt cost 4", string(bcrypt4), true},
		{"php argon2id default m=65536,t=4", php.Argon2id, false},
		{"argon2id OWASP m=19456,t=2", argon2Hash("secret123", 19456, 2, 1), false},
		{"argon2id OWASP m=7168,t=5", argon2Hash("secret123", 7168, 5, 1), false},
		{"argon2id m=19456,t=1", argon2Hash("secret123", 19456, 1, 1), true},
		{"argon2id m=1024,t=10", argon2Hash("secret123", 1024, 10, 2), true},
		{"django 260000", djangoHash, true},
		{"pbkdf2 1 iteration", pbkdf2Hash("secret123", 1), true},
		{"pbkdf2 600000", pbkdf2Hash("secret123", 600_000), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := InspectHash(tc.hash)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if info.Weak != tc.weak {
				t.Errorf("Weak = %v, want %v", info.Weak, tc.weak)
			}
			if ok, err := h.Verify(context.Background(), tc.hash, "secret123"); !ok || err != nil {
				t.Errorf("the right password: %v, %v", ok, err)
			}
			if tc.weak && !h.NeedsRehash(tc.hash) {
				t.Error("a weak hash is not rehashed at login")
			}
		})
	}
}

func argon2Hash(password string, m, t uint32, p uint8) string {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(password), salt, t, m, p, 32)
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", m, t, p,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

func pbkdf2Hash(password string, n int) string {
	key := pbkdf2.Key([]byte(password), []byte("seasalt"), n, sha256.Size, sha256.New)
	return fmt.Sprintf("pbkdf2_sha256$%d$seasalt$%s", n, base64.StdEncoding.EncodeToString(key))
}
