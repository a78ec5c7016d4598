package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Bad flags stop `userve pool` before it touches a cluster: exit code 2 and
// one line naming the problem.
func TestPoolRejectsBadFlags(t *testing.T) {
	env := envOf(map[string]string{"POD_NAMESPACE": "userve-system"})
	for _, c := range []struct {
		args []string
		env  func(string) string
		want string
	}{
		{nil, env, "--pool is required"},
		{[]string{"--pool", "shared"}, envOf(nil), "--namespace is required (or $POD_NAMESPACE"},
		{[]string{"--pool", "shared", "--idle-timeout", "0s"}, env, "--idle-timeout 0s: want a positive duration"},
		{[]string{"--pool", "shared", "--tenant-max-inflight", "0"}, env, "--tenant-max-inflight 0: want at least 1"},
		{[]string{"--pool", "shared", "--metrics-top-tenants", "-1"}, env, "--metrics-top-tenants -1: want 0 or more"},
		{[]string{"--pool", "shared", "--listen", ":8080", "--metrics-listen", ":8080"}, env, `--metrics-listen ":8080" must differ from --listen`},
		{[]string{"--pool", "shared", "--log-level", "loud"}, env, `--log-level "loud"`},
		{[]string{"--pool", "shared", "--password-check-memory", "1Ki"}, env, `--password-check-memory "1Ki": want a size of at least 1Mi`},
		{[]string{"--pool", "shared", "extra"}, env, `unexpected argument "extra"`},
	} {
		var stdout, stderr bytes.Buffer
		code := servePool(context.Background(), c.args, c.env, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), c.want) || strings.Count(stderr.String(), "\n") != 1 || stdout.Len() != 0 {
			t.Errorf("userve pool %q: exit %d, stderr %q; want 2 and one line with %q", c.args, code, stderr.String(), c.want)
		}
	}
	var stderr bytes.Buffer
	if code := servePool(context.Background(), []string{"--no-such-flag"}, env, &bytes.Buffer{}, &stderr); code != 2 {
		t.Errorf("an unknown flag exited %d, want 2", code)
	}
	if code := servePool(context.Background(), []string{"--help"}, env, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Errorf("--help exited %d, want 0", code)
	}
}

// A kubeconfig that cannot be read is exit 1, one line.
func TestPoolBadKubeconfigIsOneLine(t *testing.T) {
	var stderr bytes.Buffer
	code := servePool(context.Background(), []string{"--pool", "shared", "--namespace", "ns", "--kubeconfig", "/nonexistent/kubeconfig"},
		envOf(nil), &bytes.Buffer{}, &stderr)
	if code != 1 || !strings.HasPrefix(stderr.String(), "userve pool: kubeconfig: ") || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("exit %d, stderr %q; want 1 and one kubeconfig line", code, stderr.String())
	}
}
