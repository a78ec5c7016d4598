package hserve

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/plus"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/verify"
)

// Limits of this dialect where MinApp says nothing (docs/hserve.md).
const ()

// userInfo is the user object of the SDK (core/constants
// USER_PROFILE_BUILD_IN_FIELDS and the "_" account fields), with the
// tenant's custom fields; built-in names win over a custom field of the
// same name.
func (h *Handler) userInfo(p *store.Profile) map[string]any {
	out := h.schema.CustomJSON(p)
	for k, v := range map[string]any{
		"id":              p.ID,
		"nickname":        p.Nickname,
		"avatar":          p.Avatar,
		"gender":          p.Gender,
		"city":            p.City,
		"province":        p.Province,
		"country":         p.Country,
		"language":        p.Language,
		"openid":          nullIfEmpty(p.OpenID),
		"unionid":         nullIfEmpty(p.UnionID),
		"is_authorized":   p.OpenID != "",
		"created_at":      p.Created.Unix(),
		"updated_at":      p.Updated.Unix(),
		"_username":       nullIfEmpty(p.Username),
		"_email":          nullIfEmpty(p.Email),
		"_phone":          nullIfEmpty(p.Phone),
		"_email_verified": p.EmailVerified,
		"_phone_verified": p.PhoneVerified,
		"_anonymous":      p.Anonymous,
	} {
		out[k] = v
	}
	return out
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// writeSession answers a login or registration: the token, its lifetime in
// seconds, the user's id and object (core/auth handleLoginSuccess and
// core/utils flatAuthResponse read these).
//
// The login is refused when p is banned, and recorded as a session
// (account.StartLogin), method saying how it was made.
func (h *Handler) writeSession(w http.ResponseWriter, r *http.Request, status int, p *store.Profile, method string) {
	token, claims, err := h.accounts.StartLogin(r.Context(), h.tokens, p, account.LoginOf(r, h.trusted, account.APIHServe, method))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, status, map[string]any{
		"token":      token,
		"expires_in": int64(claims.ExpiresAt.Sub(claims.IssuedAt) / time.Second),
		"user_id":    p.ID,
		"openid":     nullIfEmpty(p.OpenID),
		"unionid":    nullIfEmpty(p.UnionID),
		"user_info":  h.userInfo(p),
	})
}

// GetUser is GET /hserve/v2.5/user/info/{user_id}/ (the SDK's
// getCurrentUser reads the caller's own; other users' profiles are not
// served) and GET /hserve/v2.5/user/info/ (the caller).
func (h *Handler) GetUser(w http.ResponseWriter, r *http.Request) {
	me := callerOf(r).profile
	if err := noQuery(r); err != nil {
		h.fail(w, r, err)
		return
	}
	if raw, ok := mux.Vars(r)["user_id"]; ok {
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || id != me.ID {
			h.fail(w, r, newError(http.StatusForbidden, "a user may read only their own profile here"))
			return
		}
	}
	httpx.WriteJSON(w, http.StatusOK, h.userInfo(me))
}

// UpdateMe is PUT /hserve/v2.5/user/info/: currentUser.set(...).update().
// The body is the record's $set: custom fields of the tenant's schema, and
// the built-ins a user may write (minapp.SelfWritable). One store update:
// all or nothing.
func (h *Handler) UpdateMe(w http.ResponseWriter, r *http.Request) {
	me := callerOf(r).profile
	var body map[string]any
	if err := httpx.DecodeJSON(r, &body); err != nil {
		h.fail(w, r, badRequest("%s", err.Error()))
		return
	}
	if body == nil {
		h.fail(w, r, badRequest("request body must be a JSON object, not null"))
		return
	}
	builtins, set, unset, err := h.schema.SelfUpdate(body)
	if err != nil {
		h.fail(w, r, badRequest("%s", err.Error()))
		return
	}
	p, err := h.store.UpdateOwnFields(r.Context(), me.ID, builtins, set, unset)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, h.userInfo(p))
}

// Logout is POST /hserve/v2.0/session/destroy/: the token's login (every
// token refreshed from it) stops working on every replica and in every
// dialect.
func (h *Handler) Logout(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	if _, err := readForm(r, true); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.accounts.EndLogin(r.Context(), h.tokens, c.claims, "logout"); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// AnonymousLogin is POST /hserve/v2.0/login/anonymous/: a new user with no
// account (_anonymous), within the address's signups (takeSignup) since
// each one is a new user.
func (h *Handler) AnonymousLogin(w http.ResponseWriter, r *http.Request) {
	if _, err := readForm(r, true); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.takeSignup(r); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	p := &store.Profile{Anonymous: true}
	if err := h.store.CreateProfile(ctx, p); err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeSession(w, r, http.StatusCreated, p, account.MethodAnonymous)
}

// accountFields are what PUT user/account/ takes: the SDK's
// updatePassword {password, new_password}, setEmail {email}, setUsername
// {username}, setMobilePhone {phone} and setAccount (any of them).
var accountFields = []string{"username", "email", "phone", "password", "new_password"}

// UpdateAccount is PUT /hserve/v2.2/user/account/. A new password needs the
// current one when the user has one; a new name, e-mail or phone, or a
// first password, needs the current password or a login within
// spec.api.plus.reauthWindow (account.Reauthenticate), and the account's
// contacts are told of it. A new e-mail or phone is unverified until proven (e-mail
// link, SMS code). Everything is one store update; a new password ends
// every older token, the caller's too.
func (h *Handler) UpdateAccount(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	me := c.profile
	f, err := readForm(r, false, accountFields...)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if me.Anonymous {
		h.fail(w, r, newError(http.StatusForbidden, "an anonymous user has no account to set: register or log in first"))
		return
	}
	set := map[string]any{}
	if name, ok := f.str("username", false, 64); ok && name != me.Username {
		if p := plus.NameProblem(name); p != "" {
			f.add("username: %s", p)
		}
		set[store.FieldUsername] = name
	}
	if raw, ok := f.str("email", false, 254); ok {
		if email := plus.NormalizeEmail(raw); email == "" {
			f.add("email is not a valid e-mail address")
		} else if email != me.Email {
			set[store.FieldEmail], set[store.FieldEmailVerified] = email, false
		}
	}
	if phone, ok := f.str("phone", false, 32); ok && phone != me.Phone {
		if !plus.LooksLikePhone(phone) {
			f.add("phone must be 5 to 20 digits, optionally after a '+'")
		}
		set[store.FieldPhone], set[store.FieldPhoneVerified] = phone, false
	}
	newPassword, hasNew := f.str("new_password", false, 0)
	if hasNew {
		if p := plus.PasswordProblem(newPassword); p != "" {
			f.add("new_password: %s", p)
		}
	}
	password, hasPassword := f.str("password", false, 0)
	if hasNew && me.PasswordHash != "" && !hasPassword {
		f.add("password (the current one) is required to set new_password")
	}
	if !hasNew && len(set) == 0 && len(f.problems) == 0 && !f.has("username") && !f.has("email") && !f.has("phone") {
		f.add("nothing to change: send username, email, phone or new_password")
	}
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	if hasPassword || len(set) > 0 || (hasNew && me.PasswordHash == "") {
		// The tenant's re-authentication (spec.api.plus.reauthWindow): the
		// current password, or a login recent enough.
		proof := account.Proof{Address: h.clientAddress(r), LoggedInAt: c.claims.AuthTime, Password: password, HasPassword: hasPassword}
		err := h.accounts.Reauthenticate(ctx, me, proof, h.reauthWindow)
		switch {
		case errors.Is(err, account.ErrWrongPassword):
			err = badRequest("password (the current one) is wrong")
		case errors.Is(err, account.ErrNoPassword):
			err = badRequest("this user has no password yet: send new_password alone to set one")
		case errors.Is(err, account.ErrReauthRequired):
			err = newError(http.StatusForbidden, fmt.Sprintf("changing the account needs the current password (password) or a login within the last %s", h.reauthWindow))
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
	}
	hash := ""
	if hasNew {
		if hash, err = h.accounts.HashPassword(newPassword); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	p, err := h.store.UpdateAccount(ctx, me.ID, set, hash)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// The contacts the account had are told what changed.
	if _, ok := set[store.FieldPhone]; ok {
		h.accounts.Notify(ctx, me, verify.NoticePhoneChanged)
	}
	if _, ok := set[store.FieldEmail]; ok {
		h.accounts.Notify(ctx, me, verify.NoticeEmailChanged)
	}
	if hasNew {
		h.accounts.Notify(ctx, me, verify.NoticePasswordSet)
	}
	httpx.WriteJSON(w, http.StatusOK, h.userInfo(p))
}

// VerifyPhone is POST /hserve/v2.1/sms-phone-verification/ {code}: the code
// sent to the user's phone (sendSmsCode) marks it verified.
func (h *Handler) VerifyPhone(w http.ResponseWriter, r *http.Request) {
	me := callerOf(r).profile
	f, err := readForm(r, false, "code")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	code := readCode(f)
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	if me.Phone == "" {
		h.fail(w, r, badRequest("this user has no phone number to verify: set one first (setMobilePhone)"))
		return
	}
	ctx := r.Context()
	if err := h.accounts.ConsumeCode(ctx, account.Contact{Field: store.FieldPhone, Value: me.Phone}, code); err != nil {
		h.fail(w, r, err)
		return
	}
	if _, err := h.store.UpdateAccount(ctx, me.ID, map[string]any{store.FieldPhoneVerified: true}, ""); err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
