// Package node checks userve on a real single-node cluster: a kubelet with
// containerd, real probes, kube-proxy Services, CoreDNS, a controller-manager
// and its garbage collector. hack/node/up.sh brings the node up and `make
// test-node` runs this inside the node's network namespace; without one
// (plain `go test ./...`) it skips.
package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
	"userve.dev/userve/migration"
)

const (
	release    = "userve"
	operatorNS = "userve-system"
	tenantsNS  = "tenants"
	nodeIP     = "10.211.0.2"  // hack/node/lib.sh NODE_IP
	dnsIP      = "10.213.0.10" // hack/node/lib.sh DNS_IP
	// config/samples/secrets.yaml
	sampleAcmeURI = "mongodb://acme:change-me@mongodb.databases.svc.cluster.local:27017/?authSource=admin"
	rotated       = "acme-admin-token-rotated-0123456789abcdef" // >= 32 bytes, as the server requires
	serverPort    = 8080
	readyLimit    = 3 * time.Minute
	routeLimit    = 30 * time.Second
	deleteLimit   = 2 * time.Minute
)

func TestNode(t *testing.T) {
	n := connect(t)
	n.dumpOnFailure(t)
	ctx := context.Background()

	// A step's failure stops the later ones, unless it leaves the cluster as
	// they need it (independent).
	steps := []struct {
		name        string
		run         func(t *testing.T)
		independent bool
	}{
		{"HelmInstall", func(t *testing.T) { n.helmInstall(t) }, false},
		{"SamplesReadyThroughProbes", func(t *testing.T) { n.samplesReady(t) }, false},
		{"TenantPodsRunTheServeBinary", func(t *testing.T) { n.tenantPodsRunTheServeBinary(t) }, true},
		{"ClusterDNSResolvesServices", func(t *testing.T) { n.clusterDNS(t) }, true},
		{"BothDialectsThroughClusterIP", func(t *testing.T) { n.bothDialects(t, n.sampleToken(t)) }, true},
		{"KilledPodReplacedWhileOtherServes", func(t *testing.T) { n.killedPodReplaced(t) }, false},
		{"KubectlScale", func(t *testing.T) { n.kubectlScale(t) }, false},
		{"HelmTest", func(t *testing.T) { n.tool(t, "helm", "test", release, "-n", operatorNS, "--timeout", "2m") }, true},
		{"SecretChangeRollsPods", func(t *testing.T) { n.secretRolls(t) }, true},
		{"PoolServes50TenantsAndMovesUnderLoad", func(t *testing.T) { n.poolServesTenants(t) }, true},
		{"DeleteDropsDatabaseAfterPods", func(t *testing.T) { n.deleteDropsAfterPods(ctx, t) }, true},
		{"HelmUninstallKeepsCRDs", func(t *testing.T) { n.uninstallKeepsCRDs(t) }, false},
	}
	for _, s := range steps {
		start := time.Now()
		ok := t.Run(s.name, s.run)
		t.Logf("%s: %s", s.name, time.Since(start).Round(100*time.Millisecond))
		if !ok && !s.independent {
			t.Fatalf("%s failed; the later steps depend on it", s.name)
		}
	}
}

func (n *node) helmInstall(t *testing.T) {
	repo, tag, _ := strings.Cut(n.image, ":")
	busyRepo, busyTag, _ := strings.Cut(n.busybox, ":")
	args := []string{"install", release, "charts/userve", "-n", operatorNS, "--create-namespace",
		"--set", "image.repository=" + repo, "--set-string", "image.tag=" + tag, "--set", "image.pullPolicy=Never",
		// The administrator's URI: the operator makes each tenant's own user with it.
		"--set-string", "defaultMongo.uri=" + n.mongoURI("mongodb.databases.svc.cluster.local"),
		"--set", "tests.image.repository=" + busyRepo, "--set-string", "tests.image.tag=" + busyTag,
		"--set", "tests.image.pullPolicy=Never",
		"--wait", "--timeout", "3m"}
	// More helm flags for a local experiment (e.g. a --post-renderer).
	args = append(args, strings.Fields(os.Getenv("USERVE_NODE_HELM_ARGS"))...)
	n.tool(t, "helm", args...)
	// --server-image follows the chart's image.
	var d appsv1.Deployment
	if err := n.c.Get(context.Background(), types.NamespacedName{Namespace: operatorNS, Name: release}, &d); err != nil {
		t.Fatal(err)
	}
	opArgs := strings.Join(d.Spec.Template.Spec.Containers[0].Args, " ")
	if !strings.Contains(opArgs, "--server-image="+n.image) {
		t.Errorf("operator args %q lack --server-image=%s", opArgs, n.image)
	}
	if d.Status.ReadyReplicas != 1 {
		t.Errorf("operator ready replicas = %d, want 1", d.Status.ReadyReplicas)
	}
}

func (n *node) samplesReady(t *testing.T) {
	n.tool(t, "kubectl", "create", "namespace", tenantsNS)
	samples := n.tool(t, "kubectl", "kustomize", "config/samples")
	if !strings.Contains(samples, sampleAcmeURI) {
		t.Fatalf("config/samples no longer holds acme's URI %s", sampleAcmeURI)
	}
	if n.adminPassword != "" {
		// acme names its own database user (the sample's): the DBA creates it.
		n.createUser(t, "acme", "change-me", "acme-users")
	} else {
		// A FerretDB without authentication refuses credentials: acme's URI
		// loses them (the host stays: a *.svc name that CoreDNS must resolve).
		samples = strings.ReplaceAll(samples, sampleAcmeURI, n.mongoURI("mongodb.databases.svc.cluster.local"))
	}
	n.toolStdin(t, samples, "kubectl", "apply", "-n", tenantsNS, "-f", "-")
	want := map[string]int{"minimal": 1, "acme": 2} // acme: autoscaling.minReplicas
	for tenant, replicas := range want {
		eventually(t, tenant+" Ready", readyLimit, func() string {
			var us v1alpha1.UserService
			if err := n.c.Get(context.Background(), types.NamespacedName{Namespace: tenantsNS, Name: tenant}, &us); err != nil {
				return err.Error()
			}
			if us.Status.Phase != v1alpha1.PhaseReady {
				return fmt.Sprintf("phase %q, conditions %+v", us.Status.Phase, us.Status.Conditions)
			}
			return n.readyPods(t, tenantsNS, tenant, replicas)
		})
		// Ready came from the kubelet running the real readiness probe.
		for _, p := range n.podsOf(t, tenantsNS, tenant) {
			probe := p.Spec.Containers[0].ReadinessProbe
			if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != "/readyz" {
				t.Errorf("pod %s: readiness probe %+v, want GET /readyz", p.Name, probe)
			}
			if p.Spec.Containers[0].Image != n.image {
				t.Errorf("pod %s runs %s, want the chart's image %s", p.Name, p.Spec.Containers[0].Image, n.image)
			}
		}
	}
}

func (n *node) clusterIP(t *testing.T, tenant string) string {
	t.Helper()
	var svc corev1.Service
	if err := n.c.Get(context.Background(), types.NamespacedName{Namespace: tenantsNS, Name: tenant}, &svc); err != nil {
		t.Fatal(err)
	}
	return svc.Spec.ClusterIP
}

// The samples' MongoDB URIs name *.svc hosts: CoreDNS answers them.
func (n *node) clusterDNS(t *testing.T) {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, net.JoinHostPort(dnsIP, "53"))
	}}
	for host, want := range map[string]string{
		"acme.tenants.svc.cluster.local.":      n.clusterIP(t, "acme"),
		"mongodb.databases.svc.cluster.local.": "",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		addrs, err := r.LookupHost(ctx, host)
		cancel()
		if err != nil || len(addrs) != 1 || (want != "" && addrs[0] != want) {
			t.Errorf("lookup %s = %v, %v; want one address %s", host, addrs, err, want)
		}
	}
}

func (n *node) bothDialects(t *testing.T, token string) {
	base := fmt.Sprintf("http://%s:%d", n.clusterIP(t, "acme"), serverPort)
	// Ready pods reach the Service once the EndpointSlice and kube-proxy's
	// rules catch up, a moment after the UserService says Ready.
	eventually(t, "acme's ClusterIP routes to its pods", routeLimit, func() string {
		if status, _, err := get(base+"/healthz", ""); err != nil || status != 200 {
			return fmt.Sprintf("GET /healthz = %d %v", status, err)
		}
		return ""
	})
	for _, c := range []struct{ path, token string }{
		{"/userve/v2.2/miniapp/user_profile/", token},
		{"/api/v2/users", ""},
	} {
		status, body, err := get(base+c.path, c.token)
		if err != nil || status != 200 {
			t.Errorf("GET %s%s = %d %v: %.300s", base, c.path, status, err, body)
		}
	}
	if status, _, _ := get(base+"/userve/v2.2/miniapp/user_profile/", "wrong-token"); status != 401 {
		t.Errorf("management API with a wrong token = %d, want 401", status)
	}
}

// A tenant pod is deleted (SIGTERM, as on a drain); the Deployment replaces
// it, and requests through the Service keep succeeding on the other replica.
func (n *node) killedPodReplaced(t *testing.T) {
	pods := n.podsOf(t, tenantsNS, "acme")
	if len(pods) != 2 {
		t.Fatalf("want 2 acme pods, got %d", len(pods))
	}
	victim := pods[0].Name
	url := fmt.Sprintf("http://%s:%d/api/v2/users", n.clusterIP(t, "acme"), serverPort)

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			status, body, err := get(url, "")
			if err == nil && status == 200 {
				ok.Add(1)
				continue
			}
			failed.Add(1)
			firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %v %.200s", status, err, body))
		}
	}()
	n.tool(t, "kubectl", "delete", "pod", "-n", tenantsNS, victim, "--wait=false")
	eventually(t, "acme back to 2 ready pods without "+victim, readyLimit, func() string {
		for _, p := range n.podsOf(t, tenantsNS, "acme") {
			if p.Name == victim {
				return victim + " still there"
			}
		}
		return n.readyPods(t, tenantsNS, "acme", 2)
	})
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	t.Logf("requests during the replacement: %d ok, %d failed", ok.Load(), failed.Load())
	if failed.Load() > 0 || ok.Load() < 20 {
		t.Errorf("%d of %d requests failed while a pod was replaced (first: %v)", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
}

func (n *node) kubectlScale(t *testing.T) {
	n.tool(t, "kubectl", "scale", "usvc", "minimal", "-n", tenantsNS, "--replicas=2")
	eventually(t, "minimal scaled to 2", readyLimit, func() string { return n.readyPods(t, tenantsNS, "minimal", 2) })
	out := n.tool(t, "kubectl", "get", "usvc", "minimal", "-n", tenantsNS, "-o", "jsonpath={.status.readyReplicas}")
	eventually(t, "minimal status.readyReplicas = 2", 30*time.Second, func() string {
		out = n.tool(t, "kubectl", "get", "usvc", "minimal", "-n", tenantsNS, "-o", "jsonpath={.status.readyReplicas}")
		if out != "2" {
			return "readyReplicas " + out
		}
		return ""
	})
	n.tool(t, "kubectl", "scale", "usvc", "minimal", "-n", tenantsNS, "--replicas=1")
	eventually(t, "minimal scaled back to 1", readyLimit, func() string { return n.readyPods(t, tenantsNS, "minimal", 1) })
}

// Rotating the admin tokens rolls the tenant's pods: the new token works
// and the old one no longer does.
func (n *node) secretRolls(t *testing.T) {
	old := n.sampleToken(t)
	before := map[string]bool{}
	for _, p := range n.podsOf(t, tenantsNS, "acme") {
		before[p.Name] = true
	}
	n.tool(t, "kubectl", "patch", "secret", "acme-admin-tokens", "-n", tenantsNS, "--type=merge",
		"-p", `{"stringData":{"tokens":"`+rotated+`"}}`)
	eventually(t, "acme rolled to new pods", readyLimit, func() string {
		pods := n.podsOf(t, tenantsNS, "acme")
		for _, p := range pods {
			if before[p.Name] {
				return "old pod " + p.Name + " still there"
			}
		}
		return n.readyPods(t, tenantsNS, "acme", 2)
	})
	n.bothDialects(t, rotated)
	url := fmt.Sprintf("http://%s:%d/userve/v2.2/miniapp/user_profile/", n.clusterIP(t, "acme"), serverPort)
	if status, _, _ := get(url, old); status != 401 {
		t.Errorf("the replaced token answers %d, want 401", status)
	}
}

// With deletionPolicy Delete the database is dropped, and only once no pod
// of the tenant runs any more.
func (n *node) deleteDropsAfterPods(ctx context.Context, t *testing.T) {
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "doomed", Namespace: tenantsNS},
		Spec: v1alpha1.UserServiceSpec{DeletionPolicy: v1alpha1.DeletionPolicyDelete}}
	if err := n.c.Create(ctx, us); err != nil {
		t.Fatal(err)
	}
	db, err := render.DatabaseName(us)
	if err != nil {
		t.Fatal(err)
	}
	mc := n.mongo(t)
	exists := func() bool {
		names, err := mc.ListDatabaseNames(ctx, bson.D{})
		if err != nil {
			t.Fatalf("listDatabases: %v", err)
		}
		for _, name := range names {
			if name == db {
				return true
			}
		}
		return false
	}
	eventually(t, "doomed Ready", readyLimit, func() string { return n.readyPods(t, tenantsNS, "doomed", 1) })
	// The tenant's own writes make the database exist.
	eventually(t, "database "+db+" exists", 30*time.Second, func() string {
		if !exists() {
			return "not listed"
		}
		return ""
	})

	if err := n.c.Delete(ctx, us); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(deleteLimit)
	for {
		pods := len(n.podsOf(t, tenantsNS, "doomed"))
		dbThere := exists()
		if !dbThere && pods > 0 {
			t.Fatalf("database %s dropped while %d pod(s) of the tenant still exist", db, pods)
		}
		err := n.c.Get(ctx, client.ObjectKeyFromObject(us), &v1alpha1.UserService{})
		if !dbThere && pods == 0 && apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: database listed %v, %d pods, UserService get: %v", deleteLimit, dbThere, pods, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sampleToken is the first admin token of acme's sample Secret.
func (n *node) sampleToken(t *testing.T) string {
	t.Helper()
	var s corev1.Secret
	if err := n.c.Get(context.Background(), types.NamespacedName{Namespace: tenantsNS, Name: "acme-admin-tokens"}, &s); err != nil {
		t.Fatal(err)
	}
	return migration.FirstToken(string(s.Data["tokens"]))
}

// mongoURI is the administrator's URI of the node's FerretDB at host.
func (n *node) mongoURI(host string) string {
	if n.adminPassword == "" {
		return "mongodb://" + host + ":27017/"
	}
	return "mongodb://admin:" + n.adminPassword + "@" + host + ":27017/?authSource=admin"
}

func (n *node) mongo(t *testing.T) *mongo.Client {
	t.Helper()
	mc, err := mongo.Connect(options.Client().ApplyURI(n.mongoURI(nodeIP)).SetTimeout(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Disconnect(context.Background()) })
	return mc
}

func (n *node) createUser(t *testing.T, user, password, db string) {
	t.Helper()
	create := func(roles bson.A) error {
		return n.mongo(t).Database("admin").RunCommand(context.Background(), bson.D{
			{Key: "createUser", Value: user}, {Key: "pwd", Value: password}, {Key: "roles", Value: roles},
		}).Err()
	}
	err := create(bson.A{bson.D{{Key: "role", Value: "readWrite"}, {Key: "db", Value: db}}})
	if ce, ok := err.(mongo.CommandError); ok && ce.Code == 238 {
		// FerretDB v1 has no roles (NotImplemented): a user without any.
		err = create(bson.A{})
	}
	if err != nil {
		t.Fatalf("createUser %s: %v", user, err)
	}
}

func (n *node) uninstallKeepsCRDs(t *testing.T) {
	n.tool(t, "helm", "uninstall", release, "-n", operatorNS, "--wait", "--timeout", "2m")
	n.tool(t, "kubectl", "get", "crd", "userservices.miniapp.userve.dev")
	// The tenants stay with their CRD.
	out := n.tool(t, "kubectl", "get", "usvc", "-n", tenantsNS, "-o", "name")
	if !strings.Contains(out, "acme") || !strings.Contains(out, "minimal") {
		t.Errorf("UserServices after helm uninstall: %q, want acme and minimal", out)
	}
}
