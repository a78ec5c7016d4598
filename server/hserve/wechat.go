package hserve

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/verify"
	"userve.dev/userve/server/wechat"
)

// WeChat mini-program login as the SDK's mini-program build does it
// (BaaS.auth.silentLogin, loginWithWechat, linkWechat), on the tenant's
// spec.wechat and the same store records as /api/v2/auth/wechat: a WeChat
// user is one user whichever dialect logged them in.

// WeChatEnabled reports whether spec.wechat is set (routes.go registers the
// WeChat routes only then).
func (h *Handler) WeChatEnabled() bool { return h.wechat != nil }

// weChatFail writes a WeChat error: a bad or used code is a 400, WeChat's
// rate limit a 429, a user WeChat blocks a 403, anything else WeChat-side
// a 503 with Retry-After.
func (h *Handler) weChatFail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *wechat.APIError
	if !errors.As(err, &ae) && !errors.Is(err, wechat.ErrUnavailable) {
		h.fail(w, r, err)
		return
	}
	switch wechat.Code(err) {
	case wechat.CodeInvalidCode, wechat.CodeCodeUsed:
		h.fail(w, r, badRequest("code is invalid, used or expired (WeChat errcode %d): call wx.login again", wechat.Code(err)))
	case wechat.CodeRateLimited:
		h.fail(w, r, &apiError{status: http.StatusTooManyRequests, retryAfter: 60, msg: "WeChat's rate limit is reached (errcode 45011); retry in a minute"})
	case wechat.CodeBlockedUser:
		h.fail(w, r, newError(http.StatusForbidden, "WeChat refuses this user (errcode 40226: high-risk account)"))
	default:
		if ae != nil && ae.Code != wechat.CodeBusy {
			h.log.Error("WeChat refused a call; check spec.wechat and its app secret", "error", err)
		} else {
			h.log.Warn("WeChat unavailable", "error", err)
		}
		h.fail(w, r, &apiError{status: http.StatusServiceUnavailable, retryAfter: 5, msg: "WeChat is unavailable; retry shortly"})
	}
}

// readWxCode reads the wx.login code.
func readWxCode(f *form) string {
	code, ok := f.str("code", true, 256)
	if ok && strings.TrimSpace(code) == "" {
		f.add("code must not be empty")
	}
	return strings.TrimSpace(code)
}

// weChatAttempt counts an anonymous call that spends the app's WeChat
// quota against the client address's failure budget before WeChat is
// asked, as /api/v2/auth/wechat does: a flood of bogus codes from one
// address reaches WeChat at most account.FailuresPerAddress times a
// window, and calls WeChat accepts give their slot back (Succeeded).
func (h *Handler) weChatAttempt(r *http.Request) (*account.Attempt, error) {
	return h.accounts.Begin(r.Context(), h.clientAddress(r), account.Account{})
}

// SilentLogin is POST /hserve/v2.5/idp/wechat/silent-login/ {code,
// create_user, login_with_unionid} (auth.silentLogin, loginWithWechat()):
// the wx.login code for a session. Parallel first logins of one WeChat user
// create one user (store.LoginWeChat). login_with_unionid is accepted; a
// user is found by unionid whenever WeChat gives one.
func (h *Handler) SilentLogin(w http.ResponseWriter, r *http.Request) {
	f, err := readForm(r, false, "code", "create_user", "login_with_unionid")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	code := readWxCode(f)
	create := f.boolean("create_user", true)
	f.boolean("login_with_unionid", false)
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	attempt, err := h.weChatAttempt(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sess, err := h.wechat.Client.Code2Session(ctx, code)
	if err != nil {
		h.weChatFail(w, r, err)
		return
	}
	attempt.Succeeded(ctx)
	p, created, err := h.store.LoginWeChat(ctx, sess.OpenID, sess.UnionID, create && h.wechat.CreateUsers)
	if errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, newError(http.StatusNotFound, "no user is linked to this WeChat account: log in another way and call linkWechat"))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.wechat.KeepSession(ctx, p.ID, sess.SessionKey); err != nil {
		h.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	h.writeSession(w, r, status, p, account.MethodWeChat)
}

// Associate is POST /hserve/v2.4/idp/wechat/user-associate/ {code,
// associate_with_unionid} (currentUser.linkWechat()): link the caller to the
// WeChat account of a wx.login code. It needs a login within
// spec.api.plus.reauthWindow (a stolen token alone must not attach another
// WeChat account); the account's contacts are told. A WeChat
// account linked to another user, or a caller linked to another WeChat
// account, is a 409 and nothing changes.
func (h *Handler) Associate(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	me := c.profile
	f, err := readForm(r, false, "code", "associate_with_unionid")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	code := readWxCode(f)
	f.boolean("associate_with_unionid", false)
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	if me.Anonymous {
		h.fail(w, r, newError(http.StatusForbidden, "an anonymous user cannot link WeChat: log in first"))
		return
	}
	proof := account.Proof{Address: h.clientAddress(r), LoggedInAt: c.claims.AuthTime}
	if err := h.accounts.Reauthenticate(r.Context(), me, proof, h.reauthWindow); err != nil {
		if errors.Is(err, account.ErrReauthRequired) {
			err = newError(http.StatusForbidden, fmt.Sprintf("linking WeChat needs a login within the last %s: log in again first", h.reauthWindow))
		}
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	sess, err := h.wechat.Client.Code2Session(ctx, code)
	if err != nil {
		h.weChatFail(w, r, err)
		return
	}
	if (me.OpenID != "" && me.OpenID != sess.OpenID) || (me.UnionID != "" && sess.UnionID != "" && me.UnionID != sess.UnionID) {
		h.fail(w, r, newError(http.StatusConflict, "this user is already linked to another WeChat account"))
		return
	}
	p, err := h.store.LinkWeChat(ctx, me.ID, sess.OpenID, sess.UnionID)
	var ce *store.ConflictError
	if errors.As(err, &ce) {
		h.fail(w, r, newError(http.StatusConflict, "this WeChat account is already linked to another user"))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.wechat.KeepSession(ctx, p.ID, sess.SessionKey); err != nil {
		h.fail(w, r, err)
		return
	}
	h.accounts.Notify(ctx, me, verify.NoticeWeChatLinked)
	httpx.WriteJSON(w, http.StatusOK, h.userInfo(p))
}

// PhoneLogin is POST /hserve/v2.7/idp/wechat/phone-login/ {phone_code,
// code, create_user, encryptedData, iv} (loginWithWechat with a
// getPhoneNumber button's event, base library 2.21.2 and later): the user
// of the number WeChat verified for phone_code, found by the WeChat
// account of the wx.login code when one is sent, else by the number; with
// create_user a new user. The number and the WeChat account are recorded on
// the user when free. encryptedData and iv (the pre-2.21.2 way) are
// accepted and not used: the number comes from WeChat, never from the
// client.
func (h *Handler) PhoneLogin(w http.ResponseWriter, r *http.Request) {
	f, err := readForm(r, false, "phone_code", "code", "create_user", "encryptedData", "iv")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	phoneCode, _ := f.str("phone_code", true, 256)
	code, _ := f.str("code", false, 256)
	create := f.boolean("create_user", true)
	f.str("encryptedData", false, 0)
	f.str("iv", false, 64)
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	attempt, err := h.weChatAttempt(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	phone, err := h.wechat.Phone(ctx, strings.TrimSpace(phoneCode))
	if err != nil {
		h.weChatFail(w, r, err)
		return
	}
	var sess *wechat.Session
	if code = strings.TrimSpace(code); code != "" {
		if sess, err = h.wechat.Client.Code2Session(ctx, code); err != nil {
			h.weChatFail(w, r, err)
			return
		}
	}
	attempt.Succeeded(ctx)
	p, created, err := h.phoneUser(ctx, phone, sess, create && h.wechat.CreateUsers)
	if errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, newError(http.StatusNotFound, "no user has this phone number (send create_user: true to create one)"))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if sess != nil {
		if err := h.wechat.KeepSession(ctx, p.ID, sess.SessionKey); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	h.writeSession(w, r, status, p, account.MethodWeChat)
}

// phoneUser finds (or creates) the user of a WeChat-verified phone: the
// WeChat account's user first, then the number's; the number, verified,
// and the WeChat identity are completed where another user does not hold
// them.
func (h *Handler) phoneUser(ctx context.Context, phone string, sess *wechat.Session, create bool) (*store.Profile, bool, error) {
	var p *store.Profile
	var err error
	if sess != nil {
		p, err = h.store.FindWeChatUser(ctx, sess.OpenID, sess.UnionID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, false, err
		}
	}
	if p == nil {
		p, err = h.store.FindProfileBy(ctx, store.FieldPhone, phone)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, false, err
		}
		if p != nil && !p.PhoneVerified {
			return nil, false, errUnverifiedPhone
		}
	}
	if p == nil {
		if !create {
			return nil, false, store.ErrNotFound
		}
		p = &store.Profile{Phone: phone, PhoneVerified: true}
		if sess != nil {
			p.OpenID, p.UnionID = sess.OpenID, sess.UnionID
		}
		if err := h.store.CreateProfile(ctx, p); err != nil {
			if errors.Is(err, store.ErrConflict) {
				// A parallel first login made the user: it is found now.
				return h.phoneUser(ctx, phone, sess, false)
			}
			return nil, false, err
		}
		return p, true, nil
	}
	set := map[string]any{}
	if p.Phone == "" || (p.Phone == phone && !p.PhoneVerified) {
		set[store.FieldPhone], set[store.FieldPhoneVerified] = phone, true
	}
	if sess != nil && p.OpenID == "" {
		set[store.FieldOpenID] = sess.OpenID
		if p.UnionID == "" && sess.UnionID != "" {
			set[store.FieldUnionID] = sess.UnionID
		}
	}
	if len(set) == 0 {
		return p, false, nil
	}
	q, err := h.store.UpdateAccount(ctx, p.ID, set, "")
	if errors.Is(err, store.ErrConflict) {
		return p, false, nil // held by another user: keep what this one has
	}
	return q, false, err
}
