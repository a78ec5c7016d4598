// Package sandbox is `userve-dev` (make dev): a whole userve installation on one
// machine, without containers. It starts etcd and kube-apiserver (bin/,
// data under the state directory), installs the CRD, runs the operator
// in-process, starts FerretDB (or uses a given MongoDB), applies the
// samples, and runs every tenant Deployment as local `userve serve`
// processes (package runtime). It prints how to reach everything, and on
// Ctrl-C stops every process it started.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers"
	"userve.dev/userve/controllers/render"
	"userve.dev/userve/controllers/tenantdb"
	"userve.dev/userve/sandbox/catcher"
	"userve.dev/userve/sandbox/proc"
	"userve.dev/userve/sandbox/runtime"
)

// The default MongoDB URI Secret the operator is pointed at
// (--default-mongo-uri-secret); tenants without spec.mongo use it.
const (
	MongoSecretNamespace = "userve-system"
	MongoSecretName      = "userve-mongo"
	MongoSecretKey       = "uri"
)

// Config is what `userve-dev` was asked for.
type Config struct {
	// StateDir holds everything the sandbox keeps: etcd data, FerretDB's
	// SQLite files, the kubeconfig, logs and one directory per tenant pod.
	StateDir string
	// SamplesDir holds manifests applied at start ("" applies none).
	SamplesDir string
	// CRDDir holds the CRD manifests (config/crd/bases).
	CRDDir string
	// BinDir holds etcd, kube-apiserver and ferretdb-auth (bin/).
	BinDir string
	// MongoURI is a MongoDB to use instead of starting FerretDB.
	MongoURI string
	// Executable is the production userve binary tenant processes run
	// (`userve serve`); required, since the sandbox's own binary is not it.
	Executable string
	// Reset wipes the state directory first.
	Reset bool
	// Verbose copies the operator's and runtime's logs to Out as well.
	Verbose bool
	// WeChatFake is where to serve a fake WeChat API for sample tenants
	// with spec.wechat ("" for none); see wechat.go.
	WeChatFake string
	// Out receives progress and the summary.
	Out io.Writer
}

// Run runs the sandbox until ctx ends, then stops everything it started.
func Run(ctx context.Context, cfg Config) (err error) {
	if err := cfg.complete(); err != nil {
		return err
	}
	p := &printer{out: cfg.Out}
	if cfg.Reset {
		if err := resetState(cfg.StateDir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return err
	}
	unlock, err := lockState(cfg.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	if killed := (proc.Ledger{Path: filepath.Join(cfg.StateDir, "controlplane.pids")}).KillLeftovers(); len(killed) > 0 {
		p.printf("stopped what a killed earlier run left behind: %s\n", strings.Join(killed, ", "))
	}
	logFile, err := openLog(filepath.Join(cfg.StateDir, "sandbox.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	setLoggers(logFile, cfg.Verbose, cfg.Out)

	p.printf("userve-dev: a local userve installation (state in %s)\n", cfg.StateDir)
	var stops []func()
	// Stop in reverse order of start: tenants, operator, MongoDB, control plane.
	defer func() {
		if len(stops) == 0 {
			return
		}
		p.printf("\nstopping: tenant processes, operator, MongoDB, control plane...\n")
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
		p.printf("stopped; nothing left running. State kept in %s (`make dev DEV_FLAGS=--reset` or `make clean` wipes it).\n", cfg.StateDir)
	}()

	step := func(n int, what string) func(string) {
		start := time.Now()
		if cfg.Verbose {
			// Log lines come in between: keep each on its own line.
			p.printf("[%d/6] %s ...\n", n, what)
			return func(result string) {
				p.printf("[%d/6] %s (%.1fs)\n", n, result, time.Since(start).Seconds())
			}
		}
		p.printf("[%d/6] %s ... ", n, what)
		return func(result string) {
			p.printf("%s (%.1fs)\n", result, time.Since(start).Seconds())
		}
	}

	done := step(1, "starting etcd and kube-apiserver, installing the CRDs from "+cfg.CRDDir)
	cp, err := startControlPlane(&cfg)
	if err != nil {
		p.printf("failed\n")
		return err
	}
	stops = append(stops, func() {
		if err := cp.stop(); err != nil {
			p.printf("control plane: %v\n", err)
		}
	})
	kubeconfig := filepath.Join(cfg.StateDir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, cp.config); err != nil {
		return err
	}
	done("ok, " + cp.config.Host)
	if ctx.Err() != nil {
		return nil // interrupted while starting: stop what runs
	}

	c, err := client.New(cp.config, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		return err
	}
	ports, err := proc.OpenPortBook(filepath.Join(cfg.StateDir, "ports.json"), "127.0.0.1")
	if err != nil {
		return err
	}

	mongoURI := cfg.MongoURI
	if mongoURI == "" {
		done = step(2, "starting FerretDB (SQLite in "+filepath.Join(cfg.StateDir, "ferretdb")+")")
		f, err := startFerretDB(&cfg, ports, p.eventf)
		if err != nil {
			p.printf("failed\n")
			return err
		}
		stops = append(stops, f.stop)
		mongoURI = f.uri
		done("ok, " + redactURI(mongoURI) + " (authentication on; password in " + filepath.Join(cfg.StateDir, adminPasswordFile) + ")")
	} else {
		p.printf("[2/6] using the MongoDB at %s\n", redactURI(mongoURI))
	}
	if err := ensureMongoSecret(ctx, c, mongoURI); err != nil {
		return err
	}
	var wx *weChatFake
	if cfg.WeChatFake != "" {
		if wx, err = startWeChatFake(cfg.WeChatFake); err != nil {
			return err
		}
		stops = append(stops, wx.stop)
	}

	done = step(3, "starting the operator")
	stopOperator, err := startOperator(cp.config)
	if err != nil {
		p.printf("failed\n")
		return err
	}
	stops = append(stops, stopOperator)
	done("ok")

	done = step(4, "starting the local runtime (tenant Deployments as local processes)")
	rep := newReporter(p, c, cfg.StateDir)
	stopRuntime, err := startRuntime(cp.config, &cfg, kubeconfig, ports, p, rep)
	if err != nil {
		p.printf("failed\n")
		return err
	}
	stops = append(stops, stopRuntime)
	done("ok")
	if ctx.Err() != nil {
		return nil
	}

	sinks, err := startCatcher(c, ports, p)
	if err != nil {
		return err
	}
	stops = append(stops, func() { _ = sinks.Close() })

	if cfg.SamplesDir == "" {
		p.printf("[5/6] no samples to apply\n")
	} else {
		done = step(5, "applying "+cfg.SamplesDir)
		lines, notes, err := loadAndApply(ctx, c, cfg.SamplesDir, mongoURI, wx, sinks)
		if err != nil {
			p.printf("failed\n")
			return err
		}
		done(fmt.Sprintf("%d objects", len(lines)))
		for _, l := range lines {
			p.printf("      %s\n", l)
		}
		for _, n := range notes {
			p.printf("      note: %s\n", n)
		}
	}

	p.printf("[6/6] ready.\n\n")
	printSummary(p, &cfg, kubeconfig, mongoURI, sinks)
	printWeChatTry(p, wx)
	<-ctx.Done()
	return nil
}

func (cfg *Config) complete() error {
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	for _, d := range []*string{&cfg.StateDir, &cfg.CRDDir, &cfg.BinDir} {
		abs, err := filepath.Abs(*d)
		if err != nil {
			return err
		}
		*d = abs
	}
	if cfg.SamplesDir != "" {
		abs, err := filepath.Abs(cfg.SamplesDir)
		if err != nil {
			return err
		}
		cfg.SamplesDir = abs
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("samples: %w (pass --samples '' to apply none)", err)
		}
	}
	if cfg.Executable == "" {
		return errors.New("no userve binary for the tenants: pass --userve (make dev builds bin/userve)")
	}
	exe, err := filepath.Abs(cfg.Executable)
	if err != nil {
		return err
	}
	if _, err := os.Stat(exe); err != nil {
		return fmt.Errorf("the userve binary for the tenants: %w (run `make build`, or pass --userve)", err)
	}
	cfg.Executable = exe
	if _, err := os.Stat(cfg.CRDDir); err != nil {
		return fmt.Errorf("CRDs: %w (run from the repository root, or pass --crds)", err)
	}
	need := []string{"etcd", "kube-apiserver"}
	if cfg.MongoURI == "" {
		need = append(need, "ferretdb-auth")
	}
	for _, n := range need {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, n)); err != nil {
			return fmt.Errorf("%s is missing: run `make tools` (make dev does), or pass --bin", filepath.Join(cfg.BinDir, n))
		}
	}
	return nil
}

// resetState removes a state directory, refusing anything that does not
// look like one (a typo must not wipe a home directory).
func resetState(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	known := map[string]bool{"etcd": true, "apiserver": true, "ferretdb": true, "pods": true, "kubeconfig": true,
		"ports.json": true, "tenants.json": true, "lock": true, "sandbox.log": true, "etcd.log": true,
		"kube-apiserver.log": true, "ferretdb.log": true, "controlplane.pids": true, "kubeconfig.tmp": true,
		"ports.json.tmp": true, "tenants.json.tmp": true, adminPasswordFile: true, "state.json": true}
	for _, e := range entries {
		if !known[e.Name()] {
			return fmt.Errorf("--reset: %s holds %q, which userve-dev did not make; remove it by hand", dir, e.Name())
		}
	}
	return os.RemoveAll(dir)
}

// lockState makes sure one sandbox at a time uses a state directory.
func lockState(dir string) (func(), error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("another userve-dev (pid %s) is using %s; stop it first, or pass another --state-dir",
			strings.TrimSpace(string(holder)), dir)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("%d\n", os.Getpid())), 0)
	return func() { f.Close() }, nil
}

// setLoggers sends controller-runtime's and client-go's logs to the
// sandbox log (and the terminal too when verbose).
func setLoggers(file *os.File, verbose bool, out io.Writer) {
	var w io.Writer = file
	if verbose {
		w = io.MultiWriter(file, out)
	}
	logger := logr.FromSlogHandler(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
}

func ensureMongoSecret(ctx context.Context, c client.Client, uri string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: MongoSecretNamespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", MongoSecretNamespace, err)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: MongoSecretNamespace, Name: MongoSecretName}}
	_, err := controllerutil.CreateOrUpdate(ctx, c, s, func() error {
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		s.Data[MongoSecretKey] = []byte(uri)
		return nil
	})
	if err != nil {
		return fmt.Errorf("write the MongoDB URI Secret: %w", err)
	}
	return nil
}

// startOperator runs the operator's manager in this process, pointed at
// the sandbox's MongoDB Secret. The image is never pulled: the runtime
// runs this binary instead.
func startOperator(cfg *rest.Config) (func(), error) {
	mgr, pool, err := controllers.NewManager(cfg, controllers.Options{
		ServerImage: "userve:dev",
		DefaultMongoURISecret: &render.SecretLocation{
			Namespace: MongoSecretNamespace, Name: MongoSecretName, Key: MongoSecretKey,
		},
		MetricsBindAddress:     "0",
		HealthProbeBindAddress: "0",
		// Locally, a tenant waiting for a Secret or its database should not
		// wait long.
		RetryInterval: 5 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	return runManager(mgr, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		pool.Close(ctx)
	})
}

// startRuntime runs the local runtime and the garbage collector in a manager
// of their own (the operator's cache sees only its own objects).
func startRuntime(cfg *rest.Config, sc *Config, kubeconfig string, ports *proc.PortBook, p *printer, rep *reporter) (func(), error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  controllers.NewScheme(),
		Metrics: metricsserver.Options{BindAddress: "0"},
	})
	if err != nil {
		return nil, err
	}
	rt, err := runtime.New(runtime.Options{
		Dir:        filepath.Join(sc.StateDir, "pods"),
		Executable: sc.Executable,
		Ports:      ports,
		Logf:       p.eventf,
		OnUpdate:   rep.update,
		Kubeconfig: kubeconfig,
	})
	if err != nil {
		return nil, err
	}
	if err := rt.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&runtime.GarbageCollector{Logf: p.eventf}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&runtime.Autoscaler{Logf: p.eventf}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	watcher := &statusWatcher{client: mgr.GetClient(), p: p, printed: map[types.NamespacedName]string{}}
	if err := ctrl.NewControllerManagedBy(mgr).Named("status-reporter").For(&v1alpha1.UserService{}).Complete(watcher); err != nil {
		return nil, err
	}
	return runManager(mgr, rt.Shutdown)
}

// runManager starts mgr and returns its stop function, which waits for it.
func runManager(mgr ctrl.Manager, after func()) (func(), error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	syncCtx, cancelSync := context.WithTimeout(ctx, time.Minute)
	defer cancelSync()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		cancel()
		err := <-done
		return nil, fmt.Errorf("manager did not start: %v", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
			after()
		})
	}, nil
}

func loadAndApply(ctx context.Context, c client.Client, dir, mongoURI string, wx *weChatFake, sinks *catcher.Catcher) ([]string, []string, error) {
	objs, err := readSamples(dir)
	if err != nil {
		return nil, nil, err
	}
	notes, replaced, err := localizeSecrets(objs, mongoURI)
	if err != nil {
		return nil, nil, err
	}
	pool := tenantdb.New(10 * time.Second)
	defer pool.Close(context.Background())
	users, err := ownSampleUsers(ctx, objs, replaced, mongoURI, pool)
	if err != nil {
		return nil, nil, err
	}
	notes = append(notes, users...)
	if wx != nil {
		more, err := localizeWeChat(objs, wx)
		if err != nil {
			return nil, nil, err
		}
		notes = append(notes, more...)
	}
	deliveryNotes, err := localizeDeliveries(ctx, objs, sinks, (&net.Dialer{}).DialContext)
	if err != nil {
		return nil, nil, err
	}
	notes = append(notes, deliveryNotes...)
	lines, err := applySamples(ctx, c, objs)
	return lines, notes, err
}

// startCatcher runs the webhook and SMTP sinks on remembered loopback ports
// (so a tenant pointed at them keeps working across restarts).
func startCatcher(c client.Reader, ports *proc.PortBook, p *printer) (*catcher.Catcher, error) {
	addr := func(name string) (string, error) {
		port, err := ports.Port(name)
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), err
	}
	webhookAddr, err := addr("catcher-webhook")
	if err != nil {
		return nil, err
	}
	smtpAddr, err := addr("catcher-smtp")
	if err != nil {
		return nil, err
	}
	sinks, err := catcher.Start(catcher.Options{
		WebhookAddr: webhookAddr,
		SMTPAddr:    smtpAddr,
		Directory:   kubeDirectory{c: c},
		Caught:      func(code catcher.Code) { printCode(p, code) },
		Rejected:    func(via, why string) { p.eventf("the sandbox's %s sink refused a delivery: %s", via, why) },
	})
	if err != nil {
		return nil, fmt.Errorf("start the delivery sinks: %w", err)
	}
	return sinks, nil
}

func printSummary(p *printer, cfg *Config, kubeconfig, mongoURI string, sinks *catcher.Catcher) {
	kubectl := filepath.Join(cfg.BinDir, "kubectl")
	if rel, err := filepath.Rel(mustGetwd(), kubectl); err == nil && !strings.HasPrefix(rel, "..") {
		kubectl = rel
	}
	p.printf(`  kubeconfig:   %[1]s
  kubectl:      export KUBECONFIG=%[1]s
                %[2]s get usvc -A          # tenants, Ready, Endpoint
                %[2]s get deploy -A -o custom-columns=NAME:.metadata.name,READY:.status.readyReplicas,URL:.metadata.annotations.userve\.dev/local-url
                %[2]s apply -f my-tenant.yaml  # a new tenant starts here too
  MongoDB:      %[3]s
  tenants:      %[4]s (URLs, tokens, pids), logs in %[5]s/<namespace>/<pod>/log
  sandbox log:  %[6]s (operator, runtime)
  deliveries:   webhook sink %[7]s, SMTP sink %[8]s (codes sent there are printed below)

Tenants appear below as they become ready. Ctrl-C stops everything.

`, kubeconfig, kubectl, redactURI(mongoURI), filepath.Join(cfg.StateDir, "tenants.json"),
		filepath.Join(cfg.StateDir, "pods"), filepath.Join(cfg.StateDir, "sandbox.log"), sinks.WebhookURL, sinks.SMTPAddr())
}

func mustGetwd() string {
	wd, _ := os.Getwd()
	return wd
}

// redactURI hides a password in a MongoDB URI.
func redactURI(uri string) string {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return uri
	}
	at := strings.LastIndexByte(strings.SplitN(rest, "/", 2)[0], '@')
	if at < 0 {
		return uri
	}
	userinfo := rest[:at]
	if user, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
		return scheme + "://" + user + ":***" + rest[at:]
	}
	return uri
}
