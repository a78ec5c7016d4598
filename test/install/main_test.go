// Package install tests how userve gets installed: the Helm chart
// (charts/userve), the kustomize configuration (config/), the samples and the
// Dockerfile. Rendered manifests are applied to a real kube-apiserver
// (envtest), so every object must be accepted by the real API.
package install

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"userve.dev/userve/test/kubefixture"
	"userve.dev/userve/test/mongofixture"
	"userve.dev/userve/test/testbin"
)

var env *kubefixture.Env

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

// runTests starts the control plane, runs the tests (with the MongoDB
// fixture, which stops its server afterwards) and cleans up.
func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "userve-install-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	e, err := kubefixture.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubefixture:", err)
		return 1
	}
	defer e.Stop()
	env = e
	return mongofixture.Run(m)
}

const (
	crdName      = "userservices.miniapp.userve.dev"
	poolCRDName  = "userservicepools.miniapp.userve.dev"
	defaultImage = "ghcr.io/userve/userve"
)

// repoPath is a path under the repository root.
func repoPath(t *testing.T, elem ...string) string {
	t.Helper()
	root, err := testbin.Root()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(append([]string{root}, elem...)...)
}

func chartDir(t *testing.T) string { return repoPath(t, "charts", "userve") }

// run runs bin/NAME with args and stdin; it returns stdout, and an error
// carrying stderr when the command fails.
func run(t *testing.T, name string, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	path, err := testbin.Path(name)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = repoPath(t)
	// Helm keeps its caches and repositories away from the user's home.
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+env.Kubeconfig,
	)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %v\nstderr:\n%s\nstdout:\n%s",
			name, strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.Bytes(), nil
}

func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := run(t, "helm", nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func kubectl(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	out, err := run(t, "kubectl", stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// applyServerSide applies manifests the way the README tells users to; any
// object the API server refuses fails the test.
func applyServerSide(t *testing.T, manifests []byte, extra ...string) {
	t.Helper()
	args := append([]string{"apply", "--server-side", "--field-manager=userve-install-test", "-f", "-"}, extra...)
	kubectl(t, manifests, args...)
}

// render is `helm template` of the chart; it fails the test when Helm refuses.
func render(t *testing.T, release, namespace string, args ...string) []byte {
	t.Helper()
	return helm(t, append([]string{"template", release, chartDir(t), "--namespace", namespace}, args...)...)
}

// decode splits a multi-document YAML stream into objects, strictly: a
// duplicated key (which kubectl and Helm silently resolve) fails the test.
func decode(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("read manifests: %v", err)
		}
		var m map[string]any
		if err := yaml.UnmarshalStrict(doc, &m); err != nil {
			t.Fatalf("decode manifest: %v\n%s", err, doc)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// ofKind returns the objects of one kind.
func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// one returns the only object of a kind, failing otherwise.
func one(t *testing.T, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	found := ofKind(objs, kind)
	if len(found) != 1 {
		t.Fatalf("want exactly one %s, got %d: %v", kind, len(found), names(found))
	}
	return found[0]
}

func names(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetNamespace()+"/"+o.GetName())
	}
	return out
}

// typed converts an object into its Go type, refusing unknown fields.
func typed[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	var v T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &v, true); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return &v
}

func deployment(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	return typed[appsv1.Deployment](t, one(t, objs, "Deployment"))
}

// createNamespace makes a namespace that enforces the restricted Pod
// Security Standard, so that pods created in it prove they meet it.
func createNamespace(t *testing.T, name string) {
	t.Helper()
	ns := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %s
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/enforce-version: latest
`, name)
	applyServerSide(t, []byte(ns))
}

func hasArg(args []string, want string) bool {
	for _, a := range args {
		if a == want {
			return true
		}
	}
	return false
}

func argWithPrefix(args []string, prefix string) (string, bool) {
	for _, a := range args {
		if strings.HasPrefix(a, prefix) {
			return strings.TrimPrefix(a, prefix), true
		}
	}
	return "", false
}
