package pool

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"userve.dev/userve/api/v1alpha1"
)

// Thirty parallel first requests to a cold tenant build its server once,
// and all of them are served by it.
func TestParallelColdRequestsActivateOnce(t *testing.T) {
	e := newPoolEnv(t, Options{}, testHooks{})
	c := e.add("team-a", "acme")
	if n := testutil.ToFloat64(e.pool.metrics.loaded); n != 0 {
		t.Fatalf("tenants loaded before any request: %v, want 0", n)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if r, err := e.call(c.host(), "GET", "/userve/v1/user-group/", nil, c.admin()); err != nil || r.status != http.StatusOK {
				errs <- fmt.Errorf("request %d: %v %d %s", i, err, r.status, r.body)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := testutil.ToFloat64(e.pool.metrics.activations.WithLabelValues("ok")); n != 1 {
		t.Errorf("activations = %v, want 1", n)
	}
	if n := testutil.ToFloat64(e.pool.metrics.loaded); n != 1 {
		t.Errorf("tenants loaded = %v, want 1", n)
	}
	var m dto.Metric
	if err := e.pool.metrics.activationSeconds.Write(&m); err == nil {
		t.Logf("activation took %.1f ms", 1000*m.GetHistogram().GetSampleSum())
	}
}

// With a tiny idle timeout, servers are evicted between requests while 30
// clients keep sending: every request is answered by a live server (a
// request on a closed store client would fail), and every evicted server's
// store client is disconnected.
func TestEvictionRacesRequestsSafely(t *testing.T) {
	e := newPoolEnv(t, Options{IdleTimeout: time.Millisecond, TenantMaxInFlight: 100}, testHooks{})
	c := e.add("team-a", "acme")
	_, token := e.register(c, "alice")
	var stop atomic.Bool
	var wg sync.WaitGroup
	var served atomic.Int64
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				r, err := e.call(c.host(), "GET", "/hserve/v2.5/user/info/", nil, c.sdk(token)...)
				if err != nil || r.status != http.StatusOK {
					errs <- fmt.Errorf("client %d: %v %d %s", i, err, r.status, r.body)
					return
				}
				served.Add(1)
				// Pause until the next eviction (at most 200 ms), so that
				// the server is idle now and then and the clients come
				// back together while it is being evicted.
				ev := testutil.ToFloat64(e.pool.metrics.evictions.WithLabelValues(evictIdle))
				for pause := time.Now(); !stop.Load() && time.Since(pause) < 200*time.Millisecond &&
					testutil.ToFloat64(e.pool.metrics.evictions.WithLabelValues(evictIdle)) == ev; {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	e.waitFor("five evictions under load", func() bool {
		return testutil.ToFloat64(e.pool.metrics.evictions.WithLabelValues(evictIdle)) >= 5 || len(errs) > 0
	})
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ev, act := testutil.ToFloat64(e.pool.metrics.evictions.WithLabelValues(evictIdle)), testutil.ToFloat64(e.pool.metrics.activations.WithLabelValues("ok"))
	if act < ev {
		t.Errorf("%v activations for %v evictions", act, ev)
	}
	e.waitFor("every evicted server's store to be closed", func() bool {
		return testutil.ToFloat64(e.pool.metrics.closed) >= ev
	})
	var m dto.Metric
	_ = e.pool.metrics.activationSeconds.Write(&m)
	t.Logf("%d requests, %v activations (%.1f ms on average, the first one on a fresh database included), %v evictions",
		served.Load(), act, 1000*m.GetHistogram().GetSampleSum()/float64(m.GetHistogram().GetSampleCount()), ev)
}

// A changed Secret reaches the pool without a restart: a custom field
// added is accepted, a rotated admin token replaces the old one, a
// rotated JWT key invalidates the old tokens. A request in flight during
// the change finishes on the old server, whose store is closed only then.
func TestSecretUpdateReplacesTheServer(t *testing.T) {
	held, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	// A failing test must not leave the held request blocking the
	// server's Close.
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	e := newPoolEnv(t, Options{}, testHooks{wrap: func(_ string, next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Test-Hold") != "" {
				held <- struct{}{}
				<-release
			}
			next.ServeHTTP(w, r)
		})
	}})
	c := e.add("team-a", "acme")
	_, token := e.register(c, "alice")
	if r := e.must(http.StatusBadRequest, c.host(), "PUT", "/hserve/v2.5/user/info/", map[string]any{"level": 3}, c.sdk(token)...); !strings.Contains(string(r.body), "level") {
		t.Fatalf("before the change: %s", r.body)
	}
	inFlight := make(chan res, 1)
	go func() {
		r, _ := e.call(c.host(), "GET", "/userve/v1/user-group/", nil, c.admin(), "X-Test-Hold: 1")
		inFlight <- r
	}()
	<-held

	oldAdmin := c.admin()
	c.adminToken = "rotated-" + c.adminToken
	c.jwtKey = "rotated-" + c.jwtKey
	e.put(c, c.secretData(func(us *v1alpha1.UserService) {
		us.Spec.Profile.CustomFields = append(us.Spec.Profile.CustomFields, v1alpha1.CustomField{Name: "level", Type: v1alpha1.FieldInteger})
	}))
	e.waitFor("the rotated admin token to be accepted", func() bool {
		r, err := e.call(c.host(), "GET", "/userve/v1/user-group/", nil, c.admin())
		return err == nil && r.status == http.StatusOK
	})
	e.must(http.StatusUnauthorized, c.host(), "GET", "/userve/v1/user-group/", nil, oldAdmin)
	// The old key's token is no longer valid; a new login has the field.
	e.must(http.StatusUnauthorized, c.host(), "GET", "/hserve/v2.5/user/info/", nil, c.sdk(token)...)
	m := e.must(http.StatusCreated, c.host(), "POST", "/hserve/v2.1/login/username/", map[string]any{"username": "alice", "password": "secret-alice"}, c.sdk("")...).obj(t)
	e.must(http.StatusOK, c.host(), "PUT", "/hserve/v2.5/user/info/", map[string]any{"level": 3}, c.sdk(m["token"].(string))...)
	if n := testutil.ToFloat64(e.pool.metrics.reloads); n != 1 {
		t.Errorf("reloads = %v, want 1", n)
	}
	if n := testutil.ToFloat64(e.pool.metrics.closed); n != 0 {
		t.Errorf("%v servers closed while a request was in flight on the old one, want 0", n)
	}
	releaseOnce.Do(func() { close(release) })
	if r := <-inFlight; r.status != http.StatusOK {
		t.Errorf("the request in flight during the change: %d %s, want 200 (from the old server)", r.status, r.body)
	}
	e.waitFor("the old server's store to be closed", func() bool { return testutil.ToFloat64(e.pool.metrics.closed) == 1 })
}

// A tenant held at its bound of concurrent requests refuses 30 more at
// once with 503 and Retry-After in the dialect's shape, while another
// tenant serves; once the held requests end it serves again.
func TestTenantInFlightBound(t *testing.T) {
	const bound = 5
	entered, release := make(chan struct{}, bound), make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	e := newPoolEnv(t, Options{TenantMaxInFlight: bound}, testHooks{wrap: func(_ string, next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Test-Hold") != "" {
				entered <- struct{}{}
				<-release
			}
			next.ServeHTTP(w, r)
		})
	}})
	busy, quiet := e.add("team-a", "acme"), e.add("team-b", "globex")
	heldDone := make(chan res, bound)
	for range bound {
		go func() {
			r, _ := e.call(busy.host(), "GET", "/userve/v1/user-group/", nil, busy.admin(), "X-Test-Hold: 1")
			heldDone <- r
		}()
	}
	for range bound {
		<-entered
	}
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	// The quiet tenant, one request at a time (within its own bound).
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 30 {
			if r, err := e.call(quiet.host(), "GET", "/api/v2/users", nil); err != nil || r.status != http.StatusOK {
				errs <- fmt.Errorf("quiet tenant, request %d: %v %d %s", i, err, r.status, r.body)
			}
		}
	}()
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path, key := "/api/v2/users", "message"
			if i%2 == 1 {
				path, key = "/hserve/v2.5/user/info/", "error_msg"
			}
			r, err := e.call(busy.host(), "GET", path, nil)
			if err != nil || r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" ||
				!strings.Contains(string(r.body), `"`+key+`":"too many requests in progress`) {
				errs <- fmt.Errorf("busy tenant, request %d: %v %d %s", i, err, r.status, r.body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := testutil.ToFloat64(e.pool.metrics.rejections.WithLabelValues(reasonTenantBusy)); n != 30 {
		t.Errorf("rejections{tenant_busy} = %v, want 30", n)
	}
	releaseOnce.Do(func() { close(release) })
	for range bound {
		if r := <-heldDone; r.status != http.StatusOK {
			t.Errorf("a held request: %d %s", r.status, r.body)
		}
	}
	e.must(http.StatusOK, busy.host(), "GET", "/api/v2/users", nil)
}
