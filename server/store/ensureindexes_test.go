package store_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"userve.dev/userve/server/store"
	"userve.dev/userve/test/mongofixture"
)

// commandCounter counts the commands a store's client sends, by name.
type commandCounter struct {
	mu    sync.Mutex
	names map[string]int
}

func (c *commandCounter) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.names[e.CommandName]++
	}}
}

func (c *commandCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.names
	c.names = map[string]int{}
	return n
}

// connectCounted connects to database with a command counter, as a
// pooled tenant's activation does (Connect, then EnsureIndexes).
func connectCounted(t *testing.T, database string) (*store.Store, *commandCounter) {
	t.Helper()
	c := &commandCounter{names: map[string]int{}}
	s, err := store.Connect(mongofixture.URI(t), database, store.WithCustomFieldIndexes("age"), store.WithMonitors(c.monitor(), nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, c
}

// TestEnsureIndexesOnCurrentIndexesOnlyReads: a store whose indexes all
// exist (every restart, every activation of a pooled tenant) lists them and
// creates nothing; one dropped by hand is found and made again, unique
// constraint included.
func TestEnsureIndexesOnCurrentIndexesOnlyReads(t *testing.T) {
	ctx := ctxT(t)
	db := mongofixture.NewDatabase(t)
	first, err := store.Open(ctx, mongofixture.URI(t), db.Name(), store.WithCustomFieldIndexes("age"))
	if err != nil {
		t.Fatal(err)
	}
	_ = first.Close(ctx)

	s, counted := connectCounted(t, db.Name())
	if err := s.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	sent := counted.take()
	if sent["createIndexes"] != 0 || sent["dropIndexes"] != 0 {
		t.Errorf("EnsureIndexes over current indexes sent %v: want listIndexes only", sent)
	}
	if sent["listIndexes"] == 0 || !s.Ready() {
		t.Errorf("sent %v, ready %v: want the indexes listed and the store ready", sent, s.Ready())
	}

	// Dropped by hand: the next EnsureIndexes makes it again.
	profiles := db.Collection(store.ColProfiles)
	if err := profiles.Indexes().DropOne(ctx, "openid_unique"); err != nil {
		t.Fatal(err)
	}
	s2, counted2 := connectCounted(t, db.Name())
	if err := s2.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	if sent := counted2.take(); sent["createIndexes"] != 1 {
		t.Errorf("after dropping one index EnsureIndexes sent %v: want exactly one createIndexes", sent)
	}
	if _, err := profiles.InsertOne(ctx, bson.D{{Key: "_id", Value: int64(1)}, {Key: store.FieldOpenID, Value: "o-1"}}); err != nil {
		t.Fatal(err)
	}
	_, err = profiles.InsertOne(ctx, bson.D{{Key: "_id", Value: int64(2)}, {Key: store.FieldOpenID, Value: "o-1"}})
	if !mongo.IsDuplicateKeyError(err) {
		t.Errorf("a second profile with the same openid: %v, want a duplicate key error (the unique index made again)", err)
	}
}

// TestEnsureIndexesRefusesAChangedIndex: an index of the right name but
// other keys (changed by hand, or by another version) is not taken for the
// one wanted: EnsureIndexes fails naming it and the store stays not ready
// (MongoDB refused to create ours over it before; FerretDB said yes and
// left openid not unique).
func TestEnsureIndexesRefusesAChangedIndex(t *testing.T) {
	ctx := ctxT(t)
	db := mongofixture.NewDatabase(t)
	first, err := store.Open(ctx, mongofixture.URI(t), db.Name())
	if err != nil {
		t.Fatal(err)
	}
	_ = first.Close(ctx)
	profiles := db.Collection(store.ColProfiles)
	if err := profiles.Indexes().DropOne(ctx, "openid_unique"); err != nil {
		t.Fatal(err)
	}
	// Same name, not unique: a duplicate openid would go through.
	if _, err := profiles.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: store.FieldOpenID, Value: 1}},
		Options: options.Index().SetName("openid_unique")}); err != nil {
		t.Fatal(err)
	}
	s, _ := connectCounted(t, db.Name())
	err = s.EnsureIndexes(ctx)
	if err == nil || !strings.Contains(err.Error(), "openid_unique") {
		t.Errorf("EnsureIndexes over a changed index: %v, want an error naming openid_unique", err)
	}
	if s.Ready() {
		t.Error("the store is ready although its openid index is not unique")
	}
	_, err = profiles.InsertMany(ctx, []any{bson.D{{Key: store.FieldOpenID, Value: "o-1"}}, bson.D{{Key: store.FieldOpenID, Value: "o-1"}}})
	if err != nil {
		t.Fatal(err) // the point: this index does not hold openids unique
	}
}

// EnsureUniqueIndexes makes only the unique indexes (the store may then
// serve: Ready) and leaves the others to EnsureIndexes (Indexed).
func TestEnsureUniqueIndexesMakesTheUniqueOnesFirst(t *testing.T) {
	ctx := ctxT(t)
	db := mongofixture.NewDatabase(t)
	s, counted := connectCounted(t, db.Name())
	if err := s.EnsureUniqueIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.Ready() || s.Indexed() {
		t.Errorf("after EnsureUniqueIndexes: ready %v, indexed %v; want ready, not indexed", s.Ready(), s.Indexed())
	}
	unique := counted.take()["createIndexes"]
	profiles := db.Collection(store.ColProfiles)
	if _, err := profiles.InsertOne(ctx, bson.D{{Key: "_id", Value: int64(1)}, {Key: store.FieldEmail, Value: "a@example.com"}}); err != nil {
		t.Fatal(err)
	}
	_, err := profiles.InsertOne(ctx, bson.D{{Key: "_id", Value: int64(2)}, {Key: store.FieldEmail, Value: "a@example.com"}})
	if !mongo.IsDuplicateKeyError(err) {
		t.Errorf("a second profile with the same e-mail: %v, want a duplicate key error", err)
	}
	if err := s.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	rest := counted.take()["createIndexes"]
	if !s.Indexed() || unique == 0 || rest <= unique {
		t.Errorf("indexed %v; createIndexes: %d unique first, then %d others; want a few unique ones, then the many others", s.Indexed(), unique, rest)
	}
	t.Logf("createIndexes: %d unique, then %d others", unique, rest)
}
