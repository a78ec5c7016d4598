package pool

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"
)

// Defaults of the admission stage (Options).
const (
	// DefaultQueueWait bounds how long a request waits for a seat before
	// it is answered 503 with Retry-After.
	DefaultQueueWait = 5 * time.Second
	// DefaultSeatLease is how long a request keeps its seat: one slower
	// than this (a slow store, a password check) goes on without one, so
	// that a stalled tenant cannot keep the others out.
	DefaultSeatLease = 100 * time.Millisecond
	// shareLinger is how long a tenant still counts in the fair shares
	// after its last request ended: a client sending one request after
	// another finds its share kept, not taken by a saturating neighbour
	// in the gap between two requests.
	shareLinger = 50 * time.Millisecond
)

// DefaultMaxExecuting is the pool-wide number of seats for n Ps
// (GOMAXPROCS): four per P, which a tenant alone needs for the
// throughput of a dedicated server (two cost it a quarter, measured).
// Shared between tenants, each gets far fewer (share). docs/pools.md,
// "Fairness", gives the measurements.
func DefaultMaxExecuting(n int) int { return 4 * max(n, 1) }

// errQueueWait is a request that waited the whole QueueWait for a seat.
var errQueueWait = errors.New("no seat within the queue wait")

// admission is the pool-wide stage every tenant's request passes before
// its handler runs (fair queuing, as Kubernetes' API Priority and
// Fairness): at most `seats` requests execute at once, all tenants
// together; each tenant's waiting requests form a FIFO, and a freed seat
// goes to the waiting tenant served least recently among those below
// their share (half the seats divided by the tenants with requests, or
// with one ended within shareLinger). A tenant alone may use every seat;
// once another comes, it gets no new seat above its share, and the
// seats it holds come back as its requests end or their lease runs out.
// A tenant's queue is bounded by its in-flight bound (tenant.enter counts
// queued requests too).
type admission struct {
	seats  int
	wait   time.Duration
	lease  time.Duration
	linger time.Duration
	now    func() time.Time

	mu        sync.Mutex
	inUse     int              // seats held
	queued    int              // requests waiting
	served    uint64           // grants so far: the order of service
	flows     map[string]*flow // tenants with requests, or lingering
	waiting   []*flow          // flows with queued requests
	lingering []lingerMark     // flows that went idle, oldest first
	expired   uint64           // leases that ran out
	rewake    *time.Timer      // dispatches when a lingering flow's share is free again
}

// flow is one tenant's requests in the admission stage.
type flow struct {
	key        string
	executing  int      // requests holding a seat
	queue      []*grant // waiting, in arrival order
	lastServed uint64   // admission.served at its last grant
	idleAt     time.Time
	inWaiting  bool
}

// busy: f counts in the shares for its requests. One whose lease ran out
// no longer does: it holds no seat, and a stalled tenant must not keep
// seats idle for itself.
func (f *flow) busy() bool { return f.executing > 0 || len(f.queue) > 0 }

type lingerMark struct {
	f  *flow
	at time.Time
}

// A grant is one request's passage: a seat, then (after its lease) none.
// Its holder calls release exactly once, when the request ends.
type grant struct {
	a       *admission
	f       *flow
	ready   chan struct{} // closed when a queued request gets its seat
	granted bool          // got its seat (under a.mu)
	held    bool          // holds it still
	ended   bool
	timer   *time.Timer // the lease
}

func newAdmission(seats int, wait, lease time.Duration) *admission {
	if seats <= 0 {
		seats = DefaultMaxExecuting(runtime.GOMAXPROCS(0))
	}
	if wait <= 0 {
		wait = DefaultQueueWait
	}
	if lease <= 0 {
		lease = DefaultSeatLease
	}
	return &admission{seats: seats, wait: wait, lease: lease, linger: shareLinger, now: time.Now, flows: map[string]*flow{}}
}

// acquire admits a request of the tenant key: at once when a seat is free
// and the tenant is below its share and has no request waiting, else in
// its tenant's queue until dispatch gives it a seat, ctx ends, or the
// queue wait passes (errQueueWait).
func (a *admission) acquire(ctx context.Context, key string) (*grant, error) {
	a.mu.Lock()
	a.expireLinger(a.now())
	f := a.flows[key]
	if f == nil {
		f = &flow{key: key}
		a.flows[key] = f
	}
	g := &grant{a: a, f: f}
	if len(f.queue) == 0 && a.inUse < a.seats && f.executing < a.share() {
		a.take(g)
		a.mu.Unlock()
		return g, nil
	}
	g.ready = make(chan struct{})
	f.queue = append(f.queue, g)
	a.queued++
	if !f.inWaiting {
		f.inWaiting = true
		a.waiting = append(a.waiting, f)
	}
	a.dispatch() // arms the rewake if only a lingering share keeps g waiting
	a.mu.Unlock()

	timer := time.NewTimer(a.wait)
	defer timer.Stop()
	var err error
	select {
	case <-g.ready:
		return g, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = errQueueWait
	}
	a.mu.Lock()
	if g.granted { // the seat came as the wait ended
		a.mu.Unlock()
		if err == errQueueWait {
			return g, nil
		}
		g.release()
		return nil, err
	}
	for i, q := range f.queue {
		if q == g {
			f.queue = append(f.queue[:i], f.queue[i+1:]...)
			break
		}
	}
	a.queued--
	if len(f.queue) == 0 {
		a.leaveWaiting(f)
	}
	a.settle(f)
	a.dispatch() // shares may have grown
	a.mu.Unlock()
	return nil, err
}

// release ends the request: its seat, if it still holds one, goes to the
// next waiting request.
func (g *grant) release() {
	a := g.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if g.ended {
		return
	}
	g.ended = true
	if g.timer != nil {
		g.timer.Stop()
	}
	a.giveBack(g)
	a.settle(g.f)
	a.dispatch()
}

// leaseOver takes the seat of a request still running after the lease:
// it goes on without one.
func (g *grant) leaseOver() {
	a := g.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if g.ended || !g.held {
		return
	}
	a.expired++
	a.giveBack(g)
	a.settle(g.f)
	a.dispatch()
}

func (a *admission) giveBack(g *grant) {
	if g.held {
		g.held = false
		a.inUse--
		g.f.executing--
	}
}

// take gives g a seat (a.mu held).
func (a *admission) take(g *grant) {
	g.granted, g.held = true, true
	a.inUse++
	g.f.executing++
	a.served++
	g.f.lastServed = a.served
	g.timer = time.AfterFunc(a.lease, g.leaseOver)
}

// share is how many seats one tenant may hold: all of them while it is
// the only active tenant, else half of an even split (at least one).
// Half, because the other half is what keeps a quiet tenant's request
// from executing beside as many of a saturating neighbour's as the
// seats allow: beside a neighbour at its share it runs with one or two
// other requests in the store, not four (the bench's quiet tenant: 1.5×
// its p99 alone at one neighbour's seat, 1.9–2.8× at two). With many
// active tenants every seat is used: each gets one.
func (a *admission) share() int {
	n := len(a.flows)
	if n <= 1 {
		return a.seats
	}
	return max(1, a.seats/(2*n))
}

// dispatch gives free seats to waiting requests, each to the first
// request of the least recently served tenant below its share (a.mu held).
func (a *admission) dispatch() {
	a.expireLinger(a.now())
	for a.inUse < a.seats && len(a.waiting) > 0 {
		share, pick := a.share(), -1
		for i, f := range a.waiting {
			if f.executing < share && (pick < 0 || f.lastServed < a.waiting[pick].lastServed) {
				pick = i
			}
		}
		if pick < 0 {
			// Every waiting tenant holds its share: the free seats are
			// kept for the lingering ones, until their linger ends.
			a.armRewake()
			return
		}
		f := a.waiting[pick]
		g := f.queue[0]
		f.queue[0] = nil
		f.queue = f.queue[1:]
		a.queued--
		if len(f.queue) == 0 {
			a.leaveWaiting(f)
		}
		a.take(g)
		close(g.ready)
	}
}

// armRewake dispatches again when the oldest lingering flow leaves the
// shares (a.mu held, expireLinger just ran).
func (a *admission) armRewake() {
	if a.rewake != nil || len(a.lingering) == 0 {
		return
	}
	a.rewake = time.AfterFunc(a.lingering[0].at.Add(a.linger).Sub(a.now()), func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.rewake = nil
		a.dispatch()
	})
}

func (a *admission) leaveWaiting(f *flow) {
	f.inWaiting = false
	for i, w := range a.waiting {
		if w == f {
			a.waiting = append(a.waiting[:i], a.waiting[i+1:]...)
			return
		}
	}
}

// settle marks f idle when its last request is gone: it lingers in the
// shares for a while, then leaves the stage.
func (a *admission) settle(f *flow) {
	if f.busy() {
		return
	}
	f.idleAt = a.now()
	if a.linger <= 0 {
		if a.flows[f.key] == f {
			delete(a.flows, f.key)
		}
		return
	}
	a.lingering = append(a.lingering, lingerMark{f, f.idleAt})
}

// expireLinger drops the flows idle for longer than the linger.
func (a *admission) expireLinger(now time.Time) {
	for len(a.lingering) > 0 {
		m := a.lingering[0]
		if !m.f.busy() && m.f.idleAt.Equal(m.at) {
			if now.Sub(m.at) < a.linger {
				return
			}
			if a.flows[m.f.key] == m.f {
				delete(a.flows, m.f.key)
			}
		}
		a.lingering[0] = lingerMark{}
		a.lingering = a.lingering[1:]
	}
}

// stats are the stage's gauges.
func (a *admission) stats() (inUse, queued int, expired uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inUse, a.queued, a.expired
}
