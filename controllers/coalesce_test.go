package controllers

import (
	"sync"
	"testing"
	"time"
)

// A burst of acknowledgements wakes a pool's waiting tenants twice (at once,
// and once at the end of the window for the triggers inside it), not once
// per acknowledgement; another pool is not held back by it; and a trigger
// after the window fires at once again.
func TestAckWakeUpsAreCoalescedPerPool(t *testing.T) {
	var mu sync.Mutex
	fired := map[string][]time.Time{}
	firedAny := make(chan string, 100)
	c := newCoalescer(100*time.Millisecond, func(key string) {
		mu.Lock()
		fired[key] = append(fired[key], time.Now())
		mu.Unlock()
		firedAny <- key
	})
	closed := func(key string) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, open := c.pending[key]
		return !open
	}
	waitClosed := func(key string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !closed(key); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the window of %s never closed", key)
			}
		}
	}

	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.trigger("a")
		}()
	}
	wg.Wait()
	c.trigger("b") // another pool, during a's window
	if k := <-firedAny; k != "a" && k != "b" {
		t.Fatalf("fired %q", k)
	}
	waitClosed("a")
	waitClosed("b")
	mu.Lock()
	a, b := len(fired["a"]), len(fired["b"])
	mu.Unlock()
	// 30 parallel triggers: one fire at once; the others came within the
	// window (unless the scheduler spread them over more than 100 ms).
	if a < 1 || a > 3 {
		t.Errorf("30 triggers of pool a fired %d times, want 1 at once and 1 at the window's end", a)
	}
	if b != 1 {
		t.Errorf("a lone trigger of pool b fired %d times, want 1", b)
	}

	// After the window a trigger fires at once, without waiting.
	before := time.Now()
	c.trigger("a")
	mu.Lock()
	last := fired["a"][len(fired["a"])-1]
	n := len(fired["a"])
	mu.Unlock()
	if n != a+1 || last.Before(before) {
		t.Errorf("a trigger after the window did not fire at once (%d fires)", n)
	}
	waitClosed("a")
}

// A trigger that arrives while the window is open is never lost: the fire
// at the window's end comes after it.
func TestAckWakeUpInsideTheWindowIsNotLost(t *testing.T) {
	fires := make(chan time.Time, 10)
	c := newCoalescer(50*time.Millisecond, func(string) { fires <- time.Now() })
	c.trigger("p")
	<-fires
	late := time.Now()
	c.trigger("p")
	select {
	case at := <-fires:
		if at.Before(late) {
			t.Fatalf("the trailing fire came before the trigger it answers")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a trigger inside the window never fired")
	}
}
