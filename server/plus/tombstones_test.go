package plus_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"userve.dev/userve/server/store"
)

// A deleted user's token is refused for good, even after an import brings
// a record with the deleted user's id (and an old created_at, as real
// imports carry): the import gives the record a new id. On main the import
// reused the id and the old token opened the imported account.
func TestDeletedUsersTokenStaysDeadAfterAnImport(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	id, tok := tn.register(rp, "leaver", "13911110001", "secret1")
	refresh := tok
	expect(t, rp.call("DELETE", "/api/v2/user", tok, map[string]any{"password": "secret1"}), http.StatusNoContent)
	expect(t, rp.call("GET", "/api/v2/user", tok, nil), http.StatusUnauthorized)
	rec := fmt.Sprintf(`[{"id": %d, "name": "arrival", "phone": "13911110002", "created_at": "2017-06-02 08:43:54", "updated_at": "2017-06-02 08:43:54"}]`, id)
	r := expect(t, rp.call("POST", "/userve/v1/import/users/?format=thinksns", "", rec, admin), http.StatusOK).obj(t)
	res := r["results"].([]any)[0].(map[string]any)
	if r["created"] != float64(1) || int64(res["user_id"].(float64)) == id {
		t.Fatalf("import of the deleted id: %v", r)
	}
	expect(t, rp.call("GET", "/api/v2/user", tok, nil), http.StatusUnauthorized)
	expect(t, rp.call("POST", "/api/v2/auth/refresh", refresh, nil), http.StatusUnauthorized)
	expect(t, rp.call("GET", "/userve/v2.0/miniapp/user_profile/"+fmtInt(id)+"/", adminToken, nil), http.StatusNotFound)
}

// An end user cannot wedge a merge by sending, as a transfer's
// Idempotency-Key, the key the merge uses internally: the merge's keys are
// in a namespace no client writes. On main the merge then failed (500) on
// every replay.
func TestClientKeyCannotWedgeAMerge(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	from, fromTok := tn.register(rp, "folded", "13911110011", "secret1")
	into, _ := tn.quickUser(rp, "keeper")
	other, _ := tn.quickUser(rp, "bystander")
	expect(t, rp.call("POST", "/userve/v1/wallet/transactions/", "", map[string]any{"user_id": from, "account": "new_wallet", "amount": 500}, admin), http.StatusCreated)
	key := "merge:" + store.MergeKey(from, into) + ":new_wallet"
	expect(t, rp.call("POST", "/api/v2/plus-pay/transfer", fromTok, map[string]any{"user": other, "amount": 1}, "Idempotency-Key: "+key), http.StatusCreated)
	m := expect(t, rp.call("POST", "/userve/v1/user-merge/", adminToken, map[string]any{"from": from, "into": into}), http.StatusOK).obj(t)
	if m["status"] != "completed" {
		t.Fatalf("merge: %v", m)
	}
	wallet, err := rp.store.GetWallet(t.Context(), into)
	if err != nil || wallet.NewWallet != 499 {
		t.Fatalf("into's new_wallet after the merge: %+v %v", wallet, err)
	}
}

// A user whose merge is under way receives nothing: 30 transfers to it at
// once, while the merge is stopped half-way, are all refused and every
// sender keeps its money; the merge then finishes with the balance it
// planned. On main the transfers went through to a wallet about to be
// deleted, and the money was lost.
func TestNoTransfersToAUserBeingMerged(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	from, _ := tn.register(rp, "mergee", "13911110021", "secret1")
	into, _ := tn.quickUser(rp, "merger")
	expect(t, rp.call("POST", "/userve/v1/wallet/transactions/", "", map[string]any{"user_id": from, "account": "new_wallet", "amount": 70}, admin), http.StatusCreated)
	const n = 30
	senders := make([]string, n)
	for i := range senders {
		id, tok := tn.quickUser(rp, "sender"+itoa(i))
		senders[i] = tok
		expect(t, rp.call("POST", "/userve/v1/wallet/transactions/", "", map[string]any{"user_id": id, "account": "new_wallet", "amount": 10}, admin), http.StatusCreated)
	}
	tn.crash.At("identities")
	body := map[string]any{"from": from, "into": into}
	expect(t, rp.call("POST", "/userve/v1/user-merge/", adminToken, body, expectInjected500), http.StatusInternalServerError)
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i, tok := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rp.call("POST", "/api/v2/plus-pay/transfer", tok, map[string]any{"user": from, "amount": 5})
			if r.status == http.StatusUnprocessableEntity && !strings.Contains(string(r.body), "user") {
				t.Errorf("refusal names no user: %s", r.body)
			}
			statuses[i] = r.status
		}()
	}
	wg.Wait()
	for _, s := range statuses {
		if s != http.StatusUnprocessableEntity {
			t.Fatalf("a transfer to a user being merged: %v", statuses)
		}
	}
	tn.crash.At("")
	expect(t, rp.call("POST", "/userve/v1/user-merge/", adminToken, body), http.StatusOK)
	if w, err := rp.store.GetWallet(t.Context(), into); err != nil || w.NewWallet != 70 {
		t.Fatalf("into: %+v %v", w, err)
	}
	for _, tok := range senders {
		if b := balance(t, rp, tok, "new_wallet"); b != 10 {
			t.Fatalf("a sender has %d of its 10", b)
		}
	}
}

// Imports book opening balances under "import:<format>:<id>:<account>";
// a management adjust may not take such a key first (it would stand in for
// the import's balance, or make the import's refuse). On main it could.
func TestImportKeysAreReservedFromAdjusts(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	existing, _ := tn.quickUser(rp, "existing")
	r := expect(t, rp.call("POST", "/userve/v1/wallet/transactions/", "", map[string]any{"user_id": existing, "account": "new_wallet", "amount": 5,
		"idempotency_key": store.OpeningBalanceKey("thinksns:2", store.AccountNewWallet)}, admin), http.StatusBadRequest)
	if !strings.Contains(string(r.body), "import:") {
		t.Fatalf("refusal: %s", r.body)
	}
	rec := `[{"id": 2, "name": "opener", "new_wallet_balance": 250, "created_at": "2018-01-17 06:57:18", "updated_at": "2018-01-17 06:57:18"}]`
	expect(t, rp.call("POST", "/userve/v1/import/users/?format=thinksns", "", rec, admin), http.StatusOK)
	if w, err := rp.store.GetWallet(t.Context(), 2); err != nil || w.NewWallet != 250 {
		t.Fatalf("opening balance: %+v %v", w, err)
	}
}
