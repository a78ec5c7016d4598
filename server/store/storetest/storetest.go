// Package storetest holds store failures for the dialects' tests, so that
// both check their answers against the same list of what the store calls
// transient (store.IsTransient).
package storetest

import (
	"context"
	"fmt"

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
