package plus

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/store"
)

// tooMany is the 429 of a spent budget, with its Retry-After; what says
// which budget it was.
func tooMany(w http.ResponseWriter, t *account.Throttled, what string) *apiError {
	secs := t.Seconds()
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	return newError(http.StatusTooManyRequests, fmt.Sprintf("%s; retry in %d seconds", what, secs))
}

// checkPassword verifies the caller's password (field names it in a 422)
// against the attempt budgets it shares with logins.
func (h *Handler) checkPassword(ctx context.Context, w http.ResponseWriter, r *http.Request, p *store.Profile, field, password string) error {
	err := h.accounts.CheckPassword(ctx, h.clientIP(r), p, password)
	var throttled *account.Throttled
	switch {
	case errors.As(err, &throttled):
		what := "too many wrong passwords for this account"
		if throttled.Budget == account.BudgetAddress {
			what = "too many wrong passwords from this address"
		}
		return tooMany(w, throttled, what)
	case errors.Is(err, account.ErrWrongPassword):
		return invalid(field, field+" is wrong")
	}
	return err
}
