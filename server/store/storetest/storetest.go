// Package storetest holds what several packages' tests need of the store:
// the failures it calls transient (store.IsTransient), so that both
// dialects check their answers against the same list, and exports held
// open.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"userve.dev/userve/server/store"
)

// TransientErrors are store failures that pass by themselves, by name: each
// must answer 503 with Retry-After, never 500.
func TransientErrors() map[string]error {
	return map[string]error{
		"SQLITE_BUSY": fmt.Errorf("store: %w", mongo.CommandError{Code: 1, Name: "InternalError",
			Message: "database is locked (5) (SQLITE_BUSY)"}),
		"unavailable":    fmt.Errorf("%w: server selection error", store.ErrUnavailable),
		"deadline":       context.DeadlineExceeded,
		"maxTimeMS":      mongo.CommandError{Code: 50, Name: "MaxTimeMSExpired"},
		"network":        mongo.CommandError{Labels: []string{"NetworkError"}, Message: "connection reset"},
		"wallet is busy": store.ErrWalletBusy,
	}
}

// HoldExports starts n exports of s that stay open (each inside its first
// user; the store must hold one) until release, which returns their errors.
func HoldExports(s *store.Store, n int) (release func() error) {
	inside, done := make(chan struct{}), make(chan struct{})
	errs := make(chan error, n)
	for range n {
		go func() {
			first := true
			errs <- s.ExportUsers(context.Background(), store.Filter{}, func(*store.ExportedUser) error {
				if first {
					first = false
					inside <- struct{}{}
				}
				<-done
				return nil
			})
		}()
	}
	for range n {
		<-inside
	}
	return func() error {
		close(done)
		var first error
		for range n {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		return first
	}
}

// ErrCrash is what an armed Crash makes its stage fail with.
var ErrCrash = errors.New("simulated crash")

// Crash stops a store's ledger entry or merge at one stage while armed, as
// a crash there would. Give its Fault to store.WithFault; the zero value is
// disarmed.
type Crash struct{ stage atomic.Pointer[string] }

// At arms the crash at stage (see store.WithFault); "" disarms it.
func (c *Crash) At(stage string) { c.stage.Store(&stage) }

// Fault is the hook for store.WithFault.
func (c *Crash) Fault(stage string) error {
	if at := c.stage.Load(); at != nil && *at == stage {
		return ErrCrash
	}
	return nil
}
