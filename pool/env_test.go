package pool

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/openapi/conformance"
	"userve.dev/userve/server"
	"userve.dev/userve/test/kubefixture"
	"userve.dev/userve/test/mongofixture"
)

// kube is envtest's API server: the tenants' Secrets are real objects,
// watched through a Role like the pool pod's. It starts with the first
// test that needs it (fuzzing workers, which run TestMain too, need none).
var (
	kube     *kubefixture.Env
	kubeOnce sync.Once
	kubeErr  error
)

func startKube(t *testing.T) {
	t.Helper()
	kubeOnce.Do(func() { kube, kubeErr = kubefixture.Start() })
	if kubeErr != nil {
		t.Fatalf("kubefixture: %v", kubeErr)
	}
}

func TestMain(m *testing.M) {
	code := mongofixture.Run(m)
	if kube != nil {
		if err := kube.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "kubefixture: stop:", err)
		}
	}
	os.Exit(code)
}

const poolName = "shared"

var nsSeq atomic.Int64

// poolEnv is a pool process in a namespace of its own, serving over HTTP.
type poolEnv struct {
	t    *testing.T
	ns   string
	pool *Pool
	srv  *httptest.Server
}

// testHooks are what a test puts between the pool and a tenant's server.
type testHooks struct {
	// wrap, when set, wraps the tenant's (conformance-checked) handler.
	wrap func(tenant string, next http.Handler) http.Handler
	// before, when set, runs once the namespace exists and before the
	// pool starts (Secrets the initial list finds).
	before func(e *poolEnv)
}

// podName is the pool pod's name in every test namespace (a Pod object
// without a kubelet: the pool annotates it).
const podName = "pool-0"

// newPoolEnv starts a pool whose identity may only get, list and watch
// Secrets in its own namespace (the pod's Role), and waits for it to sync.
func newPoolEnv(t *testing.T, opts Options, hooks testHooks) *poolEnv {
	t.Helper()
	startKube(t)
	ctx, cancel := context.WithCancel(context.Background())
	ns := fmt.Sprintf("pool-%d", nsSeq.Add(1))
	k := kube.Client
	if err := k.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	user := "system:serviceaccount:" + ns + ":pool"
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pool"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "patch"}},
		}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pool"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pool"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}}
	if err := k.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	if err := k.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: podName},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "pool", Image: "example.com/userve:test"}}}}
	if err := k.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(kube.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}

	var logOut io.Writer = io.Discard
	if os.Getenv("USERVE_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	opts.Pool, opts.Namespace, opts.PodName = poolName, ns, podName
	opts.Logger = slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.TenantHandler = func(tenant string, srv *server.Server) http.Handler {
		h := conformance.Handler(t, srv)
		if hooks.wrap != nil {
			h = hooks.wrap(tenant, h)
		}
		return h
	}
	e := &poolEnv{t: t, ns: ns}
	if hooks.before != nil {
		hooks.before(e)
	}
	p, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	p.Start(ctx)
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		p.Close()
	})
	e.pool, e.srv = p, srv
	e.waitFor("the pool to sync its Secrets", p.Synced)
	return e
}

// waitFor polls cond until it holds, failing after 30 s.
func (e *poolEnv) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A tenant's credentials, as its Secret holds them.
type tenantCreds struct {
	ns, name   string
	adminToken string
	jwtKey     string
	clientID   string
	database   string
	mongoURI   string
	ingress    string
}

// newCreds makes a tenant's credentials, its own database on the shared
// FerretDB.
func newCreds(t *testing.T, ns, name string) *tenantCreds {
	suffix := fmt.Sprintf("%s-%s-%d", ns, name, nsSeq.Add(1))
	return &tenantCreds{ns: ns, name: name,
		adminToken: "admin-" + suffix + "-0123456789abcdef0123456789",
		jwtKey:     "jwt-" + suffix + "-0123456789abcdef0123456789abcdef",
		clientID:   "client-" + name,
		database:   mongofixture.NewDatabase(t).Name(),
		mongoURI:   mongofixture.URI(t),
		ingress:    name + "." + ns + ".example.com",
	}
}

// manifest is the defaulted UserService the operator writes: every
// dialect on, one custom field.
func (c *tenantCreds) manifest(mutate func(*v1alpha1.UserService)) []byte {
	us := &v1alpha1.UserService{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "UserService"},
		ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: c.name},
		Spec: v1alpha1.UserServiceSpec{
			API:     v1alpha1.APISpec{HServe: &v1alpha1.HServeAPISpec{Enabled: true, ClientID: c.clientID}},
			Profile: v1alpha1.ProfileSpec{CustomFields: []v1alpha1.CustomField{{Name: "motto", Type: v1alpha1.FieldString}}},
		},
	}
	if mutate != nil {
		mutate(us)
	}
	v1alpha1.SetDefaults(us)
	data, err := json.Marshal(us)
	if err != nil {
		panic(err)
	}
	return data
}

// secretData is the tenant's Secret as the pool contract lays it out.
func (c *tenantCreds) secretData(mutate func(*v1alpha1.UserService)) map[string][]byte {
	return map[string][]byte{
		v1alpha1.PoolTenantManifestKey: c.manifest(mutate),
		v1alpha1.EnvMongoURI:           []byte(c.mongoURI),
		v1alpha1.EnvMongoDatabase:      []byte(c.database),
		v1alpha1.EnvAdminTokens:        []byte("ops:" + c.adminToken),
		v1alpha1.EnvJWTKey:             []byte(c.jwtKey),
		v1alpha1.PoolTenantHostsKey:    []byte(strings.Join(v1alpha1.TenantHosts(c.ns, c.name, "", c.ingress), "\n")),
	}
}

// put creates or replaces the tenant's Secret in the pool's namespace,
// returning its resourceVersion.
func (e *poolEnv) put(c *tenantCreds, data map[string][]byte) string {
	e.t.Helper()
	ctx := context.Background()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: v1alpha1.PoolTenantSecretName(poolName, c.ns, c.name),
		Labels: map[string]string{v1alpha1.PoolLabel: poolName, v1alpha1.PoolTenantNamespaceLabel: c.ns, v1alpha1.PoolTenantNameLabel: c.name}},
		Data: data}
	err := kube.Client.Create(ctx, s)
	if apierrors.IsAlreadyExists(err) {
		var cur corev1.Secret
		if err = kube.Client.Get(ctx, client.ObjectKeyFromObject(s), &cur); err == nil {
			cur.Data = data
			err = kube.Client.Update(ctx, &cur)
			s = &cur
		}
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return s.ResourceVersion
}

// acknowledged is the resourceVersion the pool wrote on its Pod ("" if
// none).
func (e *poolEnv) acknowledged() string {
	e.t.Helper()
	var pod corev1.Pod
	if err := kube.Client.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: podName}, &pod); err != nil {
		e.t.Fatal(err)
	}
	return pod.Annotations[v1alpha1.PoolAppliedAnnotation]
}

// add puts a tenant with default settings and waits until the pool knows
// it.
func (e *poolEnv) add(ns, name string) *tenantCreds {
	e.t.Helper()
	c := newCreds(e.t, ns, name)
	e.put(c, c.secretData(nil))
	host := c.name + "." + c.ns
	e.waitFor("the pool to route "+host, func() bool { t, _ := e.pool.registry.lookup(host); return t != nil })
	return c
}

// res is an answer.
type res struct {
	status int
	header http.Header
	body   []byte
}

func (r res) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %s", r.status, r.body)
	}
	return m
}

// call sends a request for host; headers are "Name: value". It returns an
// error instead of failing, so that goroutines can use it.
func (e *poolEnv) call(host, method, path string, body any, headers ...string) (res, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return res{}, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		return res{}, err
	}
	req.Host = host
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	r, err := e.srv.Client().Do(req)
	if err != nil {
		return res{}, err
	}
	defer r.Body.Close()
	data, err := io.ReadAll(r.Body)
	return res{status: r.StatusCode, header: r.Header, body: data}, err
}

// must is call that fails the test on a transport error or another
// status than want.
func (e *poolEnv) must(want int, host, method, path string, body any, headers ...string) res {
	e.t.Helper()
	r, err := e.call(host, method, path, body, headers...)
	if err != nil {
		e.t.Fatal(err)
	}
	if r.status != want {
		e.t.Fatalf("%s %s (Host %s): %d, want %d: %s", method, path, host, r.status, want, r.body)
	}
	return r
}

// Requests as each dialect's clients send them.
func (c *tenantCreds) admin() string { return "Authorization: Bearer " + c.adminToken }
func (c *tenantCreds) sdk(token string) []string {
	h := []string{"X-Hydrogen-Client-ID: " + c.clientID}
	if token != "" {
		h = append(h, "Authorization: Hydrogen-r1 "+token)
	}
	return h
}
func (c *tenantCreds) host() string { return c.name + "." + c.ns }

// register makes a user through the SDK dialect: its id and token.
func (e *poolEnv) register(c *tenantCreds, username string) (int64, string) {
	e.t.Helper()
	m := e.must(http.StatusCreated, c.host(), "POST", "/hserve/v2.1/register/username/",
		map[string]any{"username": username, "password": "secret-" + username}, c.sdk("")...).obj(e.t)
	return int64(m["user_id"].(float64)), m["token"].(string)
}
