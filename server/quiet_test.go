package server_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"userve.dev/userve/server"
	"userve.dev/userve/test/mongofixture"
)

// Options.Quiet runs once a whole QuietAfter has passed without API
// requests, however often the probes come (kubelet calls them every few
// seconds whether anyone uses the tenant or not), and once per quiet
// spell: the next spell needs a request again.
func TestQuietRunsWhenOnlyProbesCome(t *testing.T) {
	const quietAfter = 100 * time.Millisecond
	quiet := make(chan time.Time, 10)
	started := make(chan struct{})
	e := newEnvWith(t, testSpec(), mongofixture.URI(t), "", server.Options{
		Started: func() { close(started) }, Quiet: func() { quiet <- time.Now() }, QuietAfter: quietAfter})
	e.server.Start(context.Background())
	t.Cleanup(e.server.Close)
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("start-up work did not finish")
	}

	// Probes from 8 clients, without pause, until the test ends.
	stop := make(chan struct{})
	var probers sync.WaitGroup
	t.Cleanup(func() { close(stop); probers.Wait() })
	for i := range 8 {
		probers.Add(1)
		go func() {
			defer probers.Done()
			path := []string{"/healthz", "/readyz"}[i%2]
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := e.srv.Client().Get(e.srv.URL + path)
				if err != nil {
					t.Errorf("GET %s: %v", path, err)
					return
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Errorf("GET %s: %d", path, res.StatusCode)
					return
				}
			}
		}()
	}

	// API requests for four periods: Quiet waits for a whole period after
	// the last one.
	// last is taken before each request: the server counts it later.
	var last time.Time
	for end := time.Now().Add(4 * quietAfter); time.Now().Before(end); {
		last = time.Now()
		e.do("GET", "/userve/v2.0/miniapp/user_profile/", nil).want(t, http.StatusOK)
	}
	for spell := 1; spell <= 2; spell++ {
		select {
		case at := <-quiet:
			if gap := at.Sub(last); gap < quietAfter {
				t.Fatalf("spell %d: Quiet ran %v after the last API request; want at least %v", spell, gap, quietAfter)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("spell %d: Quiet did not run while only probes came", spell)
		}
		if n := len(quiet); n != 0 {
			t.Fatalf("spell %d: Quiet ran %d more times", spell, n)
		}
		// The next spell starts with a request.
		last = time.Now()
		e.do("GET", "/userve/v2.0/miniapp/user_profile/", nil).want(t, http.StatusOK)
	}
}
