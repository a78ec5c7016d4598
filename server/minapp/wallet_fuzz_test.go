package minapp

import (
	"testing"

	"userve.dev/userve/server/store"
)

// FuzzParseTransaction: any body is a valid adjust request or an error
// (a 400 with that message); accepted values are always in range.
func FuzzParseTransaction(f *testing.F) {
	for _, s := range []string{
		`{"user_id":1,"account":"wallet","amount":-5,"title":"t","idempotency_key":"k"}`,
		`{"user_id":"1","account":"wallet","amount":1}`, `{"user_id":1,"account":"x","amount":1}`,
		`{"user_id":1,"account":"currency","amount":1e3}`, `{"user_id":1,"account":"new_wallet","amount":0}`,
		`[]`, `{`, `{"user_id":9223372036854775808,"account":"wallet","amount":1}`, `{"idempotency_key":"a b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseTransaction(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if req.UserID < 1 || req.Amount == 0 || req.Amount > store.MaxAmount || req.Amount < -store.MaxAmount {
			t.Fatalf("out of range accepted: %+v", req)
		}
		if _, ok := store.ParseAccount(string(req.Account)); !ok {
			t.Fatalf("bad account accepted: %q", req.Account)
		}
	})
}
