package plus_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"userve.dev/userve/server/store"
)

// 32 goroutines over two replicas credit, debit and transfer among eight
// users, sending every request twice (half the time both at once) with the
// same idempotency key. Afterwards: every key is one entry, replays got the
// first answer, balances equal the ledger, nothing went negative.
func TestWalletsUnderConcurrency(t *testing.T) {
	tn := newTenant(t)
	// Wall-clock time and a short lease: a request that failed half-way
	// (FerretDB over SQLite answers "database is locked" and times out
	// under this load) is finished by the client's retry with the same key
	// once the lease has run out, as in production.
	tn.clock.real = true
	tn.ledgerLease = 2 * time.Second
	replicas := []*replica{tn.replica(), tn.replica()}
	// 32 workers keep 32 to 64 requests in flight (every second op is
	// sent twice at once). With 64 a starved machine took over five
	// minutes: FerretDB serializes the writes, requests queued past the
	// store's timeout and answered 503, and their retries queued again
	// (the store's own retry loops tried no more often than when idle).
	const nUsers, workers, opsPerWorker = 8, 32, 2
	users := make([]int64, nUsers)
	tokens := make([]string, nUsers)
	for i := range users {
		users[i], tokens[i] = tn.quickUser(replicas[0], fmt.Sprintf("cc_user%d", i))
		expect(t, adminTx(replicas[0], map[string]any{"user_id": users[i], "account": "new_wallet", "amount": 100}), http.StatusCreated)
	}

	var (
		created, refused, retried409, replays, retriedFailures atomic.Int64
		mu                                                     sync.Mutex
		firstID                                                = map[string]float64{}
	)
	send := func(rp *replica, kind, key string, from, to int, amount int64) resp {
		for {
			var r resp
			switch kind {
			case "transfer":
				r = rp.call("POST", "/api/v2/plus-pay/transfer", tokens[from], map[string]any{"user": users[to], "amount": amount}, "Idempotency-Key: "+key)
			default:
				r = adminTx(rp, map[string]any{"user_id": users[from], "account": "new_wallet", "amount": amount, "idempotency_key": key})
			}
			switch r.status {
			case http.StatusConflict:
				retried409.Add(1) // the same key is being processed: wait
			case http.StatusInternalServerError, http.StatusServiceUnavailable:
				retriedFailures.Add(1) // outcome unknown: retry the same key
			default:
				return r
			}
			if retried409.Load()+retriedFailures.Load() > 5000 {
				return r
			}
			time.Sleep(time.Duration(50+rand.IntN(100)) * time.Millisecond)
		}
	}
	record := func(t *testing.T, key string, r resp) {
		switch r.status {
		case http.StatusCreated:
			m := r.obj(t)
			id := m["id"]
			if o, ok := m["order"].(map[string]any); ok {
				id = o["id"]
			}
			mu.Lock()
			defer mu.Unlock()
			if prev, ok := firstID[key]; ok {
				replays.Add(1)
				if prev != id.(float64) {
					t.Errorf("key %s answered with entries %v and %v", key, prev, id)
				}
				return
			}
			firstID[key] = id.(float64)
			created.Add(1)
		case http.StatusBadRequest, http.StatusUnprocessableEntity:
			refused.Add(1) // a debit or transfer the balance could not cover
		default:
			t.Errorf("key %s: status %d: %s", key, r.status, r.body)
		}
	}

	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			for op := 0; op < opsPerWorker; op++ {
				key := fmt.Sprintf("w%d-op%d", w, op)
				from := rnd.IntN(nUsers)
				to := (from + 1 + rnd.IntN(nUsers-1)) % nUsers
				var kind string
				var amount int64
				switch rnd.IntN(3) {
				case 0:
					kind, amount = "credit", 1+rnd.Int64N(50)
				case 1:
					kind, amount = "debit", -(1 + rnd.Int64N(80))
				default:
					kind, amount = "transfer", 1+rnd.Int64N(60)
				}
				a, b := replicas[rnd.IntN(2)], replicas[rnd.IntN(2)]
				if rnd.IntN(2) == 0 {
					var inner sync.WaitGroup
					var r1, r2 resp
					inner.Add(2)
					go func() { defer inner.Done(); r1 = send(a, kind, key, from, to, amount) }()
					go func() { defer inner.Done(); r2 = send(b, kind, key, from, to, amount) }()
					inner.Wait()
					record(t, key, r1)
					record(t, key, r2)
				} else {
					record(t, key, send(a, kind, key, from, to, amount))
					record(t, key, send(b, kind, key, from, to, amount))
				}
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d workers x %d ops, each sent twice, over 2 replicas in %v: %d entries created, %d replays answered with the same entry, %d refused for funds, %d in-progress (409) retries, %d retries after 500/503",
		workers, opsPerWorker, elapsed.Round(time.Millisecond), created.Load(), replays.Load(), refused.Load(), retried409.Load(), retriedFailures.Load())

	// Nothing is left half-done, and the books balance.
	time.Sleep(tn.ledgerLease + time.Second)
	if _, err := replicas[1].store.RecoverLedger(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, replicas[0], users)
	entries, _, err := replicas[0].store.ListLedger(context.Background(), store.LedgerQuery{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[float64]*store.LedgerEntry{}
	for _, e := range entries {
		byID[float64(e.ID)] = e
	}
	for key, id := range firstID {
		e := byID[id]
		if e == nil || (e.Key != "adjust:"+key && !strings.HasSuffix(e.Key, ":"+key)) {
			t.Errorf("key %s was answered with entry %v, which the ledger holds as %+v", key, id, e)
		}
	}
	if int64(len(entries)) != created.Load()+nUsers {
		t.Errorf("%d ledger entries, %d keys created (+%d seeds)", len(entries), created.Load(), nUsers)
	}
	var total, credits int64
	for i := range users {
		total += balance(t, replicas[i%2], tokens[i], "new_wallet")
	}
	for _, e := range entries {
		if e.Kind == store.KindAdjust && e.State == store.StateCompleted {
			credits += e.Amount
		}
	}
	if total != credits {
		t.Errorf("sum of balances %d != sum of completed credits and debits %d", total, credits)
	}
	t.Logf("sum of balances %d == sum of ledger %d over %d entries", total, credits, len(entries))
}
