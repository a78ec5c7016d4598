package config

import (
	"strings"
	"testing"

	"userve.dev/userve/api/v1alpha1"
)

// eventsYAML continues goodYAML's spec with an events webhook at url.
func eventsYAML(url, events string) string {
	return "  events:\n    webhook:\n      url: " + url + "\n      secretRef: {name: ev, key: secret}\n" + events
}

func TestEventsWebhookLoads(t *testing.T) {
	e := map[string]string{v1alpha1.EnvEventsWebhookSecret: "s3cret"}
	for k, v := range goodEnv {
		e[k] = v
	}
	cfg, err := Load(write(t, "us.yaml", goodYAML+eventsYAML("https://backend.example.com/hooks?tenant=acme", "      events: [user.login, wallet.transaction]\n")), env(e))
	if err != nil {
		t.Fatal(err)
	}
	wh := cfg.Spec().Events.Webhook
	if cfg.EventsSecret != "s3cret" || wh.URL != "https://backend.example.com/hooks?tenant=acme" ||
		!wh.Wants(v1alpha1.EventUserLogin) || wh.Wants(v1alpha1.EventUserCreated) {
		t.Fatalf("config %+v %+v", cfg.EventsSecret, wh)
	}
	// No list: every type.
	cfg, err = Load(write(t, "us.yaml", goodYAML+eventsYAML("http://10.0.0.5:8080/", "")), env(e))
	if err != nil || !cfg.Spec().Events.Webhook.Wants(v1alpha1.EventUserDeleted) {
		t.Fatalf("%v %+v", err, cfg)
	}
}

// A spec the CRD's rules refuse is refused by the server too, with the
// same precise message (private addresses are the egress guard's call).
func TestEventsWebhookRefusals(t *testing.T) {
	e := map[string]string{v1alpha1.EnvEventsWebhookSecret: "s3cret"}
	for k, v := range goodEnv {
		e[k] = v
	}
	for _, c := range []struct{ name, file, want string }{
		{"scheme", eventsYAML("ftp://backend.example.com/", ""), `spec.events.webhook.url must start with https:// or http://`},
		{"credentials", eventsYAML("https://user:pw@backend.example.com/", ""), "spec.events.webhook.url must not carry credentials"},
		{"fragment", eventsYAML("https://backend.example.com/#x", ""), "must not have a fragment"},
		{"no host", eventsYAML("https:///hooks", ""), "spec.events.webhook.url must name a host"},
		{"too long", eventsYAML("https://b.example.com/"+strings.Repeat("a", 2048), ""), "spec.events.webhook.url: 2070 characters, must be 8..2048"},
		{"unknown event", eventsYAML("https://b.example.com/", "      events: [user.exploded]\n"), `spec.events.webhook.events[0] "user.exploded": must be one of user.created, user.updated`},
		{"event twice", eventsYAML("https://b.example.com/", "      events: [user.login, user.login]\n"), `spec.events.webhook.events[1] "user.login" is listed twice`},
		{"no secretRef", "  events:\n    webhook:\n      url: https://b.example.com/\n", "spec.events.webhook.secretRef is required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(write(t, "us.yaml", goodYAML+c.file), env(e))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if strings.Contains(err.Error(), "pw@") {
				t.Fatalf("the error shows the URL's password: %v", err)
			}
		})
	}
	// The secret is required, like the SMS webhook's.
	_, err := Load(write(t, "us.yaml", goodYAML+eventsYAML("https://b.example.com/", "")), env(goodEnv))
	if err == nil || !strings.Contains(err.Error(), "USERVE_EVENTS_WEBHOOK_SECRET is required: spec.events.webhook is set") {
		t.Fatalf("no secret: %v", err)
	}
}
