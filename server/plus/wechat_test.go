package plus_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/wechat"
	"userve.dev/userve/server/wechat/wechattest"
	"userve.dev/userve/test/mongofixture"
)

const (
	weChatAppID  = "wx0123456789abcdef"
	weChatSecret = "wechat-app-secret-for-tests"
)

// weChatTenant is a tenant with spec.wechat pointing at a fresh fake that
// shares the tenant's clock.
func weChatTenant(t *testing.T, createUsers bool) (*tenant, *wechattest.Fake) {
	t.Helper()
	tn := newTenant(t)
	fake := wechattest.New(weChatAppID, weChatSecret)
	fake.Now = tn.clock.Now
	fake.Hang = 2 * time.Second
	base, stop := fake.Start()
	t.Cleanup(stop)
	tn.spec.WeChat = &v1alpha1.WeChatSpec{AppID: weChatAppID, APIBaseURL: base, CreateUsers: &createUsers,
		AppSecretRef: v1alpha1.SecretKeyRef{Name: "wx", Key: "secret"}}
	tn.cfgEdit = func(c *config.Config) { c.WeChatSecret = weChatSecret }
	tn.weChatHTTP = &http.Client{Timeout: 500 * time.Millisecond}
	return tn, fake
}

func weChatLogin(t *testing.T, rp *replica, code string) (status int, token string, created bool) {
	t.Helper()
	r := rp.call("POST", "/api/v2/auth/wechat", "", map[string]any{"code": code})
	if r.status != http.StatusOK && r.status != http.StatusCreated {
		return r.status, "", false
	}
	m := r.obj(t)
	if m["token_type"] != "Bearer" || m["expires_in"] == nil || m["refresh_ttl"] == nil {
		t.Fatalf("login body: %s", r.body)
	}
	if strings.Contains(string(r.body), "session_key") {
		t.Fatalf("login shows the session key: %s", r.body)
	}
	created, _ = m["created"].(bool)
	if created != (r.status == http.StatusCreated) {
		t.Fatalf("status %d with created=%v", r.status, created)
	}
	return r.status, m["access_token"].(string), created
}

func meID(t *testing.T, rp *replica, token string) int64 {
	t.Helper()
	return int64(expect(t, rp.call("GET", "/api/v2/user", token, nil), http.StatusOK).obj(t)["id"].(float64))
}

// managementList lists profiles through the management dialect.
func managementList(t *testing.T, rp *replica, path string) []map[string]any {
	t.Helper()
	r := expect(t, rp.call("GET", path, adminToken, nil), http.StatusOK)
	var out []map[string]any
	for _, o := range r.obj(t)["objects"].([]any) {
		out = append(out, o.(map[string]any))
	}
	return out
}

func profileCount(t *testing.T, tn *tenant, filter bson.D) int64 {
	t.Helper()
	n, err := mongofixture.Client(t).Database(tn.db).Collection(store.ColProfiles).CountDocuments(context.Background(), filter)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWeChatLoginCreatesThenFinds(t *testing.T) {
	tn, fake := weChatTenant(t, true)
	rp := tn.replica()
	status, token, created := weChatLogin(t, rp, fake.Login("o-ann", "u-ann"))
	if status != http.StatusCreated || !created {
		t.Fatalf("first login: %d created=%v", status, created)
	}
	id := meID(t, rp, token)
	status, token2, created := weChatLogin(t, rp, fake.Login("o-ann", "u-ann"))
	if status != http.StatusOK || created || meID(t, rp, token2) != id {
		t.Fatalf("second login: %d created=%v", status, created)
	}
	me := expect(t, rp.call("GET", "/api/v2/user", token, nil), http.StatusOK)
	if strings.Contains(string(me.body), fake.SessionKey("o-ann")) {
		t.Fatal("GET /user shows the session key")
	}
	// The management dialect sees the user, filtered by openid (v2.0) and
	// unionid (v2.2).
	for _, path := range []string{
		"/userve/v2.0/miniapp/user_profile/?openid=o-ann",
		"/userve/v2.0/miniapp/user_profile/?unionid=u-ann",
		"/userve/v2.2/miniapp/user_profile/?where=" + url.QueryEscape(`{"unionid":{"$eq":"u-ann"}}`),
		"/oserve/v2.2/miniapp/user_profile/?where=" + url.QueryEscape(`{"openid":{"$in":["o-ann","x"]}}`),
	} {
		l := managementList(t, rp, path)
		if len(l) != 1 || int64(l[0]["user_id"].(float64)) != id || l[0]["openid"] != "o-ann" || l[0]["unionid"] != "u-ann" {
			t.Fatalf("%s: %v", path, l)
		}
		for k := range l[0] {
			if strings.Contains(k, "session") {
				t.Fatalf("management output has %s", k)
			}
		}
	}
	// The session key is stored sealed, not in the clear.
	raw, err := mongofixture.Client(t).Database(tn.db).Collection(store.ColWeChatSessions).FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), fake.SessionKey("o-ann")) {
		t.Fatal("session key stored in the clear")
	}
}

// A user the tenant's backend created with only a unionid (another app of
// the same Open Platform account) is found by it, and gets this app's openid.
func TestWeChatLoginFindsByUnionID(t *testing.T) {
	tn, fake := weChatTenant(t, true)
	rp := tn.replica()
	r := expect(t, rp.call("POST", "/userve/v2.0/miniapp/user_profile/", adminToken, map[string]any{"unionid": "u-bob", "nickname": "Bob"}), http.StatusCreated)
	id := int64(r.obj(t)["user_id"].(float64))
	status, token, _ := weChatLogin(t, rp, fake.Login("o-bob-here", "u-bob"))
	if status != http.StatusOK || meID(t, rp, token) != id {
		t.Fatalf("login by unionid: %d", status)
	}
	if l := managementList(t, rp, "/userve/v2.0/miniapp/user_profile/?openid=o-bob-here"); len(l) != 1 || int64(l[0]["user_id"].(float64)) != id {
		t.Fatalf("openid not recorded: %v", l)
	}
	// Without a unionid, the openid finds the same user.
	status, token, _ = weChatLogin(t, rp, fake.Login("o-bob-here", ""))
	if status != http.StatusOK || meID(t, rp, token) != id {
		t.Fatalf("login by openid: %d", status)
	}
}

func TestWeChatCreateUsersOff(t *testing.T) {
	tn, fake := weChatTenant(t, false)
	rp := tn.replica()
	expect(t, rp.call("POST", "/api/v2/auth/wechat", "", map[string]any{"code": fake.Login("o-cat", "")}), http.StatusNotFound)
	if n := profileCount(t, tn, bson.D{}); n != 0 {
		t.Fatalf("%d users after a refused login", n)
	}
	id, token := tn.quickUser(rp, "catherine")
	expect(t, rp.call("PUT", "/api/v2/user/wechat", token, map[string]any{"code": fake.Login("o-cat", "")}), http.StatusNoContent)
	status, tok, created := weChatLogin(t, rp, fake.Login("o-cat", ""))
	if status != http.StatusOK || created || meID(t, rp, tok) != id {
		t.Fatalf("login after linking: %d", status)
	}
}

func TestWeChatErrorsMapToStatuses(t *testing.T) {
	tn, fake := weChatTenant(t, true)
	rp := tn.replica()
	login := func(code string) resp {
		return rp.call("POST", "/api/v2/auth/wechat", "", map[string]any{"code": code})
	}
	expectInvalid(t, login("not-a-code"), "code")
	used := fake.Login("o-dan", "")
	weChatLogin(t, rp, used)
	expectInvalid(t, login(used), "code") // 40163: single use
	before := profileCount(t, tn, bson.D{})
	for _, tc := range []struct {
		mode, status int
		retryAfter   bool
	}{
		{40029, 422, false}, {45011, 429, true}, {40226, 403, false}, {-1, 503, true}, {40125, 503, true},
		{wechattest.FailTimeout, 503, true}, {wechattest.FailMalformed, 503, true}, {wechattest.FailHTTP, 503, true},
	} {
		fake.FailNext(wechattest.OpSession, tc.mode)
		r := login(fake.Login("o-new", ""))
		if r.status != tc.status || (r.header.Get("Retry-After") != "") != tc.retryAfter {
			t.Errorf("WeChat %d: %d Retry-After=%q %s", tc.mode, r.status, r.header.Get("Retry-After"), r.body)
		}
		if m := r.obj(t); m["message"] == "" {
			t.Errorf("WeChat %d: no message", tc.mode)
		}
	}
	if n := profileCount(t, tn, bson.D{}); n != before {
		t.Fatalf("failed logins created %d users", n-before)
	}
	// Bad input never reaches WeChat.
	calls := fake.Calls(wechattest.OpSession)
	expectInvalid(t, rp.call("POST", "/api/v2/auth/wechat", "", map[string]any{}), "code")
	expectInvalid(t, rp.call("POST", "/api/v2/auth/wechat", "", map[string]any{"code": "  "}), "code")
	expectInvalid(t, rp.call("POST", "/api/v2/auth/wechat", "", map[string]any{"code": true}), "code")
	expectInvalid(t, rp.call("POST", "/api/v2/auth/wechat", "", map[string]any{"code": "x", "openid": "o-dan"}), "openid")
	expect(t, rp.call("POST", "/api/v2/auth/wechat", "", "{not json"), http.StatusBadRequest)
	if fake.Calls(wechattest.OpSession) != calls {
		t.Fatal("bad input reached WeChat")
	}
}

// Without spec.wechat the routes do not exist.
func TestWeChatRoutesNeedSpec(t *testing.T) {
	rp := newTenant(t).replica()
	expect(t, rp.call("POST", "/api/v2/auth/wechat", "", map[string]any{"code": "x"}), http.StatusNotFound)
}

func TestWeChatLinkConflicts(t *testing.T) {
	tn, fake := weChatTenant(t, true)
	rp := tn.replica()
	_, annToken, _ := weChatLogin(t, rp, fake.Login("o-ann", "u-ann"))
	annID := meID(t, rp, annToken)
	bobID, bob := tn.quickUser(rp, "bobby")

	// Ann's WeChat account is hers: 409 naming it, Bob unchanged.
	for _, code := range []string{fake.Login("o-ann", "u-ann"), fake.Login("o-ann", "")} {
		r := expect(t, rp.call("PUT", "/api/v2/user/wechat", bob, map[string]any{"code": code}), http.StatusConflict)
		if c := r.obj(t)["conflict"]; c != "unionid" && c != "openid" {
			t.Fatalf("conflict not named: %s", r.body)
		}
	}
	if n := profileCount(t, tn, bson.D{{Key: "_id", Value: bobID}, {Key: "openid", Value: bson.D{{Key: "$exists", Value: true}}}}); n != 0 {
		t.Fatal("a refused link changed Bob")
	}
	// Bob links an account of his own, then cannot link a second one.
	expect(t, rp.call("PUT", "/api/v2/user/wechat", bob, map[string]any{"code": fake.Login("o-bob", "")}), http.StatusNoContent)
	expect(t, rp.call("PUT", "/api/v2/user/wechat", bob, map[string]any{"code": fake.Login("o-bob", "")}), http.StatusNoContent) // again: no change
	r := expect(t, rp.call("PUT", "/api/v2/user/wechat", bob, map[string]any{"code": fake.Login("o-bob2", "")}), http.StatusConflict)
	if r.obj(t)["conflict"] != "openid" {
		t.Fatalf("%s", r.body)
	}
	status, tok, _ := weChatLogin(t, rp, fake.Login("o-bob", ""))
	if status != http.StatusOK || meID(t, rp, tok) != bobID || meID(t, rp, annToken) != annID {
		t.Fatal("linked login went elsewhere")
	}
	expect(t, rp.call("PUT", "/api/v2/user/wechat", "", map[string]any{"code": "x"}), http.StatusUnauthorized)

	// 30 users race to link one WeChat account: exactly one gets it.
	code := make([]string, 30)
	tokens := make([]string, 30)
	for i := range code {
		code[i] = fake.Login("o-shared", "")
		_, tokens[i] = tn.quickUser(rp, "racer"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	var wg sync.WaitGroup
	statuses := make([]int, 30)
	for i := range code {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			statuses[i] = rp.call("PUT", "/api/v2/user/wechat", tokens[i], map[string]any{"code": code[i]}).status
		}(i)
	}
	wg.Wait()
	won := 0
	for _, s := range statuses {
		switch s {
		case http.StatusNoContent:
			won++
		case http.StatusConflict:
		default:
			t.Fatalf("racing link: %d", s)
		}
	}
	if won != 1 || profileCount(t, tn, bson.D{{Key: "openid", Value: "o-shared"}}) != 1 {
		t.Fatalf("%d links won", won)
	}
}

func TestWeChatUnlink(t *testing.T) {
	tn, fake := weChatTenant(t, true)
	rp := tn.replica()
	// A WeChat-only user cannot unlink their only way in.
	_, only, _ := weChatLogin(t, rp, fake.Login("o-only", ""))
	r := expect(t, rp.call("DELETE", "/api/v2/user/wechat", only, map[string]any{"password": "whatever"}), http.StatusUnprocessableEntity)
	if !strings.Contains(string(r.body), "only way in") {
		t.Fatalf("%s", r.body)
	}
	// A user with a name and password can, with the right password.
	id, tok := tn.quickUser(rp, "evelyn")
	expect(t, rp.call("PUT", "/api/v2/user/wechat", tok, map[string]any{"code": fake.Login("o-eve", "u-eve")}), http.StatusNoContent)
	expectInvalid(t, rp.call("DELETE", "/api/v2/user/wechat", tok, map[string]any{}), "password")
	expectInvalid(t, rp.call("DELETE", "/api/v2/user/wechat", tok, map[string]any{"password": "wrong-password"}), "password")
	expect(t, rp.call("DELETE", "/api/v2/user/wechat", tok, map[string]any{"password": "secret-evelyn"}), http.StatusNoContent)
	if profileCount(t, tn, bson.D{{Key: "_id", Value: id}, {Key: "openid", Value: bson.D{{Key: "$exists", Value: true}}}}) != 0 {
		t.Fatal("openid still set")
	}
	expectInvalid(t, rp.call("DELETE", "/api/v2/user/wechat", tok, map[string]any{"password": "secret-evelyn"}), "wechat")
	// The account is free again: a WeChat login now makes a new user.
	status, _, created := weChatLogin(t, rp, fake.Login("o-eve", "u-eve"))
	if status != http.StatusCreated || !created {
		t.Fatalf("login after unlink: %d", status)
	}

	// A phone user without a password unlinks with a code to the phone.
	pid, ptok := tn.register(rp, "phoneuser", "13900000009", "secret9")
	_ = pid
	expect(t, rp.call("PUT", "/api/v2/user/wechat", ptok, map[string]any{"code": fake.Login("o-phone", "")}), http.StatusNoContent)
	tn.clock.Add(2 * time.Minute)
	expect(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": "13900000009"}), http.StatusAccepted)
	expectInvalid(t, rp.call("DELETE", "/api/v2/user/wechat", ptok, map[string]any{"verifiable_code": "000000"}), "verifiable_code")
	code := tn.outbox.code(t, "13900000009")
	expect(t, rp.call("DELETE", "/api/v2/user/wechat", ptok, map[string]any{"verifiable_code": code}), http.StatusNoContent)
}

func TestWeChatPhone(t *testing.T) {
	tn, fake := weChatTenant(t, true)
	rp := tn.replica()
	_, ann, _ := weChatLogin(t, rp, fake.Login("o-ann", ""))
	r := expect(t, rp.call("POST", "/api/v2/user/wechat/phone", ann, map[string]any{"code": fake.PhoneCode("13800000001")}), http.StatusOK)
	if r.obj(t)["phone"] != "13800000001" {
		t.Fatalf("%s", r.body)
	}
	me := expect(t, rp.call("GET", "/api/v2/user", ann, nil), http.StatusOK).obj(t)
	if me["phone"] != "13800000001" {
		t.Fatalf("phone not bound: %v", me)
	}
	// The phone now logs in with a code, like any bound phone.
	expect(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": "13800000001"}), http.StatusAccepted)

	// Another user's phone is a 409 and changes nothing.
	_, bob, _ := weChatLogin(t, rp, fake.Login("o-bob", ""))
	r = expect(t, rp.call("POST", "/api/v2/user/wechat/phone", bob, map[string]any{"code": fake.PhoneCode("13800000001")}), http.StatusConflict)
	if r.obj(t)["conflict"] != "phone" {
		t.Fatalf("%s", r.body)
	}
	if p := expect(t, rp.call("GET", "/api/v2/user", bob, nil), http.StatusOK).obj(t)["phone"]; p != nil {
		t.Fatalf("bob got phone %v", p)
	}
	// Numbers outside China keep their country code.
	r = expect(t, rp.call("POST", "/api/v2/user/wechat/phone", bob, map[string]any{"code": fake.PhoneCode("1:2025550100")}), http.StatusOK)
	if r.obj(t)["phone"] != "+12025550100" {
		t.Fatalf("%s", r.body)
	}
	expectInvalid(t, rp.call("POST", "/api/v2/user/wechat/phone", bob, map[string]any{"code": "bogus"}), "code")
	expect(t, rp.call("POST", "/api/v2/user/wechat/phone", "", map[string]any{"code": "bogus"}), http.StatusUnauthorized)
	// One token served every call.
	if fake.TokenFetches() != 1 || fake.Calls(wechattest.OpToken) != 1 {
		t.Fatalf("token fetched %d times (%d calls)", fake.TokenFetches(), fake.Calls(wechattest.OpToken))
	}
	// WeChat drops the token (a force refresh elsewhere): one new fetch,
	// and the call goes through.
	fake.RevokeToken()
	expect(t, rp.call("POST", "/api/v2/user/wechat/phone", bob, map[string]any{"code": fake.PhoneCode("13800000002")}), http.StatusOK)
	if fake.TokenFetches() != 2 {
		t.Fatalf("after revocation: %d fetches", fake.TokenFetches())
	}
	// Token endpoint down: 503 with Retry-After, phone unchanged.
	fake.RevokeToken()
	fake.FailNext(wechattest.OpToken, -1)
	r = expect(t, rp.call("POST", "/api/v2/user/wechat/phone", bob, map[string]any{"code": fake.PhoneCode("13800000003")}), http.StatusServiceUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	if p := expect(t, rp.call("GET", "/api/v2/user", bob, nil), http.StatusOK).obj(t)["phone"]; p != "13800000002" {
		t.Fatalf("phone changed to %v", p)
	}
}

func TestWeChatProfile(t *testing.T) {
	tn, fake := weChatTenant(t, true)
	rp := tn.replica()
	_, tok, _ := weChatLogin(t, rp, fake.Login("o-ann", ""))
	id := meID(t, rp, tok)
	info := wechat.UserInfo{NickName: "安妮", Gender: 2, City: "Guangzhou", Province: "Guangdong", Country: "China",
		AvatarURL: "https://thirdwx.qlogo.cn/ann/132", Language: "zh_CN", UnionID: "u-ann"}
	data, iv, err := fake.UserData("o-ann", info)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, rp.call("PUT", "/api/v2/user/wechat/profile", tok, map[string]any{"encryptedData": data, "iv": iv}), http.StatusNoContent)
	p := expect(t, rp.call("GET", "/userve/v2.0/miniapp/user_profile/"+fmtInt(id)+"/", adminToken, nil), http.StatusOK).obj(t)
	// The unionid in the data is not taken (TestWeChatProfileTakesNoIdentity).
	for k, want := range map[string]any{"nickname": "安妮", "gender": float64(2), "city": "Guangzhou", "province": "Guangdong",
		"country": "China", "avatar": info.AvatarURL, "language": "zh_CN", "openid": "o-ann"} {
		if p[k] != want {
			t.Errorf("%s = %v, want %v", k, p[k], want)
		}
	}
	// The gender filter of the v2.0 list finds her.
	if l := managementList(t, rp, "/userve/v2.0/miniapp/user_profile/?gender=2&openid=o-ann"); len(l) != 1 {
		t.Fatalf("gender filter: %v", l)
	}

	// Data encrypted under the key of an older login no longer decrypts.
	old, oldIV, _ := fake.UserData("o-ann", info)
	weChatLogin(t, rp, fake.Login("o-ann", ""))
	expectInvalid(t, rp.call("PUT", "/api/v2/user/wechat/profile", tok, map[string]any{"encryptedData": old, "iv": oldIV}), "encryptedData")
	// Another app's data (watermark) is refused.
	other := info
	other.Watermark.AppID = "wx-other"
	d2, iv2, _ := fake.UserData("o-ann", other)
	expectInvalid(t, rp.call("PUT", "/api/v2/user/wechat/profile", tok, map[string]any{"encryptedData": d2, "iv": iv2}), "encryptedData")
	// Another WeChat user's data is refused.
	weChatLogin(t, rp, fake.Login("o-zed", ""))
	d3, iv3, _ := fake.UserData("o-zed", info)
	expectInvalid(t, rp.call("PUT", "/api/v2/user/wechat/profile", tok, map[string]any{"encryptedData": d3, "iv": iv3}), "encryptedData")
	// Malformed input is refused like the rest (TestWeChatProfileFailuresLookAlike).
	expectInvalid(t, rp.call("PUT", "/api/v2/user/wechat/profile", tok, map[string]any{"encryptedData": data, "iv": "***"}), "encryptedData")
	expectInvalid(t, rp.call("PUT", "/api/v2/user/wechat/profile", tok, map[string]any{"encryptedData": "@@", "iv": iv}), "encryptedData")
	expectInvalid(t, rp.call("PUT", "/api/v2/user/wechat/profile", tok, map[string]any{"iv": iv}), "encryptedData")
	// A user without WeChat has no session.
	_, plain := tn.quickUser(rp, "plainuser")
	expectInvalid(t, rp.call("PUT", "/api/v2/user/wechat/profile", plain, map[string]any{"encryptedData": data, "iv": iv}), "encryptedData")
	if p2 := expect(t, rp.call("GET", "/userve/v2.0/miniapp/user_profile/"+fmtInt(id)+"/", adminToken, nil), http.StatusOK).obj(t); p2["nickname"] != "安妮" {
		t.Fatalf("a refused update changed the profile: %v", p2)
	}
}

func fmtInt(n int64) string { return strconv.FormatInt(n, 10) }

// Two replicas race on one WeChat user's first login, 30 requests at once:
// exactly one user is created, every request gets that user.
func TestWeChatFirstLoginRaceAcrossReplicas(t *testing.T) {
	tn, fake := weChatTenant(t, true)
	tn.weChatHTTP = &http.Client{Timeout: 10 * time.Second}
	a, b := tn.replica(), tn.replica()
	const n = 30
	codes := make([]string, n)
	for i := range codes {
		codes[i] = fake.Login("o-race", "u-race")
	}
	type result struct {
		status int
		token  string
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rp := []*replica{a, b}[i%2]
			s, tok, _ := weChatLogin(t, rp, codes[i])
			results[i] = result{s, tok}
		}(i)
	}
	wg.Wait()
	created, ids := 0, map[int64]bool{}
	for _, r := range results {
		switch r.status {
		case http.StatusCreated:
			created++
		case http.StatusOK:
		default:
			t.Fatalf("racing login: %d", r.status)
		}
		ids[meID(t, a, r.token)] = true
	}
	if created != 1 || len(ids) != 1 || profileCount(t, tn, bson.D{}) != 1 {
		t.Fatalf("%d created, %d distinct users, %d profiles", created, len(ids), profileCount(t, tn, bson.D{}))
	}
}

// Two replicas, 30 users binding phones at once, a slow token endpoint: one
// token fetch serves them all.
func TestWeChatTokenSharedAcrossReplicas(t *testing.T) {
	tn, fake := weChatTenant(t, true)
	tn.weChatHTTP = &http.Client{Timeout: 10 * time.Second}
	fake.TokenDelay = 300 * time.Millisecond
	a, b := tn.replica(), tn.replica()
	const n = 30
	tokens := make([]string, n)
	for i := range tokens {
		_, tokens[i], _ = weChatLogin(t, a, fake.Login("o-p"+fmtInt(int64(i)), ""))
	}
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rp := []*replica{a, b}[i%2]
			statuses[i] = rp.call("POST", "/api/v2/user/wechat/phone", tokens[i], map[string]any{"code": fake.PhoneCode("1370000" + pad4(i))}).status
		}(i)
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("bind %d: %d", i, s)
		}
	}
	if fake.Calls(wechattest.OpToken) != 1 || fake.TokenFetches() != 1 {
		t.Fatalf("%d token calls, %d tokens for %d binds on two replicas", fake.Calls(wechattest.OpToken), fake.TokenFetches(), n)
	}
}

// The cached token is refreshed before it expires (by one call), and a
// token past its expiry is never used.
func TestWeChatTokenExpiry(t *testing.T) {
	tn, fake := weChatTenant(t, true)
	fake.TokenTTL = 30 * time.Minute
	// The binds below span 31 minutes of one login; re-authentication is
	// not what this test is about (reauth_test.go).
	tn.spec.API.Plus.ReauthWindow = &metav1.Duration{Duration: time.Hour}
	a, b := tn.replica(), tn.replica()
	_, tok, _ := weChatLogin(t, a, fake.Login("o-exp", ""))
	bind := func(rp *replica, phone string) {
		t.Helper()
		expect(t, rp.call("POST", "/api/v2/user/wechat/phone", tok, map[string]any{"code": fake.PhoneCode(phone)}), http.StatusOK)
	}
	bind(a, "13600000001")
	bind(b, "13600000002")
	if fake.Calls(wechattest.OpToken) != 1 {
		t.Fatalf("%d token calls", fake.Calls(wechattest.OpToken))
	}
	// 27 minutes on: 3 left, inside the refresh margin: the next call asks
	// WeChat again (stable_token hands the same token back while it lives).
	tn.clock.Add(27 * time.Minute)
	bind(b, "13600000003")
	if fake.Calls(wechattest.OpToken) != 2 || fake.TokenFetches() != 1 {
		t.Fatalf("refresh: %d calls, %d tokens", fake.Calls(wechattest.OpToken), fake.TokenFetches())
	}
	bind(a, "13600000004") // fetched a moment ago: not asked again
	if fake.Calls(wechattest.OpToken) != 2 {
		t.Fatalf("asked again at once: %d", fake.Calls(wechattest.OpToken))
	}
	// Past expiry: a new token, fetched once for both replicas.
	tn.clock.Add(4 * time.Minute)
	bind(a, "13600000005")
	bind(b, "13600000006")
	if fake.TokenFetches() != 2 || fake.Calls(wechattest.OpToken) != 3 {
		t.Fatalf("after expiry: %d tokens, %d calls", fake.TokenFetches(), fake.Calls(wechattest.OpToken))
	}
}

// The conflict an end user meets (their WeChat phone belongs to their
// older phone account) is resolved by the tenant's backend with a merge;
// afterwards WeChat login gets the one merged user.
func TestWeChatConflictResolvedByMerge(t *testing.T) {
	tn, fake := weChatTenant(t, true)
	rp := tn.replica()
	oldID, oldTok := tn.register(rp, "olduser", "13700000077", "secret7")
	_, wxTok, _ := weChatLogin(t, rp, fake.Login("o-merge", "u-merge"))
	wxID := meID(t, rp, wxTok)
	r := expect(t, rp.call("POST", "/api/v2/user/wechat/phone", wxTok, map[string]any{"code": fake.PhoneCode("13700000077")}), http.StatusConflict)
	if r.obj(t)["conflict"] != "phone" {
		t.Fatalf("%s", r.body)
	}
	expect(t, rp.call("PUT", "/api/v2/user/followings/"+fmtInt(oldID), wxTok, nil), http.StatusNoContent)

	body := map[string]any{"from": wxID, "into": oldID}
	expect(t, rp.call("POST", "/userve/v1/user-merge/", "", body), http.StatusUnauthorized)
	m := expect(t, rp.call("POST", "/userve/v1/user-merge/", adminToken, body), http.StatusOK)
	got := m.obj(t)
	user := got["user"].(map[string]any)
	if got["status"] != "completed" || user["openid"] != "o-merge" || user["_phone"] != "13700000077" || int64(user["user_id"].(float64)) != oldID {
		t.Fatalf("merge: %s", m.body)
	}
	if m.header.Get("Idempotent-Replayed") != "" {
		t.Fatal("first merge marked as replay")
	}
	// The same request again (also under /oserve): the same answer.
	again := expect(t, rp.call("POST", "/oserve/v1/user-merge/", adminToken, body), http.StatusOK)
	if again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatal("replay not marked")
	}
	// The WeChat user's token died with it; the old one lives on.
	expect(t, rp.call("GET", "/api/v2/user", wxTok, nil), http.StatusUnauthorized)
	expect(t, rp.call("GET", "/api/v2/user", oldTok, nil), http.StatusOK)
	status, tok, created := weChatLogin(t, rp, fake.Login("o-merge", "u-merge"))
	if status != http.StatusOK || created || meID(t, rp, tok) != oldID {
		t.Fatalf("login after merge: %d", status)
	}
	if l := managementList(t, rp, "/userve/v2.0/miniapp/user_profile/?unionid=u-merge"); len(l) != 1 || int64(l[0]["user_id"].(float64)) != oldID {
		t.Fatalf("unionid filter after merge: %v", l)
	}

	// Refusals: both have a phone (409, nothing changed), bad bodies (400),
	// unknown users (404).
	aID, _ := tn.register(rp, "phonea", "13700000001", "secret1")
	r = expect(t, rp.call("POST", "/userve/v1/user-merge/", adminToken, map[string]any{"from": aID, "into": oldID}), http.StatusConflict)
	if !strings.Contains(string(r.body), "_phone") {
		t.Fatalf("%s", r.body)
	}
	for _, b := range []any{`{"from":1}`, `{"from":"1","into":2}`, `{"from":3,"into":3}`, `{"from":1,"into":2,"extra":1}`, `[]`,
		map[string]any{"from": 1, "into": 2, "idempotency_key": "has space"}} {
		expect(t, rp.call("POST", "/userve/v1/user-merge/", adminToken, b), http.StatusBadRequest)
	}
	expect(t, rp.call("POST", "/userve/v1/user-merge/", adminToken, map[string]any{"from": 999999, "into": oldID}), http.StatusNotFound)
	r = expect(t, rp.call("POST", "/userve/v1/user-merge/", adminToken, map[string]any{"from": wxID, "into": aID, "idempotency_key": "k2"}), http.StatusConflict)
	if !strings.Contains(string(r.body), "already merged") {
		t.Fatalf("%s", r.body)
	}
}

// 30 WeChat users on two replicas bind the same phone at once: exactly one
// gets it, the others a 409.
func TestWeChatPhoneRace(t *testing.T) {
	tn, fake := weChatTenant(t, true)
	tn.weChatHTTP = &http.Client{Timeout: 10 * time.Second}
	a, b := tn.replica(), tn.replica()
	const n = 30
	tokens := make([]string, n)
	codes := make([]string, n)
	for i := range tokens {
		_, tokens[i], _ = weChatLogin(t, a, fake.Login("o-ph"+fmtInt(int64(i)), ""))
		codes[i] = fake.PhoneCode("13500000042")
	}
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			statuses[i] = []*replica{a, b}[i%2].call("POST", "/api/v2/user/wechat/phone", tokens[i], map[string]any{"code": codes[i]}).status
		}(i)
	}
	wg.Wait()
	won := 0
	for _, s := range statuses {
		switch s {
		case http.StatusOK:
			won++
		case http.StatusConflict:
		default:
			t.Fatalf("racing phone bind: %d", s)
		}
	}
	if won != 1 || profileCount(t, tn, bson.D{{Key: "phone", Value: "13500000042"}}) != 1 {
		t.Fatalf("%d binds won", won)
	}
}
