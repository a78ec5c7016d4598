package wechat_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"userve.dev/userve/server/wechat"
)

const testKey = "tiihtNczf5v6AKRyjwEUhQ==" // WeChat's sample session key

func encrypt(t testing.TB, key string, plain []byte) (string, string) {
	t.Helper()
	iv := bytes.Repeat([]byte{7}, 16)
	ct, err := wechat.Encrypt(key, plain, iv)
	if err != nil {
		t.Fatal(err)
	}
	return ct, base64.StdEncoding.EncodeToString(iv)
}

func TestDecryptUserInfo(t *testing.T) {
	plain := []byte(`{"openId":"oGZUI0egBJY1zhBYw2KhdUfwVJJE","nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/x/0","unionId":"ocMvos6NjeKLIBqg5Mr9QjxrP1FA","watermark":{"timestamp":1477314187,"appid":"wx4f4bc4dec97d474b"}}`)
	ct, iv := encrypt(t, testKey, plain)
	info, err := wechat.DecryptUserInfo(testKey, ct, iv, "wx4f4bc4dec97d474b")
	if err != nil {
		t.Fatal(err)
	}
	if info.NickName != "Band" || info.Gender != 1 || info.City != "Guangzhou" || info.UnionID == "" || info.AvatarURL == "" || info.Language != "zh_CN" {
		t.Fatalf("%+v", info)
	}
	// Another app's data: the watermark gives it away.
	if _, err := wechat.DecryptUserInfo(testKey, ct, iv, "wx-other"); !errors.Is(err, wechat.ErrWatermark) {
		t.Fatalf("watermark: %v", err)
	}
	// Under another session key (an older login) it does not decrypt.
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 16))
	_, err = wechat.DecryptUserInfo(other, ct, iv, "wx4f4bc4dec97d474b")
	var de *wechat.DecodeError
	if !errors.As(err, &de) || de.Field != "encryptedData" {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestDecryptRejects(t *testing.T) {
	good, iv := encrypt(t, testKey, []byte(`{"watermark":{"appid":"a"}}`))
	for name, tc := range map[string]struct{ data, iv, field string }{
		"iv not base64":      {good, "!!!", "iv"},
		"iv short":           {good, base64.StdEncoding.EncodeToString([]byte("short")), "iv"},
		"data not base64":    {"%%%", iv, "encryptedData"},
		"data not blocks":    {base64.StdEncoding.EncodeToString([]byte("12345")), iv, "encryptedData"},
		"data empty":         {"", iv, "encryptedData"},
		"data huge":          {strings.Repeat("A", 20000), iv, "encryptedData"},
		"plaintext not json": {mustEncrypt(t, []byte("hello")), iv, "encryptedData"},
		"trailing garbage":   {mustEncrypt(t, []byte(`{"watermark":{"appid":"a"}} {}`)), iv, "encryptedData"},
	} {
		_, err := wechat.DecryptUserInfo(testKey, tc.data, tc.iv, "a")
		var de *wechat.DecodeError
		if !errors.As(err, &de) || de.Field != tc.field {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Form-encoded bodies turn '+' into ' '; that still decodes.
	if _, err := wechat.DecryptUserInfo(testKey, strings.ReplaceAll(good, "+", " "), iv, "a"); err != nil {
		t.Errorf("spaces for pluses: %v", err)
	}
}

func mustEncrypt(t *testing.T, plain []byte) string {
	ct, _ := encrypt(t, testKey, plain)
	return ct
}

func TestPadding(t *testing.T) {
	for n := 0; n < 40; n++ {
		plain := bytes.Repeat([]byte{'x'}, n)
		ct, iv := encrypt(t, testKey, plain)
		got, err := wechat.Decrypt(testKey, ct, iv)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("len %d: %q %v", n, got, err)
		}
	}
}

func TestSealer(t *testing.T) {
	s, err := wechat.NewSealer("secret", "wx1")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal(7, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(testKey)) {
		t.Fatal("sealed key shows the key")
	}
	if got, err := s.Open(7, sealed); err != nil || got != testKey {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := s.Open(8, sealed); !errors.Is(err, wechat.ErrSealed) {
		t.Fatalf("another user's sealed key opened: %v", err)
	}
	other, _ := wechat.NewSealer("secret2", "wx1")
	if _, err := other.Open(7, sealed); !errors.Is(err, wechat.ErrSealed) {
		t.Fatalf("another secret opened it: %v", err)
	}
	if _, err := s.Open(7, sealed[:5]); !errors.Is(err, wechat.ErrSealed) {
		t.Fatal("short input opened")
	}
	if _, err := wechat.NewSealer("", "wx1"); err == nil {
		t.Fatal("empty secret accepted")
	}
}

// FuzzDecryptUserInfo: any encryptedData and iv give user data or a
// DecodeError, never a panic or another error.
func FuzzDecryptUserInfo(f *testing.F) {
	ct, iv := encrypt(f, testKey, []byte(`{"nickName":"n","gender":9,"watermark":{"appid":"a"}}`))
	f.Add(ct, iv)
	f.Add("", "")
	f.Add("AAAAAAAAAAAAAAAAAAAAAA==", iv)
	f.Add(ct, "AAAA")
	f.Fuzz(func(t *testing.T, data, iv string) {
		info, err := wechat.DecryptUserInfo(testKey, data, iv, "a")
		var de *wechat.DecodeError
		if err != nil && !errors.As(err, &de) {
			t.Fatalf("not a DecodeError: %v", err)
		}
		if err == nil && (info.Watermark.AppID != "a" || info.Gender < 0 || info.Gender > 2) {
			t.Fatalf("accepted %+v", info)
		}
	})
}
