package server

import (
	"context"
	"time"
)

// DefaultQuietAfter is how long a server goes without API requests before
// Options.Quiet runs (when QuietAfter is 0).
const DefaultQuietAfter = 30 * time.Second

// Paths of the probes. Kubelet calls them every few seconds whether anyone
// uses the tenant or not, so they are not activity (see activeStart).
const (
	healthzPath = "/healthz"
	readyzPath  = "/readyz"
)

// activeStart marks a request on path as activity for the quiet watch,
// from its start until activeEnd(counted) at its end: every path but the
// probes'.
func (s *Server) activeStart(path string) (counted bool) {
	if path == healthzPath || path == readyzPath {
		return false
	}
	s.activity.Add(1)
	s.busy.Add(1)
	return true
}

func (s *Server) activeEnd(counted bool) {
	if counted {
		s.busy.Add(-1)
		s.activity.Add(1)
	}
}

// watchQuiet runs Options.Quiet once per quiet spell: when QuietAfter has
// passed since it last saw a request (probes aside) start, end or run,
// and one came since the last call. It runs in the background work after
// Options.Started, which has just given memory back, so the first spell
// needs a request too. It looks twice per QuietAfter: Quiet runs between
// one and one and a half QuietAfter after the last request.
func (s *Server) watchQuiet(ctx context.Context) {
	if s.quiet == nil {
		return
	}
	t := time.NewTicker(s.quietAfter / 2)
	defer t.Stop()
	seen, changed, done := s.activity.Load(), time.Now(), true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Requests counted before this look arrived before now.
		now := time.Now()
		if n := s.activity.Load(); n != seen || s.busy.Load() > 0 {
			seen, changed, done = n, now, false
			continue
		}
		if !done && now.Sub(changed) >= s.quietAfter {
			s.quiet()
			done = true
		}
	}
}
