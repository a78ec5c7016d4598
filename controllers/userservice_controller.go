// Package controllers holds the UserService reconciler and the manager that
// runs it. The reconciler is split by concern: this file loads the object and
// dispatches, reconcile_apply.go converges the tenant's objects,
// reconcile_status.go turns what it saw into status, and reconcile_delete.go
// handles the finalizer. The objects themselves are built by the pure
// functions of package render.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
	"userve.dev/userve/controllers/tenantdb"
)

// Finalizer keeps a deleted UserService until its database has been dealt
// with according to spec.deletionPolicy.
const Finalizer = "miniapp.userve.dev/database"

// ControllerName names the controller in logs, metrics and events.
const ControllerName = "userservice"

// The operator's permissions, least privilege: it never updates or deletes
// the core objects it applies (the garbage collector removes them with the
// tenant), and deletes only the optional objects a spec can turn off. It
// lists pods (never reads their content) to know that a deleted tenant's
// pods are gone before its database is dropped, and watches pool pods (by
// label) for their acknowledgement of tenant Secrets.
//
// +kubebuilder:rbac:groups=miniapp.userve.dev,resources=userservices,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=miniapp.userve.dev,resources=userservices/status,verbs=get;patch
// +kubebuilder:rbac:groups=miniapp.userve.dev,resources=userservices/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=configmaps;serviceaccounts;services,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=endpoints,verbs=delete
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
//
// Pooled tenants (docs/pools.md): the operator deletes a pooled tenant's
// Deployment and its Secret in the pool's namespace (which no owner
// reference can remove), reads pool pods' applied-Secrets annotation, and
// reads namespaces' labels for a pool's namespaceSelector.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses;networkpolicies,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// UserServiceReconciler converges one UserService at a time.
type UserServiceReconciler struct {
	// Client reads from the manager's cache, which holds UserServices and
	// the operator's own objects only.
	Client client.Client
	// APIReader reads what the cache does not hold: the tenant's own Secrets
	// (MongoDB URI, admin tokens, delivery secrets) and the default MongoDB
	// URI Secret; and the UserService being reconciled, whose status must
	// be current (see Reconcile).
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  recorder.EventRecorder
	Databases *tenantdb.Pool

	// ServerImage is the tenant image when spec.image is empty.
	ServerImage string
	// DefaultMongoURISecret is used when spec.mongo.uriSecretRef is empty.
	DefaultMongoURISecret *render.SecretLocation
	// SharedDatabaseCredentials copies the default URI into tenants'
	// namespaces instead of giving each tenant a database user of its own:
	// only where namespaces trust each other.
	SharedDatabaseCredentials bool
	// URISecretGrace is how long a deleted tenant waits for an unreadable
	// MongoDB URI Secret (gone with its namespace) before it is released
	// without its database or user being dropped.
	URISecretGrace time.Duration
	// PoolNamespace is where a UserServicePool without spec.namespace runs
	// (the operator's --pool-namespace; "": such a pool runs nowhere).
	PoolNamespace string
	// OperatorNamespace is the operator's own, where no pool may run
	// (poolNamespaceRefusal).
	OperatorNamespace string
	// PoolDrain is how long a pool keeps a tenant moving out after its
	// Service stopped pointing at the pool's pods (Options.PoolDrain).
	PoolDrain time.Duration
	// seats counts the tenants placed in each pool.
	seats poolSeats
	// drains times the tenants leaving pools (PoolDrain).
	drains poolDrains
	// checks remembers recent database ownership and user checks.
	checks dbChecks
	// own remembers the reconciler's own writes (their echoes are not
	// reconciled).
	own ownWrites
	// floors keeps reads of a tenant from the cache no older than the
	// reconciler's last write of it.
	floors tenantFloors
	// firstReports holds back a new pooled tenant's first status while
	// its pool is about to take it.
	firstReports firstReports
	// applied: objects whose fields the operator's apply owns (applier).
	applied appliedObjects
	// Random generates credentials (crypto/rand.Reader).
	Random io.Reader
	// ResyncInterval re-checks a converged tenant: its database and the
	// Secrets it references, which the operator does not watch.
	ResyncInterval time.Duration
	// RetryInterval re-checks a tenant waiting for something the operator
	// does not watch: a missing Secret, an unreachable database.
	RetryInterval time.Duration
}

// Reconcile loads the UserService, converges it or finishes its deletion,
// and patches its status once, at the end, only if it changed.
func (r *UserServiceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	// Never older than this operator's last write of it (tenantFloors):
	// patchStatus skips an unchanged status, and status writes trigger no
	// reconcile, so a copy that has not yet seen the last status write
	// would make a changed status look unchanged and leave the old one up
	// until the next resync (DatabaseReady=False minutes after MongoDB
	// came back).
	us := &v1alpha1.UserService{}
	if err := r.readTenant(ctx, req.NamespacedName, us); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := us.Status.DeepCopy()
	defer func() {
		if err := r.patchStatus(ctx, us, before); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()

	if !us.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, us)
	}
	if !controllerutil.ContainsFinalizer(us, Finalizer) {
		patch := client.MergeFromWithOptions(us.DeepCopy(), client.MergeFromWithOptimisticLock{})
		controllerutil.AddFinalizer(us, Finalizer)
		if err := r.Client.Patch(ctx, us, patch); err != nil {
			return ctrl.Result{}, err
		}
		r.own.wrote(us)
		r.floors.wrote(us)
	}
	return r.reconcileNormal(ctx, us)
}

// patchStatus writes status if the reconcile changed it: a reconcile that
// finds everything in place makes no write at all.
func (r *UserServiceReconciler) patchStatus(ctx context.Context, us *v1alpha1.UserService, before *v1alpha1.UserServiceStatus) error {
	if equalStatus(*before, us.Status) {
		return nil
	}
	base := us.DeepCopy()
	base.Status = *before
	err := r.Client.Status().Patch(ctx, us, client.MergeFrom(base))
	if apierrors.IsNotFound(err) {
		// The finalizer went and the object with it.
		r.floors.forget(client.ObjectKeyFromObject(us))
		return nil
	}
	if err == nil {
		r.floors.wrote(us)
		r.firstReports.done(us)
	}
	return err
}

func equalStatus(a, b v1alpha1.UserServiceStatus) bool { return equality.Semantic.DeepEqual(a, b) }

// indexSecrets indexes UserServices by the Secrets they read, as
// "namespace/name"; indexDatabase by the database they use.
// indexPlacedIn the tenants by the pool they are in (status.pool),
// indexPoolWanted by the pool they ask for (spec.pool), and
// indexPoolTenant a pool's tenant Secrets by "namespace/name" of their
// tenant.
const (
	indexSecrets    = "userve.secrets"
	indexDatabase   = "userve.database"
	indexPlacedIn   = "userve.pool.placed"
	indexPoolWanted = "userve.pool.wanted"
	indexPoolTenant = "userve.pool.tenant"
	indexMovingIn   = "userve.pool.movingin"
	// indexSliceService: EndpointSlices by "namespace/service".
	indexSliceService = "userve.slice.service"
)

// SetupWithManager registers the controller: UserServices, every kind the
// operator owns (so that an edited or deleted object is put back), and the
// Secrets tenants read (so that a changed value rolls their pods).
func (r *UserServiceReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.UserService{}, indexSecrets, func(obj client.Object) []string {
		return r.secretsRead(obj.(*v1alpha1.UserService))
	}); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.UserService{}, indexDatabase, func(obj client.Object) []string {
		if db, err := render.DatabaseName(obj.(*v1alpha1.UserService)); err == nil {
			return []string{db}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := r.setupPoolIndexes(ctx, mgr); err != nil {
		return err
	}
	if opts.RateLimiter == nil {
		// Failures back off from 1s to 5 minutes: no hot loop against an
		// unreachable database, and a fixed Secret is noticed soon enough.
		opts.RateLimiter = workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](time.Second, 5*time.Minute)
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&v1alpha1.UserService{}, builder.WithPredicates(specOrMetadataChanged(), r.own.notOwnWrite()))
	for _, obj := range objectsOwned() {
		b = b.Owns(obj, builder.WithPredicates(r.own.notOwnWrite()))
	}
	return b.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.tenantsReading)).
		// A pool's spec (or its deletion), not its status: its tenant count
		// changes with every placement.
		Watches(&v1alpha1.UserServicePool{}, handler.EnqueueRequestsFromMapFunc(r.tenantsOfPool), builder.WithPredicates(specOrMetadataChanged())).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(r.tenantsBehindPoolSlice)).
		// A pool pod's acknowledgement moves the tenants waiting for it on.
		Watches(&corev1.Pod{}, r.poolAckHandler()).
		WithOptions(opts).
		Complete(r)
}

// secretsRead are the Secrets, other than its own, whose values a tenant's
// pods read, as "namespace/name".
func (r *UserServiceReconciler) secretsRead(us *v1alpha1.UserService) []string {
	var out []string
	for _, ref := range v1alpha1.TenantSecretRefs(&us.Spec) {
		out = append(out, us.Namespace+"/"+ref.Ref.Name)
	}
	if us.Spec.Mongo.URISecretRef == nil && r.DefaultMongoURISecret != nil {
		out = append(out, r.DefaultMongoURISecret.Namespace+"/"+r.DefaultMongoURISecret.Name)
	}
	return out
}

// tenantsReading maps a Secret to the tenants that read it.
func (r *UserServiceReconciler) tenantsReading(ctx context.Context, secret client.Object) []reconcile.Request {
	var list v1alpha1.UserServiceList
	key := secret.GetNamespace() + "/" + secret.GetName()
	if err := r.Client.List(ctx, &list, client.MatchingFields{indexSecrets: key}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list the tenants reading a Secret", "secret", key)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, us := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&us)})
	}
	return reqs
}

// specOrMetadataChanged ignores the operator's own status writes, so that a
// status change never triggers another reconcile by itself.
func specOrMetadataChanged() predicate.Predicate {
	return predicate.Or(
		predicate.GenerationChangedPredicate{},
		predicate.LabelChangedPredicate{},
		predicate.AnnotationChangedPredicate{},
		predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld, e.ObjectNew
			return !o.GetDeletionTimestamp().Equal(n.GetDeletionTimestamp()) ||
				!equality.Semantic.DeepEqual(o.GetFinalizers(), n.GetFinalizers())
		}},
	)
}

// objectsOwned is one empty object of every kind the operator owns
// (v1alpha1.OwnedKinds), for the watches and the cache configuration. A
// kind the scheme does not know is a contract the operator cannot keep: it
// stops at start-up.
func objectsOwned() []client.Object {
	scheme := NewScheme()
	kinds := v1alpha1.OwnedKinds()
	out := make([]client.Object, 0, len(kinds))
	for _, k := range kinds {
		obj, err := newObject(scheme, k.GroupVersionKind)
		if err != nil {
			panic(err)
		}
		out = append(out, obj)
	}
	return out
}

// newObject is an empty object of kind gvk.
func newObject(scheme *runtime.Scheme, gvk schema.GroupVersionKind) (client.Object, error) {
	obj, err := scheme.New(gvk)
	if err != nil {
		return nil, fmt.Errorf("owned kind %s: %w", gvk, err)
	}
	co, ok := obj.(client.Object)
	if !ok {
		return nil, fmt.Errorf("owned kind %s is not an object with metadata", gvk)
	}
	return co, nil
}
