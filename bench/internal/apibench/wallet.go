package apibench

import (
	"context"
	"net/http"

	"userve.dev/userve/bench/internal/report"
)

// creditEndpoint is the management API's idempotent wallet credit, each
// request with a fresh idempotency key.
func (t *target) creditEndpoint() endpoint {
	return endpoint{
		name:        report.EndpointCredit,
		request:     `POST /userve/v1/wallet/transactions/ {"user_id","account":"wallet","amount","title","idempotency_key": unique}`,
		driverQuery: "(the wallet store has not landed: no driver ceiling yet)",
		server: func(ctx context.Context, _ int, seq int64) error {
			return t.admin(ctx, http.MethodPost, "/userve/v1/wallet/transactions/", t.creditBody(seq), http.StatusCreated)
		},
	}
}
