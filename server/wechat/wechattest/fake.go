// Package wechattest is a local fake of the WeChat mini-program server APIs
// that userve calls: sns/jscode2session, cgi-bin/stable_token, cgi-bin/token
// and wxa/business/getuserphonenumber, with WeChat's errcode/errmsg bodies,
// single-use codes, expiring access tokens and the encrypted user-data
// format. Tests drive it through its methods; `userve dev` starts one and a
// person drives it through /fake/... (see Handler), so the whole login flow
// can be tried with curl. It is never part of `userve serve`.
package wechattest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"

	"userve.dev/userve/server/wechat"
)

// Failure modes for FailNext besides a WeChat errcode.
const (
	FailTimeout   = -1000 // answer only after Fake.Hang (past the client's timeout)
	FailMalformed = -1001 // a reply that is not JSON
	FailHTTP      = -1002 // HTTP 502 with an HTML body
)

// Operations, as FailNext names them.
const (
	OpSession = "jscode2session"
	OpToken   = "stable_token"
	OpPhone   = "getuserphonenumber"
)

// Identity is one WeChat user of the mini-program.
type Identity struct {
	OpenID, UnionID string
	sessionKey      string // the key of the user's latest login
}

type jsCode struct {
	openid  string
	expires time.Time
}

// Fake is one mini-program (AppID, Secret) as WeChat sees it.
type Fake struct {
	AppID, Secret string
	// Now is the fake's clock (codes and tokens expire by it).
	Now func() time.Time
	// TokenTTL is the expires_in of new access tokens (default 7200 s).
	TokenTTL time.Duration
	// TokenDelay slows every token fetch, to widen races in tests.
	TokenDelay time.Duration
	// Hang is how long a FailTimeout reply waits (default 10 s).
	Hang time.Duration

	mu         sync.Mutex
	users      map[string]*Identity // by openid
	codes      map[string]jsCode
	phoneCodes map[string]string // code -> phone (E.164 without '+', or Chinese 11 digits)
	token      string
	tokenUntil time.Time
	fetches    int
	calls      map[string]int
	fail       map[string][]int
}

// New is a fake for appID and secret.
func New(appID, secret string) *Fake {
	return &Fake{AppID: appID, Secret: secret, Now: time.Now, TokenTTL: 7200 * time.Second, Hang: 10 * time.Second,
		users: map[string]*Identity{}, codes: map[string]jsCode{}, phoneCodes: map[string]string{},
		calls: map[string]int{}, fail: map[string][]int{}}
}

// Start serves the fake on a local test server, closed by the returned func.
func (f *Fake) Start() (url string, stop func()) {
	srv := httptest.NewServer(f.Handler())
	return srv.URL, srv.Close
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Login is what wx.login does on the phone: a fresh single-use code (valid
// 5 minutes) for the user with openid, creating the user if new. unionid may
// be empty (an app without an Open Platform account).
func (f *Fake) Login(openid, unionid string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.users[openid]
	if u == nil {
		u = &Identity{OpenID: openid}
		f.users[openid] = u
	}
	if unionid != "" {
		u.UnionID = unionid
	}
	code := "js" + random(12)
	f.codes[code] = jsCode{openid: openid, expires: f.Now().Add(5 * time.Minute)}
	return code
}

// PhoneCode is what the getPhoneNumber button hands the mini-program: a
// single-use code for phone ("13800000000", or "+1 2025550100" style
// "countrycode:number", see phoneInfo).
func (f *Fake) PhoneCode(phone string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	code := "ph" + random(12)
	f.phoneCodes[code] = phone
	return code
}

// UserData is wx.getUserInfo's encryptedData and iv for the user with
// openid, under the session key of their latest exchanged login (WeChat
// rotates the key at every login). info's openId and watermark are filled
// in unless already set.
func (f *Fake) UserData(openid string, info wechat.UserInfo) (encryptedData, iv string, err error) {
	f.mu.Lock()
	u := f.users[openid]
	var key string
	if u != nil {
		key = u.sessionKey
		if info.UnionID == "" {
			info.UnionID = u.UnionID
		}
	}
	f.mu.Unlock()
	if key == "" {
		return "", "", fmt.Errorf("wechattest: %s has no session (no code exchanged yet)", openid)
	}
	if info.OpenID == "" {
		info.OpenID = openid
	}
	if info.Watermark.AppID == "" {
		info.Watermark.AppID = f.AppID
		info.Watermark.Timestamp = f.Now().Unix()
	}
	plain, _ := json.Marshal(info)
	ivb := make([]byte, 16)
	_, _ = rand.Read(ivb)
	ct, err := wechat.Encrypt(key, plain, ivb)
	return ct, base64.StdEncoding.EncodeToString(ivb), err
}

// SessionKey is the current session key of openid (tests check it never
// leaves the server).
func (f *Fake) SessionKey(openid string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.users[openid]; u != nil {
		return u.sessionKey
	}
	return ""
}

// FailNext makes the next calls of op fail, one per code given: a WeChat
// errcode (40029, 45011, 40226, -1, ...) or a Fail* mode.
func (f *Fake) FailNext(op string, codes ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[op] = append(f.fail[op], codes...)
}

// TokenFetches counts access tokens issued (stable_token and token).
func (f *Fake) TokenFetches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetches
}

// Calls counts requests per operation.
func (f *Fake) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// RevokeToken makes the current access token invalid at once (as a
// force_refresh elsewhere would).
func (f *Fake) RevokeToken() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.token = ""
}

func (f *Fake) nextFailure(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	q := f.fail[op]
	if len(q) == 0 {
		return 0
	}
	f.fail[op] = q[1:]
	return q[0]
}

// Handler serves WeChat's routes and the /fake/ helpers:
//
//	POST /fake/login     {"openid","unionid"?}            -> {"code"}   (wx.login)
//	POST /fake/phonecode {"phone"}                         -> {"code"}   (getPhoneNumber button)
//	POST /fake/userinfo  {"openid", "nickName", ...}       -> {"encryptedData","iv"} (wx.getUserInfo)
func (f *Fake) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sns/jscode2session", f.jscode2session)
	mux.HandleFunc("POST /cgi-bin/stable_token", f.stableToken)
	mux.HandleFunc("GET /cgi-bin/token", f.cgiToken)
	mux.HandleFunc("POST /wxa/business/getuserphonenumber", f.phoneNumber)
	mux.HandleFunc("POST /fake/login", f.fakeLogin)
	mux.HandleFunc("POST /fake/phonecode", f.fakePhoneCode)
	mux.HandleFunc("POST /fake/userinfo", f.fakeUserInfo)
	return mux
}

// errmsgs are WeChat's messages for the codes the fake produces.
var errmsgs = map[int]string{
	-1:    "system error",
	40001: "invalid credential, access_token is invalid or not latest",
	40013: "invalid appid",
	40029: "invalid code",
	40125: "invalid appsecret",
	40163: "code been used",
	40226: "invalid user, high risk user",
	42001: "access_token expired",
	45011: "api minute-quota reach limit  mustslower  retry next minute",
	47001: "data format error",
}

func writeJSON(w http.ResponseWriter, v any) {
	// WeChat answers errors with HTTP 200 too.
	w.Header().Set("Content-Type", "application/json; encoding=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int) {
	msg := errmsgs[code]
	if msg == "" {
		msg = "error"
	}
	writeJSON(w, map[string]any{"errcode": code, "errmsg": msg + ", rid: " + random(4)})
}

// injected answers a queued failure; it reports whether it did.
func (f *Fake) injected(w http.ResponseWriter, r *http.Request, op string) bool {
	code := f.nextFailure(op)
	switch code {
	case 0:
		return false
	case FailTimeout:
		select {
		case <-time.After(f.Hang):
		case <-r.Context().Done():
		}
		writeErr(w, -1)
	case FailMalformed:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"errcode":0,"openid":`))
	case FailHTTP:
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html><body>502 Bad Gateway</body></html>"))
	default:
		writeErr(w, code)
	}
	return true
}

func (f *Fake) credentialsOK(w http.ResponseWriter, appid, secret string) bool {
	switch {
	case appid != f.AppID:
		writeErr(w, 40013)
	case secret != f.Secret:
		writeErr(w, 40125)
	default:
		return true
	}
	return false
}

func (f *Fake) jscode2session(w http.ResponseWriter, r *http.Request) {
	if f.injected(w, r, OpSession) {
		return
	}
	q := r.URL.Query()
	if !f.credentialsOK(w, q.Get("appid"), q.Get("secret")) {
		return
	}
	if q.Get("grant_type") != "authorization_code" {
		writeErr(w, 47001)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.codes[q.Get("js_code")]
	switch {
	case !ok || f.Now().After(c.expires):
		writeErr(w, 40029)
		return
	case c.openid == "":
		writeErr(w, 40163)
		return
	}
	f.codes[q.Get("js_code")] = jsCode{expires: c.expires} // used
	u := f.users[c.openid]
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	u.sessionKey = base64.StdEncoding.EncodeToString(key)
	out := map[string]any{"openid": u.OpenID, "session_key": u.sessionKey}
	if u.UnionID != "" {
		out["unionid"] = u.UnionID
	}
	writeJSON(w, out)
}

// issueToken is the current access token, a new one when there is none,
// it expired, or force is set.
func (f *Fake) issueToken(force bool) (string, int64) {
	if f.TokenDelay > 0 {
		time.Sleep(f.TokenDelay)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.Now()
	if force || f.token == "" || !now.Before(f.tokenUntil) {
		f.token = "at-" + random(16)
		f.tokenUntil = now.Add(f.TokenTTL)
		f.fetches++
	}
	return f.token, int64(f.tokenUntil.Sub(now) / time.Second)
}

func (f *Fake) stableToken(w http.ResponseWriter, r *http.Request) {
	if f.injected(w, r, OpToken) {
		return
	}
	var in struct {
		GrantType    string `json:"grant_type"`
		AppID        string `json:"appid"`
		Secret       string `json:"secret"`
		ForceRefresh bool   `json:"force_refresh"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.GrantType != "client_credential" {
		writeErr(w, 47001)
		return
	}
	if !f.credentialsOK(w, in.AppID, in.Secret) {
		return
	}
	tok, ttl := f.issueToken(in.ForceRefresh)
	writeJSON(w, map[string]any{"access_token": tok, "expires_in": ttl})
}

func (f *Fake) cgiToken(w http.ResponseWriter, r *http.Request) {
	if f.injected(w, r, OpToken) {
		return
	}
	q := r.URL.Query()
	if q.Get("grant_type") != "client_credential" {
		writeErr(w, 47001)
		return
	}
	if !f.credentialsOK(w, q.Get("appid"), q.Get("secret")) {
		return
	}
	tok, ttl := f.issueToken(true) // cgi-bin/token always issues a new one
	writeJSON(w, map[string]any{"access_token": tok, "expires_in": ttl})
}

func (f *Fake) phoneNumber(w http.ResponseWriter, r *http.Request) {
	if f.injected(w, r, OpPhone) {
		return
	}
	tok := r.URL.Query().Get("access_token")
	f.mu.Lock()
	now := f.Now()
	switch {
	case tok == "" || tok != f.token:
		f.mu.Unlock()
		writeErr(w, 40001)
		return
	case !now.Before(f.tokenUntil):
		f.mu.Unlock()
		writeErr(w, 42001)
		return
	}
	f.mu.Unlock()
	var in struct {
		Code string `json:"code"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeErr(w, 47001)
		return
	}
	f.mu.Lock()
	phone, ok := f.phoneCodes[in.Code]
	delete(f.phoneCodes, in.Code)
	f.mu.Unlock()
	if !ok {
		writeErr(w, 40029)
		return
	}
	cc, pure := "86", phone
	if c, p, found := cutColon(phone); found {
		cc, pure = c, p
	}
	full := pure
	if cc != "86" {
		full = "+" + cc + " " + pure
	}
	writeJSON(w, map[string]any{"errcode": 0, "errmsg": "ok", "phone_info": map[string]any{
		"phoneNumber": full, "purePhoneNumber": pure, "countryCode": cc,
		"watermark": map[string]any{"timestamp": now.Unix(), "appid": f.AppID},
	}})
}

func cutColon(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return "", s, false
}

// ---- /fake/ helpers for people trying the flow with curl --------------------

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(v); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		writeJSON(w, map[string]string{"error": "body must be a JSON object: " + err.Error()})
		return false
	}
	return true
}

func (f *Fake) fakeLogin(w http.ResponseWriter, r *http.Request) {
	var in struct {
		OpenID  string `json:"openid"`
		UnionID string `json:"unionid"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	if in.OpenID == "" {
		in.OpenID = "o" + random(12)
	}
	writeJSON(w, map[string]string{"code": f.Login(in.OpenID, in.UnionID), "openid": in.OpenID})
}

func (f *Fake) fakePhoneCode(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Phone string `json:"phone"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	if _, err := strconv.ParseUint(in.Phone, 10, 64); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		writeJSON(w, map[string]string{"error": "phone must be digits, e.g. 13800000000"})
		return
	}
	writeJSON(w, map[string]string{"code": f.PhoneCode(in.Phone)})
}

func (f *Fake) fakeUserInfo(w http.ResponseWriter, r *http.Request) {
	var in struct {
		OpenID string `json:"openid"`
		wechat.UserInfo
	}
	if !readJSON(w, r, &in) {
		return
	}
	ct, iv, err := f.UserData(in.OpenID, in.UserInfo)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		writeJSON(w, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, map[string]string{"encryptedData": ct, "iv": iv})
}
