package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/tenantdb"
	"userve.dev/userve/sandbox/runtime"
	"userve.dev/userve/server/hserve"
)

// printer serializes lines to the terminal.
type printer struct {
	mu  sync.Mutex
	out io.Writer
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, format, args...)
}

// eventf prints a timestamped event line.
func (p *printer) eventf(format string, args ...any) {
	p.printf("%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// TenantFile is the JSON written to <state>/tenants.json for scripts.
type TenantFile struct {
	Tenants []TenantEntry `json:"tenants"`
}

// TenantEntry is one tenant's local access.
type TenantEntry struct {
	Namespace   string `json:"namespace"`
	UserService string `json:"userService"`
	URL         string `json:"url"`
	AdminToken  string `json:"adminToken,omitempty"`
	// DatabaseUser is the MongoDB user the tenant's processes log in as.
	DatabaseUser string     `json:"databaseUser,omitempty"`
	Desired      int32      `json:"desired"`
	Ready        int32      `json:"ready"`
	Pods         []PodEntry `json:"pods"`
}

// PodEntry is one local replica.
type PodEntry struct {
	Name string `json:"name"`
	Pid  int    `json:"pid,omitempty"`
	Port int    `json:"port"`
	// MetricsPort serves the replica's /metrics (the pods' metrics port).
	MetricsPort int    `json:"metricsPort,omitempty"`
	Ready       bool   `json:"ready"`
	Restarts    int32  `json:"restarts"`
	Log         string `json:"log"`
}

// reporter tells the developer about tenants as they come and go: the first
// time a tenant is ready it prints its URL, admin token and a curl line.
type reporter struct {
	p        *printer
	reader   client.Reader
	stateDir string
	podsDir  string

	mu      sync.Mutex
	state   map[string]string // "ns/name" -> ready|progressing|suspended
	shown   map[string]string // "ns/name" -> URL+token last printed in full
	entries map[string]TenantEntry
}

func newReporter(p *printer, reader client.Reader, stateDir string) *reporter {
	return &reporter{
		p: p, reader: reader, stateDir: stateDir, podsDir: filepath.Join(stateDir, "pods"),
		state: map[string]string{}, shown: map[string]string{}, entries: map[string]TenantEntry{},
	}
}

// update is the runtime's OnUpdate.
func (r *reporter) update(t runtime.Tenant) {
	key := t.Namespace + "/" + t.Name
	if t.Removed {
		r.mu.Lock()
		_, known := r.state[key]
		delete(r.state, key)
		delete(r.entries, key)
		r.mu.Unlock()
		if known {
			r.p.eventf("tenant %s removed", key)
		}
		r.writeFile()
		return
	}
	var token, dbUser string
	state := "progressing"
	switch {
	case t.Desired == 0 && t.Replicas == 0:
		state = "suspended"
	case t.RolledOut():
		state = "ready"
		token = firstToken(r.secretEnv(t, v1alpha1.EnvAdminTokens))
		dbUser, _, _ = tenantdb.Credentials(r.secretEnv(t, v1alpha1.EnvMongoURI))
	}

	r.mu.Lock()
	prev := r.state[key]
	r.state[key] = state
	entry := TenantEntry{Namespace: t.Namespace, UserService: t.UserService, URL: t.URL,
		AdminToken: token, DatabaseUser: dbUser, Desired: t.Desired, Ready: t.Ready}
	if token == "" {
		entry.AdminToken = r.entries[key].AdminToken
	}
	if dbUser == "" {
		entry.DatabaseUser = r.entries[key].DatabaseUser
	}
	for _, p := range t.Pods {
		entry.Pods = append(entry.Pods, PodEntry{Name: p.Name, Pid: p.Pid, Port: p.Port, MetricsPort: p.MetricsPort, Ready: p.Ready,
			Restarts: p.Restarts, Log: filepath.Join(r.podsDir, p.Name, "log")})
	}
	r.entries[key] = entry
	fullBlock := state == "ready" && r.shown[key] != t.URL+" "+token
	if fullBlock {
		r.shown[key] = t.URL + " " + token
	}
	r.mu.Unlock()
	r.writeFile()

	switch {
	case fullBlock:
		r.printReady(key, t, token, dbUser)
	case state == prev:
	case state == "ready":
		r.p.eventf("tenant %s ready: %d/%d replicas at %s", key, t.Ready, t.Desired, t.URL)
	case state == "suspended":
		r.p.eventf("tenant %s scaled to zero (suspended); %s answers 503 until it is resumed", key, t.URL)
	case state == "progressing" && prev != "":
		r.p.eventf("tenant %s rolling: %d/%d replicas ready", key, t.Ready, t.Desired)
	}
}

func (r *reporter) printReady(key string, t runtime.Tenant, token, dbUser string) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s tenant %s is ready (%d/%d replicas)\n", time.Now().Format("15:04:05"), key, t.Ready, t.Desired)
	fmt.Fprintf(&b, "    URL:          %s\n", t.URL)
	if token == "" {
		fmt.Fprintf(&b, "    admin token:  (not found: see the tenant's credentials Secret)\n")
		token = "<token>"
	} else {
		fmt.Fprintf(&b, "    admin token:  %s\n", token)
	}
	fmt.Fprintf(&b, "    management:   curl -H 'Authorization: Bearer %s' %s/userve/v2.0/miniapp/user_profile/\n", token, t.URL)
	fmt.Fprintf(&b, "    end users:    curl %s/api/v2/users\n", t.URL)
	if r.consoleOn(t) {
		fmt.Fprintf(&b, "    console:      %s/userve/console/   (sign in with the admin token)\n", t.URL)
	}
	if dbUser != "" {
		fmt.Fprintf(&b, "    MongoDB user: %s (the tenant's own; its URI is in the Secret the pods read)\n", dbUser)
	}
	if id := r.hserveClientID(t); id != "" {
		b.WriteString(hserve.DevSnippet(t.URL, id))
	}
	host := "127.0.0.1"
	if u, err := url.Parse(t.URL); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	for _, p := range t.Pods {
		if p.MetricsPort > 0 {
			// Each replica has its own metrics port, as each pod has; the
			// tenant URL (the Service) does not route /metrics.
			fmt.Fprintf(&b, "    metrics:      curl http://%s/metrics   (%s)\n", net.JoinHostPort(host, strconv.Itoa(p.MetricsPort)), p.Name)
		}
	}
	fmt.Fprintf(&b, "    logs:         %s\n", filepath.Join(r.podsDir, t.Namespace, t.Name+"-*", "log"))
	r.p.printf("%s", b.String())
}

// consoleOn reports whether the tenant serves the console (on unless its
// spec turns it or the management API off); when the spec cannot be
// read, the default, on.
func (r *reporter) consoleOn(t runtime.Tenant) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var us v1alpha1.UserService
	if err := r.reader.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: t.UserService}, &us); err != nil {
		return true
	}
	return v1alpha1.ConsoleEnabled(&us.Spec)
}

// hserveClientID is the tenant's MinApp SDK client ID while that dialect
// is on, else "".
func (r *reporter) hserveClientID(t runtime.Tenant) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var us v1alpha1.UserService
	if err := r.reader.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: t.UserService}, &us); err != nil {
		return ""
	}
	if !v1alpha1.HServeEnabled(&us.Spec) {
		return ""
	}
	return us.Spec.API.HServe.ClientID
}

// secretEnv is the value the tenant's pods get for the environment variable
// env: the Deployment's value, or the Secret key behind it.
func (r *reporter) secretEnv(t runtime.Tenant, env string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d appsv1.Deployment
	if err := r.reader.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: t.Name}, &d); err != nil {
		return ""
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.Name != env {
				continue
			}
			if e.Value != "" {
				return e.Value
			}
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				continue
			}
			ref := e.ValueFrom.SecretKeyRef
			var s corev1.Secret
			if err := r.reader.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: ref.Name}, &s); err != nil {
				return ""
			}
			return string(s.Data[ref.Key])
		}
	}
	return ""
}

func firstToken(s string) string {
	tok, _, _ := strings.Cut(s, ",")
	if _, t, named := strings.Cut(tok, ":"); named { // "name:token" (server/config.ParseAdminTokens)
		tok = t
	}
	return strings.TrimSpace(tok)
}

// writeFile writes <state>/tenants.json; a failure only costs scripts.
func (r *reporter) writeFile() {
	r.mu.Lock()
	f := TenantFile{Tenants: []TenantEntry{}}
	for _, e := range r.entries {
		f.Tenants = append(f.Tenants, e)
	}
	r.mu.Unlock()
	sort.Slice(f.Tenants, func(i, j int) bool {
		a, b := f.Tenants[i], f.Tenants[j]
		return a.Namespace+"/"+a.UserService < b.Namespace+"/"+b.UserService
	})
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return
	}
	path := filepath.Join(r.stateDir, "tenants.json")
	if err := os.WriteFile(path+".tmp", append(data, '\n'), 0o600); err == nil {
		_ = os.Rename(path+".tmp", path)
	}
}

// statusWatcher prints what the operator reports about a tenant that is not
// getting anywhere: Degraded at once, Pending or Deleting once it has lasted
// a few seconds (every new tenant is Pending briefly). Ready and Suspended
// are told by the runtime's lines.
type statusWatcher struct {
	client client.Client
	p      *printer

	mu      sync.Mutex
	printed map[types.NamespacedName]string // the last line printed
}

const stuckAfter = 10 * time.Second

func (w *statusWatcher) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var us v1alpha1.UserService
	if err := w.client.Get(ctx, req.NamespacedName, &us); err != nil {
		w.mu.Lock()
		delete(w.printed, req.NamespacedName)
		w.mu.Unlock()
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	line, wait := statusLine(&us, time.Now())
	if wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	w.mu.Lock()
	changed := line != "" && w.printed[req.NamespacedName] != line
	if line == "" {
		delete(w.printed, req.NamespacedName)
	} else {
		w.printed[req.NamespacedName] = line
	}
	w.mu.Unlock()
	if changed {
		w.p.eventf("usvc %s/%s %s", us.Namespace, us.Name, line)
	}
	return reconcile.Result{}, nil
}

// statusLine is what to say about us now ("" for nothing), or how long to
// wait before deciding.
func statusLine(us *v1alpha1.UserService, now time.Time) (string, time.Duration) {
	cond := func(typ string) *metav1.Condition {
		for i := range us.Status.Conditions {
			if us.Status.Conditions[i].Type == typ {
				return &us.Status.Conditions[i]
			}
		}
		return nil
	}
	switch us.Status.Phase {
	case v1alpha1.PhaseDegraded:
		if c := cond(v1alpha1.ConditionDegraded); c != nil {
			return "is Degraded: " + c.Message, 0
		}
		return "is Degraded", 0
	case v1alpha1.PhasePending, v1alpha1.PhaseDeleting, "":
		ready := cond(v1alpha1.ConditionReady)
		since := us.CreationTimestamp.Time
		msg := "no status from the operator yet"
		if ready != nil {
			since, msg = ready.LastTransitionTime.Time, ready.Message
		}
		if us.DeletionTimestamp != nil {
			since = us.DeletionTimestamp.Time
		}
		if wait := since.Add(stuckAfter).Sub(now); wait > 0 {
			return "", wait
		}
		phase := us.Status.Phase
		if phase == "" {
			phase = "waiting"
		}
		return "is still " + phase + ": " + msg, 0
	}
	return "", 0
}
