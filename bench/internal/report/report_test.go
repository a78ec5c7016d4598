package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"userve.dev/userve/bench/internal/stats"
)

func sampleResults() *Results {
	cell := func(ep string, conc int, server, driver, cpu float64) Cell {
		return Cell{Endpoint: ep, Request: "GET /x", DriverQuery: "find", Concurrency: conc,
			Server: stats.Summary{RPS: server, P50ms: 1.5, P99ms: 4}, Driver: &stats.Summary{RPS: driver, P50ms: 1.2},
			Ratio: stats.Ratio(server, driver), CPUmsPerReq: cpu, DriverCPUmsPerReq: 0.125, PeakRSSMiB: 30}
	}
	return &Results{
		StartedAt: "2025-01-01T00:00:00Z", Host: Host{CPUs: 2, GoVersion: "go1.26"},
		API: &API{Store: "FerretDB", Profiles: 100000, IdleRSSMiB: 18.5, Cells: []Cell{
			cell(EndpointDetail, 1, 900, 1000, 0.25),
			cell(EndpointDetail, 8, 1800, 2000, 0.28),
			cell(EndpointListV20, 1, 80, 100, 0.9),
			cell(EndpointListV22, 1, 95, 100, 0.7),
			{Endpoint: EndpointLogin, Concurrency: 1, Error: "status 500 | boom\nline two"},
		}},
		Operator: &Operator{Tenants: 1000, Ready: 1000, AllReadySeconds: 42, CreateSeconds: 10, PeakRSSMiB: 90,
			CreationRequests: map[string]int{"APPLY deployments": 1000, "PUT userservices/status": 2000},
			Resync:           &Resync{Method: "restart", Writes: 3, ByVerbResource: map[string]int{"APPLY configmaps": 3}, PeakRSSMiB: 160}},
	}
}

func find(ts []Target, name string) Target {
	for _, t := range ts {
		if t.Name == name {
			return t
		}
	}
	return Target{Name: "missing: " + name}
}

func TestJudge(t *testing.T) {
	ts := Judge(sampleResults())
	for name, want := range map[string]bool{
		"detail throughput vs driver":          true,  // 0.90 and 0.90
		"list v2.0 throughput vs driver":       false, // 0.80
		"list v2.2 where throughput vs driver": true,  // 0.95
		"detail server CPU per request":        true,  // 0.25, 0.28
		"idle tenant RSS":                      true,
		"operator: 1,000 tenants Ready":        true,
		"operator: writes on no-change resync": false,
		"operator peak RSS":                    false, // the resync's 160 counts
	} {
		got := find(ts, name)
		if !got.Measured {
			t.Errorf("%s: not measured (%+v)", name, got)
			continue
		}
		if got.Met != want {
			t.Errorf("%s: met=%v, want %v (value %q)", name, got.Met, want, got.Value)
		}
	}
}

func TestJudgeWithoutParts(t *testing.T) {
	for _, tg := range Judge(&Results{}) {
		if tg.Measured || tg.Met {
			t.Errorf("%s judged without data: %+v", tg.Name, tg)
		}
	}
}

func TestJudgeUnmeasurableList(t *testing.T) {
	r := &Results{API: &API{Cells: []Cell{
		{Endpoint: EndpointListV20, Concurrency: 1, Error: "status 503"},
		{Endpoint: EndpointListV20, Concurrency: 8, Error: "not run"},
	}}}
	got := find(Judge(r), "list v2.0 throughput vs driver")
	if got.Measured || got.Met || !strings.Contains(got.Value, "status 503") {
		t.Errorf("a list without any figure must be unmeasured, with the reason: %+v", got)
	}
}

func TestJudgeOperatorNotAllReady(t *testing.T) {
	ts := Judge(&Results{Operator: &Operator{Tenants: 1000, Ready: 400, CreateSeconds: 12, AllReadySeconds: 120}})
	got := find(ts, "operator: 1,000 tenants Ready")
	if !got.Measured || got.Met || !strings.Contains(got.Value, "400 of 1000") {
		t.Errorf("partial readiness: %+v", got)
	}
}

func TestMarkdown(t *testing.T) {
	r := sampleResults()
	r.Targets = Judge(r)
	md := Markdown(r)
	for _, want := range []string{
		"| detail | 1 | 900 | 1.50 | 4.00 | 0.250 | 30.0 | 1000 | 1.20 | 0.125 | 0.90 |  |",
		"| list v2.0 throughput vs driver | ≥ 0.85 of driver req/s at every concurrency | 0.80 (c=1) | **MISSED** |",
		"| idle tenant RSS | < 25 MiB | 18.5 MiB | **met** |",
		"| login | 1 | | | | | | | | | | status 500 \\| boom line two |", // one line, pipes escaped
		"| APPLY deployments | 1000 | 1.00 |",
		"No-change resync (restart)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q\n%s", want, md)
		}
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	r := sampleResults()
	if err := Write(dir, r); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.API.Cells[0].Server.RPS != 900 || back.Operator.Resync.Writes != 3 {
		t.Errorf("round trip lost data: %+v", back.API.Cells[0])
	}
	if _, err := os.Stat(filepath.Join(dir, "latest.md")); err != nil {
		t.Error(err)
	}
}

func TestMarkdownAgainstBaseline(t *testing.T) {
	r := sampleResults()
	r.API.Baseline, r.API.BaselineIdleRSSMiB = "/tmp/userve-old", 39
	c := &r.API.Cells[0] // detail at 1: server 900, driver 1000
	c.Baseline = &stats.Summary{RPS: 600, Requests: 90, Errors: 10}
	c.BaselineCPUmsPerReq = 0.6
	c.PeakRSSMiB, c.BaselinePeakRSSMiB = 27.5, 31
	c.VsBaseline = stats.Ratio(c.Server.RPS, c.Baseline.RPS)
	r.API.IdleProbedRSSMiB, r.API.BaselineIdleProbedRSSMiB = 20.5, 21
	r.API.QuietRSSMiB, r.API.QuietAnonMiB, r.API.BaselineQuietRSSMiB, r.API.QuietAfterSecs = 22, 8.5, 29.5, 50
	md := Markdown(r)
	for _, want := range []string{
		"Against the baseline build `/tmp/userve-old`",
		"Idle RSS: 18.5 MiB, baseline 39.0 MiB.",
		"| detail | 1 | 900 | 600 | 1.50 | 0.250 | 0.600 | 0.90 | 0.60 | 10% | 27.5 | 31.0 |",
		"Idle as deployed, right after the pod's probes: 20.5 MiB. The loaded server after the cells and 50 s of probes only: 22.0 MiB (8.5 MiB anonymous).",
		"Idle RSS right after the pod's probes: 20.5 MiB, baseline 21.0 MiB. After the cells and 50 s of probes only: 22.0 MiB, baseline 29.5 MiB.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q\n%s", want, md)
		}
	}
	if strings.Contains(md, "| detail | 8 | 1800 | ") && strings.Count(md, "| detail | 8 |") > 1 {
		t.Error("a cell without a baseline side is listed against the baseline")
	}
}

// Pooled runs are judged against issue 22's goals: 10,000 tenants within
// 300 s with the operator under 600 MiB; a smaller pooled run is measured,
// never met.
func TestJudgeOperatorPooled(t *testing.T) {
	pooled := func(tenants int, seconds, rss float64) []Target {
		return Judge(&Results{Operator: &Operator{Tenants: tenants, Ready: tenants, CreateSeconds: 30, AllReadySeconds: seconds,
			PeakRSSMiB: rss, Pool: &OperatorPool{Name: "bench", Replicas: 2}, Resync: &Resync{}}})
	}
	if got := find(pooled(10000, 290, 400), "operator: 10,000 pooled tenants Ready"); !got.Measured || !got.Met {
		t.Errorf("10,000 in 290 s: %+v", got)
	}
	if got := find(pooled(1000, 20, 100), "operator: 10,000 pooled tenants Ready"); !got.Measured || got.Met {
		t.Errorf("1,000 pooled tenants met the 10,000 goal: %+v", got)
	}
	if got := find(pooled(10000, 290, 400), "operator peak RSS (pooled)"); !got.Met {
		t.Errorf("400 MiB against 600: %+v", got)
	}
	md := Markdown(&Results{Operator: &Operator{Tenants: 2, Pool: &OperatorPool{Name: "bench", Replicas: 2,
		Flips: []PoolFlip{{Change: "pool pod unready", Mirrored: 2, Seconds: 1.5, Writes: 4, ByVerbResource: map[string]int{"APPLY discovery.k8s.io/endpointslices": 2}}}}}})
	if !strings.Contains(md, "pool pod unready: 2 of 2 tenant EndpointSlices mirrored it after 1.5 s; 4 writes") {
		t.Errorf("markdown lacks the flip:\n%s", md)
	}
}
