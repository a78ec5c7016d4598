package plus

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"userve.dev/userve/server/account"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/verify"
	"userve.dev/userve/server/wechat"
)

// WeChat mini-program login and linking (spec.wechat). WeChat's answers map
// to statuses in weChatFail; the session key WeChat hands out is sealed
// (wechat.Sealer) and kept in the store, never sent to a client.

// WeChatEnabled reports whether spec.wechat is set (routes.go registers the
// WeChat routes only then).
func (h *Handler) WeChatEnabled() bool { return h.wechat != nil }

// weChatRetryAfter is the Retry-After of a 503 for WeChat trouble.
const weChatRetryAfter = "5"

// weChatFail writes a WeChat error: 40029 (and 40163, a used code) → 422 on
// field, 45011 → 429, 40226 → 403, everything else WeChat-side (-1 busy,
// timeouts, malformed replies, unexpected errcodes such as a wrong app
// secret) → 503 with Retry-After. Other errors go to fail.
func (h *Handler) weChatFail(w http.ResponseWriter, r *http.Request, err error, field string) {
	var ae *wechat.APIError
	if !errors.As(err, &ae) && !errors.Is(err, wechat.ErrUnavailable) {
		h.fail(w, r, err)
		return
	}
	switch wechat.Code(err) {
	case wechat.CodeInvalidCode, wechat.CodeCodeUsed:
		h.fail(w, r, invalid(field, field+" is invalid, used or expired (WeChat errcode "+strconv.Itoa(wechat.Code(err))+")"))
	case wechat.CodeRateLimited:
		w.Header().Set("Retry-After", "60")
		h.fail(w, r, newError(http.StatusTooManyRequests, "WeChat's rate limit is reached (errcode 45011); retry in a minute"))
	case wechat.CodeBlockedUser:
		h.fail(w, r, newError(http.StatusForbidden, "WeChat refuses this user (errcode 40226: high-risk account)"))
	default:
		if ae != nil && ae.Code != wechat.CodeBusy {
			// Not a passing fault: most likely spec.wechat or its secret.
			h.log.Error("WeChat refused a call; check spec.wechat and its app secret", "error", err)
		} else {
			h.log.Warn("WeChat unavailable", "error", err)
		}
		w.Header().Set("Retry-After", weChatRetryAfter)
		h.fail(w, r, newError(http.StatusServiceUnavailable, "WeChat is unavailable; retry shortly"))
	}
}

func conflict(field, msg string) *apiError {
	return &apiError{status: http.StatusConflict, message: msg, conflict: field}
}

var (
	weChatCodeInput = input{body: []string{"code"}}
	// weChatProvenInput is a code and the proof of the owner (reauth.go)
	// of the routes that add a way into the account.
	weChatProvenInput  = input{body: append([]string{"code"}, proofOfWeChat.fields()...)}
	weChatUnlinkInput  = input{body: []string{"password", "verifiable_code"}}
	weChatProfileInput = input{body: []string{"encryptedData", "iv"}}
)

// readWeChatCode reads {code}: a wx.login or getPhoneNumber code.
func readWeChatCode(r *http.Request) (string, error) {
	f, err := weChatCodeInput.read(r)
	if err != nil {
		return "", err
	}
	code := weChatCodeOf(f)
	return code, f.err()
}

func weChatCodeOf(f *form) string {
	code, ok := f.str("code", true, 256)
	if ok && strings.TrimSpace(code) == "" {
		f.add("code", "code must not be empty")
	}
	return strings.TrimSpace(code)
}

// readProvenWeChatCode reads {code} and the caller's proof of being the
// owner, and judges the proof before WeChat is called.
func (h *Handler) readProvenWeChatCode(r *http.Request) (string, error) {
	f, err := weChatProvenInput.read(r)
	if err != nil {
		return "", err
	}
	code := weChatCodeOf(f)
	proof := h.readProof(r, f, proofOfWeChat)
	if err := f.err(); err != nil {
		return "", err
	}
	return code, h.reauth(r.Context(), r, proof, proofOfWeChat)
}

// LoginWeChat is POST /auth/wechat {code}: the wx.login code for a token.
// 201 with "created": true for a new user, 200 with false for a known one.
// Each call spends the app's WeChat quota, so a code is an attempt of the
// client address's failure budget before WeChat is asked: a flood of bogus
// codes from one address reaches WeChat at most account.FailuresPerAddress
// times per window, and codes WeChat accepts give their slot back.
func (h *Handler) LoginWeChat(w http.ResponseWriter, r *http.Request) {
	code, err := readWeChatCode(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	attempt, err := h.accounts.Begin(ctx, h.clientIP(r), account.Account{})
	var throttled *account.Throttled
	if errors.As(err, &throttled) {
		err = tooMany(throttled, failureBudget(throttled.Budget, "failed logins"))
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sess, err := h.wechat.Client.Code2Session(ctx, code)
	if err != nil {
		h.weChatFail(w, r, err, "code")
		return
	}
	attempt.Succeeded(ctx)
	p, created, err := h.store.LoginWeChat(ctx, sess.OpenID, sess.UnionID, h.wechat.CreateUsers)
	if errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, newError(http.StatusNotFound, "no user is linked to this WeChat account: sign in another way and link it with PUT /api/v2/user/wechat"))
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
	token, claims, err := h.startLogin(r, p, account.MethodWeChat)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	body := h.issuedBody(token, claims) // the /auth/login answer, and whether the user is new
	body["created"] = created
	writeJSON(w, status, body)
}

// LinkWeChat is PUT /user/wechat {code}: link the caller to the WeChat
// account of a wx.login code. An account linked to another user, or a
// caller linked to another account, is a 409 and nothing changes.
func (h *Handler) LinkWeChat(w http.ResponseWriter, r *http.Request) {
	me := callerOf(r).profile
	code, err := h.readProvenWeChatCode(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	sess, err := h.wechat.Client.Code2Session(ctx, code)
	if err != nil {
		h.weChatFail(w, r, err, "code")
		return
	}
	for _, id := range []struct{ field, value string }{{store.FieldUnionID, sess.UnionID}, {store.FieldOpenID, sess.OpenID}} {
		if id.value == "" {
			continue
		}
		other, err := h.store.FindProfileBy(ctx, id.field, id.value)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			h.fail(w, r, err)
			return
		}
		if other != nil && other.ID != me.ID {
			h.fail(w, r, conflict(id.field, "this WeChat account ("+id.field+") is already linked to another user; merge the two users (POST /userve/v1/user-merge/) or unlink it there first"))
			return
		}
	}
	if me.OpenID != "" && me.OpenID != sess.OpenID {
		h.fail(w, r, conflict(store.FieldOpenID, "this user is already linked to another WeChat account; unlink it first (DELETE /api/v2/user/wechat)"))
		return
	}
	if me.UnionID != "" && sess.UnionID != "" && me.UnionID != sess.UnionID {
		h.fail(w, r, conflict(store.FieldUnionID, "this user is already linked to another WeChat account (unionid); unlink it first (DELETE /api/v2/user/wechat)"))
		return
	}
	if _, err := h.store.LinkWeChat(ctx, me.ID, sess.OpenID, sess.UnionID); err != nil {
		var ce *store.ConflictError
		if errors.As(err, &ce) {
			// Lost a race with another user linking the same account.
			h.fail(w, r, conflict(plusField(ce.Field), "this WeChat account is already linked to another user"))
			return
		}
		h.fail(w, r, err)
		return
	}
	if err := h.wechat.KeepSession(ctx, me.ID, sess.SessionKey); err != nil {
		h.fail(w, r, err)
		return
	}
	if me.OpenID != sess.OpenID {
		h.accounts.Notify(ctx, me, verify.NoticeWeChatLinked)
	}
	noContent(w)
}

// otherWayIn reports whether p can sign in without WeChat: a code to a
// bound phone or e-mail, or a password with a name, phone or e-mail.
func otherWayIn(p *store.Profile) bool {
	return p.Phone != "" || p.Email != "" || (p.PasswordHash != "" && p.Username != "")
}

// UnlinkWeChat is DELETE /user/wechat {password | verifiable_code}. It is
// refused while WeChat is the account's only way in. A verifiable_code is
// one sent to the bound phone, else to the bound e-mail.
func (h *Handler) UnlinkWeChat(w http.ResponseWriter, r *http.Request) {
	me := callerOf(r).profile
	f, err := weChatUnlinkInput.read(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
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
	if me.OpenID == "" && me.UnionID == "" {
		h.fail(w, r, invalid("wechat", "no WeChat account is linked to this user"))
		return
	}
	if !otherWayIn(me) {
		h.fail(w, r, invalid("wechat", "WeChat is this account's only way in: bind a phone or e-mail, or set a name and password, first"))
		return
	}
	ctx := r.Context()
	switch {
	case hasPassword:
		if me.PasswordHash == "" {
			h.fail(w, r, invalid("password", "this account has no password; send verifiable_code instead"))
			return
		}
		if err := h.checkPassword(ctx, w, r, me, "password", password); err != nil {
			h.fail(w, r, err)
			return
		}
	case hasCode:
		c := account.Contact{Field: store.FieldPhone, Value: me.Phone}
		if me.Phone == "" {
			c = account.Contact{Field: store.FieldEmail, Value: me.Email}
		}
		if c.Value == "" {
			h.fail(w, r, invalid("verifiable_code", "this account has no phone or e-mail to send a code to; send password instead"))
			return
		}
		if err := h.consumeCode(ctx, c, code); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	if _, err := h.store.UnlinkWeChat(ctx, me.ID); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}

// BindWeChatPhone is POST /user/wechat/phone {code}: bind the phone number
// of a getPhoneNumber button's code (verified by WeChat). A number another
// user holds is a 409.
func (h *Handler) BindWeChatPhone(w http.ResponseWriter, r *http.Request) {
	me := callerOf(r).profile
	code, err := h.readProvenWeChatCode(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	phone, err := h.wechat.Phone(ctx, code)
	if err != nil {
		h.weChatFail(w, r, err, "code")
		return
	}
	if me.Phone != phone {
		other, err := h.store.FindProfileBy(ctx, store.FieldPhone, phone)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			h.fail(w, r, err)
			return
		}
		if other != nil && other.ID != me.ID {
			h.fail(w, r, conflict(store.FieldPhone, "this phone number belongs to another user; merge the two users (POST /userve/v1/user-merge/) or unbind it there first"))
			return
		}
		if _, err := h.store.SetContact(ctx, me.ID, store.FieldPhone, phone); err != nil {
			if errors.Is(err, store.ErrConflict) {
				h.fail(w, r, conflict(store.FieldPhone, "this phone number belongs to another user"))
				return
			}
			h.fail(w, r, err)
			return
		}
		h.accounts.Notify(ctx, me, verify.NoticePhoneChanged)
	}
	writeJSON(w, http.StatusOK, map[string]any{"phone": phone, "phone_verified": true})
}

// Profile field limits for WeChat's data (its nicknames are short; these
// keep a tampered client from storing essays).
const weChatFieldMax = 256

// The per-user budget of PUT /user/wechat/profile. A legitimate client
// sends its data once after a login; a padding-oracle attack needs hundreds
// of tries per byte.
const (
	weChatProfileWindow = time.Hour
	weChatProfileTries  = 10
)

// errWeChatData is the one answer to encrypted data that does not decrypt
// to this user's profile, whatever the reason (encoding, length, padding,
// JSON, watermark, another user's openid): distinct answers would be a CBC
// padding oracle, which decrypts and forges ciphertexts block by block.
var errWeChatData = invalid("encryptedData",
	"encryptedData and iv do not decrypt to this user's WeChat profile: send wx.getUserInfo's data as encrypted after the latest WeChat login (POST /api/v2/auth/wechat)")

// SetWeChatProfile is PUT /user/wechat/profile {encryptedData, iv}: the
// profile from wx.getUserInfo's encrypted data, decrypted with the session
// key of the caller's latest WeChat login. Only profile fields are taken
// (nickname, avatar, gender, city, province, country, language): the
// openid and unionid come from jscode2session alone, never from data a
// client sends.
func (h *Handler) SetWeChatProfile(w http.ResponseWriter, r *http.Request) {
	me := callerOf(r).profile
	f, err := weChatProfileInput.read(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	data, _ := f.str("encryptedData", true, 0)
	iv, _ := f.str("iv", true, 64)
	if err := f.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	win, admitted, err := h.store.HitRateLimit(ctx, "wechat-profile:user:"+strconv.FormatInt(me.ID, 10), weChatProfileWindow, weChatProfileTries)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !admitted {
		h.fail(w, r, tooMany(&account.Throttled{RetryAfter: win.RetryAfter(h.store.Now())}, "too many WeChat profile updates for this user"))
		return
	}
	noSession := invalid("encryptedData", "no WeChat session for this user: log in with WeChat (POST /api/v2/auth/wechat) and send data encrypted after that login")
	if me.OpenID == "" {
		h.fail(w, r, invalid("encryptedData", "no WeChat account is linked to this user"))
		return
	}
	key, ok, err := h.wechat.SessionKey(ctx, me.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !ok {
		h.fail(w, r, noSession) // none, or sealed under another secret or app
		return
	}
	info, err := wechat.DecryptUserInfo(key, data, iv, h.wechat.AppID)
	var de *wechat.DecodeError
	if errors.As(err, &de) || (err == nil && info.OpenID != "" && info.OpenID != me.OpenID) {
		h.fail(w, r, errWeChatData)
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	clip := func(s string) string {
		if r := []rune(s); len(r) > weChatFieldMax {
			return string(r[:weChatFieldMax])
		}
		return s
	}
	set := map[string]any{
		store.FieldNickname: clip(info.NickName), store.FieldAvatar: clip(info.AvatarURL), store.FieldGender: info.Gender,
		store.FieldCity: clip(info.City), store.FieldProvince: clip(info.Province), store.FieldCountry: clip(info.Country),
		store.FieldLanguage: clip(info.Language),
	}
	if _, err := h.store.UpdateProfile(ctx, me.ID, set); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}
