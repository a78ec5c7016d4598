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
	"time"

	"github.com/gorilla/mux"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/account"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/hserve"
	"userve.dev/userve/server/minapp"
	"userve.dev/userve/server/plus"
	"userve.dev/userve/server/store"
)

// ShutdownTimeout is how long in-flight requests get to finish on SIGTERM;
// below Kubernetes' default 30 s grace period.
const ShutdownTimeout = 25 * time.Second

// LedgerRecoveryTimeout bounds the wallet recovery run at start; what it
// leaves is finished by the end-user handlers' periodic sweep.
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

	router *mux.Router  // the routes, which the console calls in-process
	events *eventWorker // nil without spec.events.webhook (events.go)

	handler  http.Handler
	timeouts HTTPTimeouts
	openapi  *openAPIDocs
	started  func()
}

// Options are the optional dependencies of New.
type Options struct {
	Logger *slog.Logger     // default: slog.Default()
	Now    func() time.Time // default: time.Now
	Plus   plus.Options     // end-user dialect knobs (bcrypt cost, code delivery)
	// Started runs once start-up work is done: the indexes exist and the
	// ledger recovery ran. userve serve releases start-up memory there.
	Started func()
	// HTTP are the API listener's connection deadlines; zero fields take
	// DefaultHTTPTimeouts' values.
	HTTP HTTPTimeouts
	// AuditLog wraps the store's audit log writes (default: the store);
	// tests pass one whose writes fail.
	AuditLog func(*store.Store) AuditWriter
	// EventsHTTP sends the events to spec.events.webhook (default:
	// DefaultEventsClient). A shared pool passes its egress-guarded client.
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

// New builds the server over an opened (or connected) store.
func New(cfg *config.Config, st *store.Store, opts Options) *Server {
	s := &Server{cfg: cfg, store: st, log: opts.Logger, now: opts.Now, metrics: newMetrics(), plusOptions: opts.Plus, started: opts.Started,
		timeouts: opts.HTTP.orDefault()}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, t := range cfg.AdminTokens {
		s.adminTokens = append(s.adminTokens, adminToken{name: t.Name, token: []byte(t.Token)})
	}
	s.plusOptions.Metrics = s.metrics.domain
	s.accounts = s.plusOptions.Accounts
	if s.accounts == nil {
		s.accounts = account.New(st, cfg, s.log, s.plusOptions.AccountOptions())
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
	router := s.routes()
	s.router = router
	s.openapi = &openAPIDocs{cfg: cfg, router: router}
	s.handler = s.observe(s.recoverPanics(s.limitBody(noStore(router))))
	return s
}

// Handler is the whole HTTP surface.
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves the API on addr, and /metrics on metricsAddr unless it is
// empty, until ctx ends, then shuts down gracefully, letting in-flight
// requests finish. It also creates the store's indexes in the background
// when they are not there yet, retrying while MongoDB is away, so the process
// starts (and answers /healthz) without a store; then it finishes wallet
// movements a crashed process left half-done.
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
	bg, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	go func() {
		s.ensureIndexes(bg)
		s.recoverLedger(bg)
		s.expireAudit(bg)
		if s.started != nil && s.store.Ready() {
			s.started()
		}
	}()
	// The event worker waits for the store by itself.
	s.StartEvents(bg)
	defer s.StopEvents()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
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

// ensureIndexes retries store.EnsureIndexes with backoff until it succeeds.
func (s *Server) ensureIndexes(ctx context.Context) {
	delay := 500 * time.Millisecond
	for !s.store.Ready() {
		err := s.store.EnsureIndexes(ctx)
		if err == nil {
			s.log.Info("store indexes ready")
			return
		}
		s.log.Warn("creating store indexes failed; retrying", "error", err, "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 15*time.Second)
	}
}

// expireAudit deletes, once at start, the audit entries past retention;
// afterwards about one admin action in fifty does it (store.MaybeExpireAudit).
func (s *Server) expireAudit(ctx context.Context) {
	if !s.store.Ready() {
		return
	}
	n, err := s.store.ExpireAudit(ctx, s.store.Now().Add(-s.auditRetention))
	if err != nil {
		s.log.Warn("audit log expiry at start failed; admin actions retry it", "error", err)
		return
	}
	s.log.Info("audit log expiry at start done", "deleted", n, "retention_days", int(s.auditRetention.Hours()/24))
}

// recoverLedger finishes, once at start, the ledger entries (transfers and
// management adjustments) that a crashed process left half-done, so money
// in flight does not wait for an end-user request to come by. Readiness does
// not wait for it. Entries whose lease still runs belong to a live replica
// (or to the crashed one, until the lease ends) and are left to the
// periodic sweep.
func (s *Server) recoverLedger(ctx context.Context) {
	if !s.store.Ready() {
		return // shutting down before the store was ever ready
	}
	ctx, cancel := context.WithTimeout(ctx, LedgerRecoveryTimeout)
	defer cancel()
	start := time.Now()
	n, err := s.store.RecoverLedger(ctx, 0)
	if err != nil {
		s.log.Warn("ledger recovery at start failed; the periodic sweep retries", "error", err, "finished", n)
		return
	}
	s.log.Info("ledger recovery at start done", "finished", n, "duration_ms", time.Since(start).Milliseconds())
}
