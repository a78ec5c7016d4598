package controllers

import (
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"userve.dev/userve/api/v1alpha1"
)

func liveTenant() *v1alpha1.UserService {
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: "shop", Generation: 3}}
	v1alpha1.SetDefaults(us)
	return us
}

func deploymentWith(replicas, updated, available, ready int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Generation: 2},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas},
		Status: appsv1.DeploymentStatus{
			ObservedGeneration: 2, Replicas: updated, UpdatedReplicas: updated,
			AvailableReplicas: available, ReadyReplicas: ready,
		},
	}
}

func condition(t *testing.T, us *v1alpha1.UserService, typ string) metav1.Condition {
	t.Helper()
	c := meta.FindStatusCondition(us.Status.Conditions, typ)
	if c == nil {
		t.Fatalf("no %s condition in %+v", typ, us.Status.Conditions)
	}
	if c.ObservedGeneration != us.Generation {
		t.Errorf("%s condition observedGeneration = %d, want %d", typ, c.ObservedGeneration, us.Generation)
	}
	return *c
}

func wantConditions(t *testing.T, us *v1alpha1.UserService, ready, progressing, degraded, db metav1.ConditionStatus) {
	t.Helper()
	for typ, want := range map[string]metav1.ConditionStatus{
		v1alpha1.ConditionReady: ready, v1alpha1.ConditionProgressing: progressing,
		v1alpha1.ConditionDegraded: degraded, v1alpha1.ConditionDatabaseReady: db,
	} {
		if c := condition(t, us, typ); c.Status != want {
			t.Errorf("%s = %s (%s: %s), want %s", typ, c.Status, c.Reason, c.Message, want)
		}
	}
}

func TestStatusReadyWhenRolledOutAndDatabaseReachable(t *testing.T) {
	us := liveTenant()
	setStatus(us, observed{deployment: deploymentWith(2, 2, 2, 2), databaseChecked: true, database: "shop_acme"})
	wantConditions(t, us, metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionTrue)
	st := us.Status
	if st.Phase != v1alpha1.PhaseReady || st.ObservedGeneration != 3 || st.Replicas != 2 || st.ReadyReplicas != 2 {
		t.Errorf("status = %+v", st)
	}
	if st.Endpoint != "http://acme.shop.svc:8080" || st.Database != "shop_acme" || st.CredentialsSecret != "acme-credentials" {
		t.Errorf("endpoint/database/credentials = %q %q %q", st.Endpoint, st.Database, st.CredentialsSecret)
	}
	if st.Selector != "app.kubernetes.io/instance=acme,app.kubernetes.io/name=userve-server" {
		t.Errorf("selector = %q", st.Selector)
	}
}

func TestStatusProgressingWhilePodsRollOut(t *testing.T) {
	cases := map[string]*appsv1.Deployment{
		"not created":             nil,
		"change not observed yet": func() *appsv1.Deployment { d := deploymentWith(2, 2, 2, 2); d.Generation = 3; return d }(),
		"pods not updated":        deploymentWith(2, 1, 2, 2),
		"pods not available":      deploymentWith(2, 2, 1, 1),
	}
	for name, d := range cases {
		us := liveTenant()
		setStatus(us, observed{deployment: d, databaseChecked: true})
		if c := condition(t, us, v1alpha1.ConditionProgressing); c.Status != metav1.ConditionTrue {
			t.Errorf("%s: Progressing = %s", name, c.Status)
		}
		if c := condition(t, us, v1alpha1.ConditionReady); c.Status != metav1.ConditionFalse {
			t.Errorf("%s: Ready = %s", name, c.Status)
		}
		if us.Status.Phase != v1alpha1.PhasePending || us.Status.ObservedGeneration != 3 {
			t.Errorf("%s: phase %s observedGeneration %d", name, us.Status.Phase, us.Status.ObservedGeneration)
		}
	}
}

func TestStatusFailureKeepsObservedGeneration(t *testing.T) {
	us := liveTenant()
	us.Status.ObservedGeneration = 2
	setStatus(us, observed{failure: userError(ReasonSecretNotFound, errors.New("secret shop/mongo not found")), databaseChecked: false})
	wantConditions(t, us, metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionUnknown)
	if c := condition(t, us, v1alpha1.ConditionDegraded); c.Reason != ReasonSecretNotFound || c.Message != "secret shop/mongo not found" {
		t.Errorf("Degraded = %s: %s", c.Reason, c.Message)
	}
	if us.Status.ObservedGeneration != 2 {
		t.Errorf("observedGeneration moved to %d on a failed reconcile", us.Status.ObservedGeneration)
	}
	if us.Status.Phase != v1alpha1.PhaseDegraded {
		t.Errorf("phase = %s", us.Status.Phase)
	}
}

func TestStatusDatabaseUnreachable(t *testing.T) {
	us := liveTenant()
	setStatus(us, observed{deployment: deploymentWith(1, 1, 1, 1), databaseChecked: true, databaseErr: errors.New("ping MongoDB: connection refused")})
	wantConditions(t, us, metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse)
	if c := condition(t, us, v1alpha1.ConditionDatabaseReady); c.Reason != ReasonDatabaseUnreachable {
		t.Errorf("DatabaseReady reason = %s", c.Reason)
	}
	if us.Status.ObservedGeneration != 3 {
		t.Error("an unreachable database is an observation, not a failure to apply the spec")
	}
}

func TestStatusSuspended(t *testing.T) {
	us := liveTenant()
	us.Spec.Suspend = true
	setStatus(us, observed{deployment: deploymentWith(0, 0, 0, 0), databaseChecked: true})
	wantConditions(t, us, metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionTrue)
	if us.Status.Phase != v1alpha1.PhaseSuspended || condition(t, us, v1alpha1.ConditionReady).Reason != ReasonSuspended {
		t.Errorf("phase %s, Ready reason %s", us.Status.Phase, condition(t, us, v1alpha1.ConditionReady).Reason)
	}

	// Pods still running: suspending, not yet suspended.
	scalingDown := liveTenant()
	scalingDown.Spec.Suspend = true
	d := deploymentWith(0, 0, 0, 0)
	d.Status.Replicas = 2
	setStatus(scalingDown, observed{deployment: d, databaseChecked: true})
	wantConditions(t, scalingDown, metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionTrue)
	if scalingDown.Status.Phase != v1alpha1.PhaseSuspended {
		t.Errorf("phase while scaling down = %s", scalingDown.Status.Phase)
	}
}

func TestStatusProgressDeadlineExceededIsDegraded(t *testing.T) {
	d := deploymentWith(2, 2, 0, 0)
	d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: "timed out"}}
	us := liveTenant()
	setStatus(us, observed{deployment: d, databaseChecked: true})
	wantConditions(t, us, metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionTrue)
	if us.Status.Phase != v1alpha1.PhaseDegraded {
		t.Errorf("phase = %s", us.Status.Phase)
	}
}

func TestStatusUnchangedObservationChangesNothing(t *testing.T) {
	us := liveTenant()
	o := observed{deployment: deploymentWith(1, 1, 1, 1), databaseChecked: true, database: "shop_acme"}
	setStatus(us, o)
	first := us.Status.DeepCopy()
	setStatus(us, o)
	if !equalStatus(*first, us.Status) {
		t.Errorf("a second identical observation changed status:\n%+v\n%+v", *first, us.Status)
	}
}

func TestDeletingStatus(t *testing.T) {
	us := liveTenant()
	setDeletingStatus(us, &failure{Reason: ReasonDatabaseDropFailed, Err: errors.New("unreachable")})
	if us.Status.Phase != v1alpha1.PhaseDeleting {
		t.Errorf("phase = %s", us.Status.Phase)
	}
	if c := condition(t, us, v1alpha1.ConditionDegraded); c.Status != metav1.ConditionTrue || c.Reason != ReasonDatabaseDropFailed {
		t.Errorf("Degraded = %+v", c)
	}
	if c := condition(t, us, v1alpha1.ConditionReady); c.Status != metav1.ConditionFalse || c.Reason != ReasonDeleting {
		t.Errorf("Ready = %+v", c)
	}
}

func TestClaimsFirst(t *testing.T) {
	older := liveTenant()
	older.Name, older.CreationTimestamp = "older", metav1.Unix(100, 0)
	newer := liveTenant()
	newer.Name, newer.CreationTimestamp = "newer", metav1.Unix(200, 0)
	if !claimsFirst(older, newer, "db") || claimsFirst(newer, older, "db") {
		t.Error("without a user the older tenant holds the database")
	}
	newer.Status.Database = "db"
	if claimsFirst(older, newer, "db") || !claimsFirst(newer, older, "db") {
		t.Error("the tenant using the database holds it, however old the other")
	}
	twin := liveTenant()
	twin.Name, twin.CreationTimestamp = "twin", metav1.Unix(100, 0)
	if claimsFirst(twin, older, "db") == claimsFirst(older, twin, "db") {
		t.Error("a tie must have exactly one winner")
	}
}

// A refused tenant URI is a DatabaseReady failure with its own reason, not
// "the database's URI is not known".
func TestStatusInvalidMongoURI(t *testing.T) {
	us := liveTenant()
	err := errors.New("the MongoDB URI's authMechanism=MONGODB-OIDC is refused")
	setStatus(us, observed{failure: userError(ReasonInvalidMongoURI, err)})
	wantConditions(t, us, metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse)
	for _, typ := range []string{v1alpha1.ConditionDatabaseReady, v1alpha1.ConditionReady, v1alpha1.ConditionDegraded} {
		if c := condition(t, us, typ); c.Reason != ReasonInvalidMongoURI || c.Message != err.Error() {
			t.Errorf("%s = %s: %s", typ, c.Reason, c.Message)
		}
	}
}
