package report

import (
	"strings"
	"testing"

	"userve.dev/userve/bench/internal/stats"
)

func TestPerTenantKiB(t *testing.T) {
	for _, c := range []struct {
		rss, base uint64
		n         int
		want      float64
	}{
		{rss: 100 * 1024, base: 36 * 1024, n: 1000, want: 65.54}, // 64 MiB over 1,000 tenants
		{rss: 40000, base: 40000, n: 1000, want: 0},
		{rss: 39000, base: 40000, n: 1000, want: -1}, // below the base: kept, not clamped
		{rss: 50000, base: 40000, n: 0, want: 0},
	} {
		if got := PerTenantKiB(c.rss, c.base, c.n); got != c.want {
			t.Errorf("PerTenantKiB(%d, %d, %d) = %v, want %v", c.rss, c.base, c.n, got, c.want)
		}
	}
}

func TestP99Ratio(t *testing.T) {
	alone, beside := stats.Summary{P99ms: 4}, stats.Summary{P99ms: 9}
	if got := P99Ratio(alone, beside); got != 2.25 {
		t.Errorf("P99Ratio = %v, want 2.25", got)
	}
	if got := P99Ratio(stats.Summary{}, beside); got != 0 {
		t.Errorf("P99Ratio without a p99 alone = %v, want 0", got)
	}
}

func samplePool() *Pool {
	return &Pool{Tenants: 1000, LoadedTenants: 1000, EmptyRSSMiB: 30, LoadedRSSMiB: 480, EvictedRSSMiB: 60, Evictions: 1000,
		EvictedKiBPerTnt: 30.7,
		ColdActivation:   stats.Summary{Requests: 500, P50ms: 20, P99ms: 80},
		Throughput: []PoolCell{
			{Concurrency: 1, Pool: stats.Summary{RPS: 950}, Dedicated: stats.Summary{RPS: 1000}, Ratio: 0.95},
			{Concurrency: 8, Pool: stats.Summary{RPS: 1900}, Dedicated: stats.Summary{RPS: 2000}, Ratio: 0.95},
		},
		Noisy: &Noisy{Alone: stats.Summary{Requests: 100, P99ms: 4}, WithNeighbour: stats.Summary{Requests: 100, P99ms: 7}, Ratio: 1.75},
	}
}

func TestJudgePool(t *testing.T) {
	ts := Judge(&Results{Pool: samplePool()})
	for _, name := range []string{"pool: RSS, 1,000 tenants each served within a minute", "pool: RSS per evicted tenant",
		"pool: detail throughput vs a dedicated server, same CPU", "pool: cold activation p99", "pool: quiet tenant's p99 with a saturating neighbour"} {
		if got := find(ts, name); !got.Measured || !got.Met {
			t.Errorf("%s: %+v, want measured and met", name, got)
		}
	}

	p := samplePool()
	p.LoadedRSSMiB = 600
	p.EvictedKiBPerTnt = 65
	p.Throughput[1].Ratio = 0.89
	p.ColdActivation.P99ms = 101
	p.Noisy.Ratio = 2.01
	for _, got := range Judge(&Results{Pool: p})[len(Judge(&Results{}))-5:] {
		if !got.Measured || got.Met {
			t.Errorf("%s: %+v, want measured and missed", got.Name, got)
		}
	}

	// A failed cold activation misses the goal whatever the p99.
	p = samplePool()
	p.ColdActivation.Errors = 1
	if got := find(Judge(&Results{Pool: p}), "pool: cold activation p99"); got.Met {
		t.Errorf("cold activation with a failure judged met: %+v", got)
	}
}

func TestJudgePoolLoadedRSSOnlyAtTheGoalsSize(t *testing.T) {
	p := samplePool()
	p.Tenants, p.LoadedTenants, p.LoadedRSSMiB = 100, 100, 80
	got := find(Judge(&Results{Pool: p}), "pool: RSS, 1,000 tenants each served within a minute")
	if got.Measured || got.Met || !strings.Contains(got.Value, "judged at 1000 tenants only") {
		t.Errorf("100 tenants judged against the 1,000-tenant goal: %+v", got)
	}
	// Fewer servers loaded than tenants at the sample: not the goal's state.
	p = samplePool()
	p.LoadedTenants = 990
	if got := find(Judge(&Results{Pool: p}), "pool: RSS, 1,000 tenants each served within a minute"); got.Measured {
		t.Errorf("judged with 990 of 1,000 loaded: %+v", got)
	}
}

func TestPoolMarkdown(t *testing.T) {
	md := Markdown(&Results{Pool: samplePool()})
	for _, want := range []string{"## Shared pool", "| 1000 evicted | 60.0 |", "| 8 | 1900 | 2000 | 0.95 |", "| neighbour in the same pool |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestSteady(t *testing.T) {
	for _, c := range []struct {
		prev, cur uint64
		want      bool
	}{
		{0, 1000, false}, // no previous reading
		{1000, 1000, true},
		{1000, 1010, true},
		{1000, 990, true},
		{1000, 1011, false},
		{1000, 989, false},
	} {
		if got := Steady(c.prev, c.cur, 0.01); got != c.want {
			t.Errorf("Steady(%d, %d) = %v, want %v", c.prev, c.cur, got, c.want)
		}
	}
}
