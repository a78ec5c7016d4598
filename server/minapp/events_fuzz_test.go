package minapp

import (
	"net/url"
	"slices"
	"testing"

	"userve.dev/userve/api/v1alpha1"
)

// FuzzParseDeliveriesQuery: any query string is a valid delivery-log query
// or an error naming a parameter (a 400); an accepted one is within the
// limits and names only known event types and statuses.
func FuzzParseDeliveriesQuery(f *testing.F) {
	for _, s := range []string{
		"", "event=user.login&status=dead&user_id=3&since=0&until=9&limit=5&offset=2",
		"event=user.exploded", "status=void", "status=open", "user_id=-1", "since=253402300800", "limit=0", "a=1", "event=a&event=b",
	} {
		f.Add(s)
	}
	lim := Limits{Default: 20, Max: 100}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		eq, err := ParseDeliveriesQuery(q, lim)
		if err != nil {
			if _, ok := err.(*ParamError); !ok {
				t.Fatalf("%q: error %T %v does not name a parameter", raw, err, err)
			}
			return
		}
		known := eq.Event == "" || slices.Contains(v1alpha1.EventTypes(), v1alpha1.EventType(eq.Event))
		if eq.Limit < 1 || eq.Limit > lim.Max || eq.Offset < 0 || eq.UserID < 0 || !known ||
			(eq.State != "" && !slices.Contains(deliveryStatuses, eq.State)) {
			t.Fatalf("%q: accepted %+v", raw, eq)
		}
	})
}
