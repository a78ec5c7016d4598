package store_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"userve.dev/userve/server/store"
	"userve.dev/userve/server/store/storetest"
)

// mergeFixture: from (WeChat identity, phone, groups 1 and 2, follows,
// money) and into (a name, an e-mail, group 2), and a third user x.
type mergeFixture struct{ from, into, x int64 }

func newMergeFixture(t *testing.T, s *store.Store) mergeFixture {
	t.Helper()
	ctx := ctxT(t)
	from := &store.Profile{OpenID: "o-from", UnionID: "u-from", Phone: "13800000000", PhoneVerified: true, Groups: []int64{1, 2}, PasswordHash: "hash-from",
		Nickname: "From", City: "Shenzhen", Gender: 2}
	into := &store.Profile{Username: "intouser", Email: "into@example.com", EmailVerified: true, Groups: []int64{2}, PasswordHash: "hash-into",
		Nickname: "Into"}
	x := &store.Profile{Username: "xuser"}
	for _, p := range []*store.Profile{from, into, x} {
		if err := s.CreateProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range [][2]int64{{from.ID, x.ID}, {x.ID, from.ID}, {from.ID, into.ID}, {into.ID, from.ID}, {into.ID, x.ID}} {
		if _, err := s.Follow(ctx, e[0], e[1]); err != nil {
			t.Fatal(err)
		}
	}
	for acct, amount := range map[store.Account]int64{store.AccountWallet: 500, store.AccountCurrency: 70} {
		if _, _, err := s.Adjust(ctx, store.AdjustRequest{UserID: from.ID, Account: acct, Amount: amount, Key: "seed-" + string(acct)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Adjust(ctx, store.AdjustRequest{UserID: into.ID, Account: store.AccountWallet, Amount: 25, Key: "seed-into"}); err != nil {
		t.Fatal(err)
	}
	return mergeFixture{from.ID, into.ID, x.ID}
}

// checkMerged asserts the end state of a completed merge of the fixture.
func checkMerged(t *testing.T, s *store.Store, f mergeFixture) {
	t.Helper()
	ctx := ctxT(t)
	if _, err := s.GetProfile(ctx, f.from); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("from still exists: %v", err)
	}
	p, err := s.GetProfile(ctx, f.into)
	if err != nil {
		t.Fatal(err)
	}
	if p.OpenID != "o-from" || p.UnionID != "u-from" || p.Phone != "13800000000" || !p.PhoneVerified ||
		p.Username != "intouser" || p.Email != "into@example.com" || p.PasswordHash != "hash-into" ||
		p.Nickname != "Into" || p.City != "Shenzhen" || p.Gender != 2 {
		t.Fatalf("identities: %+v", p)
	}
	if g := slices.Sorted(slices.Values(p.Groups)); !slices.Equal(g, []int64{1, 2}) {
		t.Fatalf("groups %v", g)
	}
	for _, w := range []struct {
		who  int64
		acct store.Account
		want int64
	}{{f.into, store.AccountWallet, 525}, {f.into, store.AccountCurrency, 70}} {
		wal, err := s.GetWallet(ctx, w.who)
		if err != nil || wal.Balance(w.acct) != w.want {
			t.Fatalf("%s of %d = %d, want %d (%v)", w.acct, w.who, wal.Balance(w.acct), w.want, err)
		}
	}
	exist, err := s.FollowsAll(ctx, []store.FollowEdge{{f.into, f.x}, {f.x, f.into}, {f.into, f.into}, {f.from, f.x}, {f.x, f.from}})
	if err != nil {
		t.Fatal(err)
	}
	if !exist[store.FollowEdge{f.into, f.x}] || !exist[store.FollowEdge{f.x, f.into}] || exist[store.FollowEdge{f.into, f.into}] ||
		exist[store.FollowEdge{f.from, f.x}] || exist[store.FollowEdge{f.x, f.from}] {
		t.Fatalf("follows %v", exist)
	}
	followers, followings, err := s.FollowCounts(ctx, []int64{f.into, f.x})
	if err != nil || followers[f.into] != 1 || followings[f.into] != 1 || followers[f.x] != 1 || followings[f.x] != 1 {
		t.Fatalf("counts %v %v %v", followers, followings, err)
	}
	found, err := s.FindWeChatUser(ctx, "o-from", "")
	if err != nil || found.ID != f.into {
		t.Fatalf("WeChat login after the merge finds %v (%v)", found, err)
	}
}

func TestMergeMovesEverythingOnce(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	f := newMergeFixture(t, s)
	m, started, p, err := s.MergeUsers(ctx, "", f.from, f.into)
	if err != nil || !started || m.State != store.MergeCompleted || p.ID != f.into || len(m.Transfers) != 2 {
		t.Fatalf("merge: %+v %v %v", m, started, err)
	}
	if m.Plan.PasswordHash != "" {
		t.Fatal("the completed record keeps a password hash")
	}
	checkMerged(t, s, f)
	// The same request again is a replay: same result, nothing moves.
	m2, started, _, err := s.MergeUsers(ctx, "", f.from, f.into)
	if err != nil || started || !slices.Equal(m2.Transfers, m.Transfers) {
		t.Fatalf("replay: %+v %v %v", m2, started, err)
	}
	checkMerged(t, s, f)
	// The key names that merge only; from is folded once.
	if _, _, _, err := s.MergeUsers(ctx, store.MergeKey(f.from, f.into), f.x, f.into); !errors.Is(err, store.ErrMergeMismatch) {
		t.Fatalf("key reuse: %v", err)
	}
	if _, _, _, err := s.MergeUsers(ctx, "other-key", f.from, f.x); !errors.As(err, new(*store.AlreadyMergedError)) {
		t.Fatalf("second merge of from: %v", err)
	}
}

// A merge stopped after each stage, as a crash would, is finished by
// replaying the request, with the same end state as an uninterrupted one.
func TestMergeInterruptedThenReplayed(t *testing.T) {
	for _, stage := range []string{"from-unset", "identities", "groups", "follows", "wallet", "deleted"} {
		t.Run(stage, func(t *testing.T) {
			var crash storetest.Crash
			s, _ := open(t, store.WithFault(crash.Fault))
			ctx := ctxT(t)
			f := newMergeFixture(t, s)
			crash.At(stage)
			_, started, _, err := s.MergeUsers(ctx, "k1", f.from, f.into)
			crash.At("")
			if !errors.Is(err, storetest.ErrCrash) || !started {
				t.Fatalf("interrupted merge: %v", err)
			}
			if stage == "from-unset" {
				// The WeChat identity is on neither user now. A WeChat
				// login in this moment finishes the merge and gets into,
				// rather than creating a third user.
				p, created, err := s.LoginWeChat(ctx, "o-from", "u-from", true)
				if err != nil || created || p.ID != f.into {
					t.Fatalf("login half-way: %+v created=%v %v", p, created, err)
				}
			}
			m, started, _, err := s.MergeUsers(ctx, "k1", f.from, f.into)
			if err != nil || started || m.State != store.MergeCompleted {
				t.Fatalf("replay: %+v %v", m, err)
			}
			checkMerged(t, s, f)
		})
	}
}

func TestMergeRefusesConflictsAndChangesNothing(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	a := &store.Profile{OpenID: "o-a", Phone: "13000000001"}
	b := &store.Profile{OpenID: "o-b", Phone: "13000000002", Email: "b@example.com"}
	for _, p := range []*store.Profile{a, b} {
		if err := s.CreateProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	_, _, _, err := s.MergeUsers(ctx, "", a.ID, b.ID)
	var ce *store.MergeConflictError
	if !errors.As(err, &ce) || !slices.Equal(ce.Fields, []string{store.FieldOpenID, store.FieldPhone}) {
		t.Fatalf("conflict: %v", err)
	}
	if p, _ := s.GetProfile(ctx, a.ID); p.OpenID != "o-a" {
		t.Fatal("a refused merge changed a")
	}
	// Refused merges leave no record: the key is free once the conflict is.
	if _, err := s.UnlinkWeChat(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UnsetContact(ctx, a.ID, store.FieldPhone); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.MergeUsers(ctx, "", a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.MergeUsers(ctx, "", b.ID, b.ID); !errors.Is(err, store.ErrMergeSelf) {
		t.Fatal(err)
	}
	if _, _, _, err := s.MergeUsers(ctx, "", b.ID, 999999); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
}

// 30 concurrent requests for one merge (replays racing the first) all end
// with the merged user, and the balances move once; 30 concurrent merges
// of one user into different users let exactly one through.
func TestMergeUnderConcurrency(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	f := newMergeFixture(t, s)
	const n = 30
	errs := make(chan error, n)
	for range n {
		go func() {
			_, _, p, err := s.MergeUsers(ctx, "same", f.from, f.into)
			if err == nil && p.ID != f.into {
				err = fmt.Errorf("merged into %d", p.ID)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent replay: %v", err)
		}
	}
	checkMerged(t, s, f)
	entries, _, err := s.ListLedger(ctx, store.LedgerQuery{UserID: f.into, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	moved := 0
	for _, e := range entries {
		if e.Kind == store.KindTransfer {
			moved++
		}
	}
	if moved != 2 {
		t.Fatalf("%d transfers for two balances", moved)
	}

	g := newMergeFixture2(t, s)
	wins := make(chan bool, n)
	for i := range n {
		go func() {
			_, _, _, err := s.MergeUsers(ctx, fmt.Sprintf("k%d", i), g.from, g.targets[i%len(g.targets)])
			wins <- err == nil
		}()
	}
	won := 0
	for range n {
		if <-wins {
			won++
		}
	}
	if won != 1 {
		t.Fatalf("%d merges of one user went through", won)
	}
}

type fixture2 struct {
	from    int64
	targets []int64
}

func newMergeFixture2(t *testing.T, s *store.Store) fixture2 {
	t.Helper()
	ctx := ctxT(t)
	from := &store.Profile{OpenID: "o-many"}
	if err := s.CreateProfile(ctx, from); err != nil {
		t.Fatal(err)
	}
	var targets []int64
	for range 3 {
		p := &store.Profile{}
		if err := s.CreateProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
		targets = append(targets, p.ID)
	}
	return fixture2{from.ID, targets}
}
