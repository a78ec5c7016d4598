package pool

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"userve.dev/userve/api/v1alpha1"
)

// ackInterval is the least time between two patches of the pod's
// acknowledgement: a burst of Secret writes costs a few patches, not one
// each.
const ackInterval = 200 * time.Millisecond

// acknowledger tells the operator which tenant Secrets this pod has
// applied: the highest resourceVersion among them, in the annotation
// v1alpha1.PoolAppliedAnnotation of the pod's own Pod (docs/pools.md, "The
// acknowledgement the pool gives"). The operator switches a tenant's
// traffic to the pool only once every ready pod has applied its Secret.
//
// It writes only after the initial list is applied (the list's items come
// in no particular order; the watch's events come in resourceVersion
// order), so the value never claims a write the routing table lacks.
type acknowledger struct {
	pods corev1client.PodInterface // nil: no Pod to annotate (run by hand)
	name string
	log  *slog.Logger

	mu      sync.Mutex
	highest string // the highest resourceVersion applied
	written string // the last one written to the Pod
	kick    chan struct{}
	first   chan struct{} // closed once the initial list's acknowledgement is written
	once    sync.Once
}

func newAcknowledger(pods corev1client.PodInterface, name string, log *slog.Logger) *acknowledger {
	return &acknowledger{pods: pods, name: name, log: log, kick: make(chan struct{}, 1), first: make(chan struct{})}
}

// applied records that the Secret at resourceVersion rv is in the routing
// table.
func (a *acknowledger) applied(rv string) {
	a.mu.Lock()
	if c, err := resourceversion.CompareResourceVersion(rv, a.highest); a.highest == "" || err != nil || c > 0 {
		a.highest = rv
	}
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// run writes the acknowledgement once synced reports the initial list
// applied, then after every change, until ctx ends. Failed patches are
// retried.
func (a *acknowledger) run(ctx context.Context, synced func() bool) {
	for !synced() {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		case <-time.After(ackInterval):
		}
	}
	for {
		if a.write(ctx) {
			a.once.Do(func() { close(a.first) })
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(ackInterval):
		}
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		}
	}
}

// write patches the Pod with the highest resourceVersion applied, if it
// changed; false when the patch failed (a kick retries it).
func (a *acknowledger) write(ctx context.Context) bool {
	a.mu.Lock()
	rv, written := a.highest, a.written
	a.mu.Unlock()
	if a.pods == nil || rv == "" || rv == written {
		return true // nothing (new) to say
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{v1alpha1.PoolAppliedAnnotation: rv}}})
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := a.pods.Patch(pctx, a.name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		if ctx.Err() == nil {
			a.log.Warn("writing the applied tenant Secrets on the pod failed; retrying", "pod", a.name, "error", err)
			select {
			case a.kick <- struct{}{}:
			default:
			}
		}
		return false
	}
	a.mu.Lock()
	a.written = rv
	a.mu.Unlock()
	return true
}

// acknowledged reports whether the initial list's acknowledgement is
// written (always true without a Pod to annotate).
func (a *acknowledger) acknowledged() bool {
	select {
	case <-a.first:
		return true
	default:
		return false
	}
}
