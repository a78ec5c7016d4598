package auth

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
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
			if !h.Check(tc.hash, "secret123") {
				t.Error("the right password does not match")
			}
			if h.Check(tc.hash, "secret124") {
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

func FuzzHashScheme(f *testing.F) {
	f.Add(djangoHash)
	f.Add("$argon2id$v=19$m=65536,t=4,p=1$R1FsODdBUHJ1c0JNems1Uw$I6XAkxapcOSykXx85VLPrEq9323PVma+JLbjnm+hBl8")
	f.Add("$2y$10$Y6uK8I953KbZD5w4RcuYNONcd/3oF8hENZb62HtKU08bXbCnhsUTe")
	h := NewHasher(4)
	f.Fuzz(func(t *testing.T, hash string) {
		if _, err := HashScheme(hash); err != nil {
			return
		}
		if strings.HasPrefix(hash, "$argon2id$") || strings.HasPrefix(hash, "pbkdf2_sha256$") {
			_ = h.Check(hash, "x") // must not panic on anything HashScheme accepts
		}
	})
}
