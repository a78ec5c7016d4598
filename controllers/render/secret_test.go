package render

import (
	"bytes"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"userve.dev/userve/api/v1alpha1"
)

func TestSourcesUseTheCredentialsSecretByDefault(t *testing.T) {
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.Mongo.URISecretRef = &v1alpha1.SecretKeyRef{Name: "mongo", Key: "uri"}
	})
	src, err := Sources(us, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := func(what string, got corev1.SecretKeySelector, name, key string) {
		t.Helper()
		if got.Name != name || got.Key != key {
			t.Errorf("%s from %s/%s, want %s/%s", what, got.Name, got.Key, name, key)
		}
	}
	want("mongo URI", src.MongoURI, "mongo", "uri")
	want("admin tokens", src.AdminTokens, "acme-credentials", KeyAdminTokens)
	want("JWT key", src.JWTKey, "acme-credentials", KeyJWTKey)
	if len(src.Optional) != 0 || src.CopyDefaultMongoURI {
		t.Errorf("unconfigured sources set: %+v", src)
	}
}

func TestSourcesFollowTheSpecRefs(t *testing.T) {
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.Mongo.URISecretRef = &v1alpha1.SecretKeyRef{Name: "mongo", Key: "uri"}
		u.Spec.AdminTokensSecretRef = &v1alpha1.SecretKeyRef{Name: "tokens", Key: "list"}
		u.Spec.Verification.SMS = &v1alpha1.SMSSpec{Webhook: &v1alpha1.WebhookSpec{URL: "https://x", SecretRef: &v1alpha1.SecretKeyRef{Name: "hook", Key: "hmac"}}}
		u.Spec.Verification.Mail = &v1alpha1.MailSpec{SMTP: &v1alpha1.SMTPSpec{Host: "h", From: "a@b", PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "smtp", Key: "pw"}}}
	})
	src, err := Sources(us, &SecretLocation{Namespace: "ops", Name: "default-mongo", Key: "uri"})
	if err != nil {
		t.Fatal(err)
	}
	if src.MongoURI.Name != "mongo" || src.CopyDefaultMongoURI {
		t.Errorf("spec.mongo.uriSecretRef must win over the default: %+v", src.MongoURI)
	}
	if src.AdminTokens.Name != "tokens" || src.AdminTokens.Key != "list" {
		t.Errorf("admin tokens from %+v, want tokens/list", src.AdminTokens)
	}
	hook, okHook := src.Get(v1alpha1.EnvWebhookSecret)
	smtp, okSMTP := src.Get(v1alpha1.EnvSMTPPassword)
	if !okHook || hook.Name != "hook" || !okSMTP || smtp.Key != "pw" {
		t.Errorf("delivery secrets = %+v", src.Optional)
	}
}

func TestSourcesWithTheDefaultMongoURI(t *testing.T) {
	us := tenant()
	if _, err := Sources(us, nil); !errors.Is(err, ErrNoMongoURI) {
		t.Errorf("no URI anywhere: err = %v, want ErrNoMongoURI", err)
	}
	same, err := Sources(us, &SecretLocation{Namespace: "shop", Name: "mongo", Key: "uri"})
	if err != nil {
		t.Fatal(err)
	}
	if same.MongoURI.Name != "acme-credentials" || same.MongoURI.Key != KeyMongoURI || !same.CopyDefaultMongoURI {
		t.Errorf("even in the operator's namespace, a tenant reads its own user's URI, not the default Secret: %+v", same)
	}
	other, err := Sources(us, &SecretLocation{Namespace: "ops", Name: "mongo", Key: "uri"})
	if err != nil {
		t.Fatal(err)
	}
	if other.MongoURI.Name != "acme-credentials" || other.MongoURI.Key != KeyMongoURI || !other.CopyDefaultMongoURI {
		t.Errorf("default in another namespace must be copied into the credentials Secret: %+v", other)
	}
}

func TestCredentialsSecretGeneratesMissingValues(t *testing.T) {
	us := tenant()
	s, err := CredentialsSecret(us, nil, nil, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	assertOwned(t, us, s, "acme-credentials")
	if s.Labels[LabelWatched] != "true" {
		t.Errorf("credentials Secret lacks %s: the operator's Secret cache would not hold it", LabelWatched)
	}
	for _, key := range []string{KeyAdminTokens, KeyJWTKey} {
		if len(s.Data[key]) != 64 {
			t.Errorf("%s = %q, want 64 hex characters (256 bits)", key, s.Data[key])
		}
	}
	if bytes.Equal(s.Data[KeyAdminTokens], s.Data[KeyJWTKey]) {
		t.Error("admin token and JWT key are the same value")
	}
	if _, ok := s.Data[KeyMongoURI]; ok {
		t.Error("mongo-uri present without a URI to copy")
	}
	again, _ := CredentialsSecret(us, nil, nil, rand.Reader)
	if bytes.Equal(again.Data[KeyJWTKey], s.Data[KeyJWTKey]) {
		t.Error("two fresh secrets share a JWT key")
	}
}

func TestCredentialsSecretKeepsExistingValues(t *testing.T) {
	existing := map[string][]byte{KeyAdminTokens: []byte("tok"), KeyJWTKey: []byte("key"), "stray": []byte("x")}
	// A reader that fails proves nothing is generated.
	s, err := CredentialsSecret(tenant(), existing, nil, failingReader{})
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Data[KeyAdminTokens]) != "tok" || string(s.Data[KeyJWTKey]) != "key" {
		t.Errorf("existing values not kept: %q", s.Data)
	}
	if _, ok := s.Data["stray"]; ok {
		t.Error("keys the operator does not own must not be re-applied")
	}
}

func TestCredentialsSecretWithOwnAdminTokensAndCopiedURI(t *testing.T) {
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.AdminTokensSecretRef = &v1alpha1.SecretKeyRef{Name: "tokens", Key: "t"}
	})
	s, err := CredentialsSecret(us, map[string][]byte{KeyAdminTokens: []byte("old"), KeyJWTKey: []byte("key")}, []byte("mongodb://db/"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Data[KeyAdminTokens]; ok {
		t.Error("admin tokens kept although spec.adminTokensSecretRef replaces them")
	}
	if string(s.Data[KeyMongoURI]) != "mongodb://db/" || string(s.Data[KeyJWTKey]) != "key" {
		t.Errorf("data = %q", s.Data)
	}
}

func TestCredentialsSecretReportsRandomnessFailure(t *testing.T) {
	_, err := CredentialsSecret(tenant(), nil, nil, failingReader{})
	if err == nil || !strings.Contains(err.Error(), "generate") {
		t.Fatalf("err = %v, want a generate error", err)
	}
}

func TestRotationIsRecordedWithTheURI(t *testing.T) {
	us := tenant(func(u *v1alpha1.UserService) {
		u.Annotations = map[string]string{AnnotationRotateCredentials: "2026-12-01"}
	})
	if !RotationPending(us, nil) || !RotationPending(us, map[string]string{AnnotationCredentialsRotated: "before"}) {
		t.Error("a new rotation value is not pending")
	}
	if RotationPending(us, map[string]string{AnnotationCredentialsRotated: "2026-12-01"}) || RotationPending(tenant(), nil) {
		t.Error("a handled or absent rotation value is pending")
	}
	s, err := CredentialsSecret(us, nil, []byte("mongodb://u:p@db/d"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if s.Annotations[AnnotationCredentialsRotated] != "2026-12-01" {
		t.Errorf("annotations = %v, want the rotation handled", s.Annotations)
	}
	if s, _ := CredentialsSecret(us, nil, nil, rand.Reader); s.Annotations[AnnotationCredentialsRotated] != "" {
		t.Error("a Secret without a URI claims a rotation")
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

// TestEverySpecSecretReachesThePods: each Secret key the spec names is read
// by its variable, in the order the operator has always rendered them (a
// reordered environment would roll every tenant on an operator upgrade).
func TestEverySpecSecretReachesThePods(t *testing.T) {
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.Mongo.URISecretRef = &v1alpha1.SecretKeyRef{Name: "mongo", Key: "uri"}
		u.Spec.AdminTokensSecretRef = &v1alpha1.SecretKeyRef{Name: "tokens", Key: "list"}
		u.Spec.Verification.SMS = &v1alpha1.SMSSpec{Webhook: &v1alpha1.WebhookSpec{
			URL: "https://sms.example.com/", SecretRef: &v1alpha1.SecretKeyRef{Name: "hook", Key: "hmac"}}}
		u.Spec.Verification.Mail = &v1alpha1.MailSpec{SMTP: &v1alpha1.SMTPSpec{
			Host: "smtp.example.com", From: "a@example.com", PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "smtp", Key: "pw"}}}
		u.Spec.WeChat = &v1alpha1.WeChatSpec{AppID: "wx1", AppSecretRef: v1alpha1.SecretKeyRef{Name: "wx", Key: "secret"}}
	})
	src, err := Sources(us, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := Deployment(us, DeploymentParams{Image: "i", Database: "shop_acme", Secrets: src, ConfigHash: "h"})
	var got []string
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			got = append(got, e.Name+"="+e.ValueFrom.SecretKeyRef.Name+"/"+e.ValueFrom.SecretKeyRef.Key)
		}
	}
	want := []string{
		v1alpha1.EnvMongoURI + "=mongo/uri",
		v1alpha1.EnvAdminTokens + "=tokens/list",
		v1alpha1.EnvJWTKey + "=acme-credentials/" + KeyJWTKey,
		v1alpha1.EnvWebhookSecret + "=hook/hmac",
		v1alpha1.EnvSMTPPassword + "=smtp/pw",
		v1alpha1.EnvWeChatSecret + "=wx/secret",
	}
	if !slices.Equal(got, want) {
		t.Errorf("the pods read\n%v\nwant\n%v", got, want)
	}
	for _, r := range v1alpha1.TenantSecretRefs(&us.Spec) {
		if !slices.Contains(got, r.Env+"="+r.Ref.Name+"/"+r.Ref.Key) {
			t.Errorf("%s (%s) does not reach the pods", r.Field, r.Env)
		}
	}
}
