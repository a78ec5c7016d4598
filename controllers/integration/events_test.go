package integration_test

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"userve.dev/userve/api/v1alpha1"
)

// spec.events.webhook: the API server takes every event type and refuses
// a bad URL or event with the same message as the server's own check
// (server/config/events.go).
func TestEventsWebhookSpecValidation(t *testing.T) {
	ns := namespace(t)
	hook := func(url string, events ...v1alpha1.EventType) *v1alpha1.EventWebhookSpec {
		return &v1alpha1.EventWebhookSpec{URL: url, SecretRef: &v1alpha1.SecretKeyRef{Name: "hooks", Key: "events"}, Events: events}
	}
	ok := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "events", Namespace: ns}}
	ok.Spec.Events.Webhook = hook("https://backend.example.com/userve?tenant=acme", v1alpha1.EventTypes()...)
	if err := k8s.Create(context.Background(), ok); err != nil {
		t.Fatalf("a valid spec.events refused: %v", err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), ok) })

	for _, c := range []struct {
		name string
		hook *v1alpha1.EventWebhookSpec
		want string
	}{
		{"scheme", hook("ftp://backend.example.com/"), "spec.events.webhook.url must start with https:// or http://"},
		{"credentials", hook("https://user:pw@backend.example.com/"), "spec.events.webhook.url must not carry credentials"},
		{"fragment", hook("https://backend.example.com/#x"), "spec.events.webhook.url must not have a fragment"},
		{"no host", hook("https:///hooks"), "spec.events.webhook.url must name a host"},
		{"too long", hook("https://b.example.com/" + strings.Repeat("a", 2048)), "Too long"},
		{"unknown event", hook("https://b.example.com/", "user.exploded"), `Unsupported value: "user.exploded"`},
		{"event twice", hook("https://b.example.com/", v1alpha1.EventUserLogin, v1alpha1.EventUserLogin), "Duplicate value"},
		{"no secretRef", &v1alpha1.EventWebhookSpec{URL: "https://b.example.com/"}, "secretRef: Required value"},
	} {
		t.Run(c.name, func(t *testing.T) {
			us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "invalid-events", Namespace: ns}}
			us.Spec.Events.Webhook = c.hook
			err := k8s.Create(context.Background(), us)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want Invalid mentioning %q", err, c.want)
			}
		})
	}
}
