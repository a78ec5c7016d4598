package install

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The image's binary must hold no test machinery. envtest once came in
// through the sandbox and made the operator crash-loop on every real
// cluster: its packages create ~/.cache/kubebuilder-envtest or
// /tmp/kubebuilder-envtest at init, which a read-only pod cannot.
//
// k8s.io/client-go/testing and .../api/meta/testrestmapper stay: every
// typed clientset imports them through k8s.io/client-go/gentype (for its
// fakes), they have no side effects at init, and no client can do without.
func TestProductionBinaryHasNoTestPackages(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Dir = repoPath(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 100 {
		t.Fatalf("go list -deps printed only %d packages: %q", len(deps), deps)
	}
	for _, dep := range deps {
		switch {
		case dep == "testing", strings.HasPrefix(dep, "testing/"),
			dep == "net/http/httptest",
			strings.Contains(dep, "/envtest"),
			strings.HasPrefix(dep, "sigs.k8s.io/controller-runtime/pkg/internal/testing"),
			strings.HasPrefix(dep, "userve.dev/userve/test/"),
			strings.HasPrefix(dep, "userve.dev/userve/sandbox"),
			strings.HasPrefix(dep, "userve.dev/userve/bench"),
			// The fakes (server/wechat/wechattest, server/verify/verifytest, ...).
			strings.HasPrefix(dep, "userve.dev/userve/") && strings.HasSuffix(dep, "test"):
			t.Errorf("the production binary links %s (test or sandbox machinery; the sandbox is cmd/userve-dev)", dep)
		}
	}
}

// `userve operator` and `userve serve` start as the shipped manifests run
// them: read-only root, a read-only /tmp, no usable HOME, no environment.
// Built by `make build`, run in a mount namespace of its own (root only:
// unshare -m needs CAP_SYS_ADMIN), exactly like
//
//	unshare -m sh -c 'mount -t tmpfs -o ro tmpfs /tmp && HOME=/proc ./bin/userve operator --help'
//
// plus a read-only bind of / (in that namespace only).
func TestProductionBinaryStartsReadOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: unshare -m (a private mount namespace with a read-only / and /tmp) needs CAP_SYS_ADMIN")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "make", "--no-print-directory", "build", "BIN="+dir)
	build.Dir = repoPath(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	bin := filepath.Join(dir, "userve")
	badConfig := filepath.Join(dir, "userservice.yaml")
	if err := os.WriteFile(badConfig, []byte("apiVersion: v1\nkind: ConfigMap\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// runBinaryReadOnly runs bin with args; it reaches the binary and any
	// file as /proc/self/fd/3 and /proc/self/fd/4, opened before /tmp (where
	// t.TempDir is) is covered. runReadOnly runs bin/userve.
	runBinaryReadOnly := func(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
		t.Helper()
		exe, err := os.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer exe.Close()
		cfg, err := os.Open(badConfig)
		if err != nil {
			t.Fatal(err)
		}
		defer cfg.Close()
		script := `set -e
mount -o remount,bind,ro /
mount -t tmpfs -o ro tmpfs /tmp
cd /
# the proof that the sandbox is what we think it is
if touch /tmp/probe 2>/dev/null || touch /probe 2>/dev/null; then echo "writable root or /tmp" >&2; exit 99; fi
exec env -i HOME=/proc /proc/self/fd/3 "$@"`
		cmd := exec.CommandContext(ctx, unshare, append([]string{"-m", "sh", "-c", script, "sh"}, args...)...)
		cmd.ExtraFiles = []*os.File{exe, cfg}
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err = cmd.Run()
		if x, ok := err.(*exec.ExitError); ok {
			code = x.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, e.String())
		}
		if code == 99 || code == 32 {
			t.Fatalf("could not set up the read-only mount namespace (exit %d): %s", code, e.String())
		}
		return o.String(), e.String(), code
	}
	runReadOnly := func(t *testing.T, args ...string) (stdout, stderr string, code int) {
		t.Helper()
		return runBinaryReadOnly(t, bin, args...)
	}

	t.Run("operator --help", func(t *testing.T) {
		stdout, stderr, code := runReadOnly(t, "operator", "--help")
		if strings.Contains(stdout+stderr, "panic") || code != 0 {
			t.Fatalf("exit %d, want 0:\n%s%s", code, stdout, stderr)
		}
		if !strings.Contains(stdout+stderr, "-watch-namespaces") {
			t.Errorf("no flag list in:\n%s%s", stdout, stderr)
		}
	})
	t.Run("serve with a bad config", func(t *testing.T) {
		stdout, stderr, code := runReadOnly(t, "serve", "--config", "/proc/self/fd/4")
		if strings.Contains(stdout+stderr, "panic") || code != 1 {
			t.Fatalf("exit %d, want 1:\n%s%s", code, stdout, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "userve serve: ") || !strings.Contains(lines[0], `"ConfigMap"`) {
			t.Errorf("want one line naming the wrong kind, got:\n%s", stderr)
		}
	})
	// What tenant pods run (`userve serve` becomes it in the image).
	t.Run("userve-serve with a bad config", func(t *testing.T) {
		stdout, stderr, code := runBinaryReadOnly(t, filepath.Join(dir, "userve-serve"), "--config", "/proc/self/fd/4")
		if strings.Contains(stdout+stderr, "panic") || code != 1 {
			t.Fatalf("exit %d, want 1:\n%s%s", code, stdout, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "userve serve: ") || !strings.Contains(lines[0], `"ConfigMap"`) {
			t.Errorf("want one line naming the wrong kind, got:\n%s", stderr)
		}
	})
	t.Run("dev points to the sandbox binary", func(t *testing.T) {
		_, stderr, code := runReadOnly(t, "dev")
		if code != 2 || !strings.Contains(stderr, "make dev") {
			t.Errorf("exit %d, want 2 and a pointer to make dev:\n%s", code, stderr)
		}
	})
}
