package poolbench

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"userve.dev/userve/bench/internal/apibench"
	"userve.dev/userve/bench/internal/load"
	"userve.dev/userve/bench/internal/opbench"
	"userve.dev/userve/bench/internal/procmon"
	"userve.dev/userve/bench/internal/report"
	"userve.dev/userve/bench/internal/stats"
)

// coldProfile is how long FerretDB is profiled from the start of the cold
// activations.
const coldProfile = 15 * time.Second

// coldBlock is how many tenants one side activates before the other side
// takes the same ones, when a baseline build is compared; coldPause is
// the pause before each block.
const (
	coldBlock = 50
	coldPause = 500 * time.Millisecond
)

// coldSide is one build's pool in the cold cell and what it used.
type coldSide struct {
	pool                 *proc
	res                  load.Result
	poolCPU, storeCPU    time.Duration
	auths, conns, activs float64
}

// measureCold activates evicted tenants one at a time: each request is
// the first after its tenant's eviction. With a baseline build, its pool
// (started here, its tenants built and evicted as well) takes the same
// tenants in alternating blocks, so both see the same store and machine.
// The pool's and FerretDB's CPU per activation come from /proc, the SCRAM
// conversations and connections per activation from FerretDB's own
// metrics, and FerretDB's CPU profile of the phase says where its share
// goes.
func measureCold(ctx context.Context, cfg Config, res *report.Pool, kubeconfig string, pool *proc, store *ferret, tenants []*tenant) error {
	logf := cfg.Logf
	n := min(cfg.ColdSamples, len(tenants))
	sides := []*coldSide{{pool: pool}}
	if cfg.BaselineBin != "" {
		base, err := startPool(ctx, cfg, cfg.BaselineBin, kubeconfig, poolName, cfg.IdleTimeout, "userve-pool-baseline.log")
		if err != nil {
			return fmt.Errorf("baseline pool: %w", err)
		}
		defer base.stop()
		if err := waitMetric(ctx, base, "userve_pool_tenants", func(v float64) bool { return v >= float64(cfg.Tenants) }, time.Minute); err != nil {
			return err
		}
		var scratch report.Pool
		if err := evictAll(ctx, cfg, &scratch, base, tenants); err != nil {
			return fmt.Errorf("baseline pool: %w", err)
		}
		sides = append(sides, &coldSide{pool: base})
	}

	prof := filepath.Join(cfg.LogDir, "ferretdb-cold-activations.cpu.pprof")
	profiled := make(chan error, 1)
	go func() { profiled <- store.cpuProfile(ctx, coldProfile, prof) }()
	// FerretDB's metrics are read once between blocks (a scrape costs it
	// about 40 ms of CPU), and each block starts after a pause, so that
	// neither the scrape nor the other side's last activation runs into it.
	counters, err := store.metrics(ctx)
	if err != nil {
		return err
	}
	// The sample spreads evenly over the tenants' creation order: FerretDB
	// scans its users in that order, so the tenants created first are the
	// cheapest to activate.
	sample := make([]*tenant, n)
	for i := range sample {
		sample[i] = tenants[i*len(tenants)/n]
	}
	for k, block := 0, 0; k < n && ctx.Err() == nil; k, block = k+coldBlock, block+1 {
		part := sample[k:min(k+coldBlock, n)]
		for i := range sides {
			s := sides[(i+block)%len(sides)] // alternate which side goes first
			sleep(ctx, coldPause)
			if counters, err = s.activate(ctx, cfg, store, part, counters); err != nil {
				return err
			}
		}
	}
	main := sides[0]
	res.ColdActivation = main.res.Summary()
	res.ColdPoolCPUms, res.ColdStoreCPUms = perActivation(main.poolCPU, n), perActivation(main.storeCPU, n)
	res.ColdAuthentications, res.ColdConnections = stats.Round(main.auths/float64(n), 2), stats.Round(main.conns/float64(n), 2)
	logf("pool: cold activation of %d evicted tenants, one at a time: p50 %.1f ms p99 %.1f ms max %.1f ms, %d failed; per activation: CPU pool %.2f ms, FerretDB %.2f ms; %.2f SCRAM conversations, %.2f connections",
		n, res.ColdActivation.P50ms, res.ColdActivation.P99ms, res.ColdActivation.MaxMs, main.res.Errors, res.ColdPoolCPUms, res.ColdStoreCPUms,
		res.ColdAuthentications, res.ColdConnections)
	if len(sides) > 1 {
		b := sides[1]
		res.ColdBaseline = &report.ColdSide{Binary: cfg.BaselineBin, Activation: b.res.Summary(),
			PoolCPUms: perActivation(b.poolCPU, n), StoreCPUms: perActivation(b.storeCPU, n),
			Authentications: stats.Round(b.auths/float64(n), 2), Connections: stats.Round(b.conns/float64(n), 2)}
		c := res.ColdBaseline
		logf("pool: baseline %s, same tenants in alternating blocks of %d: p50 %.1f ms p99 %.1f ms max %.1f ms, %d failed; per activation: CPU pool %.2f ms, FerretDB %.2f ms; %.2f SCRAM conversations, %.2f connections",
			cfg.BaselineBin, coldBlock, c.Activation.P50ms, c.Activation.P99ms, c.Activation.MaxMs, b.res.Errors, c.PoolCPUms, c.StoreCPUms, c.Authentications, c.Connections)
	}
	for _, s := range sides {
		if int(s.activs) != n {
			return fmt.Errorf("%d cold requests activated %v servers: not every one was cold", n, s.activs)
		}
	}
	if err := <-profiled; err != nil {
		logf("pool: FerretDB profile: %v", err)
		return nil
	}
	if top, err := apibench.PprofTop(ctx, prof); err == nil {
		what := fmt.Sprintf("FerretDB's CPU profile over the first %v of the cold activations (%d tenants spread over the creation order, one at a time)", coldProfile, n)
		if len(sides) > 1 {
			what += ", both builds alternating"
		}
		res.Analyses = append(res.Analyses, report.Profile{What: what, File: prof, Top: top})
	}
	return nil
}

// activate sends one request to each of part's evicted tenants, one at a
// time, and adds what it cost to the side. counters are FerretDB's metrics
// before the block; it returns them after.
func (s *coldSide) activate(ctx context.Context, cfg Config, store *ferret, part []*tenant, counters string) (string, error) {
	poolBefore, _ := s.pool.usage()
	storeBefore, _ := procmon.Read(store.P.Pid())
	pBefore, err := s.pool.metrics(ctx)
	if err != nil {
		return "", err
	}
	r, _ := each(ctx, s.pool, part, cfg.Profiles, 1)
	merge(&s.res, r)
	poolAfter, _ := s.pool.usage()
	storeAfter, _ := procmon.Read(store.P.Pid())
	pAfter, err := s.pool.metrics(ctx)
	if err != nil {
		return "", err
	}
	after, err := store.metrics(ctx)
	if err != nil {
		return "", err
	}
	s.poolCPU += poolAfter.CPU - poolBefore.CPU
	s.storeCPU += storeAfter.CPU - storeBefore.CPU
	s.auths += scramConversations(after) - scramConversations(counters)
	s.conns += metric(after, "ferretdb_client_accepts_total") - metric(counters, "ferretdb_client_accepts_total")
	s.activs += metric(pAfter, "userve_pool_activations_total") - metric(pBefore, "userve_pool_activations_total")
	return after, nil
}

// scramConversations counts FerretDB's SCRAM conversations from its
// saslContinue requests, whether the conversation began speculatively in
// the handshake (the Go driver's way) or with a saslStart of its own:
// FerretDB 1.24 ignores skipEmptyExchange and answers the client's proof
// with done: false, so each conversation takes two saslContinue.
func scramConversations(text string) float64 {
	return opbench.ParseCounter(text, "ferretdb_client_requests_total", "command")["saslContinue"] / 2
}

func perActivation(d time.Duration, n int) float64 {
	return stats.Round(float64(d.Microseconds())/1000/float64(n), 2)
}

// metrics is FerretDB's Prometheus text (its debug listener).
func (f *ferret) metrics(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+f.Debug+"/debug/metrics", nil)
	if err != nil {
		return "", err
	}
	return fetchText(req)
}
