package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"userve.dev/userve/controllers"
)

// defaultServerImage is the image of this very build, by the name make image
// and the chart use (not a published image: users build or mirror it; the
// chart passes its own image as --server-image): one image serves both
// roles.
func defaultServerImage() string { return "ghcr.io/userve/userve:" + version }

func runOperator(args []string) int {
	fs := flag.NewFlagSet("userve operator", flag.ContinueOnError)
	var (
		o                controllers.Options
		defaultMongo     string
		watchNamespaces  string
		kubeconfig       string
		logLevel         string
		databaseTimeout  time.Duration
		resync, retrying time.Duration
		qps              float64
		burst            int
	)
	fs.StringVar(&o.ServerImage, "server-image", defaultServerImage(), "tenant server image when a UserService sets no spec.image")
	fs.StringVar(&defaultMongo, "default-mongo-uri-secret", "", "NAMESPACE/NAME/KEY of the Secret holding the MongoDB URI of tenants without spec.mongo.uriSecretRef")
	fs.BoolVar(&o.SharedDatabaseCredentials, "shared-database-credentials", false, "copy the default MongoDB URI into tenants' namespaces instead of creating a database user per tenant (only where namespaces trust each other)")
	fs.DurationVar(&o.URISecretGrace, "uri-secret-grace", controllers.DefaultURISecretGrace, "how long a deleted tenant whose MongoDB URI Secret cannot be read waits before it is released without dropping its database")
	fs.StringVar(&watchNamespaces, "watch-namespaces", "", "comma-separated namespaces to reconcile (empty: all)")
	fs.StringVar(&o.PoolNamespace, "pool-namespace", "", "namespace of UserServicePools without spec.namespace (never the operator's own: pool pods read every Secret of theirs); cached even outside --watch-namespaces")
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", 32, "tenants reconciled at once (32 keeps 1,000 new tenants under 60 s to Ready on 2 cores: make bench)")
	fs.BoolVar(&o.LeaderElection, "leader-elect", false, "elect a leader, so that several replicas can run")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: $POD_NAMESPACE)")
	var metricsSecure bool
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":8080", "address of the Prometheus /metrics endpoint (0: off)")
	fs.BoolVar(&metricsSecure, "metrics-secure", true, "serve /metrics over HTTPS to bearer tokens the API server authenticates and authorizes (GET /metrics, the metrics-reader ClusterRole); false: plain HTTP to anyone")
	fs.StringVar(&o.MetricsCertDir, "metrics-cert-dir", "", "directory with tls.crt and tls.key for /metrics (default: a self-signed certificate made at start)")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "address of /healthz and /readyz (0: off)")
	fs.DurationVar(&resync, "resync-interval", 5*time.Minute, "how often a converged tenant is re-checked (database, referenced Secrets)")
	fs.DurationVar(&retrying, "retry-interval", 30*time.Second, "how often a tenant waiting for a Secret or its database is re-checked")
	fs.DurationVar(&databaseTimeout, "database-timeout", 5*time.Second, "timeout of each MongoDB ping and drop")
	fs.Float64Var(&qps, "kube-api-qps", -1, "client-side limit of API requests per second (-1: none, the API server's priority and fairness decides, whichever kubeconfig is used)")
	fs.IntVar(&burst, "kube-api-burst", 0, "client-side burst above --kube-api-qps (with a limit set; 0: client-go's default, 10)")
	fs.StringVar(&o.PprofBindAddress, "pprof-bind-address", "0", "address of Go's /debug/pprof (0: off); for profiling only, never exposed")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config or in-cluster)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "userve operator: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "userve operator: "+format+"\n", a...)
		return 2
	}
	if qps == 0 || qps < -1 {
		return fail("--kube-api-qps must be -1 (no limit) or above 0")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fail("--log-level: %v", err)
	}
	if defaultMongo != "" {
		loc, err := controllers.ParseSecretLocation(defaultMongo)
		if err != nil {
			return fail("--default-mongo-uri-secret: %v", err)
		}
		o.DefaultMongoURISecret = loc
	}
	namespaces, err := controllers.ParseNamespaces(watchNamespaces)
	if err != nil {
		return fail("--watch-namespaces: %v", err)
	}
	o.WatchNamespaces = namespaces
	if o.ServerImage == "" {
		return fail("--server-image must not be empty")
	}
	o.ResyncInterval, o.RetryInterval, o.DatabaseTimeout = resync, retrying, databaseTimeout
	o.MetricsInsecure = !metricsSecure
	if o.MetricsInsecure && o.MetricsCertDir != "" {
		return fail("--metrics-cert-dir needs --metrics-secure")
	}

	if os.Getenv("GOMEMLIMIT") == "" {
		if limit := containerMemoryLimit(os.ReadFile); limit > 0 {
			debug.SetMemoryLimit(limit / 10 * 9)
		}
	}
	log := logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctrl.SetLogger(log)
	klog.SetLogger(log)

	cfg, err := operatorKubeConfig(kubeconfig, qps, burst)
	if err != nil {
		return fail("kubeconfig: %v", err)
	}
	mgr, pool, err := controllers.NewManager(cfg, o)
	if err != nil {
		return fail("%v", err)
	}
	defer pool.Close(context.Background())
	log.Info("starting", "version", version, "serverImage", o.ServerImage, "watchNamespaces", o.WatchNamespaces,
		"defaultMongoURISecret", defaultMongo, "leaderElection", o.LeaderElection, "metricsSecure", metricsSecure)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		fmt.Fprintf(os.Stderr, "userve operator: %v\n", err)
		return 1
	}
	return 0
}

// operatorKubeConfig is the API server's address and credentials. The client-side
// rate limit is set by --kube-api-qps, whichever way the config is found
// (clientcmd alone would leave client-go's 5 requests per second).
func operatorKubeConfig(path string, qps float64, burst int) (*rest.Config, error) {
	cfg, err := kubeConfig(path)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = float32(qps), burst
	return cfg, nil
}

func kubeConfig(path string) (*rest.Config, error) {
	if path != "" {
		return clientcmd.BuildConfigFromFlags("", path)
	}
	return ctrl.GetConfig()
}

// containerMemoryLimit is the memory limit of the operator's container
// (cgroup v2 memory.max, else v1 memory.limit_in_bytes), 0 when there is
// none. The operator gives the Go runtime 90% of it as a soft limit unless
// GOMEMLIMIT says otherwise: its cache grows with the tenants, and by
// default the heap may double its live size before a collection, which
// at 10,000 pooled tenants went past the container's limit before the
// live data did.
func containerMemoryLimit(read func(string) ([]byte, error)) int64 {
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := read(path)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		n, err := strconv.ParseInt(v, 10, 64)
		// "max", or v1's "no limit" (a page-rounded maximum int64).
		if err != nil || n <= 0 || n >= 1<<62 {
			return 0
		}
		return n
	}
	return 0
}
