package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"userve.dev/userve/server/store"
	"userve.dev/userve/test/mongofixture"
)

func TestMain(m *testing.M) { os.Exit(mongofixture.Run(m)) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// open opens a store on a fresh database; clock starts at 1_600_000_000.
func open(t *testing.T, opts ...store.Option) (*store.Store, *time.Time) {
	t.Helper()
	db := mongofixture.NewDatabase(t)
	now := time.Unix(1_600_000_000, 0)
	opts = append([]store.Option{store.WithClock(func() time.Time { return now })}, opts...)
	s, err := store.Open(ctxT(t), mongofixture.URI(t), db.Name(), opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, &now
}

func TestOpenIsIdempotentAndCreatesIndexes(t *testing.T) {
	db := mongofixture.NewDatabase(t)
	ctx := ctxT(t)
	// Replicas start at once: concurrent Opens of one database all succeed.
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() {
			s, err := store.Open(ctx, mongofixture.URI(t), db.Name(), store.WithCustomFieldIndexes("age"))
			if err == nil {
				err = s.Close(ctx)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
	s, err := store.Open(ctx, mongofixture.URI(t), db.Name(), store.WithCustomFieldIndexes("age"))
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer s.Close(ctx)
	if !s.Ready() {
		t.Fatal("Ready is false after Open")
	}
	cur, err := db.Collection(store.ColProfiles).Indexes().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var idx []bson.M
	if err := cur.All(ctx, &idx); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range idx {
		names = append(names, i["name"].(string))
	}
	for _, want := range []string{"openid_unique", "unionid_unique", "username_unique", "email_unique",
		"phone_unique", "created_at", "updated_at", "gender_created_at", "gender_id", "nickname", "groups_id", "custom_age"} {
		if !slices.Contains(names, want) {
			t.Errorf("index %q missing; have %v", want, names)
		}
	}
}

// NextID may repeat on FerretDB (lost updates), but creates stay unique.
func TestConcurrentCreatesGetDistinctIDs(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			p := &store.Profile{}
			if err := s.CreateProfile(ctx, p); err != nil {
				t.Error(err)
				return
			}
			g := &store.Group{Name: "g"}
			if err := s.CreateGroup(ctx, g); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[p.ID] || seen[-g.ID] {
				t.Errorf("id handed out twice: profile %d, group %d", p.ID, g.ID)
			}
			seen[p.ID], seen[-g.ID] = true, true
		})
	}
	wg.Wait()
	page, err := s.ListProfiles(ctx, store.ProfileQuery{Limit: 100, Count: true})
	if err != nil || *page.Total != 20 {
		t.Fatalf("profiles after 20 concurrent creates: %v, %v", page, err)
	}
}

func TestCreateProfileConflictsNameTheField(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	first := &store.Profile{OpenID: "o", UnionID: "u", Username: "name", Email: "a@b.c", Phone: "123456"}
	if err := s.CreateProfile(ctx, first); err != nil {
		t.Fatal(err)
	}
	// Users without any unique value do not collide (sparse indexes).
	for range 2 {
		if err := s.CreateProfile(ctx, &store.Profile{Nickname: "anon"}); err != nil {
			t.Fatalf("second profile without unique values: %v", err)
		}
	}
	cases := map[string]*store.Profile{
		store.FieldOpenID:   {OpenID: "o"},
		store.FieldUnionID:  {UnionID: "u"},
		store.FieldUsername: {Username: "name"},
		store.FieldEmail:    {Email: "a@b.c"},
		store.FieldPhone:    {Phone: "123456"},
	}
	for field, p := range cases {
		err := s.CreateProfile(ctx, p)
		var ce *store.ConflictError
		if !errors.Is(err, store.ErrConflict) || !errors.As(err, &ce) || ce.Field != field {
			t.Errorf("duplicate %s: got %v, want a conflict naming %s", field, err, field)
		}
	}
	got, err := s.GetProfile(ctx, first.ID)
	if err != nil || got.OpenID != "o" || got.Created.Unix() != 1_600_000_000 || got.Groups == nil {
		t.Fatalf("GetProfile = %+v, %v", got, err)
	}
	if _, err := s.GetProfile(ctx, 999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing profile: %v", err)
	}
	byEmail, err := s.FindProfileBy(ctx, store.FieldEmail, "a@b.c")
	if err != nil || byEmail.ID != first.ID {
		t.Fatalf("FindProfileBy email = %v, %v", byEmail, err)
	}
}

func TestCustomFieldsRoundTrip(t *testing.T) {
	s, now := open(t)
	ctx := ctxT(t)
	bday := time.Date(2000, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	p := &store.Profile{Custom: map[string]any{
		"s": "x", "i": int64(7), "f": 1.5, "b": true, "d": bday,
		"a": []any{"x", int64(1)}, "o": map[string]any{"k": map[string]any{"n": int64(2)}},
	}}
	if err := s.CreateProfile(ctx, p); err != nil {
		t.Fatal(err)
	}
	*now = now.Add(time.Hour)
	got, err := s.UpdateCustomFields(ctx, p.ID, map[string]any{"i": int64(8)}, []string{"s"})
	if err != nil {
		t.Fatal(err)
	}
	c := got.Custom
	if _, ok := c["s"]; ok {
		t.Errorf("s not unset: %v", c)
	}
	if c["i"] != int64(8) || c["f"] != 1.5 || c["b"] != true || !c["d"].(time.Time).Equal(bday) {
		t.Errorf("scalars: %#v", c)
	}
	if a := c["a"].([]any); len(a) != 2 || a[0] != "x" || a[1] != int64(1) {
		t.Errorf("array: %#v", c["a"])
	}
	if o := c["o"].(map[string]any)["k"].(map[string]any); o["n"] != int64(2) {
		t.Errorf("object: %#v", c["o"])
	}
	if got.Updated.Unix() != 1_600_003_600 || got.Created.Unix() != 1_600_000_000 {
		t.Errorf("times: created %v updated %v", got.Created, got.Updated)
	}
	if _, err := s.UpdateCustomFields(ctx, 999, map[string]any{"i": int64(1)}, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update of a missing user: %v", err)
	}
}

// TestFilterOperators runs every operator against the store.
func TestFilterOperators(t *testing.T) {
	s, now := open(t)
	ctx := ctxT(t)
	mk := func(nick string, gender int64, groups []int64, custom map[string]any) int64 {
		p := &store.Profile{Nickname: nick, Gender: gender, Groups: groups, Custom: custom}
		if err := s.CreateProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
		*now = now.Add(time.Minute)
		return p.ID
	}
	a := mk("Tommy", 1, []int64{1, 2}, map[string]any{"age": int64(20), "tags": []any{"x", "y"}})
	b := mk("tom", 2, []int64{2}, map[string]any{"age": int64(30)})
	c := mk("Anna", 0, nil, nil)
	t0 := time.Unix(1_600_000_000, 0)
	cases := []struct {
		name string
		f    store.Filter
		want []int64
	}{
		{"all", store.Filter{}, []int64{a, b, c}},
		{"eq", store.Where(store.FieldNickname, store.OpEq, "tom"), []int64{b}},
		{"ne", store.Where(store.FieldGender, store.OpNe, int64(1)), []int64{b, c}},
		{"lt", store.Where(store.FieldCreatedAt, store.OpLt, t0.Add(time.Minute)), []int64{a}},
		{"lte", store.Where(store.FieldCreatedAt, store.OpLte, t0.Add(time.Minute)), []int64{a, b}},
		{"gt", store.Where(store.FieldCreatedAt, store.OpGt, t0.Add(time.Minute)), []int64{c}},
		{"gte", store.Where(store.FieldCreatedAt, store.OpGte, t0.Add(time.Minute)), []int64{b, c}},
		{"in", store.Where(store.FieldGender, store.OpIn, []any{int64(0), int64(2)}), []int64{b, c}},
		{"nin", store.Where(store.FieldGender, store.OpNin, []any{int64(0), int64(2)}), []int64{a}},
		{"contains is case-sensitive", store.Where(store.FieldNickname, store.OpContains, "om"), []int64{a, b}},
		{"contains regex chars literally", store.Where(store.FieldNickname, store.OpContains, ".*"), nil},
		{"isnull true", store.Where(store.CustomFieldPath("age"), store.OpIsNull, true), []int64{c}},
		{"isnull false", store.Where(store.CustomFieldPath("age"), store.OpIsNull, false), []int64{a, b}},
		{"array holds", store.Where(store.FieldGroups, store.OpEq, int64(1)), []int64{a}},
		{"array in", store.Where(store.FieldGroups, store.OpIn, []any{int64(2), int64(9)}), []int64{a, b}},
		{"custom array holds", store.Where(store.CustomFieldPath("tags"), store.OpEq, "y"), []int64{a}},
		{"and", store.All(store.Where(store.FieldGroups, store.OpEq, int64(2)), store.Where(store.CustomFieldPath("age"), store.OpGt, int64(25))), []int64{b}},
		{"or", store.Filter{Or: []store.Filter{store.Where(store.FieldNickname, store.OpEq, "Anna"), store.Where(store.CustomFieldPath("age"), store.OpEq, int64(20))}}, []int64{a, c}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.ListProfiles(ctx, store.ProfileQuery{Filter: tc.f, Limit: 10, Count: true})
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, p := range page.Profiles {
				got = append(got, p.ID)
			}
			if !slices.Equal(got, tc.want) || *page.Total != int64(len(tc.want)) {
				t.Fatalf("got %v (total %d), want %v", got, *page.Total, tc.want)
			}
		})
	}
}

func TestListPagingAndSort(t *testing.T) {
	s, now := open(t)
	ctx := ctxT(t)
	for range 5 {
		if err := s.CreateProfile(ctx, &store.Profile{}); err != nil {
			t.Fatal(err)
		}
		*now = now.Add(-time.Minute) // later ids are older
	}
	page, err := s.ListProfiles(ctx, store.ProfileQuery{Sort: []store.SortKey{{Field: store.FieldCreatedAt}}, Limit: 2, Offset: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Profiles) != 2 || page.Profiles[0].ID != 4 || page.Profiles[1].ID != 3 || !page.More || page.Total != nil {
		t.Fatalf("page = %+v", page)
	}
	page, err = s.ListProfiles(ctx, store.ProfileQuery{Sort: []store.SortKey{{Field: store.FieldID, Desc: true}}, Limit: 2, Offset: 4})
	if err != nil || len(page.Profiles) != 1 || page.Profiles[0].ID != 1 || page.More {
		t.Fatalf("last page = %+v, %v", page, err)
	}
	page, err = s.ListProfiles(ctx, store.ProfileQuery{Limit: 2, Offset: 50, Count: true})
	if err != nil || len(page.Profiles) != 0 || page.More || *page.Total != 5 {
		t.Fatalf("past the end = %+v, %v", page, err)
	}
	// The total comes from the page when the page tells it, else from a
	// count; both must give the same answer.
	for _, tc := range []struct {
		limit, offset int64
		filter        store.Filter
		want          int64
	}{
		{limit: 2, offset: 0, want: 5},  // full page: counted
		{limit: 2, offset: 4, want: 5},  // last page: 4 + 1
		{limit: 10, offset: 0, want: 5}, // the only page
		{limit: 10, offset: 0, filter: store.Where(store.FieldID, store.OpGt, int64(99)), want: 0}, // nothing matches
		{limit: 2, offset: 3, filter: store.Where(store.FieldID, store.OpLte, int64(4)), want: 4},  // last page of a filter
	} {
		page, err := s.ListProfiles(ctx, store.ProfileQuery{Filter: tc.filter, Limit: tc.limit, Offset: tc.offset, Count: true})
		if err != nil {
			t.Fatal(err)
		}
		if page.Total == nil || *page.Total != tc.want {
			t.Errorf("limit %d offset %d: total %v; want %d", tc.limit, tc.offset, page.Total, tc.want)
		}
	}
	if _, err := s.ListProfiles(ctx, store.ProfileQuery{Limit: 2, Filter: store.Where("password_hash", store.OpEq, "x")}); err == nil {
		t.Fatal("a filter on password_hash was accepted")
	}
}

func TestGroupsAndMembership(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	parent := &store.Group{Name: "parent"}
	if err := s.CreateGroup(ctx, parent); err != nil {
		t.Fatal(err)
	}
	child := &store.Group{Name: "child", Parent: &parent.ID}
	if err := s.CreateGroup(ctx, child); err != nil {
		t.Fatal(err)
	}
	u1, u2 := &store.Profile{}, &store.Profile{}
	for _, p := range []*store.Profile{u1, u2} {
		if err := s.CreateProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddMembers(ctx, []int64{u1.ID, u2.ID}, []int64{parent.ID, child.ID}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMembers(ctx, []int64{u1.ID}, []int64{parent.ID}); err != nil { // again: no duplicates
		t.Fatal(err)
	}
	if err := s.RemoveMembers(ctx, []int64{u2.ID}, []int64{child.ID}); err != nil {
		t.Fatal(err)
	}
	g, err := s.GetGroup(ctx, parent.ID)
	if err != nil || g.Members != 2 {
		t.Fatalf("parent = %+v, %v", g, err)
	}
	p1, _ := s.GetProfile(ctx, u1.ID)
	if !slices.Equal(p1.Groups, []int64{parent.ID, child.ID}) {
		t.Fatalf("u1 groups = %v", p1.Groups)
	}
	page, err := s.ListGroups(ctx, store.GroupQuery{Parent: &parent.ID, Limit: 10})
	if err != nil || len(page.Groups) != 1 || page.Groups[0].ID != child.ID || page.Groups[0].Members != 1 || page.Total != 1 {
		t.Fatalf("children = %+v, %v", page, err)
	}
	missing, err := s.MissingGroups(ctx, []int64{parent.ID, 77})
	if err != nil || !slices.Equal(missing, []int64{77}) {
		t.Fatalf("MissingGroups = %v, %v", missing, err)
	}
	n, err := s.DeleteGroups(ctx, []int64{parent.ID, 77})
	if err != nil || n != 1 {
		t.Fatalf("DeleteGroups = %d, %v", n, err)
	}
	p1, _ = s.GetProfile(ctx, u1.ID)
	if !slices.Equal(p1.Groups, []int64{child.ID}) {
		t.Fatalf("u1 groups after delete = %v", p1.Groups)
	}
	c, err := s.GetGroup(ctx, child.ID)
	if err != nil || c.Parent != nil {
		t.Fatalf("child after its parent's delete = %+v, %v", c, err)
	}
}

func TestDeleteUserRunsCleanupsFirst(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	p := &store.Profile{Groups: []int64{1}}
	if err := s.CreateProfile(ctx, p); err != nil {
		t.Fatal(err)
	}
	var cleaned []int64
	store.RegisterUserCleanup(func(ctx context.Context, st *store.Store, id int64) error {
		if st == s {
			// The profile is still there while cleanups run (tombstoned:
			// GetProfile no longer finds it).
			if missing, err := st.MissingUsers(ctx, []int64{id}); err != nil || len(missing) > 0 {
				return fmt.Errorf("profile gone before the cleanups: %v %v", missing, err)
			}
			if _, err := st.GetProfile(ctx, id); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("a profile being deleted is still found: %v", err)
			}
			cleaned = append(cleaned, id)
		}
		return nil
	})
	if err := s.DeleteUser(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cleaned, []int64{p.ID}) {
		t.Fatalf("cleanups ran for %v", cleaned)
	}
	if _, err := s.GetProfile(ctx, p.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("profile still there: %v", err)
	}
	if err := s.DeleteUser(ctx, p.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestUnavailableStore(t *testing.T) {
	srv := mongofixture.NewServer(t)
	s, err := store.Open(ctxT(t), srv.URI, "outage")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	srv.Stop()
	ctx := ctxT(t)
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping with MongoDB down: %v", err)
	}
	if _, err := s.GetProfile(ctx, 1); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("GetProfile with MongoDB down: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("store did not recover after MongoDB returned")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
