package pool

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"userve.dev/userve/server"
	"userve.dev/userve/server/plus"
	"userve.dev/userve/server/store"
)

// instance is one built tenant server: its own store client (connection
// pool), router, limiter, token keys and caches, exactly what `userve
// serve` builds for a dedicated tenant. Nothing in it is shared with
// another tenant but the password-check budget's upper bound.
type instance struct {
	conf    *tenantConf
	store   *store.Store
	handler http.Handler

	// Under the tenant's mu.
	refs     int // requests using it
	lastUsed time.Time
	retired  bool

	stop context.CancelFunc // ends the background work
	done chan struct{}      // closed when the background work ended
}

// activate builds the tenant's server for conf. This file is the one place
// that starts and stops a tenant's server: once server.New owns the
// server-wide duties (indexes, ledger recovery) behind Start and Close,
// start and close below become those two calls.
func (p *Pool) activate(t *tenant, conf *tenantConf) (inst *instance, err error) {
	began := time.Now()
	defer func() {
		// A panic while building (a configuration no test foresaw) fails
		// this tenant's activation, not the process.
		if v := recover(); v != nil {
			p.log.Error("panic building a tenant's server", "tenant", t.name, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			inst, err = nil, fmt.Errorf("building the server failed: %v", v)
		}
		result := "ok"
		if err != nil {
			result = "error"
		}
		p.metrics.activations.WithLabelValues(result).Inc()
		p.metrics.activationSeconds.Observe(time.Since(began).Seconds())
	}()
	cfg := conf.cfg
	log := p.log.With("tenant", t.name)
	st, err := store.Connect(cfg.MongoURI, cfg.Database,
		store.WithLogger(log), store.WithCustomFieldIndexes(cfg.IndexedCustomFields()...))
	if err != nil {
		return nil, err
	}
	srv := server.New(cfg, st, server.Options{Logger: log, HTTP: p.opts.HTTP,
		Plus: plus.Options{CheckMemory: p.tenantCheckMemory, SharedCheckMemory: p.checks}})
	inst = &instance{conf: conf, store: st, handler: srv.Handler(), lastUsed: began}
	if p.opts.TenantHandler != nil {
		inst.handler = p.opts.TenantHandler(t.name, srv)
	}
	inst.start(p.opts.IndexWait, log)
	log.Info("tenant server built", "duration_ms", time.Since(began).Milliseconds(), "store_ready", st.Ready())
	return inst, nil
}

// start creates the store's indexes, waiting for them at most wait (the
// first request waits for them, or it would find the store not ready),
// then keeps retrying in the background while MongoDB is away, and
// finishes wallet movements a crashed process left half-done.
func (inst *instance) start(wait time.Duration, log *slog.Logger) {
	ctx, stop := context.WithCancel(context.Background())
	inst.stop, inst.done = stop, make(chan struct{})
	first, cancel := context.WithTimeout(ctx, wait)
	err := inst.store.EnsureIndexes(first)
	cancel()
	go func() {
		defer close(inst.done)
		delay := 500 * time.Millisecond
		for err != nil {
			log.Warn("creating store indexes failed; retrying", "error", err, "retry_in", delay.String())
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, 15*time.Second)
			err = inst.store.EnsureIndexes(ctx)
		}
		recovery, cancel := context.WithTimeout(ctx, server.LedgerRecoveryTimeout)
		defer cancel()
		if n, err := inst.store.RecoverLedger(recovery, 0); err != nil && ctx.Err() == nil {
			log.Warn("ledger recovery at activation failed; the periodic sweep retries", "error", err, "finished", n)
		}
	}()
}

// closeInstance stops the instance's background work and disconnects its
// store client, in the background (a request that dropped the last
// reference has answered already; Run waits for these on shutdown).
func (p *Pool) closeInstance(inst *instance) {
	if inst == nil {
		return
	}
	p.closing.Add(1)
	go func() {
		defer p.closing.Done()
		inst.stop()
		<-inst.done
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := inst.store.Close(ctx); err != nil {
			p.log.Warn("closing a tenant's store client failed", "error", err)
		}
		p.metrics.closed.Inc()
	}()
}
