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
	BudgetAddress        Budget = "address"         // failures from one client address
	BudgetAccountAddress Budget = "account-address" // failures against one account from one address
	BudgetAccount        Budget = "account"         // failures against one account from all addresses
	BudgetLookup         Budget = "lookup"          // users one caller looked up by phone or e-mail
	BudgetSearch         Budget = "search"          // name searches from one client address
	BudgetCodeAddress    Budget = "code-address"    // code requests from one address
	BudgetCodeTarget     Budget = "code-target"     // codes sent to one phone or e-mail
	BudgetCodeTenant     Budget = "code-tenant"     // codes the tenant sends per hour
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
	s                            *Service
	addrSlot, pairSlot, ceilSlot store.RateSlot
}

// Begin takes an attempt slot of the client address (unless address is
// ""), of acct from that address and of acct's ceiling (unless acct is
// zero) before anything is judged, so parallel guesses cannot outrun the
// budgets; all three in one store round trip in the common case. A spent
// budget is a *Throttled; the slots of the budgets before it stay taken (a
// refused try from an address still counts for that address), the ones
// after it are not taken.
func (s *Service) Begin(ctx context.Context, address string, acct Account) (*Attempt, error) {
	type budget struct {
		name     Budget
		throttle telemetry.ThrottleKind
		slot     *store.RateSlot
	}
	a := &Attempt{s: s}
	var claims []store.RateClaim
	var budgets []budget
	claim := func(key string, limit int64, b budget) {
		claims = append(claims, store.RateClaim{Key: key, Window: FailureWindow, Limit: limit})
		budgets = append(budgets, b)
	}
	if address != "" {
		claim("login-fail:ip:"+address, FailuresPerAddress, budget{BudgetAddress, telemetry.ThrottleAddress, &a.addrSlot})
	}
	if acct.key != "" {
		if address != "" {
			claim(acct.key+"|ip:"+address, FailuresPerAccountAddress, budget{BudgetAccountAddress, telemetry.ThrottleAccount, &a.pairSlot})
		}
		claim(acct.key, FailuresPerAccount, budget{BudgetAccount, telemetry.ThrottleAccount, &a.ceilSlot})
	}
	if len(claims) == 0 {
		return a, nil
	}
	takes, err := s.store.TakeRateSlots(ctx, claims...)
	if err != nil {
		return nil, err
	}
	for i, t := range takes {
		if !t.Admitted {
			s.metrics.LoginThrottled(budgets[i].throttle)
			return nil, s.throttled(budgets[i].name, t.Window)
		}
		*budgets[i].slot = t.Slot
	}
	return a, nil
}

// Succeeded ends a successful attempt: it counts against neither the
// address nor the ceiling, and it proves the owner at this address, so the
// account's failures from here are forgiven. (Failures from other
// addresses stay counted: a success here says nothing about them.) One
// store round trip.
func (a *Attempt) Succeeded(ctx context.Context) {
	err := a.s.store.GiveBackRateSlots(context.WithoutCancel(ctx), []store.RateSlot{a.addrSlot, a.ceilSlot}, []store.RateSlot{a.pairSlot})
	if err != nil {
		a.s.log.Warn("giving back a successful login's rate-limit slots failed", "error", err)
	}
}

// CountSearch counts one substring search of users by name from address
// (the client's address key): a *Throttled once SearchesPerAddress are
// spent in SearchWindow.
func (s *Service) CountSearch(ctx context.Context, address string) error {
	win, admitted, err := s.store.HitRateLimit(ctx, "search:ip:"+address, SearchWindow, SearchesPerAddress)
	if err != nil {
		return err
	}
	if !admitted {
		return s.throttled(BudgetSearch, win)
	}
	return nil
}

// CountLookup counts one lookup of a user by phone or e-mail by caller (a
// user id): a *Throttled once LookupsPerCaller are spent in LookupWindow.
func (s *Service) CountLookup(ctx context.Context, caller int64) error {
	win, admitted, err := s.store.HitRateLimit(ctx, "lookup:user:"+strconv.FormatInt(caller, 10), LookupWindow, LookupsPerCaller)
	if err != nil {
		return err
	}
	if !admitted {
		return s.throttled(BudgetLookup, win)
	}
	return nil
}

// Abandoned ends an attempt that was never judged (the password check was
// refused as busy): it gives every slot back, so a burst the server could
// not serve costs the owner none of their budget.
func (a *Attempt) Abandoned(ctx context.Context) {
	a.s.release(ctx, a.addrSlot, a.pairSlot, a.ceilSlot)
}

// release gives rate-limit slots back, best effort: a slot that stays
// taken only makes a limit stricter until its window ends.
func (s *Service) release(ctx context.Context, slots ...store.RateSlot) {
	if err := s.store.GiveBackRateSlots(context.WithoutCancel(ctx), slots, nil); err != nil {
		s.log.Warn("giving rate-limit slots back failed", "error", err)
	}
}
