package controllers

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
)

// Condition reasons besides the failures'.
const (
	ReasonAvailable                = "Available"
	ReasonSuspended                = "Suspended"
	ReasonCreating                 = "Creating"
	ReasonRollingOut               = "RollingOut"
	ReasonWaitingForPods           = "WaitingForPods"
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	ReasonStable                   = "Stable"
	ReasonHealthy                  = "Healthy"
	ReasonConnected                = "Connected"
	ReasonDatabaseUnreachable      = "DatabaseUnreachable"
	ReasonNotChecked               = "NotChecked"
	ReasonDeleting                 = "Deleting"
	ReasonDatabaseDropFailed       = "DatabaseDropFailed"
)

// observed is what one reconcile of a live tenant found.
type observed struct {
	// failure: the tenant's objects could not be converged.
	failure *failure
	// deployment as the API server has it; nil when not known.
	deployment *appsv1.Deployment
	// databaseChecked: the database was pinged, with databaseErr.
	databaseChecked bool
	databaseErr     error
	database        string
	// isolation is the DatabaseIsolated condition found; nil: not known.
	isolation *metav1.Condition
	// placed is the Placed condition; nil: not decided (a failure before).
	placed *metav1.Condition
	// serving is the pool the tenant's Service points at; nil: its own pods.
	serving *poolServing
}

// rollout summarizes a Deployment's progress.
type rollout struct {
	done           bool
	deadlineFailed bool
	reason, msg    string
}

func rolloutOf(d *appsv1.Deployment) rollout {
	if d == nil {
		return rollout{reason: ReasonCreating, msg: "waiting for the Deployment"}
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return rollout{deadlineFailed: true, reason: ReasonProgressDeadlineExceeded, msg: "the Deployment's rollout exceeded its progress deadline: " + c.Message}
		}
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	switch {
	case st.ObservedGeneration < d.Generation:
		return rollout{reason: ReasonRollingOut, msg: "the Deployment controller has not seen the latest change yet"}
	case st.UpdatedReplicas < want:
		return rollout{reason: ReasonRollingOut, msg: fmt.Sprintf("%d of %d pods updated", st.UpdatedReplicas, want)}
	case st.Replicas > st.UpdatedReplicas:
		return rollout{reason: ReasonRollingOut, msg: fmt.Sprintf("%d old pods still running", st.Replicas-st.UpdatedReplicas)}
	case st.AvailableReplicas < want:
		return rollout{reason: ReasonWaitingForPods, msg: fmt.Sprintf("%d of %d pods available", st.AvailableReplicas, want)}
	}
	return rollout{done: true, reason: ReasonAvailable, msg: fmt.Sprintf("%d of %d pods available", st.AvailableReplicas, want)}
}

// poolRollout is a pooled tenant's rollout: done while the pool has a
// ready pod.
func poolRollout(p *poolServing) rollout {
	if p.ready == 0 {
		return rollout{reason: ReasonWaitingForPods, msg: fmt.Sprintf("no pod of UserServicePool %s is ready", p.pool)}
	}
	return rollout{done: true, reason: ReasonAvailable, msg: fmt.Sprintf("served by UserServicePool %s: %d pods ready", p.pool, p.ready)}
}

// setStatus turns what a reconcile observed into status, following kstatus:
// Ready is normal-true, Progressing and Degraded abnormal-true, and
// observedGeneration only moves when the spec was converged.
func setStatus(us *v1alpha1.UserService, o observed) {
	st := &us.Status
	gen := us.Generation
	set := func(typ string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen,
		})
	}

	if o.database != "" {
		st.Database = o.database
	}
	st.Endpoint = render.Endpoint(us)
	st.Selector = render.Selector(us)
	st.CredentialsSecret = render.CredentialsSecretName(us)
	ro := rolloutOf(o.deployment)
	switch {
	case o.serving != nil:
		st.Replicas, st.ReadyReplicas = o.serving.ready, o.serving.ready
		ro = poolRollout(o.serving)
	case o.deployment != nil:
		st.Replicas = o.deployment.Status.Replicas
		st.ReadyReplicas = o.deployment.Status.ReadyReplicas
	}
	if o.placed != nil {
		set(v1alpha1.ConditionPlaced, o.placed.Status, o.placed.Reason, o.placed.Message)
	}
	moving := o.placed != nil && (o.placed.Reason == ReasonMovingIn || o.placed.Reason == ReasonMovingOut)

	switch {
	case o.failure != nil && (o.failure.Reason == ReasonDatabaseNotOwned || o.failure.Reason == ReasonInvalidMongoURI):
		set(v1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, o.failure.Reason, o.failure.Error())
	case !o.databaseChecked:
		set(v1alpha1.ConditionDatabaseReady, metav1.ConditionUnknown, ReasonNotChecked, "the database's URI is not known")
	case o.databaseErr != nil:
		set(v1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, ReasonDatabaseUnreachable, o.databaseErr.Error())
	default:
		set(v1alpha1.ConditionDatabaseReady, metav1.ConditionTrue, ReasonConnected, fmt.Sprintf("database %s is reachable", st.Database))
	}

	switch {
	case o.isolation != nil:
		set(o.isolation.Type, o.isolation.Status, o.isolation.Reason, o.isolation.Message)
	case meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionDatabaseIsolated) == nil:
		set(v1alpha1.ConditionDatabaseIsolated, metav1.ConditionUnknown, ReasonIsolationNotChecked, "the tenant's database user is not set up yet")
	}

	if o.failure != nil {
		// The Deployment seen is not the one the spec asks for: nothing
		// is rolling out on the operator's behalf.
		set(v1alpha1.ConditionProgressing, metav1.ConditionFalse, o.failure.Reason, "the operator cannot apply the spec: "+o.failure.Error())
	} else if moving {
		set(v1alpha1.ConditionProgressing, metav1.ConditionTrue, o.placed.Reason, o.placed.Message)
	} else if ro.done || ro.deadlineFailed {
		set(v1alpha1.ConditionProgressing, metav1.ConditionFalse, ReasonStable, ro.msg)
	} else {
		set(v1alpha1.ConditionProgressing, metav1.ConditionTrue, ro.reason, ro.msg)
	}

	switch {
	case o.failure != nil:
		set(v1alpha1.ConditionDegraded, metav1.ConditionTrue, o.failure.Reason, o.failure.Error())
	case ro.deadlineFailed:
		set(v1alpha1.ConditionDegraded, metav1.ConditionTrue, ro.reason, ro.msg)
	case o.databaseErr != nil:
		set(v1alpha1.ConditionDegraded, metav1.ConditionTrue, ReasonDatabaseUnreachable, o.databaseErr.Error())
	default:
		set(v1alpha1.ConditionDegraded, metav1.ConditionFalse, ReasonHealthy, "no problem found")
	}

	switch {
	case o.failure != nil:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, o.failure.Reason, o.failure.Error())
	case us.Spec.Suspend && ro.done:
		set(v1alpha1.ConditionReady, metav1.ConditionTrue, ReasonSuspended, "suspended: scaled to zero, data kept")
	case us.Spec.Suspend:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, ro.reason, "suspending: "+ro.msg)
	case o.databaseErr != nil:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonDatabaseUnreachable, o.databaseErr.Error())
	case !ro.done:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, ro.reason, ro.msg)
	default:
		set(v1alpha1.ConditionReady, metav1.ConditionTrue, ReasonAvailable, fmt.Sprintf("serving at %s; %s", st.Endpoint, ro.msg))
	}

	switch {
	case meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionDegraded):
		st.Phase = v1alpha1.PhaseDegraded
	case us.Spec.Suspend:
		st.Phase = v1alpha1.PhaseSuspended
	case meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionReady):
		st.Phase = v1alpha1.PhaseReady
	default:
		st.Phase = v1alpha1.PhasePending
	}

	if o.failure == nil {
		st.ObservedGeneration = gen
	}
}

// setDeletingStatus reports a deletion in progress; dropErr is why the
// database could not be dropped yet.
func setDeletingStatus(us *v1alpha1.UserService, dropErr *failure) {
	st := &us.Status
	gen := us.Generation
	set := func(typ string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen,
		})
	}
	st.Phase = v1alpha1.PhaseDeleting
	set(v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonDeleting, "the UserService is being deleted")
	if dropErr != nil {
		set(v1alpha1.ConditionDegraded, metav1.ConditionTrue, dropErr.Reason, dropErr.Error())
		if dropErr.Reason == ReasonDatabaseDropFailed {
			set(v1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, ReasonDatabaseUnreachable, dropErr.Error())
		}
	}
}

// setWaitingForPods reports a deletion waiting for the tenant's pods to stop
// before its database is dropped.
func setWaitingForPods(us *v1alpha1.UserService, left int) {
	us.Status.Phase = v1alpha1.PhaseDeleting
	meta.SetStatusCondition(&us.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: ReasonWaitingForPodsToStop,
		Message: fmt.Sprintf("deleting: %d tenant pods still there; the database is dropped once none is left", left), ObservedGeneration: us.Generation,
	})
}
