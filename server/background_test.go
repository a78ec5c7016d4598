package server_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server"
	"userve.dev/userve/server/config"
	"userve.dev/userve/server/store"
	"userve.dev/userve/server/store/storetest"
	"userve.dev/userve/test/mongofixture"
)

// lockedClock is a store clock a test moves while the server's background
// work reads it.
type lockedClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *lockedClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *lockedClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func bareConfig(database string) *config.Config {
	us := &v1alpha1.UserService{Spec: testSpec()}
	us.Name, us.Namespace = "acme", "tenants"
	v1alpha1.SetDefaults(us)
	return &config.Config{Service: us, Database: database, AdminTokens: []config.AdminToken{{Name: "admin-1", Token: adminToken}},
		JWTKey: []byte(jwtKey), Issuer: "tenants/acme"}
}

// A server started with Start (as a pool starts a tenant's) finishes a
// ledger entry whose process died after start-up too, on its own periodic
// sweep, without any request; Close stops it.
func TestStartSweepsTheLedgerPeriodically(t *testing.T) {
	db := mongofixture.NewDatabase(t).Name()
	clock := &lockedClock{now: time.Unix(1_600_000_000, 0)}
	ctx := context.Background()
	var crash storetest.Crash
	st, err := store.Open(ctx, mongofixture.URI(t), db, store.WithClock(clock.Now), store.WithFault(crash.Fault))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	started := make(chan struct{})
	s := server.New(bareConfig(db), st, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		LedgerSweep: 20 * time.Millisecond, Started: func() { close(started) }})
	// Thirty parallel Starts start it once (a second Started would close
	// the channel twice and panic).
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() { defer wg.Done(); s.Start(ctx) }()
	}
	wg.Wait()
	t.Cleanup(s.Close)
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("start-up work did not finish")
	}

	p := &store.Profile{Nickname: "saver"}
	if err := st.CreateProfile(ctx, p); err != nil {
		t.Fatal(err)
	}
	id := p.ID
	crash.At("adjusted")
	_, _, err = st.Adjust(ctx, store.AdjustRequest{UserID: id, Account: store.AccountWallet, Amount: 50, Key: "crashed"})
	crash.At("")
	if !errors.Is(err, storetest.ErrCrash) {
		t.Fatalf("Adjust under a crash: %v", err)
	}
	clock.Add(store.DefaultLedgerLease + time.Second) // the dead holder's lease ends
	deadline := time.Now().Add(30 * time.Second)
	for ledgerState(t, st, id) != store.StateCompleted {
		if time.Now().After(deadline) {
			t.Fatal("the periodic sweep did not finish the entry")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if w, err := st.GetWallet(ctx, id); err != nil || w.Wallet != 50 {
		t.Fatalf("wallet = %+v, %v (want 50: credited once)", w, err)
	}
}

// Close stops the background work even while it waits for a store that
// never answers, and returns once it has ended; a Start after Close does
// nothing.
func TestCloseStopsBackgroundWork(t *testing.T) {
	st, err := store.Connect("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100000", "nowhere")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	s := server.New(bareConfig("nowhere"), st, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Started: func() { t.Error("Started ran without a store") }})
	s.Start(context.Background())
	closed := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for range 30 { // parallel Closes all return once the work has ended
			wg.Add(1)
			go func() { defer wg.Done(); s.Close() }()
		}
		wg.Wait()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return while the store is away")
	}
	s.Start(context.Background())
	s.Close()
}
