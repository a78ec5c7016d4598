package store_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"userve.dev/userve/server/store"
)

// Signups racing an import (30 at a time, all through it) never receive
// a follow edge meant for an imported user: the followees skipped by the
// fresh range are ids no signup can take, and the others are looked up.
// Imported users end with exactly their followers.
func TestFreshRangeUnderConcurrentSignups(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	const base, n = 5000, 40 // above freshMargin, so the range is used
	batch := func(from int64) []store.ImportUser {
		var us []store.ImportUser
		for id := from; id < from+n; id++ {
			// Everyone follows the user n further on (the next batch's).
			us = append(us, store.ImportUser{Namespace: "thinksns", SourceID: id,
				Profile: store.Profile{Nickname: fmt.Sprintf("imported_%d", id)}, Followings: []int64{id + n}})
		}
		return us
	}
	var stop atomic.Bool
	var signups sync.Map // id -> true
	var wg sync.WaitGroup
	for w := 0; w < 30; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; !stop.Load(); k++ {
				p := &store.Profile{Nickname: fmt.Sprintf("signup_%d_%d", w, k)}
				if err := s.CreateProfile(ctx, p); err == nil {
					signups.Store(p.ID, true)
				}
				time.Sleep(5 * time.Millisecond) // keep the store able to serve the import
			}
		}()
	}
	for _, from := range []int64{base, base + n, base + 2*n} {
		results, err := s.ImportUsers(ctx, batch(from), store.ImportOptions{Policy: store.ImportSkip})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range results {
			if r.Status != store.ImportCreated {
				t.Fatalf("record %d of batch %d: %+v", i, from, r)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	var ids []int64
	signups.Range(func(k, _ any) bool { ids = append(ids, k.(int64)); return true })
	for id := int64(base); id < base+3*n; id++ {
		ids = append(ids, id)
	}
	followers, _, err := s.FollowCounts(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		_, signup := signups.Load(id)
		want := int64(1) // every imported user but the first batch's has one follower
		if signup || id < base+n {
			want = 0
		}
		if followers[id] != want {
			t.Errorf("user %d (signup %v): %d followers, want %d", id, signup, followers[id], want)
		}
	}
	if len(ids) == 3*n {
		t.Fatal("no signup went in during the import")
	}
}
