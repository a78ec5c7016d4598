package store_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"userve.dev/userve/server/store"
)

// A deleted user's id is never given out again by an import: the record
// gets a new id (and is created), so nothing of the deleted user, tokens
// included, can come back under it. On main the import wrote the record
// under the deleted id.
func TestImportNeverReusesDeletedID(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	gone := &store.Profile{Username: "gone"}
	if err := s.CreateProfile(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	rec := store.ImportUser{Namespace: "thinksns", SourceID: gone.ID, Profile: store.Profile{Username: "newcomer"}}
	res, err := s.ImportUsers(ctx, []store.ImportUser{rec}, store.ImportOptions{Policy: store.ImportSkip})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != store.ImportCreated || res[0].UserID == gone.ID || res[0].UserID == 0 {
		t.Fatalf("import of a deleted id: %+v", res[0])
	}
	if _, err := s.GetProfile(ctx, gone.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the deleted id holds a profile again: %v", err)
	}
	p, err := s.FindProfileBy(ctx, store.FieldUsername, "newcomer")
	if err != nil || p.ID != res[0].UserID {
		t.Fatalf("newcomer: %+v %v", p, err)
	}
	// A retry of the same batch finds its own record, under its new id.
	res2, err := s.ImportUsers(ctx, []store.ImportUser{rec}, store.ImportOptions{Policy: store.ImportSkip})
	if err != nil || res2[0].UserID != res[0].UserID {
		t.Fatalf("retry: %+v %v", res2, err)
	}
	// A merged-away user's id is buried the same way.
	f := newMergeFixture(t, s)
	if _, _, _, err := s.MergeUsers(ctx, "", f.from, f.into); err != nil {
		t.Fatal(err)
	}
	if buried, err := s.Tombstoned(ctx, f.from); err != nil || !buried {
		t.Fatalf("merged-away user not tombstoned: %v %v", buried, err)
	}
}

// While a user's data is removed nothing new can be made for it: a
// cleanup step (run mid-deletion) tries a transfer to the user, an adjust
// and a follow; all are refused and leave nothing. On main the profile was
// live until the end and all three went through.
func TestNothingNewForAUserBeingDeleted(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	victim, friend := &store.Profile{Username: "victim"}, &store.Profile{Username: "friend"}
	for _, p := range []*store.Profile{victim, friend} {
		if err := s.CreateProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Adjust(ctx, store.AdjustRequest{UserID: friend.ID, Account: store.AccountNewWallet, Amount: 100, Key: "seed"}); err != nil {
		t.Fatal(err)
	}
	var during []error
	store.RegisterUserCleanup(func(ctx context.Context, st *store.Store, id int64) error {
		if st != s || id != victim.ID {
			return nil
		}
		_, _, err := st.Transfer(ctx, store.TransferRequest{From: friend.ID, To: id, Account: store.AccountNewWallet, Amount: 10, Key: "late"})
		during = append(during, err)
		_, _, err = st.Adjust(ctx, store.AdjustRequest{UserID: id, Account: store.AccountWallet, Amount: 10, Key: "late"})
		during = append(during, err)
		_, err = st.Follow(ctx, friend.ID, id)
		during = append(during, err)
		// Readers no longer see it either.
		page, err := st.ListProfiles(ctx, store.ProfileQuery{Limit: 10})
		if err != nil {
			return err
		}
		for _, p := range page.Profiles {
			if p.ID == id {
				during = append(during, errors.New("listed while being deleted"))
			}
		}
		if byID, err := st.ProfilesByIDs(ctx, []int64{id}); err != nil || len(byID) != 0 {
			during = append(during, fmt.Errorf("found by id while being deleted: %v %v", byID, err))
		}
		return nil
	})
	if err := s.DeleteUser(ctx, victim.ID); err != nil {
		t.Fatal(err)
	}
	for i, err := range during {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("write %d for a user being deleted: %v", i, err)
		}
	}
	if fs, err := s.Followings(ctx, friend.ID, 10, 0); err != nil || len(fs) != 0 {
		t.Fatalf("edge to the deleted user: %v %v", fs, err)
	}
	if w, err := s.GetWallet(ctx, friend.ID); err != nil || w.NewWallet != 100 {
		t.Fatalf("sender's wallet: %+v %v", w, err)
	}
}

// 30 friends follow and pay a user while it is deleted, all at once. When
// the dust settles the deleted user has no edge and no wallet, and every
// sender has its money: a transfer either failed (refused or refunded) or
// credited a wallet that is gone only if it was refunded.
func TestDeletionRacingFollowsAndTransfers(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	victim := &store.Profile{Username: "victim"}
	if err := s.CreateProfile(ctx, victim); err != nil {
		t.Fatal(err)
	}
	const n = 30
	friends := make([]int64, n)
	for i := range friends {
		p := &store.Profile{Username: "friend" + strconv.Itoa(i)}
		if err := s.CreateProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
		friends[i] = p.ID
		if _, _, err := s.Adjust(ctx, store.AdjustRequest{UserID: p.ID, Account: store.AccountNewWallet, Amount: 100, Key: "seed" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 2*n+1)
	for i, f := range friends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := s.Follow(ctx, f, victim.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				errs <- err
			}
			e, _, err := s.Transfer(ctx, store.TransferRequest{From: f, To: victim.ID, Account: store.AccountNewWallet, Amount: 10, Key: "gift" + strconv.Itoa(i)})
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				errs <- err
			case e.State != store.StateCompleted && e.State != store.StateRefunded:
				errs <- fmt.Errorf("transfer ended %s", e.State)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-start
		if err := s.DeleteUser(ctx, victim.ID); err != nil {
			errs <- err
		}
	}()
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// What the race left: no edge to the victim, no wallet version.
	for _, f := range friends {
		fs, err := s.Followings(ctx, f, 10, 0)
		if err != nil || len(fs) != 0 {
			t.Fatalf("friend %d still follows %v (%v)", f, fs, err)
		}
	}
	if vs, err := s.WalletVersions(ctx, victim.ID); err != nil || len(vs) != 0 {
		t.Fatalf("the deleted user has %d wallet versions (%v)", len(vs), err)
	}
	// Credited money is gone with the user; refunded or refused money is
	// back. Either way the ledger explains every sender's balance.
	for _, f := range friends {
		w, err := s.GetWallet(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		entries, _, err := s.ListLedger(ctx, store.LedgerQuery{UserID: f, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, e := range entries {
			sum += e.DeltaFor(f)
		}
		if w.NewWallet != sum {
			t.Fatalf("friend %d: balance %d, ledger says %d", f, w.NewWallet, sum)
		}
	}
}

// A deletion cut off half-way (here a cleanup fails) leaves the user
// tombstoned: not found, its id buried. FinishDeletions, run by the sweep,
// completes it once the grace has passed. On main such a profile stayed
// live, and with it every token of the user.
func TestCutOffDeletionIsFinished(t *testing.T) {
	s, now := open(t)
	ctx := ctxT(t)
	p := &store.Profile{Username: "halfgone", Phone: "13500000001"}
	if err := s.CreateProfile(ctx, p); err != nil {
		t.Fatal(err)
	}
	fail := true
	store.RegisterUserCleanup(func(ctx context.Context, st *store.Store, id int64) error {
		if st == s && id == p.ID && fail {
			return errors.New("crash")
		}
		return nil
	})
	if err := s.DeleteUser(ctx, p.ID); err == nil {
		t.Fatal("the failing cleanup did not fail the deletion")
	}
	if _, err := s.GetProfile(ctx, p.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a half-deleted user is found: %v", err)
	}
	if _, err := s.FindProfileBy(ctx, store.FieldPhone, "13500000001"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("its phone still finds it: %v", err)
	}
	if n, err := s.FinishDeletions(ctx); err != nil || n != 0 {
		t.Fatalf("finished within the grace: %d %v", n, err)
	}
	fail = false
	*now = now.Add(2 * time.Minute)
	if n, err := s.FinishDeletions(ctx); err != nil || n != 1 {
		t.Fatalf("FinishDeletions = %d, %v", n, err)
	}
	if missing, err := s.MissingUsers(ctx, []int64{p.ID}); err != nil || len(missing) != 1 {
		t.Fatalf("profile document still there: %v %v", missing, err)
	}
	if n, err := s.FinishDeletions(ctx); err != nil || n != 0 {
		t.Fatalf("a finished deletion came back: %d %v", n, err)
	}
}
