package account

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/wechat"
)

// MiniProgram is the tenant's WeChat mini-program (spec.wechat), one for
// every dialect that logs users in with WeChat: the session keys it seals
// and the app access token it caches are the same records whichever
// dialect asked.
type MiniProgram struct {
	AppID       string
	CreateUsers bool
	Client      *wechat.Client
	sealer      *wechat.Sealer
	store       *store.Store
}

// NewMiniProgram is nil (and no error) unless spec.wechat is set.
// httpClient nil means a client with wechat.DefaultTimeout.
func NewMiniProgram(st *store.Store, cfg *config.Config, httpClient *http.Client) (*MiniProgram, error) {
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
	return &MiniProgram{
		AppID: spec.AppID, CreateUsers: v1alpha1.Enabled(spec.CreateUsers), sealer: sealer, store: st,
		Client: &wechat.Client{BaseURL: base, AppID: spec.AppID, Secret: cfg.WeChatSecret, HTTP: httpClient},
	}, nil
}

// KeepSession seals and stores the session key of user's latest login.
func (m *MiniProgram) KeepSession(ctx context.Context, user int64, sessionKey string) error {
	sealed, err := m.sealer.Seal(user, sessionKey)
	if err != nil {
		return err
	}
	return m.store.SaveWeChatSession(ctx, user, m.AppID, sealed)
}

// SessionKey opens user's stored session key; ok is false when there is
// none, or it was sealed under another secret or app.
func (m *MiniProgram) SessionKey(ctx context.Context, user int64) (key string, ok bool, err error) {
	appID, sealed, err := m.store.WeChatSession(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	key, err = m.sealer.Open(user, sealed)
	if err != nil || appID != m.AppID {
		return "", false, nil
	}
	return key, true, nil
}

// accessToken is the app's access token from the store's shared cache.
func (m *MiniProgram) accessToken(ctx context.Context, stale *store.AccessToken) (*store.AccessToken, error) {
	fetch := func(ctx context.Context, force bool) (string, time.Duration, error) {
		t, err := m.Client.StableToken(ctx, force)
		return t.AccessToken, t.ExpiresIn, err
	}
	if stale != nil {
		return m.store.RefreshWeChatAccessToken(ctx, stale, fetch)
	}
	return m.store.WeChatAccessToken(ctx, m.AppID, fetch)
}

// Phone is the number of a getPhoneNumber button's code, verified by
// WeChat, as users are stored: Chinese numbers bare (13800000000), others
// with '+' and country code. Anything but a phone number for this app is
// wechat.ErrUnavailable.
func (m *MiniProgram) Phone(ctx context.Context, code string) (string, error) {
	tok, err := m.accessToken(ctx, nil)
	if err != nil {
		return "", err
	}
	info, err := m.Client.PhoneNumber(ctx, tok.Value, code)
	if wechat.TokenRejected(err) {
		// Replaced elsewhere (another force refresh) or expired early:
		// one replica fetches anew, then the call is repeated once.
		if tok, err = m.accessToken(ctx, tok); err == nil {
			info, err = m.Client.PhoneNumber(ctx, tok.Value, code)
		}
	}
	if err != nil {
		return "", err
	}
	if info.WatermarkAppID != "" && info.WatermarkAppID != m.AppID {
		return "", errors.Join(wechat.ErrUnavailable, errors.New("getuserphonenumber: watermark names another app"))
	}
	phone := phoneFromWeChat(info)
	if !LooksLikePhone(phone) {
		return "", errors.Join(wechat.ErrUnavailable, errors.New("getuserphonenumber: not a phone number"))
	}
	return phone, nil
}

func phoneFromWeChat(p *wechat.Phone) string {
	pure := strings.TrimSpace(p.PurePhoneNumber)
	cc := strings.TrimPrefix(strings.TrimSpace(p.CountryCode), "+")
	if cc == "" || cc == "86" {
		return pure
	}
	return "+" + cc + pure
}
