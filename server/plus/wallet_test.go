package plus_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/server/store"
)

const admin = "Authorization: Bearer " + adminToken

// adminTx posts a management wallet transaction.
func adminTx(rp *replica, body any) resp {
	rp.t.Helper()
	return rp.call("POST", "/userve/v1/wallet/transactions/", "", body, admin)
}

func balance(t *testing.T, rp *replica, token, account string) int64 {
	t.Helper()
	m := expect(t, rp.call("GET", "/api/v2/user", token, nil), http.StatusOK).obj(t)
	w := m[account].(map[string]any)
	if account == "currency" {
		return int64(w["sum"].(float64))
	}
	return int64(w["balance"].(float64))
}

func TestWalletAdministration(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	id, tok := tn.quickUser(rp, "payee")

	r := expect(t, adminTx(rp, map[string]any{"user_id": id, "account": "new_wallet", "amount": 100, "title": "top up", "idempotency_key": "k1"}), http.StatusCreated)
	e := r.obj(t)
	if e["amount"] != float64(100) || e["state"] != "completed" || e["idempotency_key"] != "k1" || e["user_id"] != float64(id) || e["account"] != "new_wallet" {
		t.Fatalf("entry = %s", r.body)
	}
	// The same key again: the same entry, nothing changes.
	r2 := expect(t, adminTx(rp, map[string]any{"user_id": id, "account": "new_wallet", "amount": 100, "title": "top up", "idempotency_key": "k1"}), http.StatusCreated)
	if r2.obj(t)["id"] != e["id"] || r2.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay = %s", r2.body)
	}
	if b := balance(t, rp, tok, "new_wallet"); b != 100 {
		t.Fatalf("balance after replay = %d", b)
	}
	// The same key for something else: refused.
	expect(t, adminTx(rp, map[string]any{"user_id": id, "account": "new_wallet", "amount": 5, "idempotency_key": "k1"}), http.StatusBadRequest)
	// A debit beyond the balance: refused, nothing changed; the key stays usable.
	r = expect(t, adminTx(rp, map[string]any{"user_id": id, "account": "new_wallet", "amount": -101, "idempotency_key": "k2"}), http.StatusBadRequest)
	if !strings.Contains(r.obj(t)["error_msg"].(string), "too low") {
		t.Fatalf("refusal = %s", r.body)
	}
	if b := balance(t, rp, tok, "new_wallet"); b != 100 {
		t.Fatalf("balance after refused debit = %d", b)
	}
	expect(t, adminTx(rp, map[string]any{"user_id": id, "account": "new_wallet", "amount": -100, "idempotency_key": "k2"}), http.StatusCreated)
	expect(t, rp.call("POST", "/oserve/v1/wallet/transactions/", "", map[string]any{"user_id": id, "account": "currency", "amount": 9400}, admin), http.StatusCreated)
	expect(t, adminTx(rp, map[string]any{"user_id": id, "account": "wallet", "amount": 90}), http.StatusCreated)
	m := expect(t, rp.call("GET", "/api/v2/user", tok, nil), http.StatusOK).obj(t)
	if m["new_wallet"].(map[string]any)["balance"] != float64(0) || m["new_wallet"].(map[string]any)["total_income"] != float64(100) ||
		m["new_wallet"].(map[string]any)["total_expenses"] != float64(100) || m["currency"].(map[string]any)["sum"] != float64(9400) ||
		m["wallet"].(map[string]any)["balance"] != float64(90) || m["currency"].(map[string]any)["type"] != float64(1) {
		t.Fatalf("wallets = %v %v %v", m["wallet"], m["new_wallet"], m["currency"])
	}

	// Bad input: 400 naming the problem; unknown user 404; no token 401.
	for body, want := range map[string]string{
		`{"account":"wallet","amount":1}`:                                  "user_id",
		`{"user_id":1,"amount":1}`:                                         "account",
		`{"user_id":1,"account":"gold","amount":1}`:                        "account",
		`{"user_id":1,"account":"wallet"}`:                                 "amount",
		`{"user_id":1,"account":"wallet","amount":0}`:                      "amount",
		`{"user_id":1,"account":"wallet","amount":1.5}`:                    "amount",
		`{"user_id":1,"account":"wallet","amount":"7"}`:                    "amount",
		`{"user_id":-1,"account":"wallet","amount":1}`:                     "user_id",
		`{"user_id":1,"account":"wallet","amount":1,"extra":1}`:            "extra",
		`{"user_id":1,"account":"wallet","amount":1e13}`:                   "amount",
		`{"user_id":1,"account":"wallet","amount":1,"idempotency_key":""}`: "idempotency_key",
		`[]`: "JSON",
		`{`:  "JSON",
	} {
		r := expect(t, adminTx(rp, body), http.StatusBadRequest)
		if msg := r.obj(t)["error_msg"].(string); !strings.Contains(msg, want) || r.obj(t)["status"] != "error" {
			t.Errorf("%s: error_msg %q does not name %q", body, msg, want)
		}
	}
	expect(t, adminTx(rp, map[string]any{"user_id": 999999, "account": "wallet", "amount": 1}), http.StatusNotFound)
	expect(t, rp.call("POST", "/userve/v1/wallet/transactions/", "", map[string]any{"user_id": id, "account": "wallet", "amount": 1}), http.StatusUnauthorized)
	expect(t, rp.call("GET", "/userve/v1/wallet/transactions/", "", nil), http.StatusUnauthorized)

	// The ledger listing.
	l := expect(t, rp.call("GET", fmt.Sprintf("/userve/v1/wallet/transactions/?user_id=%d&limit=2", id), "", nil, admin), http.StatusOK).obj(t)
	meta := l["meta"].(map[string]any)
	objs := l["objects"].([]any)
	if meta["total_count"] != float64(4) || meta["limit"] != float64(2) || len(objs) != 2 || meta["next"] == nil || meta["previous"] != nil {
		t.Fatalf("list = %v", l)
	}
	if first := objs[0].(map[string]any); first["account"] != "wallet" || first["amount"] != float64(90) {
		t.Fatalf("newest entry = %v", first)
	}
	l = expect(t, rp.call("GET", "/oserve/v1/wallet/transactions/?account=currency", "", nil, admin), http.StatusOK).obj(t)
	if l["meta"].(map[string]any)["total_count"] != float64(1) {
		t.Fatalf("currency list = %v", l)
	}
	for _, q := range []string{"user_id=x", "account=gold", "limit=-1", "offset=x", "foo=1", "user_id=1&user_id=2"} {
		expect(t, rp.call("GET", "/userve/v1/wallet/transactions/?"+q, "", nil, admin), http.StatusBadRequest)
	}
}

func TestTransferAndOrders(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	a, at := tn.quickUser(rp, "sender")
	b, bt := tn.quickUser(rp, "receiver")
	expect(t, adminTx(rp, map[string]any{"user_id": a, "account": "new_wallet", "amount": 100, "idempotency_key": "seed"}), http.StatusCreated)

	transfer := func(token string, body any, key string) resp {
		if key == "" {
			return rp.call("POST", "/api/v2/plus-pay/transfer", token, body)
		}
		return rp.call("POST", "/api/v2/plus-pay/transfer", token, body, "Idempotency-Key: "+key)
	}
	r := expect(t, transfer(at, map[string]any{"user": b, "amount": 30}, "t1"), http.StatusCreated)
	order := r.obj(t)["order"].(map[string]any)
	if order["amount"] != float64(30) || order["type"] != float64(-1) || order["state"] != float64(1) || order["target_id"] != float64(b) {
		t.Fatalf("order = %s", r.body)
	}
	r2 := expect(t, transfer(at, map[string]any{"user": b, "amount": 30}, "t1"), http.StatusCreated)
	if r2.obj(t)["order"].(map[string]any)["id"] != order["id"] || r2.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay = %s", r2.body)
	}
	if ba, bb := balance(t, rp, at, "new_wallet"), balance(t, rp, bt, "new_wallet"); ba != 70 || bb != 30 {
		t.Fatalf("balances %d/%d, want 70/30", ba, bb)
	}
	// Keys are per sender: b may use "t1" too.
	expect(t, transfer(bt, map[string]any{"user": a, "amount": 5}, "t1"), http.StatusCreated)
	expectInvalid(t, transfer(at, map[string]any{"user": b, "amount": 31}, "t1"), "Idempotency-Key")
	expectInvalid(t, transfer(at, map[string]any{"user": b, "amount": 76}, "t2"), "amount")
	expectInvalid(t, transfer(at, map[string]any{"user": a, "amount": 1}, ""), "user")
	expectInvalid(t, transfer(at, map[string]any{"user": 999999, "amount": 1}, ""), "user")
	expectInvalid(t, transfer(at, map[string]any{"user": b, "amount": 0}, ""), "amount")
	expectInvalid(t, transfer(at, map[string]any{"user": b, "amount": -5}, ""), "amount")
	expectInvalid(t, transfer(at, map[string]any{"user": b, "amount": "x"}, ""), "amount")
	expectInvalid(t, transfer(at, map[string]any{"amount": 1}, ""), "user")
	expectInvalid(t, transfer(at, map[string]any{"user": b, "amount": 1}, "has space"), "Idempotency-Key")
	expect(t, transfer("", map[string]any{"user": b, "amount": 1}, ""), http.StatusUnauthorized)
	if ba, bb := balance(t, rp, at, "new_wallet"), balance(t, rp, bt, "new_wallet"); ba != 75 || bb != 25 {
		t.Fatalf("balances after refusals %d/%d, want 75/25", ba, bb)
	}
	// A refused key may be used again once the money is there.
	expect(t, transfer(at, map[string]any{"user": b, "amount": 75}, "t2"), http.StatusCreated)

	// Orders: the caller's own, newest first, income and expenses.
	l := expect(t, rp.call("GET", "/api/v2/plus-pay/orders", at, nil), http.StatusOK).list(t)
	if len(l) != 4 {
		t.Fatalf("a's orders = %v", l)
	}
	types := []float64{}
	for _, o := range l {
		types = append(types, o["type"].(float64))
		if o["owner_id"] != float64(a) {
			t.Fatalf("order of someone else: %v", o)
		}
	}
	if fmt.Sprint(types) != "[-1 1 -1 1]" {
		t.Fatalf("a's order types = %v", types)
	}
	if l := expect(t, rp.call("GET", "/api/v2/plus-pay/orders?action=income", at, nil), http.StatusOK).list(t); len(l) != 2 {
		t.Fatalf("income = %v", l)
	}
	if l := expect(t, rp.call("GET", "/api/v2/plus-pay/orders?action=expenses&limit=1", at, nil), http.StatusOK).list(t); len(l) != 1 || l[0]["type"] != float64(-1) {
		t.Fatalf("expenses = %v", l)
	}
	after := int64(l[1]["id"].(float64))
	if l := expect(t, rp.call("GET", fmt.Sprintf("/api/v2/plus-pay/orders?after=%d", after), at, nil), http.StatusOK).list(t); len(l) != 2 {
		t.Fatalf("after cursor = %v", l)
	}
	if l := expect(t, rp.call("GET", "/api/v2/plus-pay/orders", bt, nil), http.StatusOK).list(t); len(l) != 3 {
		t.Fatalf("b's orders = %v", l)
	}
	expectInvalid(t, rp.call("GET", "/api/v2/plus-pay/orders?action=x", at, nil), "action")
	expectInvalid(t, rp.call("GET", "/api/v2/plus-pay/orders?after=x", at, nil), "after")
	expectInvalid(t, rp.call("GET", "/api/v2/plus-pay/orders?limit=51", at, nil), "limit")
	expect(t, rp.call("GET", "/api/v2/plus-pay/orders", "", nil), http.StatusUnauthorized)

	expect(t, adminTx(rp, map[string]any{"user_id": a, "account": "currency", "amount": 50, "title": "签到"}), http.StatusCreated)
	cl := expect(t, rp.call("GET", "/api/v2/currency/orders", at, nil), http.StatusOK).list(t)
	if len(cl) != 1 || cl[0]["amount"] != float64(50) || cl[0]["title"] != "签到" || cl[0]["currency"] != float64(1) {
		t.Fatalf("currency orders = %v", cl)
	}

	// A deleted receiver cannot receive.
	if err := rp.store.DeleteUser(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	expectInvalid(t, transfer(at, map[string]any{"user": b, "amount": 1}, ""), "user")
}

// A process dying between the debit and the credit of a transfer: the
// entry stays half-done; whoever comes by after its lease finishes it, and
// a retry with the same key finds it finished, never debits twice.
func TestTransferCrashBetweenHalvesRecovers(t *testing.T) {
	tn := newTenant(t)
	rp := tn.replica()
	other := tn.replica() // a second replica does the recovery
	a, at := tn.quickUser(rp, "crash_a")
	b, bt := tn.quickUser(rp, "crash_b")
	expect(t, adminTx(rp, map[string]any{"user_id": a, "account": "new_wallet", "amount": 100}), http.StatusCreated)

	for _, stage := range []string{"debited", "credited"} {
		t.Run(stage, func(t *testing.T) {
			tn.crash.At(stage)
			key := "crash-" + stage
			r := rp.call("POST", "/api/v2/plus-pay/transfer", at, map[string]any{"user": b, "amount": 10}, "Idempotency-Key: "+key, expectInjected500)
			tn.crash.At("")
			expect(t, r, http.StatusInternalServerError)

			// Half-way: a's money left, b's has (maybe) not arrived.
			ctx := context.Background()
			wa, _ := rp.store.WalletVersions(ctx, a)
			if last := wa[len(wa)-1]; last.NewWallet != 90 && last.NewWallet != 80 {
				t.Fatalf("a after crash: %d", last.NewWallet)
			}
			// While the dead holder's lease runs, a retry is told to wait.
			r = other.call("POST", "/api/v2/plus-pay/transfer", at, map[string]any{"user": b, "amount": 10}, "Idempotency-Key: "+key)
			expect(t, r, http.StatusConflict)

			tn.clock.Add(store.DefaultLedgerLease + time.Second)
			if stage == "debited" {
				// The retry finishes it.
				r = expect(t, other.call("POST", "/api/v2/plus-pay/transfer", at, map[string]any{"user": b, "amount": 10}, "Idempotency-Key: "+key), http.StatusCreated)
				if r.obj(t)["order"].(map[string]any)["state"] != float64(1) {
					t.Fatalf("recovered order = %s", r.body)
				}
			} else {
				// The receiver reading its balance finishes it.
				if got := balance(t, other, bt, "new_wallet"); got != 20 {
					t.Fatalf("b after recovery = %d", got)
				}
				r = expect(t, other.call("POST", "/api/v2/plus-pay/transfer", at, map[string]any{"user": b, "amount": 10}, "Idempotency-Key: "+key), http.StatusCreated)
				if r.header.Get("Idempotent-Replayed") != "true" {
					t.Fatal("retry after recovery was not a replay")
				}
			}
		})
	}
	if ba, bb := balance(t, rp, at, "new_wallet"), balance(t, rp, bt, "new_wallet"); ba != 80 || bb != 20 {
		t.Fatalf("final balances %d/%d, want 80/20", ba, bb)
	}
	checkInvariants(t, rp, []int64{a, b})

	// The startup sweep finishes a crashed transfer nobody asks about.
	tn.crash.At("debited")
	expect(t, rp.call("POST", "/api/v2/plus-pay/transfer", at, map[string]any{"user": b, "amount": 5}, expectInjected500), http.StatusInternalServerError)
	tn.crash.At("")
	tn.clock.Add(store.DefaultLedgerLease + time.Second)
	n, err := other.store.RecoverLedger(context.Background(), 0)
	if err != nil || n != 1 {
		t.Fatalf("RecoverLedger = %d, %v", n, err)
	}
	checkInvariants(t, rp, []int64{a, b})
	wb, _ := rp.store.WalletVersions(context.Background(), b)
	if wb[len(wb)-1].NewWallet != 25 {
		t.Fatalf("b after sweep = %d", wb[len(wb)-1].NewWallet)
	}
}

// checkInvariants: every ledger entry finished; per user and account the
// balance equals the sum of the ledger; no version negative; no step twice.
func checkInvariants(t *testing.T, rp *replica, users []int64) {
	t.Helper()
	ctx := context.Background()
	entries, _, err := rp.store.ListLedger(ctx, store.LedgerQuery{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, e := range entries {
		if !e.Final() {
			t.Errorf("entry %d left %s", e.ID, e.State)
		}
		if keys[e.Key] {
			t.Errorf("key %s has two entries", e.Key)
		}
		keys[e.Key] = true
	}
	steps := map[string]bool{}
	for _, u := range users {
		vs, err := rp.store.WalletVersions(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			if v.Wallet < 0 || v.NewWallet < 0 || v.Currency < 0 {
				t.Errorf("user %d version %d negative: %+v", u, v.Seq, v)
			}
			if v.Step != "" {
				if steps[v.Step] {
					t.Errorf("step %s applied twice", v.Step)
				}
				steps[v.Step] = true
			}
		}
		last := vs[len(vs)-1]
		for _, acct := range []store.Account{store.AccountWallet, store.AccountNewWallet, store.AccountCurrency} {
			var sum int64
			for _, e := range entries {
				if e.Account == acct {
					sum += e.DeltaFor(u)
				}
			}
			if got := last.Balance(acct); got != sum {
				t.Errorf("user %d %s: balance %d, ledger says %d", u, acct, got, sum)
			}
		}
	}
}
