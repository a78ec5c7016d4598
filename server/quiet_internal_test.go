package server

import (
	"context"
	"testing"
	"time"
)

// A request running longer than QuietAfter holds Quiet off until it ends:
// a long export or import is not a quiet spell.
func TestQuietWaitsForRunningRequests(t *testing.T) {
	const quietAfter = 50 * time.Millisecond
	quiet := make(chan time.Time, 10)
	s := &Server{quiet: func() { quiet <- time.Now() }, quietAfter: quietAfter}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.watchQuiet(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	if !s.activeStart("/userve/v1/users/export/") {
		t.Fatal("an API request is not counted")
	}
	if s.activeStart(healthzPath) || s.activeStart(readyzPath) {
		t.Fatal("a probe is counted")
	}
	// The running request spans many periods; another request comes and
	// goes meanwhile.
	time.Sleep(2 * quietAfter)
	s.activeEnd(s.activeStart("/userve/v2.0/miniapp/user_profile/"))
	time.Sleep(2 * quietAfter)
	ended := time.Now()
	s.activeEnd(true)
	select {
	case at := <-quiet:
		if at.Before(ended.Add(quietAfter)) {
			t.Fatalf("Quiet ran %v after the long request ended; want at least %v", at.Sub(ended), quietAfter)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Quiet did not run after the request ended")
	}
}
