package tenantdb

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"

	"userve.dev/userve/test/mongofixture"
)

func TestMain(m *testing.M) { os.Exit(mongofixture.Run(m)) }

func TestPingAndDrop(t *testing.T) {
	ctx := context.Background()
	db := mongofixture.NewDatabase(t)
	if _, err := db.Collection("profiles").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	p := New(0)
	defer p.Close(ctx)
	uri := mongofixture.URI(t)
	if err := p.Ping(ctx, OperatorURI(uri)); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := p.DropDatabase(ctx, OperatorURI(uri), db.Name()); err != nil {
		t.Fatalf("drop: %v", err)
	}
	names, err := db.Client().ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, db.Name()) {
		t.Fatalf("database %s still listed after the drop: %v", db.Name(), names)
	}
	if err := p.DropDatabase(ctx, OperatorURI(uri), db.Name()); err != nil {
		t.Errorf("dropping a missing database: %v", err)
	}
	if p.Len() != 1 {
		t.Errorf("pool holds %d clients for one URI", p.Len())
	}
}

func TestUnreachableServerFailsWithinTheTimeout(t *testing.T) {
	srv := mongofixture.NewServer(t)
	srv.Stop()
	const timeout = time.Second
	p := New(timeout)
	defer p.Close(context.Background())
	start := time.Now()
	if err := p.Ping(context.Background(), OperatorURI(srv.URI)); err == nil {
		t.Fatal("ping of a stopped server succeeded")
	}
	if err := p.DropDatabase(context.Background(), OperatorURI(srv.URI), "x"); err == nil {
		t.Fatal("drop on a stopped server succeeded")
	}
	if elapsed := time.Since(start); elapsed > 4*timeout {
		t.Errorf("two failing calls took %v; each should give up after %v", elapsed, timeout)
	}
	// The same client recovers once the server is back: the failed ping's
	// answer stands PingFresh for every caller, then a new ping is sent.
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(PingFresh + 5*timeout)
	for {
		err := p.Ping(context.Background(), OperatorURI(srv.URI))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ping after restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestParallelPingsShareOne: 30 reconciles pinging the same URI at once
// send one ping between them (10,000 tenants on the default URI sent one
// each per reconcile, queued on a busy server); after PingFresh, another.
func TestParallelPingsShareOne(t *testing.T) {
	var pings atomic.Int32
	p := New(5*time.Second, WithMonitor(&event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName == "ping" {
			pings.Add(1)
		}
	}}))
	defer p.Close(context.Background())
	uri := OperatorURI(mongofixture.URI(t))
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- p.Ping(context.Background(), uri)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := pings.Load(); n != 1 {
		t.Errorf("30 parallel pings sent %d pings, want 1", n)
	}
	now := time.Now().Add(PingFresh)
	p.now = func() time.Time { return now }
	if err := p.Ping(context.Background(), uri); err != nil {
		t.Fatal(err)
	}
	if n := pings.Load(); n != 2 {
		t.Errorf("a ping PingFresh later was answered from the last one (%d pings)", n)
	}
}

func TestInvalidURIDoesNotLeakIt(t *testing.T) {
	p := New(0)
	err := p.Ping(context.Background(), OperatorURI("mongodb://user:s3cret@[bad"))
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v: want an error without the password", err)
	}
	if err := p.DropDatabase(context.Background(), OperatorURI("mongodb://x/"), ""); err == nil {
		t.Fatal("dropping an unnamed database must fail")
	}
}

func TestIdleClientsAreEvicted(t *testing.T) {
	p := New(0)
	defer p.Close(context.Background())
	now := time.Now()
	p.now = func() time.Time { return now }
	if _, err := p.client(OperatorURI("mongodb://127.0.0.1:1/")); err != nil {
		t.Fatal(err)
	}
	now = now.Add(idle + time.Minute)
	if _, err := p.client(OperatorURI("mongodb://127.0.0.1:2/")); err != nil {
		t.Fatal(err)
	}
	if p.Len() != 1 {
		t.Fatalf("pool holds %d clients; the idle one should be gone", p.Len())
	}
}
