package hserve

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/httpx"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/wechat"
)

// WeChat mini-program login as the SDK's mini-program build does it
// (BaaS.auth.silentLogin, loginWithWechat, linkWechat), on the tenant's
// spec.wechat and the same store records as /api/v2/auth/wechat: a WeChat
// user is one user whichever dialect logged them in.

// miniProgram is the tenant's WeChat mini-program.
type miniProgram struct {
	appID       string
	createUsers bool
	client      *wechat.Client
	sealer      *wechat.Sealer
}

func newMiniProgram(cfg *config.Config, httpClient *http.Client) (*miniProgram, error) {
	spec := cfg.Spec().WeChat
	if spec == nil {
		return nil, nil
	}
	sealer, err := wechat.NewSealer(cfg.WeChatSecret, spec.AppID)
	if err != nil {
		return nil, err
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: wechat.DefaultTimeout}
	}
	base := spec.APIBaseURL
	if base == "" {
		base = v1alpha1.DefaultWeChatAPIBaseURL
	}
	return &miniProgram{
		appID: spec.AppID, createUsers: v1alpha1.Enabled(spec.CreateUsers), sealer: sealer,
		client: &wechat.Client{BaseURL: base, AppID: spec.AppID, Secret: cfg.WeChatSecret, HTTP: httpClient},
	}, nil
}

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

// keepSession seals and stores the session key of user's latest login.
func (h *Handler) keepSession(ctx context.Context, user int64, sessionKey string) error {
	sealed, err := h.wechat.sealer.Seal(user, sessionKey)
	if err != nil {
		return err
	}
	return h.store.SaveWeChatSession(ctx, user, h.wechat.appID, sealed)
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
	sess, err := h.wechat.client.Code2Session(ctx, code)
	if err != nil {
		h.weChatFail(w, r, err)
		return
	}
	p, created, err := h.store.LoginWeChat(ctx, sess.OpenID, sess.UnionID, create && h.wechat.createUsers)
	if errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, newError(http.StatusNotFound, "no user is linked to this WeChat account: log in another way and call linkWechat"))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.keepSession(ctx, p.ID, sess.SessionKey); err != nil {
		h.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	h.writeSession(w, r, status, p)
}

// Associate is POST /hserve/v2.4/idp/wechat/user-associate/ {code,
// associate_with_unionid} (currentUser.linkWechat()): link the caller to the
// WeChat account of a wx.login code. It needs a login within sudoWindow (a
// stolen token alone must not attach another WeChat account). A WeChat
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
	if h.now().Sub(c.claims.AuthTime) > sudoWindow {
		h.fail(w, r, newError(http.StatusForbidden, "linking WeChat needs a login within the last 10 minutes: log in again first"))
		return
	}
	ctx := r.Context()
	sess, err := h.wechat.client.Code2Session(ctx, code)
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
	if err := h.keepSession(ctx, p.ID, sess.SessionKey); err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, h.userInfo(p))
}
