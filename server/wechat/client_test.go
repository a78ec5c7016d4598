package wechat_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/server/wechat"
	"userve.dev/userve/server/wechat/wechattest"
)

func newClient(t *testing.T) (*wechat.Client, *wechattest.Fake) {
	t.Helper()
	f := wechattest.New("wx-app-1", "app-secret-1")
	f.Hang = 2 * time.Second
	url, stop := f.Start()
	t.Cleanup(stop)
	return &wechat.Client{BaseURL: url, AppID: f.AppID, Secret: f.Secret, HTTP: &http.Client{Timeout: 300 * time.Millisecond}}, f
}

func TestCode2Session(t *testing.T) {
	c, f := newClient(t)
	ctx := context.Background()
	code := f.Login("o-ann", "u-ann")
	s, err := c.Code2Session(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	if s.OpenID != "o-ann" || s.UnionID != "u-ann" || s.SessionKey != f.SessionKey("o-ann") {
		t.Fatalf("session %+v", s)
	}
	// Codes are single use; unknown codes are 40029.
	if _, err := c.Code2Session(ctx, code); wechat.Code(err) != wechat.CodeCodeUsed {
		t.Fatalf("reused code: %v", err)
	}
	if _, err := c.Code2Session(ctx, "nope"); wechat.Code(err) != wechat.CodeInvalidCode {
		t.Fatalf("unknown code: %v", err)
	}
	// No unionid without an Open Platform account.
	s, err = c.Code2Session(ctx, f.Login("o-bob", ""))
	if err != nil || s.UnionID != "" {
		t.Fatalf("%+v %v", s, err)
	}
	// A wrong secret is WeChat's 40125.
	bad := *c
	bad.Secret = "wrong"
	if _, err := bad.Code2Session(ctx, f.Login("o-ann", "")); wechat.Code(err) != 40125 {
		t.Fatalf("wrong secret: %v", err)
	}
}

func TestClientFailures(t *testing.T) {
	c, f := newClient(t)
	ctx := context.Background()
	for _, tc := range []struct {
		mode        int
		code        int
		unavailable bool
	}{
		{45011, 45011, false}, {40226, 40226, false}, {-1, -1, false},
		{wechattest.FailTimeout, 0, true}, {wechattest.FailMalformed, 0, true}, {wechattest.FailHTTP, 0, true},
	} {
		f.FailNext(wechattest.OpSession, tc.mode)
		_, err := c.Code2Session(ctx, f.Login("o-ann", ""))
		if wechat.Code(err) != tc.code || errors.Is(err, wechat.ErrUnavailable) != tc.unavailable {
			t.Errorf("mode %d: %v", tc.mode, err)
		}
		if err != nil && strings.Contains(err.Error(), f.Secret) {
			t.Errorf("error shows the secret: %v", err)
		}
	}
}

func TestStableTokenAndPhone(t *testing.T) {
	c, f := newClient(t)
	ctx := context.Background()
	tok, err := c.StableToken(ctx, false)
	if err != nil || tok.ExpiresIn != 7200*time.Second {
		t.Fatalf("%+v %v", tok, err)
	}
	again, _ := c.StableToken(ctx, false)
	if again.AccessToken != tok.AccessToken || f.TokenFetches() != 1 {
		t.Fatalf("stable_token changed without force_refresh")
	}
	p, err := c.PhoneNumber(ctx, tok.AccessToken, f.PhoneCode("13800000001"))
	if err != nil || p.PurePhoneNumber != "13800000001" || p.CountryCode != "86" || p.WatermarkAppID != f.AppID {
		t.Fatalf("%+v %v", p, err)
	}
	p, err = c.PhoneNumber(ctx, tok.AccessToken, f.PhoneCode("1:2025550100"))
	if err != nil || p.PhoneNumber != "+1 2025550100" || p.CountryCode != "1" {
		t.Fatalf("%+v %v", p, err)
	}
	if _, err := c.PhoneNumber(ctx, tok.AccessToken, "bogus"); wechat.Code(err) != wechat.CodeInvalidCode {
		t.Fatalf("bad phone code: %v", err)
	}
	f.RevokeToken()
	_, err = c.PhoneNumber(ctx, tok.AccessToken, f.PhoneCode("13800000001"))
	if !wechat.TokenRejected(err) {
		t.Fatalf("revoked token: %v", err)
	}
	fresh, err := c.StableToken(ctx, true)
	if err != nil || fresh.AccessToken == tok.AccessToken {
		t.Fatalf("force_refresh: %+v %v", fresh, err)
	}
}
