package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestTheBinaryLinksNoAPIServerLibrary: pool pods run this binary (and
// tenant pods did, before cmd/userve-serve, whose own test keeps more out),
// and every package linked into it runs its init at start, whatever the
// subcommand. k8s.io/apiserver (with grpc and OpenTelemetry, which it
// brings) cost each process 3.7 MiB of idle RSS for the operator's metrics
// authentication alone (docs/pools.md).
func TestTheBinaryLinksNoAPIServerLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, heavy := range []string{"k8s.io/apiserver/", "google.golang.org/grpc", "go.opentelemetry.io/"} {
			if strings.HasPrefix(pkg, heavy) {
				t.Errorf("the binary links %s", pkg)
			}
		}
	}
}
