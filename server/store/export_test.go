package store_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"userve.dev/userve/server/store"
	"userve.dev/userve/server/store/storetest"
)

// Every user of every chunk comes out once, with exactly their followings
// and their latest wallet, whichever chunk the other side of an edge is in.
func TestExportCompletesEveryChunk(t *testing.T) {
	defer store.SetExportChunk(3)()
	s, _ := open(t)
	ctx := ctxT(t)
	const users = 8
	for i := 1; i <= users; i++ {
		if err := s.CreateProfile(ctx, &store.Profile{Nickname: fmt.Sprintf("u%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[int64][]int64{}
	for f := int64(1); f <= users; f++ {
		for _, d := range []int64{1, 3} {
			g := (f+d-1)%users + 1
			follow(t, s, f, g, true)
			want[f] = append(want[f], g)
		}
	}
	for _, a := range []int64{10, 20} { // two versions: the latest counts
		if _, _, err := s.Adjust(ctx, store.AdjustRequest{UserID: 5, Account: store.AccountCurrency, Amount: a, Key: fmt.Sprint("k", a)}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[int64]bool{}
	err := s.ExportUsers(ctx, store.Filter{}, func(u *store.ExportedUser) error {
		id := u.Profile.ID
		if seen[id] {
			t.Errorf("user %d exported twice", id)
		}
		seen[id] = true
		got := slices.Clone(u.Followings)
		slices.Sort(got)
		w := slices.Clone(want[id])
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("user %d followings %v, want %v", id, got, w)
		}
		switch {
		case id == 5 && (u.Wallet == nil || u.Wallet.Currency != 30):
			t.Errorf("user 5 wallet %+v, want currency 30", u.Wallet)
		case id != 5 && u.Wallet != nil:
			t.Errorf("user %d has a wallet %+v", id, u.Wallet)
		}
		return nil
	})
	if err != nil || len(seen) != users {
		t.Fatalf("export: %v, %d users", err, len(seen))
	}
}

// With two exports streaming, 30 more at once are all refused at once with
// ErrExportsBusy (each export holds a chunk in memory); when one ends, the
// next goes through.
func TestAtMostTwoExportsAtOnce(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	if err := s.CreateProfile(ctx, &store.Profile{Nickname: "u"}); err != nil {
		t.Fatal(err)
	}
	release := storetest.HoldExports(s, 2)
	var wg sync.WaitGroup
	var busy atomic.Int32
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.ExportUsers(ctx, store.Filter{}, func(*store.ExportedUser) error { return nil })
			if errors.Is(err, store.ErrExportsBusy) {
				busy.Add(1)
			} else {
				t.Errorf("a third export while two stream: %v", err)
			}
		}()
	}
	wg.Wait()
	if busy.Load() != 30 {
		t.Fatalf("%d of 30 refused", busy.Load())
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := s.ExportUsers(ctx, store.Filter{}, func(*store.ExportedUser) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("the export after the two: %d users, %v", n, err)
	}
}
