package plus

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"userve.dev/userve/server/auth"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/telemetry"
	"userve.dev/userve/server/verify"
)

// contact is a phone number or an e-mail address a code goes to.
type contact struct {
	field string // store.FieldPhone or store.FieldEmail
	value string // normalized
}

func (c contact) channel() verify.Channel {
	if c.field == store.FieldPhone {
		return verify.ChannelSMS
	}
	return verify.ChannelMail
}

func (c contact) target() string { return store.CodeTarget(c.field, c.value) }

// readContact reads the phone or email field. want is "sms", "mail" or ""
// (either, but exactly one of them).
func readContact(f *form, want string) (contact, bool) {
	phone, hasPhone := f.str("phone", false, 32)
	email, hasEmail := f.str("email", false, 254)
	switch want {
	case "sms":
		hasEmail = false
		if !hasPhone {
			f.add("phone", "phone is required when verifiable_type is sms")
			return contact{}, false
		}
	case "mail":
		hasPhone = false
		if !hasEmail {
			f.add("email", "email is required when verifiable_type is mail")
			return contact{}, false
		}
	default:
		if hasPhone && hasEmail {
			f.add("phone", "send either phone or email, not both")
			return contact{}, false
		}
		if !hasPhone && !hasEmail {
			f.add("phone", "phone or email is required")
			return contact{}, false
		}
	}
	if hasPhone {
		phone = strings.TrimSpace(phone)
		if !looksLikePhone(phone) {
			f.add("phone", "phone must be 5 to 20 digits, optionally after a '+'")
			return contact{}, false
		}
		return contact{field: store.FieldPhone, value: phone}, true
	}
	e := normalizeEmail(email)
	if e == "" {
		f.add("email", "email is not a valid e-mail address")
		return contact{}, false
	}
	return contact{field: store.FieldEmail, value: e}, true
}

// readVerifiableType reads "sms" or "mail" (absent: "").
func readVerifiableType(f *form, required bool) string {
	t, ok := f.str("verifiable_type", required, 8)
	if !ok {
		return ""
	}
	if t != "sms" && t != "mail" {
		f.add("verifiable_type", "verifiable_type must be sms or mail")
		return ""
	}
	return t
}

// readCode reads verifiable_code (string or number).
func readCode(f *form) (string, bool) {
	code, ok := f.str("verifiable_code", true, 16)
	if !ok {
		return "", false
	}
	code = strings.TrimSpace(code)
	if len(code) < verify.MinDigits || len(code) > verify.MaxDigits || strings.Trim(code, "0123456789") != "" {
		f.add("verifiable_code", "verifiable_code must be 4 to 6 digits")
		return "", false
	}
	return code, true
}

// ---- verification codes ---------------------------------------------------

// SendRegisterCode is POST /verifycodes/register: a code for a phone or
// e-mail nobody uses yet.
func (h *Handler) SendRegisterCode(w http.ResponseWriter, r *http.Request) {
	h.sendCode(w, r, false)
}

// SendCode is POST /verifycodes: a code for an existing user's phone or
// e-mail.
func (h *Handler) SendCode(w http.ResponseWriter, r *http.Request) {
	h.sendCode(w, r, true)
}

// noInput is a route that takes nothing besides its path (and token).
var noInput = input{}

var sendCodeInput = input{body: []string{"phone", "email"}}

func (h *Handler) sendCode(w http.ResponseWriter, r *http.Request, mustExist bool) {
	f, err := sendCodeInput.read(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	c, _ := readContact(f, "")
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	if !h.delivers(c.channel()) {
		h.fail(w, r, invalid(c.field, "verification codes cannot be sent to "+describeField(c.field)+" by this service; use the other one"))
		return
	}
	ctx := r.Context()
	lim := h.codeLimits
	// The address pays for every request, before the target is looked up,
	// so that probing which phones and e-mails have accounts is bounded too.
	win, admitted, err := h.store.HitRateLimit(ctx, "code:ip:"+h.clientIP(r), time.Hour, int64(lim.PerAddressHourly))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !admitted {
		h.tooMany(w, r, win, "too many verification codes requested from this address")
		return
	}
	_, err = h.store.FindProfileBy(ctx, c.field, c.value)
	switch {
	case err == nil && !mustExist:
		h.fail(w, r, invalid(c.field, c.field+" is already taken"))
		return
	case errors.Is(err, store.ErrNotFound) && mustExist:
		h.fail(w, r, invalid(c.field, "no user has this "+c.field))
		return
	case err != nil && !errors.Is(err, store.ErrNotFound):
		h.fail(w, r, err)
		return
	}
	// The target's and the tenant's budgets count codes sent: their slots go
	// back when no code leaves after all (resend too soon, delivery failed).
	targetSlot, win, admitted, err := h.store.TakeRateSlot(ctx, "code:target:"+c.target(), 24*time.Hour, int64(lim.PerTargetDaily))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !admitted {
		h.tooMany(w, r, win, "too many verification codes sent to this "+c.field+" today")
		return
	}
	tenantSlot, win, admitted, err := h.store.TakeRateSlot(ctx, "code:tenant", time.Hour, int64(lim.PerTenantHourly))
	if err != nil || !admitted {
		h.releaseSlots(ctx, targetSlot)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		h.tooMany(w, r, win, "this service has sent as many verification codes as it may this hour")
		return
	}
	code, err := verify.GenerateCode(codeDigits)
	if err != nil {
		h.releaseSlots(ctx, targetSlot, tenantSlot)
		h.fail(w, r, err)
		return
	}
	hash := verify.HashCode(h.codeKey, c.target(), code)
	purpose := "verify"
	if !mustExist {
		purpose = "register"
	}
	if err := h.store.IssueCode(ctx, c.target(), hash, purpose, h.codeTTL, resendInterval); err != nil {
		h.releaseSlots(ctx, targetSlot, tenantSlot)
		var tooSoon *store.TooSoonError
		if errors.As(err, &tooSoon) {
			w.Header().Set("Retry-After", strconv.FormatInt(tooSoon.Seconds(), 10))
			h.fail(w, r, newError(http.StatusForbidden,
				fmt.Sprintf("a code was sent to this %s less than a minute ago; retry in %d seconds", c.field, tooSoon.Seconds())))
			return
		}
		h.fail(w, r, err)
		return
	}
	msg := verify.Message{Tenant: h.cfg.Issuer, Channel: c.channel(), To: c.value, Code: code, Purpose: purpose, TTL: h.codeTTL}
	if err := h.sender.Send(ctx, msg); err != nil {
		h.metrics.CodeFailed(string(c.channel()))
		h.log.Warn("verification code delivery failed", "channel", string(c.channel()), "error", err)
		// Let the user ask again at once rather than wait for a code that
		// never comes.
		bg := context.WithoutCancel(ctx)
		if werr := h.store.WithdrawCode(bg, c.target(), hash); werr != nil {
			h.log.Warn("withdrawing undelivered code failed", "error", werr)
		}
		h.releaseSlots(bg, targetSlot, tenantSlot)
		h.fail(w, r, newError(http.StatusServiceUnavailable, "the verification code could not be delivered; try again later"))
		return
	}
	h.metrics.CodeSent(string(c.channel()))
	writeJSON(w, http.StatusAccepted, map[string]string{"message": "verification code sent"})
}

// describeField names a contact field for a message.
func describeField(field string) string {
	if field == store.FieldPhone {
		return "phone numbers"
	}
	return "e-mail addresses"
}

// releaseSlots gives rate-limit slots back, best effort: a slot that stays
// taken only makes a limit stricter until its window ends.
func (h *Handler) releaseSlots(ctx context.Context, slots ...store.RateSlot) {
	for _, s := range slots {
		if err := h.store.ReleaseRateSlot(context.WithoutCancel(ctx), s); err != nil {
			h.log.Warn("giving a rate-limit slot back failed", "error", err)
		}
	}
}

func (h *Handler) tooMany(w http.ResponseWriter, r *http.Request, win store.RateWindow, what string) {
	secs := int64((win.RetryAfter(h.store.Now()) + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	h.fail(w, r, newError(http.StatusTooManyRequests, fmt.Sprintf("%s; retry in %d seconds", what, secs)))
}

// consumeCode accepts code for c once, or is a 422 on verifiable_code (a
// 429 once the code has had all its tries).
// usedCodeMessage answers a code that was used already: no guess was
// judged, so it is told apart from a wrong one.
const usedCodeMessage = "verifiable_code was used already; request a new one"

func (h *Handler) consumeCode(ctx context.Context, c contact, code string) error {
	err := h.store.ConsumeCode(ctx, c.target(), verify.HashCode(h.codeKey, c.target(), code), maxCodeAttempts)
	switch {
	case errors.Is(err, store.ErrCodeInvalid):
		return invalid("verifiable_code", "verifiable_code is wrong or has expired")
	case errors.Is(err, store.ErrCodeUsed):
		return invalid("verifiable_code", usedCodeMessage)
	case errors.Is(err, store.ErrCodeSpent):
		return newError(http.StatusTooManyRequests,
			fmt.Sprintf("this verification code has had %d tries and no longer works; request a new one", maxCodeAttempts))
	}
	return err
}

// ---- registration and tokens ------------------------------------------------

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
	if err := h.mustBeFree(ctx, c.field, c.value, 0); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.consumeCode(ctx, c, code); err != nil {
		h.fail(w, r, err)
		return
	}
	hash, err := h.hasher.Hash(password)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := &store.Profile{Username: name, Nickname: name, PasswordHash: hash}
	if c.field == store.FieldPhone {
		p.Phone, p.PhoneVerified = c.value, true
	} else {
		p.Email, p.EmailVerified = c.value, true
	}
	if err := h.store.CreateProfile(ctx, p); err != nil {
		h.fail(w, r, err)
		return
	}
	token, err := h.issue(p)
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

func (h *Handler) minutes(d time.Duration) int64 { return int64(d / time.Minute) }

func (h *Handler) issue(p *store.Profile) (string, error) {
	token, _, err := h.tokens.Issue(p.ID, p.TokenEpoch)
	return token, err
}

// writeToken answers a login with a fresh token for p.
func (h *Handler) writeToken(w http.ResponseWriter, p *store.Profile) {
	token, claims, err := h.tokens.Issue(p.ID, p.TokenEpoch)
	h.writeIssued(w, token, claims, err)
}

// writeIssued is the body of login and refresh. expires_in and refresh_ttl
// are what is left of this token and of its login's refresh window, in
// minutes (at login: the tenant's tokenTTL and refreshTTL).
func (h *Handler) writeIssued(w http.ResponseWriter, token string, claims auth.Claims, err error) {
	if err != nil {
		newError(http.StatusInternalServerError, "internal error").write(w)
		return
	}
	writeJSON(w, http.StatusOK, h.issuedBody(token, claims))
}

// issuedBody is the /auth/login answer for a token just issued.
func (h *Handler) issuedBody(token string, claims auth.Claims) map[string]any {
	return map[string]any{
		"access_token": token, "token_type": "Bearer",
		"expires_in":  h.minutes(claims.ExpiresAt.Sub(claims.IssuedAt)),
		"refresh_ttl": h.minutes(claims.RefreshDeadline(h.tokens.RefreshTTL).Sub(claims.IssuedAt)),
	}
}

var loginInput = input{body: []string{"login", "password", "verifiable_code"}}

// Login is POST /auth/login: login (name, e-mail or phone) with password or
// verifiable_code. Every try first takes an attempt slot of the client
// address and of the account (name, e-mail and phone share the account's)
// and only then is judged, so parallel guesses cannot outrun the limits;
// past them the address or account waits for the window.
func (h *Handler) Login(w http.ResponseWriter, r *http.Request) {
	f, err := loginInput.read(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	login, _ := f.str("login", true, 254)
	login = strings.TrimSpace(login)
	password, hasPassword := f.str("password", false, 0)
	var code string
	hasCode := false
	if !hasPassword {
		if f.has("verifiable_code") {
			code, hasCode = readCode(f)
		} else {
			f.add("password", "password or verifiable_code is required")
		}
	}
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	addrSlot, win, admitted, err := h.store.TakeRateSlot(ctx, "login-fail:ip:"+h.clientIP(r), loginFailureWindow, loginFailuresIP)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !admitted {
		h.metrics.LoginThrottled(telemetry.ThrottleAddress)
		h.tooMany(w, r, win, "too many failed logins from this address")
		return
	}

	kind, ident := detectIdentity(login)
	var p *store.Profile
	switch kind {
	case byEmail:
		p, err = h.store.FindProfileBy(ctx, store.FieldEmail, ident)
	case byPhone:
		p, err = h.store.FindProfileBy(ctx, store.FieldPhone, ident)
	case byName:
		p, err = h.store.FindProfileBy(ctx, store.FieldUsername, ident)
	default:
		err = store.ErrNotFound
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.releaseSlots(ctx, addrSlot)
		h.fail(w, r, err)
		return
	}
	// An unknown login has a budget of its own under its name, so probing
	// names is limited like guessing passwords, and both answer alike.
	if ident == "" {
		ident = login
	}
	acctKey := "login-fail:unknown:" + strings.ToLower(ident)
	if p != nil {
		acctKey = accountAttemptsKey(p.ID)
	}
	_, win, admitted, err = h.store.TakeRateSlot(ctx, acctKey, loginFailureWindow, loginFailuresAccount)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !admitted {
		h.metrics.LoginThrottled(telemetry.ThrottleAccount)
		h.tooMany(w, r, win, "too many failed logins for this account")
		return
	}

	ok := false
	field := "password"
	if hasPassword {
		hash := ""
		if p != nil {
			hash = p.PasswordHash
		}
		ok = h.hasher.Check(hash, password) && p != nil
	} else if hasCode {
		field = "verifiable_code"
		if p != nil && (kind == byEmail || kind == byPhone) {
			c := contact{field: store.FieldEmail, value: ident}
			if kind == byPhone {
				c.field = store.FieldPhone
			}
			cerr := h.consumeCode(ctx, c, code)
			var ae *apiError
			if cerr != nil && (!errors.As(cerr, &ae) || ae.status != http.StatusUnprocessableEntity) {
				h.fail(w, r, cerr)
				return
			}
			ok = cerr == nil
		}
	}
	if !ok {
		// The slots taken stay taken: they are this failure's count.
		msg, method := "login or password is wrong", telemetry.LoginPassword
		if field == "verifiable_code" {
			msg, method = "login or verifiable_code is wrong, or the code has expired", telemetry.LoginCode
		}
		h.metrics.LoginFailed(method)
		h.fail(w, r, invalid(field, msg))
		return
	}
	// A success does not count against the address, and proves the owner:
	// the account's failures are forgiven.
	h.releaseSlots(ctx, addrSlot)
	if err := h.store.ResetRateLimit(ctx, acctKey, loginFailureWindow); err != nil {
		h.log.Warn("resetting login failures failed", "error", err)
	}
	if hasPassword {
		h.rehashIfNeeded(ctx, p, password)
	}
	h.writeToken(w, p)
}

// accountAttemptsKey is the rate-limit key of one account's password and
// login failures, whichever name, e-mail or phone it was reached by.
func accountAttemptsKey(id int64) string {
	return "login-fail:user:" + strconv.FormatInt(id, 10)
}

// Refresh is POST /auth/refresh: the bearer token (expired or not, within
// its refresh window) for a new one. The old token is revoked by the same
// atomic insert that admits the refresh, so a token refreshes once. The new
// token keeps the login time, so no chain of refreshes outlives login plus
// refreshTTL.
func (h *Handler) Refresh(w http.ResponseWriter, r *http.Request) {
	if _, err := noInput.read(r); err != nil {
		h.fail(w, r, err)
		return
	}
	hdr := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(hdr, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		h.fail(w, r, errUnauthenticated)
		return
	}
	claims, err := h.tokens.VerifyForRefresh(strings.TrimSpace(token))
	if err != nil {
		h.fail(w, r, newError(http.StatusUnauthorized, "token is invalid or past its refresh window; log in again"))
		return
	}
	c, err := h.checkLive(r.Context(), claims)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	first, err := h.store.RevokeToken(r.Context(), claims.ID, claims.RefreshDeadline(h.tokens.RefreshTTL))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !first {
		h.fail(w, r, newError(http.StatusUnauthorized, "token has been revoked"))
		return
	}
	fresh, freshClaims, err := h.tokens.IssueRefreshed(claims, c.profile.TokenEpoch)
	h.writeIssued(w, fresh, freshClaims, err)
}

// Logout is POST /auth/logout: the token stops working on every replica.
func (h *Handler) Logout(w http.ResponseWriter, r *http.Request) {
	if _, err := noInput.read(r); err != nil {
		h.fail(w, r, err)
		return
	}
	c := callerOf(r)
	if _, err := h.store.RevokeToken(r.Context(), c.claims.ID, c.claims.RefreshDeadline(h.tokens.RefreshTTL)); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "logged out"})
}

// ---- password and contacts --------------------------------------------------

var changePasswordInput = input{body: []string{"old_password", "password", "password_confirmation"}}

// ChangePassword is PUT /user/password.
func (h *Handler) ChangePassword(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	f, err := changePasswordInput.read(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	old, hasOld := f.str("old_password", c.profile.PasswordHash != "", 0)
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
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	if c.profile.PasswordHash != "" {
		if err := h.checkPassword(ctx, w, r, c.profile, "old_password", old, hasOld); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	if err := h.setPassword(ctx, c.profile.ID, password); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}

// checkPassword verifies the caller's password. Like a login it first
// takes an attempt slot of the account's budget (shared with logins), so
// parallel wrong passwords cannot outrun the limit.
func (h *Handler) checkPassword(ctx context.Context, w http.ResponseWriter, r *http.Request, p *store.Profile, field, password string, given bool) error {
	key := accountAttemptsKey(p.ID)
	_, win, admitted, err := h.store.TakeRateSlot(ctx, key, loginFailureWindow, loginFailuresAccount)
	if err != nil {
		return err
	}
	if !admitted {
		h.metrics.LoginThrottled(telemetry.ThrottleAccount)
		secs := int64((win.RetryAfter(h.store.Now()) + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		return newError(http.StatusTooManyRequests, fmt.Sprintf("too many wrong passwords for this account; retry in %d seconds", secs))
	}
	if given && h.hasher.Check(p.PasswordHash, password) {
		if err := h.store.ResetRateLimit(ctx, key, loginFailureWindow); err != nil {
			h.log.Warn("resetting password failures failed", "error", err)
		}
		return nil
	}
	return invalid(field, field+" is wrong")
}

// rehashIfNeeded replaces an imported hash (argon2id, pbkdf2_sha256,
// PHP's $2y$ bcrypt) or one of another cost by the tenant's bcrypt, once
// the password has been checked against it. A failure only delays it.
func (h *Handler) rehashIfNeeded(ctx context.Context, p *store.Profile, password string) {
	if !h.hasher.NeedsRehash(p.PasswordHash) {
		return
	}
	hash, err := h.hasher.Hash(password)
	if err == nil {
		err = h.store.RehashPassword(ctx, p.ID, p.PasswordHash, hash)
	}
	if err != nil {
		h.log.Warn("rehashing an imported password failed", "user", p.ID, "error", err)
		return
	}
	p.PasswordHash = hash
}

func (h *Handler) setPassword(ctx context.Context, id int64, password string) error {
	hash, err := h.hasher.Hash(password)
	if err != nil {
		return err
	}
	_, err = h.store.SetPasswordHash(ctx, id, hash)
	return err
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
	var c contact
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
	ctx := r.Context()
	p, err := h.store.FindProfileBy(ctx, c.field, c.value)
	if errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, invalid(c.field, "no user has this "+c.field))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.consumeCode(ctx, c, code); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.setPassword(ctx, p.ID, password); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}

var updateContactInput = input{body: []string{"phone", "email", "verifiable_code"}}

// UpdateContact is PUT /user: bind a new phone or e-mail, proven by a code
// sent to it.
func (h *Handler) UpdateContact(w http.ResponseWriter, r *http.Request) {
	me := callerOf(r)
	f, err := updateContactInput.read(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	c, _ := readContact(f, "")
	code, _ := readCode(f)
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	if err := h.mustBeFree(ctx, c.field, c.value, me.profile.ID); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.consumeCode(ctx, c, code); err != nil {
		h.fail(w, r, err)
		return
	}
	if _, err := h.store.SetContact(ctx, me.profile.ID, c.field, c.value); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}

// UnbindPhone is DELETE /user/phone.
func (h *Handler) UnbindPhone(w http.ResponseWriter, r *http.Request) {
	h.unbind(w, r, store.FieldPhone)
}

// UnbindEmail is DELETE /user/email.
func (h *Handler) UnbindEmail(w http.ResponseWriter, r *http.Request) {
	h.unbind(w, r, store.FieldEmail)
}

var unbindInput = input{body: []string{"password", "verifiable_code"}}

// unbind removes the phone or e-mail after checking the password and a
// code sent to the bound value.
func (h *Handler) unbind(w http.ResponseWriter, r *http.Request, field string) {
	me := callerOf(r)
	f, err := unbindInput.read(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	password, hasPassword := f.str("password", true, 0)
	code, _ := readCode(f)
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	bound := me.profile.Phone
	if field == store.FieldEmail {
		bound = me.profile.Email
	}
	if bound == "" {
		h.fail(w, r, invalid(field, "no "+field+" is bound to this account"))
		return
	}
	ctx := r.Context()
	if err := h.checkPassword(ctx, w, r, me.profile, "password", password, hasPassword); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.consumeCode(ctx, contact{field: field, value: bound}, code); err != nil {
		h.fail(w, r, err)
		return
	}
	if _, err := h.store.UnsetContact(ctx, me.profile.ID, field); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}
