package base_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"userve.dev/userve/openapi"
	"userve.dev/userve/openapi/base"
)

// The documents under docs/openapi/ are what make generate writes now.
func TestCommittedDocumentsAreCurrent(t *testing.T) {
	docs, err := base.Documents()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range openapi.Dialects {
		path := filepath.Join("..", "..", "docs", "openapi", base.FileName(d))
		committed, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(committed, docs[d]) {
			t.Errorf("%s is stale: run make generate", path)
		}
	}
}

// Every route of the base tenant is described, once, under its own
// operationId (client generators name methods after them).
func TestOperationIDsAreUnique(t *testing.T) {
	docs, err := base.Documents()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for d, raw := range docs {
		var doc struct {
			Paths map[string]map[string]struct {
				OperationID string `json:"operationId"`
			} `json:"paths"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		n := 0
		for path, item := range doc.Paths {
			for method, op := range item {
				n++
				where := string(d) + " " + method + " " + path
				if op.OperationID == "" {
					t.Errorf("%s has no operationId", where)
				} else if prev, dup := seen[op.OperationID]; dup {
					t.Errorf("operationId %s on %s and %s", op.OperationID, prev, where)
				}
				seen[op.OperationID] = where
			}
		}
		// The base tenant has every route: 31 management (24 + the
		// lifecycle's 6 + the console's user overview), 34 end-user, 22 MinApp SDK routes, a CORS
		// preflight on each of their 19 paths and the SDK dialect's document.
		want := map[openapi.Dialect]int{openapi.Management: 31, openapi.EndUser: 34, openapi.HServe: 42}[d]
		if n != want {
			t.Errorf("%s document has %d operations, want %d", d, n, want)
		}
	}
}
