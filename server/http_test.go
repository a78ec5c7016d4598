package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/store"
	"userve.dev/userve/test/mongofixture"
	"userve.dev/userve/test/syncbuf"
)

func TestAuth(t *testing.T) {
	e := newEnv(t)
	paths := []string{v20, "/oserve/v2.2/miniapp/user_profile/", v20 + "1/", groupsPath, "/userve/v1/miniapp/group/membership/"}
	methods := []string{"GET", "GET", "PUT", "POST", "PATCH"}
	for i, p := range paths {
		for _, auth := range []string{"", "Bearer", "Bearer ", "Basic " + adminToken, "Bearer wrong", "Bearer " + adminToken + "x", "Token " + adminToken} {
			r := e.doAuth(methods[i], p, "{}", auth)
			r.wantError(t, http.StatusUnauthorized)
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s with %q: no WWW-Authenticate", methods[i], p, auth)
			}
		}
	}
	// Every configured token works; the scheme is case-insensitive.
	e.doAuth("GET", v20, nil, "Bearer other-token").want(t, 200)
	e.doAuth("GET", v20, nil, "bearer "+adminToken).want(t, 200)
}

func TestRouteErrorsAreJSON(t *testing.T) {
	e := newEnv(t)
	e.do("GET", "/userve/v2.0/miniapp/nope/", nil).wantError(t, http.StatusNotFound, "no such route")
	e.do("GET", "/", nil).wantError(t, http.StatusNotFound)
	for _, c := range []struct{ method, path string }{
		{"PATCH", v20}, {"DELETE", v20}, {"POST", v20 + "1/"}, {"PATCH", groupsPath + "1/"},
		{"GET", "/userve/v1/miniapp/group/membership/"}, {"POST", "/healthz"},
	} {
		e.do(c.method, c.path, nil).wantError(t, http.StatusMethodNotAllowed, "method "+c.method+" not allowed")
	}
}

// The end-user dialect answers unknown routes and wrong methods in its own
// shape, with 405 (not 404) for a known path; the management dialect keeps
// its shape next to it.
func TestRouteErrorsPerDialect(t *testing.T) {
	e := newEnvWith(t, plusSpec(), mongofixture.URI(t), "")
	for _, c := range []struct{ method, path string }{
		{"POST", "/api/v2/user"}, {"DELETE", "/api/v2/users"}, {"GET", "/api/v2/auth/login"},
		{"POST", "/api/v2/user/followings/1"}, {"GET", "/api/v2/plus-pay/transfer"},
	} {
		e.doAuth(c.method, c.path, nil, "").wantMessage(t, http.StatusMethodNotAllowed, "method "+c.method+" not allowed")
	}
	e.doAuth("GET", "/api/v2/nope", nil, "").wantMessage(t, http.StatusNotFound, "no such route")
	e.doAuth("GET", "/api/v1/users", nil, "").wantMessage(t, http.StatusNotFound, "no such route")
	// The routes themselves still answer.
	e.doAuth("GET", "/api/v2/users", nil, "").want(t, http.StatusOK)
	e.doAuth("GET", "/api/v2/user", nil, "").wantMessage(t, http.StatusUnauthorized)

	e.do("PATCH", v20, nil).wantError(t, http.StatusMethodNotAllowed, "method PATCH not allowed")
	e.do("GET", "/userve/v2.0/miniapp/nope/", nil).wantError(t, http.StatusNotFound, "no such route")
}

func TestBadBodies(t *testing.T) {
	e := newEnv(t)
	put := fmt.Sprintf("%s%d/", v20, e.createUser(map[string]any{}))
	big := `{"name":"` + strings.Repeat("x", 1<<20) + `"}`
	e.do("PUT", put, big).wantError(t, 400, "exceeds 1048576 bytes")
	e.do("POST", v20, big).wantError(t, 400, "exceeds 1048576 bytes")
	e.do("POST", groupsPath, big).wantError(t, 400, "exceeds 1048576 bytes")
	e.do("PUT", put, "name=tom").wantError(t, 400, "not valid JSON")
	e.do("PUT", put, "").wantError(t, 400, "body is empty")
	e.do("PUT", put, `{"name":"a"} {"name":"b"}`).wantError(t, 400, "data after the JSON value")
	e.do("PUT", put, `{"name":"a"`).wantError(t, 400, "not valid JSON")
	e.do("POST", groupsPath, `{"name":["a"]}`).wantError(t, 400, `field "name" must be a string, not array`)
	e.do("POST", groupsPath, `{"name":"a","extra":1}`).wantError(t, 400, `unknown field "extra"`)
	e.do("PATCH", "/userve/v1/miniapp/group/membership/", `[{"op":"add","path":"/membership","users":[1.5],"groups":[1]}]`).
		wantError(t, 400, `"users"`)

	// A body over the limit without a Content-Length (chunked) is caught
	// while reading.
	req, _ := http.NewRequest("PUT", e.srv.URL+put, io.MultiReader(strings.NewReader(`{"name":"`), strings.NewReader(strings.Repeat("x", 2<<20)), strings.NewReader(`"}`)))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.ContentLength = -1
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 400 || !strings.Contains(string(raw), "exceeds") {
		t.Fatalf("chunked big body: %d %s", res.StatusCode, raw)
	}
}

func TestOperationalEndpointsAndMetrics(t *testing.T) {
	e := newEnv(t)
	r := e.doAuth("GET", "/healthz", nil, "").want(t, 200)
	if r.body["status"] != "ok" {
		t.Fatalf("healthz %s", r.raw)
	}
	e.doAuth("GET", "/readyz", nil, "").want(t, 200)
	e.do("GET", v20+"?gender=1", nil).want(t, 200)
	e.do("GET", v20+"?gender=7", nil).want(t, 400)
	e.do("GET", v20+"5/", nil).want(t, 404)
	e.do("GET", "/no/such/path", nil).want(t, 404)
	body := e.scrape()
	for _, want := range []string{
		`userve_http_requests_total{code="200",method="GET",route="/userve/v2.0/miniapp/user_profile/"} 1`,
		`userve_http_requests_total{code="400",method="GET",route="/userve/v2.0/miniapp/user_profile/"} 1`,
		`userve_http_requests_total{code="404",method="GET",route="/userve/v2.0/miniapp/user_profile/{user_id}/"} 1`,
		`userve_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`userve_http_request_duration_seconds_bucket{code="200",method="GET",route="/readyz",le="+Inf"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// /metrics lives on its own listener only: the API listener (what the
// Service's http port and the Ingress route) answers 404 on it, whatever the
// method or a trailing slash, and the metrics listener serves nothing else.
func TestMetricsOnlyOnTheirOwnListener(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/metrics", "/metrics/", "/metrics?format=text"} {
		for _, method := range []string{"GET", "HEAD", "POST"} {
			req, _ := http.NewRequest(method, e.srv.URL+path, nil)
			res, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusNotFound || strings.Contains(string(body), "userve_http_requests_total") {
				t.Errorf("%s %s on the API listener: %d %.200s; want 404 without metrics", method, path, res.StatusCode, body)
			}
		}
	}
	if body := e.scrape(); !strings.Contains(body, `route="unmatched"`) {
		t.Errorf("the refused /metrics requests are not counted as unmatched:\n%.500s", body)
	}
	for _, path := range []string{"/healthz", "/userve/v2.0/miniapp/user_profile/", "/api/v2/users"} {
		res, err := e.metrics.Client().Get(e.metrics.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on the metrics listener: %d, want 404", path, res.StatusCode)
		}
	}
}

// Run serves the API and the metrics on two listeners and stops both.
func TestRunServesMetricsOnTheirOwnAddress(t *testing.T) {
	db := mongofixture.NewDatabase(t)
	st, err := store.Connect(mongofixture.URI(t), db.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	us := &v1alpha1.UserService{Spec: testSpec()}
	us.Name = "acme"
	v1alpha1.SetDefaults(us)
	cfg := &config.Config{Service: us, Database: st.Database(), AdminTokens: []config.AdminToken{{Name: "admin-1", Token: adminToken}}}
	s := server.New(cfg, st, server.Options{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	api, metrics := freeLoopback(t), freeLoopback(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, api, metrics) }()
	defer cancel()
	waitReady(t, "http://"+api, 30*time.Second)
	for url, want := range map[string]int{"http://" + api + "/metrics": 404, "http://" + metrics + "/metrics": 200} {
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", url, res.StatusCode, want)
		}
	}
	// A metrics address already taken fails Run at once, naming the listener.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if err := s.Run(ctx, freeLoopback(t), taken.Addr().String()); err == nil || !strings.Contains(err.Error(), "metrics listener") {
		t.Errorf("Run on a taken metrics address: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(server.ShutdownTimeout + 5*time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := http.Get("http://" + metrics + "/metrics"); err == nil {
		t.Error("the metrics listener still answers after shutdown")
	}
}

func freeLoopback(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServer runs Server.Serve on a loopback listener with a JSON log.
func startServer(t *testing.T, uri, database string) (base string, logs *syncbuf.Buffer, stop func() error) {
	t.Helper()
	st, err := store.Connect(uri, database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return serveStore(t, st)
}

// serveStore is startServer over a given store.
func serveStore(t *testing.T, st *store.Store) (base string, logs *syncbuf.Buffer, stop func() error) {
	t.Helper()
	return serveStoreWith(t, st, server.Options{})
}

// serveStoreWith is serveStore with options (its logger is replaced).
func serveStoreWith(t *testing.T, st *store.Store, opts server.Options) (base string, logs *syncbuf.Buffer, stop func() error) {
	t.Helper()
	s, logs := newLoggedServer(st, opts)
	base, stop = serve(t, s)
	return base, logs, stop
}

// newLoggedServer builds tenant acme's server over st, logging JSON to logs.
func newLoggedServer(st *store.Store, opts server.Options) (s *server.Server, logs *syncbuf.Buffer) {
	us := &v1alpha1.UserService{Spec: testSpec()}
	us.Name = "acme"
	v1alpha1.SetDefaults(us)
	cfg := &config.Config{Service: us, Database: st.Database(), AdminTokens: []config.AdminToken{{Name: "admin-1", Token: adminToken}}}
	logs = &syncbuf.Buffer{}
	opts.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	return server.New(cfg, st, opts), logs
}

// serve runs s.Serve on a loopback listener until stop.
func serve(t *testing.T, s *server.Server) (base string, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	stop = func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(server.ShutdownTimeout + 5*time.Second):
			t.Fatal("Serve did not return after shutdown")
			return nil
		}
	}
	t.Cleanup(func() { cancel() })
	return "http://" + ln.Addr().String(), stop
}

// waitReady polls /readyz until it answers 200.
func waitReady(t *testing.T, base string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within %s", within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestAccessLogAndGracefulShutdown(t *testing.T) {
	st, err := store.Connect(mongofixture.URI(t), mongofixture.NewDatabase(t).Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	s, logs := newLoggedServer(st, server.Options{})
	base, stop := serve(t, s)
	waitReady(t, base, 30*time.Second)
	addr := strings.TrimPrefix(base, "http://")

	// An in-flight request: headers sent, body still coming when the
	// shutdown starts. It must still be answered.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"nickname":"late"}`
	_, err = io.WriteString(conn, "POST /userve/v2.0/miniapp/user_profile/ HTTP/1.1\r\nHost: x\r\n"+
		"Authorization: Bearer "+adminToken+"\r\nContent-Type: application/json\r\n"+
		"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body[:5])
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server reading the request's body", func() bool {
		return strings.Contains(scrape(t, s), "userve_http_requests_in_flight 1\n")
	})
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	waitFor(t, "the shutdown to close the listener", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if _, err := io.WriteString(conn, body[5:]); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request lost in shutdown: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("in-flight request: %d", res.StatusCode)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	// New connections are refused after shutdown.
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("server still accepting after shutdown")
	}

	// One JSON access log line per request, with route template and status.
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if entry["msg"] == "request" && entry["method"] == "POST" {
			found = entry["route"] == "/userve/v2.0/miniapp/user_profile/" && entry["status"] == float64(201) &&
				entry["duration_ms"] != nil && entry["path"] == "/userve/v2.0/miniapp/user_profile/"
		}
	}
	if !found {
		t.Fatalf("no access log line for the POST:\n%s", logs.String())
	}
}

func TestResponsesKeepHTMLCharacters(t *testing.T) {
	e := newEnv(t)
	r := e.do("POST", v20, map[string]any{"avatar": "https://x.io/a.jpg?w=1&h=2", "nickname": "<b>"}).want(t, 201)
	if !strings.Contains(string(r.raw), `"avatar":"https://x.io/a.jpg?w=1&h=2"`) || !strings.Contains(string(r.raw), `"nickname":"<b>"`) {
		t.Fatalf("escaped output: %s", r.raw)
	}
}

// waitFor polls cond until it holds, failing the test after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// scrape reads s's metrics as Prometheus text.
func scrape(t *testing.T, s *server.Server) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}
