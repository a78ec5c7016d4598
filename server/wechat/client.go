// Package wechat is a small client for the three WeChat mini-program server
// APIs userve needs (sns/jscode2session, cgi-bin/stable_token and
// wxa/business/getuserphonenumber) and the crypto around them: decrypting
// wx.getUserInfo's encryptedData and sealing session keys at rest.
//
// Why not github.com/silenceper/wechat/v2 (v2.1.10): its URLs are package
// constants fixed to https://api.weixin.qq.com and its HTTP client is one
// process-wide variable (util.DefaultHTTPClient), so a tenant's apiBaseURL
// (and the tests' fake) could only be reached by rewriting every request of
// the process; its token cache interface (Get/Set/IsExist/Delete) has no
// atomic claim, and its refresh is guarded by an in-process mutex, so
// replicas sharing MongoDB would each fetch a token at the same moment. It
// also brings redis, memcache, logrus and gock. The three calls are a page
// of code, tested against wechattest, a fake that follows WeChat's
// documented bodies (docs/plus.md, "WeChat").
package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultBaseURL is WeChat's API host.
const DefaultBaseURL = "https://api.weixin.qq.com"

// DefaultTimeout bounds one call to WeChat.
const DefaultTimeout = 5 * time.Second

// maxReply bounds a reply body; WeChat's are a few hundred bytes.
const maxReply = 64 << 10

// WeChat error codes this package gives a meaning.
const (
	CodeBusy              = -1
	CodeInvalidCredential = 40001 // access_token invalid (or secret wrong)
	CodeInvalidToken      = 40014 // access_token malformed
	CodeTokenExpired      = 42001
	CodeInvalidCode       = 40029
	CodeCodeUsed          = 40163
	CodeRateLimited       = 45011
	CodeBlockedUser       = 40226
)

// APIError is a reply with a non-zero errcode.
type APIError struct {
	Op      string // "jscode2session", "stable_token", "getuserphonenumber"
	Code    int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("wechat %s: errcode %d: %s", e.Op, e.Code, e.Message)
}

// ErrUnavailable covers timeouts, transport errors, non-200 statuses and
// malformed replies: WeChat did not give a usable answer.
var ErrUnavailable = errors.New("wechat unavailable")

// Code is err's WeChat errcode, 0 if it has none.
func Code(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

// TokenRejected reports an access token WeChat no longer takes.
func TokenRejected(err error) bool {
	switch Code(err) {
	case CodeInvalidCredential, CodeInvalidToken, CodeTokenExpired:
		return true
	}
	return false
}

// Client calls one mini-program's APIs.
type Client struct {
	BaseURL string // DefaultBaseURL when empty
	AppID   string
	Secret  string
	HTTP    *http.Client // nil: a client with DefaultTimeout
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: DefaultTimeout}
}

func (c *Client) url(path string, q url.Values) string {
	base := strings.TrimRight(c.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	u := base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// Session is jscode2session's answer. SessionKey is the base64 key WeChat
// encrypts this user's data with; it must never leave the server.
type Session struct {
	OpenID     string `json:"openid"`
	UnionID    string `json:"unionid"`
	SessionKey string `json:"session_key"`
}

// Code2Session exchanges a wx.login code.
func (c *Client) Code2Session(ctx context.Context, code string) (*Session, error) {
	q := url.Values{"appid": {c.AppID}, "secret": {c.Secret}, "js_code": {code}, "grant_type": {"authorization_code"}}
	var out struct {
		Session
		reply
	}
	if err := c.do(ctx, "jscode2session", http.MethodGet, c.url("/sns/jscode2session", q), nil, &out, &out.reply); err != nil {
		return nil, err
	}
	if out.OpenID == "" || out.SessionKey == "" {
		return nil, fmt.Errorf("%w: jscode2session: reply without openid or session_key", ErrUnavailable)
	}
	return &out.Session, nil
}

// Token is an access token and how long WeChat says it lives.
type Token struct {
	AccessToken string
	ExpiresIn   time.Duration
}

// StableToken fetches the app's access token from cgi-bin/stable_token.
// forceRefresh asks for a new one (after WeChat refused the current one).
func (c *Client) StableToken(ctx context.Context, forceRefresh bool) (Token, error) {
	body, _ := json.Marshal(map[string]any{
		"grant_type": "client_credential", "appid": c.AppID, "secret": c.Secret, "force_refresh": forceRefresh,
	})
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		reply
	}
	if err := c.do(ctx, "stable_token", http.MethodPost, c.url("/cgi-bin/stable_token", nil), body, &out, &out.reply); err != nil {
		return Token{}, err
	}
	if out.AccessToken == "" || out.ExpiresIn <= 0 {
		return Token{}, fmt.Errorf("%w: stable_token: reply without access_token or expires_in", ErrUnavailable)
	}
	return Token{AccessToken: out.AccessToken, ExpiresIn: time.Duration(out.ExpiresIn) * time.Second}, nil
}

// Phone is getuserphonenumber's phone_info.
type Phone struct {
	PhoneNumber     string // with the country code for numbers outside China
	PurePhoneNumber string
	CountryCode     string
	WatermarkAppID  string
}

// PhoneNumber exchanges a getPhoneNumber button's code.
func (c *Client) PhoneNumber(ctx context.Context, accessToken, code string) (*Phone, error) {
	body, _ := json.Marshal(map[string]string{"code": code})
	var out struct {
		PhoneInfo *struct {
			PhoneNumber     string          `json:"phoneNumber"`
			PurePhoneNumber string          `json:"purePhoneNumber"`
			CountryCode     json.RawMessage `json:"countryCode"` // documented a string; some replies carry a number
			Watermark       struct {
				AppID string `json:"appid"`
			} `json:"watermark"`
		} `json:"phone_info"`
		reply
	}
	u := c.url("/wxa/business/getuserphonenumber", url.Values{"access_token": {accessToken}})
	if err := c.do(ctx, "getuserphonenumber", http.MethodPost, u, body, &out, &out.reply); err != nil {
		return nil, err
	}
	pi := out.PhoneInfo
	if pi == nil || pi.PurePhoneNumber == "" {
		return nil, fmt.Errorf("%w: getuserphonenumber: reply without phone_info", ErrUnavailable)
	}
	cc := strings.Trim(strings.TrimSpace(string(pi.CountryCode)), `"`)
	return &Phone{PhoneNumber: pi.PhoneNumber, PurePhoneNumber: pi.PurePhoneNumber, CountryCode: cc, WatermarkAppID: pi.Watermark.AppID}, nil
}

// reply is the errcode/errmsg every WeChat answer may carry.
type reply struct {
	ErrCode *int   `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// do sends one request and decodes the reply into out; r is the reply part
// of out.
func (c *Client) do(ctx context.Context, op, method, u string, body []byte, out any, r *reply) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("wechat %s: %w", op, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http().Do(req)
	if err != nil {
		// A *url.Error quotes the URL, which holds the secret or the
		// access token: keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%w: %s: request failed: %v", ErrUnavailable, op, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxReply+1))
	if err != nil {
		return fmt.Errorf("%w: %s: reading reply: %v", ErrUnavailable, op, err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s: HTTP %d", ErrUnavailable, op, res.StatusCode)
	}
	if len(data) > maxReply {
		return fmt.Errorf("%w: %s: reply over %d bytes", ErrUnavailable, op, maxReply)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: %s: malformed reply: %v", ErrUnavailable, op, err)
	}
	if r.ErrCode != nil && *r.ErrCode != 0 {
		return &APIError{Op: op, Code: *r.ErrCode, Message: r.ErrMsg}
	}
	return nil
}
