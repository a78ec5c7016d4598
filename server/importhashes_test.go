package server_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/pbkdf2"
)

// Imported password hashes (issue 21): parameters that would exhaust a pod
// are the record's error, naming the parameter; hashes below OWASP's
// minimums go in and are counted in weak_hashes (also by a dry run), and
// a skipped record counts nothing. Before, bcrypt cost 15 and argon2id
// above 64 MiB went in, and the answer had no weak_hashes.
func TestImportBoundsAndCountsWeakHashes(t *testing.T) {
	e := newEnv(t)
	bcrypt4, err := bcrypt.GenerateFromPassword([]byte("secret123"), 4)
	if err != nil {
		t.Fatal(err)
	}
	argon := func(m, passes uint32) string {
		salt := []byte("0123456789abcdef")
		key := argon2.IDKey([]byte("secret123"), salt, passes, m, 1, 32)
		return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=1$%s$%s", m, passes,
			base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
	}
	django := func(n int) string {
		key := pbkdf2.Key([]byte("secret123"), []byte("seasalt"), n, sha256.Size, sha256.New)
		return fmt.Sprintf("pbkdf2_sha256$%d$seasalt$%s", n, base64.StdEncoding.EncodeToString(key))
	}
	hashes := []string{
		string(bcrypt4),                // weak
		django(260_000),                // weak (Django 3.2)
		argon(1024, 1),                 // weak
		argon(19456, 2),                // OWASP's minimum: not weak
		"$2y$15" + string(bcrypt4)[6:], // cost 15: refused
		"$argon2id$v=19$m=65537,t=4,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", // 64 MiB + 1 KiB: refused
	}
	var lines []string
	for i, h := range hashes {
		rec, _ := json.Marshal(map[string]any{"id": 700 + i, "name": fmt.Sprintf("hashed%d", i), "password": h})
		lines = append(lines, string(rec))
	}
	body := strings.Join(lines, "\n")

	for _, query := range []string{"format=thinksns&dry_run=1", "format=thinksns"} {
		r := e.do("POST", "/userve/v1/import/users/?"+query, body).want(t, 200)
		var a struct {
			Created, Errors int
			WeakHashes      *int `json:"weak_hashes"`
			Results         []struct{ Status, Error string }
		}
		if err := json.Unmarshal(r.raw, &a); err != nil {
			t.Fatal(err)
		}
		if a.Created != 4 || a.Errors != 2 || a.WeakHashes == nil || *a.WeakHashes != 3 {
			t.Fatalf("%s: created %d, errors %d, weak_hashes %v; want 4, 2, 3: %s", query, a.Created, a.Errors, a.WeakHashes, r.raw)
		}
		if !strings.Contains(a.Results[4].Error, "bcrypt cost 15 exceeds the accepted 14") ||
			!strings.Contains(a.Results[5].Error, "m=65537") {
			t.Errorf("%s: errors %q and %q do not name the parameter", query, a.Results[4].Error, a.Results[5].Error)
		}
	}
	// The same batch again is skipped: nothing written, nothing counted.
	r := e.do("POST", "/userve/v1/import/users/?format=thinksns", body).want(t, 200)
	if !strings.Contains(string(r.raw), `"skipped":4`) || !strings.Contains(string(r.raw), `"weak_hashes":0`) {
		t.Errorf("replayed batch: %s", r.raw)
	}
}
