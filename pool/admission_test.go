package pool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The admission stage as a structure of its own: no HTTP, no store.

// testAdmission has no linger unless the test sets one, and a lease no
// test outlasts unless it sets one.
func testAdmission(seats int) *admission {
	a := newAdmission(seats, time.Minute, time.Hour)
	a.linger = 0
	return a
}

type granted struct {
	tenant string
	g      *grant
}

// waiter starts an acquire of tenant in a goroutine; its grant (or error)
// is sent on out.
func waiter(ctx context.Context, a *admission, tenant string, out chan<- granted, errs chan<- error) {
	go func() {
		g, err := a.acquire(ctx, tenant)
		if err != nil {
			errs <- err
			return
		}
		out <- granted{tenant, g}
	}()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func queuedIs(a *admission, n int) func() bool {
	return func() bool { _, q, _ := a.stats(); return q == n }
}

// A saturating tenant holds both seats and has 30 requests waiting; a
// quiet tenant's one request gets the next free seat ahead of that
// backlog, and the saturating tenant gets the one after.
func TestAdmissionQuietTenantGoesAheadOfTheBacklog(t *testing.T) {
	a := testAdmission(2)
	ctx := context.Background()
	var held []*grant
	for range 2 {
		g, err := a.acquire(ctx, "noisy")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, g)
	}
	out, errs := make(chan granted, 40), make(chan error, 40)
	for range 30 {
		waiter(ctx, a, "noisy", out, errs)
	}
	waitUntil(t, "30 noisy requests queued", queuedIs(a, 30))
	waiter(ctx, a, "quiet", out, errs)
	waitUntil(t, "the quiet request queued", queuedIs(a, 31))

	held[0].release()
	first := <-out
	if first.tenant != "quiet" {
		t.Fatalf("the freed seat went to %s, want the quiet tenant's request", first.tenant)
	}
	if inUse, q, _ := a.stats(); inUse != 2 || q != 30 {
		t.Fatalf("after one grant: %d seats in use, %d queued; want 2 and 30", inUse, q)
	}
	first.g.release()
	if next := <-out; next.tenant != "noisy" {
		t.Fatalf("the quiet tenant's seat went to %s", next.tenant)
	} else {
		held[0] = next.g
	}
	// The backlog drains, one at a time through the two seats.
	for range 29 {
		held[0].release()
		held[0] = (<-out).g
	}
	held[0].release()
	held[1].release()
	if inUse, q, _ := a.stats(); inUse != 0 || q != 0 || len(a.flows) != 0 {
		t.Fatalf("drained: %d seats in use, %d queued, %d flows; want none", inUse, q, len(a.flows))
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// Three saturating tenants through one seat are served in turn: none gets
// two seats in a row while another waits.
func TestAdmissionRoundRobin(t *testing.T) {
	a := testAdmission(1)
	ctx := context.Background()
	cur, err := a.acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	out, errs := make(chan granted, 40), make(chan error, 40)
	n := 0
	for _, tenant := range []string{"a", "b", "c"} {
		for range 10 {
			waiter(ctx, a, tenant, out, errs)
			n++
			waitUntil(t, "requests queued in order", queuedIs(a, n))
		}
	}
	var order []string
	for range 30 {
		cur.release()
		g := <-out
		order = append(order, g.tenant)
		cur = g.g
	}
	cur.release()
	want := []string{"b", "c", "a"}
	for i, got := range order {
		if got != want[i%3] {
			t.Fatalf("grant %d went to %s; order %v, want b, c, a in turn", i, got, order)
		}
	}
}

// A waiter whose caller leaves is out of the queue at once, and the seat
// it waited for goes to nobody in its name.
func TestAdmissionCancelledWaiterLeaves(t *testing.T) {
	a := testAdmission(1)
	holder, err := a.acquire(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	out, errs := make(chan granted, 40), make(chan error, 40)
	ctx, cancel := context.WithCancel(context.Background())
	for range 30 {
		waiter(ctx, a, "b", out, errs)
	}
	waitUntil(t, "30 waiting", queuedIs(a, 30))
	cancel()
	for range 30 {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("a cancelled waiter: %v", err)
		}
	}
	if inUse, q, _ := a.stats(); inUse != 1 || q != 0 {
		t.Fatalf("after the cancellations: %d in use, %d queued; want 1 and 0", inUse, q)
	}
	holder.release()
	if inUse, _, _ := a.stats(); inUse != 0 || len(a.flows) != 0 {
		t.Fatalf("released: %d in use, %d flows", inUse, len(a.flows))
	}
}

// Waits are bounded: 30 parallel waiters behind a held seat all give up
// after the queue wait, and none is left queued.
func TestAdmissionQueueWaitBound(t *testing.T) {
	a := testAdmission(1)
	a.wait = 30 * time.Millisecond
	holder, err := a.acquire(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.release()
	out, errs := make(chan granted, 40), make(chan error, 40)
	for i := range 30 {
		waiter(context.Background(), a, []string{"a", "b", "c"}[i%3], out, errs)
	}
	for range 30 {
		if err := <-errs; !errors.Is(err, errQueueWait) {
			t.Fatalf("a waiter: %v, want errQueueWait", err)
		}
	}
	if _, q, _ := a.stats(); q != 0 {
		t.Fatalf("%d still queued", q)
	}
}

// A request holding its seat past the lease goes on without it: the next
// waiter gets the seat, and the late release frees nothing twice.
func TestAdmissionLeaseGivesTheSeatBack(t *testing.T) {
	a := testAdmission(1)
	a.lease = 20 * time.Millisecond
	slow, err := a.acquire(context.Background(), "stalled")
	if err != nil {
		t.Fatal(err)
	}
	out, errs := make(chan granted, 1), make(chan error, 1)
	waiter(context.Background(), a, "other", out, errs)
	g := <-out
	if _, _, expired := a.stats(); expired != 1 {
		t.Fatalf("%d leases expired, want 1", expired)
	}
	slow.release()
	if inUse, _, _ := a.stats(); inUse != 1 {
		t.Fatalf("after the stalled request ended: %d seats in use, want 1 (the other's)", inUse)
	}
	g.g.release()
	if inUse, _, _ := a.stats(); inUse != 0 {
		t.Fatalf("%d seats in use, want 0", inUse)
	}
}

// A tenant that just finished a request keeps its share for the linger: a
// saturating tenant does not take its seat in the gap between two of its
// requests.
func TestAdmissionShareLingers(t *testing.T) {
	a := testAdmission(2)
	a.linger = 50 * time.Millisecond
	var now atomic.Int64
	a.now = func() time.Time { return time.Unix(0, now.Load()) }
	ctx := context.Background()
	q, _ := a.acquire(ctx, "quiet")
	q.release() // quiet lingers
	n1, _ := a.acquire(ctx, "noisy")
	out, errs := make(chan granted, 2), make(chan error, 2)
	waiter(ctx, a, "noisy", out, errs)
	waitUntil(t, "the second noisy request queued (its share is 1 of 2 seats)", queuedIs(a, 1))
	q, err := a.acquire(ctx, "quiet") // at once: its seat was kept
	if err != nil {
		t.Fatal(err)
	}
	q.release()
	now.Add(int64(time.Second)) // the quiet tenant is gone: noisy may use both seats
	n1.release()
	n2 := <-out
	n3, err := a.acquire(ctx, "noisy")
	if err != nil {
		t.Fatal(err)
	}
	if inUse, queued, _ := a.stats(); inUse != 2 || queued != 0 {
		t.Fatalf("noisy alone: %d in use, %d queued; want 2 and 0", inUse, queued)
	}
	n2.g.release()
	n3.release()
}

// Forty goroutines of five tenants acquire and release at random: never
// more requests hold seats than there are seats, and everything is given
// back.
func TestAdmissionParallelInvariants(t *testing.T) {
	a := testAdmission(3)
	a.linger = time.Millisecond
	var holding, peak atomic.Int64
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tenant := []string{"a", "b", "c", "d", "e"}[i%5]
			for range 50 {
				g, err := a.acquire(context.Background(), tenant)
				if err != nil {
					t.Error(err)
					return
				}
				h := holding.Add(1)
				for p := peak.Load(); h > p && !peak.CompareAndSwap(p, h); p = peak.Load() {
				}
				holding.Add(-1)
				g.release()
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > 3 {
		t.Errorf("%d requests held seats at once, want at most 3", p)
	}
	if inUse, q, _ := a.stats(); inUse != 0 || q != 0 {
		t.Errorf("after all: %d in use, %d queued", inUse, q)
	}
}

// Four seats: a tenant alone uses all four; once a second tenant is
// active, each gets one (half of an even split), and the second's request
// executes at once beside the first's one, however many the first has
// waiting.
func TestAdmissionSharesWhenContended(t *testing.T) {
	a := testAdmission(4)
	ctx := context.Background()
	var noisy []*grant
	for range 4 {
		g, err := a.acquire(ctx, "noisy")
		if err != nil {
			t.Fatal(err)
		}
		noisy = append(noisy, g)
	}
	out, errs := make(chan granted, 40), make(chan error, 40)
	for range 30 {
		waiter(ctx, a, "noisy", out, errs)
	}
	waitUntil(t, "30 noisy requests queued", queuedIs(a, 30))
	waiter(ctx, a, "quiet", out, errs)
	waitUntil(t, "the quiet request queued", queuedIs(a, 31))
	noisy[0].release()
	if g := <-out; g.tenant != "quiet" {
		t.Fatalf("the freed seat went to %s", g.tenant)
	} else {
		defer g.g.release()
	}
	// The noisy tenant holds 3 and its share is 1: its seats are not
	// given back to it as they free.
	for _, g := range noisy[1:3] {
		g.release()
	}
	if inUse, q, _ := a.stats(); inUse != 2 || q != 30 {
		t.Fatalf("%d in use, %d queued; want 2 (one each) and 30", inUse, q)
	}
	noisy[3].release()
	if g := <-out; g.tenant != "noisy" {
		t.Fatalf("got %s", g.tenant)
	} else {
		g.g.release()
	}
	if g := <-out; g.tenant != "noisy" {
		t.Fatalf("got %s", g.tenant)
	}
}
