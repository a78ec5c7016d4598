package store_test

import (
	"maps"
	"sync"
	"testing"

	"userve.dev/userve/server/store"
)

func follow(t *testing.T, s *store.Store, follower, followee int64, want bool) {
	t.Helper()
	if changed, err := s.Follow(ctxT(t), follower, followee); err != nil || changed != want {
		t.Fatalf("Follow(%d, %d) = %v, %v; want %v", follower, followee, changed, err, want)
	}
}

// Both counts of many users come from one call and agree with the edges,
// after repeated follows and unfollows; users without edges count zero.
func TestFollowCountsOfManyUsers(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	for _, e := range [][2]int64{{1, 2}, {3, 2}, {2, 1}, {4, 2}, {2, 4}, {1, 3}} {
		follow(t, s, e[0], e[1], true)
	}
	follow(t, s, 1, 2, false) // twice: nothing changes
	if changed, err := s.Unfollow(ctx, 4, 2); err != nil || !changed {
		t.Fatalf("Unfollow(4, 2) = %v, %v", changed, err)
	}
	if changed, err := s.Unfollow(ctx, 5, 1); err != nil || changed {
		t.Fatalf("unfollowing a stranger: %v, %v", changed, err)
	}

	followers, followings, err := s.FollowCounts(ctx, []int64{1, 2, 3, 4, 5})
	if err != nil {
		t.Fatal(err)
	}
	wantFollowers := map[int64]int64{1: 1, 2: 2, 3: 1, 4: 1}
	wantFollowings := map[int64]int64{1: 2, 2: 2, 3: 1}
	if !maps.Equal(followers, wantFollowers) || !maps.Equal(followings, wantFollowings) {
		t.Fatalf("followers %v, followings %v; want %v, %v", followers, followings, wantFollowers, wantFollowings)
	}
	for _, u := range []int64{1, 2, 3, 4, 5} {
		fr, fg, err := s.FollowCounts(ctx, []int64{u})
		if err != nil || fr[u] != wantFollowers[u] || fg[u] != wantFollowings[u] || len(fr)+len(fg) > 2 {
			t.Errorf("user %d alone: followers %v, followings %v, %v", u, fr, fg, err)
		}
	}
	if fr, fg, err := s.FollowCounts(ctx, nil); err != nil || len(fr)+len(fg) != 0 {
		t.Errorf("no users: %v, %v, %v", fr, fg, err)
	}
}

// Concurrent follows, repeated follows and unfollows leave counts equal to
// the edges: nothing is lost as a $inc counter would be on FerretDB.
func TestFollowCountsStayExactUnderConcurrency(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	const star, fans = 1000, 24
	var wg sync.WaitGroup
	for fan := int64(1); fan <= fans; fan++ {
		wg.Go(func() {
			for range 2 { // the second follow changes nothing
				if _, err := s.Follow(ctx, fan, star); err != nil {
					t.Error(err)
				}
			}
			if _, err := s.Follow(ctx, star, fan); err != nil {
				t.Error(err)
			}
			if fan%3 == 0 {
				for range 2 { // the second unfollow changes nothing
					if _, err := s.Unfollow(ctx, fan, star); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	followers, followings, err := s.FollowCounts(ctx, []int64{star, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	if followers[star] != fans-fans/3 || followings[star] != fans {
		t.Errorf("star: %d followers, %d followings; want %d, %d", followers[star], followings[star], fans-fans/3, fans)
	}
	if followings[3] != 0 || followers[3] != 1 || followings[4] != 1 || followers[4] != 1 {
		t.Errorf("fans 3 and 4: followers %v, followings %v", followers, followings)
	}
}

// FollowsAll answers several edges in one query; FollowRelations is built
// on it.
func TestFollowsAllAndRelations(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	follow(t, s, 1, 2, true)
	follow(t, s, 3, 1, true)
	exist, err := s.FollowsAll(ctx, []store.FollowEdge{{1, 2}, {2, 1}, {3, 1}, {1, 3}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[store.FollowEdge]bool{{1, 2}: true, {3, 1}: true}
	if !maps.Equal(exist, want) {
		t.Fatalf("FollowsAll = %v, want %v", exist, want)
	}
	following, follower, err := s.FollowRelations(ctx, 1, []int64{2, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(following, map[int64]bool{2: true}) || !maps.Equal(follower, map[int64]bool{3: true}) {
		t.Fatalf("relations of 1: following %v, follower %v", following, follower)
	}
}
