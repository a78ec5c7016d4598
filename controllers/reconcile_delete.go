package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"userve.dev/userve/api/v1alpha1"
)

// ReasonDatabaseDropBlocked: the database cannot be dropped because its URI
// cannot be read.
const ReasonDatabaseDropBlocked = "DatabaseDropBlocked"

// reconcileDelete finishes a deletion. With deletionPolicy Delete the
// tenant's database is dropped first, and the finalizer stays (retried with
// backoff) until it is; with Retain nothing outside Kubernetes is touched.
// The tenant's objects go with it through their owner references.
func (r *UserServiceReconciler) reconcileDelete(ctx context.Context, us *v1alpha1.UserService) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(us, Finalizer) {
		return ctrl.Result{}, nil
	}
	if us.Spec.DeletionPolicy == v1alpha1.DeletionPolicyDelete {
		if fail := r.dropDatabase(ctx, us); fail != nil {
			setDeletingStatus(us, fail)
			r.event(us, nil, corev1.EventTypeWarning, fail.Reason, "Delete", "%s", fail.Error())
			// Backoff, not a fixed interval: an outage may be long.
			return ctrl.Result{}, fail
		}
	} else {
		r.event(us, nil, corev1.EventTypeNormal, "DatabaseRetained", "Delete", "Kept database %s (deletionPolicy Retain)", databaseOf(us))
	}
	setDeletingStatus(us, nil)

	patch := client.MergeFromWithOptions(us.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(us, Finalizer)
	if err := r.Client.Patch(ctx, us, patch); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return ctrl.Result{}, nil
}

func (r *UserServiceReconciler) dropDatabase(ctx context.Context, us *v1alpha1.UserService) *failure {
	database := databaseOf(us)
	if database == "" {
		return nil
	}
	uri, err := r.mongoURI(ctx, us)
	if err != nil {
		return &failure{Reason: ReasonDatabaseDropBlocked, Err: fmt.Errorf(
			"cannot drop database %s: %v; fix it, or set spec.deletionPolicy to Retain to delete without dropping", database, err)}
	}
	if err := r.Databases.DropDatabase(ctx, string(uri), database); err != nil {
		return &failure{Reason: ReasonDatabaseDropFailed, Err: fmt.Errorf(
			"%v; the UserService stays until the database is dropped (or spec.deletionPolicy is set to Retain)", err)}
	}
	r.event(us, nil, corev1.EventTypeNormal, "DatabaseDropped", "Delete", "Dropped database %s (deletionPolicy Delete)", database)
	return nil
}

// databaseOf is the database the tenant used, as status reports it. A tenant
// that never got its database (another tenant holds the name, or it never
// converged) has none, and nothing is dropped for it.
func databaseOf(us *v1alpha1.UserService) string { return us.Status.Database }
