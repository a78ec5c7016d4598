package load

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunStopsAtBudget(t *testing.T) {
	var calls atomic.Int64
	r := Run(context.Background(), Config{Concurrency: 4, Duration: time.Minute, MaxRequests: 100},
		func(context.Context, int, int64) error { calls.Add(1); return nil })
	if len(r.Latencies) != 100 || calls.Load() != 100 {
		t.Fatalf("budget 100: measured %d, called %d", len(r.Latencies), calls.Load())
	}
	if r.Elapsed > 10*time.Second {
		t.Errorf("budget reached but ran %v", r.Elapsed)
	}
}

func TestRunStopsAtDuration(t *testing.T) {
	r := Run(context.Background(), Config{Concurrency: 2, Duration: 100 * time.Millisecond},
		func(context.Context, int, int64) error { time.Sleep(5 * time.Millisecond); return nil })
	if r.Elapsed < 100*time.Millisecond || r.Elapsed > 2*time.Second {
		t.Errorf("elapsed %v for a 100ms cell", r.Elapsed)
	}
	if n := len(r.Latencies); n < 10 {
		t.Errorf("only %d requests in 100ms at 2 workers of 5ms", n)
	}
}

func TestRunUsesEveryWorkerAndUniqueSeq(t *testing.T) {
	var mu sync.Mutex
	workers := map[int]bool{}
	seqs := map[int64]bool{}
	Run(context.Background(), Config{Concurrency: 8, Duration: time.Minute, MaxRequests: 400, Warmup: 20 * time.Millisecond},
		func(_ context.Context, w int, seq int64) error {
			time.Sleep(time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			workers[w] = true
			if seqs[seq] {
				t.Errorf("seq %d issued twice", seq)
			}
			seqs[seq] = true
			return nil
		})
	if len(workers) != 8 {
		t.Errorf("%d of 8 workers ran", len(workers))
	}
}

func TestRunCountsErrorsApart(t *testing.T) {
	boom := errors.New("boom")
	r := Run(context.Background(), Config{Concurrency: 1, Duration: time.Minute, MaxRequests: 10},
		func(_ context.Context, _ int, seq int64) error {
			if seq%2 == 0 {
				return boom
			}
			return nil
		})
	if r.Errors != 5 || len(r.Latencies) != 5 {
		t.Fatalf("errors=%d ok=%d", r.Errors, len(r.Latencies))
	}
	if !errors.Is(r.FirstErr, boom) {
		t.Errorf("first error %v", r.FirstErr)
	}
	if r.ErrorRate() != 0.5 {
		t.Errorf("error rate %v", r.ErrorRate())
	}
	if s := r.Summary(); s.Requests != 5 || s.Errors != 5 {
		t.Errorf("summary %+v", s)
	}
}

func TestRunHonoursCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	start := time.Now()
	Run(ctx, Config{Concurrency: 2, Duration: time.Minute}, func(ctx context.Context, _ int, _ int64) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
			return nil
		}
	})
	if time.Since(start) > 5*time.Second {
		t.Errorf("cancel ignored: ran %v", time.Since(start))
	}
}

func TestRunBoundsEachRequest(t *testing.T) {
	start := time.Now()
	r := Run(context.Background(), Config{Concurrency: 2, Duration: 10 * time.Millisecond, RequestTimeout: 50 * time.Millisecond},
		func(ctx context.Context, _ int, _ int64) error {
			<-ctx.Done() // a request that never answers
			return ctx.Err()
		})
	if time.Since(start) > 2*time.Second {
		t.Errorf("a hung request held the cell for %v", time.Since(start))
	}
	if r.SlowestFailure < 50*time.Millisecond {
		t.Errorf("slowest failure %v, want the 50ms timeout", r.SlowestFailure)
	}
	if r.Errors != 2 || !errors.Is(r.FirstErr, context.DeadlineExceeded) {
		t.Errorf("errors=%d first=%v", r.Errors, r.FirstErr)
	}
}
