package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"userve.dev/userve/server/store"
	"userve.dev/userve/test/mongofixture"
)

func newUser(t *testing.T, s *store.Store) int64 {
	t.Helper()
	p := &store.Profile{}
	if err := s.CreateProfile(ctxT(t), p); err != nil {
		t.Fatal(err)
	}
	return p.ID
}

// A key is applied once; its replays answer with the same entry, even once
// the user is gone; the same key for another amount is refused.
func TestAdjustIsOncePerKey(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	user := newUser(t, s)
	credit := store.AdjustRequest{UserID: user, Account: store.AccountWallet, Amount: 100, Key: "k1"}

	first, created, err := s.Adjust(ctx, credit)
	if err != nil || !created || first.State != store.StateCompleted {
		t.Fatalf("first credit: %+v, created %v, %v", first, created, err)
	}
	again, created, err := s.Adjust(ctx, credit)
	if err != nil || created || again.ID != first.ID || again.State != store.StateCompleted {
		t.Fatalf("replay: %+v, created %v, %v; want entry %d, not created", again, created, err, first.ID)
	}
	if w, err := s.GetWallet(ctx, user); err != nil || w.Wallet != 100 {
		t.Fatalf("wallet after replay = %+v, %v; want 100", w, err)
	}
	other := credit
	other.Amount = 5
	if _, _, err := s.Adjust(ctx, other); !errors.Is(err, store.ErrIdempotencyMismatch) {
		t.Fatalf("same key, other amount: %v, want ErrIdempotencyMismatch", err)
	}
	// A refused debit changes nothing and gives its key back.
	debit := store.AdjustRequest{UserID: user, Account: store.AccountWallet, Amount: -101, Key: "k2"}
	if _, _, err := s.Adjust(ctx, debit); !errors.Is(err, store.ErrInsufficientFunds) {
		t.Fatalf("debit beyond the balance: %v", err)
	}
	debit.Amount = -100
	if e, created, err := s.Adjust(ctx, debit); err != nil || !created || e.State != store.StateCompleted {
		t.Fatalf("debit with the released key: %+v, %v, %v", e, created, err)
	}

	if err := s.DeleteUser(ctx, user); err != nil {
		t.Fatal(err)
	}
	if e, created, err := s.Adjust(ctx, credit); err != nil || created || e.ID != first.ID {
		t.Fatalf("replay after the user was deleted: %+v, created %v, %v; want entry %d", e, created, err, first.ID)
	}
	credit.Key = "k3"
	if _, _, err := s.Adjust(ctx, credit); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("new key for a deleted user: %v, want ErrNotFound", err)
	}
}

// Without concurrency the ledger ids are the counter's: 1, 2, 3, ...
func TestSequentialCreditsTakeConsecutiveLedgerIDs(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	user := newUser(t, s)
	for i := int64(1); i <= 4; i++ {
		e, _, err := s.Adjust(ctx, store.AdjustRequest{UserID: user, Account: store.AccountCurrency, Amount: 1})
		if err != nil || e.ID != i {
			t.Fatalf("credit %d: entry %+v, %v; want id %d", i, e, err, i)
		}
	}
}

// Ledger ids taken while the counter lags (another replica's, or lost
// counter updates on FerretDB) are skipped: concurrent credits still all
// succeed, each under its own id.
func TestCreditsSkipLedgerIDsTakenAheadOfTheCounter(t *testing.T) {
	db := mongofixture.NewDatabase(t)
	ctx := ctxT(t)
	s, err := store.Open(ctx, mongofixture.URI(t), db.Name(), store.WithOpTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(ctx) })
	const taken = 30
	for id := int64(1); id <= taken; id++ {
		if _, err := db.Collection(store.ColLedger).InsertOne(ctx, store.LedgerEntry{
			ID: id, Key: fmt.Sprintf("elsewhere:%d", id), Kind: store.KindAdjust, State: store.StateCompleted,
		}); err != nil {
			t.Fatal(err)
		}
	}
	user := newUser(t, s)
	const credits = 24
	var (
		mu  sync.Mutex
		ids = map[int64]bool{}
		wg  sync.WaitGroup
	)
	for i := range credits {
		wg.Go(func() {
			e, created, err := s.Adjust(ctx, store.AdjustRequest{UserID: user, Account: store.AccountWallet, Amount: 1, Key: fmt.Sprintf("c%d", i)})
			if err != nil || !created {
				t.Errorf("credit %d: created %v, %v", i, created, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if e.ID <= taken || ids[e.ID] {
				t.Errorf("credit %d got ledger id %d (taken: 1..%d and %v)", i, e.ID, taken, ids)
			}
			ids[e.ID] = true
		})
	}
	wg.Wait()
	if w, err := s.GetWallet(ctx, user); err != nil || w.Wallet != credits {
		t.Fatalf("wallet = %+v, %v; want %d", w, err, credits)
	}
}
