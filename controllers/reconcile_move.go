package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
)

// movePoll is how often a moving tenant is looked at again: a move waits
// for things the operator does not watch (the EndpointSlice controller's
// slices of other Services). ackPoll is the same while it waits for pool
// pods to apply its Secret, which the operator watches
// (tenantsAwaitingPod): the poll is only a safety net there, and polling
// every waiting tenant each second swamped the queue at 10,000 tenants.
const (
	movePoll = time.Second
	ackPoll  = 10 * time.Second
)

// poolServing is the pool whose pods the tenant's Service points at.
type poolServing struct {
	pool  string
	ready int32
}

// move is how one reconcile lays out a tenant between its own Deployment
// and a pool.
type move struct {
	layout  layout
	placed  metav1.Condition
	serving *poolServing
	// moving: come back soon (movePoll; ackPoll when awaitingAck).
	moving      bool
	awaitingAck bool
	// leave is the pool the tenant has left once the layout is applied.
	leave string
}

// arrange decides the tenant's layout. Moving in: the tenant's Secret is
// written to the pool; once every ready pool pod has applied it, the
// tenant's Service gets an EndpointSlice of the pool's endpoints and then
// loses its selector (both sets of endpoints serve meanwhile); once the
// EndpointSlice controller has withdrawn the tenant's own pods, its
// Deployment goes. Moving out runs backwards: the Deployment comes back,
// and only once it is available does the Service get its selector back,
// and only once the tenant's own pods are ready endpoints do the pool's go.
func (r *UserServiceReconciler) arrange(ctx context.Context, us *v1alpha1.UserService, out rendered) (move, *failure) {
	pl, err := r.place(ctx, us)
	if err != nil {
		return move{}, &failure{Reason: ReasonApplyFailed, Err: err}
	}
	var svc corev1.Service
	svcFound := true
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(us), &svc); apierrors.IsNotFound(err) {
		svcFound = false
	} else if err != nil {
		return move{}, &failure{Reason: ReasonApplyFailed, Err: err}
	}
	poolService := svcFound && len(svc.Spec.Selector) == 0
	family := discoveryv1.AddressTypeIPv4
	if svcFound && len(svc.Spec.IPFamilies) > 0 && svc.Spec.IPFamilies[0] == corev1.IPv6Protocol {
		family = discoveryv1.AddressTypeIPv6
	}
	cur := us.Status.Pool
	fail := func(err error) (move, *failure) { return move{}, &failure{Reason: ReasonApplyFailed, Err: err} }
	moving := func(reason, format string, a ...any) metav1.Condition {
		return metav1.Condition{Type: v1alpha1.ConditionPlaced, Status: metav1.ConditionFalse, Reason: reason, Message: fmt.Sprintf(format, a...)}
	}

	switch {
	case pl.target != "" && pl.target == cur:
		r.drains.forget(client.ObjectKeyFromObject(us))
		rv, f := r.writePoolSecret(ctx, us, out, pl.target, pl.targetNamespace, false)
		if f != nil {
			return move{}, f
		}
		eps, err := r.poolEndpoints(ctx, pl.target, pl.targetNamespace, family)
		if err != nil {
			return fail(err)
		}
		slice := render.TenantEndpointSlice(us, family, eps)
		serving := &poolServing{pool: pl.target, ready: int32(len(eps))}
		// A tenant born in a pool has no Deployment: none is made for the
		// moment the pool takes to apply its Secret (nobody calls it yet).
		own, err := r.hasDeployment(ctx, us)
		if err != nil {
			return fail(err)
		}
		if poolService && !r.hasTenantSlice(ctx, us) {
			// Born in the pool: its Service never had a selector. It gets
			// the pool's endpoints once the pool has applied its Secret.
			applied, pod, err := r.poolApplied(ctx, pl.targetNamespace, rv, eps)
			if err != nil {
				return fail(err)
			}
			if !applied {
				return move{layout: layout{dedicated: own, poolService: !own}, placed: moving(ReasonMovingIn, "moving into UserServicePool %s: %s; %s", pl.target, notApplied(pod), meanwhile(own)), moving: true, awaitingAck: true}, nil
			}
		}
		if poolService {
			left, err := r.withdrawDedicatedEndpoints(ctx, us)
			if err != nil {
				return fail(err)
			}
			m := move{layout: layout{dedicated: left && own, poolService: true, slice: slice}, placed: pl.placed, serving: serving, moving: left}
			if left {
				m.placed = moving(ReasonMovingIn, "served by UserServicePool %s; the tenant's own pods are being withdrawn from its Service's endpoints", pl.target)
			}
			return m, nil
		}
		applied, pod, err := r.poolApplied(ctx, pl.targetNamespace, rv, eps)
		if err != nil {
			return fail(err)
		}
		if !applied {
			// Without pods of its own, the Service loses its selector at
			// once: a selector would only have the EndpointSlice controller
			// write a slice of no pods, for the move to withdraw.
			return move{layout: layout{dedicated: own, poolService: !own}, placed: moving(ReasonMovingIn, "moving into UserServicePool %s: %s; %s", pl.target, notApplied(pod), meanwhile(own)), moving: true, awaitingAck: true}, nil
		}
		return move{layout: layout{dedicated: own, poolService: true, slice: slice}, serving: serving, moving: true,
			placed: moving(ReasonMovingIn, "moving into UserServicePool %s: its Service now points at the pool's pods", pl.target)}, nil

	case cur != "":
		placed := moving(ReasonMovingOut, "leaving UserServicePool %s: waiting for the tenant's own Deployment", cur)
		if pl.refused {
			placed.Message += " (" + pl.placed.Message + ")"
		}
		var slice *discoveryv1.EndpointSlice
		var serving *poolServing
		if pool, err := r.getPool(ctx, cur); err != nil {
			return fail(err)
		} else if pool != nil {
			ns := render.PoolNamespace(pool, r.PoolNamespace)
			// Draining (a previous reconcile withdrew the pool's endpoints):
			// the pool closes the connections clients still hold to it.
			if _, f := r.writePoolSecret(ctx, us, out, cur, ns, r.drains.started(client.ObjectKeyFromObject(us))); f != nil {
				return move{}, f
			}
			eps, err := r.poolEndpoints(ctx, cur, ns, family)
			if err != nil {
				return fail(err)
			}
			slice = render.TenantEndpointSlice(us, family, eps)
			serving = &poolServing{pool: cur, ready: int32(len(eps))}
		} else {
			slice = render.TenantEndpointSlice(us, family, nil)
		}
		if poolService {
			var d appsv1.Deployment
			err := r.Client.Get(ctx, client.ObjectKeyFromObject(us), &d)
			if err != nil && !apierrors.IsNotFound(err) {
				return fail(err)
			}
			available := err == nil && rolloutOf(&d).done && d.Spec.Template.Annotations[render.AnnotationConfigHash] == out.deployment.Spec.Template.Annotations[render.AnnotationConfigHash]
			return move{layout: layout{dedicated: true, poolService: !available, slice: slice}, placed: placed, serving: serving, moving: true}, nil
		}
		// The Service has its selector. If the pool never had its
		// endpoints (a move in that did not get that far), nothing waits.
		switched := true
		if err := r.Client.Get(ctx, client.ObjectKeyFromObject(us), &discoveryv1.EndpointSlice{}); apierrors.IsNotFound(err) {
			switched = false
		} else if err != nil {
			return fail(err)
		}
		ready, err := r.dedicatedSlicesLeft(ctx, us, true)
		if err != nil {
			return fail(err)
		}
		if switched && !ready && !(render.Replicas(us) != nil && *render.Replicas(us) == 0) {
			placed.Message = fmt.Sprintf("leaving UserServicePool %s: waiting for the tenant's own pods to be ready endpoints of its Service", cur)
			return move{layout: layout{dedicated: true, slice: slice}, placed: placed, moving: true}, nil
		}
		// The pool's endpoints go first, its Secret PoolDrain later: kube-proxy
		// (and every other consumer of the endpoints) takes a moment to stop
		// sending the tenant's requests to the pool's pods, which must still
		// know the tenant meanwhile, as a dedicated pod drains in its preStop.
		key := client.ObjectKeyFromObject(us)
		if left := r.drains.left(key, r.PoolDrain); left > 0 {
			placed.Message = fmt.Sprintf("leaving UserServicePool %s: its endpoints are withdrawn; the pool keeps answering for %s more", cur, left.Round(time.Second))
			return move{layout: layout{dedicated: true}, placed: placed, moving: true}, nil
		}
		r.drains.forget(key)
		// Out: what remains of the pool goes after the layout is applied.
		return move{layout: layout{dedicated: true}, placed: pl.placed, leave: cur, moving: us.Spec.Pool != ""}, nil
	}
	return move{layout: layout{dedicated: true}, placed: pl.placed}, nil
}

func notApplied(pod string) string {
	if pod == "" {
		return "no pod of the pool is ready"
	}
	return "pool pod " + pod + " has not applied the tenant's configuration yet"
}

func meanwhile(own bool) string {
	if own {
		return "its own pods serve meanwhile"
	}
	return "it has no pods of its own"
}

// hasTenantSlice says whether the operator's EndpointSlice of the tenant's
// Service exists (in the cache, which holds the operator's objects).
func (r *UserServiceReconciler) hasTenantSlice(ctx context.Context, us *v1alpha1.UserService) bool {
	return r.Client.Get(ctx, client.ObjectKeyFromObject(us), &discoveryv1.EndpointSlice{}) == nil
}

// writePoolSecret applies the tenant's Secret in the pool's namespace
// (draining: with v1alpha1.PoolTenantDrainingAnnotation) and returns its
// resourceVersion.
func (r *UserServiceReconciler) writePoolSecret(ctx context.Context, us *v1alpha1.UserService, out rendered, pool, namespace string, draining bool) (string, *failure) {
	env := map[string][]byte{v1alpha1.EnvMongoDatabase: []byte(out.database)}
	for k, v := range out.secrets {
		env[k] = v
	}
	s, err := render.PoolTenantSecret(us, pool, namespace, out.config, env)
	if err != nil {
		return "", &failure{Reason: ReasonApplyFailed, Err: err}
	}
	if draining {
		s.Annotations = map[string]string{v1alpha1.PoolTenantDrainingAnnotation: "true"}
	}
	if f := r.applyOne(ctx, r.newApplier(), us, s); f != nil {
		return "", f
	}
	return s.ResourceVersion, nil
}

// leavePool ends a move out: the tenant's Secrets in pools go and its seat
// is given back.
func (r *UserServiceReconciler) leavePool(ctx context.Context, us *v1alpha1.UserService, pool string) *failure {
	if err := r.removeStalePoolSecrets(ctx, us, ""); err != nil {
		return &failure{Reason: ReasonApplyFailed, Err: err}
	}
	r.seats.release(pool, types.NamespacedName{Namespace: us.Namespace, Name: us.Name})
	us.Status.Pool = ""
	return nil
}

// hasDeployment says whether the tenant has a Deployment of its own.
func (r *UserServiceReconciler) hasDeployment(ctx context.Context, us *v1alpha1.UserService) (bool, error) {
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(us), &appsv1.Deployment{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// poolDrains remembers, per tenant leaving a pool, when the pool's
// endpoints were withdrawn from its Service. In memory: an operator that
// restarts during a drain starts it again, which only waits longer.
type poolDrains struct {
	mu    sync.Mutex
	since map[types.NamespacedName]time.Time
}

// left is how long the pool must still keep the tenant; the first call
// for a tenant (its pool's endpoints withdrawn in this reconcile, or by an
// operator that has since restarted) starts the clock.
func (d *poolDrains) left(key types.NamespacedName, drain time.Duration) time.Duration {
	if drain <= 0 {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	since, ok := d.since[key]
	if !ok {
		if d.since == nil {
			d.since = map[types.NamespacedName]time.Time{}
		}
		since = time.Now()
		d.since[key] = since
	}
	return drain - time.Since(since)
}

// started says whether the tenant's drain has begun.
func (d *poolDrains) started(key types.NamespacedName) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.since[key]
	return ok
}

func (d *poolDrains) forget(key types.NamespacedName) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.since, key)
}
