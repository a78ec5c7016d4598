package plus

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/store"
)

// tooMany is the 429 of a spent budget, with its Retry-After; what says
// which budget it was.
func tooMany(t *account.Throttled, what string) *apiError {
	secs := t.Seconds()
	return &apiError{status: http.StatusTooManyRequests, retryAfter: secs,
		message: fmt.Sprintf("%s; retry in %d seconds", what, secs)}
}

// failureBudget words the refusal of a failure budget; what names the
// failures ("failed logins").
func failureBudget(b account.Budget, what string) string {
	switch b {
	case account.BudgetAddress:
		return "too many " + what + " from this address"
	case account.BudgetAccountAddress:
		return "too many " + what + " for this account from this address"
	}
	return "too many " + what + " for this account"
}

// checkPassword verifies the caller's password (field names it in a 422)
// against the attempt budgets it shares with logins.
func (h *Handler) checkPassword(ctx context.Context, w http.ResponseWriter, r *http.Request, p *store.Profile, field, password string) error {
	err := h.accounts.CheckPassword(ctx, h.clientIP(r), p, password)
	var throttled *account.Throttled
	switch {
	case errors.As(err, &throttled):
		return tooMany(throttled, failureBudget(throttled.Budget, "wrong passwords"))
	case errors.Is(err, account.ErrWrongPassword):
		return invalid(field, field+" is wrong")
	}
	return err
}
