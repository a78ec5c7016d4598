package poolbench

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"userve.dev/userve/bench/internal/apibench"
	"userve.dev/userve/bench/internal/load"
	"userve.dev/userve/bench/internal/procmon"
	"userve.dev/userve/bench/internal/report"
	"userve.dev/userve/bench/internal/stats"
)

const requestTimeout = 20 * time.Second

// detail is the management dialect's profile read, the endpoint the
// throughput goal names, as one request of tenant t through c.
func detail(c *apibench.RawClient, t *tenant, profiles int) load.Op {
	auth := "Bearer " + t.adminToken
	return func(ctx context.Context, _ int, seq int64) error {
		path := "/userve/v2.0/miniapp/user_profile/" + strconv.FormatInt(seq%int64(profiles)+1, 10) + "/"
		r, err := c.Do(ctx, http.MethodGet, path, nil, auth, false)
		if err != nil {
			return err
		}
		if r.Status != http.StatusOK {
			return fmt.Errorf("GET %s (Host %s): status %d", path, t.host(), r.Status)
		}
		return nil
	}
}

// once sends one detail request for t on a connection of its own (a pool
// holding a thousand idle keep-alive connections would count them in its
// RSS) and returns how long it took.
func once(ctx context.Context, p *proc, t *tenant, profiles int) (time.Duration, error) {
	c := p.client(t.host(), 1)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	t0 := time.Now()
	err := detail(c, t, profiles)(ctx, 0, 0)
	return time.Since(t0), err
}

// each sends one request to every tenant from conc workers, and lists the
// tenants whose request failed.
func each(ctx context.Context, p *proc, tenants []*tenant, profiles, conc int) (load.Result, []*tenant) {
	var next atomic.Int64
	var mu sync.Mutex
	var res load.Result
	var failed []*tenant
	var wg sync.WaitGroup
	t0 := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(tenants) {
					return
				}
				d, err := once(ctx, p, tenants[i], profiles)
				mu.Lock()
				if err != nil {
					res.Errors++
					failed = append(failed, tenants[i])
					if res.FirstErr == nil {
						res.FirstErr = err
					}
				} else {
					res.Latencies = append(res.Latencies, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(t0)
	return res, failed
}

// retry sends the failed tenants' requests again until they answer 200, for
// at most three minutes. An activation that outwaits the pool's index wait (3 s;
// a fresh database's indexes, or a store slowed by the shared machine) is
// answered 503 while the indexes are still being made.
func retry(ctx context.Context, p *proc, failed []*tenant, profiles int, firstErr error) error {
	for deadline := time.Now().Add(3 * time.Minute); len(failed) > 0; {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%d tenants still fail their requests: %v", len(failed), firstErr)
		}
		sleep(ctx, 2*time.Second)
		_, failed = each(ctx, p, failed, profiles, 2)
	}
	return nil
}

// heapMiB is the process's go_memstats_heap_inuse_bytes in MiB.
func heapMiB(ctx context.Context, p *proc) float64 {
	text, err := p.metrics(ctx)
	if err != nil {
		return 0
	}
	return stats.Round(metric(text, "go_memstats_heap_inuse_bytes")/(1<<20), 1)
}

// measureLoaded loads every tenant (each one's first request ever), then
// serves them all again within seconds and samples RSS: every tenant
// served within the last minute, every server built.
func measureLoaded(ctx context.Context, cfg Config, res *report.Pool, pool *proc, tenants []*tenant, empty procmon.Usage) error {
	logf := cfg.Logf
	logf("pool: first request of every tenant (servers built on fresh databases), 4 at a time")
	first, failed := each(ctx, pool, tenants, cfg.Profiles, 4)
	res.FirstActivation = first.Summary()
	logf("pool: first activations p50 %.1f ms p99 %.1f ms, %d failed (%v)", res.FirstActivation.P50ms, res.FirstActivation.P99ms, first.Errors, first.FirstErr)
	// A first request that waited over the pool's index wait (3 s) for
	// its new database's indexes is answered 503 while they are still
	// being created: its retry, once they are, is a request like any.
	if err := retry(ctx, pool, failed, cfg.Profiles, first.FirstErr); err != nil {
		return err
	}

	// The sweep serves every tenant again within seconds.
	_ = procmon.ResetPeak(pool.p.Pid())
	sweep, _ := each(ctx, pool, tenants, cfg.Profiles, 8)
	res.SweepSeconds = stats.Round(sweep.Elapsed.Seconds(), 1)
	if sweep.Errors > 0 {
		return fmt.Errorf("%d requests of the sweep failed: %v", sweep.Errors, sweep.FirstErr)
	}
	lu, err := pool.usage()
	if err != nil {
		return err
	}
	text, err := pool.metrics(ctx)
	if err != nil {
		return err
	}
	res.LoadedTenants = int(metric(text, "userve_pool_tenants_loaded"))
	res.LoadedRSSMiB, res.LoadedAnonMiB, res.PeakRSSMiB = mib(lu.RSSKiB), mib(lu.AnonKiB), mib(lu.HWMKiB)
	res.LoadedHeapMiB = stats.Round(metric(text, "go_memstats_heap_inuse_bytes")/(1<<20), 1)
	res.LoadedKiBPerTnt = report.PerTenantKiB(lu.RSSKiB, empty.RSSKiB, res.LoadedTenants)
	logf("pool: %d loaded, every tenant served within %.1f s: %.1f MiB RSS (%.1f anonymous, heap in use %.1f), peak %.1f",
		res.LoadedTenants, res.SweepSeconds, res.LoadedRSSMiB, res.LoadedAnonMiB, res.LoadedHeapMiB, res.PeakRSSMiB)

	if res.LoadedTenants < len(tenants) {
		return fmt.Errorf("only %d of %d tenants loaded after the sweep", res.LoadedTenants, len(tenants))
	}
	return nil
}

// evictAll serves every tenant once (building its server; the first time
// ever, its indexes too) and waits for the idle timeout to evict them all.
func evictAll(ctx context.Context, cfg Config, res *report.Pool, pool *proc, tenants []*tenant) error {
	logf := cfg.Logf
	logf("pool: a request to every tenant, then waiting for the idle timeout (%v) to evict them all", cfg.IdleTimeout)
	// Two at a time: more activations at once only queue on the store
	// (on a loaded machine they outwaited the index wait and kept
	// retrying in the background, which slowed the next ones further).
	pass, failed := each(ctx, pool, tenants, cfg.Profiles, 2)
	res.EvictPassFailed += int(pass.Errors)
	if err := retry(ctx, pool, failed, cfg.Profiles, pass.FirstErr); err != nil {
		return err
	}
	text, err := pool.metrics(ctx)
	if err != nil {
		return err
	}
	evictionsBefore := metric(text, "userve_pool_evictions_total")
	activations := metric(text, "userve_pool_activations_total")
	if err := waitMetric(ctx, pool, "userve_pool_tenants_loaded", func(v float64) bool { return v == 0 }, 3*cfg.IdleTimeout+time.Minute); err != nil {
		return err
	}
	text, err = pool.metrics(ctx)
	if err != nil {
		return err
	}
	evictions := int(metric(text, "userve_pool_evictions_total"))
	if evictions < len(tenants) {
		return fmt.Errorf("%d evictions for %d tenants served (%.0f activations, %.0f evictions before the wait)",
			evictions, len(tenants), activations, evictionsBefore)
	}
	res.Evictions = evictions
	return nil
}

// measureEvicted evicts every tenant (evictAll), waits for the runtime's
// own next GC, and samples RSS.
func measureEvicted(ctx context.Context, cfg Config, res *report.Pool, pool *proc, tenants []*tenant, empty procmon.Usage) error {
	logf := cfg.Logf
	if err := evictAll(ctx, cfg, res, pool, tenants); err != nil {
		return err
	}
	evictedAt := time.Now()
	// No GC is forced: the pool has no hook for it and a real pod has none
	// either. The runtime collects on its own when the heap grows or, idle,
	// at least every two minutes (sysmon's forced GC). The sample waits for
	// the second GC that ended after the last eviction: after the first,
	// the scavenger returned none or only part of the freed heap (anonymous
	// memory stayed 75-200 MiB above the heap in use, and the per-tenant
	// figure swung from 91 to 223 KiB between two runs of one build); it
	// gives back the rest once a second cycle has seen the heap small.
	gcSeen := 0
	for after := float64(evictedAt.UnixNano()) / 1e9; gcSeen < 2 && ctx.Err() == nil; {
		waitFrom := time.Now()
		seen := false
		for ctx.Err() == nil && time.Since(waitFrom) < cfg.GCWait {
			u, err := pool.usage()
			if err != nil {
				return err
			}
			text, err := pool.metrics(ctx)
			if err != nil {
				return err
			}
			res.EvictedSeries = append(res.EvictedSeries, report.RSSPoint{AfterSeconds: stats.Round(time.Since(evictedAt).Seconds(), 0),
				RSSMiB: mib(u.RSSKiB), HeapMiB: stats.Round(metric(text, "go_memstats_heap_inuse_bytes")/(1<<20), 1)})
			if lastGC := metric(text, "go_memstats_last_gc_time_seconds"); lastGC > after {
				after, seen = lastGC, true
				break
			}
			sleep(ctx, 10*time.Second)
		}
		if !seen {
			break
		}
		gcSeen++
	}
	// After that GC the runtime's background scavenger gives the freed
	// pages back gradually: sample until RSS holds still (under 1% over
	// the settle) or a minute passes.
	var eu procmon.Usage
	for prev, since := uint64(0), time.Now(); ctx.Err() == nil; prev = eu.RSSKiB {
		sleep(ctx, cfg.Settle)
		var err error
		if eu, err = pool.usage(); err != nil {
			return err
		}
		res.EvictedSeries = append(res.EvictedSeries, report.RSSPoint{AfterSeconds: stats.Round(time.Since(evictedAt).Seconds(), 0),
			RSSMiB: mib(eu.RSSKiB), HeapMiB: heapMiB(ctx, pool)})
		if report.Steady(prev, eu.RSSKiB, 0.01) || time.Since(since) > time.Minute {
			break
		}
	}
	res.EvictedRSSMiB, res.EvictedAnonMiB = mib(eu.RSSKiB), mib(eu.AnonKiB)
	res.EvictedHeapMiB = heapMiB(ctx, pool)
	res.EvictedKiBPerTnt = report.PerTenantKiB(eu.RSSKiB, empty.RSSKiB, cfg.Tenants)
	res.EvictionMethod = fmt.Sprintf("the harness waited until userve_pool_tenants_loaded was 0 (%d evictions), then for the runtime's "+
		"own second GC after the last eviction (go_memstats_last_gc_time_seconds; none is forced), then read VmRSS every %v until it changed "+
		"by under 1%% (the scavenger returning freed pages), at most a minute", res.Evictions, cfg.Settle)
	if gcSeen < 2 {
		res.EvictionMethod += fmt.Sprintf("; only %d GC ran (each waited for at most %v), so the sample may still hold the evicted servers' garbage or heap not yet returned", gcSeen, cfg.GCWait)
	}
	logf("pool: all evicted (%d evictions): %.1f MiB RSS, heap in use %.1f MiB: %.1f KiB per tenant above the empty pool",
		res.Evictions, res.EvictedRSSMiB, res.EvictedHeapMiB, res.EvictedKiBPerTnt)
	return nil
}

// side is one process driven in a cell's alternating slices.
type side struct {
	res load.Result
	cpu time.Duration
}

func (s *side) run(ctx context.Context, c load.Config, op load.Op, pid int) {
	before, _ := procmon.Read(pid)
	merge(&s.res, load.Run(ctx, c, op))
	after, _ := procmon.Read(pid)
	s.cpu += after.CPU - before.CPU
}

func (s *side) cpuPerRequest() float64 {
	n := float64(len(s.res.Latencies)) + float64(s.res.Errors)
	if n == 0 {
		return 0
	}
	return stats.Round(float64(s.cpu)/float64(time.Millisecond)/n, 3)
}

func merge(into *load.Result, r load.Result) {
	into.Latencies = append(into.Latencies, r.Latencies...)
	into.Errors += r.Errors
	into.Elapsed += r.Elapsed
	into.SlowestFailure = max(into.SlowestFailure, r.SlowestFailure)
	if into.FirstErr == nil {
		into.FirstErr = r.FirstErr
	}
}

// measureThroughput drives tenant t's detail through the pool and through
// its dedicated server in alternating slices, at every concurrency.
func measureThroughput(ctx context.Context, cfg Config, pool, dedicated *proc, t *tenant) []report.PoolCell {
	var cells []report.PoolCell
	for _, conc := range cfg.Concurrencies {
		pc, dc := pool.client(t.host(), conc), dedicated.client(dedicated.addr, conc)
		poolOp, dedOp := detail(pc, t, cfg.Profiles), detail(dc, t, cfg.Profiles)
		warm := load.Config{Concurrency: conc, Duration: time.Second, RequestTimeout: requestTimeout}
		load.Run(ctx, warm, poolOp)
		load.Run(ctx, warm, dedOp)
		slice := load.Config{Concurrency: conc, Duration: cfg.Duration / rounds, RequestTimeout: requestTimeout}
		var ps, ds side
		for i := 0; i < rounds && ctx.Err() == nil; i++ {
			ps.run(ctx, slice, poolOp, pool.p.Pid())
			ds.run(ctx, slice, dedOp, dedicated.p.Pid())
		}
		pc.Close()
		dc.Close()
		cell := report.PoolCell{Concurrency: conc, Pool: ps.res.Summary(), Dedicated: ds.res.Summary(),
			PoolCPUms: ps.cpuPerRequest(), DedicatedCPUms: ds.cpuPerRequest()}
		cell.Ratio = stats.Ratio(cell.Pool.RPS, cell.Dedicated.RPS)
		if e := max(ps.res.ErrorRate(), ds.res.ErrorRate()); e > 0.01 {
			cell.Error = fmt.Sprintf("%.1f%% failed: pool %v; dedicated %v", 100*e, ps.res.FirstErr, ds.res.FirstErr)
		}
		cfg.Logf("pool: detail c=%d: pool %.0f req/s (p99 %.2f ms, %.3f CPU ms/req) | dedicated %.0f req/s (p99 %.2f ms, %.3f CPU ms/req) | ratio %.2f %s",
			conc, cell.Pool.RPS, cell.Pool.P99ms, cell.PoolCPUms, cell.Dedicated.RPS, cell.Dedicated.P99ms, cell.DedicatedCPUms, cell.Ratio, cell.Error)
		cells = append(cells, cell)
	}
	return cells
}

// measureNoisy measures quiet's latency alone, then beside noisy driven at
// its in-flight bound in the same pool, then beside the same load sent to
// a separate process (the dedicated server of other) on the same store, in
// alternating slices.
func measureNoisy(ctx context.Context, cfg Config, pool, dedicated *proc, quiet, noisy, other *tenant) *report.Noisy {
	n := &report.Noisy{QuietConcurrency: cfg.QuietConcurrency, NoisyConcurrency: cfg.TenantMaxInFlight}
	qc := pool.client(quiet.host(), cfg.QuietConcurrency)
	nc := pool.client(noisy.host(), n.NoisyConcurrency)
	ec := dedicated.client(dedicated.addr, n.NoisyConcurrency)
	defer qc.Close()
	defer nc.Close()
	defer ec.Close()
	quietOp := detail(qc, quiet, cfg.Profiles)
	var busy atomic.Int64
	noisyOp := func(c *apibench.RawClient, t *tenant) load.Op {
		auth := "Bearer " + t.adminToken
		return func(ctx context.Context, _ int, seq int64) error {
			path := "/userve/v2.0/miniapp/user_profile/" + strconv.FormatInt(seq%int64(cfg.Profiles)+1, 10) + "/"
			r, err := c.Do(ctx, http.MethodGet, path, nil, auth, false)
			if err == nil && r.Status == http.StatusServiceUnavailable {
				busy.Add(1) // at its bound: the pool refused it at once
				return nil
			}
			if err == nil && r.Status != http.StatusOK {
				err = fmt.Errorf("status %d", r.Status)
			}
			return err
		}
	}
	inPool, elsewhere := noisyOp(nc, noisy), noisyOp(ec, other)

	warm := load.Config{Concurrency: cfg.QuietConcurrency, Duration: time.Second, RequestTimeout: requestTimeout}
	load.Run(ctx, warm, quietOp)
	load.Run(ctx, load.Config{Concurrency: n.NoisyConcurrency, Duration: time.Second, RequestTimeout: requestTimeout}, inPool)
	busy.Store(0)
	slice := load.Config{Concurrency: cfg.QuietConcurrency, Duration: cfg.Duration / rounds, RequestTimeout: requestTimeout}
	var alone, beside, apart, neighbour load.Result
	withLoad := func(op load.Op, into *load.Result, collect bool) {
		nctx, stop := context.WithCancel(ctx)
		done := make(chan load.Result, 1)
		go func() {
			done <- load.Run(nctx, load.Config{Concurrency: n.NoisyConcurrency, Duration: slice.Duration + 10*time.Second, RequestTimeout: requestTimeout}, op)
		}()
		sleep(ctx, 300*time.Millisecond) // the neighbour reaches its bound first
		merge(into, load.Run(ctx, slice, quietOp))
		stop()
		r := <-done
		if collect {
			r.Errors = 0 // cut short by stop()
			merge(&neighbour, r)
		}
	}
	for i := 0; i < rounds && ctx.Err() == nil; i++ {
		merge(&alone, load.Run(ctx, slice, quietOp))
		withLoad(inPool, &beside, true)
		withLoad(elsewhere, &apart, false)
	}
	n.Alone, n.WithNeighbour, n.Neighbour = alone.Summary(), beside.Summary(), neighbour.Summary()
	e := apart.Summary()
	n.Elsewhere = &e
	n.NeighbourBusy = busy.Load()
	n.Ratio = report.P99Ratio(n.Alone, n.WithNeighbour)
	n.ElsewhereRatio = report.P99Ratio(n.Alone, e)
	if r := max(alone.ErrorRate(), beside.ErrorRate(), apart.ErrorRate()); r > 0.01 {
		n.Error = fmt.Sprintf("%.1f%% of the quiet tenant's requests failed: %v %v %v", 100*r, alone.FirstErr, beside.FirstErr, apart.FirstErr)
	}
	cfg.Logf("pool: noisy neighbour: quiet p99 %.2f ms alone, %.2f ms beside a neighbour at %d in flight (%.2f×), %.2f ms with that load on a separate process (%.2f×); neighbour %.0f req/s, %d answered 503",
		n.Alone.P99ms, n.WithNeighbour.P99ms, n.NoisyConcurrency, n.Ratio, e.P99ms, n.ElsewhereRatio, n.Neighbour.RPS, n.NeighbourBusy)
	return n
}
