package install

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/tenantdb"
	"userve.dev/userve/test/mongofixture"
	"userve.dev/userve/test/syncbuf"
	"userve.dev/userve/test/testbin"
)

// builtVersion is stamped into the test binary the way the Dockerfile and the
// Makefile stamp releases.
const builtVersion = "v0.0.0-install-test"

// The image's binaries, built once per test run from this tree: bin/userve
// (returned) and bin/userve-serve beside it.
var (
	binDir      string
	buildBinary = sync.OnceValues(func() (string, error) {
		out := filepath.Join(binDir, "userve")
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X main.version="+builtVersion, "-o", binDir+"/", ".", "./cmd/userve-serve")
		root, err := testbin.Root()
		if err != nil {
			return "", err
		}
		// The default build settings share the build cache with `go test`
		// and the other packages' builds.
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build: %v\n%s", err, msg)
		}
		return out, nil
	})
)

// The chart's operator, run as a local process with the Deployment's own
// args and env, authenticated as the chart's ServiceAccount (impersonated):
// it must start, answer the health endpoint `helm test` checks, and
// provision a tenant with no more than the RBAC the chart grants.
func TestOperatorRunsWithChartRBAC(t *testing.T) {
	uri := mongofixture.URI(t)
	cases := []struct {
		name, release, namespace, tenantNamespace string
		values                                    []string
		existingSecret                            string // created unlabelled before the install
		leaderElection                            bool
	}{
		{
			name: "cluster-wide", release: "op-all", namespace: "op-all-system", tenantNamespace: "op-all-tenants",
			values: []string{"--set-string", "defaultMongo.uri=" + uri},
		},
		{
			name: "watched-namespaces", release: "op-ns", namespace: "op-ns-system", tenantNamespace: "op-team-b",
			values: []string{"--set", "defaultMongo.existingSecret=shared-mongo",
				"--set", "replicaCount=2", "--set", "operator.watchNamespaces={op-team-a,op-team-b}"},
			existingSecret: "shared-mongo",
			leaderElection: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			for _, ns := range []string{tc.namespace, tc.tenantNamespace, "op-team-a"} {
				createNamespace(t, ns)
			}
			if tc.existingSecret != "" {
				kubectl(t, nil, "create", "secret", "generic", tc.existingSecret, "--namespace", tc.namespace, "--from-literal=uri="+uri)
			}
			manifests := render(t, tc.release, tc.namespace, append(tc.values, "--set", "crds.enabled=false")...)
			applyServerSide(t, manifests)
			objs := decode(t, manifests)
			d := deployment(t, objs)

			op := startOperator(t, d, tc.namespace)
			op.waitOK(t, "health", "/healthz")
			op.waitOK(t, "health", "/readyz")

			applyServerSide(t, mustRead(t, repoPath(t, "config", "samples", "miniapp_v1alpha1_userservice_minimal.yaml")),
				"--namespace", tc.tenantNamespace)
			tenant := types.NamespacedName{Namespace: tc.tenantNamespace, Name: "minimal"}
			op.waitFor(t, "the tenant Deployment", func() error {
				return env.Client.Get(ctx, tenant, &appsv1.Deployment{})
			})
			// The default URI stays in the release namespace: the tenant's
			// credentials Secret holds its own database user's URI.
			op.waitFor(t, "the tenant's own MongoDB URI in its credentials Secret", func() error {
				s := &corev1.Secret{}
				if err := env.Client.Get(ctx, types.NamespacedName{Namespace: tc.tenantNamespace, Name: "minimal-credentials"}, s); err != nil {
					return err
				}
				if user, _, _ := tenantdb.Credentials(string(s.Data["mongo-uri"])); user != "userve."+tc.tenantNamespace+".minimal" {
					return fmt.Errorf("mongo-uri is for user %q", user)
				}
				return nil
			})
			op.waitFor(t, "the tenant's status", func() error {
				us := &v1alpha1.UserService{}
				if err := env.Client.Get(ctx, tenant, us); err != nil {
					return err
				}
				if us.Status.Database == "" {
					return fmt.Errorf("no status.database yet: %+v", us.Status)
				}
				return nil
			})
			if tc.existingSecret != "" {
				// Labelling it needs the chart's narrow patch grant.
				s := &corev1.Secret{}
				if err := env.Client.Get(ctx, types.NamespacedName{Namespace: tc.namespace, Name: tc.existingSecret}, s); err != nil {
					t.Fatal(err)
				}
				if s.Labels["miniapp.userve.dev/watched"] != "true" {
					t.Errorf("the operator did not label the default Secret: %v", s.Labels)
				}
			}
			if tc.leaderElection {
				op.waitFor(t, "the leader election Lease", func() error {
					return env.Client.Get(ctx, types.NamespacedName{Namespace: tc.namespace, Name: "userve-operator.miniapp.userve.dev"}, &coordinationv1.Lease{})
				})
			}
			// /metrics is HTTPS and judged by the API server with the
			// chart's RBAC: no token 401, a token without the
			// metrics-reader ClusterRole 403, one bound to it 200.
			reader, err := env.ServiceAccountToken(ctx, tc.namespace, "scraper", tc.release+"-userve-metrics-reader")
			if err != nil {
				t.Fatal(err)
			}
			stranger, err := env.ServiceAccountToken(ctx, tc.namespace, "stranger")
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				who, token string
				want       int
			}{{"no token", "", 401}, {"a wrong token", "not-a-token", 401}, {"a token without metrics-reader", stranger, 403}, {"a metrics-reader token", reader, 200}} {
				var code int
				var body string
				op.waitFor(t, "/metrics answering "+c.who+" with "+fmt.Sprint(c.want), func() error {
					code, body, err = scrape(op.ports["metrics"], c.token)
					if err != nil {
						return err
					}
					if code != c.want {
						return fmt.Errorf("%d %.200s", code, body)
					}
					return nil
				})
				if c.want == 200 && !strings.Contains(body, "controller_runtime_reconcile_total") {
					t.Errorf("/metrics lacks controller-runtime's metrics:\n%.500s", body)
				}
				if c.want != 200 && strings.Contains(body, "controller_runtime") {
					t.Errorf("%s: /metrics leaked metrics:\n%.300s", c.who, body)
				}
			}
			// Plain HTTP on the metrics port gets nothing.
			if code, _, err := plainGet(op.ports["metrics"]); err == nil && code == 200 {
				t.Errorf("/metrics answered plain HTTP with %d", code)
			}
			if strings.Contains(op.log.String(), "forbidden") {
				t.Errorf("the operator met RBAC refusals:\n%s", op.log.String())
			}
		})
	}
}

type operator struct {
	exited chan struct{} // closed when the process has ended
	log    *syncbuf.Buffer
	ports  map[string]string // port name -> 127.0.0.1:port
}

// startOperator runs the Deployment's container locally: its args with the
// bind addresses moved to free local ports, its env, and a kubeconfig
// impersonating the pod's ServiceAccount.
func startOperator(t *testing.T, d *appsv1.Deployment, namespace string) *operator {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	op := &operator{log: &syncbuf.Buffer{}, ports: map[string]string{"metrics": freeAddr(t), "health": freeAddr(t)}}
	var args []string
	for _, a := range c.Args {
		switch {
		case strings.HasPrefix(a, "--metrics-bind-address="):
			a = "--metrics-bind-address=" + op.ports["metrics"]
		case strings.HasPrefix(a, "--health-probe-bind-address="):
			a = "--health-probe-bind-address=" + op.ports["health"]
		}
		args = append(args, a)
	}
	args = append(args, "--kubeconfig="+serviceAccountKubeconfig(t, namespace, pod.ServiceAccountName))
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"HOME=" + t.TempDir()}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			cmd.Env = append(cmd.Env, e.Name+"="+namespace)
		case e.ValueFrom == nil:
			cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
		default:
			t.Fatalf("env %s: the test cannot resolve %+v", e.Name, e.ValueFrom)
		}
	}
	cmd.Stdout, cmd.Stderr = op.log, op.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	op.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(op.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-op.exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-op.exited
		}
		if t.Failed() {
			t.Logf("operator log:\n%s", op.log.String())
		}
	})
	return op
}

// serviceAccountKubeconfig is the fixture's admin kubeconfig acting as the
// ServiceAccount, so that the API server applies the chart's RBAC.
func serviceAccountKubeconfig(t *testing.T, namespace, name string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range cfg.AuthInfos {
		auth.Impersonate = "system:serviceaccount:" + namespace + ":" + name
		auth.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// scrape GETs https://addr/metrics with a bearer token (none when empty),
// trusting the operator's self-signed certificate (loopback only).
func scrape(addr, token string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the operator's self-signed certificate, on loopback
	}}
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
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
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func plainGet(addr string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func (op *operator) waitOK(t *testing.T, port, path string) {
	t.Helper()
	op.waitFor(t, "GET "+path+" 200", func() error {
		resp, err := http.Get("http://" + op.ports[port] + path)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	})
}

// waitFor polls cond for up to a minute, failing early when the operator exits.
func (op *operator) waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-op.exited:
			t.Fatalf("waiting for %s: the operator exited", what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
