package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"userve.dev/userve/api/v1alpha1"
)

// firstReportDelay is how long a tenant born in a pool may go without a
// status while it waits for the pool's acknowledgement (a pool acknowledges
// within a fraction of a second). Acknowledged by then, the tenant's first
// status says Ready, Pooled: one status write instead of two (MovingIn,
// then Pooled). A status write is the costliest request a tenant makes of
// the API server (the whole UserService decoded, validated against the
// CRD's schema and encoded again): a status less per tenant was ~12% of the
// API server's CPU at 1,000 pooled tenants. Still waiting then, it reports
// MovingIn as before.
const firstReportDelay = 2 * time.Second

// firstReports remembers since when each new pooled tenant's first status
// is held back.
type firstReports struct {
	mu    sync.Mutex
	since map[types.UID]time.Time
}

// hold says whether us's status may be held back now: within
// firstReportDelay of the first time it was.
func (f *firstReports) hold(us *v1alpha1.UserService) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.since == nil {
		f.since = map[types.UID]time.Time{}
	}
	first, ok := f.since[us.UID]
	if !ok {
		f.since[us.UID] = time.Now()
		return true
	}
	return time.Since(first) < firstReportDelay
}

// done forgets us once its status is written.
func (f *firstReports) done(us *v1alpha1.UserService) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.since, us.UID)
}
