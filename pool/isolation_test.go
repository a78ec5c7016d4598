package pool

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"userve.dev/userve/api/v1alpha1"
)

// Two tenants whose users have the same ids and names, 40 parallel
// requests across both: each tenant's users see their own profile, each
// admin reads its own tenant's users, and a token (end-user or admin) of
// one tenant is refused by the other.
func TestTenantsWithTheSameUsersNeverSeeEachOther(t *testing.T) {
	// Each of the 40 workers also calls the other tenant, so one tenant can
	// have all 40 in flight at once: above the default bound of 32, whose
	// 503 is not what this test is about (lifecycle_test checks the bound).
	e := newPoolEnv(t, Options{TenantMaxInFlight: 64}, testHooks{})
	tenants := []*tenantCreds{e.add("team-a", "acme"), e.add("team-b", "globex")}
	names := []string{"alice", "bobby", "carol"}
	type user struct {
		id    int64
		token string
	}
	users := map[*tenantCreds][]user{}
	for _, c := range tenants {
		for _, name := range names {
			id, token := e.register(c, name)
			users[c] = append(users[c], user{id, token})
			e.must(http.StatusOK, c.host(), "PUT", "/hserve/v2.5/user/info/", map[string]any{"motto": c.name + " " + name}, c.sdk(token)...)
		}
	}
	for i := range names {
		if a, b := users[tenants[0]][i].id, users[tenants[1]][i].id; a != b {
			t.Fatalf("user %s has id %d in one tenant and %d in the other; the test wants the same ids", names[i], a, b)
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, other := tenants[i%2], tenants[1-i%2]
			n := i % len(names)
			u := users[c][n]
			want := c.name + " " + names[n]
			check := func(r res, err error, status int, what string) map[string]any {
				if err != nil || r.status != status {
					errs <- fmt.Errorf("%s: %v %d %s", what, err, r.status, r.body)
					return nil
				}
				m := map[string]any{}
				_ = json.Unmarshal(r.body, &m)
				return m
			}
			// The user's own profile, by token.
			r, err := e.call(c.host(), "GET", "/hserve/v2.5/user/info/", nil, c.sdk(u.token)...)
			if m := check(r, err, http.StatusOK, "own profile"); m != nil && (m["motto"] != want || m["_username"] != names[n]) {
				errs <- fmt.Errorf("%s's user %s read %v", c.name, names[n], m)
			}
			// The admin's view of the same id.
			r, err = e.call(c.host(), "GET", fmt.Sprintf("/userve/v2.2/miniapp/user_profile/%d/", u.id), nil, c.admin())
			if m := check(r, err, http.StatusOK, "admin read"); m != nil && m["motto"] != want {
				errs <- fmt.Errorf("%s's admin read user %d as %v", c.name, u.id, m)
			}
			// This tenant's tokens at the other tenant: refused.
			r, err = e.call(other.host(), "GET", "/hserve/v2.5/user/info/", nil, other.sdk(u.token)...)
			check(r, err, http.StatusUnauthorized, "a token of "+c.name+" at "+other.name)
			r, err = e.call(other.host(), "GET", fmt.Sprintf("/userve/v2.2/miniapp/user_profile/%d/", u.id), nil, c.admin())
			check(r, err, http.StatusUnauthorized, "the admin token of "+c.name+" at "+other.name)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A tenant whose Secret holds a broken configuration answers 503 in each
// dialect's shape, and one whose store is unreachable answers 503 too,
// while another tenant of the pool goes on serving; fixing the Secret
// brings the broken one up without a restart.
func TestABrokenOrUnreachableTenantLeavesTheOthersServing(t *testing.T) {
	e := newPoolEnv(t, Options{}, testHooks{})
	good := e.add("team-a", "acme")

	broken := newCreds(t, "team-b", "broken")
	data := broken.secretData(nil)
	data[v1alpha1.PoolTenantManifestKey] = []byte(strings.Replace(string(data[v1alpha1.PoolTenantManifestKey]), `"spec":{`, `"spec":{"apis":{},`, 1))
	e.put(broken, data)
	away := newCreds(t, "team-c", "away")
	away.mongoURI = "mongodb://127.0.0.1:1/"
	e.put(away, away.secretData(nil))
	e.waitFor("both tenants to be known", func() bool {
		a, _ := e.pool.registry.lookup(broken.host())
		b, _ := e.pool.registry.lookup(away.host())
		return a != nil && b != nil
	})

	for _, c := range []struct{ path, key string }{{"/api/v2/users", "message"}, {"/userve/v1/user-group/", "error_msg"}, {"/hserve/v2.5/user/info/", "error_msg"}} {
		r := e.must(http.StatusServiceUnavailable, broken.host(), "GET", c.path, nil, broken.admin())
		if msg, _ := r.obj(t)[c.key].(string); !strings.Contains(msg, "not configured correctly") || r.header.Get("Retry-After") == "" {
			t.Errorf("broken tenant %s: %s (Retry-After %q)", c.path, r.body, r.header.Get("Retry-After"))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := range 30 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			r, err := e.call(away.host(), "GET", "/userve/v1/user-group/", nil, away.admin())
			if err != nil || r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "not ready") {
				errs <- fmt.Errorf("unreachable store, request %d: %v %d %s", i, err, r.status, r.body)
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
	if n := testutil.ToFloat64(e.pool.metrics.rejections.WithLabelValues(reasonTenantConfig)); n != 3 {
		t.Errorf("rejections{tenant_config} = %v, want 3", n)
	}
	if n := testutil.ToFloat64(e.pool.metrics.invalid); n != 1 {
		t.Errorf("tenants invalid = %v, want 1", n)
	}

	e.put(broken, broken.secretData(nil))
	e.waitFor("the fixed tenant to serve", func() bool {
		r, err := e.call(broken.host(), "GET", "/userve/v1/user-group/", nil, broken.admin())
		return err == nil && r.status == http.StatusOK
	})
	if n := testutil.ToFloat64(e.pool.metrics.invalid); n != 0 {
		t.Errorf("tenants invalid once fixed = %v, want 0", n)
	}
}

// A panic outside the tenant server's own recovery (here a wrapper the
// test puts around one tenant's handler) fails that request with a 500 in
// the dialect's shape; the same tenant's other requests and the other
// tenant go on.
func TestAPanickingTenantLeavesTheOthersServing(t *testing.T) {
	// 60 parallel requests to one tenant: above the default bound. Two
	// seats, no lease: most requests queue, and every panic must give its
	// seat back itself.
	e := newPoolEnv(t, Options{TenantMaxInFlight: 100, MaxExecuting: 2, SeatLease: time.Hour}, testHooks{wrap: func(tenant string, next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tenant == "team-a/acme" && r.URL.Path == "/api/v2/users" {
				panic("injected")
			}
			next.ServeHTTP(w, r)
		})
	}})
	a, b := e.add("team-a", "acme"), e.add("team-b", "globex")
	var wg sync.WaitGroup
	errs := make(chan error, 90)
	for i := range 30 {
		wg.Add(3)
		go func() {
			defer wg.Done()
			r, err := e.call(a.host(), "GET", "/api/v2/users", nil)
			if err != nil || r.status != http.StatusInternalServerError || !strings.Contains(string(r.body), `"message":"internal error"`) {
				errs <- fmt.Errorf("panicking route, request %d: %v %d %s", i, err, r.status, r.body)
			}
		}()
		go func() {
			defer wg.Done()
			if r, err := e.call(a.host(), "GET", "/userve/v1/user-group/", nil, a.admin()); err != nil || r.status != http.StatusOK {
				errs <- fmt.Errorf("same tenant, another route, request %d: %v %d %s", i, err, r.status, r.body)
			}
		}()
		go func() {
			defer wg.Done()
			if r, err := e.call(b.host(), "GET", "/api/v2/users", nil); err != nil || r.status != http.StatusOK {
				errs <- fmt.Errorf("other tenant, request %d: %v %d %s", i, err, r.status, r.body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := testutil.ToFloat64(e.pool.metrics.rejections.WithLabelValues(reasonPanic)); n != 30 {
		t.Errorf("rejections{panic} = %v, want 30", n)
	}
	e.waitSeatsFree()
}

// A panic while a tenant's server is being built (here in the test's
// wrapper, which runs during the build) fails that tenant's activation:
// its requests get 503 in the dialect's shape, and each retries the build;
// the other tenant serves.
func TestAPanicWhileBuildingFailsOnlyThatTenant(t *testing.T) {
	e := newPoolEnv(t, Options{}, testHooks{wrap: func(tenant string, next http.Handler) http.Handler {
		if tenant == "team-a/acme" {
			panic("injected at build")
		}
		return next
	}})
	a, b := e.add("team-a", "acme"), e.add("team-b", "globex")
	for range 3 {
		r := e.must(http.StatusServiceUnavailable, a.host(), "GET", "/api/v2/users", nil)
		if msg, _ := r.obj(t)["message"].(string); msg != "user service unavailable, try again" || r.header.Get("Retry-After") == "" {
			t.Errorf("a tenant whose build panics: %s (Retry-After %q)", r.body, r.header.Get("Retry-After"))
		}
		e.must(http.StatusOK, b.host(), "GET", "/api/v2/users", nil)
	}
	if n := testutil.ToFloat64(e.pool.metrics.activations.WithLabelValues("error")); n != 3 {
		t.Errorf("activations{error} = %v, want 3 (each request retries)", n)
	}
	if n := testutil.ToFloat64(e.pool.metrics.loaded); n != 1 {
		t.Errorf("tenants loaded = %v, want 1", n)
	}
}
