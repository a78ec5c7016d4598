package v1alpha1

// The events a tenant's server delivers to the tenant's backend
// (docs/events.md).

// EventType names one kind of event.
// +kubebuilder:validation:Enum=user.created;user.updated;user.deleted;user.banned;user.login;user.password_changed;wallet.transaction
type EventType string

// The event types. EventTypes lists them; the Enum marker above repeats it
// for the CRD (a test compares the two).
const (
	EventUserCreated         EventType = "user.created"
	EventUserUpdated         EventType = "user.updated"
	EventUserDeleted         EventType = "user.deleted"
	EventUserBanned          EventType = "user.banned"
	EventUserLogin           EventType = "user.login"
	EventUserPasswordChanged EventType = "user.password_changed"
	EventWalletTransaction   EventType = "wallet.transaction"
)

// EventTypes is every event type, in the documented order.
func EventTypes() []EventType {
	return []EventType{EventUserCreated, EventUserUpdated, EventUserDeleted, EventUserBanned, EventUserLogin,
		EventUserPasswordChanged, EventWalletTransaction}
}

// EventsSpec says where the tenant's server sends events.
type EventsSpec struct {
	// Webhook receives each event as an HMAC-signed JSON POST, at least
	// once and in order per user. Unset: no events are recorded.
	// +optional
	Webhook *EventWebhookSpec `json:"webhook,omitempty"`
}

// EventWebhookSpec is the tenant backend's endpoint for events.
// +kubebuilder:validation:XValidation:rule="self.url.startsWith('https://') || self.url.startsWith('http://')",message="spec.events.webhook.url must start with https:// or http://"
// +kubebuilder:validation:XValidation:rule="!self.url.matches('^https?://[^/?#]*@')",message="spec.events.webhook.url must not carry credentials (user:password@): requests are signed with secretRef instead"
// +kubebuilder:validation:XValidation:rule="!self.url.contains('#')",message="spec.events.webhook.url must not have a fragment"
// +kubebuilder:validation:XValidation:rule="self.url.matches('^https?://[^/?#]+([/?].*)?$')",message="spec.events.webhook.url must name a host, as in https://backend.example.com/userve-events"
type EventWebhookSpec struct {
	// URL to POST each event to.
	// +kubebuilder:validation:MinLength=8
	// +kubebuilder:validation:MaxLength=2048
	URL string `json:"url"`
	// SecretRef names the HMAC key; its value reaches the server as
	// USERVE_EVENTS_WEBHOOK_SECRET. Required: the receiver must be able to
	// tell the tenant's events from forged ones.
	SecretRef *SecretKeyRef `json:"secretRef"`
	// Events to deliver; empty: all of them.
	// +kubebuilder:validation:MaxItems=7
	// +listType=set
	// +optional
	Events []EventType `json:"events,omitempty"`
}

// Wants reports whether the webhook subscribes to t.
func (w *EventWebhookSpec) Wants(t EventType) bool {
	if len(w.Events) == 0 {
		return true
	}
	for _, e := range w.Events {
		if e == t {
			return true
		}
	}
	return false
}
