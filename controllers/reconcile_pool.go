package controllers

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
)

// Reasons of the Placed condition (v1alpha1.ConditionPlaced).
const (
	ReasonDedicated           = "Dedicated"
	ReasonPooled              = "Pooled"
	ReasonPoolNotFound        = "PoolNotFound"
	ReasonNamespaceNotAllowed = "NamespaceNotAllowed"
	ReasonPoolFull            = "PoolFull"
	ReasonPoolNoNamespace     = "PoolNamespaceUnknown"
	ReasonMovingIn            = "MovingIn"
	ReasonMovingOut           = "MovingOut"
)

// placement is where a reconcile serves the tenant from: target is the pool
// it is (or goes) in, "" for its own Deployment; placed is the Placed
// condition, unless a move sets its own.
type placement struct {
	target, targetNamespace string
	placed                  metav1.Condition
	refused                 bool
}

// poolSeats counts the tenants each pool holds, so that parallel reconciles
// never place more than maxTenants: a seat is taken under the pool's lock,
// before the tenant's status (status.pool) records it. The first use of a
// pool counts the tenants whose status names it, from the cache (synced
// before any reconcile; the operator is the only writer, one leader).
type poolSeats struct {
	mu   sync.Mutex
	held map[string]map[types.NamespacedName]bool
}

// admit gives tenant a seat in pool if it has one or one is free.
func (s *poolSeats) admit(pool string, tenant types.NamespacedName, maxTenants int, seed func() ([]types.NamespacedName, error)) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == nil {
		s.held = map[string]map[types.NamespacedName]bool{}
	}
	seats, ok := s.held[pool]
	if !ok {
		placed, err := seed()
		if err != nil {
			return false, err
		}
		seats = map[types.NamespacedName]bool{}
		for _, t := range placed {
			seats[t] = true
		}
		s.held[pool] = seats
	}
	if seats[tenant] {
		return true, nil
	}
	if len(seats) >= maxTenants {
		return false, nil
	}
	seats[tenant] = true
	return true, nil
}

// release gives tenant's seat in pool back.
func (s *poolSeats) release(pool string, tenant types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held[pool], tenant)
}

// place decides where the tenant is served: the pool spec.pool names if it
// holds a seat there or gets one now (status.pool records it), else where
// it is (status.pool, or dedicated). A pool that is gone sends its tenants
// back to Deployments of their own.
func (r *UserServiceReconciler) place(ctx context.Context, us *v1alpha1.UserService) (placement, error) {
	want, cur := us.Spec.Pool, us.Status.Pool
	cond := func(status metav1.ConditionStatus, reason, format string, a ...any) metav1.Condition {
		return metav1.Condition{Type: v1alpha1.ConditionPlaced, Status: status, Reason: reason, Message: fmt.Sprintf(format, a...)}
	}
	// stay keeps the tenant where it is, refusing want for reason.
	stay := func(reason, format string, a ...any) (placement, error) {
		pl := placement{refused: true, placed: cond(metav1.ConditionFalse, reason, format, a...)}
		if cur == "" || cur == want {
			return pl, nil
		}
		pool, err := r.getPool(ctx, cur)
		if err != nil || pool == nil || !pool.DeletionTimestamp.IsZero() {
			return pl, err
		}
		pl.target, pl.targetNamespace = cur, render.PoolNamespace(pool, r.PoolNamespace)
		return pl, nil
	}
	if want == "" {
		return placement{placed: cond(metav1.ConditionTrue, ReasonDedicated, "served by its own Deployment")}, nil
	}
	pool, err := r.getPool(ctx, want)
	if err != nil {
		return placement{}, err
	}
	if pool == nil {
		return stay(ReasonPoolNotFound, "UserServicePool %s does not exist", want)
	}
	if !pool.DeletionTimestamp.IsZero() {
		// Its tenants move out before it goes (PoolFinalizer).
		return stay(ReasonPoolNotFound, "UserServicePool %s is being deleted", want)
	}
	ns := render.PoolNamespace(pool, r.PoolNamespace)
	if refusal := poolNamespaceRefusal(pool, ns, r.OperatorNamespace); refusal != "" {
		return stay(ReasonPoolNoNamespace, "%s", refusal)
	}
	if cur != want {
		allowed, err := r.namespaceAllowed(ctx, pool, us.Namespace)
		if err != nil {
			return placement{}, err
		}
		if !allowed {
			return stay(ReasonNamespaceNotAllowed, "UserServicePool %s does not accept tenants of namespace %s (its spec.namespaceSelector)", want, us.Namespace)
		}
		key := client.ObjectKeyFromObject(us)
		ok, err := r.seats.admit(want, key, int(pool.Spec.MaxTenants), func() ([]types.NamespacedName, error) { return r.tenantsPlacedIn(ctx, want) })
		if err != nil {
			return placement{}, err
		}
		if !ok {
			return stay(ReasonPoolFull, "UserServicePool %s is full (maxTenants %d)", want, pool.Spec.MaxTenants)
		}
		if cur != "" {
			// Moving from one pool to another goes through a Deployment of
			// its own: out of cur first (target ""), then into want.
			r.seats.release(want, key)
			return placement{placed: cond(metav1.ConditionFalse, ReasonMovingOut, "leaving UserServicePool %s for %s", cur, want)}, nil
		}
		us.Status.Pool = want
	}
	return placement{target: want, targetNamespace: ns, placed: cond(metav1.ConditionTrue, ReasonPooled, "served by UserServicePool %s", want)}, nil
}

// getPool reads a pool from the cache; nil when it does not exist.
func (r *UserServiceReconciler) getPool(ctx context.Context, name string) (*v1alpha1.UserServicePool, error) {
	var pool v1alpha1.UserServicePool
	switch err := r.Client.Get(ctx, types.NamespacedName{Name: name}, &pool); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read UserServicePool %s: %w", name, err)
	}
	return &pool, nil
}

// namespaceAllowed says whether the pool's namespaceSelector selects the
// namespace. An unset selector selects none, {} every namespace.
func (r *UserServiceReconciler) namespaceAllowed(ctx context.Context, pool *v1alpha1.UserServicePool, namespace string) (bool, error) {
	if pool.Spec.NamespaceSelector == nil {
		return false, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(pool.Spec.NamespaceSelector)
	if err != nil {
		return false, nil
	}
	var ns corev1.Namespace
	if err := r.Client.Get(ctx, types.NamespacedName{Name: namespace}, &ns); err != nil {
		return false, fmt.Errorf("read namespace %s: %w", namespace, err)
	}
	return sel.Matches(labels.Set(ns.Labels)), nil
}

// tenantsPlacedIn are the tenants whose status names pool.
func (r *UserServiceReconciler) tenantsPlacedIn(ctx context.Context, pool string) ([]types.NamespacedName, error) {
	var list v1alpha1.UserServiceList
	if err := r.Client.List(ctx, &list, client.MatchingFields{indexPlacedIn: pool}); err != nil {
		return nil, fmt.Errorf("list the tenants of UserServicePool %s: %w", pool, err)
	}
	out := make([]types.NamespacedName, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, client.ObjectKeyFromObject(&list.Items[i]))
	}
	return out, nil
}

// poolEndpoints are the ready endpoints of the pool's Service, of the
// address family of the tenant's Service.
func (r *UserServiceReconciler) poolEndpoints(ctx context.Context, pool, namespace string, family discoveryv1.AddressType) ([]discoveryv1.Endpoint, error) {
	var list discoveryv1.EndpointSliceList
	svc := render.PoolObjectName(&v1alpha1.UserServicePool{ObjectMeta: metav1.ObjectMeta{Name: pool}})
	if err := r.Client.List(ctx, &list, client.MatchingFields{indexSliceService: namespace + "/" + svc}); err != nil {
		return nil, fmt.Errorf("list the endpoints of UserServicePool %s: %w", pool, err)
	}
	return render.ReadyEndpoints(list.Items, family), nil
}

// poolApplied says whether every ready pool pod has applied the tenant's
// Secret at resourceVersion rv (v1alpha1.PoolAppliedAnnotation), and if
// not, which pod has not. Read from the cache, which holds the pools' pods:
// a cache behind the API server only shows an older acknowledgement (they
// only grow), and the watch brings the tenant back when it catches up
// (tenantsAwaitingPod).
func (r *UserServiceReconciler) poolApplied(ctx context.Context, namespace, rv string, endpoints []discoveryv1.Endpoint) (bool, string, error) {
	for _, e := range endpoints {
		if e.TargetRef == nil || e.TargetRef.Kind != "Pod" {
			return false, first(e.Addresses), nil
		}
		var pod corev1.Pod
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: e.TargetRef.Name}, &pod); err != nil {
			return false, e.TargetRef.Name, client.IgnoreNotFound(err)
		}
		applied := pod.Annotations[v1alpha1.PoolAppliedAnnotation]
		if cmp, err := resourceversion.CompareResourceVersion(applied, rv); err != nil || cmp < 0 {
			return false, pod.Name, nil
		}
	}
	return len(endpoints) > 0, "", nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// dedicatedSlicesLeft says whether an EndpointSlice other than the
// operator's serves the tenant's Service (one the EndpointSlice controller
// made while the Service had a selector, or the mirroring controller made
// from its Endpoints); with wantReady, one with a ready endpoint.
func (r *UserServiceReconciler) dedicatedSlicesLeft(ctx context.Context, us *v1alpha1.UserService, wantReady bool) (bool, error) {
	foreign, err := r.foreignSlices(ctx, us)
	if err != nil {
		return false, err
	}
	for _, s := range foreign {
		for _, e := range s.Endpoints {
			if !wantReady || e.Conditions.Ready == nil || *e.Conditions.Ready {
				return true, nil
			}
		}
	}
	return false, nil
}

func (r *UserServiceReconciler) foreignSlices(ctx context.Context, us *v1alpha1.UserService) ([]discoveryv1.EndpointSlice, error) {
	var list discoveryv1.EndpointSliceList
	// By index: a label selector alone reads every slice of the namespace,
	// and this runs in every reconcile of a pooled tenant.
	if err := r.Client.List(ctx, &list, client.MatchingFields{indexSliceService: us.Namespace + "/" + us.Name}); err != nil {
		return nil, err
	}
	var out []discoveryv1.EndpointSlice
	for _, s := range list.Items {
		if s.Labels[render.LabelEndpointSliceManagedBy] != render.EndpointSliceManager {
			out = append(out, s)
		}
	}
	return out, nil
}

// withdrawDedicatedEndpoints deletes what still sends the tenant's Service
// to its own pods once the Service has no selector: Kubernetes leaves the
// EndpointSlice controller's slices and the Endpoints controller's
// Endpoints in place when a selector is removed, and the mirroring
// controller then mirrors those Endpoints into a slice of its own
// (kubernetes/kubernetes#118376, #91072). Left alone they would send
// traffic to the tenant's deleted pods. It reports whether any was left:
// the Deployment goes only once none is.
func (r *UserServiceReconciler) withdrawDedicatedEndpoints(ctx context.Context, us *v1alpha1.UserService) (bool, error) {
	foreign, err := r.foreignSlices(ctx, us)
	if err != nil || len(foreign) == 0 {
		return false, err
	}
	// The Endpoints first: the mirroring controller would mirror them again.
	// (Deprecated as an API, still written by the Endpoints controller.)
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: us.Namespace, Name: us.Name}}
	if err := r.Client.Delete(ctx, ep); err != nil && !apierrors.IsNotFound(err) {
		return true, fmt.Errorf("delete Endpoints %s: %w", us.Name, err)
	}
	for i := range foreign {
		if err := r.Client.Delete(ctx, &foreign[i]); err != nil && !apierrors.IsNotFound(err) {
			return true, fmt.Errorf("delete EndpointSlice %s: %w", foreign[i].Name, err)
		}
	}
	return true, nil
}

// removeStalePoolSecrets deletes the tenant's Secrets in pools other than
// keep ("": all): left by a move out, or a crash in the middle of one.
func (r *UserServiceReconciler) removeStalePoolSecrets(ctx context.Context, us *v1alpha1.UserService, keep string) error {
	var list corev1.SecretList
	if err := r.Client.List(ctx, &list, client.MatchingFields{indexPoolTenant: us.Namespace + "/" + us.Name}); err != nil {
		return fmt.Errorf("list the tenant's pool Secrets: %w", err)
	}
	for i := range list.Items {
		s := &list.Items[i]
		if keep != "" && s.Labels[v1alpha1.PoolLabel] == keep {
			continue
		}
		uid := s.UID
		if err := r.Client.Delete(ctx, s, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete Secret %s/%s: %w", s.Namespace, s.Name, err)
		}
		r.event(us, s, corev1.EventTypeNormal, "Deleted", "Delete", "Deleted Secret %s/%s: the tenant is no longer in UserServicePool %s", s.Namespace, s.Name, s.Labels[v1alpha1.PoolLabel])
	}
	return nil
}

// setupPoolIndexes registers the indexes placement and cleanup use.
func (r *UserServiceReconciler) setupPoolIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	nonEmpty := func(v string) []string {
		if v == "" {
			return nil
		}
		return []string{v}
	}
	if err := idx.IndexField(ctx, &v1alpha1.UserService{}, indexPlacedIn, func(obj client.Object) []string {
		return nonEmpty(obj.(*v1alpha1.UserService).Status.Pool)
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &v1alpha1.UserService{}, indexPoolWanted, func(obj client.Object) []string {
		return nonEmpty(obj.(*v1alpha1.UserService).Spec.Pool)
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &discoveryv1.EndpointSlice{}, indexSliceService, func(obj client.Object) []string {
		return nonEmpty(obj.GetNamespace() + "/" + obj.GetLabels()[render.LabelServiceName])
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &v1alpha1.UserService{}, indexMovingIn, func(obj client.Object) []string {
		// Moving in, or not placed yet: a tenant whose first reconcile is
		// still running when the acknowledgement comes runs again after it.
		us := obj.(*v1alpha1.UserService)
		if c := meta.FindStatusCondition(us.Status.Conditions, v1alpha1.ConditionPlaced); c != nil && c.Reason != ReasonMovingIn {
			return nil
		}
		return nonEmpty(us.Spec.Pool)
	}); err != nil {
		return err
	}
	return idx.IndexField(ctx, &corev1.Secret{}, indexPoolTenant, func(obj client.Object) []string {
		l := obj.GetLabels()
		if l[v1alpha1.PoolLabel] == "" || l[v1alpha1.PoolTenantNamespaceLabel] == "" {
			return nil
		}
		return []string{l[v1alpha1.PoolTenantNamespaceLabel] + "/" + l[v1alpha1.PoolTenantNameLabel]}
	})
}

// tenantsOfPool maps a pool to the tenants in it or asking for it: a pool
// that changes (or goes) may place them, or send them back.
func (r *UserServiceReconciler) tenantsOfPool(ctx context.Context, pool client.Object) []reconcile.Request {
	return r.tenantsBy(ctx, pool.GetName(), indexPlacedIn, indexPoolWanted)
}

// tenantsBehindPoolSlice maps an EndpointSlice of a pool's Service to the
// tenants in the pool, whose own slices mirror it.
func (r *UserServiceReconciler) tenantsBehindPoolSlice(ctx context.Context, slice client.Object) []reconcile.Request {
	l := slice.GetLabels()
	if l[render.LabelName] != render.PoolAppName || l[render.LabelInstance] == "" {
		return nil
	}
	return r.tenantsBy(ctx, l[render.LabelInstance], indexPlacedIn)
}

func (r *UserServiceReconciler) tenantsBy(ctx context.Context, pool string, indexes ...string) []reconcile.Request {
	seen := map[types.NamespacedName]bool{}
	var reqs []reconcile.Request
	for _, index := range indexes {
		var list v1alpha1.UserServiceList
		// Names only, no copies: every acknowledgement of a pool pod lists
		// the tenants moving in, thousands during a bulk creation (copying
		// them was 30% of the operator's CPU at 3,000 tenants).
		if err := r.Client.List(ctx, &list, client.MatchingFields{index: pool}, client.UnsafeDisableDeepCopy); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "list the tenants of a pool", "pool", pool)
			continue
		}
		for i := range list.Items {
			key := client.ObjectKeyFromObject(&list.Items[i])
			if !seen[key] {
				seen[key] = true
				reqs = append(reqs, reconcile.Request{NamespacedName: key})
			}
		}
	}
	return reqs
}
