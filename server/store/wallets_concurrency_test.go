package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"userve.dev/userve/server/store"
)

// Many concurrent credits, each with a fresh idempotency key, must all be
// applied, once each: FerretDB hands out the same ledger id to concurrent
// callers (its $inc is not isolated), and that must never turn a fresh
// key into "still being processed". Afterwards every key is one entry,
// every id is distinct and each balance equals its completed credits.
func TestConcurrentCreditsWithFreshKeysAllSucceed(t *testing.T) {
	// A generous operation timeout: FerretDB over SQLite on this shared
	// machine can queue a write for seconds, which is not what is tested.
	s, _ := open(t, store.WithOpTimeout(30*time.Second))
	ctx := ctxT(t)
	// 32 credits at once (eight per wallet), two rounds: under half the
	// writes of 48 x 3, which FerretDB serializes. On a starved machine
	// 48 x 3 queued single operations past the 30 s timeout, while the
	// retry loops tried no more often than on an idle one.
	const nUsers, workers, perWorker = 4, 32, 2
	users := make([]int64, nUsers)
	for i := range users {
		p := &store.Profile{}
		if err := s.CreateProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
		users[i] = p.ID
	}

	var (
		mu   sync.Mutex
		ids  = map[int64]string{}
		want = map[int64]int64{}
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for op := range perWorker {
				user := users[(w+op)%nUsers]
				amount := int64(1 + w + op)
				key := fmt.Sprintf("fresh-%d-%d", w, op)
				e, created, err := s.Adjust(ctx, store.AdjustRequest{UserID: user, Account: store.AccountWallet, Amount: amount, Key: key})
				switch {
				case errors.Is(err, store.ErrInProgress):
					t.Errorf("key %s (fresh) refused as in progress", key)
					continue
				case err != nil:
					t.Errorf("key %s: %v", key, err)
					continue
				case !created || e.State != store.StateCompleted:
					t.Errorf("key %s: created %v, state %q", key, created, e.State)
				}
				mu.Lock()
				if prev, ok := ids[e.ID]; ok {
					t.Errorf("ledger id %d answered both %s and %s", e.ID, prev, key)
				}
				ids[e.ID] = key
				want[user] += amount
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	entries, total, err := s.ListLedger(ctx, store.LedgerQuery{Limit: 1 << 20, Count: true})
	if err != nil {
		t.Fatal(err)
	}
	if *total != workers*perWorker {
		t.Errorf("%d ledger entries for %d fresh keys", *total, workers*perWorker)
	}
	got := map[int64]int64{}
	for _, e := range entries {
		if e.State != store.StateCompleted {
			t.Errorf("entry %d (%s) left %s", e.ID, e.Key, e.State)
		}
		got[e.UserID] += e.DeltaFor(e.UserID)
	}
	for _, u := range users {
		w, err := s.GetWallet(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if w.Wallet != want[u] || got[u] != want[u] {
			t.Errorf("user %d: balance %d, ledger %d, credited %d", u, w.Wallet, got[u], want[u])
		}
	}
}
