package plus

import (
	"errors"
	"net/http"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/verify"
)

var changePasswordInput = input{body: append([]string{"old_password", "password", "password_confirmation"}, proofOfFirstPassword.fields()...)}

// ChangePassword is PUT /user/password: old_password proves the caller;
// an account without a password yet (WeChat or code logins) proves it as
// reauth.go says, and its contacts are told that a password was set.
func (h *Handler) ChangePassword(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	f, err := changePasswordInput.read(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	old, _ := f.str("old_password", c.profile.PasswordHash != "", 0)
	password, ok := f.str("password", true, 0)
	if ok {
		if p := passwordProblem(password); p != "" {
			f.add("password", p)
		}
	}
	confirm, ok := f.str("password_confirmation", true, 0)
	if ok && confirm != password {
		f.add("password_confirmation", "password_confirmation does not match password")
	}
	first := c.profile.PasswordHash == ""
	var proof account.Proof
	if first {
		proof = h.readProof(r, f, proofOfFirstPassword)
	} else if f.has(proofOfFirstPassword.code) {
		f.add(proofOfFirstPassword.code, proofOfFirstPassword.code+" is only for setting a first password; send old_password")
	}
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	if first {
		err = h.reauth(ctx, r, proof, proofOfFirstPassword)
	} else {
		err = h.checkPassword(ctx, w, r, c.profile, "old_password", old)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.accounts.SetPassword(ctx, c.profile.ID, password); err != nil {
		h.fail(w, r, err)
		return
	}
	if first {
		h.accounts.Notify(ctx, c.profile, verify.NoticePasswordSet)
	}
	noContent(w)
}

var retrievePasswordInput = input{body: []string{"verifiable_type", "phone", "email", "verifiable_code", "password"}}

// RetrievePassword is PUT /user/retrieve-password: a new password by a code
// sent to the account's phone or e-mail.
func (h *Handler) RetrievePassword(w http.ResponseWriter, r *http.Request) {
	f, err := retrievePasswordInput.read(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	vtype := readVerifiableType(f, true)
	var c account.Contact
	if vtype != "" {
		c, _ = readContact(f, vtype)
	}
	code, _ := readCode(f)
	password, ok := f.str("password", true, 0)
	if ok {
		if p := passwordProblem(password); p != "" {
			f.add("password", p)
		}
	}
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	// The code is judged before the contact is looked up, so a wrong code
	// answers alike for a contact nobody has (no code was ever sent to it)
	// and for a user's: only the contact's owner learns whether it is bound.
	ctx := r.Context()
	err = h.accounts.CheckCode(ctx, h.clientIP(r), c, code)
	var throttled *account.Throttled
	if errors.As(err, &throttled) {
		h.fail(w, r, tooMany(throttled, failureBudget(throttled.Budget, "failed attempts")))
		return
	}
	if err != nil {
		h.fail(w, r, codeError(err))
		return
	}
	p, err := h.store.FindProfileBy(ctx, c.Field, c.Value)
	if errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, invalid(c.Field, "no user has this "+c.Field))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.accounts.SetPassword(ctx, p.ID, password); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}
