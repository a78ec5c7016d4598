package pool

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// holdHooks hold every request sent with X-Test-Hold in the tenant's
// handler: its tenant is sent on entered when it gets there, and one
// value on release lets one held request go on.
func holdHooks(entered chan<- string, release <-chan struct{}) testHooks {
	return testHooks{wrap: func(tenant string, next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Test-Hold") != "" {
				entered <- tenant
				<-release
			}
			next.ServeHTTP(w, r)
		})
	}}
}

// seats is the admission stage's state: seats in use and requests queued.
func (e *poolEnv) seats() (inUse, queued int) {
	inUse, queued, _ = e.pool.admission.stats()
	return inUse, queued
}

func (e *poolEnv) waitQueued(n int) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("%d requests queued for a seat", n), func() bool { _, q := e.seats(); return q == n })
}

func (e *poolEnv) waitSeatsFree() {
	e.t.Helper()
	e.waitFor("every seat given back and no request queued", func() bool { u, q := e.seats(); return u == 0 && q == 0 })
}

// A tenant saturating the pool (both seats held, 30 more requests waiting)
// does not keep a quiet tenant out: the quiet tenant's request gets the
// next free seat, ahead of the backlog, and every request is served.
func TestAQuietTenantGoesAheadOfASaturatingOnesBacklog(t *testing.T) {
	entered, release := make(chan string, 40), make(chan struct{})
	e := newPoolEnv(t, Options{MaxExecuting: 2, TenantMaxInFlight: 40, QueueWait: time.Minute, SeatLease: time.Hour},
		holdHooks(entered, release))
	t.Cleanup(func() { close(release) }) // a failed test lets its held requests go
	noisy, quiet := e.add("team-a", "noisy"), e.add("team-b", "quiet")
	// Both servers built first: an activation is not what is measured.
	e.must(http.StatusOK, noisy.host(), "GET", "/api/v2/users", nil)
	e.must(http.StatusOK, quiet.host(), "GET", "/api/v2/users", nil)

	results := make(chan error, 40)
	send := func(c *tenantCreds) {
		go func() {
			r, err := e.call(c.host(), "GET", "/api/v2/users", nil, "X-Test-Hold: 1")
			if err == nil && r.status != http.StatusOK {
				err = fmt.Errorf("%s: %d %s", c.host(), r.status, r.body)
			}
			results <- err
		}()
	}
	for range 2 {
		send(noisy)
	}
	for range 2 {
		select {
		case got := <-entered:
			if got != "team-a/noisy" {
				t.Fatalf("entered: %s", got)
			}
		case err := <-results:
			t.Fatalf("a held request ended: %v", err)
		}
	}
	for range 30 {
		send(noisy)
	}
	e.waitQueued(30)
	send(quiet)
	e.waitQueued(31)
	if len(entered) != 0 {
		t.Fatalf("a request executed while both seats were held")
	}

	release <- struct{}{} // one noisy request ends: its seat is free
	if got := <-entered; got != "team-b/quiet" {
		t.Fatalf("the freed seat went to %s, want the quiet tenant's request ahead of the 30 waiting", got)
	}
	for range 30 { // the backlog, one seat at a time
		release <- struct{}{}
		<-entered
	}
	release <- struct{}{}
	release <- struct{}{}
	for range 33 {
		if err := <-results; err != nil {
			t.Error(err)
		}
	}
	e.waitSeatsFree()
}

// The queue is bounded by the tenant's in-flight bound and the wait by
// the queue wait: with the only seat held, 35 parallel requests of a
// tenant bounded at 10 queue 10 and refuse 25 at once; 30 of another
// tenant wait the queue wait and are answered 503 with Retry-After in
// their dialect's shape. Released, the 10 queued ones are served.
func TestQueueAndWaitBoundsHold(t *testing.T) {
	entered, release := make(chan string, 1), make(chan struct{})
	e := newPoolEnv(t, Options{MaxExecuting: 1, TenantMaxInFlight: 10, QueueWait: time.Minute, SeatLease: time.Hour},
		holdHooks(entered, release))
	t.Cleanup(func() { close(release) }) // a failed test lets its held requests go
	holder, a := e.add("team-h", "holder"), e.add("team-a", "acme")
	e.must(http.StatusOK, a.host(), "GET", "/api/v2/users", nil)
	held := make(chan res, 1)
	go func() {
		r, _ := e.call(holder.host(), "GET", "/api/v2/users", nil, "X-Test-Hold: 1")
		held <- r
	}()
	<-entered

	statuses := make(chan res, 35)
	for range 35 {
		go func() {
			r, err := e.call(a.host(), "GET", "/api/v2/users", nil)
			if err != nil {
				t.Error(err)
			}
			statuses <- r
		}()
	}
	e.waitQueued(10)
	busy := 0
	for range 25 {
		r := <-statuses
		if r.status == http.StatusServiceUnavailable && strings.Contains(string(r.body), "too many requests in progress") {
			busy++
		}
	}
	if busy != 25 {
		t.Fatalf("%d of the first 25 answers were the in-flight bound's 503, want 25", busy)
	}
	if _, q := e.seats(); q != 10 {
		t.Fatalf("%d queued, want 10 (the tenant's bound)", q)
	}
	release <- struct{}{}
	for range 10 {
		if r := <-statuses; r.status != http.StatusOK {
			t.Errorf("a queued request: %d %s", r.status, r.body)
		}
	}
	if r := <-held; r.status != http.StatusOK {
		t.Errorf("the held request: %d", r.status)
	}
	e.waitSeatsFree()

	// The wait bound, in a pool whose queue wait is short.
	entered2, release2 := make(chan string, 1), make(chan struct{})
	e2 := newPoolEnv(t, Options{MaxExecuting: 1, TenantMaxInFlight: 40, QueueWait: 200 * time.Millisecond, SeatLease: time.Hour},
		holdHooks(entered2, release2))
	t.Cleanup(func() { close(release2) })
	holder2, b := e2.add("team-h", "holder"), e2.add("team-b", "globex")
	held2 := make(chan res, 1)
	go func() {
		r, _ := e2.call(holder2.host(), "GET", "/api/v2/users", nil, "X-Test-Hold: 1")
		held2 <- r
	}()
	<-entered2
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path, key := "/api/v2/users", "message"
			if i%2 == 1 {
				path, key = "/hserve/v2.5/user/info/", "error_msg"
			}
			r, err := e2.call(b.host(), "GET", path, nil)
			if err != nil || r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" ||
				!strings.Contains(string(r.body), `"`+key+`":"the server is busy, try again"`) {
				t.Errorf("request %d past the queue wait: %v %d %q %s", i, err, r.status, r.header.Get("Retry-After"), r.body)
			}
		}()
	}
	wg.Wait()
	if n := testutil.ToFloat64(e2.pool.metrics.rejections.WithLabelValues(reasonQueueWait)); n != 30 {
		t.Errorf("rejections{queue_wait} = %v, want 30", n)
	}
	if _, q := e2.seats(); q != 0 {
		t.Errorf("%d still queued after their wait", q)
	}
	release2 <- struct{}{}
	if r := <-held2; r.status != http.StatusOK {
		t.Errorf("the held request: %d", r.status)
	}
	e2.waitSeatsFree()
}

// A client that gives up while its request waits for a seat frees its
// place in the queue and in its tenant's in-flight bound at once.
func TestACancelledWaiterFreesItsPlace(t *testing.T) {
	entered, release := make(chan string, 1), make(chan struct{})
	e := newPoolEnv(t, Options{MaxExecuting: 1, TenantMaxInFlight: 1, QueueWait: time.Minute, SeatLease: time.Hour},
		holdHooks(entered, release))
	t.Cleanup(func() { close(release) }) // a failed test lets its held requests go
	holder, a := e.add("team-h", "holder"), e.add("team-a", "acme")
	e.must(http.StatusOK, a.host(), "GET", "/api/v2/users", nil)
	held := make(chan res, 1)
	go func() {
		r, _ := e.call(holder.host(), "GET", "/api/v2/users", nil, "X-Test-Hold: 1")
		held <- r
	}()
	<-entered

	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/v2/users", nil)
		req.Host = a.host()
		resp, err := e.srv.Client().Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		gone <- err
	}()
	e.waitQueued(1)
	// Its place is taken: the tenant is at its bound of one.
	e.must(http.StatusServiceUnavailable, a.host(), "GET", "/api/v2/users", nil)
	cancel()
	if err := <-gone; err == nil {
		t.Fatal("the cancelled request was answered")
	}
	e.waitQueued(0)
	acme, _ := e.pool.registry.lookup(a.host())
	e.waitFor("the cancelled request to leave the in-flight bound", func() bool { return acme.inFlight.Load() == 0 })

	// The place is free: the next request waits in it, and is served once
	// the seat is.
	next := make(chan res, 1)
	go func() {
		r, _ := e.call(a.host(), "GET", "/api/v2/users", nil)
		next <- r
	}()
	e.waitQueued(1)
	release <- struct{}{}
	if r := <-next; r.status != http.StatusOK {
		t.Errorf("the request after the cancelled one: %d %s", r.status, r.body)
	}
	if r := <-held; r.status != http.StatusOK {
		t.Errorf("the held request: %d", r.status)
	}
	e.waitSeatsFree()
}
