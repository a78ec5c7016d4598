package main

import (
	"os/exec"
	"strings"
	"testing"
)

// notServing are the packages a tenant's server has no use for: the
// operator's Kubernetes client and controller machinery (with the type
// registration of every API group that client-go's init runs), the pool's
// watch of Secrets, the sandbox, and the API server libraries the operator
// once linked for its metrics authentication (docs/server.md, "Two
// binaries"). Each one linked here would run its init and map its pages in
// every tenant pod.
var notServing = []string{
	"k8s.io/client-go/",
	"sigs.k8s.io/controller-runtime/",
	"k8s.io/apiserver/",
	"k8s.io/apiextensions-apiserver/",
	"k8s.io/kube-openapi/pkg/validation/",
	"google.golang.org/grpc",
	"go.opentelemetry.io/",
	"github.com/evanphx/json-patch",
	"github.com/fsnotify/",
	"userve.dev/userve/controllers",
	"userve.dev/userve/pool",
	"userve.dev/userve/sandbox",
	"userve.dev/userve/test/",
	// TLS roots come from the image's bundle, read on the first TLS
	// connection, not parsed at every start (internal/servecmd).
	"golang.org/x/crypto/x509roots/",
}

// TestLinksOnlyWhatServingNeeds: bin/userve-serve, the binary tenant pods
// run, links none of notServing, and of the Kubernetes API types only
// core/v1, which the UserService type embeds (resources, pod template).
func TestLinksOnlyWhatServingNeeds(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := strings.Fields(string(out))
	if len(pkgs) < 100 {
		t.Fatalf("go list -deps listed %d packages: %q", len(pkgs), out)
	}
	for _, pkg := range pkgs {
		for _, bad := range notServing {
			if strings.HasPrefix(pkg, bad) {
				t.Errorf("userve-serve links %s (%s...)", pkg, bad)
			}
		}
		if strings.HasPrefix(pkg, "k8s.io/api/") && pkg != "k8s.io/api/core/v1" {
			t.Errorf("userve-serve links %s: of the Kubernetes API types, only core/v1 serves a tenant", pkg)
		}
	}
}
