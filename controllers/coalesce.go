package controllers

import (
	"context"
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
)

// ackWakeInterval bounds how often a pool's acknowledgements wake its
// waiting tenants. During a bulk creation each pool pod acknowledges up to
// five times a second, and each wake-up lists and queues every tenant moving
// in (thousands): a quarter of the operator's CPU at 10,000 tenants. Once a
// second keeps a lone tenant's wait unchanged (the first acknowledgement
// wakes at once) and adds at most this to a burst's.
const ackWakeInterval = time.Second

// coalescer runs fire for a key at once, then at most once per interval
// while triggers keep coming: a trigger inside the window is answered at
// its end, never dropped.
type coalescer struct {
	interval time.Duration
	fire     func(key string)

	mu sync.Mutex
	// pending has a key while its window is open: true once triggered
	// since the last fire.
	pending map[string]bool
}

func newCoalescer(interval time.Duration, fire func(key string)) *coalescer {
	return &coalescer{interval: interval, fire: fire, pending: map[string]bool{}}
}

func (c *coalescer) trigger(key string) {
	c.mu.Lock()
	_, open := c.pending[key]
	c.pending[key] = open // inside a window: answered at its end
	c.mu.Unlock()
	if !open {
		c.fireAndOpenWindow(key)
	}
}

// close ends key's window: a trigger during it fires now and opens the next.
func (c *coalescer) close(key string) {
	c.mu.Lock()
	again := c.pending[key]
	if again {
		c.pending[key] = false
	} else {
		delete(c.pending, key)
	}
	c.mu.Unlock()
	if again {
		c.fireAndOpenWindow(key)
	}
}

func (c *coalescer) fireAndOpenWindow(key string) {
	c.fire(key)
	time.AfterFunc(c.interval, func() { c.close(key) })
}

// poolAckHandler wakes the tenants moving into a pool when one of its pods'
// acknowledgements changes (or a pod comes or goes), coalesced per pool.
func (r *UserServiceReconciler) poolAckHandler() handler.EventHandler {
	var (
		once  sync.Once
		wakes *coalescer
	)
	trigger := func(pod client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		l := pod.GetLabels()
		if l[render.LabelName] != render.PoolAppName || l[render.LabelInstance] == "" {
			return
		}
		// The controller hands every event the same queue.
		once.Do(func() {
			wakes = newCoalescer(ackWakeInterval, func(pool string) {
				for _, req := range r.tenantsBy(context.Background(), pool, indexMovingIn) {
					q.Add(req)
				}
			})
		})
		wakes.trigger(l[render.LabelInstance])
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			trigger(e.Object, q)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if e.ObjectOld.GetAnnotations()[v1alpha1.PoolAppliedAnnotation] != e.ObjectNew.GetAnnotations()[v1alpha1.PoolAppliedAnnotation] {
				trigger(e.ObjectNew, q)
			}
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			trigger(e.Object, q)
		},
	}
}
