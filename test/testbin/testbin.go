// Package testbin finds the repository root and the tools `make tools` builds
// into bin/, for tests that run real servers.
package testbin

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

var root = sync.OnceValues(func() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && isProductModule(data) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no userve go.mod above the working directory")
		}
		dir = parent
	}
})

func isProductModule(gomod []byte) bool {
	const want = "module userve.dev/userve\n"
	return len(gomod) >= len(want) && string(gomod[:len(want)]) == want
}

// Root is the repository root.
func Root() (string, error) { return root() }

// Dir is the repository's bin/ folder.
func Dir() (string, error) {
	r, err := root()
	if err != nil {
		return "", err
	}
	return filepath.Join(r, "bin"), nil
}

// Path is bin/NAME, or an error telling how to build it.
func Path(name string) (string, error) {
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s is missing: run `make tools` first", p)
	}
	return p, nil
}
