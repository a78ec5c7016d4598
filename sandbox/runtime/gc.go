package runtime

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"userve.dev/userve/api/v1alpha1"
)

// DependentKinds are the kinds the collector looks among for
// UserService-owned objects: the operator's (v1alpha1.OwnedKinds) and the
// RBAC kinds a user may give a tenant. The cluster's collector looks at
// every kind; this one at those a tenant is known to own. Deployments come
// first, so that local processes stop before what they read goes.
func DependentKinds() []schema.GroupVersionKind {
	var out []schema.GroupVersionKind
	for _, k := range v1alpha1.OwnedKinds() {
		if k.Kind == "Deployment" {
			out = append([]schema.GroupVersionKind{k.GroupVersionKind}, out...)
		} else {
			out = append(out, k.GroupVersionKind)
		}
	}
	return append(out,
		schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"},
		schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"},
	)
}

// GarbageCollector deletes what a deleted UserService owned. A bare API
// server has no kube-controller-manager, so without it a deleted tenant's
// Deployment (and its local processes) would live on. It honours the
// foreground and orphan deletion finalizers kubectl can ask for.
type GarbageCollector struct {
	client client.Client
	reader client.Reader
	Logf   func(format string, args ...any)
}

// SetupWithManager watches UserServices (deletions) and tenant Deployments
// (so that objects left over from before the sandbox started are swept).
func (g *GarbageCollector) SetupWithManager(mgr ctrl.Manager) error {
	g.client, g.reader = mgr.GetClient(), mgr.GetAPIReader()
	if g.Logf == nil {
		g.Logf = func(string, ...any) {}
	}
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("local-pool-garbage-collector").
		For(&v1alpha1.UserServicePool{}).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, obj client.Object) []reconcile.Request {
				if owner := ownerOfKind(obj, "UserServicePool"); owner != "" {
					return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: owner}}}
				}
				return nil
			}), builder.WithPredicates(ownedByTenantOrPool)).
		Complete(poolCollector{g}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("local-garbage-collector").
		For(&v1alpha1.UserService{}).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, obj client.Object) []reconcile.Request {
				if owner := userServiceOwner(obj); owner != "" {
					return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: owner}}}
				}
				return nil
			}), builder.WithPredicates(ownedByTenantOrPool)).
		Complete(g)
}

// Reconcile handles one UserService name.
func (g *GarbageCollector) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var us v1alpha1.UserService
	err := g.client.Get(ctx, req.NamespacedName, &us)
	switch {
	case apierrors.IsNotFound(err):
		// Gone: every dependent of that name goes, whatever its UID.
		_, err := g.deleteDependents(ctx, req.Namespace, req.Name, func(types.UID) bool { return true })
		return reconcile.Result{}, err
	case err != nil:
		return reconcile.Result{}, err
	}
	if us.DeletionTimestamp == nil {
		// Dependents of an earlier UserService of the same name are orphans.
		_, err := g.deleteDependents(ctx, req.Namespace, req.Name, func(uid types.UID) bool { return uid != us.UID })
		return reconcile.Result{}, err
	}
	switch {
	case slices.Contains(us.Finalizers, metav1.FinalizerOrphanDependents):
		if err := g.orphanDependents(ctx, &us); err != nil {
			return reconcile.Result{}, err
		}
		return reconcile.Result{}, g.dropFinalizer(ctx, &us, metav1.FinalizerOrphanDependents)
	case slices.Contains(us.Finalizers, metav1.FinalizerDeleteDependents):
		left, err := g.deleteDependents(ctx, req.Namespace, req.Name, func(uid types.UID) bool { return uid == us.UID })
		if err != nil {
			return reconcile.Result{}, err
		}
		if left > 0 {
			return reconcile.Result{RequeueAfter: 500 * time.Millisecond}, nil // dependents are finishing
		}
		return reconcile.Result{}, g.dropFinalizer(ctx, &us, metav1.FinalizerDeleteDependents)
	}
	return reconcile.Result{}, nil
}

// dependents lists the objects owned by UserService name in ns whose owner
// UID matches.
func (g *GarbageCollector) dependents(ctx context.Context, ns, name string, match func(types.UID) bool) ([]*unstructured.Unstructured, error) {
	return g.dependentsOf(ctx, ns, "UserService", name, match)
}

// dependentsOf lists the objects in ns ("": every namespace) owned by the
// kind of userve's API group named name, whose owner UID matches.
func (g *GarbageCollector) dependentsOf(ctx context.Context, ns, kind, name string, match func(types.UID) bool) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, gvk := range DependentKinds() {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := g.reader.List(ctx, list, client.InNamespace(ns)); err != nil {
			if apierrors.IsNotFound(err) {
				continue // kind not served by this API server
			}
			return nil, fmt.Errorf("list %s: %w", gvk.Kind, err)
		}
		for i := range list.Items {
			obj := &list.Items[i]
			for _, ref := range obj.GetOwnerReferences() {
				gv, _ := schema.ParseGroupVersion(ref.APIVersion)
				if gv.Group == v1alpha1.GroupVersion.Group && ref.Kind == kind && ref.Name == name && match(ref.UID) {
					out = append(out, obj)
					break
				}
			}
		}
	}
	return out, nil
}

// deleteDependents deletes matching dependents and returns how many still
// exist (deleting ones included).
func (g *GarbageCollector) deleteDependents(ctx context.Context, ns, name string, match func(types.UID) bool) (int, error) {
	return g.deleteDependentsOf(ctx, ns, "UserService", name, match)
}

func (g *GarbageCollector) deleteDependentsOf(ctx context.Context, ns, kind, name string, match func(types.UID) bool) (int, error) {
	objs, err := g.dependentsOf(ctx, ns, kind, name, match)
	if err != nil {
		return 0, err
	}
	background := metav1.DeletePropagationBackground
	var deleted []string
	for _, obj := range objs {
		if obj.GetDeletionTimestamp() != nil {
			continue
		}
		if err := g.client.Delete(ctx, obj, &client.DeleteOptions{PropagationPolicy: &background}); err != nil && !apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("delete %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
		deleted = append(deleted, obj.GetKind()+" "+obj.GetName())
	}
	if len(deleted) > 0 {
		owner := ns + "/" + name
		if ns == "" {
			owner = name
		}
		g.Logf("garbage collector: deleted what %s %s owned: %s", kind, owner, strings.Join(deleted, ", "))
	}
	return len(objs), nil
}

func (g *GarbageCollector) orphanDependents(ctx context.Context, us *v1alpha1.UserService) error {
	objs, err := g.dependents(ctx, us.Namespace, us.Name, func(uid types.UID) bool { return uid == us.UID })
	if err != nil {
		return err
	}
	for _, obj := range objs {
		base := obj.DeepCopy()
		var refs []metav1.OwnerReference
		for _, ref := range obj.GetOwnerReferences() {
			if ref.UID != us.UID {
				refs = append(refs, ref)
			}
		}
		obj.SetOwnerReferences(refs)
		if err := g.client.Patch(ctx, obj, client.MergeFrom(base)); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

func (g *GarbageCollector) dropFinalizer(ctx context.Context, us *v1alpha1.UserService, f string) error {
	base := us.DeepCopy()
	us.Finalizers = slices.DeleteFunc(us.Finalizers, func(s string) bool { return s == f })
	err := g.client.Patch(ctx, us, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// poolCollector deletes what a deleted UserServicePool owned in any
// namespace (its Deployment first, so its processes stop), and what an
// earlier pool of the same name left. Its dependents are few and named for
// it; deletion propagation options are not looked at.
type poolCollector struct{ g *GarbageCollector }

func (pc poolCollector) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var pool v1alpha1.UserServicePool
	err := pc.g.client.Get(ctx, req.NamespacedName, &pool)
	match := func(uid types.UID) bool { return uid != pool.UID }
	switch {
	case apierrors.IsNotFound(err):
		match = func(types.UID) bool { return true }
	case err != nil:
		return reconcile.Result{}, err
	}
	_, err = pc.g.deleteDependentsOf(ctx, "", "UserServicePool", req.Name, match)
	return reconcile.Result{}, err
}
