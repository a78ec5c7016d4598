package account

import (
	"context"
	"errors"

	"userve.dev/userve/server/store"
	"userve.dev/userve/server/telemetry"
	"userve.dev/userve/server/verify"
)

// LoginTry is one login: the account it names and the proof offered.
type LoginTry struct {
	// Address is the client's address key (ClientAddress).
	Address string
	// Field is how Ident names the account: store.FieldUsername,
	// store.FieldEmail or store.FieldPhone; "" when the login is none of
	// them (it then matches nobody).
	Field string
	// Ident is the normalized name, e-mail or phone (for Field "", the
	// login as typed).
	Ident string
	// UsePassword chooses Password as the proof; otherwise Code, a code
	// sent to the e-mail or phone Ident.
	UsePassword bool
	Password    string
	Code        string
	// From is where the login comes from, for the login history of a
	// known account (its Method is set by Login).
	From LoginFrom
}

// Login judges a login: the attempt is counted against the address and
// the account first, then the password or code is checked. It returns the
// user, or ErrWrongPassword / ErrWrongCode (an unknown account answers
// alike), ErrCodeSpent, a *Throttled, or auth.ErrBusy when the process's
// password checks stayed busy (nothing judged, nothing counted).
func (s *Service) Login(ctx context.Context, try LoginTry) (*store.Profile, error) {
	var p *store.Profile
	if try.Field != "" {
		var err error
		p, err = s.store.FindProfileBy(ctx, try.Field, try.Ident)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	acct := UnknownAccount(try.Ident)
	if p != nil {
		acct = UserAccount(p.ID)
	}
	try.From.Method = MethodCode
	if try.UsePassword {
		try.From.Method = MethodPassword
	}
	record := func(result string) {
		if p != nil {
			s.recordLogin(ctx, p.ID, try.From, result)
		}
	}
	attempt, err := s.Begin(ctx, try.Address, acct)
	var throttled *Throttled
	if errors.As(err, &throttled) {
		record(ResultThrottled)
	}
	if err != nil {
		return nil, err
	}
	if try.UsePassword {
		hash := ""
		if p != nil {
			hash = p.PasswordHash
		}
		ok, err := s.hasher.Verify(ctx, hash, try.Password)
		if err != nil {
			s.metrics.LoginThrottled(telemetry.ThrottleChecksBusy)
			attempt.Abandoned(ctx)
			return nil, err
		}
		if !ok || p == nil {
			s.metrics.LoginFailed(telemetry.LoginPassword)
			record(ResultWrongPassword)
			return nil, ErrWrongPassword
		}
		attempt.Succeeded(ctx)
		s.rehashIfNeeded(ctx, p, try.Password)
		return p, nil
	}
	ok := false
	if p != nil && (try.Field == store.FieldEmail || try.Field == store.FieldPhone) {
		err := s.ConsumeCode(ctx, Contact{Field: try.Field, Value: try.Ident}, try.Code)
		if err != nil && !errors.Is(err, ErrWrongCode) && !errors.Is(err, ErrCodeUsed) {
			return nil, err
		}
		ok = err == nil
	}
	if !ok {
		s.metrics.LoginFailed(telemetry.LoginCode)
		record(ResultWrongCode)
		return nil, ErrWrongCode
	}
	attempt.Succeeded(ctx)
	return p, nil
}

// CheckPassword verifies the password of p, a signed-in user proving it
// is them (changing the password, unbinding, deleting the account). It
// spends the same budgets as a login, so parallel wrong passwords cannot
// outrun them: ErrWrongPassword, a *Throttled or auth.ErrBusy. address is
// the client's address key.
func (s *Service) CheckPassword(ctx context.Context, address string, p *store.Profile, password string) error {
	attempt, err := s.Begin(ctx, address, UserAccount(p.ID))
	if err != nil {
		return err
	}
	ok, err := s.hasher.Verify(ctx, p.PasswordHash, password)
	if err != nil {
		s.metrics.LoginThrottled(telemetry.ThrottleChecksBusy)
		attempt.Abandoned(ctx)
		return err
	}
	if !ok {
		return ErrWrongPassword
	}
	attempt.Succeeded(ctx)
	s.rehashIfNeeded(ctx, p, password)
	return nil
}

// CheckCode is ConsumeCode for a caller who may not own the contact
// (password retrieval): the try counts against the address's budget first,
// and a right code gives the slot back. Besides ConsumeCode's errors it
// answers a *Throttled.
func (s *Service) CheckCode(ctx context.Context, address string, c Contact, code string) error {
	attempt, err := s.Begin(ctx, address, Account{})
	if err != nil {
		return err
	}
	if err := s.ConsumeCode(ctx, c, code); err != nil {
		return err
	}
	attempt.Succeeded(ctx)
	return nil
}

// ConsumeCode accepts code for c once: nil, ErrWrongCode, ErrCodeUsed (no
// guess was judged) or ErrCodeSpent (the code had MaxCodeAttempts tries).
func (s *Service) ConsumeCode(ctx context.Context, c Contact, code string) error {
	err := s.store.ConsumeCode(ctx, c.Target(), s.hashCode(c, code), MaxCodeAttempts)
	switch {
	case errors.Is(err, store.ErrCodeInvalid):
		return ErrWrongCode
	case errors.Is(err, store.ErrCodeUsed):
		return ErrCodeUsed
	case errors.Is(err, store.ErrCodeSpent):
		return ErrCodeSpent
	}
	return err
}

func (s *Service) hashCode(c Contact, code string) string {
	return verify.HashCode(s.codeKey, c.Target(), code)
}

// HashPassword hashes a new password with the tenant's hasher.
func (s *Service) HashPassword(password string) (string, error) { return s.hasher.Hash(password) }

// SetPassword replaces user id's password (which ends its tokens).
func (s *Service) SetPassword(ctx context.Context, id int64, password string) error {
	hash, err := s.hasher.Hash(password)
	if err != nil {
		return err
	}
	_, err = s.store.SetPasswordHash(ctx, id, hash)
	return err
}

// rehashIfNeeded replaces an imported hash (argon2id, pbkdf2_sha256,
// PHP's $2y$ bcrypt; weak ones among them, auth.HashInfo.Weak) or one of
// another cost by the tenant's bcrypt, once the password has been checked
// against it. A failure only delays it.
func (s *Service) rehashIfNeeded(ctx context.Context, p *store.Profile, password string) {
	if !s.hasher.NeedsRehash(p.PasswordHash) {
		return
	}
	hash, err := s.hasher.Hash(password)
	if err == nil {
		err = s.store.RehashPassword(ctx, p.ID, p.PasswordHash, hash)
	}
	if err != nil {
		s.log.Warn("rehashing an imported password failed", "user", p.ID, "error", err)
		return
	}
	p.PasswordHash = hash
}
