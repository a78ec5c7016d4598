package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"userve.dev/userve/server/store"
)

// A tenant is one pooled UserService, known from its Secret whether or not
// its server is built. Its server (an instance) is built by the first
// request that needs it, shared by the requests that follow, and closed
// once no request has used it for the idle timeout, or when the tenant's
// configuration changes or its Secret goes.
//
// Every change of live, building, refs and retired happens under mu, so a
// request either takes a reference on the live instance before it is
// retired, or finds none and builds (or waits for) a new one: a request
// never reaches a closed server. The instance is closed by whoever drops
// the last reference of a retired instance, outside mu.
type tenant struct {
	key  string // the Secret's name in the pool's namespace
	name string // "<namespace>/<name>": logs and metrics
	pool *Pool

	mu       sync.Mutex
	conf     *tenantConf
	live     *instance   // the server requests are given; nil when none is built
	building *activation // the build in progress, which other requests wait for
	removed  bool        // the Secret is gone

	// scramKeys carry its store clients' authenticator, and the keys
	// derived from its password, from one activation to the next; made
	// with the tenant (see newTenant).
	scramKeys *store.SCRAMKeys
	// indexMemo carries the verification of its store indexes from one
	// activation to the next: a cold activation within store.IndexRecheck
	// of the last check lists no index (docs/pools.md, "Cold activation").
	indexMemo store.IndexMemo

	// The registry's, under its lock.
	hosts   []string // the hosts it claims
	invalid bool     // its configuration is broken

	// draining: the tenant is moving out and its Service no longer points
	// here (v1alpha1.PoolTenantDrainingAnnotation): each response closes
	// its connection, so that the client reconnects to the tenant's own pods.
	draining atomic.Bool

	inFlight atomic.Int64  // requests being served, against --tenant-max-inflight
	requests atomic.Uint64 // answered, for the busiest-tenant metrics
	errors5  atomic.Uint64 // answered 5xx
}

// newTenant makes a tenant known by its Secret's name. What it keeps
// across activations is made here, with it, and not by an activation: an
// object that outlives an activation, allocated among the activation's
// short-lived ones, keeps their heap span in use after they are freed
// (about 18 KiB of heap per evicted tenant when the SCRAM keys were made
// by the first activation; docs/bench.md).
func newTenant(p *Pool, key, name string) *tenant {
	return &tenant{key: key, name: name, pool: p, scramKeys: store.NewSCRAMKeys()}
}

// activation is one build of a tenant's server, which requests arriving
// during it wait for instead of building their own.
type activation struct {
	done chan struct{}
	err  error
}

// errRemoved is a request that found its tenant after its Secret went.
var errRemoved = errors.New("the user service left this pool")

// configError is a tenant whose Secret gives no usable configuration.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }

// acquire returns the tenant's live server, building it if there is none,
// with a reference the caller gives back with release. Requests that come
// while a build runs wait for it (or for ctx): thirty parallel first
// requests build one server.
func (t *tenant) acquire(ctx context.Context) (*instance, error) {
	for {
		t.mu.Lock()
		if t.removed {
			t.mu.Unlock()
			return nil, errRemoved
		}
		conf := t.conf
		if conf.err != nil {
			t.mu.Unlock()
			return nil, &configError{conf.err}
		}
		if inst := t.live; inst != nil {
			inst.refs++
			t.mu.Unlock()
			return inst, nil
		}
		if a := t.building; a != nil {
			t.mu.Unlock()
			select {
			case <-a.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if a.err != nil {
				return nil, a.err
			}
			continue // take a reference under the lock, as any request
		}
		a := &activation{done: make(chan struct{})}
		t.building = a
		t.mu.Unlock()

		inst, err := t.pool.activate(t, conf)

		t.mu.Lock()
		t.building = nil
		if err == nil && (t.conf != conf || t.removed) {
			// The configuration changed (or the Secret went) during the
			// build: this server is already stale.
			t.mu.Unlock()
			t.pool.closeInstance(inst)
			close(a.done)
			continue
		}
		if err == nil {
			inst.refs = 1
			t.live = inst
			t.pool.metrics.loaded.Inc()
			t.pool.loaded.Add(1)
		}
		a.err = err
		t.mu.Unlock()
		close(a.done)
		if err != nil {
			return nil, err
		}
		t.pool.makeRoom(t)
		return inst, nil
	}
}

// release gives back a reference taken by acquire, closing the instance if
// it was retired meanwhile and this was the last request on it.
func (t *tenant) release(inst *instance, now time.Time) {
	t.mu.Lock()
	inst.refs--
	inst.lastUsed = now
	start := !inst.started
	inst.started = true
	closeIt := inst.retired && inst.refs == 0
	t.mu.Unlock()
	if start {
		inst.start() // before a Close, which then stops it
	}
	if closeIt {
		t.pool.closeInstance(inst)
	}
	// Over the bound because every server was busy at the last
	// activation: this one may be idle now.
	if max := t.pool.opts.MaxLoaded; max > 0 && t.pool.loaded.Load() > int64(max) {
		t.pool.makeRoom(nil)
	}
}

// retireLocked takes the live instance out of service (t.mu held): no new
// request gets it, and it is closed once the last request on it ends. It
// reports the instance to close now, if no request holds it.
func (t *tenant) retireLocked() *instance {
	inst := t.live
	if inst == nil {
		return nil
	}
	t.live = nil
	inst.retired = true
	t.pool.metrics.loaded.Dec()
	t.pool.loaded.Add(-1)
	if inst.refs == 0 {
		return inst
	}
	return nil
}

// setConf installs a new configuration from the tenant's Secret. A changed
// one retires the live server: the next request builds one from it, while
// requests in flight finish on the old one.
func (t *tenant) setConf(conf *tenantConf) (changed bool) {
	t.mu.Lock()
	if t.conf != nil && t.conf.digest == conf.digest {
		t.mu.Unlock()
		return false
	}
	had := t.conf != nil
	t.conf = conf
	idle := t.retireLocked()
	t.mu.Unlock()
	if idle != nil {
		t.pool.closeInstance(idle)
	}
	if had {
		t.pool.metrics.reloads.Inc()
	}
	return true
}

// remove retires the tenant for good (its Secret was deleted).
func (t *tenant) remove() {
	t.mu.Lock()
	t.removed = true
	idle := t.retireLocked()
	keys := t.scramKeys
	t.mu.Unlock()
	if keys != nil {
		keys.Close()
	}
	if idle != nil {
		t.pool.closeInstance(idle)
	}
}

// evictIdle closes the live server if no request holds it and none has
// used it since idleSince.
func (t *tenant) evictIdle(idleSince time.Time) bool {
	t.mu.Lock()
	inst := t.live
	if inst == nil || inst.refs > 0 || inst.lastUsed.After(idleSince) {
		t.mu.Unlock()
		return false
	}
	idle := t.retireLocked()
	t.mu.Unlock()
	t.pool.closeInstance(idle)
	return true
}

// idleSince is when the live server was last used, if it has no request
// in flight.
func (t *tenant) idleSince() (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.live == nil || t.live.refs > 0 {
		return time.Time{}, false
	}
	return t.live.lastUsed, true
}

// enter counts a request against the tenant's bound on concurrent
// requests; false means it is at the bound and the request is refused.
func (t *tenant) enter(max int64) bool {
	if t.inFlight.Add(1) > max {
		t.inFlight.Add(-1)
		return false
	}
	return true
}

func (t *tenant) leave(status int) {
	t.inFlight.Add(-1)
	t.requests.Add(1)
	if status >= 500 {
		t.errors5.Add(1)
	}
}

// String names the tenant in logs.
func (t *tenant) String() string { return fmt.Sprintf("%s (Secret %s)", t.name, t.key) }
