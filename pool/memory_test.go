package pool

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"userve.dev/userve/api/v1alpha1"
)

// newBarePool is a pool without an informer, fed Secrets by the test.
func newBarePool(opts Options) *Pool {
	opts.ClusterDomain = v1alpha1.DefaultClusterDomain
	if opts.IndexWait == 0 {
		opts.IndexWait = DefaultIndexWait
	}
	p := &Pool{log: slog.New(slog.NewTextHandler(io.Discard, nil)), opts: opts}
	p.metrics = newMetrics(p, 10)
	p.registry = newRegistry(p.log, p.metrics)
	return p
}

// warmPool is a bare pool that has activated one tenant, so that what
// every tenant's server shares (the compiled route table) is built and not
// counted (it made a fresh test process's loaded figure 210–240 KiB
// instead of ~150), with the Secrets of n more tenants it does not know
// yet.
func warmPool(t *testing.T, n int) (*Pool, []*corev1.Secret) {
	t.Helper()
	p := newBarePool(Options{})
	t.Cleanup(p.Close)
	var secrets []*corev1.Secret
	for i := range n + 1 {
		c := newCreds(t, fmt.Sprintf("team-%d", i), "acme")
		secrets = append(secrets, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("shared.team-%d.acme", i)}, Data: c.secretData(nil)})
	}
	p.registry.upsert(p, secrets[n])
	activateEach(t, p)
	return p, secrets[:n]
}

// activateEach builds every tenant's server the pool knows, pings its store
// and hands the server back (loaded, idle).
func activateEach(t *testing.T, p *Pool) {
	t.Helper()
	for _, tn := range p.registry.all() {
		inst, err := tn.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := inst.store.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		tn.release(inst, inst.lastUsed)
	}
}

// What a loaded tenant costs: 20 tenants on FerretDB, each activated
// (store client connected, indexes checked, server built) and its store
// pinged; the heap they hold, per tenant.
func TestALoadedTenantsHeap(t *testing.T) {
	const n = 20
	p, secrets := warmPool(t, n)
	for _, s := range secrets {
		p.registry.upsert(p, s)
	}
	before := heapInUse()
	activateEach(t, p)
	per := (heapInUse() - before) / n
	t.Logf("%d loaded tenants: %.0f KiB of heap each", n, float64(per)/1024)
	// Measured: 140–160 KiB (980 KiB before servers shared their
	// compiled route table; docs/pools.md). The bound catches a regression.
	if per > 256<<10 {
		t.Errorf("a loaded tenant holds %d bytes of heap, more than 256 KiB", per)
	}
}

// What an evicted tenant costs: 60 tenants on FerretDB, each activated
// (as in TestALoadedTenantsHeap) and then evicted, its store client closed;
// the heap in use they leave, per tenant, above the pool before it knew
// them. What a tenant keeps across evictions (its SCRAM keys, its index
// check) is made when the pool learns it, not by its first activation:
// made there, among the activation's short-lived objects, it kept their
// heap spans in use after they were freed (about 53 KiB per tenant then,
// 21–28 since; docs/bench.md).
func TestAnEvictedTenantsHeap(t *testing.T) {
	const n = 60
	p, secrets := warmPool(t, n)
	before := heapInUse()
	for _, s := range secrets {
		p.registry.upsert(p, s)
	}
	activateEach(t, p)
	for _, tn := range p.registry.all() {
		if !tn.evictIdle(time.Now()) {
			t.Fatalf("tenant %s was not idle", tn)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(p.metrics.closed) < n+1 {
		if time.Now().After(deadline) {
			t.Fatalf("%v of %d store clients closed after 30 s", testutil.ToFloat64(p.metrics.closed), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	per := (heapInUse() - before) / n
	t.Logf("%d evicted tenants: %.1f KiB of heap in use each", n, float64(per)/1024)
	if per > 44<<10 {
		t.Errorf("an evicted tenant holds %d bytes of heap in use, more than 44 KiB", per)
	}
}

// With --max-loaded 3, activating eight tenants one after the other keeps
// three servers loaded, closing the least recently used; 30 parallel
// requests over the eight all succeed (a busy server is never closed), and
// once they end the bound holds again.
func TestMaxLoadedClosesTheLeastRecentlyUsed(t *testing.T) {
	p := newBarePool(Options{MaxLoaded: 3})
	t.Cleanup(p.Close)
	var tenants []*tenant
	for i := range 8 {
		c := newCreds(t, fmt.Sprintf("team-%d", i), "acme")
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("shared.team-%d.acme", i)}, Data: c.secretData(nil)}
		p.registry.upsert(p, s)
		tn, _ := p.registry.lookup(c.host())
		tenants = append(tenants, tn)
	}
	use := func(tn *tenant) error {
		inst, err := tn.acquire(context.Background())
		if err != nil {
			return err
		}
		defer tn.release(inst, time.Now())
		return inst.store.Ping(context.Background())
	}
	for i, tn := range tenants {
		if err := use(tn); err != nil {
			t.Fatal(err)
		}
		if n := p.loaded.Load(); n > 3 {
			t.Fatalf("after activating tenant %d: %d loaded, want at most 3", i, n)
		}
	}
	for i, tn := range tenants {
		if _, idle := tn.idleSince(); idle != (i >= 5) {
			t.Errorf("tenant %d loaded: %v, want only the three most recently used", i, idle)
		}
	}
	if n := testutil.ToFloat64(p.metrics.evictions.WithLabelValues(evictCapacity)); n != 5 {
		t.Errorf("evictions{capacity} = %v, want 5", n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := use(tenants[i%len(tenants)]); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := p.loaded.Load(); n > 3 {
		t.Errorf("after the parallel requests: %d loaded, want at most 3", n)
	}
}
