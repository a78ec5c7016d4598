// Package integration_test runs the operator's manager in-process against a
// real kube-apiserver (envtest, test/kubefixture) and a real MongoDB-wire
// server (test/mongofixture). No kube-controller-manager runs: there is no
// Deployment controller and no garbage collector, so tests set Deployment
// status themselves where readiness matters.
package integration_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers"
	"userve.dev/userve/controllers/render"
	"userve.dev/userve/test/kubefixture"
	"userve.dev/userve/test/mongofixture"
	"userve.dev/userve/test/testbin"
)

const (
	serverImage = "example.com/userve:test"
	// operatorNamespace holds the default MongoDB URI Secret; the operator
	// does not watch it, as in a real install with --watch-namespaces.
	operatorNamespace = "userve-system"
	// outsideNamespace is not watched: tenants there are never reconciled.
	outsideNamespace = "outside"
	poolSize         = 72
	// uriSecretGrace: how long a deleted tenant waits for its vanished URI
	// Secret (2 minutes in production).
	uriSecretGrace = 3 * time.Second
)

var (
	env *kubefixture.Env
	k8s client.Client // direct to the API server, no cache
	mgr ctrl.Manager

	defaultMongo = &render.SecretLocation{Namespace: operatorNamespace, Name: "mongo", Key: "uri"}
	namespaces   []string
	nextNS       atomic.Int32
)

// poolDrain is how long a pool keeps a tenant moving out after its
// endpoints went (controllers.Options.PoolDrain).
const poolDrain = 2 * time.Second

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var logOut io.Writer = io.Discard
	if os.Getenv("USERVE_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	ctrl.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug})))

	e, err := kubefixture.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubefixture:", err)
		return 1
	}
	defer e.Stop()
	env, k8s = e, e.Client

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range poolSize {
		namespaces = append(namespaces, fmt.Sprintf("tenants-%02d", i))
	}
	for _, ns := range append([]string{operatorNamespace, outsideNamespace}, namespaces...) {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			fmt.Fprintln(os.Stderr, "create namespace:", err)
			return 1
		}
	}

	// The operator runs with exactly the permissions of config/rbac: the
	// generated ClusterRole and the leader election Role.
	cfg, err := operatorIdentity(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rbac:", err)
		return 1
	}
	m2, pool, err := controllers.NewManager(cfg, controllers.Options{
		ServerImage:             serverImage,
		DefaultMongoURISecret:   defaultMongo,
		WatchNamespaces:         namespaces,
		PoolNamespace:           operatorNamespace,
		MaxConcurrentReconciles: 4,
		MetricsBindAddress:      "0",
		HealthProbeBindAddress:  "0",
		RetryInterval:           time.Second,
		PoolDrain:               poolDrain,
		DatabaseTimeout:         time.Second,
		URISecretGrace:          uriSecretGrace,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	mgr = m2
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer pool.Close(context.Background())

	code := mongofixture.Run(m)
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		code = 1
	}
	return code
}

// namespace is a fresh namespace the operator watches, for one test.
func namespace(t *testing.T) string {
	t.Helper()
	i := int(nextNS.Add(1)) - 1
	if i >= len(namespaces) {
		t.Fatalf("namespace pool exhausted: raise poolSize")
	}
	return namespaces[i]
}

var defaultMongoOnce sync.Once

// withDefaultMongo makes sure the operator's default MongoDB URI Secret
// exists, pointing at the shared test server.
func withDefaultMongo(t *testing.T) {
	t.Helper()
	uri := mongofixture.URI(t)
	defaultMongoOnce.Do(func() {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: defaultMongo.Namespace, Name: defaultMongo.Name},
			Data:       map[string][]byte{defaultMongo.Key: []byte(uri)},
		}
		if err := k8s.Create(context.Background(), s); err != nil {
			t.Fatalf("create the default MongoDB Secret: %v", err)
		}
	})
}

// newTenant creates a UserService named acme in a fresh namespace.
func newTenant(t *testing.T, mutate ...func(*v1alpha1.UserService)) *v1alpha1.UserService {
	t.Helper()
	withDefaultMongo(t)
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: namespace(t)}}
	for _, m := range mutate {
		m(us)
	}
	if err := k8s.Create(context.Background(), us); err != nil {
		t.Fatalf("create UserService: %v", err)
	}
	return us
}

func secret(t *testing.T, ns, name string, data map[string]string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatalf("create secret %s: %v", name, err)
	}
	return s
}

// eventually retries f until it succeeds, failing the test after a while
// with f's last error.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitIdle waits until no reconcile of the operator's is queued or running
// on three reads in a row: the reconciles that earlier writes triggered
// have all run.
func waitIdle(t *testing.T) {
	t.Helper()
	idleReads := 0
	eventually(t, "the operator idle", func() error {
		families, err := ctrlmetrics.Registry.Gather()
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(families, func(f *dto.MetricFamily) bool { return f.GetName() == "workqueue_depth" }) {
			t.Fatal("the operator's registry has no workqueue_depth")
		}
		queued := sumMetric(families, "workqueue_depth", nil)
		running := sumMetric(families, "controller_runtime_active_workers", nil)
		if queued+running > 0 {
			idleReads = 0
			return fmt.Errorf("%v reconciles queued, %v running", queued, running)
		}
		if idleReads++; idleReads < 3 {
			return fmt.Errorf("idle on %d reads", idleReads)
		}
		return nil
	})
}

func get(t *testing.T, obj client.Object, ns, name string) error {
	t.Helper()
	return k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, obj)
}

func tenant(t *testing.T, us *v1alpha1.UserService) *v1alpha1.UserService {
	t.Helper()
	var got v1alpha1.UserService
	if err := get(t, &got, us.Namespace, us.Name); err != nil {
		t.Fatal(err)
	}
	return &got
}

// update changes a tenant's spec, retrying on conflicts.
func update(t *testing.T, us *v1alpha1.UserService, mutate func(*v1alpha1.UserService)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur v1alpha1.UserService
		if err := get(t, &cur, us.Namespace, us.Name); err != nil {
			return err
		}
		mutate(&cur)
		return k8s.Update(context.Background(), &cur)
	})
	if err != nil {
		t.Fatalf("update UserService: %v", err)
	}
}

func condition(us *v1alpha1.UserService, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(us.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{Type: typ, Status: "absent"}
}

// waitCondition waits for a condition of the tenant's current generation.
func waitCondition(t *testing.T, us *v1alpha1.UserService, typ string, status metav1.ConditionStatus, reason string) *v1alpha1.UserService {
	t.Helper()
	var got *v1alpha1.UserService
	eventually(t, fmt.Sprintf("%s=%s (%s)", typ, status, reason), func() error {
		got = &v1alpha1.UserService{}
		if err := get(t, got, us.Namespace, us.Name); err != nil {
			return err
		}
		c := condition(got, typ)
		if c.Status != status || (reason != "" && c.Reason != reason) || c.ObservedGeneration != got.Generation {
			return fmt.Errorf("%s is %s (%s: %s) at generation %d of %d", typ, c.Status, c.Reason, c.Message, c.ObservedGeneration, got.Generation)
		}
		return nil
	})
	return got
}

func deployment(t *testing.T, us *v1alpha1.UserService) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	eventually(t, "the Deployment exists", func() error { return get(t, &d, us.Namespace, us.Name) })
	return &d
}

// markAvailable plays the Deployment controller: every desired pod is
// updated, ready and available.
func markAvailable(t *testing.T, us *v1alpha1.UserService) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := deployment(t, us)
		n := int32(1)
		if d.Spec.Replicas != nil {
			n = *d.Spec.Replicas
		}
		d.Status = appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
		}
		return k8s.Status().Update(context.Background(), d)
	})
	if err != nil {
		t.Fatalf("set Deployment status: %v", err)
	}
}

func podHash(d *appsv1.Deployment) string {
	return d.Spec.Template.Annotations[render.AnnotationConfigHash]
}

// eventReasons are the reasons of the events about a tenant.
func eventReasons(t *testing.T, us *v1alpha1.UserService) map[string][]string {
	t.Helper()
	var list eventsv1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(us.Namespace)); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, e := range list.Items {
		if e.Regarding.Kind == "UserService" && e.Regarding.Name == us.Name {
			out[e.Reason] = append(out[e.Reason], e.Note)
		}
	}
	return out
}

func waitEvent(t *testing.T, us *v1alpha1.UserService, reason, noteContains string) {
	t.Helper()
	eventually(t, "event "+reason+" "+noteContains, func() error {
		for _, note := range eventReasons(t, us)[reason] {
			if noteContains == "" || strings.Contains(note, noteContains) {
				return nil
			}
		}
		return fmt.Errorf("no %s event about %q; events: %v", reason, noteContains, eventReasons(t, us))
	})
}

// deleteTenant deletes a tenant and waits until the operator lets it go.
func deleteTenant(t *testing.T, us *v1alpha1.UserService) {
	t.Helper()
	if err := k8s.Delete(context.Background(), us); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	eventually(t, "the UserService is gone", func() error {
		err := get(t, &v1alpha1.UserService{}, us.Namespace, us.Name)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err %v)", err)
	})
}

func deploymentObj() *appsv1.Deployment { return &appsv1.Deployment{} }

// withFixtureURI creates a Secret holding the shared MongoDB's URI.
func withFixtureURI(t *testing.T, ns, name, key string) {
	t.Helper()
	secret(t, ns, name, map[string]string{key: mongofixture.URI(t)})
}

// operatorUser is who the operator runs as in these tests.
const operatorUser = "userve-operator-test"

// operatorIdentity installs config/rbac's ClusterRole and leader election
// Role for operatorUser and returns a config that impersonates it.
func operatorIdentity(ctx context.Context) (*rest.Config, error) {
	root, err := testbin.Root()
	if err != nil {
		return nil, err
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: operatorUser}}

	var role rbacv1.ClusterRole
	if err := readYAML(filepath.Join(root, "config", "rbac", "role.yaml"), &role); err != nil {
		return nil, err
	}
	if err := k8s.Create(ctx, &role); err != nil {
		return nil, err
	}
	if err := k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   subject,
	}); err != nil {
		return nil, err
	}

	// Serving /metrics securely: TokenReviews and SubjectAccessReviews
	// (metrics_auth_role.yaml); metrics_reader_role.yaml is what scrapers
	// are bound to.
	for _, file := range []string{"metrics_auth_role.yaml", "metrics_reader_role.yaml"} {
		var cr rbacv1.ClusterRole
		if err := readYAML(filepath.Join(root, "config", "rbac", file), &cr); err != nil {
			return nil, err
		}
		if err := k8s.Create(ctx, &cr); err != nil {
			return nil, err
		}
	}
	if err := k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "userve-metrics-auth"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "userve-metrics-auth"},
		Subjects:   subject,
	}); err != nil {
		return nil, err
	}

	var election rbacv1.Role
	if err := readYAML(filepath.Join(root, "config", "rbac", "leader_election_role.yaml"), &election); err != nil {
		return nil, err
	}
	if err := k8s.Create(ctx, &election); err != nil {
		return nil, err
	}
	if err := k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: election.Name, Namespace: election.Namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: election.Name},
		Subjects:   subject,
	}); err != nil {
		return nil, err
	}

	return operatorIdentityConfig()
}

// operatorIdentityConfig impersonates operatorUser.
func operatorIdentityConfig() (*rest.Config, error) {
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: operatorUser}
	return cfg, nil
}

func readYAML(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return yaml.UnmarshalStrict(data, into)
}
