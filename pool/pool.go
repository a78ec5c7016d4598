// Package pool is `userve pool`: one process serving many tenants of a
// UserServicePool, each with its own server (server.New) built on its
// first request and closed when idle. It learns its tenants from their
// Secrets in its own namespace (v1alpha1's pool contract, written by the
// operator), routes each request by its Host, and bounds every tenant's
// concurrent requests and password-check memory. docs/pools.md describes
// it.
package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/internal/egress"
	"userve.dev/userve/server"
	"userve.dev/userve/server/account"
	"userve.dev/userve/server/auth"
	"userve.dev/userve/server/hserve"
	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/store"
)

// Defaults of Options.
const (
	DefaultIdleTimeout       = 10 * time.Minute
	DefaultTenantMaxInFlight = 32
	DefaultTopTenants        = 10
	DefaultIndexWait         = 3 * time.Second
)

// Options configure New; zero values take the defaults above.
type Options struct {
	Pool      string // the UserServicePool's name (the Secrets' PoolLabel)
	Namespace string // where the pool runs and its tenants' Secrets are
	// ClusterDomain completes the tenants' Service names (default
	// v1alpha1.DefaultClusterDomain).
	ClusterDomain string
	Logger        *slog.Logger

	// IdleTimeout closes a tenant's server no request used for this long.
	IdleTimeout time.Duration
	// MaxLoaded bounds how many tenants' servers are built at once: an
	// activation beyond it closes the least recently used idle one. 0: no
	// bound but the idle timeout.
	MaxLoaded int
	// TenantMaxInFlight bounds each tenant's concurrent requests, waiting
	// or executing; the excess is answered 503 with Retry-After.
	TenantMaxInFlight int
	// MaxExecuting is how many requests execute at once, all tenants
	// together (admission.go); the others wait for a seat, dispatched
	// fairly between tenants. 0: DefaultMaxExecuting(GOMAXPROCS).
	MaxExecuting int
	// QueueWait bounds a request's wait for a seat (then 503 with
	// Retry-After); SeatLease is how long a request keeps its seat. 0:
	// DefaultQueueWait, DefaultSeatLease.
	QueueWait, SeatLease time.Duration
	// CheckMemory is the pool's password-check budget in bytes (0:
	// auth's default); each tenant may hold a quarter of it
	// (TenantCheckMemory), all of them together no more than it.
	CheckMemory int64
	// TopTenants is how many of the busiest tenants get series of their
	// own (metrics.go); 0 means DefaultTopTenants, negative none.
	TopTenants int
	// IndexWait bounds how long an activation waits for the store's
	// indexes before the request goes on (and is answered 503 if they are
	// not there).
	IndexWait time.Duration
	// HTTP are the listener's deadlines (server.DefaultHTTPTimeouts).
	HTTP server.HTTPTimeouts
	// Egress guards every tenant's outbound calls (docs/pools.md,
	// "Outbound calls"); nil means a guard that allows no private range.
	Egress *egress.Guard
	// PodName is the pool pod's own name ($POD_NAME): the acknowledgement
	// of applied Secrets is written on it. Empty: none is written.
	PodName string

	// StoreOptions are added to each tenant's store options when its
	// server is built (tests: driver monitors counting what an activation
	// sends); nil adds none.
	StoreOptions func(tenant string) []store.Option

	// TenantHandler replaces the handler of a built tenant server (tests:
	// conformance checking, an injected panic); nil serves srv.Handler().
	TenantHandler func(tenant string, srv *server.Server) http.Handler
}

// Pool is the process's tenants and their routing.
type Pool struct {
	opts     Options
	log      *slog.Logger
	metrics  *metrics
	registry *registry
	informer cache.SharedIndexInformer
	handled  cache.ResourceEventHandlerRegistration
	ack      *acknowledger

	checks            *auth.SharedCheckMemory
	tenantCheckMemory int64
	admission         *admission

	closing sync.WaitGroup // instances being closed
	loaded  atomic.Int64   // servers in service (the gauge, readable)
}

// New builds a pool reading its tenants' Secrets through the API server
// at kube. Nothing runs until Start.
func New(kube *rest.Config, opts Options) (*Pool, error) {
	if opts.Pool == "" || opts.Namespace == "" {
		return nil, errors.New("a pool name and a namespace are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ClusterDomain == "" {
		opts.ClusterDomain = v1alpha1.DefaultClusterDomain
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.TenantMaxInFlight <= 0 {
		opts.TenantMaxInFlight = DefaultTenantMaxInFlight
	}
	if opts.TopTenants == 0 {
		opts.TopTenants = DefaultTopTenants
	}
	if opts.IndexWait <= 0 {
		opts.IndexWait = DefaultIndexWait
	}
	if opts.CheckMemory <= 0 {
		opts.CheckMemory = auth.DefaultCheckMemory
	}
	if opts.Egress == nil {
		opts.Egress = egress.New(egress.Options{})
	}
	p := &Pool{opts: opts, log: opts.Logger.With("pool", opts.Pool),
		checks: auth.NewSharedCheckMemory(opts.CheckMemory), tenantCheckMemory: TenantCheckMemory(opts.CheckMemory),
		admission: newAdmission(opts.MaxExecuting, opts.QueueWait, opts.SeatLease)}
	p.opts.MaxExecuting = p.admission.seats
	p.metrics = newMetrics(p, opts.TopTenants)
	p.registry = newRegistry(p.log, p.metrics)

	client, err := corev1client.NewForConfig(kube)
	if err != nil {
		return nil, err
	}
	var pods corev1client.PodInterface
	if opts.PodName != "" {
		pods = client.Pods(opts.Namespace)
	}
	p.ack = newAcknowledger(pods, opts.PodName, p.log)
	// Only this pool's tenants' Secrets, only in its namespace: all the
	// pod's Role grants (get, list, watch on secrets there).
	selector := v1alpha1.PoolLabel + "=" + opts.Pool
	lw := cache.NewFilteredListWatchFromClient(client.RESTClient(), "secrets", opts.Namespace,
		func(o *metav1.ListOptions) { o.LabelSelector = selector })
	p.informer = cache.NewSharedIndexInformer(lw, &corev1.Secret{}, 0, cache.Indexers{})
	// The cache keeps each Secret; the server-side bookkeeping is not
	// worth its memory in a pool of thousands.
	_ = p.informer.SetTransform(func(obj any) (any, error) {
		if s, ok := obj.(*corev1.Secret); ok {
			s.ManagedFields = nil
		}
		return obj, nil
	})
	p.handled, err = p.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.secretChanged(obj) },
		UpdateFunc: func(_, obj any) { p.secretChanged(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if s, ok := obj.(*corev1.Secret); ok {
				p.registry.remove(s.Name)
				p.ack.applied(s.ResourceVersion)
			}
		},
	})
	return p, err
}

// TenantCheckMemory is a tenant's share of the pool's password-check
// budget: a quarter, so that one tenant's burst of logins leaves the
// others three quarters.
func TenantCheckMemory(pool int64) int64 { return max(pool/4, 1<<20) }

func (p *Pool) secretChanged(obj any) {
	if s, ok := obj.(*corev1.Secret); ok {
		p.registry.upsert(p, s)
		p.ack.applied(s.ResourceVersion)
	}
}

// Start runs the Secret informer, the acknowledgement of applied Secrets
// and the idle eviction until ctx ends.
func (p *Pool) Start(ctx context.Context) {
	go p.informer.RunWithContext(ctx)
	go p.ack.run(ctx, p.handled.HasSynced)
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), p.Synced) {
			p.log.Info("tenant Secrets applied: ready", "tenants", len(p.registry.all()))
		}
	}()
	go p.evictLoop(ctx)
}

// Synced reports whether the initial list of tenant Secrets is applied
// and acknowledged on the pod (readiness: the operator sends every pooled
// tenant's traffic to a ready pod).
func (p *Pool) Synced() bool { return p.handled.HasSynced() && p.ack.acknowledged() }

// evictLoop closes idle tenants' servers, checking twice per idle timeout.
func (p *Pool) evictLoop(ctx context.Context) {
	every := min(max(p.opts.IdleTimeout/2, time.Millisecond), 30*time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			p.evictIdle(now)
		}
	}
}

// makeRoom closes least recently used idle servers, other than keep's,
// while more than MaxLoaded are in service. Servers with requests in flight
// are never closed: the bound is exceeded while every server is busy.
func (p *Pool) makeRoom(keep *tenant) {
	for p.opts.MaxLoaded > 0 && p.loaded.Load() > int64(p.opts.MaxLoaded) {
		var oldest *tenant
		var oldestUse time.Time
		for _, t := range p.registry.all() {
			if t == keep {
				continue
			}
			if used, idle := t.idleSince(); idle && (oldest == nil || used.Before(oldestUse)) {
				oldest, oldestUse = t, used
			}
		}
		if oldest == nil || !oldest.evictIdle(oldestUse) {
			return // all busy, or it was just used: the next activation tries again
		}
		p.metrics.evictions.WithLabelValues(evictCapacity).Inc()
	}
}

// evictIdle closes every server idle since before now minus the timeout.
func (p *Pool) evictIdle(now time.Time) {
	for _, t := range p.registry.all() {
		if t.evictIdle(now.Add(-p.opts.IdleTimeout)) {
			p.metrics.evictions.WithLabelValues(evictIdle).Inc()
		}
	}
}

// Run serves the tenants on ln and the pool's metrics on metricsLn (none
// when nil) until ctx ends, then lets requests in flight finish and closes
// every tenant's server.
func (p *Pool) Run(ctx context.Context, ln, metricsLn net.Listener) error {
	p.Start(ctx)
	t, d := p.opts.HTTP, server.DefaultHTTPTimeouts
	pick := func(v, dflt time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return dflt
	}
	errorLog := slog.NewLogLogger(p.log.Handler(), slog.LevelWarn)
	srv := &http.Server{Handler: p, ReadHeaderTimeout: pick(t.ReadHeader, d.ReadHeader), ReadTimeout: pick(t.Read, d.Read),
		WriteTimeout: pick(t.Write, d.Write), IdleTimeout: pick(t.Idle, d.Idle), ErrorLog: errorLog}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	var metricsSrv *http.Server
	if metricsLn != nil {
		metricsSrv = &http.Server{Handler: p.metrics.handler(), ReadHeaderTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, ErrorLog: errorLog}
		go func() {
			if err := metricsSrv.Serve(metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics listener: %w", err)
			}
		}()
	}
	p.log.Info("serving", "addr", ln.Addr().String(), "namespace", p.opts.Namespace,
		"idle_timeout", p.opts.IdleTimeout.String(), "tenant_max_inflight", p.opts.TenantMaxInFlight,
		"max_executing", p.opts.MaxExecuting)
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		p.log.Info("shutting down: finishing in-flight requests", "timeout", server.ShutdownTimeout.String())
		shutdownCtx, cancel := context.WithTimeout(context.Background(), server.ShutdownTimeout)
		err = srv.Shutdown(shutdownCtx)
		cancel()
	}
	_ = srv.Close()
	if metricsSrv != nil {
		_ = metricsSrv.Close()
	}
	p.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Close closes every tenant's server and waits for their store clients to
// disconnect.
func (p *Pool) Close() {
	for _, t := range p.registry.all() {
		t.remove()
	}
	p.closing.Wait()
}

// Metrics serves the pool's /metrics (Run serves it on its own listener).
func (p *Pool) Metrics() http.Handler { return p.metrics.handler() }

// ServeHTTP routes a request to the tenant its Host names. A Host that
// names no tenant gets the pool's /healthz and /readyz (the kubelet's
// probes come by the pod's IP) and 404 elsewhere, in the dialect's error
// shape of the path.
func (p *Pool) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := v1alpha1.NormalizeHost(r.Host)
	t, why := p.registry.lookup(host)
	if t == nil {
		switch r.URL.Path {
		case "/healthz":
			httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
			return
		case "/readyz":
			if !p.Synced() {
				httpx.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "error", "error_msg": "tenant Secrets not applied yet"})
				return
			}
			httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
			return
		}
		p.metrics.rejections.WithLabelValues(why).Inc()
		p.log.Debug("request for no tenant", "host", host, "reason", why, "path", account.LogPath(r.URL.Path))
		server.WriteError(w, r, http.StatusNotFound, fmt.Sprintf("no user service answers to host %q here", host))
		return
	}
	p.serveTenant(w, r, t)
}

// serveTenant serves r on t's server, within t's bound on concurrent
// requests, building the server if it is not.
func (p *Pool) serveTenant(w http.ResponseWriter, r *http.Request, t *tenant) {
	start := time.Now()
	if t.draining.Load() {
		w.Header().Set("Connection", "close")
	}
	sw := &httpx.StatusWriter{ResponseWriter: w}
	dialect := dialectOf(r.URL.Path)
	p.metrics.inFlight.Inc()
	defer func() {
		p.metrics.inFlight.Dec()
		status := sw.Status
		if status == 0 {
			status = http.StatusOK
		}
		p.metrics.requests.WithLabelValues(dialect, statusCode(status)).Inc()
		p.metrics.latency.WithLabelValues(dialect).Observe(time.Since(start).Seconds())
	}()
	if !t.enter(int64(p.opts.TenantMaxInFlight)) {
		p.metrics.rejections.WithLabelValues(reasonTenantBusy).Inc()
		w.Header().Set("Retry-After", "1")
		server.WriteError(sw, r, http.StatusServiceUnavailable,
			fmt.Sprintf("too many requests in progress for this user service (at most %d at once), try again", p.opts.TenantMaxInFlight))
		return
	}
	defer func() { t.leave(sw.Status) }()
	// A seat among the pool's, given fairly between tenants; released
	// however the request ends (a panic included).
	seat, err := p.admission.acquire(r.Context(), t.key)
	p.metrics.queueWait.Observe(time.Since(start).Seconds())
	if err != nil {
		p.waitRefused(sw, r, err)
		return
	}
	defer seat.release()
	// The tenant's server turns its handlers' panics into 500s itself;
	// this catches the rest (a wrapper, the pool's own code), so that a
	// panic fails one request of one tenant.
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			p.metrics.rejections.WithLabelValues(reasonPanic).Inc()
			p.log.Error("panic serving a tenant's request", "tenant", t.name, "path", account.LogPath(r.URL.Path),
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if sw.Status == 0 {
				server.WriteError(sw, r, http.StatusInternalServerError, "internal error")
			}
		}
	}()
	inst, err := t.acquire(r.Context())
	if err != nil {
		p.refuse(sw, r, t, err)
		return
	}
	defer t.release(inst, time.Now())
	inst.handler.ServeHTTP(sw, r)
}

// waitRefused answers a request that got no seat: the queue wait passed,
// or its caller left (who reads no answer).
func (p *Pool) waitRefused(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errQueueWait) {
		p.metrics.rejections.WithLabelValues(reasonQueueWait).Inc()
	}
	w.Header().Set("Retry-After", httpx.RetryAfterSeconds)
	server.WriteError(w, r, http.StatusServiceUnavailable, "the server is busy, try again")
}

// refuse answers a request whose tenant has no server to give it.
func (p *Pool) refuse(w http.ResponseWriter, r *http.Request, t *tenant, err error) {
	var ce *configError
	switch {
	case errors.Is(err, errRemoved):
		p.metrics.rejections.WithLabelValues(reasonUnknownHost).Inc()
		server.WriteError(w, r, http.StatusNotFound, "no user service answers to this host here")
	case errors.As(err, &ce):
		// The reason was logged when the Secret came; callers learn only
		// that the service is unavailable.
		p.metrics.rejections.WithLabelValues(reasonTenantConfig).Inc()
		w.Header().Set("Retry-After", "30")
		server.WriteError(w, r, http.StatusServiceUnavailable, "this user service is not configured correctly; its operator has been told")
	default:
		p.metrics.rejections.WithLabelValues(reasonActivation).Inc()
		if r.Context().Err() == nil { // else the caller left while it was being built
			p.log.Error("tenant server could not be built", "tenant", t.name, "error", err.Error())
		}
		w.Header().Set("Retry-After", httpx.RetryAfterSeconds)
		server.WriteError(w, r, http.StatusServiceUnavailable, "user service unavailable, try again")
	}
}

// dialectOf is the metrics' dialect label of a path.
func dialectOf(path string) string {
	switch {
	case strings.HasPrefix(path, "/api/"):
		return "enduser"
	case path == hserve.Prefix || strings.HasPrefix(path, hserve.Prefix+"/"):
		return "hserve"
	case strings.HasPrefix(path, "/userve/") || strings.HasPrefix(path, "/oserve/"):
		return "management"
	}
	return "other"
}
