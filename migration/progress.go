package migration

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress shows how an import or export goes: a progress bar on a
// terminal (github.com/schollz/progressbar: records, rate, errors in the
// description, bytes and ETA in the bar), plain lines every interval
// otherwise (logs, CI).
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	bar      *progressbar.ProgressBar
	verb     string
	total    int64 // bytes of input, 0 if unknown
	start    time.Time
	last     time.Time
	interval time.Duration
	records  int64
	errors   int64
	bytes    int64
}

func newProgress(w io.Writer, terminal bool, verb string, total int64, interval time.Duration) *progress {
	p := &progress{w: w, verb: verb, total: total, start: time.Now(), interval: interval}
	p.last = p.start
	if w == nil {
		p.w = io.Discard
		return p
	}
	if terminal {
		max := total
		if max <= 0 {
			max = -1 // a spinner
		}
		p.bar = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(w),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetDescription(verb),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return p
}

// update records the state after a batch.
func (p *progress) update(records, errors, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.records, p.errors, p.bytes = records, errors, bytes
	now := time.Now()
	rate := float64(records) / max(now.Sub(p.start).Seconds(), 1e-3)
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("%s %d records (%.0f/s), %d errors", p.verb, records, rate, errors))
		if p.total > 0 {
			_ = p.bar.Set64(min(bytes, p.total))
		} else {
			_ = p.bar.Add(0)
		}
		return
	}
	if now.Sub(p.last) < p.interval {
		return
	}
	p.last = now
	fmt.Fprintln(p.w, p.line(now, rate))
}

func (p *progress) line(now time.Time, rate float64) string {
	s := fmt.Sprintf("%s: %d records (%.0f/s), %d errors", p.verb, p.records, rate, p.errors)
	if p.total > 0 && p.bytes > 0 {
		frac := float64(p.bytes) / float64(p.total)
		eta := time.Duration(float64(now.Sub(p.start)) * (1 - frac) / frac).Round(time.Second)
		s += fmt.Sprintf(", %.0f%% of the file, ETA %s", 100*frac, eta)
	}
	return s
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r  io.Reader
	mu sync.Mutex
	n  int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.mu.Lock()
	c.n += int64(n)
	c.mu.Unlock()
	return n, err
}

func (c *countingReader) count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
