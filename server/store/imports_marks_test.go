package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"userve.dev/userve/server/store"
)

// importFollowersOf imports ten ThinkSNS users (source ids 1000..1009), each
// following source id followee, which is not imported yet.
func importFollowersOf(ctx context.Context, t *testing.T, s *store.Store, followee int64) {
	t.Helper()
	var us []store.ImportUser
	for id := int64(1000); id < 1010; id++ {
		us = append(us, store.ImportUser{Namespace: "thinksns", SourceID: id,
			Profile: store.Profile{Nickname: fmt.Sprintf("follower_%d", id)}, Followings: []int64{followee}})
	}
	importCreated(ctx, t, s, us)
}

func importCreated(ctx context.Context, t *testing.T, s *store.Store, us []store.ImportUser) []store.ImportResult {
	t.Helper()
	results, err := s.ImportUsers(ctx, us, store.ImportOptions{Policy: store.ImportSkip})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if r.Status != store.ImportCreated {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	return results
}

func followersCount(ctx context.Context, t *testing.T, s *store.Store, id int64) int64 {
	t.Helper()
	followers, _, err := s.FollowCounts(ctx, []int64{id})
	if err != nil {
		t.Fatal(err)
	}
	return followers[id]
}

// A signup takes its id, an import then names that id as a followee not
// imported yet (it is free, so the edges point at it), and only then does
// the signup insert its profile. Before import marks the signup kept the
// id and inherited the ten edges; now it gives the id back and takes one
// above everything the import named, and the followee gets its edges.
func TestSignupRacingAnImportGivesTheNamedIDBack(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	x, err := s.TakeNextProfileID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	importFollowersOf(ctx, t, s, x)

	if err := s.InsertProfileAsIs(ctx, &store.Profile{ID: x, Nickname: "signup", Groups: []int64{}}); err != nil {
		t.Fatal(err)
	}
	kept, err := s.KeepUnlessNamed(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	if kept {
		t.Fatalf("the signup kept id %d, which the import names: it has %d followers", x, followersCount(ctx, t, s, x))
	}
	if _, err := s.GetProfile(ctx, x); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the signup's profile %d is still there: %v", x, err)
	}
	signup := &store.Profile{Nickname: "signup"}
	if err := s.CreateProfile(ctx, signup); err != nil {
		t.Fatal(err)
	}
	if signup.ID <= 1009 {
		t.Errorf("the signup's new id %d is not above the ids the import named", signup.ID)
	}
	importCreated(ctx, t, s, []store.ImportUser{{Namespace: "thinksns", SourceID: x, Profile: store.Profile{Nickname: "followee"}}})
	if n := followersCount(ctx, t, s, x); n != 10 {
		t.Errorf("the imported followee %d has %d followers, want 10", x, n)
	}
	if n := followersCount(ctx, t, s, signup.ID); n != 0 {
		t.Errorf("the signup %d has %d followers, want 0", signup.ID, n)
	}
}

// The other order: the signup's profile is in before the import looks the
// id up, so the import writes its edges as pending (the id is somebody
// else's), and then the signup sees the mark and gives the id back. When
// the followee arrives with its source id, the pending edges are settled.
func TestPendingEdgesAreSettledWhenTheHolderGaveTheIDBack(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	x, err := s.TakeNextProfileID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.InsertProfileAsIs(ctx, &store.Profile{ID: x, Nickname: "signup", Groups: []int64{}}); err != nil {
		t.Fatal(err)
	}
	importFollowersOf(ctx, t, s, x)
	if n := followersCount(ctx, t, s, x); n != 0 {
		t.Fatalf("the holder %d of the named id got %d followers", x, n)
	}
	if kept, err := s.KeepUnlessNamed(ctx, x); err != nil || kept {
		t.Fatalf("kept %v, err %v", kept, err)
	}
	results := importCreated(ctx, t, s, []store.ImportUser{{Namespace: "thinksns", SourceID: x, Profile: store.Profile{Nickname: "followee"}}})
	if results[0].UserID != x {
		t.Fatalf("the followee got id %d, want its source id %d", results[0].UserID, x)
	}
	if n := followersCount(ctx, t, s, x); n != 10 {
		t.Errorf("the imported followee %d has %d followers, want 10", x, n)
	}
}

// 32 signups at once run with each of four batches, each batch's users
// following users of the next. No signup ends up with a follower, and
// every imported user but the first batch's has exactly one.
func TestSignupsDuringImportBatchesInheritNoEdges(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	const base, n = 5000, 40
	var signups sync.Map
	var imported []int64
	for k, from := range []int64{base, base + n, base + 2*n, base + 3*n} {
		batch := freshBatch(from, n)
		if k == 3 {
			for i := range batch {
				batch[i].Followings = nil
			}
		}
		var wg sync.WaitGroup
		for w := 0; w < 32; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := &store.Profile{Nickname: fmt.Sprintf("signup_%d_%d", k, w)}
				if err := s.CreateProfile(ctx, p); err != nil {
					t.Errorf("signup: %v", err)
					return
				}
				signups.Store(p.ID, true)
			}()
		}
		for _, r := range importCreated(ctx, t, s, batch) {
			imported = append(imported, r.UserID)
		}
		wg.Wait()
	}

	var ids []int64
	signups.Range(func(k, _ any) bool { ids = append(ids, k.(int64)); return true })
	ids = append(ids, imported...)
	followers, _, err := s.FollowCounts(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, signup := signups.Load(id); signup && followers[id] != 0 {
			t.Errorf("signup %d has %d followers, want 0", id, followers[id])
		}
	}
	for k, id := range imported {
		if want := int64(min(k/n, 1)); followers[id] != want {
			t.Errorf("imported user %d (record %d) has %d followers, want %d", id, k, followers[id], want)
		}
	}
}
