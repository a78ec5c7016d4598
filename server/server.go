// Package server is one tenant's HTTP server: the management dialect
// (server/minapp), the end-user dialect (server/plus), the MinApp SDK
// dialect (server/hserve) and the operational endpoints, over one store
// (server/store). routes.go lists every route.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/internal/egress"
	"userve.dev/userve/internal/rawio"
	"userve.dev/userve/server/account"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/hserve"
	"userve.dev/userve/server/minapp"
	"userve.dev/userve/server/plus"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/wechat"
)

// ShutdownTimeout is how long in-flight requests get to finish on SIGTERM;
// below Kubernetes' default 30 s grace period.
const ShutdownTimeout = 25 * time.Second

// LedgerRecoveryTimeout bounds one ledger recovery run (at start, and each
// periodic sweep); what one leaves, the next sweep finishes.
const LedgerRecoveryTimeout = 2 * time.Minute

// Server holds one tenant server's dependencies.
type Server struct {
	cfg     *config.Config
	store   *store.Store
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time

	adminTokens []adminToken

	audit          AuditWriter // the management API's audit log (audit.go)
	auditRetention time.Duration

	minapp *minapp.Handler

	plus        *plus.Handler // nil while the end-user dialect is off
	plusOptions plus.Options
	// accounts are the attempt limits, credentials and codes every
	// end-user dialect shares (one limiter, not a copy per dialect).
	accounts *account.Service

	hserve *hserve.Handler // nil while the MinApp SDK dialect is off
	// plusErr and hserveErr are the dialects' configuration errors:
	// their routes answer 503 (routes.go).
	plusErr, hserveErr error

	// egress guards the tenant's outbound calls (nil: unguarded), its
	// refusals counted on this server's metrics.
	egress *egress.Guard

	// routeHandlers are this server's handlers, in the order of its
	// routes in the shared router (routelist.go).
	routeHandlers []http.Handler
	router        *mux.Router  // the (shared) router, which the console calls in-process
	events        *eventWorker // nil without spec.events.webhook (events.go)
	handler       http.Handler
	timeouts      HTTPTimeouts
	openapi       *openAPIDocs
	started       func()

	// quiet runs when the server has gone quiet (quiet.go); activity
	// counts the starts and ends of the requests that are not probes, busy
	// those running.
	quiet      func()
	quietAfter time.Duration
	activity   atomic.Uint64
	busy       atomic.Int64

	// Background work (background.go): Start runs it, Close stops it.
	ledgerSweep          time.Duration
	startOnce, closeOnce sync.Once
	stopBackground       context.CancelFunc
	background           sync.WaitGroup
}

// Options are the optional dependencies of New.
type Options struct {
	Logger *slog.Logger     // default: slog.Default()
	Now    func() time.Time // default: time.Now
	Plus   plus.Options     // end-user dialect knobs (bcrypt cost, code delivery)
	// Started runs once start-up work is done: the indexes exist and the
	// ledger recovery ran. userve serve releases start-up memory there.
	Started func()
	// Quiet runs each time the server has gone quiet: no request but the
	// probes for QuietAfter (0: DefaultQuietAfter) after one came. userve
	// serve gives back there what the burst needed. Nil: nothing runs.
	Quiet      func()
	QuietAfter time.Duration
	// HTTP are the API listener's connection deadlines; zero fields take
	// DefaultHTTPTimeouts' values.
	HTTP HTTPTimeouts
	// AuditLog wraps the store's audit log writes (default: the store);
	// tests pass one whose writes fail.
	AuditLog func(*store.Store) AuditWriter
	// Egress guards every outbound call of the tenant: the SMS webhook,
	// SMTP, WeChat (unless Plus.WeChatHTTP replaces its client) and event
	// webhooks. Nil lets them go anywhere, as a dedicated tenant's (its
	// NetworkPolicy is the platform's business); a pool always sets one
	// (docs/pools.md, "Outbound calls").
	Egress *egress.Guard
	// LedgerSweep is how often the background work finishes stalled
	// ledger entries and cut-off deletions; 0 means LedgerSweepEvery.
	LedgerSweep time.Duration
	// EventsHTTP sends the events to spec.events.webhook (default: a
	// client through Egress, DefaultEventsTimeout, no redirects); tests
	// pass their receiver's.
	EventsHTTP *http.Client
	// Events tune the event delivery worker (retries, leases; tests).
	Events EventsOptions
}

// HTTPTimeouts are an http.Server's connection deadlines. Every request is
// bounded by them until it has proved an admin token; only then may the
// bulk routes extend them (extendBulk).
type HTTPTimeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// DefaultHTTPTimeouts are the API listener's deadlines: a whole request is
// read within 30 s, and answered within RequestTimeout and 15 s to write.
var DefaultHTTPTimeouts = HTTPTimeouts{
	ReadHeader: 10 * time.Second,
	Read:       30 * time.Second,
	Write:      RequestTimeout + 15*time.Second,
	Idle:       120 * time.Second,
}

// orDefault fills the zero fields from DefaultHTTPTimeouts.
func (t HTTPTimeouts) orDefault() HTTPTimeouts {
	pick := func(v, d time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return d
	}
	d := DefaultHTTPTimeouts
	return HTTPTimeouts{pick(t.ReadHeader, d.ReadHeader), pick(t.Read, d.Read), pick(t.Write, d.Write), pick(t.Idle, d.Idle)}
}

// New builds the server over an opened (or connected) store: both
// end-user dialects, the management dialect and the router. It does no I/O
// and starts nothing (Start does), so a pool may build one per tenant on
// its first request.
func New(cfg *config.Config, st *store.Store, opts Options) *Server {
	s := &Server{cfg: cfg, store: st, log: opts.Logger, now: opts.Now, metrics: newMetrics(), plusOptions: opts.Plus, started: opts.Started,
		timeouts: opts.HTTP.orDefault(), ledgerSweep: opts.LedgerSweep, quiet: opts.Quiet, quietAfter: opts.QuietAfter}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ledgerSweep <= 0 {
		s.ledgerSweep = LedgerSweepEvery
	}
	if s.quietAfter <= 0 {
		s.quietAfter = DefaultQuietAfter
	}
	for _, t := range cfg.AdminTokens {
		s.adminTokens = append(s.adminTokens, adminToken{name: t.Name, token: []byte(t.Token)})
	}
	s.egress = opts.Egress.WithReport(func(e *egress.RefusedError) { s.metrics.domain.EgressRefused(e.Class) })
	s.plusOptions.Metrics = s.metrics.domain
	if s.plusOptions.WeChatHTTP == nil && s.egress != nil {
		s.plusOptions.WeChatHTTP = s.egress.HTTPClient(wechat.DefaultTimeout)
	}
	s.accounts = s.plusOptions.Accounts
	if s.accounts == nil {
		ao := s.plusOptions.AccountOptions()
		ao.Egress = s.egress
		s.accounts = account.New(st, cfg, s.log, ao)
		s.plusOptions.Accounts = s.accounts
	}
	s.audit, s.auditRetention = st, time.Duration(cfg.Spec().API.MinApp.AuditRetentionDays)*24*time.Hour
	if s.auditRetention <= 0 { // a spec that skipped SetDefaults
		s.auditRetention = v1alpha1.DefaultAuditRetentionDays * 24 * time.Hour
	}
	if opts.AuditLog != nil {
		s.audit = opts.AuditLog(st)
	}
	s.events = newEventWorker(s, opts.EventsHTTP, opts.Events)
	s.minapp = minapp.New(st, cfg, s.log)
	s.minapp.Metrics = s.metrics.domain
	s.minapp.Accounts = s.accounts
	s.buildDialects()
	router := s.routes()
	s.router = router
	s.openapi = &openAPIDocs{cfg: cfg, router: router}
	s.handler = s.observe(s.recoverPanics(s.limitBody(noStore(router))))
	return s
}

// buildDialects builds the enabled end-user dialects over the one account
// service. A configuration error (config.Load refuses such a configuration;
// a Server built by hand may have one) is logged and kept: that dialect's
// routes answer 503 instead of the process crashing.
func (s *Server) buildDialects() {
	spec := s.cfg.Spec()
	if v1alpha1.Enabled(spec.API.Plus.Enabled) {
		if s.plus, s.plusErr = plus.New(s.store, s.cfg, s.log, s.plusOptions); s.plusErr != nil {
			s.log.Error("end-user API disabled: bad configuration", "error", s.plusErr)
		}
	}
	if v1alpha1.HServeEnabled(spec) {
		s.hserve, s.hserveErr = hserve.New(s.store, s.cfg, s.accounts, s.log, hserve.Options{
			Now: s.plusOptions.Now, Metrics: s.metrics.domain, WeChatHTTP: s.plusOptions.WeChatHTTP})
		if s.hserveErr != nil {
			s.log.Error("MinApp SDK API disabled: bad configuration", "error", s.hserveErr)
		}
	}
}

// Handler is the whole HTTP surface.
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves the API on addr, and /metrics on metricsAddr unless it is
// empty, until ctx ends, then shuts down gracefully, letting in-flight
// requests finish. It runs the background work (Start) meanwhile and stops
// it (Close) before returning.
func (s *Server) Run(ctx context.Context, addr, metricsAddr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var metricsLn net.Listener
	if metricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", metricsAddr); err != nil {
			ln.Close()
			return fmt.Errorf("metrics listener: %w", err)
		}
	}
	return s.ServeWithMetrics(ctx, ln, metricsLn)
}

// Serve is Run on a listener, without a metrics listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.ServeWithMetrics(ctx, ln, nil)
}

// ServeWithMetrics serves the API on ln and MetricsHandler on metricsLn
// (none when nil) until ctx ends or either server fails.
func (s *Server) ServeWithMetrics(ctx context.Context, ln, metricsLn net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.timeouts.ReadHeader,
		ReadTimeout:       s.timeouts.Read,
		WriteTimeout:      s.timeouts.Write,
		IdleTimeout:       s.timeouts.Idle,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	var metricsSrv *http.Server
	if metricsLn != nil {
		metricsSrv = &http.Server{
			Handler:           s.MetricsHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		}
	}
	s.Start(ctx)
	defer s.Close()

	errc := make(chan error, 1)
	// Raw reads and writes on the API's connections: see internal/rawio.
	go func() { errc <- srv.Serve(rawio.Listener{Listener: ln}) }()
	metricsErrc := make(chan error, 1)
	if metricsSrv != nil {
		go func() { metricsErrc <- metricsSrv.Serve(metricsLn) }()
		s.log.Info("serving", "addr", ln.Addr().String(), "metrics_addr", metricsLn.Addr().String(), "database", s.store.Database())
	} else {
		s.log.Info("serving", "addr", ln.Addr().String(), "database", s.store.Database())
	}
	select {
	case err := <-errc:
		if metricsSrv != nil {
			_ = metricsSrv.Close()
		}
		return err
	case err := <-metricsErrc:
		_ = srv.Close()
		return fmt.Errorf("metrics listener: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing in-flight requests", "timeout", ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if metricsSrv != nil {
		// Scrapes are short; metrics stay readable while requests drain.
		defer func() { _ = metricsSrv.Close() }()
	}
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
