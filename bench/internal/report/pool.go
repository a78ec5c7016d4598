package report

import (
	"fmt"
	"strings"

	"userve.dev/userve/bench/internal/stats"
)

// Pool is the shared-pool part (issue 22): one `userve pool` process serving
// many tenants, each with its own MongoDB user and database.
type Pool struct {
	Tenants           int     `json:"tenants"`
	ProfilesPerTenant int     `json:"profiles_per_tenant"`
	Store             string  `json:"store"`
	GOMAXPROCS        int     `json:"gomaxprocs"` // of the pool and of the dedicated server alike
	IdleTimeoutSecs   float64 `json:"idle_timeout_seconds"`
	TenantMaxInFlight int     `json:"tenant_max_inflight"`
	SetupSeconds      float64 `json:"setup_seconds"` // users, seed and Secrets of every tenant

	// Memory, from /proc (VmRSS).
	EmptyRSSMiB  float64 `json:"empty_pool_rss_mib"` // a pool process with no tenant at all
	EmptyAnonMiB float64 `json:"empty_pool_rss_anon_mib"`
	KnownRSSMiB  float64 `json:"known_rss_mib"` // every tenant's Secret synced, none served
	// FirstActivation is each tenant's first request ever (its server built
	// on a fresh database, its indexes created).
	FirstActivation stats.Summary `json:"first_activation"`
	// Loaded: every tenant served within the last minute (the sweep took
	// SweepSeconds, and LoadedTenants servers were built at the sample).
	LoadedRSSMiB     float64 `json:"loaded_rss_mib"`
	LoadedAnonMiB    float64 `json:"loaded_rss_anon_mib"`
	LoadedHeapMiB    float64 `json:"loaded_heap_inuse_mib"` // go_memstats_heap_inuse_bytes
	LoadedTenants    int     `json:"loaded_tenants"`
	SweepSeconds     float64 `json:"sweep_seconds"`
	PeakRSSMiB       float64 `json:"peak_rss_mib"` // VmHWM up to the loaded sample
	LoadedKiBPerTnt  float64 `json:"loaded_kib_per_tenant"`
	EvictedRSSMiB    float64 `json:"evicted_rss_mib"`
	EvictedAnonMiB   float64 `json:"evicted_rss_anon_mib"`
	EvictedHeapMiB   float64 `json:"evicted_heap_inuse_mib"`
	EvictedKiBPerTnt float64 `json:"evicted_kib_per_tenant"` // (evicted - empty) / tenants
	KnownKiBPerTnt   float64 `json:"known_kib_per_tenant"`   // (known - empty) / tenants
	Evictions        int     `json:"evictions"`
	// EvictPassFailed counts the requests of the pass before the eviction
	// answered 503 (an activation that outwaited the index wait), retried.
	EvictPassFailed int `json:"evict_pass_503"`
	// EvictionMethod says how the evicted sample was taken (no forced GC).
	EvictionMethod string `json:"eviction_method"`
	// EvictedSeries is the RSS after the last eviction, every few seconds.
	EvictedSeries []RSSPoint `json:"evicted_series,omitempty"`

	// ColdActivation is the first request to an evicted tenant, one at a time.
	ColdActivation stats.Summary `json:"cold_activation"`
	ColdPoolCPUms  float64       `json:"cold_pool_cpu_ms_per_activation"`
	ColdStoreCPUms float64       `json:"cold_store_cpu_ms_per_activation"` // FerretDB's
	// ColdAuthentications and ColdConnections are the SCRAM conversations
	// and connections FerretDB saw per cold activation (its own metrics;
	// the client's monitoring connection is among the connections).
	ColdAuthentications float64 `json:"cold_scram_conversations_per_activation"`
	ColdConnections     float64 `json:"cold_connections_per_activation"`
	// ColdBaseline is another build's pool over the same tenants, in
	// alternating blocks (-baseline-bin).
	ColdBaseline *ColdSide `json:"cold_baseline,omitempty"`

	Throughput []PoolCell `json:"throughput"`
	Noisy      *Noisy     `json:"noisy,omitempty"`

	// Cells are the parts run (-pool-cells), all when empty.
	Cells []string `json:"cells,omitempty"`
	// PoolFlags are the measured pool's extra flags (e.g. --max-executing).
	PoolFlags []string `json:"pool_flags,omitempty"`
	// Before is the same throughput and neighbour cells on another build
	// (-baseline-bin), in the same run.
	Before *PoolBefore `json:"before,omitempty"`

	Analyses []Profile `json:"analyses,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// PoolBefore is the request cells of a baseline build of `userve pool`.
type PoolBefore struct {
	Bin        string     `json:"bin"`
	Throughput []PoolCell `json:"throughput,omitempty"`
	Noisy      *Noisy     `json:"noisy,omitempty"`
}

// ColdSide is one build's cold activations.
type ColdSide struct {
	Binary          string        `json:"binary"`
	Activation      stats.Summary `json:"activation"`
	PoolCPUms       float64       `json:"pool_cpu_ms_per_activation"`
	StoreCPUms      float64       `json:"store_cpu_ms_per_activation"`
	Authentications float64       `json:"scram_conversations_per_activation"`
	Connections     float64       `json:"connections_per_activation"`
}

// RSSPoint is one sample of a series.
type RSSPoint struct {
	AfterSeconds float64 `json:"after_seconds"`
	RSSMiB       float64 `json:"rss_mib"`
	HeapMiB      float64 `json:"heap_inuse_mib,omitempty"`
}

// PoolCell is the detail endpoint at one concurrency, through the pool and
// through a dedicated `userve serve` of the same tenant, in alternating
// slices.
type PoolCell struct {
	Concurrency    int           `json:"concurrency"`
	Pool           stats.Summary `json:"pool"`
	Dedicated      stats.Summary `json:"dedicated"`
	Ratio          float64       `json:"ratio"` // pool req/s over dedicated req/s
	PoolCPUms      float64       `json:"pool_cpu_ms_per_req"`
	DedicatedCPUms float64       `json:"dedicated_cpu_ms_per_req"`
	Error          string        `json:"error,omitempty"`
}

// Noisy is the noisy-neighbour cell: a quiet tenant's latency alone, with a
// neighbour in the same pool driven at its in-flight bound, and (for
// comparison) with the same load on a separate process on the same store.
type Noisy struct {
	QuietConcurrency int           `json:"quiet_concurrency"`
	NoisyConcurrency int           `json:"noisy_concurrency"`
	Alone            stats.Summary `json:"alone"`
	WithNeighbour    stats.Summary `json:"with_neighbour"`
	// Elsewhere is the quiet tenant with the same load sent to a dedicated
	// server instead: what the shared machine and store alone cost it.
	Elsewhere      *stats.Summary `json:"elsewhere,omitempty"`
	Neighbour      stats.Summary  `json:"neighbour"` // the noisy tenant's own requests
	NeighbourBusy  int64          `json:"neighbour_busy"`
	Ratio          float64        `json:"ratio"`           // with neighbour p99 / alone p99
	ElsewhereRatio float64        `json:"elsewhere_ratio"` // elsewhere p99 / alone p99
	Error          string         `json:"error,omitempty"`
}

// Goals of issue 22's pool bench.
const (
	PoolGoalTenants       = 1000
	MaxPoolLoadedRSSMiB   = 512.0
	MaxEvictedKiBPerTnt   = 64.0
	MinPoolThroughput     = 0.9
	MaxColdActivationP99  = 100.0 // ms
	MaxNoisyNeighbourRise = 2.0
)

// PerTenantKiB is (rssKiB - baseKiB) / tenants in KiB, 0 without tenants.
// A negative difference (the base process happened to be larger) is kept:
// it says the per-tenant cost is below what RSS can resolve.
func PerTenantKiB(rssKiB, baseKiB uint64, tenants int) float64 {
	if tenants <= 0 {
		return 0
	}
	return stats.Round((float64(rssKiB)-float64(baseKiB))/float64(tenants), 2)
}

// Steady reports whether a memory reading cur is within frac of the
// previous one prev (false without a previous one).
func Steady(prev, cur uint64, frac float64) bool {
	if prev == 0 {
		return false
	}
	d := float64(cur) - float64(prev)
	return d <= frac*float64(prev) && -d <= frac*float64(prev)
}

// P99Ratio is b's p99 over a's (0 when a has none).
func P99Ratio(a, b stats.Summary) float64 { return stats.Ratio(b.P99ms, a.P99ms) }

// poolTargets judges the pool part's goals.
func poolTargets(p *Pool) []Target {
	loaded := Target{Name: "pool: RSS, 1,000 tenants each served within a minute", Goal: fmt.Sprintf("≤ %.0f MiB", MaxPoolLoadedRSSMiB)}
	evicted := Target{Name: "pool: RSS per evicted tenant", Goal: fmt.Sprintf("≤ %.0f KiB", MaxEvictedKiBPerTnt)}
	thr := Target{Name: "pool: detail throughput vs a dedicated server, same CPU", Goal: fmt.Sprintf("≥ %.1f at every concurrency", MinPoolThroughput)}
	cold := Target{Name: "pool: cold activation p99", Goal: fmt.Sprintf("≤ %.0f ms (FerretDB)", MaxColdActivationP99)}
	noisy := Target{Name: "pool: quiet tenant's p99 with a saturating neighbour", Goal: fmt.Sprintf("≤ %.0f× its p99 alone", MaxNoisyNeighbourRise)}
	if p == nil {
		return []Target{loaded, evicted, thr, cold, noisy}
	}
	if p.LoadedRSSMiB > 0 {
		loaded.Value = fmt.Sprintf("%.1f MiB with %d tenants loaded (%.0f KiB each above the empty pool)", p.LoadedRSSMiB, p.LoadedTenants, p.LoadedKiBPerTnt)
		if p.Tenants >= PoolGoalTenants && p.LoadedTenants >= PoolGoalTenants {
			loaded.Measured, loaded.Met = true, p.LoadedRSSMiB <= MaxPoolLoadedRSSMiB
		} else {
			loaded.Value += fmt.Sprintf("; judged at %d tenants only", PoolGoalTenants)
		}
	}
	if p.EvictedRSSMiB > 0 && p.Evictions > 0 {
		evicted.Measured, evicted.Met = true, p.EvictedKiBPerTnt <= MaxEvictedKiBPerTnt
		evicted.Value = fmt.Sprintf("%.1f KiB ((%.1f − %.1f MiB) / %d)", p.EvictedKiBPerTnt, p.EvictedRSSMiB, p.EmptyRSSMiB, p.Tenants)
	}
	var parts []string
	met, any := true, false
	for _, c := range p.Throughput {
		if c.Error != "" || c.Dedicated.RPS == 0 {
			met = false
			parts = append(parts, fmt.Sprintf("c=%d: no figure", c.Concurrency))
			continue
		}
		any = true
		parts = append(parts, fmt.Sprintf("%.2f (c=%d)", c.Ratio, c.Concurrency))
		if c.Ratio < MinPoolThroughput {
			met = false
		}
	}
	if any {
		thr.Measured, thr.Met, thr.Value = true, met, strings.Join(parts, ", ")
	}
	if c := p.ColdActivation; c.Requests > 0 {
		cold.Measured, cold.Met = true, c.Errors == 0 && c.P99ms <= MaxColdActivationP99
		cold.Value = fmt.Sprintf("p50 %.1f ms, p99 %.1f ms (%d tenants, %d failed)", c.P50ms, c.P99ms, c.Requests, c.Errors)
	}
	if n := p.Noisy; n != nil && n.Error == "" && n.Alone.Requests > 0 && n.WithNeighbour.Requests > 0 {
		noisy.Measured, noisy.Met = true, n.Ratio <= MaxNoisyNeighbourRise
		noisy.Value = fmt.Sprintf("%.2f× (p99 %.2f ms alone, %.2f ms beside a neighbour at %d in flight)",
			n.Ratio, n.Alone.P99ms, n.WithNeighbour.P99ms, n.NoisyConcurrency)
		if n.Elsewhere != nil {
			noisy.Value += fmt.Sprintf("; the same load on a separate process: %.2f×", n.ElsewhereRatio)
		}
	}
	return []Target{loaded, evicted, thr, cold, noisy}
}

// poolMarkdown renders the pool section.
func poolMarkdown(b *strings.Builder, p *Pool) {
	b.WriteString("## Shared pool\n\n")
	if p.Error != "" {
		fmt.Fprintf(b, "Error: %s\n\n", oneLine(p.Error))
	}
	fmt.Fprintf(b, "Store: %s. %d tenants, %d profiles each, each with its own MongoDB user and database (set up in %.1f s). "+
		"The pool and the dedicated server run with GOMAXPROCS=%d; idle timeout %.0f s, %d requests in flight per tenant.\n\n",
		p.Store, p.Tenants, p.ProfilesPerTenant, p.SetupSeconds, p.GOMAXPROCS, p.IdleTimeoutSecs, p.TenantMaxInFlight)
	b.WriteString("| memory | RSS MiB | anonymous MiB | heap in use MiB | per tenant KiB (above the empty pool) |\n| --- | ---: | ---: | ---: | ---: |\n")
	fmt.Fprintf(b, "| empty pool (no tenant) | %.1f | %.1f | | |\n", p.EmptyRSSMiB, p.EmptyAnonMiB)
	fmt.Fprintf(b, "| %d tenants known, none served | %.1f | | | %.1f |\n", p.Tenants, p.KnownRSSMiB, p.KnownKiBPerTnt)
	fmt.Fprintf(b, "| %d loaded, all served within %.1f s (peak %.1f) | %.1f | %.1f | %.1f | %.1f |\n",
		p.LoadedTenants, p.SweepSeconds, p.PeakRSSMiB, p.LoadedRSSMiB, p.LoadedAnonMiB, p.LoadedHeapMiB, p.LoadedKiBPerTnt)
	fmt.Fprintf(b, "| %d evicted | %.1f | %.1f | %.1f | %.1f |\n\n", p.Evictions, p.EvictedRSSMiB, p.EvictedAnonMiB, p.EvictedHeapMiB, p.EvictedKiBPerTnt)
	if p.EvictionMethod != "" {
		fmt.Fprintf(b, "Evicted sample: %s. Before it, one request per tenant built every server again; %d of them were answered 503 (the activation outwaited the pool's 3 s index wait) and retried.\n\n",
			p.EvictionMethod, p.EvictPassFailed)
	}
	if len(p.EvictedSeries) > 0 {
		var pts []string
		for _, s := range p.EvictedSeries {
			pts = append(pts, fmt.Sprintf("%.0f s: %.1f MiB", s.AfterSeconds, s.RSSMiB))
		}
		fmt.Fprintf(b, "RSS after the last eviction: %s.\n\n", strings.Join(pts, ", "))
	}
	fa, ca := p.FirstActivation, p.ColdActivation
	b.WriteString("| activation | tenants | p50 ms | p99 ms | max ms | failed |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
	if fa.Requests > 0 {
		fmt.Fprintf(b, "| first request ever (fresh database: indexes created; a 503 after the pool's 3 s index wait counts as failed, then retried) | %d | %.1f | %.1f | %.1f | %d |\n", fa.Requests, fa.P50ms, fa.P99ms, fa.MaxMs, fa.Errors)
	}
	fmt.Fprintf(b, "| first request after eviction (cold), one at a time | %d | %.1f | %.1f | %.1f | %d |\n", ca.Requests, ca.P50ms, ca.P99ms, ca.MaxMs, ca.Errors)
	if c := p.ColdBaseline; c != nil {
		fmt.Fprintf(b, "| the same, baseline build `%s` (alternating blocks, same tenants) | %d | %.1f | %.1f | %.1f | %d |\n",
			c.Binary, c.Activation.Requests, c.Activation.P50ms, c.Activation.P99ms, c.Activation.MaxMs, c.Activation.Errors)
	}
	b.WriteString("\n")
	if p.ColdPoolCPUms > 0 || p.ColdStoreCPUms > 0 {
		fmt.Fprintf(b, "Per cold activation (request included): CPU of the pool %.2f ms, of FerretDB %.2f ms; FerretDB saw %.2f SCRAM conversations and %.2f connections (the client's monitor included).",
			p.ColdPoolCPUms, p.ColdStoreCPUms, p.ColdAuthentications, p.ColdConnections)
		if c := p.ColdBaseline; c != nil {
			fmt.Fprintf(b, " Baseline: %.2f ms, %.2f ms; %.2f and %.2f.", c.PoolCPUms, c.StoreCPUms, c.Authentications, c.Connections)
		}
		b.WriteString("\n\n")
	}
	if len(p.PoolFlags) > 0 {
		fmt.Fprintf(b, "The measured pool ran with `%s`.\n\n", strings.Join(p.PoolFlags, " "))
	}
	requestCells(b, p.Throughput, p.Noisy)
	if bf := p.Before; bf != nil {
		fmt.Fprintf(b, "Before: the same cells on `%s` (-baseline-bin), in the same run.\n\n", bf.Bin)
		requestCells(b, bf.Throughput, bf.Noisy)
	}
	for _, a := range p.Analyses {
		fmt.Fprintf(b, "%s (`%s`):\n\n```\n%s\n```\n\n", a.What, a.File, strings.Join(a.Top, "\n"))
	}
}

// requestCells renders the throughput and noisy-neighbour cells.
func requestCells(b *strings.Builder, thr []PoolCell, noisy *Noisy) {
	if len(thr) > 0 {
		b.WriteString("| detail, conc | pool req/s | dedicated req/s | ratio | pool p50 / p99 ms | dedicated p50 / p99 ms | pool CPU ms/req | dedicated CPU ms/req | note |\n")
		b.WriteString("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
		for _, c := range thr {
			fmt.Fprintf(b, "| %d | %s | %s | %.2f | %.2f / %.2f | %.2f / %.2f | %.3f | %.3f | %s |\n", c.Concurrency,
				rate(c.Pool.RPS), rate(c.Dedicated.RPS), c.Ratio, c.Pool.P50ms, c.Pool.P99ms, c.Dedicated.P50ms, c.Dedicated.P99ms,
				c.PoolCPUms, c.DedicatedCPUms, oneLine(c.Error))
		}
		b.WriteString("\n")
	}
	if n := noisy; n != nil {
		fmt.Fprintf(b, "Noisy neighbour: a quiet tenant at concurrency %d, a neighbour at %d (its in-flight bound).\n\n", n.QuietConcurrency, n.NoisyConcurrency)
		b.WriteString("| quiet tenant | req/s | p50 ms | p99 ms | p99 / alone |\n| --- | ---: | ---: | ---: | ---: |\n")
		fmt.Fprintf(b, "| alone | %s | %.2f | %.2f | 1 |\n", rate(n.Alone.RPS), n.Alone.P50ms, n.Alone.P99ms)
		fmt.Fprintf(b, "| neighbour in the same pool | %s | %.2f | %.2f | %.2f |\n", rate(n.WithNeighbour.RPS), n.WithNeighbour.P50ms, n.WithNeighbour.P99ms, n.Ratio)
		if e := n.Elsewhere; e != nil {
			fmt.Fprintf(b, "| the same load on a separate process | %s | %.2f | %.2f | %.2f |\n", rate(e.RPS), e.P50ms, e.P99ms, n.ElsewhereRatio)
		}
		fmt.Fprintf(b, "\nThe neighbour in the pool: %s req/s, p50 %.2f ms, p99 %.2f ms, %d answered 503.", rate(n.Neighbour.RPS), n.Neighbour.P50ms, n.Neighbour.P99ms, n.NeighbourBusy)
		if n.Error != "" {
			fmt.Fprintf(b, " Error: %s", oneLine(n.Error))
		}
		b.WriteString("\n\n")
	}
}
