// Package runtime is the sandbox's stand-in for the kubelet and the
// Deployment controller: it watches Deployments owned by UserServices and
// runs each replica of their pod template as a local process (the local
// userve binary in place of the image, the same args, env, ConfigMaps and
// Secrets), writes their readiness back into the Deployment status, restarts
// processes that die and rolls them when the template or replica count
// changes. Each tenant gets a stable local URL that spreads requests over its
// ready replicas, as a Service would.
package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/sandbox/proc"
)

// URLAnnotation on a tenant Deployment holds its local URL, for kubectl:
//
//	kubectl get deploy acme -o jsonpath='{.metadata.annotations.userve\.dev/local-url}'
const URLAnnotation = "userve.dev/local-url"

// Options configure a Runtime.
type Options struct {
	// Dir holds one directory per replica: Dir/<namespace>/<deployment>-<i>.
	Dir string
	// Executable replaces every container image; default os.Executable().
	Executable string
	// Host is the loopback address processes and URLs listen on; default 127.0.0.1.
	Host string
	// Ports keeps each tenant URL's port across runs; nil picks new ports.
	Ports *proc.PortBook
	// Logf receives one line per process event (start, exit, problem).
	Logf func(format string, args ...any)
	// OnUpdate is called after a tenant's (or a pool's) local state changed.
	OnUpdate func(Tenant)
	// Kubeconfig is given to pool processes (KUBECONFIG) in place of the
	// service account token their pods mount: they watch their tenants'
	// Secrets and annotate their own Pod.
	Kubeconfig string
}

// Tenant is the local state of one UserService's Deployment.
type Tenant struct {
	Namespace   string
	Name        string // the Deployment
	UserService string
	URL         string
	Desired     int32
	Replicas    int32 // running processes, terminating ones excluded
	Updated     int32 // of those, running the current template
	Ready       int32
	// Problem says why replicas cannot be started, if they cannot.
	Problem string
	Pods    []PodStatus
	// Removed: the Deployment is gone (or no longer a tenant's); its
	// processes are stopping and its URL is closed.
	Removed bool
	// Pool: the tenant is served by this UserServicePool's pods (its
	// Service's endpoints are the pool's); Pods are those pool pods.
	Pool string
	// ServesPool: this is not a tenant but the Deployment of this
	// UserServicePool (no URL of its own: the pool routes by Host).
	ServesPool string
}

// RolledOut reports whether every wanted replica runs the current template and is ready.
func (t Tenant) RolledOut() bool {
	return t.Problem == "" && t.Replicas == t.Desired && t.Updated == t.Desired && t.Ready == t.Desired
}

// Runtime runs tenant Deployments as local processes.
type Runtime struct {
	opts   Options
	client client.Client
	lookup Lookup
	events chan event.GenericEvent

	mu          sync.Mutex
	closed      bool
	deployments map[types.NamespacedName]*deployment
	// fronts are the tenants' URLs, shared by a tenant's own replicas and
	// the pool pods its Service points at (both serve during a move).
	fronts   map[types.NamespacedName]*frontend
	pooled   map[types.NamespacedName]*pooledTenant
	reported map[types.NamespacedName]Tenant
	stopping sync.WaitGroup
}

type deployment struct {
	key         types.NamespacedName
	owner       string
	pool        string // the UserServicePool owning it, for a pool's Deployment
	front       *frontend
	replicas    []*replica
	terminating map[int]*replica
	hash        string // current pod template
	desired     int32
	problem     string
}

// New makes a Runtime; SetupWithManager wires it in.
func New(opts Options) (*Runtime, error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the userve binary: %w", err)
		}
		opts.Executable = exe
	}
	if opts.Dir == "" {
		return nil, fmt.Errorf("runtime: Options.Dir is required")
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	return &Runtime{
		opts:        opts,
		events:      make(chan event.GenericEvent, 1024),
		deployments: map[types.NamespacedName]*deployment{},
		fronts:      map[types.NamespacedName]*frontend{},
		pooled:      map[types.NamespacedName]*pooledTenant{},
		reported:    map[types.NamespacedName]Tenant{},
	}, nil
}

// SetupWithManager registers the runtime's controller and its shutdown with
// mgr. ConfigMaps and Secrets are read uncached, so the manager's cache holds
// only Deployments.
func (r *Runtime) SetupWithManager(mgr ctrl.Manager) error {
	r.client = mgr.GetClient()
	r.lookup = readerLookup{mgr.GetAPIReader()}
	if err := mgr.Add(r); err != nil {
		return err
	}
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("local-runtime").
		For(&appsv1.Deployment{}, builder.WithPredicates(ownedByTenantOrPool)).
		// A Service named like the Deployment: its endpoints follow its selector.
		Watches(&corev1.Service{}, &handler.EnqueueRequestForObject{}, builder.WithPredicates(ownedByTenantOrPool)).
		WatchesRawSource(source.Channel(r.events, &handler.EnqueueRequestForObject{})).
		Complete(r); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("local-pooled-services").
		For(&discoveryv1.EndpointSlice{}, builder.WithPredicates(operatorSlices)).
		Complete(pooledReconciler{r})
}

// Start waits for the manager to stop, then stops every process (Runnable).
func (r *Runtime) Start(ctx context.Context) error {
	<-ctx.Done()
	r.Shutdown()
	return nil
}

// NeedLeaderElection: processes run wherever the sandbox runs.
func (r *Runtime) NeedLeaderElection() bool { return false }

// Shutdown stops every process and URL and refuses to start new ones.
func (r *Runtime) Shutdown() {
	r.mu.Lock()
	r.closed = true
	var all []*replica
	var fronts []*frontend
	for _, d := range r.deployments {
		all = append(all, d.replicas...)
		for _, t := range d.terminating {
			all = append(all, t)
		}
		d.replicas = nil
	}
	for _, f := range r.fronts {
		fronts = append(fronts, f)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, rep := range all {
		wg.Go(rep.stop)
	}
	wg.Wait()
	r.stopping.Wait()
	for _, f := range fronts {
		f.close()
	}
}

// Tenants is a snapshot of every tenant the runtime runs.
func (r *Runtime) Tenants() []Tenant {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Tenant
	for _, d := range r.deployments {
		if _, pooled := r.pooled[d.key]; !pooled {
			out = append(out, r.snapshotLocked(d))
		}
	}
	for key := range r.pooled {
		if t, ok := r.viewLocked(key); ok {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name
	})
	return out
}

// ownedByTenantOrPool selects tenants' Deployments and pools' Deployments.
var ownedByTenantOrPool = predicate.Funcs{
	CreateFunc:  func(e event.CreateEvent) bool { return runs(e.Object) },
	DeleteFunc:  func(e event.DeleteEvent) bool { return runs(e.Object) },
	GenericFunc: func(e event.GenericEvent) bool { return runs(e.Object) },
	// Losing the owner reference must stop the processes too.
	UpdateFunc: func(e event.UpdateEvent) bool { return runs(e.ObjectOld) || runs(e.ObjectNew) },
}

// runs: obj is a tenant's or a pool's (by its owner).
func runs(obj metav1.Object) bool {
	return userServiceOwner(obj) != "" || ownerOfKind(obj, "UserServicePool") != ""
}

// userServiceOwner is the name of the UserService owning obj, or "".
func userServiceOwner(obj metav1.Object) string { return ownerOfKind(obj, "UserService") }

// ownerOfKind is the name of obj's owner of that kind in userve's API group, or "".
func ownerOfKind(obj metav1.Object, kind string) string {
	for _, ref := range obj.GetOwnerReferences() {
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err == nil && gv.Group == v1alpha1.GroupVersion.Group && ref.Kind == kind {
			return ref.Name
		}
	}
	return ""
}

// trigger asks for a reconcile of key; never blocks (a full queue already
// holds a pending reconcile).
func (r *Runtime) trigger(key types.NamespacedName) {
	obj := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	select {
	case r.events <- event.GenericEvent{Object: obj}:
	default:
	}
}

// Reconcile converges one Deployment's local processes and writes its status.
func (r *Runtime) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	key := req.NamespacedName
	var d appsv1.Deployment
	if err := r.client.Get(ctx, key, &d); err != nil {
		if apierrors.IsNotFound(err) {
			r.remove(key)
			return reconcile.Result{}, r.deleteEndpoints(ctx, key)
		}
		return reconcile.Result{}, err
	}
	owner, pool := userServiceOwner(&d), ownerOfKind(&d, "UserServicePool")
	if (owner == "" && pool == "") || d.DeletionTimestamp != nil {
		r.remove(key)
		return reconcile.Result{}, r.deleteEndpoints(ctx, key)
	}
	dep, err := r.ensure(key, owner, pool)
	if err != nil || dep == nil {
		return reconcile.Result{}, err
	}

	desired := int32(1)
	if d.Spec.Replicas != nil {
		desired = *d.Spec.Replicas
	}
	hash := TemplateHash(&d.Spec.Template)
	toStart := r.scale(dep, hash, int(desired))

	var problem string
	for _, index := range toStart {
		if err := r.startReplica(ctx, dep, &d, hash, index); err != nil {
			problem = err.Error()
			break
		}
	}
	r.mu.Lock()
	if problem != dep.problem && problem != "" {
		r.opts.Logf("%s/%s: cannot start a replica: %s", key.Namespace, key.Name, problem)
	}
	dep.problem = problem
	t := r.snapshotLocked(dep)
	r.mu.Unlock()

	if err := r.writeStatus(ctx, &d, t, hash); err != nil {
		return reconcile.Result{}, err
	}
	r.report(key)
	if pool != "" {
		// Its tenants' URLs follow its replicas' readiness.
		r.mu.Lock()
		var served []types.NamespacedName
		for k := range r.pooled {
			served = append(served, k)
		}
		r.mu.Unlock()
		for _, k := range served {
			r.report(k)
		}
	}
	if err := r.writeEndpoints(ctx, &d, t); err != nil {
		return reconcile.Result{}, err
	}
	if problem != "" {
		// The missing Secret or ConfigMap may appear: look again soon.
		return reconcile.Result{RequeueAfter: 3 * time.Second}, nil
	}
	return reconcile.Result{}, nil
}

// ensure returns key's state, creating it and its URL on first sight; nil
// after Shutdown. A pool's Deployment gets no URL: the pool routes by Host,
// and its tenants' URLs reach it.
func (r *Runtime) ensure(key types.NamespacedName, owner, pool string) (*deployment, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, nil
	}
	if d, ok := r.deployments[key]; ok {
		d.owner, d.pool = owner, pool
		return d, nil
	}
	d := &deployment{key: key, owner: owner, pool: pool, terminating: map[int]*replica{}}
	if pool == "" {
		front, err := r.frontLocked(key)
		if err != nil {
			return nil, err
		}
		d.front = front
	}
	r.deployments[key] = d
	return d, nil
}

// remove stops everything of a Deployment that is gone or no longer a tenant's.
func (r *Runtime) remove(key types.NamespacedName) {
	r.mu.Lock()
	d, ok := r.deployments[key]
	if ok {
		delete(r.deployments, key)
		for _, rep := range d.replicas {
			r.terminateLocked(d, rep)
		}
		d.replicas = nil
		r.closeFrontLocked(key)
	}
	r.mu.Unlock()
	if ok {
		r.report(key)
	}
}

// scale decides, Deployment-controller style (surge 1, unavailable 0), which
// replicas to stop now and which indices to start: unready replicas of an
// old template go at once, ready old ones only while enough others are
// ready; a new replica starts while fewer than desired run the current
// template and at most desired+1 run in total.
func (r *Runtime) scale(d *deployment, hash string, desired int) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	d.hash, d.desired = hash, int32(desired)
	var current, old []*replica
	ready := 0
	for _, rep := range d.replicas {
		if rep.hash == hash {
			current = append(current, rep)
		} else {
			old = append(old, rep)
		}
		if rep.isReady() {
			ready++
		}
	}
	var keepOld []*replica
	for _, rep := range old {
		switch {
		case !rep.isReady():
			r.terminateLocked(d, rep)
		case ready-1 >= desired:
			r.terminateLocked(d, rep)
			ready--
		default:
			keepOld = append(keepOld, rep)
		}
	}
	if len(current) > desired {
		// Unready first, then the highest index, like a ReplicaSet scaling down.
		sort.SliceStable(current, func(i, j int) bool {
			ri, rj := current[i].isReady(), current[j].isReady()
			if ri != rj {
				return !ri
			}
			return current[i].index > current[j].index
		})
		for _, rep := range current[:len(current)-desired] {
			r.terminateLocked(d, rep)
		}
		current = current[len(current)-desired:]
	}
	d.replicas = append(append([]*replica(nil), current...), keepOld...)

	var start []int
	used := map[int]bool{}
	for _, rep := range d.replicas {
		used[rep.index] = true
	}
	for i := range d.terminating {
		used[i] = true
	}
	n := len(current)
	for n < desired && n+len(keepOld) < desired+1 {
		i := 0
		for used[i] {
			i++
		}
		used[i] = true
		start = append(start, i)
		n++
	}
	return start
}

// terminateLocked moves rep out of the running set and stops it in the
// background; its index stays taken until it is gone.
func (r *Runtime) terminateLocked(d *deployment, rep *replica) {
	d.terminating[rep.index] = rep
	r.stopping.Go(func() {
		rep.stop()
		r.opts.Logf("%s: stopped", rep.name)
		if d.pool != "" {
			r.deletePod(rep)
		}
		r.mu.Lock()
		if d.terminating[rep.index] == rep {
			delete(d.terminating, rep.index)
		}
		r.mu.Unlock()
		r.trigger(d.key)
	})
}

func (r *Runtime) startReplica(ctx context.Context, d *deployment, dep *appsv1.Deployment, hash string, index int) error {
	name := dep.Name + "-" + strconv.Itoa(index)
	port, err := proc.FreePort(r.opts.Host)
	if err != nil {
		return err
	}
	metricsPort, err := proc.FreePort(r.opts.Host)
	if err != nil {
		return err
	}
	pod := Pod{
		Namespace:   dep.Namespace,
		Name:        name,
		Dir:         filepath.Join(r.opts.Dir, dep.Namespace, name),
		Host:        r.opts.Host,
		Port:        port,
		MetricsPort: metricsPort,
	}
	if d.pool != "" {
		pod.Kubeconfig = r.opts.Kubeconfig
	}
	launch, err := Render(ctx, r.lookup, dep, pod, r.opts.Executable)
	if err != nil {
		return err
	}
	if d.pool != "" {
		// The pool process annotates its own Pod: there must be one.
		if err := r.createPod(ctx, dep, name); err != nil {
			return err
		}
	}
	if !launch.ServesMetrics {
		pod.MetricsPort = 0
	}
	key := d.key
	rep := &replica{
		name:   dep.Namespace + "/" + name,
		index:  index,
		hash:   hash,
		dir:    pod.Dir,
		host:   pod.Host,
		port:   pod.Port,
		launch: launch,

		metricsPort: pod.MetricsPort,
		logf:        r.opts.Logf,
		notify:      func() { r.trigger(key) },
		stopCh:      make(chan struct{}),
		done:        make(chan struct{}),
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.deployments[key] != d {
		return nil // shut down or removed meanwhile
	}
	d.replicas = append(d.replicas, rep)
	go rep.supervise()
	return nil
}
