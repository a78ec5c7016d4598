// Package apibench is the tenant API part of `make bench`: it starts a store
// (or uses USERVE_BENCH_MONGO_URI), runs bin/userve serve against it as a
// subprocess, seeds 100,000 users, and drives every endpoint at several
// concurrencies over loopback HTTP, next to the same store work issued
// directly through the Go driver (the ceiling).
package apibench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/crypto/bcrypt"

	"userve.dev/userve/bench/internal/load"
	"userve.dev/userve/bench/internal/pgferret"
	"userve.dev/userve/bench/internal/procmon"
	"userve.dev/userve/bench/internal/report"
	"userve.dev/userve/bench/internal/seed"
	"userve.dev/userve/bench/internal/stats"
	"userve.dev/userve/server/store"
)

// Config of the API part.
type Config struct {
	UserveBin     string
	BaselineBin   string // another build driven in the same cells; "" for none
	FerretBin     string
	MongoURI      string // a MongoDB to use instead of starting PostgreSQL + FerretDB
	LogDir        string
	Profiles      int
	Groups        int
	LoginUsers    int
	Concurrencies []int
	Duration      time.Duration
	Warmup        time.Duration
	MaxRequests   int64
	IdleWait      time.Duration
	// QuietWait is how long the loaded servers sit with only the pod's
	// probes after the cells before their RSS is read (0: long enough for
	// the server to call itself quiet, server.DefaultQuietAfter and a half).
	QuietWait time.Duration
	Endpoints map[string]bool // run only these (by name); empty: all
	Logf      func(format string, args ...any)
}

// Run runs the whole part. A failed endpoint is reported in its cells; only
// a failure to set the stage (store, server, seed) is an error.
func Run(ctx context.Context, cfg Config) (*report.API, error) {
	logf := cfg.Logf
	res := &report.API{Profiles: cfg.Profiles, Groups: cfg.Groups, LoginUsers: cfg.LoginUsers,
		CellSeconds: cfg.Duration.Seconds(), IdleAfterSecs: cfg.IdleWait.Seconds()}

	uri := cfg.MongoURI
	var ferretPid int
	var pg *pgferret.Store
	if uri == "" {
		logf("starting PostgreSQL 15 and FerretDB (postgresql handler)")
		st, err := pgferret.Start(ctx, cfg.FerretBin, cfg.LogDir)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		defer st.Stop()
		uri, ferretPid, pg = st.URI, st.FerretPid(), st
		res.Store = "FerretDB 1.24 (postgresql handler) over a temporary PostgreSQL 15 cluster, loopback"
	} else {
		res.Store = "MongoDB at USERVE_BENCH_MONGO_URI"
	}
	database := fmt.Sprintf("userve_bench_%d", time.Now().Unix())

	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetAppName("userve-bench"))
	if err != nil {
		return nil, err
	}
	defer client.Disconnect(context.Background())
	db := client.Database(database)
	if pg == nil {
		defer func() {
			// A real MongoDB keeps nothing of the run. (The temporary
			// PostgreSQL cluster is deleted whole, and dropping there would
			// wait behind FerretDB's abandoned list scans.)
			dropCtx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			_ = db.Drop(dropCtx)
		}()
	}

	configPath, err := writeManifest(cfg.LogDir)
	if err != nil {
		return nil, err
	}
	logf("starting bin/userve serve (database %s)", database)
	metricsArgs, err := metricsListenArgs()
	if err != nil {
		return nil, err
	}
	srv, err := startServer(ctx, cfg.UserveBin, configPath, uri, database, filepath.Join(cfg.LogDir, "userve-serve.log"), metricsArgs...)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	res.ServerStartSec = stats.Round(srv.started.Seconds(), 2)

	// Every login user shares one hash at the library's default cost, the
	// cost the server hashes with.
	hash, err := bcrypt.GenerateFromPassword([]byte(seed.LoginPassword), bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	gen := seed.New(seed.Config{Profiles: cfg.Profiles, Groups: cfg.Groups, LoginUsers: cfg.LoginUsers,
		Seed: 20250101, PasswordHash: string(hash)})
	logf("seeding %d profiles, %d groups through the driver", cfg.Profiles, cfg.Groups)
	t0 := time.Now()
	lastLog := time.Now()
	if err := gen.Insert(ctx, db, 4, func(done int) {
		if time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			logf("  %d profiles", done)
		}
	}); err != nil {
		return nil, err
	}
	wallets, err := seedWallets(ctx, db, gen)
	if err != nil {
		return nil, err
	}
	res.Wallets = wallets
	if pg != nil {
		indexed, err := pg.IndexEqualityLookups(ctx, database, equalityLookups)
		if err != nil {
			return nil, err
		}
		res.Store += fmt.Sprintf("; GIN indexes for FerretDB's equality pushdown on %d fields (see docs/bench.md)", len(indexed))
	}
	res.SeedSeconds = stats.Round(time.Since(t0).Seconds(), 1)
	logf("seeded in %.1f s", res.SeedSeconds)

	tg := &target{
		base: srv.base, db: db, profiles: int64(cfg.Profiles), logins: int64(cfg.LoginUsers),
		runID: strconv.FormatInt(time.Now().UnixNano(), 36), keys: new(atomic.Int64),
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true, IdleConnTimeout: time.Minute,
		}},
		raw: newRawClient(strings.TrimPrefix(srv.base, "http://"), 256),
	}
	defer tg.raw.Close()
	for id := int64(cfg.LoginUsers) + 1; id <= int64(cfg.Profiles) && len(tg.usernames) < 5000; id++ {
		if name := gen.Profile(id).Username; name != "" {
			tg.usernames = append(tg.usernames, name)
		}
	}
	if err := checkShape(ctx, tg, gen); err != nil {
		return nil, fmt.Errorf("the seeded documents do not read back as seeded (store shape changed?): %w", err)
	}

	var baseline map[string]load.Op
	var baselinePid int
	var baseProc *tenantProc
	if cfg.BaselineBin != "" {
		logf("starting the baseline %s serve", cfg.BaselineBin)
		baseMetrics, err := metricsListenArgs()
		if err != nil {
			return nil, err
		}
		base, err := startServer(ctx, cfg.BaselineBin, configPath, uri, database, filepath.Join(cfg.LogDir, "userve-baseline.log"), baseMetrics...)
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		defer base.stop()
		baseProc = base
		bt := tg.at(base.base)
		defer bt.raw.Close()
		baseline = bt.serverOps()
		baselinePid = base.proc.Pid()
		res.Baseline = cfg.BaselineBin
		if u, p, err := idleRSS(ctx, cfg.BaselineBin, configPath, uri, database, filepath.Join(cfg.LogDir, "userve-baseline-idle.log"), cfg.IdleWait); err == nil {
			res.BaselineIdleRSSMiB = stats.Round(procmon.MiB(u.RSSKiB), 1)
			res.BaselineIdleProbedRSSMiB = stats.Round(procmon.MiB(p.RSSKiB), 1)
		}
	}

	logf("idle RSS: a fresh tenant process, %v after /readyz", cfg.IdleWait)
	if u, p, err := idleRSS(ctx, cfg.UserveBin, configPath, uri, database, filepath.Join(cfg.LogDir, "userve-idle.log"), cfg.IdleWait); err != nil {
		logf("idle RSS: %v", err)
	} else {
		res.IdleRSSMiB = stats.Round(procmon.MiB(u.RSSKiB), 1)
		res.IdleAnonMiB = stats.Round(procmon.MiB(u.AnonKiB), 1)
		res.IdleFileMiB = stats.Round(procmon.MiB(u.FileKiB), 1)
		res.IdleProbedRSSMiB = stats.Round(procmon.MiB(p.RSSKiB), 1)
		logf("idle RSS %.1f MiB (%.1f anonymous, %.1f mapped executable); %.1f MiB right after the pod's probes (%.1f anonymous, %.1f mapped executable)",
			res.IdleRSSMiB, res.IdleAnonMiB, res.IdleFileMiB, res.IdleProbedRSSMiB, procmon.MiB(p.AnonKiB), procmon.MiB(p.FileKiB))
	}

	// Store-bound queries last (see endpoint.storeBound), after the
	// profiles of missed targets, which need a store at rest too.
	var fast, storeBound []endpoint
	for _, ep := range tg.endpoints() {
		if len(cfg.Endpoints) > 0 && !cfg.Endpoints[ep.name] {
			continue
		}
		if ep.storeBound {
			storeBound = append(storeBound, ep)
		} else {
			fast = append(fast, ep)
		}
	}
	for i, ep := range append(fast, storeBound...) {
		if i == len(fast) && ctx.Err() == nil {
			profileMisses(ctx, cfg, res, tg, configPath, uri, database)
		}
		skip := ""
		var se *statusError
		t0 := time.Now()
		err := preflight(ctx, tg, ep)
		// A failed (5xx, timeout) or very slow first request marks a
		// store-bound query; a merely slowish one is a busy machine.
		slow := err != nil || time.Since(t0) > 2*slowRequest
		if errors.As(err, &se) && se.got < 500 {
			skip = "preflight: " + err.Error() // a missing route or a refused request: nothing to measure
		}
		for i, conc := range cfg.Concurrencies {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			cell := report.Cell{Endpoint: ep.name, Request: ep.request, DriverQuery: ep.driverQuery, Concurrency: conc}
			if skip != "" {
				cell.Error = skip
				res.Cells = append(res.Cells, cell)
				continue
			}
			cellCfg := cfg
			if slow {
				// One request per side is all a store-bound query gets: it
				// shows the latency without holding the run for minutes.
				cellCfg.Warmup, cellCfg.MaxRequests = 0, 1
			}
			var other *side
			if baseline != nil {
				other = &side{op: baseline[ep.name], pid: baselinePid}
			}
			runCell(ctx, cellCfg, &cell, ep, srv.proc.Pid(), ferretPid, other)
			logf("  %-26s c=%-2d server %7.1f req/s p50 %8.2f ms p99 %8.2f ms cpu %.3f ms/req | driver %7.1f req/s p50 %8.2f ms | ratio %.2f %s",
				ep.name, conc, cell.Server.RPS, cell.Server.P50ms, cell.Server.P99ms, cell.CPUmsPerReq,
				driverRPS(cell), driverP50(cell), cell.Ratio, cell.Error)
			res.Cells = append(res.Cells, cell)
			if i == 0 {
				skip = tooSlowToContinue(cell)
				if slow && skip == "" {
					skip = "not run: the first request failed or took over 4 s; see concurrency 1"
				}
			}
		}
	}
	if len(storeBound) == 0 && ctx.Err() == nil {
		profileMisses(ctx, cfg, res, tg, configPath, uri, database)
	}
	if ctx.Err() == nil {
		measureQuiet(ctx, cfg, res, srv, baseProc)
	}
	return res, nil
}

// profileMisses profiles what missed a target: the server's CPU on detail
// (pprof, in a separate server process) and the idle memory (package inits).
func profileMisses(ctx context.Context, cfg Config, res *report.API, tg *target, configPath, uri, database string) {
	// Profile detail at the concurrency that missed worst: the highest CPU
	// per request if that target was missed, else the lowest ratio.
	var worst *report.Cell
	for i := range res.Cells {
		c := &res.Cells[i]
		if c.Endpoint != report.EndpointDetail || c.Error != "" {
			continue
		}
		cpuMiss := c.CPUmsPerReq > report.MaxDetailCPUms
		ratioMiss := c.Driver != nil && c.Ratio < report.MinThroughputRatio
		switch {
		case !cpuMiss && !ratioMiss:
		case worst == nil,
			cpuMiss && c.CPUmsPerReq > worst.CPUmsPerReq,
			!cpuMiss && worst.CPUmsPerReq <= report.MaxDetailCPUms && c.Ratio < worst.Ratio:
			worst = c
		}
	}
	if worst != nil {
		for _, ep := range tg.endpoints() {
			if ep.name != report.EndpointDetail {
				continue
			}
			cfg.Logf("profiling the server on %s at concurrency %d (a target was missed)", ep.name, worst.Concurrency)
			p, err := profileEndpoint(ctx, cfg, tg, ep, configPath, uri, database, worst.Concurrency, max(cfg.Duration, 10*time.Second))
			if err != nil {
				cfg.Logf("profile: %v", err)
				continue
			}
			res.Analyses = append(res.Analyses, *p)
		}
	}
	if res.IdleRSSMiB >= report.MaxIdleRSSMiB {
		cfg.Logf("tracing package initialization (idle RSS target missed)")
		if p, err := InitTrace(ctx, cfg.UserveBin); err == nil {
			res.Analyses = append(res.Analyses, *p)
		} else {
			cfg.Logf("init trace: %v", err)
		}
	}
}

// slowRequest is the single-request latency above which an endpoint is not
// driven at higher concurrencies: the requests would only queue behind the
// store, and the cell would outlast the run's time budget.
const slowRequest = 2 * time.Second

// requestTimeout bounds every request of a cell, through the server or not.
const requestTimeout = 20 * time.Second

// tooSlowToContinue says why the higher concurrencies of an endpoint are not
// run after its first cell, or "".
func tooSlowToContinue(c report.Cell) string {
	slowest := max(c.Server.P50ms, driverP50(c))
	switch {
	case slowest > float64(slowRequest/time.Millisecond):
		server := fmt.Sprintf("takes %.1f s through the server", c.Server.P50ms/1000)
		if c.Server.Requests == 0 {
			server = "fails through the server (see concurrency 1)"
		}
		return fmt.Sprintf("not run: at concurrency %d one request %s and takes %.1f s directly "+
			"(the store answers this query by decoding every document); higher concurrencies would only queue", c.Concurrency,
			server, driverP50(c)/1000)
	case c.Error != "":
		return fmt.Sprintf("not run: concurrency %d failed (%s)", c.Concurrency, c.Error)
	}
	return ""
}

func driverP50(c report.Cell) float64 {
	if c.Driver == nil {
		return 0
	}
	return c.Driver.P50ms
}

func driverRPS(c report.Cell) float64 {
	if c.Driver == nil {
		return 0
	}
	return c.Driver.RPS
}

// rounds is how many alternating slices of server and driver load make a
// cell: both sides then see the same background load of a shared machine,
// which is what makes their ratio meaningful.
const rounds = 4

// side is a second server build driven in the same cell (the baseline).
type side struct {
	op  load.Op
	pid int
}

// runCell measures ep through the server, through the baseline build if
// there is one, and directly, at one concurrency, in alternating slices.
func runCell(ctx context.Context, cfg Config, cell *report.Cell, ep endpoint, serverPid, ferretPid int, baseline *side) {
	slice := load.Config{Concurrency: cell.Concurrency, Duration: cfg.Duration / rounds, RequestTimeout: requestTimeout}
	if cfg.MaxRequests > 0 {
		slice.MaxRequests = max(1, cfg.MaxRequests/rounds)
	}
	n := rounds
	if cfg.MaxRequests == 1 {
		n = 1 // a single-request probe
	}
	if cfg.Warmup > 0 {
		warm := load.Config{Concurrency: cell.Concurrency, Duration: cfg.Warmup, RequestTimeout: requestTimeout}
		load.Run(ctx, warm, ep.server)
		if baseline != nil {
			load.Run(ctx, warm, baseline.op)
		}
		if ep.driver != nil {
			load.Run(ctx, warm, ep.driver)
		}
	}
	_ = procmon.ResetPeak(serverPid) // per-cell peak; without permission the peak is since start
	if baseline != nil {
		_ = procmon.ResetPeak(baseline.pid)
	}
	var server, base, driver sideRun
	probe := n == 1
	for i := 0; i < n && ctx.Err() == nil; i++ {
		after, err := server.run(ctx, slice, ep.server, serverPid, ferretPid, probe)
		if err != nil {
			cell.Error = "server gone: " + err.Error()
			return
		}
		cell.PeakRSSMiB = max(cell.PeakRSSMiB, stats.Round(procmon.MiB(after.HWMKiB), 1))
		if baseline != nil {
			if after, err := base.run(ctx, slice, baseline.op, baseline.pid, ferretPid, probe); err == nil {
				cell.BaselinePeakRSSMiB = max(cell.BaselinePeakRSSMiB, stats.Round(procmon.MiB(after.HWMKiB), 1))
			}
		}
		if ep.driver != nil {
			_, _ = driver.run(ctx, slice, ep.driver, os.Getpid(), ferretPid, probe)
		}
	}
	cell.Server = server.res.Summary()
	cell.CPUmsPerReq = server.cpuPerRequest()
	if ferretPid != 0 {
		cell.StoreCPUmsPerReq = msPerRequest(server.store, server.res)
	}
	if baseline != nil {
		bs := base.res.Summary()
		cell.Baseline = &bs
		cell.VsBaseline = stats.Ratio(cell.Server.RPS, bs.RPS)
		cell.BaselineCPUmsPerReq = base.cpuPerRequest()
	}
	if rate := server.res.ErrorRate(); rate > 0.01 {
		cell.Error = fmt.Sprintf("%.1f%% of requests failed (slowest after %.1f s): %v", 100*rate,
			server.res.SlowestFailure.Seconds(), server.res.FirstErr)
	}
	if ep.driver == nil {
		return
	}
	ds := driver.res.Summary()
	cell.Driver = &ds
	cell.Ratio = stats.Ratio(cell.Server.RPS, ds.RPS)
	cell.DriverCPUmsPerReq = driver.cpuPerRequest()
	if rate := driver.res.ErrorRate(); rate > 0.01 {
		msg := fmt.Sprintf("driver: %.1f%% failed (slowest after %.1f s): %v", 100*rate,
			driver.res.SlowestFailure.Seconds(), driver.res.FirstErr)
		if cell.Error != "" {
			msg = cell.Error + "; " + msg
		}
		cell.Error = msg
	}
}

// sideRun adds up one side of a cell: its requests, the CPU its process
// spent on them, and the store's CPU meanwhile.
type sideRun struct {
	res        load.Result
	cpu, store time.Duration
}

// run drives one slice of op, first waiting for an idle store when the
// cell is a single-request probe (see waitStoreIdle).
func (s *sideRun) run(ctx context.Context, cfg load.Config, op load.Op, pid, ferretPid int, probe bool) (procmon.Usage, error) {
	if probe {
		waitStoreIdle(ctx, ferretPid, storeIdleWait)
	}
	before, err := procmon.Read(pid)
	if err != nil {
		return procmon.Usage{}, err
	}
	storeBefore, _ := readIf(ferretPid)
	merge(&s.res, load.Run(ctx, cfg, op))
	after, err := procmon.Read(pid)
	if err != nil {
		return procmon.Usage{}, err
	}
	storeAfter, _ := readIf(ferretPid)
	s.cpu += after.CPU - before.CPU
	s.store += storeAfter.CPU - storeBefore.CPU
	return after, nil
}

func (s *sideRun) cpuPerRequest() float64 { return msPerRequest(s.cpu, s.res) }

// msPerRequest is CPU milliseconds per issued request (0 without requests).
func msPerRequest(cpu time.Duration, r load.Result) float64 {
	issued := float64(len(r.Latencies)) + float64(r.Errors)
	if issued == 0 {
		return 0
	}
	return stats.Round(float64(cpu)/float64(time.Millisecond)/issued, 3)
}

// storeIdleWait bounds waitStoreIdle.
const storeIdleWait = 60 * time.Second

// waitStoreIdle waits, at most limit, until FerretDB has used under 5% of a
// core for half a second. A store-bound query whose client gave up (the
// server's 503 after 5 s) keeps FerretDB decoding for seconds more, and the
// next single-request probe would pay for it.
func waitStoreIdle(ctx context.Context, pid int, limit time.Duration) {
	if pid == 0 {
		return
	}
	const window = 500 * time.Millisecond
	for deadline := time.Now().Add(limit); time.Now().Before(deadline) && ctx.Err() == nil; {
		before, err := procmon.Read(pid)
		if err != nil {
			return
		}
		time.Sleep(window)
		after, err := procmon.Read(pid)
		if err != nil || after.CPU-before.CPU < window/20 {
			return
		}
	}
}

// merge adds a slice's result to a cell's.
func merge(into *load.Result, r load.Result) {
	into.Latencies = append(into.Latencies, r.Latencies...)
	into.Errors += r.Errors
	into.Elapsed += r.Elapsed
	into.SlowestFailure = max(into.SlowestFailure, r.SlowestFailure)
	if into.FirstErr == nil {
		into.FirstErr = r.FirstErr
	}
}

func readIf(pid int) (procmon.Usage, error) {
	if pid == 0 {
		return procmon.Usage{}, nil
	}
	return procmon.Read(pid)
}

// preflight sends one request through the server, so a missing route fails
// fast with its message instead of a cell of errors.
func preflight(ctx context.Context, t *target, ep endpoint) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	return ep.server(ctx, 0, 1)
}

// checkShape reads seeded users back through the API and compares them with
// the generator, and checks the list filter matches what the driver counts.
func checkShape(ctx context.Context, t *target, gen *seed.Gen) error {
	for _, id := range []int64{1, 4242, t.profiles} {
		body, err := t.fetch(ctx, http.MethodGet, fmt.Sprintf("/userve/v2.0/miniapp/user_profile/%d/", id), nil, "Bearer "+adminToken, http.StatusOK, true)
		if err != nil {
			return err
		}
		var got struct {
			UserID   int64  `json:"user_id"`
			Nickname string `json:"nickname"`
			OpenID   string `json:"openid"`
			Gender   int64  `json:"gender"`
			Created  int64  `json:"created_at"`
			Level    *int64 `json:"level"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			return fmt.Errorf("detail %d: %w: %s", id, err, body)
		}
		want := gen.Profile(id)
		if got.UserID != id || got.Nickname != want.Nickname || got.OpenID != want.OpenID ||
			got.Gender != want.Gender || got.Created != want.Created.Unix() || got.Level == nil || *got.Level != want.Custom["level"] {
			return fmt.Errorf("detail %d reads %s; seeded nickname=%q openid=%q gender=%d created_at=%d level=%v",
				id, body, want.Nickname, want.OpenID, want.Gender, want.Created.Unix(), want.Custom["level"])
		}
	}
	// The list by openid is answered from an index even on FerretDB (the
	// seed's filters decode every document there, see tooSlowToContinue).
	body, err := t.fetch(ctx, http.MethodGet, "/userve/v2.0/miniapp/user_profile/?openid="+url.QueryEscape(seed.OpenID(4242)),
		nil, "Bearer "+adminToken, http.StatusOK, true)
	if err != nil {
		return err
	}
	var list struct {
		Meta struct {
			TotalCount int64 `json:"total_count"`
		} `json:"meta"`
		Objects []struct {
			UserID int64 `json:"user_id"`
		} `json:"objects"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	if list.Meta.TotalCount != 1 || len(list.Objects) != 1 || list.Objects[0].UserID != 4242 {
		return fmt.Errorf("list by user 4242's openid answers %s", body)
	}
	return nil
}

// equalityLookups are the fields the endpoints look documents up by
// (besides _id), indexed in PostgreSQL for FerretDB's pushdown.
var equalityLookups = map[string][]string{
	store.ColProfiles: {store.FieldUsername, store.FieldEmail, store.FieldPhone, store.FieldOpenID},
	store.ColWallets:  {"user_id", "step"},
	store.ColLedger:   {"idempotency_key"},
}

// seedWallets funds every fifth user (see seed.HasWallet).
func seedWallets(ctx context.Context, db *mongo.Database, gen *seed.Gen) (int, error) {
	return gen.InsertWallets(ctx, db)
}
