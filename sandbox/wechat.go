package sandbox

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/wechat/wechattest"
)

// DefaultWeChatFakeAddr is where `userve dev` serves its fake WeChat.
const DefaultWeChatFakeAddr = "127.0.0.1:18790"

// weChatFake is the fake WeChat API of the sandbox (server/wechat/wechattest):
// sample tenants with spec.wechat are pointed at it, and a person plays
// the mini-program with curl through its /fake/ routes.
type weChatFake struct {
	fake *wechattest.Fake
	url  string
	srv  *http.Server
	// app is the sample tenant whose app id and secret the fake serves.
	app string
}

// startWeChatFake listens on addr; the default address, when taken (by
// another sandbox, say), gives way to a free port.
func startWeChatFake(addr string) (*weChatFake, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil && addr == DefaultWeChatFakeAddr {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return nil, fmt.Errorf("fake WeChat on %s: %w (pass --wechat-fake with another address, or '' for none)", addr, err)
	}
	f := wechattest.New("", "")
	w := &weChatFake{fake: f, url: "http://" + ln.Addr().String(), srv: &http.Server{Handler: f.Handler(), ReadHeaderTimeout: 5 * time.Second}}
	go func() { _ = w.srv.Serve(ln) }()
	return w, nil
}

func (w *weChatFake) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = w.srv.Shutdown(ctx)
}

// localizeWeChat points every sample UserService with spec.wechat on the
// real WeChat (or on none) at the fake, and has the fake play the first
// one's mini-program: its appID and the app secret from the sample Secret
// it names (localizeSecrets has run: values are in data). It returns one
// note per tenant changed.
func localizeWeChat(objs []*unstructured.Unstructured, w *weChatFake) ([]string, error) {
	secrets := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if o.GetKind() == "Secret" {
			secrets[o.GetNamespace()+"/"+o.GetName()] = o
		}
	}
	var notes []string
	for _, o := range objs {
		if o.GetKind() != "UserService" || o.GetAPIVersion() != v1alpha1.GroupVersion.String() {
			continue
		}
		wc, found, err := unstructured.NestedMap(o.Object, "spec", "wechat")
		if err != nil || !found {
			continue
		}
		base, _, _ := unstructured.NestedString(wc, "apiBaseURL")
		if base != "" && base != v1alpha1.DefaultWeChatAPIBaseURL {
			continue // the sample names a WeChat of its own
		}
		if err := unstructured.SetNestedField(o.Object, w.url, "spec", "wechat", "apiBaseURL"); err != nil {
			return nil, err
		}
		id := o.GetName()
		if w.app != "" {
			notes = append(notes, fmt.Sprintf("UserService %s: spec.wechat.apiBaseURL -> %s (the fake plays %s's app only)", id, w.url, w.app))
			continue
		}
		appID, _, _ := unstructured.NestedString(wc, "appID")
		name, _, _ := unstructured.NestedString(wc, "appSecretRef", "name")
		key, _, _ := unstructured.NestedString(wc, "appSecretRef", "key")
		s := secrets[o.GetNamespace()+"/"+name]
		if s == nil {
			return nil, fmt.Errorf("UserService %s: spec.wechat.appSecretRef names Secret %q, which is not among the samples", id, name)
		}
		enc, _, _ := unstructured.NestedString(s.Object, "data", key)
		secret, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(secret) == 0 {
			return nil, errors.Join(fmt.Errorf("UserService %s: Secret %s has no key %s", id, name, key), err)
		}
		w.fake.AppID, w.fake.Secret, w.app = appID, string(secret), id
		notes = append(notes, fmt.Sprintf("UserService %s: spec.wechat.apiBaseURL -> %s, a fake WeChat playing app %s", id, w.url, appID))
	}
	return notes, nil
}

// printWeChatTry shows the WeChat login flow against the fake.
func printWeChatTry(p *printer, w *weChatFake) {
	if w == nil || w.app == "" {
		return
	}
	p.printf(`  fake WeChat:  %[1]s plays mini-program %[2]s for tenant %[3]s. Try (TENANT = its URL below):
                CODE=$(curl -s -XPOST %[1]s/fake/login -d '{"openid":"o-demo","unionid":"u-demo"}' | jq -r .code)   # wx.login
                curl -s -XPOST $TENANT/api/v2/auth/wechat -H 'Content-Type: application/json' -d "{\"code\":\"$CODE\"}"                           # 201, created: true
                (docs/plus.md, "WeChat": phone, profile and linking too)
`, w.url, w.fake.AppID, w.app)
}
