// Command gen writes the base OpenAPI documents (a tenant with every route
// on and no custom fields) to docs/openapi/, for make generate. A test in
// package openapi/gen fails when the committed files are stale.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"userve.dev/userve/openapi"
	"userve.dev/userve/openapi/base"
)

func main() {
	dir := "docs/openapi"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	docs, err := base.Documents()
	if err != nil {
		fmt.Fprintln(os.Stderr, "openapi gen:", err)
		os.Exit(1)
	}
	for _, d := range openapi.Dialects {
		path := filepath.Join(dir, base.FileName(d))
		if err := os.WriteFile(path, docs[d], 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "openapi gen:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", path)
	}
}
