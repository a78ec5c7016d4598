package runtime

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
)

// What goes with a tenant: objects and processes of deleted tenants, shutdown, autoscaling.

func TestIgnoresDeploymentsNotOwnedByAUserService(t *testing.T) {
	h := start(t)
	d := tenantDeployment()
	d.Namespace, d.Name = h.ns, "plain"
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "acme"}}
	h.must(h.c.Create(context.Background(), d))
	h.tenant("owned", 1)
	h.rolledOut("owned", 1) // the runtime is up and working
	plain := h.deployment("plain")
	if plain.Status.Replicas != 0 || plain.Annotations[URLAnnotation] != "" || h.tenantState("plain").Name != "" {
		t.Fatalf("plain deployment was run: %+v %v", plain.Status, plain.Annotations)
	}
}

func TestDeletedUserServiceTakesItsObjectsAndProcesses(t *testing.T) {
	h := start(t)
	h.tenant("gone", 2)
	h.rolledOut("gone", 2)
	running := pids(h.tenantState("gone"))
	ctx := context.Background()
	h.must(h.c.Delete(ctx, &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "gone"}}))
	h.eventually("dependents deleted", func() (bool, string) {
		for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Secret{}, &corev1.ConfigMap{}} {
			name := "gone"
			switch obj.(type) {
			case *corev1.Secret:
				name = "gone-credentials"
			case *corev1.ConfigMap:
				name = "gone-config"
			}
			err := h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: name}, obj)
			if !apierrors.IsNotFound(err) {
				return false, fmt.Sprintf("%T %s: %v", obj, name, err)
			}
		}
		return true, ""
	})
	h.eventually("processes stopped", func() (bool, string) {
		for pid := range running {
			if processAlive(pid) {
				return false, fmt.Sprintf("pid %d alive", pid)
			}
		}
		return h.tenantState("gone").Name == "", "tenant still listed"
	})
}

func TestForegroundDeletionWaitsForDependents(t *testing.T) {
	h := start(t)
	h.tenant("fg", 1)
	h.rolledOut("fg", 1)
	ctx := context.Background()
	fg := metav1.DeletePropagationForeground
	h.must(h.c.Delete(ctx, &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "fg"}},
		&client.DeleteOptions{PropagationPolicy: &fg}))
	h.eventually("the UserService gone", func() (bool, string) {
		err := h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: "fg"}, &v1alpha1.UserService{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	err := h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: "fg"}, &appsv1.Deployment{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("deployment after foreground deletion: %v", err)
	}
}

func TestShutdownStopsEveryProcess(t *testing.T) {
	h := start(t)
	h.tenant("a", 2)
	h.tenant("b", 1)
	h.rolledOut("a", 2)
	h.rolledOut("b", 1)
	all := map[int]bool{}
	for _, st := range h.rt.Tenants() {
		for pid := range pids(st) {
			all[pid] = true
		}
	}
	url := h.tenantState("a").URL
	h.stop()
	for pid := range all {
		if processAlive(pid) {
			t.Errorf("pid %d survived shutdown", pid)
		}
	}
	if _, err := http.Get(url); err == nil {
		t.Error("tenant URL still answers after shutdown")
	}
}

func TestAutoscalerKeepsReplicasWithinTheHPABounds(t *testing.T) {
	h := start(t)
	d := h.tenant("auto", 1)
	ctx := context.Background()
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "auto", OwnerReferences: d.OwnerReferences},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "auto"},
			MinReplicas:    ptr.To[int32](2),
			MaxReplicas:    3,
		},
	}
	h.must(h.c.Create(ctx, hpa))
	h.rolledOut("auto", 2)
	h.eventually("HPA status", func() (bool, string) {
		var got autoscalingv2.HorizontalPodAutoscaler
		h.must(h.c.Get(ctx, client.ObjectKeyFromObject(hpa), &got))
		return got.Status.DesiredReplicas == 2 && got.Status.CurrentReplicas == 2, fmt.Sprintf("%+v", got.Status)
	})

	// Scaling the Deployment past the maximum is brought back.
	d = h.deployment("auto")
	base := d.DeepCopy()
	d.Spec.Replicas = ptr.To[int32](5)
	h.must(h.c.Patch(ctx, d, client.MergeFrom(base)))
	h.eventually("replicas clamped to 3", func() (bool, string) {
		r := h.deployment("auto").Spec.Replicas
		return r != nil && *r == 3, fmt.Sprint(*r)
	})
	h.rolledOut("auto", 3)
}

func TestClampReplicas(t *testing.T) {
	for _, tc := range []struct {
		current int32
		min     *int32
		max     int32
		want    int32
	}{
		{1, ptr.To[int32](2), 10, 2},
		{5, ptr.To[int32](2), 10, 5},
		{12, ptr.To[int32](2), 10, 10},
		{0, nil, 4, 1},
	} {
		if got := clampReplicas(tc.current, tc.min, tc.max); got != tc.want {
			t.Errorf("clamp(%d, %v, %d) = %d, want %d", tc.current, tc.min, tc.max, got, tc.want)
		}
	}
}
