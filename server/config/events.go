package config

import (
	"fmt"
	"regexp"
	"strings"

	"userve.dev/userve/api/v1alpha1"
)

var (
	webhookCredentials = regexp.MustCompile(`^https?://[^/?#]*@`)
	webhookHost        = regexp.MustCompile(`^https?://[^/?#]+([/?].*)?$`)
)

// ValidateEventsWebhook repeats the CRD's rules on spec.events.webhook (its
// CEL rules and schema, api/v1alpha1/userservice_events_types.go), with the
// same messages, for manifests that never met the API server. Private
// addresses are not refused here: what the server may reach is the egress
// guard's call, not the spec's.
func ValidateEventsWebhook(w *v1alpha1.EventWebhookSpec) error {
	if w == nil {
		return nil
	}
	u := w.URL
	switch {
	case len(u) < 8 || len(u) > 2048:
		return fmt.Errorf("spec.events.webhook.url: %d characters, must be 8..2048", len(u))
	case !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://"):
		return fmt.Errorf("spec.events.webhook.url %q: spec.events.webhook.url must start with https:// or http://", u)
	case webhookCredentials.MatchString(u):
		// The URL is not echoed: it holds a password.
		return fmt.Errorf("spec.events.webhook.url must not carry credentials (user:password@): requests are signed with secretRef instead")
	case strings.Contains(u, "#"):
		return fmt.Errorf("spec.events.webhook.url %q: spec.events.webhook.url must not have a fragment", u)
	case !webhookHost.MatchString(u):
		return fmt.Errorf("spec.events.webhook.url %q: spec.events.webhook.url must name a host, as in https://backend.example.com/userve-events", u)
	case w.SecretRef == nil:
		return fmt.Errorf("spec.events.webhook.secretRef is required: events are signed with it")
	case len(w.Events) > len(v1alpha1.EventTypes()):
		return fmt.Errorf("spec.events.webhook.events: %d entries, at most %d", len(w.Events), len(v1alpha1.EventTypes()))
	}
	seen := map[v1alpha1.EventType]bool{}
	for i, e := range w.Events {
		known := false
		for _, t := range v1alpha1.EventTypes() {
			known = known || t == e
		}
		switch {
		case !known:
			return fmt.Errorf("spec.events.webhook.events[%d] %q: must be one of %s", i, e, eventTypeList())
		case seen[e]:
			return fmt.Errorf("spec.events.webhook.events[%d] %q is listed twice", i, e)
		}
		seen[e] = true
	}
	return nil
}

func eventTypeList() string {
	names := make([]string, 0, len(v1alpha1.EventTypes()))
	for _, t := range v1alpha1.EventTypes() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}
