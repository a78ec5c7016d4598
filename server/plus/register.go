package plus

import (
	"context"
	"errors"
	"net/http"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/store"
)

var registerInput = input{body: []string{"name", "phone", "email", "password", "verifiable_type", "verifiable_code"}}

// Register is POST /users.
func (h *Handler) Register(w http.ResponseWriter, r *http.Request) {
	f, err := registerInput.read(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	name, ok := f.str("name", true, 64)
	if ok {
		if p := nameProblem(name); p != "" {
			f.add("name", p)
		}
	}
	password, ok := f.str("password", true, 0)
	if ok {
		if p := passwordProblem(password); p != "" {
			f.add("password", p)
		}
	}
	vtype := readVerifiableType(f, false)
	c, _ := readContact(f, vtype)
	code, _ := readCode(f)
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	if err := h.mustBeFree(ctx, store.FieldUsername, name, 0); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.mustBeFree(ctx, c.Field, c.Value, 0); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.consumeCode(ctx, c, code); err != nil {
		h.fail(w, r, err)
		return
	}
	hash, err := h.accounts.HashPassword(password)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := &store.Profile{Username: name, Nickname: name, PasswordHash: hash}
	if c.Field == store.FieldPhone {
		p.Phone, p.PhoneVerified = c.Value, true
	} else {
		p.Email, p.EmailVerified = c.Value, true
	}
	if err := h.store.CreateProfile(ctx, p); err != nil {
		h.fail(w, r, err)
		return
	}
	token, _, err := h.startLogin(r, p, account.MethodRegister)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"token": token, "ttl": h.minutes(h.tokens.TTL), "refresh_ttl": h.minutes(h.tokens.RefreshTTL),
	})
}

// mustBeFree is a 422 when another user than self holds value.
func (h *Handler) mustBeFree(ctx context.Context, field, value string, self int64) error {
	p, err := h.store.FindProfileBy(ctx, field, value)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if p.ID == self {
		return nil
	}
	return invalid(plusField(field), plusField(field)+" is already taken")
}
