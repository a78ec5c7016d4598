package controllers

import (
	"fmt"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// ownWrites remembers the resourceVersion of each object the reconciler
// last wrote, so that the watch event of that very write does not queue
// the tenant again: the reconcile that wrote it already knew what it
// wrote. Without this every tenant was reconciled once more after each
// reconcile that changed something (its creation, each step of a move,
// each change of its pool's endpoints), half the reconciles of 10,000
// pooled tenants. An edit by anyone else has another resourceVersion and
// is reconciled as before; an event that comes before the write's answer
// is reconciled too (harmless).
type ownWrites struct {
	mu sync.Mutex
	rv map[string]string
}

func ownKey(obj client.Object) string {
	return fmt.Sprintf("%T/%s/%s", obj, obj.GetNamespace(), obj.GetName())
}

// wrote records that obj, as the API server answered, is the reconciler's
// own write.
func (w *ownWrites) wrote(obj client.Object) {
	if obj.GetResourceVersion() == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rv == nil {
		w.rv = map[string]string{}
	}
	w.rv[ownKey(obj)] = obj.GetResourceVersion()
}

// echo says whether obj is the reconciler's own last write of it, and
// forgets that write.
func (w *ownWrites) echo(obj client.Object) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	key := ownKey(obj)
	if rv, ok := w.rv[key]; ok && rv == obj.GetResourceVersion() {
		delete(w.rv, key)
		return true
	}
	return false
}

// notOwnWrite passes every event but the echo of the reconciler's own
// writes; deletions always pass.
func (w *ownWrites) notOwnWrite() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return !w.echo(e.Object) },
		UpdateFunc: func(e event.UpdateEvent) bool { return !w.echo(e.ObjectNew) },
	}
}
