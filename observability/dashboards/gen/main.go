// Command gen writes the dashboards of package dashboards as JSON into the
// chart (charts/userve/files/dashboards); `make generate` runs it from the
// repository root.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"userve.dev/userve/observability/dashboards"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dashboards:", err)
		os.Exit(1)
	}
}

func run() error {
	files, err := dashboards.Files()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dashboards.Dir, 0o755); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(dashboards.Dir, "*.json"))
	for _, path := range old {
		if _, keep := files[filepath.Base(path)]; !keep {
			if err := os.Remove(path); err != nil {
				return err
			}
		}
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dashboards.Dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
