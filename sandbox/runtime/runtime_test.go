package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/test/kubefixture"
)

var env *kubefixture.Env

// The test binary doubles as a tiny tenant server: the runtime under test
// runs it as "<test binary> serve --config FILE --listen ADDR", exactly as it
// would run userve.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "serve" || os.Args[1] == "pool") {
		os.Exit(fakeServer(os.Args[2:]))
	}
	ctrl.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	os.Exit(kubefixture.Run(m, &env))
}

// fakeServer answers /readyz once FAKE_READY_FILE exists (when set; each
// refusal before that adds a line to FAKE_READY_FILE.refused), /info with
// what it was started with, and exits on SIGTERM.
func fakeServer(args []string) int {
	var configPath, listen, metricsListen string
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--config":
			configPath = args[i+1]
		case "--listen":
			listen = args[i+1]
		case "--metrics-listen":
			metricsListen = args[i+1]
		}
	}
	if metricsListen != "" {
		// Like userve serve: /metrics on its own listener; a port taken by
		// another replica fails the start.
		ln, err := net.Listen("tcp", metricsListen)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake server: metrics:", err)
			return 1
		}
		metrics := http.NewServeMux()
		metrics.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "fake_pid %d\n", os.Getpid())
		})
		go func() { _ = http.Serve(ln, metrics) }()
	}
	var config []byte
	if configPath != "" { // userve pool has none
		var err error
		if config, err = os.ReadFile(configPath); err != nil {
			fmt.Fprintln(os.Stderr, "fake server: config:", err)
			return 2
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if f := os.Getenv("FAKE_READY_FILE"); f != "" {
			if _, err := os.Stat(f); err != nil {
				if refused, err := os.OpenFile(f+".refused", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
					fmt.Fprintln(refused, "not ready")
					refused.Close()
				}
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/info", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"pid":    os.Getpid(),
			"config": string(config),
			"tokens": os.Getenv("USERVE_ADMIN_TOKENS"),
			"pod":    os.Getenv("POD_NAME"),
			"args":   os.Args,
			"host":   r.Host,
			"kube":   os.Getenv("KUBECONFIG"),
		})
	})
	srv := &http.Server{Addr: listen, Handler: mux}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() { <-sig; _ = srv.Close() }()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "fake server:", err)
		return 1
	}
	return 0
}

// harness is one runtime (and garbage collector) watching one namespace.
type harness struct {
	t       *testing.T
	ns      string
	c       client.Client
	rt      *Runtime
	dir     string
	updates atomic.Int64
	cancel  context.CancelFunc
	stopped chan struct{}
}

func start(t *testing.T) *harness {
	t.Helper()
	ns := fmt.Sprintf("rt-%d", time.Now().UnixNano()%1e9)
	c := env.Client
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ns: ns, c: c, dir: t.TempDir(), stopped: make(chan struct{})}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:     env.Scheme,
		Cache:      cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := New(Options{
		Dir:      h.dir,
		Logf:     t.Logf,
		OnUpdate: func(Tenant) { h.updates.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if err := (&GarbageCollector{Logf: t.Logf}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if err := (&Autoscaler{Logf: t.Logf}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	h.rt = rt
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		defer close(h.stopped)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	<-h.stopped
}

// tenant creates a UserService, its credentials Secret and config, and a
// Deployment shaped like the operator's, owned by the UserService.
func (h *harness) tenant(name string, replicas int32, mutate ...func(*appsv1.Deployment)) *appsv1.Deployment {
	h.t.Helper()
	ctx := context.Background()
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name}}
	h.must(h.c.Create(ctx, us))
	owner := metav1.OwnerReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "UserService", Name: name, UID: us.UID, Controller: ptr.To(true)}
	h.must(h.c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name + "-credentials", OwnerReferences: []metav1.OwnerReference{owner}},
		Data:       map[string][]byte{"admin-tokens": []byte("token-" + name)},
	}))
	h.must(h.c.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name + "-config", OwnerReferences: []metav1.OwnerReference{owner}},
		Data:       map[string]string{"userservice.yaml": "metadata: {name: " + name + "}\n"},
	}))
	d := tenantDeployment()
	d.Namespace, d.Name = h.ns, name
	d.OwnerReferences = []metav1.OwnerReference{owner}
	d.Spec.Replicas = ptr.To(replicas)
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
	d.Spec.Template.Labels = map[string]string{"app": name}
	spec := &d.Spec.Template.Spec
	spec.Volumes[0].ConfigMap.Name = name + "-config"
	c := &spec.Containers[0]
	c.Env = []corev1.EnvVar{
		{Name: "USERVE_ADMIN_TOKENS", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name + "-credentials"}, Key: "admin-tokens"}}},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
	}
	for _, m := range mutate {
		m(d)
	}
	h.must(h.c.Create(ctx, d))
	return d
}

func (h *harness) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) deployment(name string) *appsv1.Deployment {
	h.t.Helper()
	var d appsv1.Deployment
	h.must(h.c.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: name}, &d))
	return &d
}

// eventually polls cond for up to 60s.
func (h *harness) eventually(what string, cond func() (bool, string)) {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("timed out waiting for %s; last: %s", what, last)
}

// rolledOut: the Deployment status says every wanted replica is updated,
// ready and available for the current generation.
func (h *harness) rolledOut(name string, replicas int32) {
	h.t.Helper()
	h.eventually(fmt.Sprintf("%s rolled out to %d", name, replicas), func() (bool, string) {
		d := h.deployment(name)
		s := d.Status
		return s.ObservedGeneration == d.Generation && s.Replicas == replicas && s.UpdatedReplicas == replicas &&
			s.ReadyReplicas == replicas && s.AvailableReplicas == replicas, fmt.Sprintf("%+v", s)
	})
}

func (h *harness) tenantState(name string) Tenant {
	for _, t := range h.rt.Tenants() {
		if t.Namespace == h.ns && t.Name == name {
			return t
		}
	}
	return Tenant{}
}

func pids(t Tenant) map[int]bool {
	out := map[int]bool{}
	for _, p := range t.Pods {
		out[p.Pid] = true
	}
	return out
}

func processAlive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

type info struct {
	Pid    int      `json:"pid"`
	Config string   `json:"config"`
	Tokens string   `json:"tokens"`
	Pod    string   `json:"pod"`
	Args   []string `json:"args"`
	Host   string   `json:"host"`
	Kube   string   `json:"kube"`
}

func getInfo(t *testing.T, url string) (info, error) {
	t.Helper()
	resp, err := http.Get(url + "/info")
	if err != nil {
		return info{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return info{}, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	var i info
	return i, json.Unmarshal(body, &i)
}

func TestRunsReplicasWithTheTemplatesConfigAndReportsReady(t *testing.T) {
	h := start(t)
	h.tenant("acme", 2)
	h.rolledOut("acme", 2)

	d := h.deployment("acme")
	url := d.Annotations[URLAnnotation]
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("URL annotation %q", url)
	}
	for _, c := range d.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			t.Errorf("condition %s is %s (%s)", c.Type, c.Status, c.Message)
		}
	}
	st := h.tenantState("acme")
	if st.URL != url || len(st.Pods) != 2 || st.UserService != "acme" {
		t.Fatalf("tenant state %+v", st)
	}

	// Requests through the tenant URL reach both replicas, each started
	// with the materialized config, the resolved secret and its pod name.
	seen := map[int]info{}
	for i := 0; i < 6; i++ {
		in, err := getInfo(t, url)
		if err != nil {
			t.Fatal(err)
		}
		seen[in.Pid] = in
	}
	if len(seen) != 2 {
		t.Fatalf("requests reached %d replicas, want 2", len(seen))
	}
	pods := map[string]bool{}
	for pid, in := range seen {
		if !pids(st)[pid] {
			t.Errorf("pid %d not among the runtime's %v", pid, st.Pods)
		}
		if in.Config != "metadata: {name: acme}\n" || in.Tokens != "token-acme" {
			t.Errorf("replica started with config %q tokens %q", in.Config, in.Tokens)
		}
		pods[in.Pod] = true
		if cfg := in.Args[3]; !strings.HasPrefix(cfg, filepath.Join(h.dir, h.ns, in.Pod, "volumes", "config")) {
			t.Errorf("config path %q not under the pod dir", cfg)
		}
		pidFile, err := os.ReadFile(filepath.Join(h.dir, h.ns, in.Pod, "pid"))
		if err != nil || strings.TrimSpace(string(pidFile)) != strconv.Itoa(pid) {
			t.Errorf("pid file of %s: %q, %v", in.Pod, pidFile, err)
		}
	}
	if !pods["acme-0"] || !pods["acme-1"] {
		t.Errorf("pod names %v, want acme-0 and acme-1", pods)
	}
	// Each replica serves /metrics on a port of its own (the template's
	// :9090 would collide), and that port is not the tenant URL's.
	metricsPorts := map[int]bool{}
	for _, p := range st.Pods {
		if p.MetricsPort == 0 || p.MetricsPort == p.Port || metricsPorts[p.MetricsPort] {
			t.Errorf("pod %s: metrics port %d (api port %d, taken %v)", p.Name, p.MetricsPort, p.Port, metricsPorts)
			continue
		}
		metricsPorts[p.MetricsPort] = true
		res, err := http.Get("http://127.0.0.1:" + strconv.Itoa(p.MetricsPort) + "/metrics")
		if err != nil {
			t.Errorf("pod %s metrics: %v", p.Name, err)
			continue
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if want := "fake_pid " + strconv.Itoa(p.Pid); !strings.Contains(string(body), want) {
			t.Errorf("pod %s metrics %q, want %q", p.Name, body, want)
		}
	}
	if h.updates.Load() == 0 {
		t.Error("OnUpdate never called")
	}
}

func TestRestartsAKilledProcess(t *testing.T) {
	h := start(t)
	h.tenant("crash", 1)
	h.rolledOut("crash", 1)
	before := h.tenantState("crash").Pods[0]
	if err := syscall.Kill(before.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.eventually("a new ready process", func() (bool, string) {
		st := h.tenantState("crash")
		return len(st.Pods) == 1 && st.Pods[0].Pid != before.Pid && st.Pods[0].Pid != 0 && st.Pods[0].Ready,
			fmt.Sprintf("%+v", st.Pods)
	})
	after := h.tenantState("crash").Pods[0]
	if after.Restarts != 1 || !strings.Contains(after.LastExit, "killed") || after.Name != before.Name {
		t.Errorf("after restart: %+v", after)
	}
	h.rolledOut("crash", 1)
	if _, err := getInfo(t, h.tenantState("crash").URL); err != nil {
		t.Fatal(err)
	}
}

func TestRollsReplicasOnTemplateChangeWithoutDowntime(t *testing.T) {
	h := start(t)
	d := h.tenant("roll", 2)
	h.rolledOut("roll", 2)
	url := h.tenantState("roll").URL
	old := pids(h.tenantState("roll"))

	// Keep calling the tenant URL during the rollout: it must never fail.
	var calls, failures atomic.Int64
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := getInfo(t, url); err != nil {
				failures.Add(1)
				t.Logf("during rollout: %v", err)
			}
			calls.Add(1)
			time.Sleep(10 * time.Millisecond)
		}
	}()

	d = h.deployment("roll")
	base := d.DeepCopy()
	d.Spec.Template.Annotations = map[string]string{"userve.dev/config-hash": "v2"}
	h.must(h.c.Patch(context.Background(), d, client.MergeFrom(base)))
	h.rolledOut("roll", 2)
	h.eventually("old processes gone", func() (bool, string) {
		for pid := range old {
			if processAlive(pid) {
				return false, fmt.Sprintf("pid %d alive", pid)
			}
		}
		return true, ""
	})
	close(done)
	for pid := range pids(h.tenantState("roll")) {
		if old[pid] {
			t.Errorf("pid %d survived the rollout", pid)
		}
	}
	if calls.Load() == 0 || failures.Load() != 0 {
		t.Fatalf("%d of %d calls failed during the rollout", failures.Load(), calls.Load())
	}
}

func TestScalesUpAndDownToZero(t *testing.T) {
	h := start(t)
	h.tenant("scale", 1)
	h.rolledOut("scale", 1)
	scale := func(n int32) {
		d := h.deployment("scale")
		base := d.DeepCopy()
		d.Spec.Replicas = ptr.To(n)
		h.must(h.c.Patch(context.Background(), d, client.MergeFrom(base)))
	}
	scale(3)
	h.rolledOut("scale", 3)
	three := pids(h.tenantState("scale"))
	if len(three) != 3 {
		t.Fatalf("pids %v", three)
	}
	scale(0)
	h.rolledOut("scale", 0)
	h.eventually("processes gone", func() (bool, string) {
		for pid := range three {
			if processAlive(pid) {
				return false, fmt.Sprintf("pid %d alive", pid)
			}
		}
		return true, ""
	})
	// A suspended tenant's URL answers 503, not a connection error.
	resp, err := http.Get(h.tenantState("scale").URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d with no replicas", resp.StatusCode)
	}
	// Pod directories keep their logs but not the materialized secrets.
	if _, err := os.Stat(filepath.Join(h.dir, h.ns, "scale-0", "log")); err != nil {
		t.Error(err)
	}
	h.eventually("materialized volumes removed", func() (bool, string) {
		_, err := os.Stat(filepath.Join(h.dir, h.ns, "scale-0", "volumes"))
		return os.IsNotExist(err), fmt.Sprint(err)
	})
}

func TestUnreadyReplicaBlocksTheRolloutAndKeepsTheOldOne(t *testing.T) {
	h := start(t)
	h.tenant("gate", 1)
	h.rolledOut("gate", 1)
	old := h.tenantState("gate").Pods[0]

	// The new template's server is not ready until /tmp/ready exists.
	d := h.deployment("gate")
	base := d.DeepCopy()
	c := &d.Spec.Template.Spec.Containers[0]
	c.Env = append(c.Env, corev1.EnvVar{Name: "FAKE_READY_FILE", Value: "/tmp/ready"})
	h.must(h.c.Patch(context.Background(), d, client.MergeFrom(base)))

	rolling := func(st appsv1.DeploymentStatus) bool {
		return st.ReadyReplicas == 1 && st.UpdatedReplicas == 1 && st.Replicas == 2
	}
	h.eventually("a second, unready replica", func() (bool, string) {
		st := h.deployment("gate").Status
		return len(h.tenantState("gate").Pods) == 2 && rolling(st), fmt.Sprintf("%+v", st)
	})
	// The container's /tmp is the pod's emptyDir, here in the pod directory.
	tmp := filepath.Join(h.dir, h.ns, "gate-1", "volumes", "tmp")
	h.eventually("the new replica refuses three readiness probes", func() (bool, string) {
		b, _ := os.ReadFile(filepath.Join(tmp, "ready.refused"))
		return bytes.Count(b, []byte("\n")) >= 3, string(b)
	})
	if st := h.deployment("gate").Status; !rolling(st) || !processAlive(old.Pid) {
		t.Fatalf("while the new replica is unready: %+v (old alive: %v)", st, processAlive(old.Pid))
	}
	h.must(os.WriteFile(filepath.Join(tmp, "ready"), nil, 0o644))
	h.rolledOut("gate", 1)
	h.eventually("old replica stopped", func() (bool, string) { return !processAlive(old.Pid), "" })
}

func TestMissingSecretIsReportedUntilItAppears(t *testing.T) {
	h := start(t)
	h.tenant("late", 1, func(d *appsv1.Deployment) {
		c := &d.Spec.Template.Spec.Containers[0]
		c.Env = append(c.Env, corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "late-extra"}, Key: "x"}}})
	})
	h.eventually("the problem in the status", func() (bool, string) {
		for _, c := range h.deployment("late").Status.Conditions {
			if c.Type == appsv1.DeploymentProgressing && strings.Contains(c.Message, "late-extra") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", h.deployment("late").Status.Conditions)
	})
	if st := h.tenantState("late"); !strings.Contains(st.Problem, "late-extra") {
		t.Errorf("tenant problem %q", st.Problem)
	}
	h.must(h.c.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "late-extra"},
		Data:       map[string][]byte{"x": []byte("1")},
	}))
	h.rolledOut("late", 1)
}
