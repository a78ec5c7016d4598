package plus_test

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"sync"
	"testing"

	"userve.dev/userve/server/wechat"
)

// Every way encrypted data can fail to decrypt gets the very same answer:
// a CBC padding oracle needs the padding failure told apart from the rest.
// On main, a bad padding, bad JSON, a foreign watermark and a malformed iv
// each had their own message (and the iv its own field).
func TestWeChatProfileFailuresLookAlike(t *testing.T) {
	tn, fake := weChatTenant(t, true)
	rp := tn.replica()
	_, tok, _ := weChatLogin(t, rp, fake.Login("o-ann", ""))
	info := wechat.UserInfo{NickName: "Ann"}
	good, iv, err := fake.UserData("o-ann", info)
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := base64.StdEncoding.DecodeString(good)
	badPad := append([]byte(nil), ct...)
	badPad[len(badPad)-17] ^= 0x5a // last plaintext byte (the padding) changes
	ivb := make([]byte, 16)
	_, _ = rand.Read(ivb)
	notJSON, _ := wechat.Encrypt(fake.SessionKey("o-ann"), []byte("not json at all"), ivb)
	foreign := info
	foreign.Watermark.AppID = "wx-other"
	wm, wmIV, _ := fake.UserData("o-ann", foreign)
	cases := map[string][2]string{
		"bad padding":  {base64.StdEncoding.EncodeToString(badPad), iv},
		"not JSON":     {notJSON, base64.StdEncoding.EncodeToString(ivb)},
		"watermark":    {wm, wmIV},
		"iv not b64":   {good, "***"},
		"short iv":     {good, base64.StdEncoding.EncodeToString([]byte("short"))},
		"data not b64": {"@@", iv},
		"odd length":   {base64.StdEncoding.EncodeToString(ct[:len(ct)-3]), iv},
	}
	var first []byte
	for name, c := range cases {
		r := rp.call("PUT", "/api/v2/user/wechat/profile", tok, map[string]any{"encryptedData": c[0], "iv": c[1]})
		expectInvalid(t, r, "encryptedData")
		if first == nil {
			first = r.body
		} else if string(r.body) != string(first) {
			t.Errorf("%s: %s, others: %s", name, r.body, first)
		}
	}
}

// The unionid comes from jscode2session only. Data a client sends (here
// validly encrypted, as a forged block would be after a padding-oracle
// attack) naming another unionid attaches nothing. On main the decrypted
// unionid was stored.
func TestWeChatProfileTakesNoIdentity(t *testing.T) {
	tn, fake := weChatTenant(t, true)
	rp := tn.replica()
	_, tok, _ := weChatLogin(t, rp, fake.Login("o-ann", ""))
	id := meID(t, rp, tok)
	data, iv, err := fake.UserData("o-ann", wechat.UserInfo{NickName: "Ann", UnionID: "u-victim"})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, rp.call("PUT", "/api/v2/user/wechat/profile", tok, map[string]any{"encryptedData": data, "iv": iv}), http.StatusNoContent)
	p := expect(t, rp.call("GET", "/userve/v2.0/miniapp/user_profile/"+fmtInt(id)+"/", adminToken, nil), http.StatusOK).obj(t)
	if p["nickname"] != "Ann" || (p["unionid"] != nil && p["unionid"] != "") {
		t.Fatalf("profile after client data naming a unionid: %v", p)
	}
}

// 30 tries at once by one user: the per-user budget admits exactly ten,
// the others are 429 with Retry-After (a padding oracle needs hundreds of
// tries per byte). On main every try was judged.
func TestWeChatProfileLimitPerUser(t *testing.T) {
	tn, fake := weChatTenant(t, true)
	rp := tn.replica()
	_, tok, _ := weChatLogin(t, rp, fake.Login("o-ann", ""))
	_, other, _ := weChatLogin(t, rp, fake.Login("o-bob", ""))
	_, iv, err := fake.UserData("o-ann", wechat.UserInfo{NickName: "Ann"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 30
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := rp.call("PUT", "/api/v2/user/wechat/profile", tok, map[string]any{"encryptedData": "AAAAAAAAAAAAAAAAAAAAAA==", "iv": iv})
			if r.status == http.StatusTooManyRequests && r.header.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After")
			}
			statuses[i] = r.status
		}(i)
	}
	wg.Wait()
	judged, limited := 0, 0
	for _, s := range statuses {
		switch s {
		case http.StatusUnprocessableEntity:
			judged++
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("status %d", s)
		}
	}
	if judged != 10 || limited != n-10 {
		t.Fatalf("%d judged, %d limited; want 10 and %d", judged, limited, n-10)
	}
	// Another user's budget is their own.
	data, biv, _ := fake.UserData("o-bob", wechat.UserInfo{NickName: "Bob"})
	expect(t, rp.call("PUT", "/api/v2/user/wechat/profile", other, map[string]any{"encryptedData": data, "iv": biv}), http.StatusNoContent)
}
