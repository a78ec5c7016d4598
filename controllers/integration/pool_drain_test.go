package integration_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers"
)

// TestTenantBornInAPoolGetsNoDeployment: a tenant created with spec.pool
// waits for the pool's pods to apply its Secret without a Deployment of its
// own (nobody calls a tenant that never served; on the real node 50 such
// tenants started 50 pods that were deleted seconds later), then is Pooled.
func TestTenantBornInAPoolGetsNoDeployment(t *testing.T) {
	ns := namespace(t)
	newPool(t, "cradle", []string{ns})
	pods := poolPods(t, "cradle", 1, 1)
	us := newTenantIn(t, ns, "newborn", func(u *v1alpha1.UserService) { u.Spec.Pool = "cradle" })

	got := waitCondition(t, us, v1alpha1.ConditionPlaced, metav1.ConditionFalse, controllers.ReasonMovingIn)
	if err := get(t, &appsv1.Deployment{}, ns, "newborn"); !apierrors.IsNotFound(err) {
		t.Fatalf("a tenant born in a pool got a Deployment while the pool applied its Secret (get: %v; placed: %s)",
			err, condition(got, v1alpha1.ConditionPlaced).Message)
	}
	if got.Status.Phase == v1alpha1.PhaseReady {
		t.Errorf("phase Ready before anything serves the tenant")
	}
	// The EndpointSlice controller's slice for the Service's selector, which
	// the operator withdraws once the pool serves.
	dedicatedSlice(t, us, "own01")
	s := poolSecret(t, "cradle", us)
	ackPods(t, pods, s.ResourceVersion)
	waitCondition(t, us, v1alpha1.ConditionPlaced, metav1.ConditionTrue, controllers.ReasonPooled)
	waitCondition(t, us, v1alpha1.ConditionReady, metav1.ConditionTrue, "")
	if err := get(t, &appsv1.Deployment{}, ns, "newborn"); !apierrors.IsNotFound(err) {
		t.Errorf("a pooled tenant has a Deployment (get: %v)", err)
	}
	for _, note := range eventReasons(t, us)["Created"] {
		if strings.Contains(note, "Deployment") {
			t.Errorf("a tenant born in a pool got a Deployment on its way in: event %q", note)
		}
	}
}

// TestMovingOutKeepsThePoolSecretWhileEndpointsDrain: moving out, the pool's
// EndpointSlice goes first and the tenant's Secret in the pool's namespace
// only PoolDrain later, so that the pool still answers the requests
// kube-proxy sends it until its rules catch up (on the real node both went
// in one reconcile, and 3 of 361 requests got the pool's 404); meanwhile
// the Secret is marked draining, for the pool to close the connections
// clients hold to it (kube-proxy keeps them on the pool's pods).
func TestMovingOutKeepsThePoolSecretWhileEndpointsDrain(t *testing.T) {
	ns := namespace(t)
	us := newTenantIn(t, ns, "leaver")
	markAvailable(t, us)
	waitCondition(t, us, v1alpha1.ConditionReady, metav1.ConditionTrue, "")
	newPool(t, "drainer", []string{ns})
	pods := poolPods(t, "drainer", 1, 1)
	moveIn(t, us, "drainer", pods)
	secretName := v1alpha1.PoolTenantSecretName("drainer", ns, "leaver")

	update(t, us, func(u *v1alpha1.UserService) { u.Spec.Pool = "" })
	markAvailable(t, us)
	dedicatedSlice(t, us, "own01")
	var sliceGone time.Time
	eventually(t, "the pool's EndpointSlice withdrawn", func() error {
		if err := get(t, &discoveryv1.EndpointSlice{}, ns, "leaver"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (err %v)", err)
		}
		sliceGone = time.Now()
		return nil
	})
	if err := get(t, &corev1.Secret{}, operatorNamespace, secretName); err != nil {
		t.Fatalf("the tenant's Secret left the pool with its endpoints, no time to drain: %v", err)
	}
	// Meanwhile the pool is told to close the connections clients hold to it.
	eventually(t, "the tenant's Secret marked draining", func() error {
		var s corev1.Secret
		if err := get(t, &s, operatorNamespace, secretName); err != nil {
			return err
		}
		if s.Annotations[v1alpha1.PoolTenantDrainingAnnotation] != "true" {
			return fmt.Errorf("annotations %v", s.Annotations)
		}
		return nil
	})
	gone(t, "the tenant's Secret in the pool's namespace", func() error { return get(t, &corev1.Secret{}, operatorNamespace, secretName) })
	// Polled every 50 ms: the Secret was seen gone at most that late, the
	// slice at most that late too.
	if kept := time.Since(sliceGone); kept < poolDrain-100*time.Millisecond {
		t.Errorf("the pool kept the tenant %s after its endpoints went, want %s", kept, poolDrain)
	}
	waitCondition(t, us, v1alpha1.ConditionPlaced, metav1.ConditionTrue, controllers.ReasonDedicated)
}
