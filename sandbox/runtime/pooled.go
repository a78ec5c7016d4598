package runtime

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
)

// Pools locally. A bare API server has no kubelet, no EndpointSlice
// controller and no kube-proxy; for a UserServicePool the runtime stands in
// for the three:
//   - each replica of the pool's Deployment is a local `userve pool` with
//     the sandbox's kubeconfig, and a Pod object of its name exists (the
//     process records the tenant Secrets it applied on it);
//   - the pool's Service gets an EndpointSlice of the ready replicas, which
//     the operator mirrors into its pooled tenants' slices;
//   - a pooled tenant's URL follows its Service's slice: to the pool
//     replicas it names, with the tenant's Service name as Host.

// sliceManager marks the pool Service's slice as the sandbox's, in place
// of the EndpointSlice controller's.
const sliceManager = "userve-dev"

// pooledTenant is a tenant whose Service has the operator's EndpointSlice:
// the pool pods its endpoints name.
type pooledTenant struct {
	owner string
	pods  []types.NamespacedName // ready endpoints' target Pods
}

// operatorSlices selects the EndpointSlices the operator makes for pooled
// tenants' Services.
var operatorSlices = predicate.NewPredicateFuncs(func(o client.Object) bool {
	return o.GetLabels()[render.LabelEndpointSliceManagedBy] == render.EndpointSliceManager
})

// pooledReconciler keeps pooled tenants' URLs on their Services' endpoints.
type pooledReconciler struct{ r *Runtime }

func (pr pooledReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	r, key := pr.r, req.NamespacedName
	var s discoveryv1.EndpointSlice
	err := r.client.Get(ctx, key, &s)
	if err != nil && !apierrors.IsNotFound(err) {
		return reconcile.Result{}, err
	}
	owner := userServiceOwner(&s)
	r.mu.Lock()
	if err != nil || owner == "" || s.DeletionTimestamp != nil || !operatorSlices.Generic(event.GenericEvent{Object: &s}) {
		delete(r.pooled, key)
		r.closeFrontLocked(key)
		r.mu.Unlock()
		r.report(key)
		return reconcile.Result{}, nil
	}
	if r.closed {
		r.mu.Unlock()
		return reconcile.Result{}, nil
	}
	p := &pooledTenant{owner: owner}
	for _, e := range s.Endpoints {
		if e.TargetRef == nil || e.TargetRef.Kind != "Pod" || (e.Conditions.Ready != nil && !*e.Conditions.Ready) {
			continue
		}
		p.pods = append(p.pods, types.NamespacedName{Namespace: e.TargetRef.Namespace, Name: e.TargetRef.Name})
	}
	r.pooled[key] = p
	_, ferr := r.frontLocked(key)
	r.mu.Unlock()
	if ferr != nil {
		return reconcile.Result{}, ferr
	}
	r.report(key)
	return reconcile.Result{}, nil
}

// report tells OnUpdate what key looks like now, if that changed: its own
// replicas, or the pool pods its Service points at once any is ready.
func (r *Runtime) report(key types.NamespacedName) {
	r.mu.Lock()
	t, ok := r.viewLocked(key)
	prev, known := r.reported[key]
	changed := ok && (!known || !equality.Semantic.DeepEqual(prev, t))
	if ok {
		r.reported[key] = t
	} else {
		delete(r.reported, key)
	}
	r.mu.Unlock()
	if r.opts.OnUpdate == nil {
		return
	}
	switch {
	case changed:
		r.opts.OnUpdate(t)
	case !ok && known:
		r.opts.OnUpdate(Tenant{Namespace: key.Namespace, Name: key.Name, UserService: prev.UserService, ServesPool: prev.ServesPool, Removed: true})
	}
}

// viewLocked is key's Tenant: its pool's pods when its Service points at
// ready ones, else its own Deployment's replicas; false when it has neither.
func (r *Runtime) viewLocked(key types.NamespacedName) (Tenant, bool) {
	d, dedicated := r.deployments[key]
	if p, ok := r.pooled[key]; ok && (!dedicated || p.ready(r) > 0) {
		return r.pooledSnapshotLocked(key, p), true
	}
	if dedicated {
		return r.snapshotLocked(d), true
	}
	return Tenant{}, false
}

// poolReplicasLocked are the local replicas standing for p's pods.
func (r *Runtime) poolReplicasLocked(p *pooledTenant) []*replica {
	var out []*replica
	for _, pod := range p.pods {
		for _, d := range r.deployments {
			if d.pool == "" || d.key.Namespace != pod.Namespace {
				continue
			}
			for _, rep := range d.replicas {
				if rep.name == pod.Namespace+"/"+pod.Name {
					out = append(out, rep)
				}
			}
		}
	}
	return out
}

// ready counts the ready pool replicas serving p (r.mu held).
func (p *pooledTenant) ready(r *Runtime) int {
	n := 0
	for _, rep := range r.poolReplicasLocked(p) {
		if rep.isReady() {
			n++
		}
	}
	return n
}

func (r *Runtime) pooledSnapshotLocked(key types.NamespacedName, p *pooledTenant) Tenant {
	t := Tenant{Namespace: key.Namespace, Name: key.Name, UserService: p.owner, Desired: int32(max(1, len(p.pods)))}
	if f := r.fronts[key]; f != nil {
		t.URL = f.url
	}
	for _, rep := range r.poolReplicasLocked(p) {
		info := rep.info()
		info.Hash = "" // the pool's template, not the tenant's
		t.Pods = append(t.Pods, info)
		t.Replicas++
		t.Updated++
		if info.Ready {
			t.Ready++
		}
	}
	for _, d := range r.deployments {
		if d.pool != "" && len(p.pods) > 0 && d.key.Namespace == p.pods[0].Namespace {
			t.Pool = d.pool
		}
	}
	if t.Replicas < int32(len(p.pods)) {
		t.Replicas, t.Updated = int32(len(p.pods)), int32(len(p.pods)) // pods the sandbox does not run
	}
	return t
}

func serviceHost(key types.NamespacedName) string { return ServiceHost(key.Namespace, key.Name) }

// ServiceHost is a tenant Service's cluster DNS name, which a pool knows
// the tenant by (v1alpha1.TenantHosts).
func ServiceHost(namespace, name string) string {
	hosts := v1alpha1.TenantHosts(namespace, name, "")
	return hosts[len(hosts)-1]
}

// createPod makes the Pod object a pool replica stands for, afresh: a Pod
// left by an earlier run carries an acknowledgement the new process has
// not given.
func (r *Runtime) createPod(ctx context.Context, d *appsv1.Deployment, name string) error {
	old := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: d.Namespace, Name: name}}
	if err := r.client.Delete(ctx, old); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete the old Pod %s: %w", name, err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: d.Namespace, Name: name, Labels: d.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID}},
		},
		Spec: *d.Spec.Template.Spec.DeepCopy(),
	}
	if err := r.client.Create(ctx, pod); err != nil {
		return fmt.Errorf("create Pod %s for the local pool replica: %w", name, err)
	}
	return nil
}

func (r *Runtime) deletePod(rep *replica) {
	ns, name, _ := strings.Cut(rep.name, "/")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.client.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
	if err != nil && !apierrors.IsNotFound(err) {
		r.opts.Logf("%s: delete its Pod: %v", rep.name, err)
	}
}

// writeEndpoints gives the Service named like a tenant's or pool's
// Deployment an EndpointSlice of the local replicas while it has a
// selector, as the EndpointSlice controller would (and removes it when the
// selector goes): the operator points pooled tenants' Services at a pool's
// ready endpoints, and moves a tenant out of a pool only once its own pods
// are ready endpoints of its Service. Each replica gets an address of its
// own, 198.51.100.<index+1> (TEST-NET-2: the API server refuses loopback
// endpoints, and the operator tells endpoints apart by address); the URLs
// reach the replica's real port, not this address.
func (r *Runtime) writeEndpoints(ctx context.Context, d *appsv1.Deployment, t Tenant) error {
	var svc corev1.Service
	if err := r.client.Get(ctx, client.ObjectKeyFromObject(d), &svc); err != nil {
		// The operator makes it; the Service watch brings us back.
		return client.IgnoreNotFound(err)
	}
	if len(svc.Spec.Selector) == 0 {
		return r.deleteEndpoints(ctx, client.ObjectKeyFromObject(d))
	}
	slice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: d.Namespace, Name: d.Name + "-local"}}
	endpoints := []discoveryv1.Endpoint{}
	for _, p := range t.Pods {
		ns, name, _ := strings.Cut(p.Name, "/")
		index, _ := strconv.Atoi(name[strings.LastIndexByte(name, '-')+1:])
		ready, terminating := p.Ready, false
		endpoints = append(endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("198.51.100.%d", index%254+1)},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready, Terminating: &terminating},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: name},
		})
	}
	_, err := controllerutil.CreateOrUpdate(ctx, r.client, slice, func() error {
		slice.Labels = map[string]string{}
		for k, v := range svc.Labels {
			slice.Labels[k] = v
		}
		slice.Labels[discoveryv1.LabelServiceName] = svc.Name
		slice.Labels[discoveryv1.LabelManagedBy] = sliceManager
		slice.AddressType = discoveryv1.AddressTypeIPv4
		name, port, proto := render.PortName, int32(render.Port), corev1.ProtocolTCP
		slice.Ports = []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}}
		slice.Endpoints = endpoints
		return controllerutil.SetControllerReference(&svc, slice, r.client.Scheme())
	})
	if err != nil {
		return fmt.Errorf("write the local endpoints of Service %s/%s: %w", d.Namespace, d.Name, err)
	}
	return nil
}

// deleteEndpoints removes the local EndpointSlice of the Service named key,
// once its replicas are gone or it has no selector.
func (r *Runtime) deleteEndpoints(ctx context.Context, key types.NamespacedName) error {
	slice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name + "-local"}}
	if err := r.client.Delete(ctx, slice); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete the local endpoints of Service %s: %w", key, err)
	}
	return nil
}
