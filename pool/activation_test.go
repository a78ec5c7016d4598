package pool

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"userve.dev/userve/server/store"
	"userve.dev/userve/test/mongofixture"
)

// storeWatch counts, per tenant, the connections its store clients
// authenticated (the driver's ConnectionReady: dialled, handshaken and
// authenticated; the monitor's connection is not pooled and never
// authenticates) and the commands they sent.
type storeWatch struct {
	mu       sync.Mutex
	ready    map[string]int
	commands map[string]map[string]int // tenant -> command name -> count
	// expired counts the audit expiries (the last start-up duty of
	// server.Start) per tenant.
	expired map[string]int
}

func newStoreWatch() *storeWatch {
	return &storeWatch{ready: map[string]int{}, commands: map[string]map[string]int{}, expired: map[string]int{}}
}

func (w *storeWatch) options(tenant string) []store.Option {
	cmds := &event.CommandMonitor{
		Started: func(_ context.Context, e *event.CommandStartedEvent) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.commands[tenant] == nil {
				w.commands[tenant] = map[string]int{}
			}
			w.commands[tenant][e.CommandName]++
		},
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
			if e.CommandName != "delete" {
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			w.expired[tenant]++ // the only delete these tests cause
		},
	}
	conns := &event.PoolMonitor{Event: func(e *event.PoolEvent) {
		if e.Type == event.ConnectionReady {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.ready[tenant]++
		}
	}}
	return []store.Option{store.WithMonitors(cmds, conns)}
}

// take returns tenant's counts since the last take and resets them.
func (w *storeWatch) take(tenant string) (ready int, commands map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ready, commands = w.ready[tenant], w.commands[tenant]
	w.ready[tenant], w.commands[tenant] = 0, nil
	return ready, commands
}

func (w *storeWatch) expiries(tenant string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.expired[tenant]
}

// An activation opens and authenticates exactly one store connection: the
// index check, the request and the server's start-up duties (ledger
// recovery, audit expiry) all run on it, one after the other. A cold
// activation (after eviction) of a tenant whose indexes exist creates no
// index. Each SCRAM conversation costs FerretDB a scan of every stored
// user, so this is most of what a cold activation costs.
func TestAnActivationAuthenticatesOneConnection(t *testing.T) {
	w := newStoreWatch()
	e := newPoolEnv(t, Options{IdleTimeout: time.Hour, StoreOptions: w.options}, testHooks{})
	c := e.add("team-a", "acme")
	name := c.ns + "/" + c.name
	tn, _ := e.pool.registry.lookup(c.host())

	for round := 1; round <= 5; round++ {
		e.must(http.StatusOK, c.host(), "GET", "/userve/v1/user-group/", nil, c.admin())
		e.waitFor(fmt.Sprintf("activation %d's start-up duties", round), func() bool { return w.expiries(name) >= round })
		ready, cmds := w.take(name)
		if ready != 1 {
			t.Errorf("activation %d authenticated %d store connections, want 1 (commands: %v)", round, ready, cmds)
		}
		if round > 1 && cmds["createIndexes"] != 0 {
			t.Errorf("cold activation %d sent %d createIndexes: its indexes exist (commands: %v)", round, cmds["createIndexes"], cmds)
		}
		// Evict it, as the idle timeout does, and wait for its client to
		// be disconnected.
		closed := testutil.ToFloat64(e.pool.metrics.closed)
		if !tn.evictIdle(time.Now()) {
			t.Fatalf("activation %d: the tenant's server was not idle", round)
		}
		e.waitFor("the evicted server's store to close", func() bool { return testutil.ToFloat64(e.pool.metrics.closed) > closed })
	}
	if n := testutil.ToFloat64(e.pool.metrics.activations.WithLabelValues("ok")); n != 5 {
		t.Errorf("activations = %v, want 5", n)
	}
}

// A cold activation within store.IndexRecheck of the tenant's last index
// check sends no listIndexes (before the request or after it): the tenant
// keeps the check's result across evictions. Past IndexRecheck it checks
// again, so an index dropped by hand meanwhile is made again.
func TestAColdActivationTrustsARecentIndexCheck(t *testing.T) {
	w := newStoreWatch()
	var ahead atomic.Int64 // how far the stores' clock runs ahead
	clock := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	storeOpts := func(tenant string) []store.Option { return append(w.options(tenant), store.WithClock(clock)) }
	e := newPoolEnv(t, Options{IdleTimeout: time.Hour, StoreOptions: storeOpts}, testHooks{})
	c := e.add("team-a", "acme")
	name := c.ns + "/" + c.name
	tn, _ := e.pool.registry.lookup(c.host())
	activate := func(round int) map[string]int {
		t.Helper()
		e.must(http.StatusOK, c.host(), "GET", "/userve/v1/user-group/", nil, c.admin())
		e.waitFor(fmt.Sprintf("activation %d's start-up duties", round), func() bool { return w.expiries(name) >= round })
		_, cmds := w.take(name)
		closed := testutil.ToFloat64(e.pool.metrics.closed)
		if !tn.evictIdle(time.Now()) {
			t.Fatalf("activation %d: the tenant's server was not idle", round)
		}
		e.waitFor("the evicted server's store to close", func() bool { return testutil.ToFloat64(e.pool.metrics.closed) > closed })
		return cmds
	}
	if cmds := activate(1); cmds["createIndexes"] == 0 {
		t.Fatalf("the first activation made no index: %v", cmds)
	}
	for round := 2; round <= 4; round++ {
		if cmds := activate(round); cmds["listIndexes"] != 0 || cmds["createIndexes"] != 0 {
			t.Errorf("cold activation %d sent %v: want no index listed or created", round, cmds)
		}
	}

	profiles := mongofixture.Client(t).Database(c.database).Collection(store.ColProfiles)
	if err := profiles.Indexes().DropOne(context.Background(), "openid_unique"); err != nil {
		t.Fatal(err)
	}
	ahead.Store(int64(store.IndexRecheck + time.Minute))
	if cmds := activate(5); cmds["listIndexes"] == 0 || cmds["createIndexes"] != 1 {
		t.Errorf("the activation past IndexRecheck sent %v: want the indexes listed and the dropped one made", cmds)
	}
	specs, err := profiles.Indexes().ListSpecifications(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(specs, func(s mongo.IndexSpecification) bool { return s.Name == "openid_unique" }) {
		t.Errorf("openid_unique was not made again: %v", specs)
	}
	if cmds := activate(6); cmds["listIndexes"] != 0 {
		t.Errorf("the activation after the new check sent %v: want no index listed", cmds)
	}
}

// Thirty parallel first requests to a cold (evicted) tenant build its
// server once; its start-up duties run once, after the first of them
// answered.
func TestParallelRequestsToAnEvictedTenantActivateOnce(t *testing.T) {
	w := newStoreWatch()
	e := newPoolEnv(t, Options{IdleTimeout: time.Hour, StoreOptions: w.options}, testHooks{})
	c := e.add("team-a", "acme")
	name := c.ns + "/" + c.name
	tn, _ := e.pool.registry.lookup(c.host())
	e.must(http.StatusOK, c.host(), "GET", "/userve/v1/user-group/", nil, c.admin())
	e.waitFor("the first activation's start-up duties", func() bool { return w.expiries(name) >= 1 })
	if !tn.evictIdle(time.Now()) {
		t.Fatal("the tenant's server was not idle")
	}
	_, _ = w.take(name)

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
	if n := testutil.ToFloat64(e.pool.metrics.activations.WithLabelValues("ok")); n != 2 {
		t.Errorf("activations = %v, want 2 (the first request, then one for the 30)", n)
	}
	e.waitFor("the second activation's start-up duties", func() bool { return w.expiries(name) >= 2 })
	_, cmds := w.take(name)
	if cmds["createIndexes"] != 0 || cmds["listIndexes"] != 0 {
		t.Errorf("the cold activation sent %v: want no index listed or created (checked by the first, within store.IndexRecheck)", cmds)
	}
	if n := w.expiries(name); n != 2 {
		t.Errorf("start-up duties ran %d times over two activations, want 2", n)
	}
}

// A tenant whose index check fails (an index of one of its names with
// other options, here openid_unique not unique) answers 503 "not ready"
// and fails only itself, under 30 parallel requests beside a healthy
// tenant; once the index is dropped, its server's background retry makes
// it and the tenant serves.
func TestATenantWhoseIndexesFailFailsOnlyItself(t *testing.T) {
	e := newPoolEnv(t, Options{IdleTimeout: time.Hour}, testHooks{})
	good := e.add("team-a", "acme")
	bad := newCreds(t, "team-b", "changed")
	ctx := context.Background()
	profiles := mongofixture.Client(t).Database(bad.database).Collection(store.ColProfiles)
	if _, err := profiles.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: store.FieldOpenID, Value: 1}},
		Options: options.Index().SetName("openid_unique")}); err != nil {
		t.Fatal(err)
	}
	e.put(bad, bad.secretData(nil))
	e.waitFor("the pool to route "+bad.host(), func() bool { tn, _ := e.pool.registry.lookup(bad.host()); return tn != nil })

	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := range 30 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			r, err := e.call(bad.host(), "GET", "/userve/v1/user-group/", nil, bad.admin())
			if err != nil || r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "not ready") {
				errs <- fmt.Errorf("tenant with a changed index, request %d: %v %d %s", i, err, r.status, r.body)
			}
		}()
		go func() {
			defer wg.Done()
			r, err := e.call(good.host(), "GET", "/userve/v1/user-group/", nil, good.admin())
			if err != nil || r.status != http.StatusOK {
				errs <- fmt.Errorf("healthy tenant, request %d: %v %d %s", i, err, r.status, r.body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	if err := profiles.Indexes().DropOne(ctx, "openid_unique"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the tenant to serve once the index is dropped", func() bool {
		r, err := e.call(bad.host(), "GET", "/userve/v1/user-group/", nil, bad.admin())
		return err == nil && r.status == http.StatusOK
	})
}

// An index that only serves queries, changed by hand, does not hold the
// tenant up: it serves on its unique indexes, and its server's start-up
// duties (here the audit expiry) still run while the index check is
// retried.
func TestAChangedQueryIndexLeavesTheTenantServing(t *testing.T) {
	w := newStoreWatch()
	e := newPoolEnv(t, Options{IdleTimeout: time.Hour, StoreOptions: w.options}, testHooks{})
	c := newCreds(t, "team-a", "changed")
	name := c.ns + "/" + c.name
	profiles := mongofixture.Client(t).Database(c.database).Collection(store.ColProfiles)
	if _, err := profiles.Indexes().CreateOne(context.Background(), mongo.IndexModel{Keys: bson.D{{Key: "nickname", Value: -1}},
		Options: options.Index().SetName("nickname")}); err != nil {
		t.Fatal(err)
	}
	e.put(c, c.secretData(nil))
	e.waitFor("the pool to route "+c.host(), func() bool { tn, _ := e.pool.registry.lookup(c.host()); return tn != nil })
	e.must(http.StatusOK, c.host(), "GET", "/userve/v1/user-group/", nil, c.admin())
	e.waitFor("the start-up duties despite the changed index", func() bool { return w.expiries(name) >= 1 })
	e.must(http.StatusOK, c.host(), "GET", "/userve/v1/user-group/", nil, c.admin())
}
