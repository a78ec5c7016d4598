package main

import (
	"os"
	"path/filepath"
	"testing"
)

// Bad flags stop `userve operator` before it touches a cluster, with exit
// code 2.
func TestOperatorRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--default-mongo-uri-secret", "mongo/uri"},
		{"--watch-namespaces", "Not_A_Namespace"},
		{"--server-image", ""},
		{"--log-level", "loud"},
		{"--metrics-secure=false", "--metrics-cert-dir", "/certs"},
		{"--kube-api-qps", "0"},
		{"--no-such-flag"},
		{"extra-argument"},
	} {
		if code := runOperator(args); code != 2 {
			t.Errorf("userve operator %q exited %d, want 2", args, code)
		}
	}
}

func TestOperatorHelpExitsZero(t *testing.T) {
	if code := runOperator([]string{"--help"}); code != 0 {
		t.Errorf("--help exited %d", code)
	}
}

// --kubeconfig gets the same client-side rate limit as every other way to
// find the cluster: none by default (the API server's priority and
// fairness decides). Built by clientcmd alone it had client-go's 5
// requests per second, which capped an operator run with --kubeconfig at
// about one new tenant every three seconds.
func TestOperatorKubeconfigHasNoClientRateLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := operatorKubeConfig(path, -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.QPS != -1 {
		t.Errorf("QPS = %v with --kubeconfig, want -1 (no client-side limit)", cfg.QPS)
	}
	if cfg, _ = operatorKubeConfig(path, 50, 100); cfg.QPS != 50 || cfg.Burst != 100 {
		t.Errorf("--kube-api-qps 50 --kube-api-burst 100 gave %v/%d", cfg.QPS, cfg.Burst)
	}
}

// The operator's soft memory limit follows its container's limit.
func TestContainerMemoryLimit(t *testing.T) {
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(path string) ([]byte, error) {
			if v, ok := m[path]; ok {
				return []byte(v), nil
			}
			return nil, os.ErrNotExist
		}
	}
	for _, c := range []struct {
		files map[string]string
		want  int64
	}{
		{map[string]string{"/sys/fs/cgroup/memory.max": "268435456\n"}, 268435456},
		{map[string]string{"/sys/fs/cgroup/memory.max": "max\n"}, 0},
		{map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "536870912\n"}, 536870912},
		{map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0},
		{map[string]string{}, 0},
	} {
		if got := containerMemoryLimit(files(c.files)); got != c.want {
			t.Errorf("%v: %d, want %d", c.files, got, c.want)
		}
	}
}
