package render

import (
	"crypto/rand"
	"strings"
	"testing"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/config"
)

// spec.events.webhook reaches the pod through the tenant contract: the
// secret as USERVE_EVENTS_WEBHOOK_SECRET from its secretRef, the rest in
// the rendered manifest, which the server accepts with that environment.
func TestEventsWebhookReachesThePod(t *testing.T) {
	us := tenant(func(u *v1alpha1.UserService) {
		u.Spec.Mongo.URISecretRef = &v1alpha1.SecretKeyRef{Name: "mongo", Key: "uri"}
		u.Spec.Events.Webhook = &v1alpha1.EventWebhookSpec{URL: "https://backend.example.com/events",
			SecretRef: &v1alpha1.SecretKeyRef{Name: "hooks", Key: "events"}, Events: []v1alpha1.EventType{v1alpha1.EventUserLogin}}
	})
	src, err := Sources(us, nil)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := CredentialsSecret(us, nil, nil, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"hooks/events": "the-events-secret", "mongo/uri": "mongodb://m:27017/"}
	for k, v := range creds.Data {
		secrets[creds.Name+"/"+k] = string(v)
	}
	env := map[string]string{}
	for _, e := range Deployment(us, DeploymentParams{Image: "i", Database: "shop_acme", Secrets: src, ConfigHash: "h"}).Spec.Template.Spec.Containers[0].Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		} else if ref := e.ValueFrom.SecretKeyRef; ref != nil {
			env[e.Name] = secrets[ref.Name+"/"+ref.Key]
		}
	}
	if env[v1alpha1.EnvEventsWebhookSecret] != "the-events-secret" {
		t.Fatalf("%s = %q", v1alpha1.EnvEventsWebhookSecret, env[v1alpha1.EnvEventsWebhookSecret])
	}
	cfgYAML, err := ServerConfig(us, "shop_acme")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cfgYAML), "the-events-secret") {
		t.Fatal("the ConfigMap holds the events secret")
	}
	manifest, err := config.ParseManifest(cfgYAML)
	if err != nil {
		t.Fatalf("%v\n%s", err, cfgYAML)
	}
	cfg, err := config.FromManifest(manifest, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	wh := cfg.Spec().Events.Webhook
	if cfg.EventsSecret != "the-events-secret" || wh == nil || wh.URL != "https://backend.example.com/events" || !wh.Wants(v1alpha1.EventUserLogin) || wh.Wants(v1alpha1.EventUserCreated) {
		t.Fatalf("server config: %q %+v", cfg.EventsSecret, wh)
	}
	// Without spec.events, neither the variable nor an events key.
	plain := tenant()
	src, _ = Sources(plain, &SecretLocation{Namespace: "ops", Name: "m", Key: "u"})
	for _, e := range Deployment(plain, DeploymentParams{Image: "i", Database: "d", Secrets: src}).Spec.Template.Spec.Containers[0].Env {
		if e.Name == v1alpha1.EnvEventsWebhookSecret {
			t.Fatal("events secret without spec.events.webhook")
		}
	}
	if plainYAML, _ := ServerConfig(plain, "d"); strings.Contains(string(plainYAML), "events") {
		t.Fatalf("a tenant without events renders %s", plainYAML)
	}
}
