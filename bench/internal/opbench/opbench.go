// Package opbench is the operator part of `make bench`: a real control plane
// (etcd + kube-apiserver via envtest, CRDs from config/crd/bases), the
// operator as a subprocess (bin/userve operator), 1,000 UserServices, and a
// loop that plays the Deployment controller. It measures the time until all
// are Ready at their current generation, the operator's CPU and peak RSS, the
// API requests per tenant, and the writes of a no-change resync (an operator
// restart, which reconciles every tenant again).
package opbench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/bench/internal/procmon"
	"userve.dev/userve/bench/internal/report"
	"userve.dev/userve/bench/internal/stats"
)

// Config of the operator part.
type Config struct {
	UserveBin               string
	FerretBin               string
	LogDir                  string
	Tenants                 int
	MaxConcurrentReconciles int
	ExtraFlags              []string
	CreateWorkers           int
	ReadyTimeout            time.Duration
	SettleTimeout           time.Duration
	// Pooled places every tenant in one UserServicePool of PoolReplicas
	// simulated pods (poolSim).
	Pooled       bool
	PoolReplicas int
	// MemoryLimit, when set, is the operator's GOMEMLIMIT: what it sets
	// itself (90%) in a container with a memory limit, which the bench's
	// processes do not have.
	MemoryLimit string
	// Profile takes CPU profiles of the operator and kube-apiserver for
	// this long, ProfileAfter after the first create (0: none).
	Profile      time.Duration
	ProfileAfter time.Duration
	Logf         func(format string, args ...any)
}

const (
	namespace      = "userve-bench"
	mongoSecret    = "bench-mongo"
	mongoSecretKey = "uri"
	// quiet is how long the operator must send no request to count as settled.
	quiet = 3 * time.Second
)

// Run runs the part. Figures gathered before a failure are returned with it.
func Run(ctx context.Context, cfg Config) (*report.Operator, error) {
	logf := cfg.Logf
	res := &report.Operator{Tenants: cfg.Tenants, MaxConcurrentReconciles: cfg.MaxConcurrentReconciles, ExtraFlags: cfg.ExtraFlags, GOMEMLIMIT: cfg.MemoryLimit,
		OperatorLog: filepath.Join(cfg.LogDir, "operator.log")}
	if cfg.Pooled {
		res.Pool = &report.OperatorPool{Name: poolName, Replicas: cfg.PoolReplicas,
			Simulation: "bench-side pods, pool EndpointSlice and acknowledgement per pool/ack.go (no pool process)"}
		cfg.ExtraFlags = append(cfg.ExtraFlags, "--pool-namespace="+poolNamespace)
	}

	// The operator pings each tenant's MongoDB for DatabaseReady: one
	// FerretDB (SQLite in memory: no open-file limit) serves all tenants,
	// as one shared MongoDB would.
	store, err := StartFerretInMemory(ctx, cfg.FerretBin, cfg.LogDir, "ferretdb-operator.log")
	if err != nil {
		return nil, err
	}
	defer store.Stop()
	mongoURI := store.URI

	logf("starting etcd + kube-apiserver (envtest) with the CRDs")
	env, err := startControlPlane()
	if err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	defer func() {
		if err := env.stop(); err != nil {
			logf("stopping the control plane: %v", err)
		}
	}()

	ours := NewCounter()
	rc := rest.CopyConfig(env.config)
	rc.QPS, rc.Burst = -1, 0 // the harness must not be the bottleneck
	rc.WrapTransport = ours.Wrap
	cl, err := client.New(rc, client.Options{Scheme: env.scheme})
	if err != nil {
		return nil, err
	}
	httpc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, err
	}
	scrape := func() (Counts, error) { return scrapeAPIServer(ctx, httpc, rc.Host) }

	for _, ns := range []string{namespace, poolNamespace} {
		if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return nil, err
		}
	}
	if err := cl.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: mongoSecret, Namespace: namespace},
		StringData: map[string]string{mongoSecretKey: mongoURI}}); err != nil {
		return nil, err
	}

	c, err := cache.New(rc, cache.Options{Scheme: env.scheme,
		DefaultNamespaces: map[string]cache.Config{namespace: {}, poolNamespace: {}},
		ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: {
			Namespaces: map[string]cache.Config{poolNamespace: {}},
			Label:      labels.SelectorFromSet(labels.Set{v1alpha1.PoolLabel: poolName})}},
	})
	if err != nil {
		return nil, err
	}
	cacheCtx, stopCache := context.WithCancel(ctx)
	defer stopCache()
	loop, err := startReadyLoop(cacheCtx, c, cl, 8)
	if err != nil {
		return nil, err
	}
	if _, err := c.GetInformer(cacheCtx, &v1alpha1.UserService{}); err != nil {
		return nil, err
	}
	var sim *poolSim
	if cfg.Pooled {
		if _, err := c.GetInformer(cacheCtx, &discoveryv1.EndpointSlice{}); err != nil {
			return nil, err
		}
		if sim, err = startPoolSim(cacheCtx, c, cl, cfg.PoolReplicas, max(cfg.Tenants, 1000)); err != nil {
			return nil, err
		}
	}
	go func() { _ = c.Start(cacheCtx) }()
	if !c.WaitForCacheSync(cacheCtx) {
		return nil, errors.New("the bench's cache did not sync")
	}

	op, err := startOperator(ctx, cfg, env.kubeconfig, "operator.log")
	if err != nil {
		return nil, err
	}
	defer op.stop()

	m0, err := scrape()
	if err != nil {
		return nil, err
	}
	h0 := ours.Snapshot()
	c0 := op.clientRequests()
	meter := newCPUMeter(map[string]int{"ferretdb": store.P.Pid(), "operator": op.proc.Pid()})
	cpu0 := meter.read()
	profiled := make(chan []string, 1)
	if cfg.Profile > 0 {
		go func() {
			// At 10,000 tenants the bench's own creates fill the first minute.
			select {
			case <-time.After(cfg.ProfileAfter):
			case <-ctx.Done():
			}
			profiled <- cpuProfiles(ctx, map[string]*http.Client{"kube-apiserver": httpc, "operator": {}},
				map[string]string{"kube-apiserver": strings.TrimRight(rc.Host, "/"), "operator": op.pprofURL}, cfg.Profile, cfg.LogDir)
		}()
	}

	// Create the tenants from several workers, like a GitOps sync would.
	logf("creating %d UserServices (max-concurrent-reconciles=%d)", cfg.Tenants, cfg.MaxConcurrentReconciles)
	start := time.Now()
	pool := ""
	if cfg.Pooled {
		pool = poolName
	}
	if err := createTenants(ctx, cl, cfg.Tenants, cfg.CreateWorkers, pool); err != nil {
		return res, err
	}
	res.CreateSeconds = stats.Round(time.Since(start).Seconds(), 2)
	logf("created in %.1f s; waiting for all to be Ready", res.CreateSeconds)

	ready, readyAt := waitAllReady(ctx, c, cfg.Tenants, start, cfg.ReadyTimeout, logf)
	res.Ready = ready
	res.AllReadySeconds = stats.Round(readyAt.Sub(start).Seconds(), 2)
	if ready < cfg.Tenants {
		res.Error = fmt.Sprintf("only %d of %d tenants Ready after %v (see %s)", ready, cfg.Tenants, cfg.ReadyTimeout, op.proc.LogPath)
		logf("%s", res.Error)
	} else {
		logf("all %d Ready after %.1f s", ready, res.AllReadySeconds)
	}
	op.settle(ctx, cfg.SettleTimeout)
	res.ProcessCPUSeconds = meter.since(cpu0)
	if cfg.Profile > 0 {
		res.Profiles = append(<-profiled, heapProfile(ctx, op.pprofURL, cfg.LogDir)...)
	}

	m1, err := scrape()
	if err != nil {
		return res, err
	}
	h1 := ours.Snapshot()
	if u, err := procmon.Read(op.proc.Pid()); err == nil {
		res.CPUSeconds = stats.Round(u.CPU.Seconds(), 2)
		res.CPUmsPerTenant = stats.Round(float64(u.CPU.Milliseconds())/float64(cfg.Tenants), 2)
		res.PeakRSSMiB = stats.Round(procmon.MiB(u.HWMKiB), 1)
	}
	creation := m1.Diff(m0).Sub(h1.Diff(h0))
	res.CreationRequests = creation
	res.RequestsPerTenant = stats.Round(float64(creation.Total())/float64(cfg.Tenants), 2)
	res.WritesPerTenant = stats.Round(float64(creation.Writes())/float64(cfg.Tenants), 2)
	res.ReadsPerTenant = stats.Round(float64(creation.Reads())/float64(cfg.Tenants), 2)
	if c1 := op.clientRequests(); c1 != nil && c0 != nil {
		res.ClientRequests = map[string]int{}
		for method, v := range c1 {
			if d := int(v - c0[method]); d > 0 {
				res.ClientRequests[method] = d
			}
		}
	}
	logf("creation: %.1f API requests per tenant (%.1f writes, %.1f reads) by the operator; CPU %.1f s, peak RSS %.1f MiB",
		res.RequestsPerTenant, res.WritesPerTenant, res.ReadsPerTenant, res.CPUSeconds, res.PeakRSSMiB)

	if sim != nil && ready > 0 {
		res.Pool.Flips, err = measureFlips(ctx, c, sim, op, scrape, ours, cfg, logf)
		if err != nil {
			return res, err
		}
	}

	// The no-change resync: a restarted operator reconciles every tenant
	// from scratch with nothing to change.
	logf("resync: restarting the operator with nothing changed")
	op.stop()
	loopBefore := loop.count()
	m2, err := scrape()
	if err != nil {
		return res, err
	}
	h2 := ours.Snapshot()
	t0 := time.Now()
	op2, err := startOperator(ctx, cfg, env.kubeconfig, "operator-resync.log")
	if err != nil {
		return res, err
	}
	defer op2.stop()
	reconciled := op2.waitReconciled(ctx, cfg.Tenants, max(cfg.SettleTimeout, cfg.ReadyTimeout))
	op2.settle(ctx, cfg.SettleTimeout)
	settled := time.Since(t0)
	m3, err := scrape()
	if err != nil {
		return res, err
	}
	h3 := ours.Snapshot()
	// Leases are the API server's own heartbeat (the operator runs without
	// leader election), so they are left out.
	resync := m3.Diff(m2).Sub(h3.Diff(h2)).Without("coordination.k8s.io/leases")
	res.Resync = &report.Resync{
		Method:         "operator restart (every tenant reconciled again), API server's lease heartbeats excluded",
		SettleSeconds:  stats.Round(settled.Seconds(), 1),
		Reconciled:     reconciled,
		Writes:         resync.Writes(),
		Reads:          resync.Reads(),
		ByVerbResource: resync,
	}
	if c3 := op2.clientRequests(); c3 != nil {
		res.Resync.ClientRequests = map[string]int{}
		for method, v := range c3 {
			res.Resync.ClientRequests[method] = int(v)
		}
	}
	if u, err := procmon.Read(op2.proc.Pid()); err == nil {
		res.Resync.CPUSeconds = stats.Round(u.CPU.Seconds(), 2)
		res.Resync.PeakRSSMiB = stats.Round(procmon.MiB(u.HWMKiB), 1)
	}
	if n := loop.count() - loopBefore; n > 0 {
		logf("resync: the operator changed %d Deployments so that they needed marking ready again", n)
	}
	logf("resync: %d writes, %d reads in %.1f s", res.Resync.Writes, res.Resync.Reads, res.Resync.SettleSeconds)
	return res, nil
}

func (l *readyLoop) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.updates
}

func createTenants(ctx context.Context, cl client.Client, n, workers int, pool string) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) || ctx.Err() != nil {
					return
				}
				us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("t%05d", i), Namespace: namespace}}
				us.Spec.Pool = pool
				if err := cl.Create(ctx, us); err != nil {
					errs <- fmt.Errorf("create %s: %w", us.Name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// isTenantReady: the Ready condition is True and the status speaks of the
// current generation.
func isTenantReady(us *v1alpha1.UserService) bool {
	if us.Status.ObservedGeneration != us.Generation {
		return false
	}
	c := meta.FindStatusCondition(us.Status.Conditions, "Ready")
	return c != nil && c.Status == metav1.ConditionTrue && (c.ObservedGeneration == 0 || c.ObservedGeneration == us.Generation)
}

// waitAllReady polls the bench's cache (no API requests) until every tenant
// is ready or the timeout passes; it returns how many were and when the last
// one became so.
func waitAllReady(ctx context.Context, c cache.Cache, n int, start time.Time, timeout time.Duration, logf func(string, ...any)) (int, time.Time) {
	deadline := start.Add(timeout)
	lastLog := time.Now()
	for {
		var list v1alpha1.UserServiceList
		ready := 0
		if err := c.List(ctx, &list, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err == nil {
			for i := range list.Items {
				if isTenantReady(&list.Items[i]) {
					ready++
				}
			}
		}
		now := time.Now()
		if ready >= n || now.After(deadline) || ctx.Err() != nil {
			return ready, now
		}
		if now.Sub(lastLog) > 10*time.Second {
			lastLog = now
			logf("  %d of %d Ready after %.0f s", ready, n, now.Sub(start).Seconds())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func scrapeAPIServer(ctx context.Context, c *http.Client, host string) (Counts, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(host, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("API server /metrics: %s", resp.Status)
	}
	return ParseRequestTotals(string(body))
}

// ---- the operator process ---------------------------------------------------

type operator struct {
	proc       *procmon.Process
	pprofURL   string
	metricsURL string
	healthURL  string
	http       *http.Client
}

func startOperator(ctx context.Context, cfg Config, kubeconfig, logName string) (*operator, error) {
	mPort, err := freePort()
	if err != nil {
		return nil, err
	}
	hPort, err := freePort()
	if err != nil {
		return nil, err
	}
	pPort, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"operator",
		"--server-image=userve:bench",
		"--default-mongo-uri-secret=" + namespace + "/" + mongoSecret + "/" + mongoSecretKey,
		"--max-concurrent-reconciles=" + strconv.Itoa(cfg.MaxConcurrentReconciles),
		"--metrics-bind-address=127.0.0.1:" + strconv.Itoa(mPort),
		// The harness reads the operator's own request counts on loopback,
		// without a ServiceAccount token to bring.
		"--metrics-secure=false",
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(hPort),
		"--leader-elect=false",
	}
	if cfg.Profile > 0 {
		// Only then: an older build (-userve-bin) has no such flag.
		args = append(args, "--pprof-bind-address=127.0.0.1:"+strconv.Itoa(pPort))
	}
	args = append(args, cfg.ExtraFlags...)
	cmd := exec.Command(cfg.UserveBin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	if cfg.MemoryLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+cfg.MemoryLimit)
	}
	p, err := procmon.Start("userve operator", cmd, filepath.Join(cfg.LogDir, logName), syscall.SIGKILL)
	if err != nil {
		return nil, err
	}
	o := &operator{proc: p, pprofURL: "http://127.0.0.1:" + strconv.Itoa(pPort),
		metricsURL: "http://127.0.0.1:" + strconv.Itoa(mPort) + "/metrics",
		healthURL:  "http://127.0.0.1:" + strconv.Itoa(hPort) + "/readyz",
		http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the operator's self-signed metrics cert, loopback only
		}}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if exited, err := p.Exited(); exited {
			return nil, fmt.Errorf("userve operator exited at start (%v): %s", err, p.Tail(3000))
		}
		if resp, err := o.http.Get(o.healthURL); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return o, nil
			}
		}
		if time.Now().After(deadline) {
			o.stop()
			return nil, fmt.Errorf("userve operator not ready on %s within 60 s: %s", o.healthURL, p.Tail(3000))
		}
		select {
		case <-ctx.Done():
			o.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (o *operator) stop() { o.proc.Stop(syscall.SIGTERM, 15*time.Second) }

// metrics is the operator's Prometheus text, trying plain HTTP and then
// HTTPS (controller-runtime's secure metrics serving); "" when neither works.
func (o *operator) metrics() string {
	for _, u := range []string{o.metricsURL, "https" + o.metricsURL[len("http"):]} {
		resp, err := o.http.Get(u)
		if err != nil {
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK {
			return string(body)
		}
	}
	return ""
}

// clientRequests is the operator's own count of API requests by HTTP
// method (client-go's rest_client_requests_total), nil without metrics.
func (o *operator) clientRequests() map[string]float64 {
	text := o.metrics()
	if text == "" {
		return nil
	}
	return ParseCounter(text, "rest_client_requests_total", "method")
}

func totalOf(m map[string]float64) float64 {
	t := 0.0
	for _, v := range m {
		t += v
	}
	return t
}

// waitReconciled waits until the operator has reconciled at least n objects
// (controller_runtime_reconcile_total over its controllers), bounded, and
// returns how many it had (-1 without metrics).
func (o *operator) waitReconciled(ctx context.Context, n int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	done := -1
	for time.Now().Before(deadline) && ctx.Err() == nil {
		text := o.metrics()
		if text == "" {
			return -1 // no metrics: settle() alone decides
		}
		if done = int(totalOf(ParseCounter(text, "controller_runtime_reconcile_total", "controller"))); done >= n {
			return done
		}
		time.Sleep(time.Second)
	}
	return done
}

// settle waits until the operator has sent no API request for `quiet`
// (by its own metrics), or a fixed pause without metrics, bounded.
func (o *operator) settle(ctx context.Context, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	last := -1.0
	since := time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		m := o.clientRequests()
		if m == nil {
			time.Sleep(quiet)
			return
		}
		if t := totalOf(m); t != last {
			last, since = t, time.Now()
		} else if time.Since(since) >= quiet {
			return
		}
		// Not more often: the operator's /metrics has a series per tenant.
		time.Sleep(time.Second)
	}
}
