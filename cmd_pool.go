package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/internal/egress"
	"userve.dev/userve/internal/logbuffer"
	"userve.dev/userve/internal/servecmd"
	"userve.dev/userve/pool"
)

// runPool is `userve pool`: many tenants of one UserServicePool in one
// process (docs/pools.md).
func runPool(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return servePool(ctx, args, os.Getenv, os.Stdout, os.Stderr)
}

// servePool parses flags and runs the pool until ctx ends. Bad flags exit
// 2, a problem starting (the API server's address, a busy port) exits 1,
// each with one line on stderr.
func servePool(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("userve pool", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("pool", "", "the UserServicePool this process serves (required)")
	namespace := fs.String("namespace", "", "the pool's namespace, where its tenants' Secrets are (default: $"+v1alpha1.EnvPodNamespace+")")
	listen := fs.String("listen", ":8080", "address of the tenants' APIs")
	metricsListen := fs.String("metrics-listen", ":9090", "address of /metrics, never served on --listen; empty: no metrics")
	idle := fs.Duration("idle-timeout", pool.DefaultIdleTimeout, "close a tenant's server (and its store connections) after this long without a request")
	maxLoaded := fs.Int("max-loaded", 0, "tenants' servers built at once; beyond it the least recently used idle one is closed (0: only --idle-timeout bounds them)")
	maxInFlight := fs.Int("tenant-max-inflight", pool.DefaultTenantMaxInFlight, "concurrent requests per tenant, waiting or executing; more are answered 503 with Retry-After")
	maxExecuting := fs.Int("max-executing", 0, "requests executing at once, all tenants together; the others wait for a seat, given fairly between tenants (0: 4 per GOMAXPROCS)")
	queueWait := fs.Duration("queue-wait", pool.DefaultQueueWait, "longest wait for a seat; then 503 with Retry-After")
	seatLease := fs.Duration("seat-lease", pool.DefaultSeatLease, "a request running longer than this goes on without its seat (a slow store cannot keep the other tenants out)")
	topTenants := fs.Int("metrics-top-tenants", pool.DefaultTopTenants, "how many of the busiest tenants get series of their own; 0: none")
	clusterDomain := fs.String("cluster-domain", v1alpha1.DefaultClusterDomain, "the cluster's DNS domain, for the tenants' Service names")
	checkMemory := fs.String("password-check-memory", "", "memory all tenants' password checks may hold at once, e.g. 256Mi; each tenant a quarter of it (default: a quarter of $"+v1alpha1.EnvMemoryLimit+", else 64Mi)")
	var allowEgress egress.Prefixes
	fs.Var(&allowEgress, "allow-egress", "a range tenants' outbound calls may reach although it is private, loopback, link-local...: CIDR or address, repeatable or comma-separated (docs/pools.md, \"Outbound calls\")")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config or in-cluster)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: userve pool --pool NAME [--namespace NS] [--listen ADDR] [--metrics-listen ADDR]\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usageError := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "userve pool: "+format+"\n", a...)
		return 2
	}
	if *namespace == "" {
		*namespace = getenv(v1alpha1.EnvPodNamespace)
	}
	var level slog.Level
	switch {
	case fs.NArg() > 0:
		return usageError("unexpected argument %q", fs.Arg(0))
	case *name == "":
		return usageError("--pool is required: the UserServicePool this process serves")
	case *namespace == "":
		return usageError("--namespace is required (or $%s, which the pool's pods get from the downward API)", v1alpha1.EnvPodNamespace)
	case *idle <= 0:
		return usageError("--idle-timeout %s: want a positive duration such as 10m", *idle)
	case *maxLoaded < 0:
		return usageError("--max-loaded %d: want 0 (no bound) or more", *maxLoaded)
	case *maxInFlight < 1:
		return usageError("--tenant-max-inflight %d: want at least 1", *maxInFlight)
	case *maxExecuting < 0:
		return usageError("--max-executing %d: want 0 (the default) or more", *maxExecuting)
	case *queueWait <= 0:
		return usageError("--queue-wait %s: want a positive duration such as 5s", *queueWait)
	case *seatLease <= 0:
		return usageError("--seat-lease %s: want a positive duration such as 100ms", *seatLease)
	case *topTenants < 0:
		return usageError("--metrics-top-tenants %d: want 0 or more", *topTenants)
	case *metricsListen != "" && *metricsListen == *listen:
		return usageError("--metrics-listen %q must differ from --listen: /metrics is never served with the API", *metricsListen)
	case level.UnmarshalText([]byte(*logLevel)) != nil:
		return usageError("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	checkBudget, err := servecmd.PasswordCheckMemory(*checkMemory, getenv(v1alpha1.EnvMemoryLimit))
	if err != nil {
		return usageError("%v", err)
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "userve pool: "+format+"\n", a...)
		return 1
	}
	kube, err := kubeConfig(*kubeconfig)
	if err != nil {
		return fail("kubeconfig: %v", err)
	}
	logOut := logbuffer.New(stdout, 100*time.Millisecond)
	defer func() { _ = logOut.Close() }()
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)
	if *topTenants == 0 {
		*topTenants = -1 // pool.Options: negative is none
	}
	p, err := pool.New(kube, pool.Options{Pool: *name, Namespace: *namespace, ClusterDomain: *clusterDomain, Logger: log,
		Egress: egress.New(egress.Options{Allow: allowEgress}), PodName: getenv(v1alpha1.EnvPodName),
		IdleTimeout: *idle, MaxLoaded: *maxLoaded, TenantMaxInFlight: *maxInFlight,
		MaxExecuting: *maxExecuting, QueueWait: *queueWait, SeatLease: *seatLease, CheckMemory: checkBudget, TopTenants: *topTenants})
	if err != nil {
		return fail("%v", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fail("--listen: %v", err)
	}
	var metricsLn net.Listener
	if *metricsListen != "" {
		if metricsLn, err = net.Listen("tcp", *metricsListen); err != nil {
			ln.Close()
			return fail("--metrics-listen: %v", err)
		}
	}
	log.Info("outbound calls guarded", "allowed", allowEgress.String())
	log.Info("password checks bounded", "pool_memory_bytes", checkBudget, "tenant_memory_bytes", pool.TenantCheckMemory(checkBudget))
	if err := p.Run(ctx, ln, metricsLn); err != nil {
		return fail("%v", err)
	}
	return 0
}
