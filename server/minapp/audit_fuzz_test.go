package minapp

import (
	"net/url"
	"testing"
)

// FuzzParseAuditQuery: any query string is a valid audit query or an error
// naming a parameter (a 400); an accepted one is within the limits.
func FuzzParseAuditQuery(f *testing.F) {
	for _, s := range []string{
		"", "admin=alice&user_id=3&action=updateProfileV20&since=0&until=9&limit=5&offset=2",
		"after=0123456789abcdef01234567", "after=xyz", "user_id=-1", "since=253402300800", "limit=0", "a=1", "admin=a&admin=b",
	} {
		f.Add(s)
	}
	lim := Limits{Default: 20, Max: 100}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		aq, err := ParseAuditQuery(q, lim)
		if err != nil {
			if _, ok := err.(*ParamError); !ok {
				t.Fatalf("%q: error %T %v does not name a parameter", raw, err, err)
			}
			return
		}
		if aq.Limit < 1 || aq.Limit > lim.Max || aq.Offset < 0 || aq.UserID < 0 || len(aq.Admin) > maxAuditFilter || len(aq.Action) > maxAuditFilter {
			t.Fatalf("%q: accepted %+v", raw, aq)
		}
	})
}
