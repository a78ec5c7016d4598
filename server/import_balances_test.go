package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/openapi/conformance"
	"userve.dev/userve/server/store"
)

// A batch that stops after its opening balances' wallet versions went in,
// before their entries were completed (a crash in the bulk path), leaves
// pending entries and no money counted twice: the replayed batch, once the
// leases ran out, completes them, and every balance is its opening amount
// with one completed entry per account and one wallet version per step.
func TestImportBalancesAfterACrashInTheBulkPath(t *testing.T) {
	e := newEnv(t)
	var b strings.Builder
	for i := 1; i <= 6; i++ {
		fmt.Fprintf(&b, `{"id": %d, "name": "saver_%d", "new_wallet_balance": %d, "currency_sum": %d}`+"\n", i, i, 100*i, i)
	}
	e.crash.At("adjusted")
	r := e.doAuth("POST", "/userve/v1/import/users/?format=thinksns", []byte(b.String()), "Bearer "+adminToken,
		conformance.ExpectUndocumented+": 500") // the injected crash
	e.crash.At("")
	if r.status == http.StatusOK {
		t.Fatalf("the crashed batch answered 200: %s", r.raw)
	}
	pending, _, err := e.store.ListLedger(context.Background(), store.LedgerQuery{Limit: 100})
	if err != nil || len(pending) != 12 {
		t.Fatalf("after the crash: %d entries, %v", len(pending), err)
	}
	for _, en := range pending {
		if en.State != store.StatePending {
			t.Fatalf("entry %d is %s after the crash, want pending", en.ID, en.State)
		}
	}
	e.clock.now = e.clock.now.Add(store.DefaultLedgerLease + time.Second)
	for replay := 0; replay < 2; replay++ {
		a := e.importBatch("format=thinksns", []byte(b.String()))
		if a.Skipped != 6 || a.Errors != 0 {
			t.Fatalf("replay %d: %v", replay, a.statuses())
		}
	}
	entries, _, _ := e.store.ListLedger(context.Background(), store.LedgerQuery{Limit: 100})
	if len(entries) != 12 {
		t.Fatalf("%d entries after the replays, want 12", len(entries))
	}
	for _, en := range entries {
		if en.State != store.StateCompleted {
			t.Fatalf("entry %d is %s after the replays", en.ID, en.State)
		}
	}
	for i := int64(1); i <= 6; i++ {
		if got := balances(t, e.store, i); got != [3]int64{0, 100 * i, i} {
			t.Errorf("user %d balances %v", i, got)
		}
		versions, err := e.store.WalletVersions(context.Background(), i)
		if err != nil || len(versions) != 3 {
			t.Errorf("user %d: %d wallet versions (%v), want 3", i, len(versions), err)
		}
	}
}

// Many users' opening balances in one batch, sent by 4 clients at once
// (the same batch, replayed concurrently): each user ends with exactly
// its opening amounts.
func TestImportBalancesUnderConcurrentReplays(t *testing.T) {
	e := newEnv(t)
	var b strings.Builder
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, `{"id": %d, "name": "saver_%d", "wallet_balance": %d, "currency_sum": %d}`+"\n", i, i, 10*i, i)
	}
	body := []byte(b.String())
	done := make(chan int, 4)
	for c := 0; c < 4; c++ {
		go func() {
			r := e.do("POST", "/userve/v1/import/users/?format=thinksns", body)
			done <- r.status
		}()
	}
	for c := 0; c < 4; c++ {
		// 409 (with Retry-After) is a batch whose opening balance another
		// replay holds in progress; the final replay below must settle it.
		if st := <-done; st != http.StatusOK && st != http.StatusServiceUnavailable && st != http.StatusConflict {
			t.Errorf("a concurrent batch answered %d", st)
		}
	}
	e.clock.now = e.clock.now.Add(store.DefaultLedgerLease + time.Second)
	if a := e.importBatch("format=thinksns", body); a.Errors != 0 || a.Created+a.Skipped != 40 {
		t.Fatalf("final replay: %v", a.statuses())
	}
	entries, _, _ := e.store.ListLedger(context.Background(), store.LedgerQuery{Limit: 200})
	if len(entries) != 80 {
		t.Fatalf("%d entries, want 80", len(entries))
	}
	for i := int64(1); i <= 40; i++ {
		if got := balances(t, e.store, i); got != [3]int64{10 * i, 0, i} {
			t.Errorf("user %d balances %v", i, got)
		}
	}
}
