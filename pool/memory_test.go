package pool

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

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

// What a loaded tenant costs: 20 tenants on FerretDB, each activated
// (store client connected, indexes checked, server built) and its store
// pinged; the heap they hold, per tenant.
func TestALoadedTenantsHeap(t *testing.T) {
	p := newBarePool(Options{})
	t.Cleanup(p.Close)
	const n = 20
	var secrets []*corev1.Secret
	for i := range n {
		c := newCreds(t, fmt.Sprintf("team-%d", i), "acme")
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("shared.team-%d.acme", i)}, Data: c.secretData(nil)}
		secrets = append(secrets, s)
		p.registry.upsert(p, s)
	}
	before := heapInUse()
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
	per := (heapInUse() - before) / n

	t.Logf("%d loaded tenants: %.0f KiB of heap each", n, float64(per)/1024)
	// Measured: about 980 KiB, 83% of it the tenant's router (gorilla/mux
	// compiles a regular expression per route, ~680 KiB per server;
	// docs/pools.md). The bound catches a regression, not the goal.
	if per > 1536<<10 {
		t.Errorf("a loaded tenant holds %d bytes of heap, more than 1.5 MiB", per)
	}
}
