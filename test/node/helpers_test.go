package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/test/testbin"
)

// node is the cluster hack/node/up.sh brought up; the test runs inside its
// network namespace, so ClusterIPs and the node IP are reachable directly.
type node struct {
	kubeconfig string
	image      string // the userve image, imported on the node
	busybox    string // the image of the chart's helm test pod
	logs       string // the node's component logs, shown on failure
	// adminPassword is the FerretDB administrator's, when it has authentication.
	adminPassword string
	root          string
	c             client.Client
}

func connect(t *testing.T) *node {
	kubeconfig := os.Getenv("USERVE_NODE_KUBECONFIG")
	if kubeconfig == "" {
		t.Skip("no test node: run `make test-node` (as root), which brings one up and runs this")
	}
	root, err := testbin.Root()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &node{
		kubeconfig: kubeconfig, image: os.Getenv("USERVE_NODE_IMAGE"), busybox: os.Getenv("USERVE_NODE_BUSYBOX_IMAGE"),
		logs: os.Getenv("USERVE_NODE_LOGS"), root: root, c: c, adminPassword: os.Getenv("USERVE_NODE_MONGO_ADMIN_PASSWORD"),
	}
}

// tool runs bin/NAME against the node, failing the test with its output.
func (n *node) tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := n.try(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// toolStdin is tool with stdin.
func (n *node) toolStdin(t *testing.T, stdin, name string, args ...string) string {
	t.Helper()
	out, err := n.run(stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func (n *node) try(name string, args ...string) (string, error) { return n.run("", name, args...) }

func (n *node) run(stdin, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(n.root, "bin", name), args...)
	cmd.Dir = n.root
	cmd.Env = append(os.Environ(), "KUBECONFIG="+n.kubeconfig, "HOME="+filepath.Join(os.TempDir(), "userve-node-home"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Stdin = strings.NewReader(stdin)
	err := cmd.Run()
	return out.String(), err
}

// eventually polls cond every 250ms until it returns "" (done), failing with
// its last answer after limit.
func eventually(t *testing.T, what string, limit time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	last := ""
	for {
		if last = cond(); last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, limit, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// podsOf lists the pods of a tenant (its server's instance label).
func (n *node) podsOf(t *testing.T, ns, tenant string) []corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := n.c.List(context.Background(), &pods, client.InNamespace(ns),
		client.MatchingLabels{"app.kubernetes.io/instance": tenant, "app.kubernetes.io/name": "userve-server"}); err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// readyPods answers "" when exactly want pods of the tenant are Ready and
// none is on its way out, else what it sees.
func (n *node) readyPods(t *testing.T, ns, tenant string, want int) string {
	pods := n.podsOf(t, ns, tenant)
	ready := 0
	var seen []string
	for i := range pods {
		p := &pods[i]
		if podReady(p) {
			ready++
		}
		seen = append(seen, fmt.Sprintf("%s %s ready=%v deleting=%v", p.Name, p.Status.Phase, podReady(p), p.DeletionTimestamp != nil))
	}
	if ready == want && len(pods) == want {
		return ""
	}
	return fmt.Sprintf("want %d ready pods of %s/%s, see %d: %v", want, ns, tenant, len(pods), seen)
}

// get fetches url with an optional bearer token: the status and body.
func get(url, token string) (int, string, error) {
	return getWith(&http.Client{Timeout: 5 * time.Second}, url, token)
}

// getWith is get through c.
func getWith(c *http.Client, url, token string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(body), nil
}

// dumpOnFailure prints what explains a failure: the cluster's state, the
// operator's log and the tail of each node component's log.
func (n *node) dumpOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		out, _ := n.try("kubectl", "get", "nodes,pods,usvc,deploy,svc,endpointslices,events", "-A", "-o", "wide")
		t.Logf("cluster state:\n%s", out)
		out, _ = n.try("kubectl", "-n", "userve-system", "logs", "deploy/userve", "--tail=40")
		t.Logf("operator log:\n%s", out)
		if n.logs == "" {
			return
		}
		files, _ := filepath.Glob(filepath.Join(n.logs, "*.log"))
		for _, f := range files {
			data, _ := os.ReadFile(f)
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			if len(lines) > 15 {
				lines = lines[len(lines)-15:]
			}
			t.Logf("%s (last lines):\n%s", filepath.Base(f), strings.Join(lines, "\n"))
		}
	})
}
