// Command bench is `make bench`: it measures the tenant API (bin/userve serve
// over FerretDB + PostgreSQL, or USERVE_BENCH_MONGO_URI), the operator at
// 1,000 tenants (bin/userve operator against etcd + kube-apiserver), the
// migration tools, and a shared pool of 1,000 tenants (bin/userve pool), and
// writes bench/results/latest.json and latest.md.
//
//	go run ./bench                       # everything (~7 minutes on 2 cores)
//	go run ./bench -only api -duration 3s
//	go run ./bench -only operator -tenants 200
//	go run ./bench -only pool -pool-tenants 100
//	go run ./bench -only pool -pool-tenants 50 -pool-cells noisy,throughput -baseline-bin /tmp/userve-main
//
// Every process it starts runs in its own process group with a
// parent-death signal; Ctrl-C stops them all before exiting.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"userve.dev/userve/bench/internal/apibench"
	"userve.dev/userve/bench/internal/migbench"
	"userve.dev/userve/bench/internal/opbench"
	"userve.dev/userve/bench/internal/poolbench"
	"userve.dev/userve/bench/internal/procmon"
	"userve.dev/userve/bench/internal/report"
	"userve.dev/userve/test/testbin"
)

func main() { os.Exit(run()) }

func run() int {
	only := flag.String("only", "all", "which part: all, api, operator, import or pool")
	importUsers := flag.Int("import-users", 100000, "ThinkSNS users for the import part")
	importFollowings := flag.Int("import-followings", 3, "follows per imported user")
	importBalanceEvery := flag.Int("import-balance-every", 100, "every n-th imported user has opening balances")
	importSignups := flag.Int("import-signups", 0, "users created through the API while the import runs; the run fails if any receives an imported follow edge")
	duration := flag.Duration("duration", 4*time.Second, "measured time per load cell")
	warmup := flag.Duration("warmup", time.Second, "warm-up per load cell")
	concurrencies := flag.String("concurrency", "1,8,32", "concurrencies of the API load, comma-separated")
	maxRequests := flag.Int64("max-requests", 200000, "request budget per load cell")
	profiles := flag.Int("profiles", 100000, "profiles to seed")
	groups := flag.Int("groups", 50, "groups to seed")
	logins := flag.Int("login-users", 200, "users with a password, for login")
	endpoints := flag.String("endpoints", "", "API endpoints to run (comma-separated names as in the table); empty: all")
	idle := flag.Duration("idle-wait", 5*time.Second, "how long the idle tenant process sits before its RSS is read")
	tenants := flag.Int("tenants", 1000, "UserServices for the operator part")
	mcr := flag.Int("max-concurrent-reconciles", 32, "the operator's --max-concurrent-reconciles")
	opFlags := flag.String("operator-flags", "", "extra flags for `userve operator`, space-separated")
	opPool := flag.Bool("operator-pool", false, "operator part: place every tenant in one UserServicePool (simulated pool pods, docs/bench.md)")
	opPoolReplicas := flag.Int("operator-pool-replicas", 2, "operator part with -operator-pool: the pool's pods")
	opMemLimit := flag.String("operator-gomemlimit", "", "operator part: GOMEMLIMIT of the operator (what it sets itself, 90% of its container's limit, in a cluster), e.g. 540MiB")
	opProfile := flag.Duration("operator-profile", 0, "operator part: CPU profiles of the operator and kube-apiserver for this long from the first create (0: none)")
	opProfileAfter := flag.Duration("operator-profile-after", 0, "operator part: start the -operator-profile this long after the first create")
	readyTimeout := flag.Duration("ready-timeout", 180*time.Second, "give up waiting for all tenants Ready after this")
	poolTenants := flag.Int("pool-tenants", 1000, "tenants in the pool part's one `userve pool` process")
	poolProfiles := flag.Int("pool-profiles", 5, "profiles seeded per pooled tenant")
	poolIdle := flag.Duration("pool-idle-timeout", 30*time.Second, "the pool's --idle-timeout (evicting every tenant takes this long)")
	poolInFlight := flag.Int("pool-tenant-max-inflight", 32, "the pool's --tenant-max-inflight; the noisy neighbour is driven at it")
	poolProcs := flag.Int("pool-gomaxprocs", 1, "GOMAXPROCS of the pool and of the dedicated server it is compared with")
	poolConcs := flag.String("pool-concurrency", "1,8", "concurrencies of the pool's detail throughput cells")
	poolDuration := flag.Duration("pool-duration", 8*time.Second, "measured time per side of a pool cell")
	poolCold := flag.Int("pool-cold-samples", 500, "evicted tenants activated one at a time for the cold activation latency")
	poolCells := flag.String("pool-cells", "", "pool cells to run, comma-separated: memory, cold, throughput, noisy (empty: all); with -baseline-bin the cold, throughput and noisy cells drive that build's pool too")
	poolGCWait := flag.Duration("pool-gc-wait", 150*time.Second, "after the last eviction, wait at most this long for each of the runtime's own next two GCs (it forces one every 2 minutes)")
	poolFlags := flag.String("pool-flags", "", "extra flags of the measured `userve pool` (not the baseline's), space-separated, e.g. \"--max-executing 4\"")
	out := flag.String("out", "", "results directory (default <repo>/bench/results)")
	userveBin := flag.String("userve-bin", "", "the userve binary to measure (default <repo>/bin/userve), e.g. an older build for before/after")
	baselineBin := flag.String("baseline-bin", "", "another userve build driven in the same cells as bin/userve, for before/after in one run")
	flag.Parse()

	root, err := testbin.Root()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if *out == "" {
		*out = filepath.Join(root, "bench", "results")
	}
	concs, err := parseConcurrencies(*concurrencies)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: -concurrency:", err)
		return 2
	}
	if *only != "all" && *only != "api" && *only != "operator" && *only != "import" && *only != "pool" {
		fmt.Fprintln(os.Stderr, "bench: -only must be all, api, operator, import or pool")
		return 2
	}
	cells, err := poolbench.ParseCells(*poolCells)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: -pool-cells:", err)
		return 2
	}
	poolConcurrencies, err := parseConcurrencies(*poolConcs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: -pool-concurrency:", err)
		return 2
	}
	logDir, err := os.MkdirTemp("", "userve-bench-logs-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	logf := func(format string, args ...any) {
		fmt.Printf("%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}

	// Ctrl-C cancels the run; the parts' deferred stops end their processes.
	// A second Ctrl-C kills whatever is left at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		logf("interrupted: stopping everything the bench started")
		cancel()
		<-sigs
		procmon.StopAll(0)
		os.Exit(130)
	}()
	defer procmon.StopAll(5 * time.Second)

	userve, err := testbin.Path("userve")
	if *userveBin != "" {
		userve, err = *userveBin, nil
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: build it with `make build`:", err)
		return 1
	}
	ferret, err := testbin.Path("ferretdb")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	// The operator part runs on the default path: tenants get database
	// users of their own, which only FerretDB with authentication has.
	ferretAuth, err := testbin.Path("ferretdb-auth")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}

	started := time.Now()
	res := &report.Results{StartedAt: started.UTC().Format(time.RFC3339), Host: host(userve)}
	res.Notes = append(res.Notes, "logs of every process: "+logDir)

	if *only == "all" || *only == "api" {
		api, err := apibench.Run(ctx, apibench.Config{
			UserveBin: userve, BaselineBin: *baselineBin, FerretBin: ferret, MongoURI: os.Getenv("USERVE_BENCH_MONGO_URI"), LogDir: logDir,
			Profiles: *profiles, Groups: *groups, LoginUsers: *logins, Concurrencies: concs,
			Duration: *duration, Warmup: *warmup, MaxRequests: *maxRequests, IdleWait: *idle,
			Endpoints: nameSet(*endpoints), Logf: logf,
		})
		res.API = api
		if err != nil {
			res.Errors = append(res.Errors, "api: "+err.Error())
			logf("api part failed: %v", err)
		}
	}
	if (*only == "all" || *only == "operator") && ctx.Err() == nil {
		op, err := opbench.Run(ctx, opbench.Config{
			UserveBin: userve, FerretBin: ferretAuth, LogDir: logDir, Tenants: *tenants,
			MaxConcurrentReconciles: *mcr, ExtraFlags: strings.Fields(*opFlags), CreateWorkers: 16,
			ReadyTimeout: *readyTimeout, SettleTimeout: 90 * time.Second, Logf: logf,
			Pooled: *opPool, PoolReplicas: *opPoolReplicas, Profile: *opProfile, ProfileAfter: *opProfileAfter, MemoryLimit: *opMemLimit,
		})
		res.Operator = op
		if err != nil {
			res.Errors = append(res.Errors, "operator: "+err.Error())
			logf("operator part failed: %v", err)
		}
	}
	if (*only == "all" || *only == "import") && ctx.Err() == nil {
		imp, err := migbench.Run(ctx, migbench.Config{
			UserveBin: userve, FerretBin: ferret, LogDir: logDir, Users: *importUsers,
			Followings: *importFollowings, BalanceEvery: *importBalanceEvery, Signups: *importSignups, Logf: logf,
		})
		if imp != nil {
			res.Import = imp
		}
		if err != nil {
			res.Errors = append(res.Errors, "import: "+err.Error())
			logf("import part failed: %v", err)
		}
	}
	if (*only == "all" || *only == "pool") && ctx.Err() == nil {
		p, err := poolbench.Run(ctx, poolbench.Config{
			UserveBin: userve, BaselineBin: *baselineBin, FerretBin: ferretAuth, LogDir: logDir, Tenants: *poolTenants, Profiles: *poolProfiles,
			IdleTimeout: *poolIdle, TenantMaxInFlight: *poolInFlight, GOMAXPROCS: *poolProcs,
			Concurrencies: poolConcurrencies, Duration: *poolDuration, ColdSamples: *poolCold, QuietConcurrency: 1,
			GCWait: *poolGCWait, Settle: 10 * time.Second, Cells: cells, PoolFlags: strings.Fields(*poolFlags),
			Logf: logf,
		})
		res.Pool = p
		if err != nil {
			if p != nil {
				p.Error = err.Error()
			}
			res.Errors = append(res.Errors, "pool: "+err.Error())
			logf("pool part failed: %v", err)
		}
	}
	res.Seconds = time.Since(started).Round(time.Second).Seconds()
	res.Targets = report.Judge(res)
	if ctx.Err() != nil {
		logf("interrupted: results not written")
		return 130
	}
	if err := report.Write(*out, res); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	fmt.Println()
	fmt.Print(report.Markdown(res))
	logf("wrote %s and %s", filepath.Join(*out, "latest.json"), filepath.Join(*out, "latest.md"))
	if len(res.Errors) > 0 {
		return 1
	}
	return 0
}

func parseConcurrencies(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func nameSet(s string) map[string]bool {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	m := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		m[strings.TrimSpace(f)] = true
	}
	return m
}

func host(userve string) report.Host {
	h := report.Host{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Binary: userve}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = "Linux " + strings.TrimSpace(string(data))
	}
	return h
}
