package render

import (
	"crypto/rand"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/config"
)

// TestTheServerAcceptsWhatThePodGets plays the kubelet: it resolves the
// Deployment's environment from the rendered Secrets and hands it, with the
// rendered config, to the server's own configuration loader.
func TestTheServerAcceptsWhatThePodGets(t *testing.T) {
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.Verification.Mail = &v1alpha1.MailSpec{SMTP: &v1alpha1.SMTPSpec{
			Host: "smtp.example.com", From: "no-reply@example.com", PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "smtp", Key: "pw"},
		}}
		u.Spec.Profile.CustomFields = []v1alpha1.CustomField{{Name: "level", Type: v1alpha1.FieldInteger}}
	})
	src, err := Sources(us, &SecretLocation{Namespace: "ops", Name: "mongo", Key: "uri"})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := CredentialsSecret(us, nil, []byte("mongodb://mongo.ops:27017/"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{"smtp/pw": []byte("hunter2")}
	for k, v := range creds.Data {
		secrets[creds.Name+"/"+k] = v
	}
	cfgYAML, err := ServerConfig(us, "shop_acme")
	if err != nil {
		t.Fatal(err)
	}
	d := Deployment(us, DeploymentParams{Image: "i", Database: "shop_acme", Secrets: src, ConfigHash: "h"})
	env := map[string]string{}
	container := d.Spec.Template.Spec.Containers[0]
	for _, e := range container.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
			continue
		}
		if rf := e.ValueFrom.ResourceFieldRef; rf != nil {
			// The kubelet's resolution: the limit divided by the divisor.
			q, ok := container.Resources.Limits[corev1.ResourceName(strings.TrimPrefix(rf.Resource, "limits."))]
			if !ok || rf.Divisor.Value() != 1 {
				t.Fatalf("%s reads %s, which the container does not limit", e.Name, rf.Resource)
			}
			env[e.Name] = strconv.FormatInt(q.Value(), 10)
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		v, ok := secrets[ref.Name+"/"+ref.Key]
		if !ok {
			t.Fatalf("%s reads %s/%s, which no rendered or given Secret holds", e.Name, ref.Name, ref.Key)
		}
		env[e.Name] = string(v)
	}

	manifest, err := config.ParseManifest(cfgYAML)
	if err != nil {
		t.Fatalf("the server rejects the rendered config: %v\n%s", err, cfgYAML)
	}
	cfg, err := config.FromManifest(manifest, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("the server rejects the pod's environment: %v", err)
	}
	if cfg.Database != "shop_acme" || cfg.MongoURI != "mongodb://mongo.ops:27017/" || cfg.Issuer != "shop/acme" {
		t.Errorf("database %q uri %q issuer %q", cfg.Database, cfg.MongoURI, cfg.Issuer)
	}
	if len(cfg.AdminTokens) != 1 || string(cfg.JWTKey) != string(creds.Data[KeyJWTKey]) || cfg.SMTPPassword != "hunter2" {
		t.Errorf("admin tokens %d, JWT key or SMTP password not passed through", len(cfg.AdminTokens))
	}
	if _, ok := cfg.CustomField("level"); !ok {
		t.Error("the custom field did not reach the server")
	}
	if got := env[v1alpha1.EnvMemoryLimit]; got != "268435456" {
		t.Errorf("%s = %q, want the default 256Mi limit in bytes", v1alpha1.EnvMemoryLimit, got)
	}
}
