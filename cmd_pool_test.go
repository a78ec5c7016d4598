package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
	"userve.dev/userve/test/kubefixture"
	"userve.dev/userve/test/mongofixture"
	"userve.dev/userve/test/syncbuf"
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
		{[]string{"--pool", "shared", "--max-loaded", "-1"}, env, "--max-loaded -1: want 0 (no bound) or more"},
		{[]string{"--pool", "shared", "--tenant-max-inflight", "0"}, env, "--tenant-max-inflight 0: want at least 1"},
		{[]string{"--pool", "shared", "--max-executing", "-1"}, env, "--max-executing -1: want 0 (the default) or more"},
		{[]string{"--pool", "shared", "--queue-wait", "0s"}, env, "--queue-wait 0s: want a positive duration"},
		{[]string{"--pool", "shared", "--seat-lease", "-1s"}, env, "--seat-lease -1s: want a positive duration"},
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
	stderr.Reset()
	if code := servePool(context.Background(), []string{"--pool", "shared", "--allow-egress", "10.0.0.0/33"}, env, &bytes.Buffer{}, &stderr); code != 2 ||
		!strings.HasPrefix(stderr.String(), `invalid value "10.0.0.0/33" for flag -allow-egress: "10.0.0.0/33" is not a CIDR range`) {
		t.Errorf("a bad --allow-egress: exit %d, stderr %q", code, stderr.String())
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

// TestPoolRunsAndStops runs `userve pool` in-process, with the arguments
// the operator renders for a pool (render.PoolArgs: every optional flag
// set), against envtest's API server (by --kubeconfig) and a private
// FerretDB: ready once the Secrets are applied, it serves a tenant by its
// Host, answers an unknown Host 404, counts both on --metrics-listen, and
// exits 0 on cancellation.
func TestPoolRunsAndStops(t *testing.T) {
	kube, err := kubefixture.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.Stop() })
	mongo := mongofixture.NewServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := kube.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "userve-system"}}); err != nil {
		t.Fatal(err)
	}
	manifest := `{"apiVersion":"miniapp.userve.dev/v1alpha1","kind":"UserService","metadata":{"namespace":"team-a","name":"acme"},"spec":{}}`
	if err := kube.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "userve-system", Name: v1alpha1.PoolTenantSecretName("shared", "team-a", "acme"),
			Labels: map[string]string{v1alpha1.PoolLabel: "shared"}},
		StringData: map[string]string{
			v1alpha1.PoolTenantManifestKey: manifest, v1alpha1.EnvMongoURI: mongo.URI, v1alpha1.EnvAdminTokens: testAdminToken,
			v1alpha1.EnvJWTKey: "pool-test-jwt-key-0123456789abcdef0123", v1alpha1.PoolTenantHostsKey: "acme.team-a\nusers.acme.example.com",
		}}); err != nil {
		t.Fatal(err)
	}
	// The pod the process runs as (POD_NAME): it acknowledges the Secrets
	// applied there before it is ready.
	if err := kube.Client.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "userve-system", Name: "pool-0"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "pool", Image: "example.com/userve:test"}}}}); err != nil {
		t.Fatal(err)
	}
	addrs := make([]string, 2)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = ln.Addr().String()
		ln.Close()
	}
	var stdout, stderr syncbuf.Buffer
	done := make(chan int, 1)
	inflight := int32(8)
	rendered := render.PoolArgs(&v1alpha1.UserServicePool{ObjectMeta: metav1.ObjectMeta{Name: "shared"},
		Spec: v1alpha1.UserServicePoolSpec{IdleTimeout: &metav1.Duration{Duration: time.Minute}, TenantMaxInflight: &inflight,
			Egress: v1alpha1.PoolEgressSpec{AllowCIDRs: []string{"10.0.0.0/8", "fd00::/8"}}}})
	if rendered[0] != "pool" {
		t.Fatalf("the operator's arguments start with %q, want the pool command", rendered[0])
	}
	// Later flags win: the test's own listeners and API server.
	args := append(rendered[1:], "--kubeconfig", kube.Kubeconfig, "--listen", addrs[0], "--metrics-listen", addrs[1])
	go func() {
		done <- servePool(ctx, args, envOf(map[string]string{"POD_NAMESPACE": "userve-system", "POD_NAME": "pool-0"}), &stdout, &stderr)
	}()
	get := func(host, url string) int {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	base := "http://" + addrs[0]
	deadline := time.Now().Add(60 * time.Second)
	for get("", base+"/readyz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("not ready; stderr %s stdout %.2000s", stderr.String(), stdout.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var pod corev1.Pod
	if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: "userve-system", Name: "pool-0"}, &pod); err != nil {
		t.Fatal(err)
	}
	if pod.Annotations[v1alpha1.PoolAppliedAnnotation] == "" {
		t.Errorf("ready before acknowledging the tenant Secret on its pod: annotations %v", pod.Annotations)
	}
	if code := get("users.acme.example.com", base+"/userve/v1/user-group/"); code != http.StatusOK {
		t.Fatalf("the tenant by its Ingress host: %d; stdout %.2000s", code, stdout.String())
	}
	if code := get("nobody.team-a", base+"/userve/v1/user-group/"); code != http.StatusNotFound {
		t.Fatalf("an unknown host: %d, want 404", code)
	}
	res, err := http.Get("http://" + addrs[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{`userve_pool_activations_total{result="ok"} 1`, `userve_pool_rejections_total{reason="unknown_host"} 1`,
		`userve_pool_tenant_requests_total{tenant="team-a/acme"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d; stderr %s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("userve pool did not stop")
	}
}
