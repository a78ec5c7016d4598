package account

// Re-authentication: a stolen access token must not be enough to take an
// account over. Changes that would hand the account to someone else (a new
// phone or e-mail, which a password reset then trusts; linking a WeChat
// account or binding its phone, both ways in; a first password) need proof
// that the caller is the owner: the password, a code sent to a contact the
// account already has, or a login within the tenant's window. The contacts
// the account had are then told of the change.

import (
	"context"
	"errors"
	"time"

	"userve.dev/userve/server/store"
	"userve.dev/userve/server/verify"
)

// Proof is what a signed-in caller offers to show it is the owner.
type Proof struct {
	// Address is the client's address key (ClientAddress).
	Address string
	// LoggedInAt is the login of the caller's token (its auth_time: a
	// refresh keeps it, so refreshing never reopens the window).
	LoggedInAt time.Time
	// Password, when HasPassword, is the account's password.
	Password    string
	HasPassword bool
	// Code, when HasCode, is a code sent to CurrentContact(p).
	Code    string
	HasCode bool
}

// Errors of Reauthenticate besides those of CheckPassword and ConsumeCode.
var (
	// ErrReauthRequired: no proof was offered and the login is older
	// than the window.
	ErrReauthRequired = errors.New("this change needs proof that it is you")
	// ErrNoPassword: a password was offered for an account without one.
	ErrNoPassword = errors.New("the account has no password")
	// ErrNoContact: a code was offered for an account without a phone or
	// e-mail to send it to.
	ErrNoContact = errors.New("the account has no phone or e-mail")
)

// CurrentContact is where a re-authentication code for p goes: its phone,
// else its e-mail (ok false: neither).
func CurrentContact(p *store.Profile) (Contact, bool) {
	switch {
	case p.Phone != "":
		return Contact{Field: store.FieldPhone, Value: p.Phone}, true
	case p.Email != "":
		return Contact{Field: store.FieldEmail, Value: p.Email}, true
	}
	return Contact{}, false
}

// Reauthenticate judges proof for p. An offered proof is always judged,
// even within the window (a wrong password is wrong): the password against
// the same attempt budgets as a login (CheckPassword), a code as any code
// (ConsumeCode). Without one, a login less than window ago suffices.
func (s *Service) Reauthenticate(ctx context.Context, p *store.Profile, proof Proof, window time.Duration) error {
	switch {
	case proof.HasPassword:
		if p.PasswordHash == "" {
			return ErrNoPassword
		}
		return s.CheckPassword(ctx, proof.Address, p, proof.Password)
	case proof.HasCode:
		c, ok := CurrentContact(p)
		if !ok {
			return ErrNoContact
		}
		return s.ConsumeCode(ctx, c, proof.Code)
	case !proof.LoggedInAt.IsZero() && s.store.Now().Sub(proof.LoggedInAt) < window:
		return nil
	}
	return ErrReauthRequired
}

// Notify tells every contact `before` had (the account as it was before
// the change) of notice, through the tenant's delivery. Best effort: the
// change is made already, so a delivery failure is logged, not returned,
// and a channel without delivery is skipped.
func (s *Service) Notify(ctx context.Context, before *store.Profile, notice string) {
	ctx = context.WithoutCancel(ctx)
	for _, c := range []Contact{{Field: store.FieldPhone, Value: before.Phone}, {Field: store.FieldEmail, Value: before.Email}} {
		if c.Value == "" || !s.Delivers(c.Channel()) {
			continue
		}
		m := verify.Message{Tenant: s.issuer, Channel: c.Channel(), To: c.Value, Purpose: verify.PurposeNotice, Notice: notice}
		if err := s.sender.Send(ctx, m); err != nil {
			s.log.Warn("account notice delivery failed", "channel", string(c.Channel()), "notice", notice, "user", before.ID, "error", err)
		}
	}
}
