// Package report holds the benchmark's results, judges them against the
// targets and renders them as JSON (latest.json) and Markdown (latest.md).
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"userve.dev/userve/bench/internal/stats"
)

// Results of one `make bench` run.
type Results struct {
	StartedAt string    `json:"started_at"`
	Seconds   float64   `json:"seconds"`
	Host      Host      `json:"host"`
	API       *API      `json:"api,omitempty"`
	Operator  *Operator `json:"operator,omitempty"`
	Pool      *Pool     `json:"pool,omitempty"`
	Import    any       `json:"import,omitempty"` // migbench.Result (issue 15)
	Targets   []Target  `json:"targets"`
	Notes     []string  `json:"notes,omitempty"`
	Errors    []string  `json:"errors,omitempty"` // parts that could not run
	Profiles  []Profile `json:"profiles,omitempty"`
}

// Host describes the machine, because every figure depends on it.
type Host struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel,omitempty"`
	Binary    string `json:"userve_binary"`
}

// API is the tenant API part.
type API struct {
	Store          string  `json:"store"` // e.g. "FerretDB 1.24 + PostgreSQL 15 (temp cluster)"
	Profiles       int     `json:"profiles"`
	Groups         int     `json:"groups"`
	Wallets        int     `json:"wallets"`
	LoginUsers     int     `json:"login_users"`
	SeedSeconds    float64 `json:"seed_seconds"`
	CellSeconds    float64 `json:"cell_seconds"`
	IdleRSSMiB     float64 `json:"idle_rss_mib"`
	IdleAnonMiB    float64 `json:"idle_rss_anon_mib"` // heap, stacks: the process's own
	IdleFileMiB    float64 `json:"idle_rss_file_mib"` // mapped pages of the executable
	IdleAfterSecs  float64 `json:"idle_after_seconds"`
	ServerStartSec float64 `json:"server_start_seconds"` // until /readyz answered 200
	// Baseline is the other build measured in the same cells (-baseline-bin),
	// with its idle RSS; empty without one.
	Baseline           string  `json:"baseline,omitempty"`
	BaselineIdleRSSMiB float64 `json:"baseline_idle_rss_mib,omitempty"`
	// IdleProbedRSSMiB is the same fresh process right after the probes a
	// pod gets (/readyz every 5 s, /healthz every 10 s): idle as deployed.
	IdleProbedRSSMiB         float64 `json:"idle_probed_rss_mib,omitempty"`
	BaselineIdleProbedRSSMiB float64 `json:"baseline_idle_probed_rss_mib,omitempty"`
	// QuietRSSMiB is the loaded server's RSS once the cells are over and
	// QuietAfterSecs have passed with only the pod's probes: what a tenant
	// that served a burst keeps while nobody uses it.
	QuietRSSMiB         float64 `json:"quiet_rss_mib,omitempty"`
	QuietAnonMiB        float64 `json:"quiet_rss_anon_mib,omitempty"`
	BaselineQuietRSSMiB float64 `json:"baseline_quiet_rss_mib,omitempty"`
	QuietAfterSecs      float64 `json:"quiet_after_seconds,omitempty"`
	Cells               []Cell  `json:"cells"`
	// Analyses are profiles taken because a target was missed.
	Analyses []Profile `json:"analyses,omitempty"`
}

// Cell is one endpoint at one concurrency, through the server and directly.
type Cell struct {
	Endpoint    string         `json:"endpoint"`
	Request     string         `json:"request"`      // what the server is sent
	DriverQuery string         `json:"driver_query"` // what the ceiling sends the store
	Concurrency int            `json:"concurrency"`
	Server      stats.Summary  `json:"server"`
	Driver      *stats.Summary `json:"driver,omitempty"`
	// Ratio is server req/s over driver req/s.
	Ratio            float64 `json:"ratio"`
	CPUmsPerReq      float64 `json:"server_cpu_ms_per_req"`
	PeakRSSMiB       float64 `json:"server_peak_rss_mib"`
	StoreCPUmsPerReq float64 `json:"store_cpu_ms_per_req,omitempty"` // FerretDB's, when the harness started it
	// DriverCPUmsPerReq is the harness's own CPU per driver-ceiling request:
	// what the same store work costs a Go client with no HTTP around it.
	DriverCPUmsPerReq float64 `json:"driver_cpu_ms_per_req,omitempty"`
	// Baseline is the baseline build's side of the cell, its CPU per request,
	// and server req/s over baseline req/s (before/after in one run).
	Baseline            *stats.Summary `json:"baseline,omitempty"`
	BaselineCPUmsPerReq float64        `json:"baseline_cpu_ms_per_req,omitempty"`
	BaselinePeakRSSMiB  float64        `json:"baseline_peak_rss_mib,omitempty"`
	VsBaseline          float64        `json:"vs_baseline,omitempty"`
	Error               string         `json:"error,omitempty"`
}

// Operator is the operator-at-scale part.
type Operator struct {
	Tenants                 int            `json:"tenants"`
	MaxConcurrentReconciles int            `json:"max_concurrent_reconciles"`
	ExtraFlags              []string       `json:"extra_flags,omitempty"`
	GOMEMLIMIT              string         `json:"gomemlimit,omitempty"`
	CreateSeconds           float64        `json:"create_seconds"`    // the harness's creates
	AllReadySeconds         float64        `json:"all_ready_seconds"` // from the first create
	Ready                   int            `json:"ready"`             // tenants Ready at the end
	CPUSeconds              float64        `json:"cpu_seconds"`
	CPUmsPerTenant          float64        `json:"cpu_ms_per_tenant"`
	PeakRSSMiB              float64        `json:"peak_rss_mib"`
	RequestsPerTenant       float64        `json:"requests_per_tenant"`
	WritesPerTenant         float64        `json:"writes_per_tenant"`
	ReadsPerTenant          float64        `json:"reads_per_tenant"`
	CreationRequests        map[string]int `json:"creation_requests_by_verb_resource"`
	ClientRequests          map[string]int `json:"operator_client_requests,omitempty"` // rest_client_requests_total by method
	Resync                  *Resync        `json:"resync,omitempty"`
	// ProcessCPUSeconds is each process's CPU from the first create until
	// the operator settled: where the time went.
	ProcessCPUSeconds map[string]float64 `json:"process_cpu_seconds,omitempty"`
	// Profiles are CPU profiles of the operator and kube-apiserver.
	Profiles    []string      `json:"profiles,omitempty"`
	Pool        *OperatorPool `json:"pool,omitempty"`
	OperatorLog string        `json:"operator_log,omitempty"`
	Error       string        `json:"error,omitempty"`
}

// OperatorPool describes a run whose tenants are all in one pool.
type OperatorPool struct {
	Name       string     `json:"name"`
	Replicas   int        `json:"replicas"`
	Simulation string     `json:"simulation"`
	Flips      []PoolFlip `json:"flips,omitempty"`
}

// PoolFlip is one pool pod's readiness change, mirrored into every
// tenant's EndpointSlice.
type PoolFlip struct {
	Change         string         `json:"change"`
	Served         int            `json:"served"`   // tenants served by the pool when it began
	Mirrored       int            `json:"mirrored"` // tenant slices that show it at the end
	Seconds        float64        `json:"seconds"`
	Writes         int            `json:"writes"`
	Reads          int            `json:"reads"`
	ByVerbResource map[string]int `json:"by_verb_resource"`
}

// Resync is the no-change restart of the operator.
type Resync struct {
	Method         string         `json:"method"`
	SettleSeconds  float64        `json:"settle_seconds"`
	Reconciled     int            `json:"reconciled"` // reconciles the restarted operator had done (-1: unknown)
	Writes         int            `json:"writes"`
	Reads          int            `json:"reads"`
	ByVerbResource map[string]int `json:"by_verb_resource"`
	PeakRSSMiB     float64        `json:"peak_rss_mib"`
	CPUSeconds     float64        `json:"cpu_seconds"`
	// ClientRequests is the restarted operator's own count by HTTP method.
	ClientRequests map[string]int `json:"operator_client_requests,omitempty"`
}

// Target is one goal of the issue and whether this run met it.
type Target struct {
	Name  string `json:"name"`
	Goal  string `json:"goal"`
	Value string `json:"value"`
	Met   bool   `json:"met"`
	// Measured is false when the part did not run: then Met means nothing.
	Measured bool `json:"measured"`
}

// Profile is a pprof taken during a run, summarized.
type Profile struct {
	What string   `json:"what"`
	File string   `json:"file"`
	Top  []string `json:"top"`
}

// Write stores latest.json and latest.md in dir.
func Write(dir string, r *Results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, "latest.json"), append(data, '\n')); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, "latest.md"), []byte(Markdown(r)))
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Markdown renders the results as the tables of README-bench.
func Markdown(r *Results) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# userve benchmark — %s\n\n", r.StartedAt)
	fmt.Fprintf(&b, "%d CPUs, %s, %s; run took %.0f s.\n\n", r.Host.CPUs, r.Host.GoVersion, r.Host.Kernel, r.Seconds)
	if r.Import != nil {
		if data, err := json.MarshalIndent(r.Import, "", "  "); err == nil {
			fmt.Fprintf(&b, "## Migration: import and export\n\n```json\n%s\n```\n\n", data)
		}
	}
	if len(r.Targets) > 0 {
		b.WriteString("## Targets\n\n| target | goal | this run | |\n| --- | --- | --- | --- |\n")
		for _, t := range r.Targets {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.Name, t.Goal, t.Value, verdict(t))
		}
		b.WriteString("\n")
	}
	if a := r.API; a != nil {
		b.WriteString("## Tenant API\n\n")
		fmt.Fprintf(&b, "Store: %s. Data: %d profiles, %d groups, %d wallets, %d login users (seeded in %.1f s). "+
			"Each cell runs %.0f s after a warm-up. Idle tenant process: %.1f MiB RSS after %.0f s "+
			"(%.1f MiB anonymous, %.1f MiB mapped executable).\n\n",
			a.Store, a.Profiles, a.Groups, a.Wallets, a.LoginUsers, a.SeedSeconds, a.CellSeconds, a.IdleRSSMiB, a.IdleAfterSecs,
			a.IdleAnonMiB, a.IdleFileMiB)
		if a.IdleProbedRSSMiB > 0 || a.QuietRSSMiB > 0 {
			fmt.Fprintf(&b, "Idle as deployed, right after the pod's probes: %.1f MiB. The loaded server after the cells and %.0f s "+
				"of probes only: %.1f MiB (%.1f MiB anonymous).\n\n", a.IdleProbedRSSMiB, a.QuietAfterSecs, a.QuietRSSMiB, a.QuietAnonMiB)
		}
		b.WriteString("| endpoint | conc | server req/s | p50 ms | p99 ms | CPU ms/req | peak RSS MiB | driver req/s | driver p50 ms | driver CPU ms/req | ratio | note |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
		for _, c := range a.Cells {
			if c.Server.Requests == 0 && c.Server.Errors == 0 && c.Driver == nil {
				fmt.Fprintf(&b, "| %s | %d | | | | | | | | | | %s |\n", c.Endpoint, c.Concurrency, oneLine(c.Error))
				continue
			}
			driverRPS, driverP50, driverCPU, ratio := "–", "–", "–", "–"
			if c.Driver != nil {
				driverRPS = rate(c.Driver.RPS)
				driverP50 = fmt.Sprintf("%.2f", c.Driver.P50ms)
				driverCPU = fmt.Sprintf("%.3f", c.DriverCPUmsPerReq)
				ratio = fmt.Sprintf("%.2f", c.Ratio)
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %.2f | %.2f | %.3f | %.1f | %s | %s | %s | %s | %s |\n",
				c.Endpoint, c.Concurrency, rate(c.Server.RPS), c.Server.P50ms, c.Server.P99ms,
				c.CPUmsPerReq, c.PeakRSSMiB, driverRPS, driverP50, driverCPU, ratio, oneLine(c.Error))
		}
		if a.Baseline != "" {
			fmt.Fprintf(&b, "\nAgainst the baseline build `%s`, in the same cells (the sides alternate: server, baseline, driver). Idle RSS: %.1f MiB, baseline %.1f MiB.\n\n",
				a.Baseline, a.IdleRSSMiB, a.BaselineIdleRSSMiB)
			if a.IdleProbedRSSMiB > 0 || a.QuietRSSMiB > 0 {
				fmt.Fprintf(&b, "Idle RSS right after the pod's probes: %.1f MiB, baseline %.1f MiB. "+
					"After the cells and %.0f s of probes only: %.1f MiB, baseline %.1f MiB.\n\n",
					a.IdleProbedRSSMiB, a.BaselineIdleProbedRSSMiB, a.QuietAfterSecs, a.QuietRSSMiB, a.BaselineQuietRSSMiB)
			}
			b.WriteString("| endpoint | conc | server req/s | baseline req/s | server / baseline | CPU ms/req | baseline CPU ms/req | ratio to driver | baseline ratio to driver | baseline failed | peak RSS MiB | baseline peak RSS MiB |\n")
			b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
			for _, c := range a.Cells {
				if c.Baseline == nil {
					continue
				}
				baseRatio := "–"
				if c.Driver != nil {
					baseRatio = fmt.Sprintf("%.2f", stats.Ratio(c.Baseline.RPS, c.Driver.RPS))
				}
				failed := "0"
				if n := int64(c.Baseline.Requests) + c.Baseline.Errors; c.Baseline.Errors > 0 && n > 0 {
					failed = fmt.Sprintf("%.0f%%", 100*float64(c.Baseline.Errors)/float64(n))
				}
				fmt.Fprintf(&b, "| %s | %d | %s | %s | %.2f | %.3f | %.3f | %.2f | %s | %s | %.1f | %.1f |\n", c.Endpoint, c.Concurrency,
					rate(c.Server.RPS), rate(c.Baseline.RPS), c.VsBaseline, c.CPUmsPerReq, c.BaselineCPUmsPerReq, c.Ratio, baseRatio, failed,
					c.PeakRSSMiB, c.BaselinePeakRSSMiB)
			}
		}
		b.WriteString("\nRequests per cell (server / driver) and what each sends:\n\n")
		seen := map[string]bool{}
		for _, c := range a.Cells {
			if seen[c.Endpoint] {
				continue
			}
			seen[c.Endpoint] = true
			fmt.Fprintf(&b, "- **%s**: `%s` — driver: `%s`\n", c.Endpoint, c.Request, c.DriverQuery)
		}
		b.WriteString("\n")
	}
	if o := r.Operator; o != nil {
		b.WriteString("## Operator\n\n")
		if o.Error != "" {
			fmt.Fprintf(&b, "Error: %s\n\n", oneLine(o.Error))
		}
		fmt.Fprintf(&b, "| tenants | max-concurrent-reconciles | created in s | all Ready in s | Ready | operator CPU s | CPU ms/tenant | peak RSS MiB | API req/tenant | writes/tenant | reads/tenant |\n")
		b.WriteString("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		fmt.Fprintf(&b, "| %d | %d | %.1f | %.1f | %d | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f |\n\n",
			o.Tenants, o.MaxConcurrentReconciles, o.CreateSeconds, o.AllReadySeconds, o.Ready, o.CPUSeconds,
			o.CPUmsPerTenant, o.PeakRSSMiB, o.RequestsPerTenant, o.WritesPerTenant, o.ReadsPerTenant)
		if len(o.ClientRequests) > 0 {
			fmt.Fprintf(&b, "The operator's own count of its requests (rest_client_requests_total) during creation: %s.\n\n", methods(o.ClientRequests))
		}
		if len(o.CreationRequests) > 0 {
			b.WriteString("API requests during creation, by verb and resource (operator's share, harness's own requests subtracted):\n\n")
			b.WriteString(counts(o.CreationRequests, o.Tenants))
		}
		if len(o.ProcessCPUSeconds) > 0 {
			fmt.Fprintf(&b, "CPU seconds of each process from the first create until the operator settled: %s.\n\n", cpuSeconds(o.ProcessCPUSeconds))
		}
		if len(o.Profiles) > 0 {
			fmt.Fprintf(&b, "CPU profiles: %s.\n\n", strings.Join(o.Profiles, "; "))
		}
		if o.GOMEMLIMIT != "" {
			fmt.Fprintf(&b, "The operator ran with GOMEMLIMIT=%s.\n\n", o.GOMEMLIMIT)
		}
		if p := o.Pool; p != nil {
			fmt.Fprintf(&b, "Every tenant in UserServicePool %s, %d pods (%s).\n\n", p.Name, p.Replicas, p.Simulation)
			for _, f := range p.Flips {
				fmt.Fprintf(&b, "- %s: %d of %d tenant EndpointSlices mirrored it after %.1f s; %d writes, %d reads (%s)\n",
					f.Change, f.Mirrored, max(f.Served, f.Mirrored), f.Seconds, f.Writes, f.Reads, flat(f.ByVerbResource))
			}
			if len(p.Flips) > 0 {
				b.WriteString("\n")
			}
		}
		if s := o.Resync; s != nil {
			fmt.Fprintf(&b, "No-change resync (%s): settled in %.1f s after %d reconciles, %d writes, %d reads, operator CPU %.1f s, peak RSS %.1f MiB.\n\n",
				s.Method, s.SettleSeconds, s.Reconciled, s.Writes, s.Reads, s.CPUSeconds, s.PeakRSSMiB)
			if len(s.ClientRequests) > 0 {
				fmt.Fprintf(&b, "The restarted operator's own count: %s.\n\n", methods(s.ClientRequests))
			}
			if len(s.ByVerbResource) > 0 {
				b.WriteString(counts(s.ByVerbResource, 0))
			}
		}
	}
	if r.Pool != nil {
		poolMarkdown(&b, r.Pool)
	}
	profiles := r.Profiles
	if r.API != nil {
		profiles = append(append([]Profile(nil), r.API.Analyses...), profiles...)
	}
	if len(profiles) > 0 {
		b.WriteString("## Profiles\n\n")
		for _, p := range profiles {
			fmt.Fprintf(&b, "%s (`%s`):\n\n```\n%s\n```\n\n", p.What, p.File, strings.Join(p.Top, "\n"))
		}
	}
	if len(r.Errors) > 0 {
		b.WriteString("## Errors\n\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "- %s\n", oneLine(e))
		}
		b.WriteString("\n")
	}
	if len(r.Notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

func methods(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// rate shows small rates with a decimal, so 0.4 req/s does not read as 0.
func rate(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func verdict(t Target) string {
	switch {
	case !t.Measured && t.Value != "":
		return "**not measurable**"
	case !t.Measured:
		return "not measured"
	case t.Met:
		return "**met**"
	}
	return "**MISSED**"
}

// counts renders a verb/resource breakdown, with per-tenant figures when
// tenants > 0.
func counts(m map[string]int, tenants int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var b strings.Builder
	if tenants > 0 {
		b.WriteString("| verb resource | requests | per tenant |\n| --- | ---: | ---: |\n")
	} else {
		b.WriteString("| verb resource | requests |\n| --- | ---: |\n")
	}
	for _, k := range keys {
		if tenants > 0 {
			fmt.Fprintf(&b, "| %s | %d | %.2f |\n", k, m[k], float64(m[k])/float64(tenants))
		} else {
			fmt.Fprintf(&b, "| %s | %d |\n", k, m[k])
		}
	}
	b.WriteString("\n")
	return b.String()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func cpuSeconds(m map[string]float64) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %.1f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func flat(m map[string]int) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
