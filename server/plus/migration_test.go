package plus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/server/store"
)

// Imported hashes log in with the source system's password and are then
// replaced by the tenant's bcrypt; a wrong password changes nothing.
func TestImportedPasswordHashesLogInAndAreRehashed(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	body, err := os.ReadFile("../../docs/migration/samples/thinksns-users.json")
	if err != nil {
		t.Fatal(err)
	}
	r := expect(t, rp.call("POST", "/userve/v1/import/users/?format=thinksns", "", string(body), admin), http.StatusOK).obj(t)
	if r["created"].(float64) != 4 {
		t.Fatalf("import: %v", r)
	}
	for _, tc := range []struct {
		login, prefix string
		id            int64
	}{
		{"root@example.com", "$2y$10$", 1}, // PHP password_hash (testdata)
		{"alice", "$argon2id$", 2},
		{"13800000003", "pbkdf2_sha256$", 3},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			before, _ := rp.store.GetProfile(context.Background(), tc.id)
			if !strings.HasPrefix(before.PasswordHash, tc.prefix) {
				t.Fatalf("stored hash %q", before.PasswordHash)
			}
			expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": tc.login, "password": "wrong-password"}), http.StatusUnprocessableEntity)
			if p, _ := rp.store.GetProfile(context.Background(), tc.id); p.PasswordHash != before.PasswordHash {
				t.Fatal("a failed login changed the hash")
			}
			tok := expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": tc.login, "password": "secret123"}), http.StatusOK).obj(t)["access_token"].(string)
			after, _ := rp.store.GetProfile(context.Background(), tc.id)
			if !strings.HasPrefix(after.PasswordHash, "$2a$04$") {
				t.Fatalf("not rehashed to the tenant's bcrypt: %q", after.PasswordHash)
			}
			// The token from that login stays valid, and the new hash works.
			expect(t, rp.call("GET", "/api/v2/user", tok, nil), http.StatusOK)
			expect(t, rp.call("POST", "/api/v2/auth/login", "", map[string]any{"login": tc.login, "password": "secret123"}), http.StatusOK)
		})
	}
}

func TestSelfServiceExport(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	a, ta := tn.register(rp, "anna", "13811110001", "secret-anna")
	b, tb := tn.quickUser(rp, "bert")
	expect(t, rp.call("PUT", fmt.Sprintf("/api/v2/user/followings/%d", b), ta, nil), http.StatusNoContent)
	expect(t, rp.call("PUT", fmt.Sprintf("/api/v2/user/followings/%d", a), tb, nil), http.StatusNoContent)
	expect(t, rp.call("POST", "/userve/v1/wallet/transactions/", "", map[string]any{"user_id": a, "account": "new_wallet", "amount": 500}, admin), http.StatusCreated)
	expect(t, rp.call("POST", "/api/v2/plus-pay/transfer", ta, map[string]any{"user": b, "amount": 120}), http.StatusCreated)

	r := expect(t, rp.call("GET", "/api/v2/user/export", ta, nil), http.StatusOK)
	noSecrets(t, r.body)
	var out struct {
		Profile    map[string]any
		Identities map[string]any
		Followings []int64
		Followers  []int64
		Groups     []any
		Ledger     []map[string]any
		Truncated  bool
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	if out.Profile["name"] != "anna" || out.Identities["phone"] != "13811110001" || out.Identities["name"] != "anna" {
		t.Fatalf("profile/identities: %s", r.body)
	}
	if len(out.Followings) != 1 || out.Followings[0] != b || len(out.Followers) != 1 || out.Followers[0] != b || out.Truncated {
		t.Fatalf("follows: %s", r.body)
	}
	if len(out.Ledger) != 2 || out.Ledger[0]["target_id"].(float64) != float64(b) || out.Ledger[1]["body"] != "credit" {
		t.Fatalf("ledger: %s", r.body)
	}
	expect(t, rp.call("GET", "/api/v2/user/export", "", nil), http.StatusUnauthorized)
}

// Deleting one's account removes the user, its follows in both directions
// (the others' counts exact), memberships and tokens; the ledger entries
// stay, no longer naming the user, so the other side's balance is still
// explained.
func TestSelfServiceDeleteCascades(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	a, ta := tn.register(rp, "anna", "13811110002", "secret-anna")
	b, tb := tn.quickUser(rp, "bert")
	c, tc := tn.quickUser(rp, "cleo")
	for _, f := range []struct {
		tok string
		to  int64
	}{{ta, b}, {ta, c}, {tb, a}, {tc, a}, {tb, c}} {
		expect(t, rp.call("PUT", fmt.Sprintf("/api/v2/user/followings/%d", f.to), f.tok, nil), http.StatusNoContent)
	}
	g := expect(t, rp.call("POST", "/userve/v1/user-group/", "", map[string]any{"name": "club"}, admin), http.StatusCreated).obj(t)
	gid := int64(g["id"].(float64))
	expect(t, rp.call("PATCH", "/userve/v1/miniapp/group/membership/", "", []map[string]any{{"op": "add", "path": "/membership", "users": []int64{a, b}, "groups": []int64{gid}}}, admin), http.StatusNoContent)
	expect(t, rp.call("POST", "/userve/v1/wallet/transactions/", "", map[string]any{"user_id": a, "account": "new_wallet", "amount": 500}, admin), http.StatusCreated)
	expect(t, rp.call("POST", "/api/v2/plus-pay/transfer", ta, map[string]any{"user": b, "amount": 120}), http.StatusCreated)

	// Refused without a proof, or with a wrong one: nothing changes.
	expectInvalid(t, rp.call("DELETE", "/api/v2/user", ta, map[string]any{}), "password")
	expectInvalid(t, rp.call("DELETE", "/api/v2/user", ta, map[string]any{"password": "wrong-one"}), "password")
	tn.clock.Add(61 * time.Second) // past the per-phone resend limit of registration's code
	expect(t, rp.call("POST", "/api/v2/verifycodes", "", map[string]any{"phone": "13811110002"}), http.StatusAccepted)
	code := tn.outbox.code(t, "13811110002")
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	expectInvalid(t, rp.call("DELETE", "/api/v2/user", ta, map[string]any{"verifiable_code": wrong}), "verifiable_code")
	expect(t, rp.call("GET", "/api/v2/user", ta, nil), http.StatusOK)

	expect(t, rp.call("DELETE", "/api/v2/user", ta, map[string]any{"verifiable_code": code}), http.StatusNoContent)

	ctx := context.Background()
	if _, err := rp.store.GetProfile(ctx, a); err == nil {
		t.Fatal("the profile is still there")
	}
	expect(t, rp.call("GET", "/api/v2/user", ta, nil), http.StatusUnauthorized)
	followers, followings, err := rp.store.FollowCounts(ctx, []int64{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	if followers[a] != 0 || followings[a] != 0 || followers[b] != 0 || followings[b] != 1 || followers[c] != 1 || followings[c] != 0 {
		t.Fatalf("counts after delete: followers %v followings %v", followers, followings)
	}
	me := expect(t, rp.call("GET", "/api/v2/user", tb, nil), http.StatusOK).obj(t)
	extra := me["extra"].(map[string]any)
	if extra["followers_count"].(float64) != 0 || extra["followings_count"].(float64) != 1 {
		t.Fatalf("bert's counts: %v", extra)
	}
	grp := expect(t, rp.call("GET", fmt.Sprintf("/userve/v1/user-group/%d/", gid), "", nil, admin), http.StatusOK).obj(t)
	if grp["members"].(float64) != 1 {
		t.Fatalf("group members %v, want 1", grp["members"])
	}
	w, err := rp.store.GetWallet(ctx, b)
	if err != nil || w.NewWallet != 120 {
		t.Fatalf("bert's wallet %+v, %v", w, err)
	}
	entries, _, err := rp.store.ListLedger(ctx, store.LedgerQuery{Limit: 10})
	if err != nil || len(entries) != 2 {
		t.Fatalf("ledger entries %d, %v; want both kept", len(entries), err)
	}
	for _, e := range entries {
		if e.UserID == a || e.To == a || containsID(e.Parties, a) {
			t.Fatalf("entry %d still names the deleted user: %+v", e.ID, e)
		}
	}
	orders := expect(t, rp.call("GET", "/api/v2/plus-pay/orders", tb, nil), http.StatusOK).list(t)
	if len(orders) != 1 || orders[0]["amount"].(float64) != 120 || orders[0]["target_id"].(float64) != 0 {
		t.Fatalf("bert's orders: %v", orders)
	}
}

func containsID(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
