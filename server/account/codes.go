package account

import (
	"context"
	"errors"
	"time"

	"userve.dev/userve/server/store"
	"userve.dev/userve/server/verify"
)

// Contact is a phone number or an e-mail address a code goes to.
type Contact struct {
	Field string // store.FieldPhone or store.FieldEmail
	Value string // normalized
}

// Channel is how codes reach c.
func (c Contact) Channel() verify.Channel {
	if c.Field == store.FieldPhone {
		return verify.ChannelSMS
	}
	return verify.ChannelMail
}

// Target is c as codes are stored and limited under.
func (c Contact) Target() string { return store.CodeTarget(c.Field, c.Value) }

// Code purposes: what the code is sent for.
const (
	PurposeRegister = "register" // the contact must be free
	PurposeVerify   = "verify"   // a user must have the contact
	// PurposeLogin is a code to log in or sign up with (the SDK dialect's
	// SMS login with create_user): the contact is not looked up at all, so
	// the answer tells nothing about who has it; every budget applies.
	PurposeLogin = "login"
)

// Delivers reports whether codes for channel c are sent anywhere (a
// replaced Sender, as in tests, is taken to deliver every channel).
func (s *Service) Delivers(c verify.Channel) bool {
	if d, ok := s.sender.(interface{ Delivers(verify.Channel) bool }); ok {
		return d.Delivers(c)
	}
	return true
}

// SendCode sends a new code to, for purpose, asked for from address (the
// client's address key). It answers ErrNoDelivery, a *Throttled of the
// code budgets, ErrContactTaken or ErrNoSuchContact, a *store.TooSoonError
// (one code per target per ResendInterval) or ErrUndelivered.
func (s *Service) SendCode(ctx context.Context, address string, to Contact, purpose string) error {
	if !s.Delivers(to.Channel()) {
		return ErrNoDelivery
	}
	lim := s.limits
	// The address pays for every request, before the target is looked up,
	// so that probing which phones and e-mails have accounts is bounded too.
	win, admitted, err := s.store.HitRateLimit(ctx, "code:ip:"+address, time.Hour, int64(lim.PerAddressHourly))
	if err != nil {
		return err
	}
	if !admitted {
		return s.throttled(BudgetCodeAddress, win)
	}
	if purpose != PurposeLogin {
		_, err = s.store.FindProfileBy(ctx, to.Field, to.Value)
		switch {
		case err == nil && purpose == PurposeRegister:
			return ErrContactTaken
		case errors.Is(err, store.ErrNotFound) && purpose != PurposeRegister:
			return ErrNoSuchContact
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	// The target's and the tenant's budgets count codes sent: their slots go
	// back when no code leaves after all (resend too soon, delivery failed).
	targetSlot, win, admitted, err := s.store.TakeRateSlot(ctx, "code:target:"+to.Target(), 24*time.Hour, int64(lim.PerTargetDaily))
	if err != nil {
		return err
	}
	if !admitted {
		return s.throttled(BudgetCodeTarget, win)
	}
	tenantSlot, win, admitted, err := s.store.TakeRateSlot(ctx, "code:tenant", time.Hour, int64(lim.PerTenantHourly))
	if err != nil || !admitted {
		s.release(ctx, targetSlot)
		if err != nil {
			return err
		}
		return s.throttled(BudgetCodeTenant, win)
	}
	code, err := verify.GenerateCode(CodeDigits)
	if err != nil {
		s.release(ctx, targetSlot, tenantSlot)
		return err
	}
	hash := s.hashCode(to, code)
	if err := s.store.IssueCode(ctx, to.Target(), hash, purpose, s.codeTTL, ResendInterval); err != nil {
		s.release(ctx, targetSlot, tenantSlot)
		return err
	}
	msg := verify.Message{Tenant: s.issuer, Channel: to.Channel(), To: to.Value, Code: code, Purpose: purpose, TTL: s.codeTTL}
	if err := s.sender.Send(ctx, msg); err != nil {
		s.metrics.CodeFailed(string(to.Channel()))
		s.log.Warn("verification code delivery failed", "channel", string(to.Channel()), "error", err)
		// Let the user ask again at once rather than wait for a code that
		// never comes.
		bg := context.WithoutCancel(ctx)
		if werr := s.store.WithdrawCode(bg, to.Target(), hash); werr != nil {
			s.log.Warn("withdrawing undelivered code failed", "error", werr)
		}
		s.release(bg, targetSlot, tenantSlot)
		return ErrUndelivered
	}
	s.metrics.CodeSent(string(to.Channel()))
	return nil
}
