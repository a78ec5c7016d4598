package integration_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
)

// The API server refuses a bad spec.wechat with the CRD's rule, and
// defaults apiBaseURL and createUsers.
func TestWeChatSpecValidationAndDefaults(t *testing.T) {
	ns := namespace(t)
	ref := v1alpha1.SecretKeyRef{Name: "wx", Key: "secret"}
	for _, c := range []struct {
		name string
		spec v1alpha1.WeChatSpec
		want string
	}{
		{"empty appID", v1alpha1.WeChatSpec{AppSecretRef: ref}, "spec.wechat.appID"},
		{"appID with a space", v1alpha1.WeChatSpec{AppID: "wx 1", AppSecretRef: ref}, "spec.wechat.appID"},
		{"no secret name", v1alpha1.WeChatSpec{AppID: "wx1", AppSecretRef: v1alpha1.SecretKeyRef{Key: "k"}}, "spec.wechat.appSecretRef.name"},
		{"base URL scheme", v1alpha1.WeChatSpec{AppID: "wx1", AppSecretRef: ref, APIBaseURL: "ftp://api.weixin.qq.com"}, "wechat.apiBaseURL must be an http:// or https:// URL"},
		{"base URL query", v1alpha1.WeChatSpec{AppID: "wx1", AppSecretRef: ref, APIBaseURL: "https://api.weixin.qq.com/?x=1"}, "wechat.apiBaseURL must not carry a query or fragment"},
	} {
		t.Run(c.name, func(t *testing.T) {
			us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "invalid", Namespace: ns}}
			spec := c.spec
			us.Spec.WeChat = &spec
			err := k8s.Create(context.Background(), us)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want Invalid mentioning %q", err, c.want)
			}
		})
	}
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "defaulted", Namespace: ns}}
	us.Spec.WeChat = &v1alpha1.WeChatSpec{AppID: "wx0123456789abcdef", AppSecretRef: ref}
	if err := k8s.Create(context.Background(), us); err != nil {
		t.Fatal(err)
	}
	if us.Spec.WeChat.APIBaseURL != "https://api.weixin.qq.com" || us.Spec.WeChat.CreateUsers == nil || !*us.Spec.WeChat.CreateUsers {
		t.Fatalf("defaults: %+v", us.Spec.WeChat)
	}
}

// The app secret reaches the pods from appSecretRef, the Secret is watched,
// and a new secret value rolls the pods.
func TestWeChatSecretIsWatchedAndRollsPods(t *testing.T) {
	ns := namespace(t)
	withDefaultMongo(t)
	wx := secret(t, ns, "wx", map[string]string{"secret": "first-secret"})
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}
	us.Spec.WeChat = &v1alpha1.WeChatSpec{AppID: "wx0123456789abcdef", AppSecretRef: v1alpha1.SecretKeyRef{Name: "wx", Key: "secret"}}
	if err := k8s.Create(context.Background(), us); err != nil {
		t.Fatal(err)
	}
	var first string
	eventually(t, "the Deployment reads the WeChat secret", func() error {
		d := deployment(t, us)
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if e.Name == v1alpha1.EnvWeChatSecret && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef.Name == "wx" && e.ValueFrom.SecretKeyRef.Key == "secret" {
				first = podHash(d)
				return nil
			}
		}
		return fmt.Errorf("env %+v", d.Spec.Template.Spec.Containers[0].Env)
	})
	if err := get(t, wx, ns, "wx"); err != nil {
		t.Fatal(err)
	}
	if wx.Labels[render.LabelWatched] != "true" {
		t.Errorf("the WeChat Secret is not labelled for the operator's cache: %v", wx.Labels)
	}
	if err := k8s.Patch(context.Background(), wx, client.RawPatch(types.MergePatchType, []byte(`{"stringData":{"secret":"second-secret"}}`))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new app secret rolls the pods", func() error {
		if h := podHash(deployment(t, us)); h == first {
			return fmt.Errorf("hash still %s", h)
		}
		return nil
	})
}
