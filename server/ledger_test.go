package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/server/store"
	"userve.dev/userve/server/store/storetest"
	"userve.dev/userve/test/mongofixture"
)

// A wallet credit cut short by a crash (the wallet written, the ledger entry
// still pending) is finished when a server starts, without any request.
func TestStartFinishesStalledLedgerEntries(t *testing.T) {
	e := newEnvWith(t, testSpec(), mongofixture.URI(t), "")
	id := e.createUser(map[string]any{"nickname": "saver"})
	ctx := context.Background()

	e.crash.At("adjusted")
	_, _, err := e.store.Adjust(ctx, store.AdjustRequest{UserID: id, Account: store.AccountWallet, Amount: 50, Key: "crashed"})
	e.crash.At("")
	if !errors.Is(err, storetest.ErrCrash) {
		t.Fatalf("Adjust under a crash: %v", err)
	}
	if state := ledgerState(t, e.store, id); state != store.StatePending {
		t.Fatalf("entry after the crash is %q, want pending", state)
	}
	// The crashed process's lease has run out by the time a new one starts.
	e.clock.now = e.clock.now.Add(store.DefaultLedgerLease + time.Second)

	base, logs, stop := serveStore(t, e.store)
	waitReady(t, base, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for ledgerState(t, e.store, id) != store.StateCompleted {
		if time.Now().After(deadline) {
			t.Fatalf("entry not finished after start; logs:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	w, err := e.store.GetWallet(ctx, id)
	if err != nil || w.Wallet != 50 {
		t.Fatalf("wallet after recovery = %+v, %v (want 50: credited exactly once)", w, err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `"msg":"ledger recovery at start done","finished":1`) {
		t.Errorf("no recovery log line:\n%s", logs)
	}
}

// ledgerState is the state of the user's only ledger entry, read without
// recovering anything on the way.
func ledgerState(t *testing.T, st *store.Store, user int64) string {
	t.Helper()
	entries, _, err := st.ListLedger(context.Background(), store.LedgerQuery{UserID: user, Limit: 10})
	if err != nil || len(entries) != 1 {
		t.Fatalf("ledger of user %d: %v, %v", user, entries, err)
	}
	return entries[0].State
}
