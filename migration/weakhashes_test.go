package migration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// userve import adds up the tenant's weak_hashes over its batches and says
// so in its summary (issue 21); a bcrypt cost above 14 is a failed record.
func TestImportSummaryCountsWeakHashes(t *testing.T) {
	tn := newTenant(t)
	weak, err := bcrypt.GenerateFromPassword([]byte("secret123"), 4)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := 1; i <= 25; i++ {
		hash := string(weak)
		if i == 25 {
			hash = "$2y$15" + hash[6:]
		}
		lines = append(lines, fmt.Sprintf(`{"id": %d, "name": "weak_%d", "password": %q}`, i, i, hash))
	}
	path := filepath.Join(t.TempDir(), "users.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sum, err := Import(context.Background(), ImportOptions{Client: tn.client(), File: path, Format: "thinksns", Policy: "skip", BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Created != 24 || sum.Errors != 1 || sum.WeakHashes != 24 {
		t.Fatalf("summary %+v: want 24 created, 1 error, 24 weak hashes", sum)
	}
	if s := sum.String(); !strings.Contains(s, "24 weak password hashes kept (replaced at each user's first login)") {
		t.Errorf("summary line %q does not tell the weak hashes", s)
	}
}
