package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
)

// PoolControllerName names the pool controller in logs, metrics and events.
const PoolControllerName = "userservicepool"

// Reasons of a pool's conditions besides the rollout's.
const (
	ReasonNamespaceNotWatched = "NamespaceNotWatched"
	ReasonNoNamespace         = "NoNamespace" // none given, or one no pool may run in
)

// The pool's objects live in its namespace; the operator needs roles and
// role bindings to give the pool pods their Role there (and holds what that
// Role grants: secrets get/list/watch, pods get/patch).
//
// +kubebuilder:rbac:groups=miniapp.userve.dev,resources=userservicepools,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=miniapp.userve.dev,resources=userservicepools/status,verbs=get;patch
// +kubebuilder:rbac:groups=miniapp.userve.dev,resources=userservicepools/finalizers,verbs=update
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=patch

// PoolReconciler converges one UserServicePool: its ServiceAccount, Role,
// RoleBinding, Deployment and Service in its namespace, and a
// PodDisruptionBudget or HorizontalPodAutoscaler when asked for.
type PoolReconciler struct {
	Client    client.Client
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  recorder.EventRecorder
	// ServerImage is the pool image when spec.image is empty.
	ServerImage string
	// DefaultNamespace is where a pool without spec.namespace runs.
	DefaultNamespace string
	// OperatorNamespace is the operator's own, where no pool may run.
	OperatorNamespace string
	// CachedNamespaces are the namespaces the operator's cache holds; nil:
	// all. A pool elsewhere cannot be watched.
	CachedNamespaces []string
	// applied: objects whose fields the operator's apply owns (applier).
	applied appliedObjects
}

// Reconcile applies the pool's objects and patches its status once.
func (r *PoolReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	pool := &v1alpha1.UserServicePool{}
	if err := r.APIReader.Get(ctx, req.NamespacedName, pool); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := pool.Status.DeepCopy()
	defer func() {
		if equality.Semantic.DeepEqual(*before, pool.Status) {
			return
		}
		base := pool.DeepCopy()
		base.Status = *before
		if err := r.Client.Status().Patch(ctx, pool, client.MergeFrom(base)); err != nil && !apierrors.IsNotFound(err) {
			retErr = errors.Join(retErr, err)
		}
	}()

	var tenants v1alpha1.UserServiceList
	// Counted, not read: no copies of thousands of tenants.
	if err := r.Client.List(ctx, &tenants, client.MatchingFields{indexPlacedIn: pool.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, err
	}
	pool.Status.Tenants = int32(len(tenants.Items))
	if !pool.DeletionTimestamp.IsZero() {
		return r.drain(ctx, pool)
	}
	if !controllerutil.ContainsFinalizer(pool, PoolFinalizer) {
		patch := client.MergeFromWithOptions(pool.DeepCopy(), client.MergeFromWithOptimisticLock{})
		controllerutil.AddFinalizer(pool, PoolFinalizer)
		if err := r.Client.Patch(ctx, pool, patch); err != nil {
			return ctrl.Result{}, err
		}
	}

	ns := render.PoolNamespace(pool, r.DefaultNamespace)
	pool.Status.Namespace = ns
	var fail *failure
	switch refusal := poolNamespaceRefusal(pool, ns, r.OperatorNamespace); {
	case refusal != "":
		fail = userError(ReasonNoNamespace, errors.New(refusal))
	case r.CachedNamespaces != nil && !slices.Contains(r.CachedNamespaces, ns):
		fail = userError(ReasonNamespaceNotWatched, fmt.Errorf("namespace %s is neither watched by the operator (--watch-namespaces) nor its own: pools run in one of those", ns))
	}
	var d *appsv1.Deployment
	if fail == nil {
		d, fail = r.applyPool(ctx, pool, ns)
	}
	setPoolStatus(pool, d, fail)
	if fail != nil {
		r.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, fail.Reason, "Reconcile", "%s", fail.Error())
		if fail.UserError {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fail
	}
	return ctrl.Result{}, nil
}

// PoolFinalizer keeps a deleted pool, and with it its pods, until no tenant
// is placed in it: its tenants move back to Deployments of their own first
// (a pool being deleted places no one and sends its tenants out), so that
// deleting a pool fails no request.
const PoolFinalizer = "miniapp.userve.dev/tenants"

// ReasonDraining: a deleted pool waits for its tenants to move out.
const ReasonDraining = "Draining"

// drain finishes a pool's deletion once its tenants have left; its objects
// then go with it (owner references).
func (r *PoolReconciler) drain(ctx context.Context, pool *v1alpha1.UserServicePool) (ctrl.Result, error) {
	if n := pool.Status.Tenants; n > 0 {
		msg := fmt.Sprintf("deleting: %d tenants are moving back to Deployments of their own first", n)
		meta.SetStatusCondition(&pool.Status.Conditions, metav1.Condition{
			Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: ReasonDraining, Message: msg, ObservedGeneration: pool.Generation,
		})
		return ctrl.Result{}, nil
	}
	if !controllerutil.ContainsFinalizer(pool, PoolFinalizer) {
		return ctrl.Result{}, nil
	}
	patch := client.MergeFromWithOptions(pool.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(pool, PoolFinalizer)
	return ctrl.Result{}, client.IgnoreNotFound(r.Client.Patch(ctx, pool, patch))
}

func (r *PoolReconciler) applyPool(ctx context.Context, pool *v1alpha1.UserServicePool, ns string) (*appsv1.Deployment, *failure) {
	image := pool.Spec.Image
	if image == "" {
		image = r.ServerImage
	}
	d := render.PoolDeployment(pool, ns, image)
	a := r.newApplier()
	// What the pods run as comes before the pods.
	for _, obj := range []client.Object{
		render.PoolServiceAccount(pool, ns), render.PoolRole(pool, ns), render.PoolRoleBinding(pool, ns),
		render.PoolService(pool, ns), d,
	} {
		if f := r.applyOne(ctx, a, pool, obj); f != nil {
			return nil, f
		}
	}
	optional := []struct {
		want  client.Object
		empty client.Object
	}{
		{nilIfNil(render.PoolPodDisruptionBudget(pool, ns)), &policyv1.PodDisruptionBudget{}},
		{nilIfNil(render.PoolHorizontalPodAutoscaler(pool, ns)), &autoscalingv2.HorizontalPodAutoscaler{}},
	}
	for _, o := range optional {
		if o.want != nil {
			if f := r.applyOne(ctx, a, pool, o.want); f != nil {
				return nil, f
			}
			continue
		}
		o.empty.SetNamespace(ns)
		o.empty.SetName(render.PoolObjectName(pool))
		removed, err := a.remove(ctx, o.empty, pool)
		if err != nil {
			return nil, &failure{Reason: ReasonApplyFailed, Err: fmt.Errorf("delete %s/%s: %w", ns, o.empty.GetName(), err)}
		}
		if removed {
			r.Recorder.Eventf(pool, o.empty, corev1.EventTypeNormal, "Deleted", "Delete", "Deleted %s/%s: the spec no longer asks for it", ns, o.empty.GetName())
		}
	}
	return d, nil
}

func (r *PoolReconciler) applyOne(ctx context.Context, a applier, pool *v1alpha1.UserServicePool, obj client.Object) *failure {
	kind := fmt.Sprintf("%T", obj)
	if gvk, err := apiutil.GVKForObject(obj, r.Scheme); err == nil {
		kind = gvk.Kind
	}
	outcome, err := a.apply(ctx, obj)
	if err != nil {
		f := &failure{Reason: ReasonApplyFailed, Err: fmt.Errorf("apply %s %s/%s: %w", kind, obj.GetNamespace(), obj.GetName(), err)}
		f.UserError = apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsNotFound(err)
		return f
	}
	switch outcome {
	case created:
		r.Recorder.Eventf(pool, obj, corev1.EventTypeNormal, "Created", "Apply", "Created %s %s/%s", kind, obj.GetNamespace(), obj.GetName())
	case updated:
		r.Recorder.Eventf(pool, obj, corev1.EventTypeNormal, "Updated", "Apply", "Updated %s %s/%s", kind, obj.GetNamespace(), obj.GetName())
	}
	return nil
}

// placementChanged passes tenants that appear, go, or change the pool they
// are in or ask for: the only tenant changes a pool's status depends on.
func placementChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*v1alpha1.UserService), e.ObjectNew.(*v1alpha1.UserService)
		return o.Status.Pool != n.Status.Pool || o.Spec.Pool != n.Spec.Pool
	}}
}

// setPoolStatus follows kstatus: Ready normal-true, Reconciling and Stalled
// abnormal-true; observedGeneration moves only when the spec was applied.
func setPoolStatus(pool *v1alpha1.UserServicePool, d *appsv1.Deployment, fail *failure) {
	st := &pool.Status
	set := func(typ string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: pool.Generation,
		})
	}
	if d != nil {
		st.Replicas, st.ReadyReplicas = d.Status.Replicas, d.Status.ReadyReplicas
	}
	if fail != nil {
		set(v1alpha1.ConditionStalled, metav1.ConditionTrue, fail.Reason, fail.Error())
		set(v1alpha1.ConditionReconciling, metav1.ConditionFalse, fail.Reason, "the operator cannot apply the spec")
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, fail.Reason, fail.Error())
		return
	}
	ro := rolloutOf(d)
	if ro.deadlineFailed {
		set(v1alpha1.ConditionStalled, metav1.ConditionTrue, ro.reason, ro.msg)
	} else {
		set(v1alpha1.ConditionStalled, metav1.ConditionFalse, ReasonHealthy, "no problem found")
	}
	if ro.done || ro.deadlineFailed {
		set(v1alpha1.ConditionReconciling, metav1.ConditionFalse, ReasonStable, ro.msg)
	} else {
		set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, ro.reason, ro.msg)
	}
	if ro.done {
		set(v1alpha1.ConditionReady, metav1.ConditionTrue, ReasonAvailable, fmt.Sprintf("%s; %d tenants", ro.msg, st.Tenants))
	} else {
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, ro.reason, ro.msg)
	}
	st.ObservedGeneration = pool.Generation
}

// SetupWithManager registers the pool controller: pools, the objects they
// own, and the tenants' placement (the tenant count).
func (r *PoolReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named(PoolControllerName).
		For(&v1alpha1.UserServicePool{}, builder.WithPredicates(specOrMetadataChanged())).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Owns(&corev1.Service{}).
		Owns(&appsv1.Deployment{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		Watches(&v1alpha1.UserService{}, tenantCountChanged(), builder.WithPredicates(placementChanged())).
		WithOptions(opts).
		Complete(r)
}

// poolNamespaceRefusal says why a pool cannot run in namespace ns, "" when
// it can. Never in the operator's own: a Role cannot narrow Secret list and
// watch, so the pool pods would read the operator's credentials (the
// default MongoDB URI among them).
func poolNamespaceRefusal(pool *v1alpha1.UserServicePool, ns, operatorNamespace string) string {
	switch {
	case ns == "":
		return fmt.Sprintf("UserServicePool %s has no spec.namespace and the operator no --pool-namespace: set one of them", pool.Name)
	case ns == operatorNamespace:
		return fmt.Sprintf("UserServicePool %s may not run in namespace %s, the operator's own: pool pods may read every Secret of their namespace, the operator's credentials included; give pools a namespace of their own (spec.namespace, or the operator's --pool-namespace)", pool.Name, ns)
	}
	return ""
}

// poolCountDelay gathers the placements of a pool into one reconcile (one
// status write of its tenant count) a second: placing 10,000 tenants
// rewrote the count almost once per tenant.
const poolCountDelay = time.Second

// tenantCountChanged queues, poolCountDelay later, the pools a tenant is
// in and asks for: their tenant count. A pool already waiting is not
// queued twice.
func tenantCountChanged() handler.EventHandler {
	add := func(obj client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		us, ok := obj.(*v1alpha1.UserService)
		if !ok {
			return
		}
		for _, p := range []string{us.Status.Pool, us.Spec.Pool} {
			if p != "" {
				q.AddAfter(reconcile.Request{NamespacedName: client.ObjectKey{Name: p}}, poolCountDelay)
			}
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.Object, q)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.ObjectOld, q)
			add(e.ObjectNew, q)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.Object, q)
		},
	}
}
