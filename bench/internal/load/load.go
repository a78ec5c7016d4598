// Package load is the harness's closed-loop load generator: N workers each
// issue one request after another for a fixed time or until a request budget
// is spent, whichever comes first.
package load

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"userve.dev/userve/bench/internal/stats"
)

// Op performs one request. worker is 0..Concurrency-1 and seq a number unique
// within the run (for idempotency keys and the like). A non-nil error counts
// the request as failed.
type Op func(ctx context.Context, worker int, seq int64) error

// Config bounds one cell.
type Config struct {
	Concurrency int
	Duration    time.Duration // measured phase
	MaxRequests int64         // budget for the measured phase; 0 means unbounded
	Warmup      time.Duration // unmeasured phase before, same concurrency
	// RequestTimeout bounds each request (0: 30 s), so that one slow
	// request cannot hold a cell for long.
	RequestTimeout time.Duration
}

// Result of one cell.
type Result struct {
	Latencies []time.Duration // successful requests only
	Errors    int64
	FirstErr  error
	Elapsed   time.Duration
	// SlowestFailure is the longest a failed request took (a timeout shows
	// as the time it took to give up).
	SlowestFailure time.Duration
}

// Summary of the result.
func (r Result) Summary() stats.Summary {
	return stats.Summarize(r.Latencies, r.Errors, r.Elapsed)
}

// ErrorRate is failed / all requests.
func (r Result) ErrorRate() float64 {
	total := int64(len(r.Latencies)) + r.Errors
	if total == 0 {
		return 0
	}
	return float64(r.Errors) / float64(total)
}

// Run warms up, then measures. The measured phase starts for every worker at
// once, so slow warm-up requests do not leak into it.
func Run(ctx context.Context, cfg Config, op Op) Result {
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	var seq atomic.Int64
	if cfg.Warmup > 0 {
		phase(ctx, cfg, time.Now().Add(cfg.Warmup), 0, &seq, op, false)
	}
	return phase(ctx, cfg, time.Now().Add(cfg.Duration), cfg.MaxRequests, &seq, op, true)
}

func phase(ctx context.Context, cfg Config, deadline time.Time, budget int64, seq *atomic.Int64,
	op Op, measure bool) Result {
	concurrency := cfg.Concurrency
	var (
		issued   atomic.Int64
		errs     atomic.Int64
		firstErr error
		errOnce  sync.Once
		slowFail atomic.Int64
		wg       sync.WaitGroup
		perWkr   = make([][]time.Duration, concurrency)
	)
	start := time.Now()
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var lat []time.Duration
			if measure && budget > 0 {
				lat = make([]time.Duration, 0, budget/int64(concurrency)+1)
			}
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if budget > 0 && issued.Add(1) > budget {
					break
				}
				rctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
				t0 := time.Now()
				err := op(rctx, w, seq.Add(1))
				d := time.Since(t0)
				cancel()
				if err != nil {
					errs.Add(1)
					errOnce.Do(func() { firstErr = err })
					for cur := slowFail.Load(); int64(d) > cur && !slowFail.CompareAndSwap(cur, int64(d)); cur = slowFail.Load() {
					}
					continue
				}
				if measure {
					lat = append(lat, d)
				}
			}
			perWkr[w] = lat
		}(w)
	}
	wg.Wait()
	r := Result{Errors: errs.Load(), FirstErr: firstErr, Elapsed: time.Since(start), SlowestFailure: time.Duration(slowFail.Load())}
	n := 0
	for _, l := range perWkr {
		n += len(l)
	}
	r.Latencies = make([]time.Duration, 0, n)
	for _, l := range perWkr {
		r.Latencies = append(r.Latencies, l...)
	}
	if firstErr != nil {
		r.FirstErr = fmt.Errorf("%d failed: first: %w", r.Errors, firstErr)
	}
	return r
}
