// Package migbench measures the migration path (issue 15): `userve import`
// of ThinkSNS-shaped users with follows into a tenant on FerretDB's
// PostgreSQL handler, and `userve export` of them, with the peak resident
// memory of the importer and of the server.
package migbench

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"userve.dev/userve/bench/internal/pgferret"
	"userve.dev/userve/bench/internal/procmon"
)

// Config of one run.
type Config struct {
	UserveBin, FerretBin, LogDir string
	Users                        int // ThinkSNS records
	Followings                   int // per user (random others)
	BalanceEvery                 int // every n-th user has opening balances (0: none)
	Signups                      int // users created through the API during the import (0: none)
	Timeout                      time.Duration
	Logf                         func(string, ...any)
}

// Result is what the run measured.
type Result struct {
	Store            string    `json:"store"`
	Users            int       `json:"users"`
	FollowEdges      int       `json:"follow_edges"`
	WithBalances     int       `json:"users_with_balances"`
	FileMiB          float64   `json:"file_mib"`
	ImportSeconds    float64   `json:"import_seconds"`
	ImportPerSecond  float64   `json:"import_records_per_second"`
	ImportErrors     int       `json:"import_errors"`
	ImporterPeakMiB  float64   `json:"importer_peak_rss_mib"`
	ServerPeakMiB    float64   `json:"server_peak_rss_mib"`
	ServerRSSMiB     []float64 `json:"server_rss_mib_at_quarters"`   // at 25/50/75/100% of the import
	ImporterRSSMiB   []float64 `json:"importer_rss_mib_at_quarters"` // the same for the importer
	ExportSeconds    float64   `json:"export_seconds"`
	ExportPerSecond  float64   `json:"export_records_per_second"`
	ExportServerPeak float64   `json:"export_server_peak_rss_mib"`
	Summary          string    `json:"import_summary"`
	// ImportCPUPerRecord is the CPU each process spent per imported record,
	// in microseconds: userve serve, userve import, ferretdb, postgresql
	// (all its backends). It shows where the time goes, which the wall time
	// on a shared machine does not.
	ImportCPUPerRecord map[string]float64 `json:"import_cpu_us_per_record"`
	// Signups during the import, with Config.Signups: none may be followed.
	Signups *SignupCheck `json:"signups_during_import,omitempty"`
}

// cpuOf reads the CPU of the store's and the server's process trees.
func cpuOf(store *pgferret.Store, server *procmon.Process) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, pid := range map[string]int{"userve serve": server.Pid(), "ferretdb": store.FerretPid(), "postgresql": store.PostgresPid()} {
		if cpu, err := procmon.TreeCPU(pid); err == nil {
			out[name] = cpu
		}
	}
	return out
}

const adminToken = "bench-admin-token-0123456789abcdef"

// Run runs the part.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 20 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	res := &Result{Store: "FerretDB + PostgreSQL (temp cluster)", Users: cfg.Users}
	dir, err := os.MkdirTemp("", "userve-bench-import-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "thinksns-users.jsonl")
	edges, balances, size, err := writeUsers(file, cfg)
	if err != nil {
		return nil, err
	}
	res.FollowEdges, res.WithBalances, res.FileMiB = edges, balances, float64(size)/(1<<20)
	cfg.Logf("import: %d users, %d follow edges, %.1f MiB", cfg.Users, edges, res.FileMiB)

	store, err := pgferret.Start(ctx, cfg.FerretBin, cfg.LogDir)
	if err != nil {
		return nil, err
	}
	defer store.Stop()
	server, base, err := startServer(ctx, cfg, dir, store.URI)
	if err != nil {
		return nil, err
	}
	defer server.Stop(syscall.SIGTERM, 10*time.Second)
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(adminToken), 0o600); err != nil {
		return nil, err
	}

	// Import, sampling both processes' memory.
	imp := exec.Command(cfg.UserveBin, "import", "--url", base, "--token-file", tokenFile, "--format", "thinksns",
		"--batch-size", "1000", "--progress", "lines", file)
	logPath := filepath.Join(cfg.LogDir, "import.log")
	cpuBefore := cpuOf(store, server)
	t0 := time.Now()
	p, err := procmon.Start("userve import", imp, logPath, syscall.SIGKILL)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var impPeak, srvPeak uint64
	var impSeries, srvSeries []uint64
	stop := make(chan struct{})
	var signups *signupLoad
	if cfg.Signups > 0 {
		signups = startSignups(ctx, base, cfg.Signups, stop)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			u1, err1 := procmon.Read(p.Pid())
			u2, err2 := procmon.Read(server.Pid())
			mu.Lock()
			if err1 == nil {
				impPeak = max(impPeak, u1.HWMKiB, u1.RSSKiB)
				impSeries = append(impSeries, u1.RSSKiB)
			}
			if err2 == nil {
				srvPeak = max(srvPeak, u2.HWMKiB, u2.RSSKiB)
				srvSeries = append(srvSeries, u2.RSSKiB)
			}
			mu.Unlock()
		}
	}()
	select {
	case <-p.Done():
	case <-ctx.Done():
		p.Stop(syscall.SIGTERM, 5*time.Second)
	}
	close(stop)
	wg.Wait()
	res.ImportSeconds = time.Since(t0).Seconds()
	res.ImportCPUPerRecord = map[string]float64{}
	perRecord := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(cfg.Users) }
	for name, cpu := range cpuOf(store, server) {
		res.ImportCPUPerRecord[name] = perRecord(cpu - cpuBefore[name])
	}
	if st := p.Cmd.ProcessState; st != nil {
		res.ImportCPUPerRecord["userve import"] = perRecord(st.UserTime() + st.SystemTime())
	}
	res.ImportPerSecond = float64(cfg.Users) / res.ImportSeconds
	res.ImporterPeakMiB, res.ServerPeakMiB = procmon.MiB(impPeak), procmon.MiB(srvPeak)
	res.ImporterRSSMiB, res.ServerRSSMiB = quarters(impSeries), quarters(srvSeries)
	res.Summary = strings.TrimSpace(lastLine(p.Tail(4000), "records:"))
	if exited, err := p.Exited(); !exited || err != nil {
		return res, fmt.Errorf("userve import did not finish cleanly (%v): %s", err, p.Tail(1500))
	}
	cfg.Logf("import: %s; CPU µs per record: %v", res.Summary, res.ImportCPUPerRecord)

	// Export.
	if err := procmon.ResetPeak(server.Pid()); err != nil {
		cfg.Logf("export: cannot reset the server's peak RSS: %v", err)
	}
	out := filepath.Join(dir, "export.jsonl")
	exp := exec.CommandContext(ctx, cfg.UserveBin, "export", "--url", base, "--token-file", tokenFile, "--out", out, "--progress", "none")
	t1 := time.Now()
	if data, err := exp.CombinedOutput(); err != nil {
		return res, fmt.Errorf("userve export: %v: %s", err, data)
	}
	res.ExportSeconds = time.Since(t1).Seconds()
	n, err := countLines(out)
	if err != nil {
		return res, err
	}
	res.ExportPerSecond = float64(n) / res.ExportSeconds
	if u, err := procmon.Read(server.Pid()); err == nil {
		res.ExportServerPeak = procmon.MiB(u.HWMKiB)
	}
	want := cfg.Users - res.ImportErrors
	if signups != nil {
		if res.Signups, err = signups.check(out); err != nil {
			return res, err
		}
		want += res.Signups.Created
		cfg.Logf("signups during the import: %+v", *res.Signups)
		if res.Signups.Followed > 0 {
			return res, fmt.Errorf("%d users created during the import received %d imported follow edges", res.Signups.Followed, res.Signups.Edges)
		}
	}
	if n != want {
		return res, fmt.Errorf("export wrote %d users, want %d", n, want)
	}
	cfg.Logf("export: %d users in %.1fs (%.0f/s)", n, res.ExportSeconds, res.ExportPerSecond)
	return res, nil
}

// writeUsers writes cfg.Users ThinkSNS records, each following
// cfg.Followings random others, with a $2y$ hash and, for every
// BalanceEvery-th user, opening balances.
func writeUsers(path string, cfg Config) (edges, balances int, size int64, err error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(15, 15))
	const hash = "$2y$10$Y6uK8I953KbZD5w4RcuYNONcd/3oF8hENZb62HtKU08bXbCnhsUTe"
	for i := 1; i <= cfg.Users; i++ {
		fmt.Fprintf(w, `{"id":%d,"name":"user_%d","email":"user%d@example.com","phone":"1380%07d","password":"%s","bio":"bio of %d","sex":%d,"location":"city %d","created_at":"2018-01-22 10:05:44","updated_at":"2018-01-22 10:05:44","followings":[`,
			i, i, i, i, hash, i, i%3, i%100)
		seen := map[int]bool{i: true}
		for k := 0; k < cfg.Followings && cfg.Users > cfg.Followings+1; k++ {
			j := 1 + rng.IntN(cfg.Users)
			for seen[j] {
				j = 1 + rng.IntN(cfg.Users)
			}
			seen[j] = true
			if k > 0 {
				w.WriteByte(',')
			}
			w.WriteString(strconv.Itoa(j))
			edges++
		}
		w.WriteByte(']')
		if cfg.BalanceEvery > 0 && i%cfg.BalanceEvery == 0 {
			fmt.Fprintf(w, `,"new_wallet_balance":%d,"currency_sum":%d`, 100+i%1000, i%50+1)
			balances++
		}
		w.WriteString("}\n")
	}
	if err := w.Flush(); err != nil {
		return 0, 0, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, 0, 0, err
	}
	return edges, balances, st.Size(), nil
}

func startServer(ctx context.Context, cfg Config, dir, mongoURI string) (*procmon.Process, string, error) {
	manifest := filepath.Join(dir, "userservice.yaml")
	m := "apiVersion: miniapp.userve.dev/v1alpha1\nkind: UserService\nmetadata:\n  name: bench-import\n  namespace: bench\nspec: {}\n"
	if err := os.WriteFile(manifest, []byte(m), 0o644); err != nil {
		return nil, "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(cfg.UserveBin, "serve", "--config", manifest, "--listen", addr, "--log-level", "info")
	cmd.Env = append(os.Environ(), "USERVE_MONGO_URI="+mongoURI, "USERVE_MONGO_DATABASE=bench_import",
		"USERVE_ADMIN_TOKENS="+adminToken, "USERVE_JWT_KEY=bench-jwt-key-0123456789abcdef-0123456789abcdef")
	p, err := procmon.Start("userve serve (import)", cmd, filepath.Join(cfg.LogDir, "serve-import.log"), syscall.SIGKILL)
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr
	if err := p.AwaitReady(ctx, base+"/readyz", 60*time.Second); err != nil {
		return nil, "", err
	}
	return p, base, nil
}

func quarters(series []uint64) []float64 {
	if len(series) == 0 {
		return nil
	}
	out := make([]float64, 4)
	for q := 1; q <= 4; q++ {
		out[q-1] = procmon.MiB(series[min(len(series)-1, len(series)*q/4)])
	}
	return out
}

func lastLine(s, contains string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], contains) {
			return lines[i]
		}
	}
	return ""
}

func countLines(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
	}
	return n, sc.Err()
}
