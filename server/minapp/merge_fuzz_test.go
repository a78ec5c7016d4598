package minapp

import (
	"strings"
	"testing"
)

// FuzzParseMerge: any body is a valid merge request or an error (a 400
// with that message); accepted ids are positive and distinct.
func FuzzParseMerge(f *testing.F) {
	for _, s := range []string{
		`{"from":1,"into":2}`, `{"from":1,"into":2,"idempotency_key":"k-1"}`, `{"from":"1","into":2}`,
		`{"from":1,"into":1}`, `{"from":0,"into":2}`, `{"from":1.5,"into":2}`, `{"from":1}`, `[]`, `{`,
		`{"from":1,"into":2,"x":3}`, `{"from":1,"into":2,"idempotency_key":""}`, `{"from":9223372036854775808,"into":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseMerge(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if req.From < 1 || req.Into < 1 || req.From == req.Into {
			t.Fatalf("bad ids accepted: %+v", req)
		}
		if req.Key != "" && (!strings.HasPrefix(req.Key, "key:") || strings.ContainsAny(req.Key, " \t\n")) {
			t.Fatalf("bad key accepted: %q", req.Key)
		}
	})
}
