package pool

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"time"

	"userve.dev/userve/server"
	"userve.dev/userve/server/plus"
	"userve.dev/userve/server/store"
)

// instance is one built tenant server: its own store client (connection
// pool), limiter, token keys and caches, exactly what `userve serve` builds
// for a dedicated tenant. Nothing in it is shared with another tenant but
// the route table (server.New shares compiled routes, never handlers), the
// password-check budget's upper bound and the egress guard's rules.
type instance struct {
	conf    *tenantConf
	server  *server.Server
	store   *store.Store
	handler http.Handler

	// Under the tenant's mu.
	refs     int // requests using it
	lastUsed time.Time
	retired  bool
	started  bool // its background work was started (start)
}

// activate builds the tenant's server for conf; its background work
// (server.Start) starts once the request that activated it has answered
// (instance.start). This file is the one place that starts and stops a
// tenant's server.
func (p *Pool) activate(t *tenant, conf *tenantConf) (inst *instance, err error) {
	began := time.Now()
	var st *store.Store
	defer func() {
		// A panic while building (a configuration no test foresaw) fails
		// this tenant's activation, not the process.
		if v := recover(); v != nil {
			p.log.Error("panic building a tenant's server", "tenant", t.name, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			inst, err = nil, fmt.Errorf("building the server failed: %v", v)
			if st != nil {
				_ = st.Close(context.Background())
			}
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
	storeOpts := []store.Option{store.WithLogger(log), store.WithSCRAMKeys(t.scramKeys), store.WithIndexMemo(&t.indexMemo),
		store.WithCustomFieldIndexes(cfg.IndexedCustomFields()...)}
	if p.opts.StoreOptions != nil {
		storeOpts = append(storeOpts, p.opts.StoreOptions(t.name)...)
	}
	st, err = store.Connect(cfg.MongoURI, cfg.Database, storeOpts...)
	if err != nil {
		return nil, err
	}
	srv := server.New(cfg, st, server.Options{Logger: log, HTTP: p.opts.HTTP, Egress: p.opts.Egress,
		Plus: plus.Options{CheckMemory: p.tenantCheckMemory, SharedCheckMemory: p.checks}})
	inst = &instance{conf: conf, server: srv, store: st, handler: srv.Handler(), lastUsed: began}
	if p.opts.TenantHandler != nil {
		inst.handler = p.opts.TenantHandler(t.name, srv)
	}
	// The first request waits for the store's unique indexes (at most
	// IndexWait), or it would find the store not ready; Start makes the
	// others after it, and retries all of them in the background when
	// MongoDB is away, as a dedicated server does. Indexes that exist
	// already are only listed (four collections' lists for a cold tenant),
	// and not even that within store.IndexRecheck of the last check.
	first, cancel := context.WithTimeout(context.Background(), p.opts.IndexWait)
	if err := st.EnsureUniqueIndexes(first); err != nil {
		log.Warn("creating store indexes at activation failed; retrying in the background", "error", err)
	}
	cancel()
	log.Info("tenant server built", "duration_ms", time.Since(began).Milliseconds(), "store_ready", st.Ready())
	return inst, nil
}

// start starts the instance's background work (server.Start: ledger
// recovery, audit expiry, the event worker). release calls it once, when
// the first request on the instance gives back its reference: started
// beside that request, these store reads took a connection of their own,
// and every new connection is a SCRAM conversation, which FerretDB answers
// by scanning every stored user. Run after it, they reuse the connection
// the activation opened: one authentication per activation (docs/pools.md,
// "Cold activation").
func (inst *instance) start() { inst.server.Start(context.Background()) }

// closeInstance stops the instance's background work (server.Close) and
// disconnects its store client, in the background (a request that dropped
// the last reference has answered already; Close waits for these).
func (p *Pool) closeInstance(inst *instance) {
	if inst == nil {
		return
	}
	p.closing.Add(1)
	go func() {
		defer p.closing.Done()
		inst.server.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := inst.store.Close(ctx); err != nil {
			p.log.Warn("closing a tenant's store client failed", "error", err)
		}
		p.metrics.closed.Inc()
	}()
}
