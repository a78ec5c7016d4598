package controllers

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
)

// tenantFloors remembers, per tenant, the resourceVersion of the
// reconciler's last write to its UserService (the finalizer, the status)
// until the cache has caught up with it. A reconcile reads the tenant from
// the cache unless its copy is older than that write: a GET per reconcile
// was 6% of the API server's CPU per pooled tenant. The floor keeps what
// the GET was for: patchStatus compares against the status it last wrote,
// never an older one (status writes trigger no reconcile, so a stale
// comparison would leave a wrong status up until the resync). The operator
// is the only writer of status (one leader); anyone else's edit of the
// spec reaches the cache and reconciles the tenant again.
type tenantFloors struct {
	mu sync.Mutex
	rv map[types.NamespacedName]string
}

// wrote records the resourceVersion the API server answered a write of us
// with.
func (f *tenantFloors) wrote(us *v1alpha1.UserService) {
	if us.ResourceVersion == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rv == nil {
		f.rv = map[types.NamespacedName]string{}
	}
	f.rv[client.ObjectKeyFromObject(us)] = us.ResourceVersion
}

// fresh says whether a cached copy at resourceVersion rv has seen the
// reconciler's last write of key, and forgets the write once it has.
func (f *tenantFloors) fresh(key types.NamespacedName, rv string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	floor, ok := f.rv[key]
	if !ok {
		return true
	}
	if cmp, err := resourceversion.CompareResourceVersion(rv, floor); err != nil || cmp < 0 {
		return false
	}
	delete(f.rv, key)
	return true
}

// forget drops key's floor (the tenant is gone).
func (f *tenantFloors) forget(key types.NamespacedName) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.rv, key)
}

// readTenant reads the tenant from the cache when it is fresh enough, else
// from the API server.
func (r *UserServiceReconciler) readTenant(ctx context.Context, key types.NamespacedName, us *v1alpha1.UserService) error {
	if err := r.Client.Get(ctx, key, us); err == nil && r.floors.fresh(key, us.ResourceVersion) {
		return nil
	}
	err := r.APIReader.Get(ctx, key, us)
	if client.IgnoreNotFound(err) == nil && err != nil {
		r.floors.forget(key)
	}
	return err
}
