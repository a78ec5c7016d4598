package opbench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/bench/internal/report"
	"userve.dev/userve/bench/internal/stats"
	"userve.dev/userve/controllers/render"
)

const (
	// flipTimeout bounds each flip's wait (and the ready timeout does).
	flipTimeout   = 300 * time.Second
	poolName      = "bench"
	poolNamespace = "userve-pools"
	// ackInterval is pool/ack.go's: the least time between two patches of
	// a pod's acknowledgement.
	ackInterval = 200 * time.Millisecond
)

// poolSim plays, for the bench's one UserServicePool, what envtest does
// not run: the kubelet (the pool's Pod objects), the EndpointSlice
// controller (the pool Service's slice listing the pods) and the `userve
// pool` processes' acknowledgement, which it gives exactly as pool/ack.go
// does (docs/pools.md, "The acknowledgement the pool gives"): once the
// initial list of the pool's tenant Secrets is applied, every pod's
// annotation v1alpha1.PoolAppliedAnnotation carries the highest
// resourceVersion seen, patched at most every ackInterval. It does not
// serve requests: the part measures the operator, and a pool process with
// 10,000 tenants would take the cores the operator is measured on.
type poolSim struct {
	cl    client.Client
	pods  []string
	slice *discoveryv1.EndpointSlice

	mu      sync.Mutex
	highest string
	written string
	acks    int
}

// startPoolSim creates the pool, its pods and its Service's slice, and
// starts acknowledging the tenant Secrets c sees in the pool's namespace.
func startPoolSim(ctx context.Context, c cache.Cache, cl client.Client, replicas, maxTenants int) (*poolSim, error) {
	r32 := int32(replicas)
	pool := &v1alpha1.UserServicePool{
		ObjectMeta: metav1.ObjectMeta{Name: poolName},
		Spec: v1alpha1.UserServicePoolSpec{Replicas: &r32, MaxTenants: int32(maxTenants),
			Namespace: poolNamespace, NamespaceSelector: &metav1.LabelSelector{}},
	}
	if err := cl.Create(ctx, pool); err != nil {
		return nil, fmt.Errorf("create the pool: %w", err)
	}
	s := &poolSim{cl: cl}
	var eps []discoveryv1.Endpoint
	yes := true
	for i := range replicas {
		name := fmt.Sprintf("%s-%d", render.PoolObjectName(pool), i)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: poolNamespace, Labels: render.PoolLabels(pool)},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "userve", Image: "userve:bench"}}},
		}
		if err := cl.Create(ctx, pod); err != nil {
			return nil, fmt.Errorf("create pool pod: %w", err)
		}
		s.pods = append(s.pods, name)
		eps = append(eps, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.244.0.%d", i+10)},
			Conditions: discoveryv1.EndpointConditions{Ready: &yes},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: poolNamespace, Name: name, UID: pod.UID},
		})
	}
	labels := render.PoolLabels(pool)
	labels[discoveryv1.LabelServiceName] = render.PoolObjectName(pool)
	labels[discoveryv1.LabelManagedBy] = "endpointslice-controller.k8s.io"
	s.slice = &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: render.PoolObjectName(pool) + "-bench", Namespace: poolNamespace, Labels: labels},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports:       []discoveryv1.EndpointPort{{Name: ptrTo(render.PortName), Port: ptrTo(int32(render.Port))}},
	}
	if err := cl.Create(ctx, s.slice); err != nil {
		return nil, fmt.Errorf("create the pool's EndpointSlice: %w", err)
	}

	inf, err := c.GetInformer(ctx, &corev1.Secret{})
	if err != nil {
		return nil, err
	}
	seen := func(obj any) {
		if sec, ok := obj.(*corev1.Secret); ok && sec.Namespace == poolNamespace && sec.Labels[v1alpha1.PoolLabel] == poolName {
			s.applied(sec.ResourceVersion)
		}
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: seen, UpdateFunc: func(_, obj any) { seen(obj) },
	})
	if err != nil {
		return nil, err
	}
	go s.ack(ctx, reg.HasSynced)
	return s, nil
}

func ptrTo[T any](v T) *T { return &v }

func (s *poolSim) applied(rv string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, err := resourceversion.CompareResourceVersion(rv, s.highest); s.highest == "" || err != nil || c > 0 {
		s.highest = rv
	}
}

// ack writes the acknowledgement on every pod once synced, then whenever
// the highest applied resourceVersion changed, at most every ackInterval.
func (s *poolSim) ack(ctx context.Context, synced func() bool) {
	for ctx.Err() == nil {
		time.Sleep(ackInterval)
		if !synced() {
			continue
		}
		s.mu.Lock()
		rv, written := s.highest, s.written
		s.mu.Unlock()
		if rv == "" || rv == written {
			continue
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"annotations": map[string]string{v1alpha1.PoolAppliedAnnotation: rv}}})
		ok := true
		for _, name := range s.pods {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: poolNamespace, Name: name}}
			if err := s.cl.Patch(ctx, pod, client.RawPatch(types.MergePatchType, patch)); err != nil {
				ok = false
			}
		}
		if ok {
			s.mu.Lock()
			s.written = rv
			s.acks++
			s.mu.Unlock()
		}
	}
}

// setReady marks pool pod i ready or not in the pool Service's slice, as
// the EndpointSlice controller does when a pod's readiness changes.
func (s *poolSim) setReady(ctx context.Context, i int, ready bool) error {
	var cur discoveryv1.EndpointSlice
	if err := s.cl.Get(ctx, client.ObjectKeyFromObject(s.slice), &cur); err != nil {
		return err
	}
	cur.Endpoints[i].Conditions.Ready = &ready
	return s.cl.Update(ctx, &cur)
}

// readyEndpoints counts the tenants' EndpointSlices (the operator's, in
// the bench's namespace) that list exactly want ready endpoints.
func countTenantSlices(ctx context.Context, c cache.Cache, want int) (int, error) {
	var list discoveryv1.EndpointSliceList
	if err := c.List(ctx, &list, client.InNamespace(namespace), client.UnsafeDisableDeepCopy,
		client.MatchingLabels{render.LabelEndpointSliceManagedBy: render.EndpointSliceManager}); err != nil {
		return 0, err
	}
	n := 0
	for _, sl := range list.Items {
		ready := 0
		for _, e := range sl.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				ready++
			}
		}
		if ready == want {
			n++
		}
	}
	return n, nil
}

// measureFlips turns pool pod 0 unready and ready again, as the
// EndpointSlice controller reports a pod failing and passing its
// readiness probe, and measures each until every tenant's EndpointSlice
// mirrors it: seconds, and the operator's API requests.
func measureFlips(ctx context.Context, c cache.Cache, sim *poolSim, op *operator, scrape func() (Counts, error),
	ours *Counter, cfg Config, logf func(string, ...any)) ([]report.PoolFlip, error) {
	var out []report.PoolFlip
	// The tenants served by the pool now (all of them unless the ready
	// timeout cut the creation short): each flip waits for those.
	served, err := countTenantSlices(ctx, c, len(sim.pods))
	if err != nil || served == 0 {
		return out, err
	}
	for _, ready := range []bool{false, true} {
		want := len(sim.pods)
		what := "pool pod ready again"
		if !ready {
			want--
			what = "pool pod unready"
		}
		m0, err := scrape()
		if err != nil {
			return out, err
		}
		h0 := ours.Snapshot()
		start := time.Now()
		if err := sim.setReady(ctx, 0, ready); err != nil {
			return out, err
		}
		deadline := start.Add(min(cfg.ReadyTimeout, flipTimeout))
		n := 0
		for time.Now().Before(deadline) && ctx.Err() == nil {
			if n, err = countTenantSlices(ctx, c, want); err != nil {
				return out, err
			}
			if n >= served {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		took := time.Since(start)
		op.settle(ctx, cfg.SettleTimeout)
		m1, err := scrape()
		if err != nil {
			return out, err
		}
		d := m1.Diff(m0).Sub(ours.Snapshot().Diff(h0)).Without("coordination.k8s.io/leases")
		f := report.PoolFlip{Change: what, Mirrored: n, Seconds: stats.Round(took.Seconds(), 2),
			Writes: d.Writes(), Reads: d.Reads(), ByVerbResource: d}
		f.Served = served
		logf("%s: %d of %d tenant EndpointSlices mirrored it after %.1f s; %d writes, %d reads", what, n, served, f.Seconds, f.Writes, f.Reads)
		out = append(out, f)
	}
	return out, nil
}
