package apibench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"userve.dev/userve/bench/internal/load"
	"userve.dev/userve/bench/internal/procmon"
	"userve.dev/userve/bench/internal/report"
)

// profileEndpoint runs a second userve serve with --cpu-profile, drives ep at concurrency conc for
// d (after a short warm-up), and summarizes the CPU profile with pprof.
func profileEndpoint(ctx context.Context, cfg Config, tg *target, ep endpoint, configPath, uri, database string, conc int, d time.Duration) (*report.Profile, error) {
	prof := filepath.Join(cfg.LogDir, strings.NewReplacer(" ", "-", "/", "_", "{", "", "}", "").Replace(ep.name)+".cpu.pprof")
	metricsArgs, err := metricsListenArgs()
	if err != nil {
		return nil, err
	}
	s, err := startServer(ctx, cfg.UserveBin, configPath, uri, database, filepath.Join(cfg.LogDir, "userve-profiled.log"), append(metricsArgs, "--cpu-profile", prof)...)
	if err != nil {
		return nil, err
	}
	pt := tg.at(s.base)
	defer pt.raw.Close()
	op := pt.serverOps()[ep.name]
	before, _ := procmon.Read(s.proc.Pid())
	r := load.Run(ctx, load.Config{Concurrency: conc, Duration: d, Warmup: time.Second, RequestTimeout: requestTimeout}, op)
	after, _ := procmon.Read(s.proc.Pid())
	s.proc.Stop(syscall.SIGTERM, 30*time.Second) // the profile is written on exit
	if r.ErrorRate() > 0.01 {
		return nil, fmt.Errorf("profiling %s: %v", ep.name, r.FirstErr)
	}
	top, err := pprofTop(ctx, prof)
	if err != nil {
		return nil, err
	}
	n := float64(len(r.Latencies))
	return &report.Profile{
		What: fmt.Sprintf("server CPU profile, %s at concurrency %d for %v: %.0f requests, %.3f CPU ms per request (including the warm-up's share of the profile)",
			ep.name, conc, d, n, float64((after.CPU-before.CPU).Microseconds())/1000/max(n, 1)),
		File: prof,
		Top:  top,
	}, nil
}

// pprofTop is `go tool pprof -top` of a CPU profile, the header and the
// heaviest entries by cumulative and by flat time.
func pprofTop(ctx context.Context, path string) ([]string, error) {
	var lines []string
	for _, sortBy := range []string{"-cum", "-flat"} {
		out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", sortBy, "-nodecount=25", path).Output()
		if err != nil {
			return nil, fmt.Errorf("go tool pprof: %w", err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Type:") || strings.HasPrefix(line, "Time:") {
				continue
			}
			lines = append(lines, line)
		}
		lines = append(lines, "")
	}
	return lines, nil
}

// InitTrace is what each package's init costs in the binary a tenant runs,
// the heaviest by allocated bytes, for the idle-RSS analysis: userve-serve
// beside bin when it is there (`userve serve` becomes it), `userve-serve
// --help`; else `userve version`, nothing but the inits of the one binary.
func InitTrace(ctx context.Context, bin string) (*report.Profile, error) {
	cmd := exec.CommandContext(ctx, bin, "version")
	if lean := filepath.Join(filepath.Dir(bin), "userve-serve"); fileExists(lean) {
		cmd = exec.CommandContext(ctx, lean, "--help")
	}
	bin = cmd.Path
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, err
	}
	type entry struct {
		pkg       string
		ms, bytes float64
		line      string
	}
	var entries []entry
	var totalMS, totalBytes float64
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		// init PKG @T ms, C ms clock, B bytes, N allocs
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[0] != "init" {
			continue
		}
		var e entry
		e.pkg, e.line = f[1], sc.Text()
		fmt.Sscanf(f[4], "%g", &e.ms)
		fmt.Sscanf(f[7], "%g", &e.bytes)
		totalMS += e.ms
		totalBytes += e.bytes
		entries = append(entries, e)
	}
	for i := range entries {
		for j := i + 1; j < len(entries); j++ {
			if entries[j].bytes > entries[i].bytes {
				entries[i], entries[j] = entries[j], entries[i]
			}
		}
	}
	top := []string{fmt.Sprintf("%d packages initialized: %.0f ms clock, %.1f MiB allocated in total; heaviest by bytes:", len(entries), totalMS, totalBytes/(1<<20))}
	for i := 0; i < len(entries) && i < 12; i++ {
		top = append(top, fmt.Sprintf("%9.0f KiB %7.1f ms  %s", entries[i].bytes/1024, entries[i].ms, entries[i].pkg))
	}
	return &report.Profile{What: "package initialization of the tenant's binary (GODEBUG=inittrace=1 " + strings.Join(cmd.Args, " ") + ")", File: bin, Top: top}, nil
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
