package tenantdb

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

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
	// The same client recovers once the server is back.
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.Ping(context.Background(), OperatorURI(srv.URI)); err != nil {
		t.Fatalf("ping after restart: %v", err)
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
