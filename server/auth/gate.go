package auth

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// The check gate bounds the memory that password checks hold at once in
// one process. An argon2id check holds its m KiB for the whole check, so
// forty logins at once against PHP's default (m=65536) would want 2.5 GiB;
// through the gate they take turns within the budget. bcrypt and pbkdf2
// checks weigh little (checkOverhead), so they run side by side as before
// and only queue behind a heavy check that is already waiting (the
// semaphore is first come, first served).
//
// A check waits at most CheckWait (and never past its request's deadline);
// then it is refused with ErrBusy, which the dialects answer 503 with
// Retry-After. Under GOMAXPROCS=1 (userve serve's default) checks share
// one core anyway, so taking turns costs no throughput.

// Defaults of the gate. DefaultCheckMemory is a quarter of the tenant pod's
// default 256 MiB limit (controllers/render): with Go's garbage collector
// letting the heap grow to twice what is live, the checks' share stays
// about half of the limit, next to the server's own 30 MiB or so. It also
// admits the heaviest hash an import accepts (MaxArgon2MemoryKiB).
const (
	DefaultCheckMemory int64 = 64 << 20
	DefaultCheckWait         = 10 * time.Second
)

// ErrBusy is a check refused because the process's check memory stayed in
// use for longer than the bounded wait.
var ErrBusy = errors.New("too many password checks in progress; try again shortly")

// gate is a weighted semaphore in bytes, with its use recorded. A gate
// with a parent (a pool's tenant, SharedCheckMemory) also takes its
// weight from the parent, so each tenant has a budget of its own and all
// of them together stay within the process's.
type gate struct {
	sem    *semaphore.Weighted
	budget int64
	wait   time.Duration
	parent *gate

	mu          sync.Mutex
	inUse, peak int64
	refused     int64
}

func newGate(budget int64, wait time.Duration) *gate {
	if budget <= 0 {
		budget = DefaultCheckMemory
	}
	if wait <= 0 {
		wait = DefaultCheckWait
	}
	return &gate{sem: semaphore.NewWeighted(budget), budget: budget, wait: wait}
}

// enter waits for weight bytes of the budget (and of the parent's); a
// weight above a whole budget waits for all of it (a check must be able to
// run alone). The returned leave gives them back.
func (g *gate) enter(ctx context.Context, weight int64) (leave func(), err error) {
	ctx, cancel := context.WithTimeout(ctx, g.wait)
	defer cancel()
	give, err := g.take(ctx, weight)
	if err != nil {
		return nil, err
	}
	giveParent := func() {}
	if g.parent != nil {
		// Own budget first: a tenant waiting on itself holds nothing of
		// the others'.
		if giveParent, err = g.parent.take(ctx, weight); err != nil {
			give()
			return nil, err
		}
	}
	return func() {
		if weight >= heavyCheck {
			// The check's blocks are garbage now, but the collector would
			// let the heap grow to twice what was live (the blocks
			// included) before reclaiming them, and the next heavy check
			// would get fresh pages: a burst would climb well past the
			// budget in resident memory. Collecting before the next check
			// enters lets it reuse the same pages; the collection costs a
			// few milliseconds of a check that took hundreds.
			runtime.GC()
		}
		giveParent()
		give()
	}, nil
}

// take acquires weight bytes (at most the whole budget) until ctx ends.
func (g *gate) take(ctx context.Context, weight int64) (give func(), err error) {
	weight = min(max(weight, 1), g.budget)
	if err := g.sem.Acquire(ctx, weight); err != nil {
		g.mu.Lock()
		g.refused++
		g.mu.Unlock()
		return nil, ErrBusy
	}
	g.mu.Lock()
	g.inUse += weight
	g.peak = max(g.peak, g.inUse)
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		g.inUse -= weight
		g.mu.Unlock()
		g.sem.Release(weight)
	}, nil
}

// SharedCheckMemory is a check budget several hashers draw from, each
// within its own budget as well: a pool process gives every tenant a
// gate of its own (one tenant's burst of logins cannot take the whole
// budget) and the process one bound.
type SharedCheckMemory struct{ g *gate }

// NewSharedCheckMemory is a shared budget of budget bytes (0: the
// default).
func NewSharedCheckMemory(budget int64) *SharedCheckMemory {
	return &SharedCheckMemory{g: newGate(budget, DefaultCheckWait)}
}

// Stats reports the shared budget's use.
func (s *SharedCheckMemory) Stats() CheckStats { return s.g.stats() }

// heavyCheck is the weight from which leaving a check collects garbage:
// argon2id with 16 MiB or more (OWASP's and PHP's configurations are
// 19 to 64 MiB); bcrypt and pbkdf2 hold almost nothing.
const heavyCheck = 16 << 20

// CheckStats is the gate's use since the process started.
type CheckStats struct {
	Budget  int64 // bytes
	InUse   int64 // bytes held by checks running now
	Peak    int64 // the most ever held at once
	Refused int64 // checks refused with ErrBusy
}

// CheckStats reports the check gate's use (for metrics and logs).
func (h *Hasher) CheckStats() CheckStats {
	return h.gate.stats()
}

func (g *gate) stats() CheckStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return CheckStats{Budget: g.budget, InUse: g.inUse, Peak: g.peak, Refused: g.refused}
}
