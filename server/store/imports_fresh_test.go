package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"userve.dev/userve/server/store"
)

// freshBatch is n ThinkSNS users from id on, each following the user n
// further on (one of the next batch).
func freshBatch(from, n int64) []store.ImportUser {
	var us []store.ImportUser
	for id := from; id < from+n; id++ {
		us = append(us, store.ImportUser{Namespace: "thinksns", SourceID: id,
			Profile: store.Profile{Nickname: fmt.Sprintf("imported_%d", id)}, Followings: []int64{id + n}})
	}
	return us
}

// signupBurst creates 30 users at once (two each) and records their ids.
func signupBurst(ctx context.Context, t *testing.T, s *store.Store, tag string, ids *sync.Map) {
	var wg sync.WaitGroup
	for w := 0; w < 30; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 2; k++ {
				p := &store.Profile{Nickname: fmt.Sprintf("signup_%s_%d_%d", tag, w, k)}
				if err := s.CreateProfile(ctx, p); err != nil {
					t.Errorf("signup: %v", err)
					return
				}
				ids.Store(p.ID, true)
			}
		}()
	}
	wg.Wait()
}

// Signups between an import's batches (30 at a time) take ids the next
// batch's followees name; they never receive those edges: the followees
// skipped by the fresh range are ids no signup can take, and the others
// are looked up. Imported users end with exactly their followers.
// Signups during a batch: imports_marks_test.go.
func TestFreshRangeWithSignupsBetweenBatches(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	const base, n = 5000, 40 // above freshMargin, so the range is used
	var signups sync.Map
	for k, from := range []int64{base, base + n, base + 2*n} {
		results, err := s.ImportUsers(ctx, freshBatch(from, n), store.ImportOptions{Policy: store.ImportSkip})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range results {
			if r.Status != store.ImportCreated {
				t.Fatalf("record %d of batch %d: %+v", i, from, r)
			}
		}
		signupBurst(ctx, t, s, fmt.Sprint(k), &signups)
	}
	var ids []int64
	signups.Range(func(k, _ any) bool { ids = append(ids, k.(int64)); return true })
	for id := int64(base); id < base+3*n; id++ {
		ids = append(ids, id)
	}
	followers, _, err := s.FollowCounts(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, id := range ids {
		_, signup := signups.Load(id)
		if signup && id >= base+3*n && id < base+4*n {
			held++ // a followee of the last batch, taken by a signup
		}
		want := int64(1) // every imported user but the first batch's has one follower
		if signup || id < base+n {
			want = 0
		}
		if followers[id] != want {
			t.Errorf("user %d (signup %v): %d followers, want %d", id, signup, followers[id], want)
		}
	}
	if held == 0 {
		t.Fatal("no signup took a followee's id: the test proves nothing")
	}
}
