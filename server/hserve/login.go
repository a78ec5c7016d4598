package hserve

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/plus"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/verify"
)

// signupsPerAddressHourly bounds the users one client address may create
// per hour by registration and anonymous login, which need no code (the
// end-user dialect's registration is bounded by its code budgets).
const signupsPerAddressHourly = 20

// Identity kinds of the register and login routes
// (/hserve/v2.1/{register,login}/{kind}/): the field of the body that
// names the account.
const (
	byUsername = "username"
	byEmail    = "email"
	byPhone    = "phone"
)

// identity reads the account-naming field of kind from f: the store field
// and the normalized value.
func identity(f *form, kind string) (field, value string) {
	raw, ok := f.str(kind, true, 254)
	if !ok {
		return "", ""
	}
	raw = strings.TrimSpace(raw)
	switch kind {
	case byEmail:
		if value = plus.NormalizeEmail(raw); value == "" {
			f.add("email is not a valid e-mail address")
		}
		return store.FieldEmail, value
	case byPhone:
		if !plus.LooksLikePhone(raw) {
			f.add("phone must be 5 to 20 digits, optionally after a '+'")
		}
		return store.FieldPhone, raw
	}
	return store.FieldUsername, raw
}

// readCode reads the code field: 4 to 6 digits.
func readCode(f *form) string {
	code, ok := f.str("code", true, 16)
	if !ok {
		return ""
	}
	code = strings.TrimSpace(code)
	if len(code) < verify.MinDigits || len(code) > verify.MaxDigits || strings.Trim(code, "0123456789") != "" {
		f.add("code must be 4 to 6 digits")
	}
	return code
}

// takeSignup spends one of the address's signups, or is a 429.
func (h *Handler) takeSignup(r *http.Request) error {
	win, admitted, err := h.store.HitRateLimit(r.Context(), "signup:ip:"+h.clientAddress(r), time.Hour, signupsPerAddressHourly)
	if err != nil {
		return err
	}
	if !admitted {
		return &account.Throttled{Budget: "signup-address", RetryAfter: win.RetryAfter(h.store.Now())}
	}
	return nil
}

// Register is POST /hserve/v2.1/register/{username,email,phone}/
// {<kind>, password}: a new user with a password. A user's e-mail or phone
// given here is unverified until proven.
func (h *Handler) Register(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := readForm(r, false, kind, "password")
		if err != nil {
			h.fail(w, r, err)
			return
		}
		field, value := identity(f, kind)
		if kind == byUsername && value != "" {
			if p := plus.NameProblem(value); p != "" {
				f.add("username: %s", p)
			}
		}
		password, ok := f.str("password", true, 0)
		if ok {
			if p := plus.PasswordProblem(password); p != "" {
				f.add("%s", p)
			}
		}
		if err := f.err(); err != nil {
			h.fail(w, r, err)
			return
		}
		ctx := r.Context()
		if _, err := h.store.FindProfileBy(ctx, field, value); err == nil {
			h.fail(w, r, badRequest("%s is already taken", sdkField(field)))
			return
		} else if !errors.Is(err, store.ErrNotFound) {
			h.fail(w, r, err)
			return
		}
		if err := h.takeSignup(r); err != nil {
			h.fail(w, r, err)
			return
		}
		hash, err := h.accounts.HashPassword(password)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		p := &store.Profile{PasswordHash: hash}
		switch field {
		case store.FieldUsername:
			p.Username, p.Nickname = value, value
		case store.FieldEmail:
			p.Email = value
		case store.FieldPhone:
			p.Phone = value
		}
		if err := h.store.CreateProfile(ctx, p); err != nil {
			h.fail(w, r, err)
			return
		}
		h.writeSession(w, r, http.StatusCreated, p, account.MethodRegister)
	}
}

// Login is POST /hserve/v2.1/login/{username,email,phone}/ {<kind>,
// password}, judged by the tenant's one limiter: the same budgets as
// /api/v2/auth/login.
func (h *Handler) Login(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := readForm(r, false, kind, "password")
		if err != nil {
			h.fail(w, r, err)
			return
		}
		field, value := identity(f, kind)
		password, _ := f.str("password", true, 0)
		if err := f.err(); err != nil {
			h.fail(w, r, err)
			return
		}
		p, err := h.accounts.Login(r.Context(), account.LoginTry{
			Address: h.clientAddress(r), Field: field, Ident: value, UsePassword: true, Password: password,
			From: account.LoginOf(r, h.trusted, account.APIHServe, ""),
		})
		if err != nil {
			h.fail(w, r, err)
			return
		}
		h.writeSession(w, r, http.StatusCreated, p, account.MethodPassword)
	}
}

// SendSMSCode is POST /hserve/v2.2/sms-verification-code/ {phone}
// (BaaS.sendSmsCode): a code through the tenant's SMS delivery, for
// loginWithSmsVerificationCode, verifyMobilePhone or verifySmsCode, within
// the tenant's code budgets. signature_id (MinApp's SMS signature) is
// accepted and ignored: the delivery webhook words the message.
func (h *Handler) SendSMSCode(w http.ResponseWriter, r *http.Request) {
	f, err := readForm(r, false, "phone", "signature_id", "user_id")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	_, phone := identity(f, byPhone)
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	err = h.accounts.SendCode(r.Context(), h.clientAddress(r), account.Contact{Field: store.FieldPhone, Value: phone}, account.PurposeLogin)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// VerifySMSCode is POST /hserve/v1.8/sms-verification-code/verify/ {phone,
// code} (BaaS.verifySmsCode): the code is right (and now used). Wrong codes
// count against the client address like failed logins.
func (h *Handler) VerifySMSCode(w http.ResponseWriter, r *http.Request) {
	f, err := readForm(r, false, "phone", "code", "user_id")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	_, phone := identity(f, byPhone)
	code := readCode(f)
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	attempt, err := h.accounts.Begin(ctx, h.clientAddress(r), account.Account{})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.accounts.ConsumeCode(ctx, account.Contact{Field: store.FieldPhone, Value: phone}, code); err != nil {
		h.fail(w, r, err)
		return
	}
	attempt.Succeeded(ctx)
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// errUnverifiedPhone refuses a login by a phone number (SMS code, WeChat)
// into an account that registered the number without proving it: whoever
// registered it knows that account's password, so the number's owner must
// not be logged into it.
var errUnverifiedPhone = newError(http.StatusForbidden, "this phone number is on an account that has not verified it: log in with its password and verify the number first")

// LoginSMS is POST /hserve/v2.1/login/sms/ {phone, code, create_user}
// (auth.loginWithSmsVerificationCode): the user of a verified phone, or
// with create_user (the SDK's default) a new user with that phone,
// verified. The attempt is counted before the code is judged.
func (h *Handler) LoginSMS(w http.ResponseWriter, r *http.Request) {
	f, err := readForm(r, false, "phone", "code", "create_user")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	_, phone := identity(f, byPhone)
	code := readCode(f)
	create := f.boolean("create_user", true)
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	p, err := h.store.FindProfileBy(ctx, store.FieldPhone, phone)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, err)
		return
	}
	if p != nil {
		if !p.PhoneVerified {
			h.fail(w, r, errUnverifiedPhone)
			return
		}
		p, err = h.accounts.Login(ctx, account.LoginTry{Address: h.clientAddress(r), Field: store.FieldPhone, Ident: phone, Code: code,
			From: account.LoginOf(r, h.trusted, account.APIHServe, "")})
		if err != nil {
			h.fail(w, r, err)
			return
		}
		h.writeSession(w, r, http.StatusCreated, p, account.MethodCode)
		return
	}
	// Nobody has the number: the code is judged first, so whether a number
	// has an account is not told to someone without its code.
	attempt, err := h.accounts.Begin(ctx, h.clientAddress(r), account.UnknownAccount(phone))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.accounts.ConsumeCode(ctx, account.Contact{Field: store.FieldPhone, Value: phone}, code); err != nil {
		h.fail(w, r, err)
		return
	}
	attempt.Succeeded(ctx)
	if !create {
		h.fail(w, r, newError(http.StatusNotFound, "no user has this phone number (send create_user: true to create one)"))
		return
	}
	p = &store.Profile{Phone: phone, PhoneVerified: true}
	if err := h.store.CreateProfile(ctx, p); err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeSession(w, r, http.StatusCreated, p, account.MethodCode)
}
