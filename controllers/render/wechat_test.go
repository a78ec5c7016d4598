package render

import (
	"crypto/rand"
	"strings"
	"testing"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/config"
)

// spec.wechat reaches the pod: the app secret as USERVE_WECHAT_APP_SECRET
// from appSecretRef, the rest in the rendered manifest, which the server
// accepts with that environment.
func TestWeChatReachesThePod(t *testing.T) {
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.Mongo.URISecretRef = &v1alpha1.SecretKeyRef{Name: "mongo", Key: "uri"}
		u.Spec.WeChat = &v1alpha1.WeChatSpec{AppID: "wx0123456789abcdef", AppSecretRef: v1alpha1.SecretKeyRef{Name: "wx", Key: "secret"}}
	})
	src, err := Sources(us, nil)
	if err != nil {
		t.Fatal(err)
	}
	if wx, ok := src.Get(v1alpha1.EnvWeChatSecret); !ok || wx.Name != "wx" || wx.Key != "secret" {
		t.Fatalf("WeChat secret source %+v", src.Optional)
	}
	creds, err := CredentialsSecret(us, nil, nil, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"wx/secret": "the-app-secret", "mongo/uri": "mongodb://m:27017/"}
	for k, v := range creds.Data {
		secrets[creds.Name+"/"+k] = string(v)
	}
	env := map[string]string{}
	for _, e := range Deployment(us, DeploymentParams{Image: "i", Database: "shop_acme", Secrets: src, ConfigHash: "h"}).Spec.Template.Spec.Containers[0].Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
			continue
		}
		if ref := e.ValueFrom.SecretKeyRef; ref != nil {
			env[e.Name] = secrets[ref.Name+"/"+ref.Key]
		}
	}
	if env[v1alpha1.EnvWeChatSecret] != "the-app-secret" {
		t.Fatalf("%s = %q", v1alpha1.EnvWeChatSecret, env[v1alpha1.EnvWeChatSecret])
	}
	cfgYAML, err := ServerConfig(us, "shop_acme")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cfgYAML), "the-app-secret") {
		t.Fatal("the ConfigMap holds the app secret")
	}
	manifest, err := config.ParseManifest(cfgYAML)
	if err != nil {
		t.Fatalf("%v\n%s", err, cfgYAML)
	}
	cfg, err := config.FromManifest(manifest, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	wc := cfg.Spec().WeChat
	if cfg.WeChatSecret != "the-app-secret" || wc == nil || wc.AppID != "wx0123456789abcdef" ||
		wc.APIBaseURL != v1alpha1.DefaultWeChatAPIBaseURL || !v1alpha1.Enabled(wc.CreateUsers) {
		t.Fatalf("server config: %+v %+v", cfg.WeChatSecret, wc)
	}
	// Without spec.wechat, no WeChat variable.
	plain := tenant()
	src, _ = Sources(plain, &SecretLocation{Namespace: "ops", Name: "m", Key: "u"})
	for _, e := range Deployment(plain, DeploymentParams{Image: "i", Database: "d", Secrets: src}).Spec.Template.Spec.Containers[0].Env {
		if e.Name == v1alpha1.EnvWeChatSecret {
			t.Fatal("WeChat secret without spec.wechat")
		}
	}
	// A new app secret changes the config hash, so the pods roll.
	if ConfigHash(cfgYAML, map[string][]byte{v1alpha1.EnvWeChatSecret: []byte("a")}) == ConfigHash(cfgYAML, map[string][]byte{v1alpha1.EnvWeChatSecret: []byte("b")}) {
		t.Fatal("config hash ignores the WeChat secret")
	}
}
