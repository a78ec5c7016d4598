package account

import (
	"time"

	"userve.dev/userve/server/store"
)

// Banned refuses a banned user's login or token (every dialect answers 403
// with Error(), which tells the tenant's reason and when the ban lifts).
type Banned struct {
	Reason string
	// Until is when the ban lifts; zero for a ban without expiry.
	Until time.Time
}

func (b *Banned) Error() string {
	msg := "this account is banned"
	if b.Reason != "" {
		msg += ": " + b.Reason
	}
	if !b.Until.IsZero() {
		msg += " (until " + b.Until.UTC().Format(time.RFC3339) + ")"
	}
	return msg
}

func bannedError(b *store.Ban) *Banned {
	out := &Banned{Reason: b.Reason}
	if !b.Permanent() {
		out.Until = b.Until
	}
	return out
}
