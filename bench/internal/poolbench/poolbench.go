// Package poolbench is the shared-pool part of `make bench` (issue 22): a
// control plane (etcd + kube-apiserver via envtest), FerretDB with
// authentication, N tenants each with its own MongoDB user, database,
// profiles and Secret in the pool's namespace (v1alpha1's pool contract),
// and `bin/userve pool` serving them as a separate process. It measures the
// pool's RSS with every tenant loaded and after they are all evicted, cold
// activation latency, detail throughput against a dedicated `userve serve`
// of the same tenant with the same GOMAXPROCS, and a quiet tenant's p99
// beside a saturating neighbour.
package poolbench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/bench/internal/opbench"
	"userve.dev/userve/bench/internal/procmon"
	"userve.dev/userve/bench/internal/report"
	"userve.dev/userve/bench/internal/stats"
)

// Config of the pool part.
type Config struct {
	UserveBin         string
	FerretBin         string // bin/ferretdb-auth
	LogDir            string
	Tenants           int
	Profiles          int // per tenant
	IdleTimeout       time.Duration
	TenantMaxInFlight int
	GOMAXPROCS        int
	Concurrencies     []int         // of the throughput cells
	Duration          time.Duration // measured time per side of a cell
	ColdSamples       int           // evicted tenants activated one at a time
	QuietConcurrency  int
	GCWait            time.Duration // how long to wait for the runtime's own GC after the evictions
	Settle            time.Duration // fixed pause before an RSS sample
	// Cells are the cells to run (ParseCells); empty: all.
	Cells map[string]bool
	// PoolFlags are extra flags of the measured pool (not the baseline's).
	PoolFlags []string
	// BaselineBin, when set, is another build whose pool runs the
	// throughput and neighbour cells too, after the measured one's.
	BaselineBin string
	Logf        func(format string, args ...any)
}

// loadedIdleTimeout is the idle timeout of the pool the loaded figure is
// taken on: longer than the first pass over a thousand fresh databases.
const loadedIdleTimeout = 30 * time.Minute

// rounds is how many alternating slices make a cell, as in the API part:
// both sides see the same background load of a shared machine.
const rounds = 4

// Run runs the part. Figures gathered before a failure are returned with it.
func Run(ctx context.Context, cfg Config) (*report.Pool, error) {
	logf := cfg.Logf
	res := &report.Pool{Tenants: cfg.Tenants, ProfilesPerTenant: cfg.Profiles, GOMAXPROCS: cfg.GOMAXPROCS,
		IdleTimeoutSecs: cfg.IdleTimeout.Seconds(), TenantMaxInFlight: cfg.TenantMaxInFlight, PoolFlags: cfg.PoolFlags,
		Store: "FerretDB 1.24 with authentication (SQLite handler), loopback"}
	for _, c := range cellNames {
		if cfg.Cells[c] {
			res.Cells = append(res.Cells, c)
		}
	}
	if cfg.Tenants < 3 {
		return nil, errors.New("the pool part needs at least 3 tenants")
	}

	store, err := startFerret(ctx, cfg.FerretBin, cfg.LogDir)
	if err != nil {
		return nil, err
	}
	defer store.Stop()
	adminURI := store.URI
	admin, err := mongo.Connect(options.Client().ApplyURI(adminURI).SetAppName("userve-bench-pool"))
	if err != nil {
		return nil, err
	}
	defer admin.Disconnect(context.Background())

	logf("pool: starting etcd + kube-apiserver (envtest)")
	cp, err := opbench.StartControlPlane()
	if err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	defer func() { _ = cp.Stop() }()
	kube, err := client.New(cp.Config(), client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return nil, err
	}
	if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: poolNS}}); err != nil {
		return nil, err
	}

	tenants := make([]*tenant, cfg.Tenants)
	for i := range tenants {
		tenants[i] = newTenant(i)
	}
	logf("pool: %d tenants: a MongoDB user each (createUser, as the operator), %d profiles, a Secret in %s", cfg.Tenants, cfg.Profiles, poolNS)
	t0 := time.Now()
	last := time.Now()
	if err := setUp(ctx, tenants, adminURI, admin, kube, cfg.Profiles, 8, func(done int) {
		if time.Since(last) > 10*time.Second {
			last = time.Now()
			logf("  %d tenants set up", done)
		}
	}); err != nil {
		return res, err
	}
	res.SetupSeconds = stats.Round(time.Since(t0).Seconds(), 1)
	logf("pool: set up in %.1f s", res.SetupSeconds)

	var eu procmon.Usage
	if cfg.runs(CellMemory) {
		if eu, err = measureMemory(ctx, cfg, res, cp.Kubeconfig(), tenants); err != nil {
			return res, err
		}
	}

	// Eviction, cold activations, throughput and the neighbour: a pool
	// with the short idle timeout.
	pool, err := startPool(ctx, cfg, cfg.UserveBin, cp.Kubeconfig(), poolName, cfg.IdleTimeout, "userve-pool.log")
	if err != nil {
		return res, err
	}
	defer pool.stop()
	if err := waitMetric(ctx, pool, "userve_pool_tenants", func(v float64) bool { return v >= float64(cfg.Tenants) }, time.Minute); err != nil {
		return res, err
	}
	switch {
	case cfg.runs(CellMemory):
		if err := measureEvicted(ctx, cfg, res, pool, tenants, eu); err != nil {
			return res, err
		}
	case cfg.runs(CellCold):
		if err := evictAll(ctx, cfg, res, pool, tenants); err != nil {
			return res, err
		}
	}
	if cfg.runs(CellCold) {
		if err := measureCold(ctx, cfg, res, cp.Kubeconfig(), pool, store, tenants); err != nil {
			return res, err
		}
	}
	if !cfg.runs(CellThroughput) && !cfg.runs(CellNoisy) {
		return res, ctx.Err()
	}
	dedicated, err := startDedicated(ctx, cfg, tenants[0], "userve-serve-dedicated.log")
	if err != nil {
		return res, fmt.Errorf("dedicated server: %w", err)
	}
	defer dedicated.stop()
	res.Throughput, res.Noisy = requestCells(ctx, cfg, pool, dedicated, tenants)
	if cfg.BaselineBin != "" {
		pool.stop()
		logf("pool: the same cells on the baseline build %s", cfg.BaselineBin)
		base := cfg
		base.PoolFlags = nil
		before, err := startPool(ctx, base, cfg.BaselineBin, cp.Kubeconfig(), poolName, cfg.IdleTimeout, "userve-pool-baseline.log")
		if err != nil {
			return res, fmt.Errorf("baseline pool: %w", err)
		}
		defer before.stop()
		if err := waitMetric(ctx, before, "userve_pool_tenants", func(v float64) bool { return v >= float64(cfg.Tenants) }, time.Minute); err != nil {
			return res, err
		}
		res.Before = &report.PoolBefore{Bin: cfg.BaselineBin}
		res.Before.Throughput, res.Before.Noisy = requestCells(ctx, base, before, dedicated, tenants)
	}
	return res, ctx.Err()
}

// requestCells runs the throughput and neighbour cells on pool.
func requestCells(ctx context.Context, cfg Config, pool, dedicated *proc, tenants []*tenant) ([]report.PoolCell, *report.Noisy) {
	var thr []report.PoolCell
	var noisy *report.Noisy
	if cfg.runs(CellThroughput) {
		thr = measureThroughput(ctx, cfg, pool, dedicated, tenants[0])
	}
	if cfg.runs(CellNoisy) {
		noisy = measureNoisy(ctx, cfg, pool, dedicated, tenants[1], tenants[2], tenants[0])
	}
	return thr, noisy
}

// measureMemory measures the empty pool, the pool with every tenant known
// and none served, and with every tenant loaded; it returns the empty
// pool's usage, the base of the per-tenant figures.
func measureMemory(ctx context.Context, cfg Config, res *report.Pool, kubeconfig string, tenants []*tenant) (procmon.Usage, error) {
	logf := cfg.Logf
	// The empty pool: the same process serving a pool no Secret names.
	empty, err := startPool(ctx, cfg, cfg.UserveBin, kubeconfig, "empty", cfg.IdleTimeout, "userve-pool-empty.log")
	if err != nil {
		return procmon.Usage{}, fmt.Errorf("empty pool: %w", err)
	}
	sleep(ctx, cfg.Settle)
	eu, err := empty.usage()
	empty.stop()
	if err != nil {
		return procmon.Usage{}, err
	}
	res.EmptyRSSMiB, res.EmptyAnonMiB = mib(eu.RSSKiB), mib(eu.AnonKiB)
	logf("pool: empty pool %.1f MiB RSS", res.EmptyRSSMiB)

	// The loaded figure needs every tenant's server built at once, each
	// served within the last minute: a pool whose idle timeout outlasts
	// the first pass (every tenant's first request ever, which creates its
	// indexes) and a quick sweep over the built servers.
	loaded, err := startPool(ctx, cfg, cfg.UserveBin, kubeconfig, poolName, loadedIdleTimeout, "userve-pool-loaded.log")
	if err != nil {
		return procmon.Usage{}, err
	}
	if err := waitMetric(ctx, loaded, "userve_pool_tenants", func(v float64) bool { return v >= float64(cfg.Tenants) }, time.Minute); err != nil {
		loaded.stop()
		return procmon.Usage{}, err
	}
	sleep(ctx, cfg.Settle)
	ku, err := loaded.usage()
	if err != nil {
		loaded.stop()
		return procmon.Usage{}, err
	}
	res.KnownRSSMiB = mib(ku.RSSKiB)
	res.KnownKiBPerTnt = report.PerTenantKiB(ku.RSSKiB, eu.RSSKiB, cfg.Tenants)
	logf("pool: %d tenants known, none served: %.1f MiB RSS (%.1f KiB each)", cfg.Tenants, res.KnownRSSMiB, res.KnownKiBPerTnt)
	err = measureLoaded(ctx, cfg, res, loaded, tenants, eu)
	loaded.stop()
	return eu, err
}

func mib(kib uint64) float64 { return stats.Round(procmon.MiB(kib), 1) }

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// waitMetric polls the process's metrics until family's value satisfies ok.
func waitMetric(ctx context.Context, p *proc, family string, ok func(float64) bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last float64
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if text, err := p.metrics(ctx); err == nil {
			if last = metric(text, family); ok(last) {
				return nil
			}
		}
		sleep(ctx, 200*time.Millisecond)
	}
	return fmt.Errorf("%s stayed at %v for %v (log: %s)", family, last, timeout, p.p.Tail(1500))
}
