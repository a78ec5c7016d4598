package account

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"userve.dev/userve/server/store"
	"userve.dev/userve/server/telemetry"
)

// Budget names the limit a refusal came from.
type Budget string

// Budgets of the limiter (failures) and of code issuing (codes sent).
const (
	BudgetAddress     Budget = "address"      // failures from one client address
	BudgetAccount     Budget = "account"      // failures against one account
	BudgetCodeAddress Budget = "code-address" // code requests from one address
	BudgetCodeTarget  Budget = "code-target"  // codes sent to one phone or e-mail
	BudgetCodeTenant  Budget = "code-tenant"  // codes the tenant sends per hour
)

// Throttled is a refusal: a budget is spent until RetryAfter has passed.
type Throttled struct {
	Budget     Budget
	RetryAfter time.Duration
}

func (t *Throttled) Error() string {
	return fmt.Sprintf("%s budget spent; retry in %d seconds", t.Budget, t.Seconds())
}

// Seconds is RetryAfter in whole seconds, rounded up (at least 1).
func (t *Throttled) Seconds() int64 {
	return max(int64((t.RetryAfter+time.Second-1)/time.Second), 1)
}

func (s *Service) throttled(b Budget, win store.RateWindow) *Throttled {
	return &Throttled{Budget: b, RetryAfter: win.RetryAfter(s.store.Now())}
}

// Account is whose budget an attempt spends: a user, or for a login that
// names nobody, the name it was tried under (so probing names is limited
// like guessing passwords). The zero Account spends no account budget.
type Account struct{ key string }

// UserAccount is the budget of user id, whichever name, e-mail or phone it
// was reached by.
func UserAccount(id int64) Account {
	return Account{key: "login-fail:user:" + strconv.FormatInt(id, 10)}
}

// UnknownAccount is the budget of a login that matches no user.
func UnknownAccount(login string) Account {
	return Account{key: "login-fail:unknown:" + strings.ToLower(login)}
}

// Attempt is one try at a credential, counted before it is judged: the
// slots it took stay taken (they are the failure's count) unless Succeeded
// gives them back.
type Attempt struct {
	s        *Service
	addrSlot store.RateSlot
	acct     Account
}

// Begin takes an attempt slot of the client address (unless address is
// "") and of acct (unless zero) before anything is judged, so parallel
// guesses cannot outrun the budgets. A spent budget is a *Throttled.
func (s *Service) Begin(ctx context.Context, address string, acct Account) (*Attempt, error) {
	a := &Attempt{s: s, acct: acct}
	if address != "" {
		slot, win, admitted, err := s.store.TakeRateSlot(ctx, "login-fail:ip:"+address, FailureWindow, FailuresPerAddress)
		if err != nil {
			return nil, err
		}
		if !admitted {
			s.metrics.LoginThrottled(telemetry.ThrottleAddress)
			return nil, s.throttled(BudgetAddress, win)
		}
		a.addrSlot = slot
	}
	if acct.key != "" {
		_, win, admitted, err := s.store.TakeRateSlot(ctx, acct.key, FailureWindow, FailuresPerAccount)
		if err != nil {
			return nil, err
		}
		if !admitted {
			s.metrics.LoginThrottled(telemetry.ThrottleAccount)
			return nil, s.throttled(BudgetAccount, win)
		}
	}
	return a, nil
}

// Succeeded ends a successful attempt: it does not count against the
// address, and it proves the owner, so the account's failures are forgiven.
func (a *Attempt) Succeeded(ctx context.Context) {
	a.s.release(ctx, a.addrSlot)
	if a.acct.key != "" {
		if err := a.s.store.ResetRateLimit(context.WithoutCancel(ctx), a.acct.key, FailureWindow); err != nil {
			a.s.log.Warn("resetting an account's failures failed", "error", err)
		}
	}
}

// release gives rate-limit slots back, best effort: a slot that stays
// taken only makes a limit stricter until its window ends.
func (s *Service) release(ctx context.Context, slots ...store.RateSlot) {
	for _, sl := range slots {
		if err := s.store.ReleaseRateSlot(context.WithoutCancel(ctx), sl); err != nil {
			s.log.Warn("giving a rate-limit slot back failed", "error", err)
		}
	}
}
