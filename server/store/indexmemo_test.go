package store_test

import (
	"context"
	"testing"

	"userve.dev/userve/server/store"
	"userve.dev/userve/test/mongofixture"
)

// An IndexMemo trusts a recent check of the same indexes only: a client of
// the same URI, database and custom fields sends nothing; one with another
// custom field, or of another database, checks (and makes what is
// missing); after a failed check the next client checks again.
func TestAnIndexMemoTrustsOnlyWhatItChecked(t *testing.T) {
	ctx := ctxT(t)
	db := mongofixture.NewDatabase(t)
	memo := &store.IndexMemo{}
	c := &commandCounter{names: map[string]int{}}
	connect := func(database string, opts ...store.Option) *store.Store {
		t.Helper()
		opts = append(opts, store.WithIndexMemo(memo), store.WithMonitors(c.monitor(), nil))
		s, err := store.Connect(mongofixture.URI(t), database, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		return s
	}
	check := func(what string, s *store.Store, wantListed bool) {
		t.Helper()
		_ = c.take()
		if err := s.EnsureIndexes(ctx); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		sent := c.take()
		if listed := sent["listIndexes"] > 0; listed != wantListed || !s.Ready() || !s.Indexed() {
			t.Errorf("%s sent %v (ready %v, indexed %v): want listed %v, ready and indexed", what, sent, s.Ready(), s.Indexed(), wantListed)
		}
	}
	check("the first client", connect(db.Name(), store.WithCustomFieldIndexes("age")), true)
	check("a client of the same indexes", connect(db.Name(), store.WithCustomFieldIndexes("age")), false)
	if err := connect(db.Name(), store.WithCustomFieldIndexes("age")).EnsureUniqueIndexes(ctx); err != nil || c.take()["listIndexes"] != 0 {
		t.Errorf("the unique check after a full one: %v, or it listed indexes", err)
	}
	check("a client with another custom field", connect(db.Name(), store.WithCustomFieldIndexes("age", "city")), true)
	other := mongofixture.NewDatabase(t)
	check("a client of another database", connect(other.Name(), store.WithCustomFieldIndexes("age", "city")), true)

	// A failed check (another custom field, its client disconnected)
	// forgets the earlier one too: the next client lists again.
	gone := connect(other.Name(), store.WithCustomFieldIndexes("age", "city", "zip"))
	_ = gone.Close(ctx)
	if err := gone.EnsureIndexes(ctx); err == nil {
		t.Fatal("a disconnected client's check succeeded")
	}
	check("a client after a failed check", connect(other.Name(), store.WithCustomFieldIndexes("age", "city")), true)
}
