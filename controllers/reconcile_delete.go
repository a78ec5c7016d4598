package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
	"userve.dev/userve/controllers/tenantdb"
)

// ReasonDatabaseDropBlocked: the database cannot be dropped because its URI
// cannot be read.
const ReasonDatabaseDropBlocked = "DatabaseDropBlocked"

// ReasonWaitingForPodsToStop: with deletionPolicy Delete the database is
// dropped only once no tenant pod is left to write into it.
const ReasonWaitingForPodsToStop = "WaitingForPodsToStop"

// DefaultURISecretGrace is how long a deleted tenant whose MongoDB URI
// Secret cannot be read is kept before it is released without dropping.
const DefaultURISecretGrace = 2 * time.Minute

// podsGonePoll is how often a deletion re-checks that the pods are gone.
const podsGonePoll = 2 * time.Second

// reconcileDelete finishes a deletion, in this order: with deletionPolicy
// Delete the tenant's pods are stopped (Deployment scaled to zero) and
// awaited, then its database is dropped, but only if its ownership record
// names this tenant; then, whatever the policy, the tenant's own database
// user is dropped; then the finalizer goes. The tenant's objects go with it
// through their owner references.
func (r *UserServiceReconciler) reconcileDelete(ctx context.Context, us *v1alpha1.UserService) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(us, Finalizer) {
		return ctrl.Result{}, nil
	}
	// A pooled tenant's Secret in its pool's namespace has no owner in
	// that namespace: it goes first, so that the pool stops serving the
	// tenant before anything else happens to it.
	if err := r.removeStalePoolSecrets(ctx, us, ""); err != nil {
		return ctrl.Result{}, err
	}
	if us.Status.Pool != "" {
		r.seats.release(us.Status.Pool, client.ObjectKeyFromObject(us))
	}
	r.drains.forget(client.ObjectKeyFromObject(us))
	r.checks.forget(us.UID)
	database := databaseOf(us)
	drop := us.Spec.DeletionPolicy == v1alpha1.DeletionPolicyDelete && database != ""
	dropUser := database != "" && r.managesDatabaseUser(us)

	if drop || dropUser {
		uri, err := r.mongoURI(ctx, us)
		if err != nil {
			return r.uriUnreadable(ctx, us, database, asFailure(err))
		}
		if drop {
			res, fail := r.dropDatabase(ctx, us, uri, database)
			if fail != nil {
				setDeletingStatus(us, fail)
				r.event(us, nil, corev1.EventTypeWarning, fail.Reason, "Delete", "%s", fail.Error())
				// Backoff, not a fixed interval: an outage may be long.
				return ctrl.Result{}, fail
			}
			if !res.IsZero() {
				return res, nil
			}
		}
		if dropUser {
			if err := r.Databases.DropUser(ctx, uri.Value(), database, DatabaseUserName(us)); err != nil {
				fail := &failure{Reason: ReasonDatabaseDropFailed, Err: fmt.Errorf(
					"%v; the UserService stays until its database user is dropped", err)}
				setDeletingStatus(us, fail)
				r.event(us, nil, corev1.EventTypeWarning, eventDatabaseUserDropFailed, "Delete", "%s", fail.Error())
				return ctrl.Result{}, fail
			}
			r.event(us, nil, corev1.EventTypeNormal, eventDatabaseUserDropped, "Delete", "Dropped database user %s", DatabaseUserName(us))
		}
	}
	if !drop && database != "" {
		r.event(us, nil, corev1.EventTypeNormal, "DatabaseRetained", "Delete", "Kept database %s (deletionPolicy %s)", database, us.Spec.DeletionPolicy)
	}
	return r.release(ctx, us)
}

func (r *UserServiceReconciler) release(ctx context.Context, us *v1alpha1.UserService) (ctrl.Result, error) {
	setDeletingStatus(us, nil)
	patch := client.MergeFromWithOptions(us.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(us, Finalizer)
	if err := r.Client.Patch(ctx, us, patch); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.floors.wrote(us)
	r.firstReports.done(us)
	return ctrl.Result{}, nil
}

// uriUnreadable handles a deletion whose MongoDB URI cannot be read: in a
// namespace being deleted the tenant's Secret may go first. The tenant is
// held for the grace period (the Secret may come back), then released with
// a Warning that nothing was dropped, so that it never keeps its namespace
// Terminating forever.
func (r *UserServiceReconciler) uriUnreadable(ctx context.Context, us *v1alpha1.UserService, database string, cause *failure) (ctrl.Result, error) {
	grace := r.URISecretGrace
	if grace <= 0 {
		grace = DefaultURISecretGrace
	}
	waited := time.Since(us.DeletionTimestamp.Time)
	if waited < grace {
		fail := &failure{Reason: ReasonDatabaseDropBlocked, Err: fmt.Errorf(
			"cannot reach database %s: %v; released without dropping anything in %s unless the Secret comes back",
			database, cause, (grace - waited).Round(time.Second))}
		setDeletingStatus(us, fail)
		r.event(us, nil, corev1.EventTypeWarning, fail.Reason, "Delete", "%s", fail.Error())
		return ctrl.Result{RequeueAfter: min(grace-waited+time.Second, max(r.RetryInterval, time.Second))}, nil
	}
	r.event(us, nil, corev1.EventTypeWarning, eventDatabaseNotDropped, "Delete",
		"Released after %s without the MongoDB URI (%v): the data was not dropped; database %s and its user %s, if any, are left on the server for an administrator",
		grace, cause, database, DatabaseUserName(us))
	return r.release(ctx, us)
}

// dropDatabase stops the tenant's pods, waits until none is left, and drops
// the database if its ownership record is the tenant's own. A zero result
// and no failure mean done (dropped, or left alone with an event).
func (r *UserServiceReconciler) dropDatabase(ctx context.Context, us *v1alpha1.UserService, uri tenantdb.URI, database string) (ctrl.Result, *failure) {
	owner, err := r.Databases.DatabaseOwner(ctx, uri, database)
	if err != nil {
		return ctrl.Result{}, &failure{Reason: ReasonDatabaseDropFailed, Err: fmt.Errorf(
			"%v; the UserService stays until the database is dropped (or spec.deletionPolicy is set to Retain)", err)}
	}
	me := tenantdb.Owner{Namespace: us.Namespace, Name: us.Name, UID: string(us.UID)}
	if owner == nil || *owner != me {
		r.event(us, nil, corev1.EventTypeWarning, eventDatabaseNotDropped, "Delete",
			"Database %s was not dropped: its ownership record does not name this UserService", database)
		return ctrl.Result{}, nil
	}

	left, err := r.stopPods(ctx, us)
	if err != nil {
		return ctrl.Result{}, &failure{Reason: ReasonDatabaseDropFailed, Err: fmt.Errorf("stop the tenant's pods before dropping database %s: %w", database, err)}
	}
	if left > 0 {
		setWaitingForPods(us, left)
		return ctrl.Result{RequeueAfter: podsGonePoll}, nil
	}

	if err := r.Databases.DropDatabase(ctx, uri, database); err != nil {
		return ctrl.Result{}, &failure{Reason: ReasonDatabaseDropFailed, Err: fmt.Errorf(
			"%v; the UserService stays until the database is dropped (or spec.deletionPolicy is set to Retain)", err)}
	}
	r.event(us, nil, corev1.EventTypeNormal, "DatabaseDropped", "Delete", "Dropped database %s (deletionPolicy Delete)", database)
	return ctrl.Result{}, nil
}

// stopPods scales the tenant's Deployment to zero (an autoscaler does not
// scale up from zero) and counts the tenant's pods still there: the pods
// listed by the Deployment's selector from the API server (a terminating pod
// counts until it is gone: it may still write), and, once a Deployment
// controller has reported on the Deployment, the replicas it reports until
// it has seen the scale-down. The sandbox's runtime, which runs processes
// instead of pods, reports that way too.
func (r *UserServiceReconciler) stopPods(ctx context.Context, us *v1alpha1.UserService) (int, error) {
	var d appsv1.Deployment
	found := true
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: us.Namespace, Name: us.Name}, &d)
	switch {
	case apierrors.IsNotFound(err):
		found = false
	case err != nil:
		return 0, err
	case d.Spec.Replicas == nil || *d.Spec.Replicas != 0:
		patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":0}}`))
		if err := r.Client.Patch(ctx, &d, patch, client.FieldOwner(FieldOwner)); err != nil {
			if !apierrors.IsNotFound(err) {
				return 0, fmt.Errorf("scale Deployment %s to zero: %w", us.Name, err)
			}
			found = false
		} else {
			r.event(us, &d, corev1.EventTypeNormal, "ScaledToZero", "Delete", "Scaled Deployment %s to zero before dropping the database", us.Name)
		}
	}
	var pods corev1.PodList
	if err := r.APIReader.List(ctx, &pods, client.InNamespace(us.Namespace), client.MatchingLabels(render.SelectorLabels(us))); err != nil {
		return 0, fmt.Errorf("list the tenant's pods: %w", err)
	}
	return podsLeft(len(pods.Items), d, found), nil
}

// podsLeft combines the pods listed with what the Deployment's status says
// (when a controller reports on it at all).
func podsLeft(listed int, d appsv1.Deployment, found bool) int {
	if !found || d.Status.ObservedGeneration == 0 {
		return listed
	}
	if d.Status.ObservedGeneration < d.Generation {
		// The scale-down is not seen yet: the old count still holds.
		return max(listed, int(d.Status.Replicas), 1)
	}
	return max(listed, int(d.Status.Replicas))
}

// databaseOf is the database the tenant used, as status reports it. A tenant
// that never got its database (another tenant holds the name, or it never
// converged) has none, and nothing is dropped for it.
func databaseOf(us *v1alpha1.UserService) string { return us.Status.Database }
