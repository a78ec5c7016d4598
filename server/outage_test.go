package server_test

import (
	"net/http"
	"testing"
	"time"

	"userve.dev/userve/test/mongofixture"
)

// outageBound is how long a request may take while MongoDB is down: server
// selection gives up after 2 s; the bound leaves room for a loaded machine.
// It checks that requests do not hang, not how fast they are.
const outageBound = 12 * time.Second

func TestStoreOutage(t *testing.T) {
	mongo := mongofixture.NewServer(t)
	e := newEnvWith(t, testSpec(), mongo.URI, "outage")
	id := e.createUser(map[string]any{"nickname": "before"})
	e.doAuth("GET", "/readyz", nil, "").want(t, 200)

	mongo.Stop()
	r := e.doAuth("GET", "/readyz", nil, "")
	r.wantError(t, http.StatusServiceUnavailable, "unreachable")
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"GET", v20, nil},
		{"GET", v20 + "1/", nil},
		{"PUT", v20 + "1/", `{"name":"x"}`},
		{"POST", v20, `{"nickname":"during"}`},
		{"GET", groupsPath, nil},
	} {
		start := time.Now()
		r := e.do(c.method, c.path, c.body)
		elapsed := time.Since(start)
		t.Logf("%s %s with MongoDB down: %d after %s", c.method, c.path, r.status, elapsed.Round(time.Millisecond))
		if elapsed > outageBound {
			t.Errorf("%s %s took %s with MongoDB down", c.method, c.path, elapsed)
		}
		r.wantError(t, http.StatusServiceUnavailable, "user store unavailable")
		if r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s: 503 without Retry-After", c.method, c.path)
		}
	}
	// Liveness does not depend on the store.
	e.doAuth("GET", "/healthz", nil, "").want(t, 200)
	// Each 503 counted once as the store unavailable (the alert's input).
	if got := metricValue(t, e.metrics.URL, "userve_store_errors_total", "kind", "unavailable"); got != 5 {
		t.Errorf("userve_store_errors_total{kind=unavailable} = %v, want 5", got)
	}
	if got := metricValue(t, e.metrics.URL, "userve_http_requests_total", "method", "GET", "route", "/userve/v2.0/miniapp/user_profile/{user_id}/", "code", "503"); got != 1 {
		t.Errorf("503s of the profile route template = %v, want 1", got)
	}

	if err := mongo.Start(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	deadline := restarted.Add(60 * time.Second)
	for e.doAuth("GET", "/readyz", nil, "").status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("not ready again after MongoDB returned")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("ready again %s after MongoDB restarted", time.Since(restarted).Round(time.Millisecond))
	r = e.do("GET", v20, nil).want(t, 200)
	if got := ids(t, r); len(got) != 1 || got[0] != id {
		t.Fatalf("after recovery: %s", r.raw)
	}
	e.createUser(map[string]any{"nickname": "after"})
}

// TestStartsWithoutStore: the process serves /healthz and refuses the API
// until MongoDB is reachable, then creates the indexes by itself.
func TestStartsWithoutStore(t *testing.T) {
	mongo := mongofixture.NewServer(t)
	mongo.Stop()
	base, _, stop := startServer(t, mongo.URI, "late")
	res, err := http.Get(base + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz without store: %v %v", res, err)
	}
	res.Body.Close()
	res, err = http.Get(base + "/readyz")
	if err != nil || res.StatusCode != 503 {
		t.Fatalf("readyz without store: %v %v", res, err)
	}
	res.Body.Close()
	req, _ := http.NewRequest("GET", base+v20, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err = http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 503 {
		t.Fatalf("API without store: %v %v", res, err)
	}
	res.Body.Close()

	if err := mongo.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, base, 60*time.Second)
	res, err = http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("API after the store came: %v %v", res, err)
	}
	res.Body.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
