package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// A burst of 40 checks against argon2id hashes that each hold 8 MiB, under
// a 20 MiB budget: every check gets its right answer, and the memory held
// at once never exceeds the budget (two checks at a time at most).
func TestGateBoundsConcurrentCheckMemory(t *testing.T) {
	const budget = 20 << 20
	h := NewHasherWith(HasherOptions{Cost: 4, CheckMemory: budget, CheckWait: time.Minute})
	hashes := []string{
		argon2Hash("right-0", 8192, 1, 1), argon2Hash("right-1", 8192, 1, 1),
		argon2Hash("right-2", 8192, 1, 1), argon2Hash("right-3", 8192, 1, 1),
	}
	weight, _ := InspectHash(hashes[0])
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			password := "right-" + string(rune('0'+i%4))
			if i%5 == 0 {
				password = "wrong"
			}
			ok, err := h.Verify(context.Background(), hashes[i%4], password)
			if err != nil {
				errs <- err
				return
			}
			if ok != (i%5 != 0) {
				errs <- errors.New("check answered " + map[bool]string{true: "match", false: "no match"}[ok] + " for " + password)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := h.CheckStats()
	if st.Peak > budget {
		t.Errorf("peak check memory %d exceeds the budget %d", st.Peak, budget)
	}
	if st.Peak < weight.Memory {
		t.Errorf("peak check memory %d below one check's %d: the gate did not count the checks", st.Peak, weight.Memory)
	}
	if st.InUse != 0 || st.Refused != 0 {
		t.Errorf("after the burst: %+v, want nothing in use or refused", st)
	}
}

// When the budget stays taken for longer than the bounded wait, each of 30
// parallel checks is refused with ErrBusy (nothing checked), and once the
// budget is free the next check runs.
func TestGateRefusesAfterBoundedWait(t *testing.T) {
	h := NewHasherWith(HasherOptions{Cost: 4, CheckMemory: 1 << 20, CheckWait: 50 * time.Millisecond})
	hash := pbkdf2Hash("secret123", 1000)
	// A check in progress holding the whole budget (an argon2id hash at
	// the budget's size would do the same, only slower).
	leave, err := h.gate.enter(context.Background(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	const n = 30
	var wg sync.WaitGroup
	results := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := h.Verify(context.Background(), hash, "secret123")
			if ok {
				err = errors.New("a refused check matched")
			}
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	for err := range results {
		if !errors.Is(err, ErrBusy) {
			t.Errorf("check while the budget is taken: %v, want ErrBusy", err)
		}
	}
	if st := h.CheckStats(); st.Refused != n || st.Peak != 1<<20 {
		t.Errorf("stats %+v, want %d refused and the peak at the budget", st, n)
	}
	leave()
	if ok, err := h.Verify(context.Background(), hash, "secret123"); !ok || err != nil {
		t.Errorf("after the budget is free: %v, %v", ok, err)
	}
}

// A check never waits past its caller's deadline.
func TestGateHonoursTheCallersDeadline(t *testing.T) {
	h := NewHasherWith(HasherOptions{Cost: 4, CheckMemory: 1 << 20, CheckWait: time.Hour})
	leave, _ := h.gate.enter(context.Background(), 1<<20)
	defer leave()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Verify(ctx, pbkdf2Hash("x", 1), "x"); !errors.Is(err, ErrBusy) {
		t.Errorf("check with an ended context: %v, want ErrBusy", err)
	}
}

// A hash heavier than the whole budget (a budget configured below the
// import bound) still runs, alone.
func TestGateAdmitsAHashHeavierThanTheBudget(t *testing.T) {
	h := NewHasherWith(HasherOptions{Cost: 4, CheckMemory: 1 << 20, CheckWait: time.Minute})
	hash := argon2Hash("secret123", 4096, 1, 1) // 4 MiB > 1 MiB
	if ok, err := h.Verify(context.Background(), hash, "secret123"); !ok || err != nil {
		t.Fatalf("%v, %v", ok, err)
	}
	if st := h.CheckStats(); st.Peak != 1<<20 {
		t.Errorf("peak %d, want the whole budget", st.Peak)
	}
}

// check is Verify for tests that have no deadline of their own.
func check(h *Hasher, hash, password string) bool {
	ok, err := h.Verify(context.Background(), hash, password)
	return ok && err == nil
}

// A pool's tenants: two hashers with 16 MiB each drawing from a shared
// 24 MiB, 40 parallel checks of 8 MiB across both. Each stays within its own
// budget, both together within the shared one, and every check is right.
func TestSharedCheckMemoryBoundsTenantsTogether(t *testing.T) {
	shared := NewSharedCheckMemory(24 << 20)
	tenants := []*Hasher{
		NewHasherWith(HasherOptions{Cost: 4, CheckMemory: 16 << 20, CheckWait: time.Minute, Shared: shared}),
		NewHasherWith(HasherOptions{Cost: 4, CheckMemory: 16 << 20, CheckWait: time.Minute, Shared: shared}),
	}
	hash := argon2Hash("right", 8192, 1, 1)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := tenants[i%2].Verify(context.Background(), hash, "right"); err != nil || !ok {
				errs <- errors.New("a right password was not accepted")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, h := range tenants {
		if st := h.CheckStats(); st.Peak > 16<<20 || st.InUse != 0 {
			t.Errorf("tenant %d: %+v, want a peak within its 16 MiB and nothing in use", i, st)
		}
	}
	st := shared.Stats()
	if st.Peak > 24<<20 || st.Peak < 16<<20 || st.InUse != 0 {
		t.Errorf("shared: %+v, want a peak of 16..24 MiB and nothing in use", st)
	}
}
