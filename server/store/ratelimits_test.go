package store_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"userve.dev/userve/server/store"
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
