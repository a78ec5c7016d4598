package runtime

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Autoscaler stands in for the HorizontalPodAutoscaler controller, which a
// bare API server lacks: for each HPA a UserService owns it keeps the target
// Deployment's replicas within [minReplicas, maxReplicas] and reports them in
// the HPA's status. There are no CPU metrics here, so it never scales on
// load; an autoscaled tenant runs minReplicas processes.
type Autoscaler struct {
	client client.Client
	Logf   func(format string, args ...any)
}

// SetupWithManager watches tenants' and pools' HPAs and the Deployments they scale.
func (a *Autoscaler) SetupWithManager(mgr ctrl.Manager) error {
	a.client = mgr.GetClient()
	if a.Logf == nil {
		a.Logf = func(string, ...any) {}
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("local-autoscaler").
		For(&autoscalingv2.HorizontalPodAutoscaler{}, builder.WithPredicates(ownedByTenantOrPool)).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(a.hpasScaling),
			builder.WithPredicates(ownedByTenantOrPool)).
		Complete(a)
}

// hpasScaling maps a Deployment to the tenant HPAs targeting it.
func (a *Autoscaler) hpasScaling(ctx context.Context, obj client.Object) []reconcile.Request {
	var list autoscalingv2.HorizontalPodAutoscalerList
	if err := a.client.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, h := range list.Items {
		if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == obj.GetName() {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: h.Namespace, Name: h.Name}})
		}
	}
	return out
}

// Reconcile clamps one HPA's target.
func (a *Autoscaler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var hpa autoscalingv2.HorizontalPodAutoscaler
	if err := a.client.Get(ctx, req.NamespacedName, &hpa); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	ref := hpa.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || !runs(&hpa) || hpa.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	var d appsv1.Deployment
	if err := a.client.Get(ctx, types.NamespacedName{Namespace: hpa.Namespace, Name: ref.Name}, &d); err != nil {
		if apierrors.IsNotFound(err) {
			return reconcile.Result{}, nil // the operator creates it; its event brings us back
		}
		return reconcile.Result{}, err
	}
	current := int32(1)
	if d.Spec.Replicas != nil {
		current = *d.Spec.Replicas
	}
	want := clampReplicas(current, hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	if want != current {
		base := d.DeepCopy()
		d.Spec.Replicas = &want
		if err := a.client.Patch(ctx, &d, client.MergeFrom(base)); err != nil {
			return reconcile.Result{}, fmt.Errorf("scale %s/%s: %w", d.Namespace, d.Name, err)
		}
		a.Logf("%s/%s: autoscaled from %d to %d replicas (HPA bounds %d..%d; no load metrics in the sandbox)",
			d.Namespace, d.Name, current, want, clampReplicas(0, hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas), hpa.Spec.MaxReplicas)
	}

	status := hpa.Status.DeepCopy()
	status.ObservedGeneration = &hpa.Generation
	status.CurrentReplicas = d.Status.Replicas
	status.DesiredReplicas = want
	if want != current {
		now := metav1.Now()
		status.LastScaleTime = &now
	}
	if !equality.Semantic.DeepEqual(&hpa.Status, status) {
		base := hpa.DeepCopy()
		hpa.Status = *status
		if err := a.client.Status().Patch(ctx, &hpa, client.MergeFrom(base)); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
	}
	return reconcile.Result{}, nil
}

// clampReplicas is what an HPA without metrics wants: current, within
// [min (default 1), max].
func clampReplicas(current int32, min *int32, max int32) int32 {
	lo := int32(1)
	if min != nil {
		lo = *min
	}
	if current < lo {
		current = lo
	}
	if max > 0 && current > max {
		current = max
	}
	return current
}
