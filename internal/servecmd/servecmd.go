// Package servecmd is `userve serve`, one tenant's server, as a command:
// flags, configuration, logging, the store and the server's life. Two
// binaries run it: bin/userve (`userve serve`, beside the operator and the
// pool) and bin/userve-serve, which links nothing else, so that a tenant pod
// does not carry the operator's libraries (docs/server.md, "Two binaries").
package servecmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/internal/logbuffer"
	"userve.dev/userve/internal/memrelease"
	"userve.dev/userve/server"
	"userve.dev/userve/server/auth"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/plus"
	"userve.dev/userve/server/store"
)

// TLS roots (HTTPS webhooks, WeChat, SMTP over TLS, MongoDB with tls=true)
// come from the system, read on the first TLS connection: the image holds
// Mozilla's in /etc/ssl/certs/ca-certificates.crt (make image, the
// Dockerfile's base). Embedding them (golang.org/x/crypto/x509roots/fallback,
// as bin/userve does) would parse them at every start, in every tenant,
// whether it makes TLS connections or not: 0.7 MiB of an idle tenant.

// Main is `userve serve` with the process's signals, environment and
// standard streams; it returns the exit code.
func Main(args []string) int {
	// A tenant server waits on MongoDB most of the time, and a platform runs
	// many of them side by side: one P per process spends a quarter less CPU
	// per request than two (fewer cross-thread wake-ups; measured in
	// docs/bench.md). Scale out with replicas; a container given a CPU limit
	// gets GOMAXPROCS from it (controllers/render), which wins.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return Run(ctx, args, os.Getenv, os.Stdout, os.Stderr)
}

// Run parses flags and configuration and runs the server until ctx ends
// (SIGTERM or SIGINT), logging JSON to stdout. A configuration problem is
// one line on stderr and exit code 1; bad flags exit 2.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("userve serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "UserService manifest (YAML or JSON) to serve")
	listen := fs.String("listen", ":8080", "address of the API (the pods' http port)")
	metricsListen := fs.String("metrics-listen", ":9090", "address of /metrics (the pods' metrics port), never served on --listen; empty: no metrics")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile (pprof) of the whole run to this file")
	quietAfter := fs.Duration("release-after-quiet", server.DefaultQuietAfter, "give back the memory a burst of requests needed after this long without requests (probes aside); 0: never")
	checkMemory := fs.String("password-check-memory", "", "memory password checks may hold at once, e.g. 64Mi (default: a quarter of $"+v1alpha1.EnvMemoryLimit+", else 64Mi)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: userve serve --config FILE [--listen ADDR] [--metrics-listen ADDR]\n\nenvironment: %s (required), %s, %s, %s, %s, %s, %s\n\nflags:\n",
			v1alpha1.EnvMongoURI, v1alpha1.EnvMongoDatabase, v1alpha1.EnvAdminTokens, v1alpha1.EnvJWTKey,
			v1alpha1.EnvWebhookSecret, v1alpha1.EnvSMTPPassword, v1alpha1.EnvWeChatSecret)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "userve serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "userve serve: --log-level %q: want debug, info, warn or error\n", *logLevel)
		return 2
	}
	if *quietAfter < 0 {
		fmt.Fprintf(stderr, "userve serve: --release-after-quiet %v: want a duration of 0 (never) or more\n", *quietAfter)
		return 2
	}
	if *metricsListen != "" && *metricsListen == *listen {
		fmt.Fprintf(stderr, "userve serve: --metrics-listen %q must differ from --listen: /metrics is never served with the API\n", *metricsListen)
		return 2
	}
	if *cpuProfile != "" {
		stopProfile, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "userve serve: --cpu-profile: %v\n", err)
			return 1
		}
		defer stopProfile()
	}
	checkBudget, err := PasswordCheckMemory(*checkMemory, getenv(v1alpha1.EnvMemoryLimit))
	if err != nil {
		fmt.Fprintf(stderr, "userve serve: %v\n", err)
		return 2
	}
	cfg, err := config.Load(*configPath, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "userve serve: %v\n", err)
		return 1
	}
	logOut := logbuffer.New(stdout, 100*time.Millisecond)
	defer func() { _ = logOut.Close() }()
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: level})).
		With("tenant", cfg.Issuer)
	slog.SetDefault(log)

	// Connect is lazy: the server starts, answers /healthz and fails /readyz
	// until MongoDB is reachable and the indexes exist.
	st, err := store.Connect(cfg.MongoURI, cfg.Database,
		store.WithLogger(log), store.WithCustomFieldIndexes(cfg.IndexedCustomFields()...))
	if err != nil {
		fmt.Fprintf(stderr, "userve serve: %v\n", err)
		return 1
	}
	defer func() { _ = st.Close(context.Background()) }()

	release := func(what string) func() {
		return func() {
			if err := memrelease.Release(); err != nil {
				log.Warn("releasing memory failed", "after", what, "error", err)
			}
		}
	}
	log.Info("password checks bounded", "memory_bytes", checkBudget, "wait", auth.DefaultCheckWait.String())
	opts := server.Options{Logger: log, Started: release("start-up"), Plus: plus.Options{CheckMemory: checkBudget}}
	if *quietAfter > 0 {
		opts.Quiet, opts.QuietAfter = release("quiet"), *quietAfter
	}
	if err := server.New(cfg, st, opts).Run(ctx, *listen, *metricsListen); err != nil {
		fmt.Fprintf(stderr, "userve serve: %v\n", err)
		return 1
	}
	return 0
}

// PasswordCheckMemory is the budget of concurrent password checks in
// bytes: the flag when given, else a quarter of the container's memory
// limit (64 MiB of the default 256Mi; see auth.DefaultCheckMemory for why
// a quarter), else auth's default.
func PasswordCheckMemory(flagValue, memoryLimit string) (int64, error) {
	if flagValue != "" {
		q, err := resource.ParseQuantity(flagValue)
		if err != nil || q.Value() < 1<<20 {
			return 0, fmt.Errorf("--password-check-memory %q: want a size of at least 1Mi, such as 64Mi", flagValue)
		}
		return q.Value(), nil
	}
	if limit, err := strconv.ParseInt(memoryLimit, 10, 64); err == nil && limit >= 4<<20 {
		return limit / 4, nil
	}
	return auth.DefaultCheckMemory, nil
}

// startCPUProfile profiles until the returned stop runs (make bench profiles
// the server this way, exactly as it runs).
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}
