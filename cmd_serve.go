package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"userve.dev/userve/internal/servecmd"
)

// serveBinary is the lean server's file name, beside this binary in the
// image (/usr/local/bin) and in bin/ after make build.
const serveBinary = "userve-serve"

// runServe is `userve serve`: one tenant's server. When serveBinary sits
// beside this executable, the process becomes it (execve: same pid, flags,
// environment and signals), so a tenant pod carries none of the operator's
// libraries whatever its manifest says; without it (an image of an older
// release, `go build .`) this binary serves, with the same code.
func runServe(args []string) int {
	if lean := leanServer(); lean != "" {
		err := syscall.Exec(lean, append([]string{lean}, args...), os.Environ())
		fmt.Fprintf(os.Stderr, "userve serve: running %s: %v; serving from %s instead\n", lean, err, os.Args[0])
	}
	return servecmd.Main(args)
}

// leanServer is the path of serveBinary beside this executable, or "" when
// there is none to run.
func leanServer() string {
	self, err := os.Executable()
	if err != nil {
		return ""
	}
	lean := filepath.Join(filepath.Dir(self), serveBinary)
	if st, err := os.Stat(lean); err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return ""
	}
	return lean
}
