package store_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"userve.dev/userve/server/store"
	"userve.dev/userve/test/mongofixture"
)

// 40 parallel takers of a window of 5: exactly 5 win. Two winners give
// their slots back (one of them twice): the next 40 parallel takers get
// exactly those 2 slots, no more.
func TestRateSlotsHoldUnderParallelTakesAndReleases(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	take := func(n int) []store.RateSlot {
		var mu sync.Mutex
		var won []store.RateSlot
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				slot, w, ok, err := s.TakeRateSlot(ctx, "k", time.Hour, 5)
				if err != nil {
					t.Error(err)
					return
				}
				if ok != (w.Count <= 5) {
					t.Errorf("admitted %v with count %d", ok, w.Count)
				}
				if ok {
					mu.Lock()
					won = append(won, slot)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return won
	}
	won := take(40)
	if len(won) != 5 {
		t.Fatalf("%d of 40 parallel takers won a slot of 5", len(won))
	}
	for _, sl := range []store.RateSlot{won[0], won[1], won[1]} {
		if err := s.ReleaseRateSlot(ctx, sl); err != nil {
			t.Fatal(err)
		}
	}
	if w, err := s.PeekRateLimit(ctx, "k", time.Hour); err != nil || w.Count != 3 {
		t.Fatalf("after giving 2 back: count %d (%v), want 3", w.Count, err)
	}
	if again := take(40); len(again) != 2 {
		t.Fatalf("%d of 40 parallel takers won after 2 slots were given back, want 2", len(again))
	}
	if err := s.ReleaseRateSlot(ctx, store.RateSlot{}); err != nil {
		t.Fatalf("releasing the zero slot: %v", err)
	}
	// Other keys are not affected.
	if _, _, ok, err := s.TakeRateSlot(ctx, "other", time.Hour, 5); err != nil || !ok {
		t.Fatalf("another key: %v %v", ok, err)
	}
}

// 40 parallel tries of one code, the right one among them: at most 5 are
// judged (wrong or used); the rest find the code spent, or used already when
// the right one got in first (then nothing is judged), and it stays dead.
func TestConsumeCodeJudgesAtMostMaxAttemptsInParallel(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	if err := s.IssueCode(ctx, "phone:1", "right", "verify", time.Minute, time.Minute); err != nil {
		t.Fatal(err)
	}
	var used, wrong, spent, afterUse atomic.Int64
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			hash := "wrong"
			if i == 20 {
				hash = "right"
			}
			switch err := s.ConsumeCode(ctx, "phone:1", hash, 5); {
			case err == nil:
				used.Add(1)
			case errors.Is(err, store.ErrCodeInvalid):
				wrong.Add(1)
			case errors.Is(err, store.ErrCodeSpent):
				spent.Add(1)
			case errors.Is(err, store.ErrCodeUsed):
				afterUse.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	t.Logf("40 parallel tries: %d used, %d wrong, %d refused as spent, %d after the use", used.Load(), wrong.Load(), spent.Load(), afterUse.Load())
	judged := used.Load() + wrong.Load()
	if judged > 5 || used.Load() > 1 || (afterUse.Load() > 0 && used.Load() == 0) || judged+spent.Load()+afterUse.Load() != 40 ||
		(afterUse.Load() == 0 && judged != 5) {
		t.Fatalf("used %d wrong %d spent %d after use %d: want at most 5 judged, the rest spent or after the use",
			used.Load(), wrong.Load(), spent.Load(), afterUse.Load())
	}
	if err := s.ConsumeCode(ctx, "phone:1", "right", 5); err == nil {
		t.Fatal("the code was accepted after its tries were spent")
	}
}

// 40 parallel takes of three budgets at once, the first of 5 slots: 5 are
// admitted; the 35 refused ones leave no slot of the later budgets taken.
// A stale handle given back again cannot free a slot taken since.
func TestRateSlotsBatchedRefusalTakesNothingAfterIt(t *testing.T) {
	s, _ := open(t)
	ctx := ctxT(t)
	claims := []store.RateClaim{{Key: "addr", Window: time.Hour, Limit: 5}, {Key: "pair", Window: time.Hour, Limit: 50}, {Key: "ceil", Window: time.Hour, Limit: 50}}
	var admitted atomic.Int64
	var mu sync.Mutex
	var won [][]store.RateTake
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			takes, err := s.TakeRateSlots(ctx, claims...)
			if err != nil {
				t.Error(err)
				return
			}
			if last := takes[len(takes)-1]; last.Admitted {
				if len(takes) != 3 {
					t.Errorf("admitted with %d takes", len(takes))
				}
				admitted.Add(1)
				mu.Lock()
				won = append(won, takes)
				mu.Unlock()
			} else if len(takes) != 1 {
				t.Errorf("refused at take %d, want the first", len(takes))
			}
		})
	}
	wg.Wait()
	if admitted.Load() != 5 {
		t.Fatalf("%d of 40 admitted, want 5", admitted.Load())
	}
	for _, key := range []string{"addr", "pair", "ceil"} {
		if w, err := s.PeekRateLimit(ctx, key, time.Hour); err != nil || w.Count != 5 {
			t.Fatalf("%s: %d live slots (%v), want 5", key, w.Count, err)
		}
	}
	// Give one back, let someone else take it, give the stale handle back again.
	stale := won[0][0].Slot
	if err := s.GiveBackRateSlots(ctx, []store.RateSlot{stale}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := s.TakeRateSlot(ctx, "addr", time.Hour, 5); err != nil || !ok {
		t.Fatalf("the freed slot: %v %v", ok, err)
	}
	if err := s.ReleaseRateSlot(ctx, stale); err != nil {
		t.Fatal(err)
	}
	if w, _ := s.PeekRateLimit(ctx, "addr", time.Hour); w.Count != 5 {
		t.Fatalf("a stale give-back freed another taker's slot: %d live, want 5", w.Count)
	}
	// Clearing a window forgives every slot of that key only.
	if err := s.GiveBackRateSlots(ctx, nil, []store.RateSlot{won[1][1].Slot}); err != nil {
		t.Fatal(err)
	}
	if w, _ := s.PeekRateLimit(ctx, "pair", time.Hour); w.Count != 0 {
		t.Fatalf("cleared window still counts %d", w.Count)
	}
	if w, _ := s.PeekRateLimit(ctx, "ceil", time.Hour); w.Count != 5 {
		t.Fatalf("clearing one key changed another: %d", w.Count)
	}
}

// Slots of the scheme before (given back by a release document each) keep
// counting right beside this one's during a rolling upgrade: a window with
// 5 of them taken and 4 given back has 1 live slot, and 30 parallel takers
// of a limit of 5 get exactly the 4 left.
func TestRateSlotsCountTheSchemeBeforeDuringAnUpgrade(t *testing.T) {
	db := mongofixture.NewDatabase(t)
	now := time.Unix(1_600_000_000, 0)
	ctx := ctxT(t)
	s, err := store.Open(ctx, mongofixture.URI(t), db.Name(), store.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	win := "k|" + strconv.FormatInt(now.Truncate(time.Hour).Unix(), 10)
	expires := now.Truncate(time.Hour).Add(time.Hour)
	var old []any
	for n := 1; n <= 5; n++ {
		id := win + "|" + strconv.Itoa(n)
		old = append(old, bson.D{{Key: "_id", Value: id}, {Key: "key", Value: "k"}, {Key: "window", Value: win}, {Key: "expires_at", Value: expires}})
		if n < 5 {
			old = append(old, bson.D{{Key: "_id", Value: id + "|release"}, {Key: "key", Value: "k"}, {Key: "window", Value: win}, {Key: "release", Value: true}, {Key: "expires_at", Value: expires}})
		}
	}
	if _, err := db.Collection(store.ColRateLimits).InsertMany(ctx, old); err != nil {
		t.Fatal(err)
	}
	if w, err := s.PeekRateLimit(ctx, "k", time.Hour); err != nil || w.Count != 1 {
		t.Fatalf("live slots %d (%v), want 1", w.Count, err)
	}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			_, _, ok, err := s.TakeRateSlot(ctx, "k", time.Hour, 5)
			if err != nil {
				t.Error(err)
			}
			if ok {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	if admitted.Load() != 4 {
		t.Fatalf("%d of 30 admitted, want the 4 free slots", admitted.Load())
	}
}
