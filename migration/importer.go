package migration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// ImportOptions configure one `userve import` run.
type ImportOptions struct {
	Client    *Client
	File      string
	Format    string // minapp, thinksns, userve
	Policy    string // skip, update, fail
	DryRun    bool
	BatchSize int // records a request, 1..1000
	// Concurrency is how many batches are in flight at once (0: 1). The
	// answers are still taken in file order, so the checkpoint only moves
	// past batches that are in, and a resumed run sends again the batches
	// that were in flight (their records come back "skipped").
	Concurrency int

	// Checkpoint records how many records are in, so that a re-run after
	// an interruption starts after them (default File + ".checkpoint").
	// The batch that was in flight is sent again: with on_conflict=skip
	// its records that had gone in come back "skipped" and the rest are
	// created, and the tenant finishes their follows and balances.
	Checkpoint string
	// ErrorReport receives one JSON line per failed record (default File
	// + ".errors.jsonl"); appended to on a resumed run.
	ErrorReport string

	Progress io.Writer // nil: silent
	Terminal bool      // Progress is a terminal: draw a bar
	Interval time.Duration

	// afterBatch runs after each completed batch (tests interrupt there).
	afterBatch func(batches int)
}

// Summary is the outcome of a run.
type Summary struct {
	Records int `json:"records"` // read from the file in this run, including resumed ones
	Resumed int `json:"resumed"` // skipped because the checkpoint had them
	Created int `json:"created"`
	Updated int `json:"updated"`
	Skipped int `json:"skipped"`
	Errors  int `json:"errors"`
	// WeakHashes: imported password hashes below OWASP's minimums, which
	// the users' first logins replace.
	WeakHashes int           `json:"weak_hashes"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	Report     string        `json:"error_report,omitempty"`
	Complete   bool          `json:"complete"`
}

// Rate is records a second in this run.
func (s Summary) Rate() float64 {
	return float64(s.Records-s.Resumed) / max(s.Elapsed.Seconds(), 1e-3)
}

func (s Summary) String() string {
	out := fmt.Sprintf("%d records: %d created, %d updated, %d skipped, %d errors in %s (%.0f records/s)",
		s.Records-s.Resumed, s.Created, s.Updated, s.Skipped, s.Errors, s.Elapsed.Round(time.Millisecond), s.Rate())
	if s.WeakHashes > 0 {
		out += fmt.Sprintf("; %d weak password hashes kept (replaced at each user's first login)", s.WeakHashes)
	}
	if s.Resumed > 0 {
		out += fmt.Sprintf("; resumed after %d records already in", s.Resumed)
	}
	if s.Errors > 0 {
		out += "; failed records: " + s.Report
	}
	return out
}

type checkpoint struct {
	File   string `json:"file"`
	Size   int64  `json:"size"`
	Format string `json:"format"`
	Done   int    `json:"done"` // records of the file that are in
}

// errorLine is one line of the error report.
type errorLine struct {
	Record int             `json:"record"` // 0-based index in the file
	Error  string          `json:"error"`
	Source json.RawMessage `json:"source,omitempty"`
}

// Import streams opt.File to the tenant in batches.
func Import(ctx context.Context, opt ImportOptions) (Summary, error) {
	var sum Summary
	if opt.BatchSize < 1 || opt.BatchSize > 1000 {
		return sum, fmt.Errorf("batch size %d must be 1 to 1000", opt.BatchSize)
	}
	if opt.Checkpoint == "" {
		opt.Checkpoint = opt.File + ".checkpoint"
	}
	if opt.ErrorReport == "" {
		opt.ErrorReport = opt.File + ".errors.jsonl"
	}
	if opt.Interval == 0 {
		opt.Interval = 5 * time.Second
	}
	sum.Report = opt.ErrorReport
	f, err := os.Open(opt.File)
	if err != nil {
		return sum, err
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return sum, err
	}
	abs, _ := filepath.Abs(opt.File)
	cp := checkpoint{File: abs, Size: st.Size(), Format: opt.Format}
	if !opt.DryRun {
		prev, err := readCheckpoint(opt.Checkpoint)
		if err != nil {
			return sum, err
		}
		if prev != nil {
			if prev.Size != cp.Size || prev.Format != cp.Format {
				return sum, fmt.Errorf("checkpoint %s is for another file or format (size %d, format %s); remove it to start over",
					opt.Checkpoint, prev.Size, prev.Format)
			}
			cp.Done = prev.Done
		}
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if cp.Done > 0 {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	report, err := os.OpenFile(opt.ErrorReport, flags, 0o600)
	if err != nil {
		return sum, err
	}
	defer func() { _ = report.Close() }()
	reportEnc := json.NewEncoder(report)

	start := time.Now()
	counter := &countingReader{r: f}
	rr := NewRecordReader(counter)
	prog := newProgress(opt.Progress, opt.Terminal, "import", st.Size(), opt.Interval)
	defer prog.finish()

	var (
		batch    [][]byte
		batchIdx []int // file index of each batch record
		batches  int
		window   []*inflight // sent, answers not taken yet, in file order
	)
	fail := func(idx int, msg string, src []byte) error {
		sum.Errors++
		return reportEnc.Encode(errorLine{Record: idx, Error: msg, Source: src})
	}
	// take waits for the oldest batch in flight and records its answer.
	take := func() error {
		b := window[0]
		window = window[1:]
		<-b.done
		if b.err != nil {
			return fmt.Errorf("records %d to %d: %w", b.idx[0], b.idx[len(b.idx)-1], b.err)
		}
		a := b.answer
		sum.Created += a.Created
		sum.Updated += a.Updated
		sum.Skipped += a.Skipped
		sum.WeakHashes += a.WeakHashes
		for _, r := range a.Results {
			if r.Status == "error" {
				if err := fail(b.idx[r.Index], r.Error, b.records[r.Index]); err != nil {
					return err
				}
			}
		}
		if !opt.DryRun {
			cp.Done = b.idx[len(b.idx)-1] + 1
			if err := writeCheckpoint(opt.Checkpoint, cp); err != nil {
				return err
			}
		}
		batches++
		prog.update(int64(b.through-sum.Resumed), int64(sum.Errors), b.read)
		if opt.afterBatch != nil {
			opt.afterBatch(batches)
		}
		return nil
	}
	// drain waits for every batch in flight; the first error wins.
	drain := func() error {
		var first error
		for len(window) > 0 {
			if err := take(); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	defer func() { _ = drain() }() // never leave a request running
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		b := &inflight{records: batch, idx: batchIdx, through: sum.Records, read: counter.count(), done: make(chan struct{})}
		batch, batchIdx = nil, nil
		go func() {
			defer close(b.done)
			b.answer, b.err = opt.Client.ImportBatch(ctx, opt.Format, opt.Policy, opt.DryRun, b.records)
		}()
		window = append(window, b)
		if len(window) >= max(opt.Concurrency, 1) {
			return take()
		}
		return nil
	}
	// abort takes the answers of the batches still in flight (they may
	// move the checkpoint on) and ends the run with err.
	abort := func(err error) (Summary, error) {
		_ = drain()
		return finish(&sum, start), err
	}
	for idx := 0; ; idx++ {
		raw, bad, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return abort(fmt.Errorf("%s: %w", opt.File, err))
		}
		sum.Records++
		if idx < cp.Done {
			sum.Resumed++
			continue
		}
		if bad != nil {
			if err := fail(idx, bad.Error(), nil); err != nil {
				return abort(err)
			}
			continue
		}
		batch, batchIdx = append(batch, raw), append(batchIdx, idx)
		if len(batch) == opt.BatchSize {
			if err := send(); err != nil {
				return abort(err)
			}
		}
		if ctx.Err() != nil {
			return abort(ctx.Err())
		}
	}
	if err := send(); err != nil {
		return abort(err)
	}
	if err := drain(); err != nil {
		return abort(err)
	}
	sum.Complete = true
	if !opt.DryRun {
		_ = os.Remove(opt.Checkpoint)
	}
	prog.update(int64(sum.Records-sum.Resumed), int64(sum.Errors), counter.count())
	return finish(&sum, start), nil
}

// inflight is one batch sent to the tenant.
type inflight struct {
	records [][]byte
	idx     []int // file index of each record
	through int   // records read from the file when it was sent
	read    int64 // bytes read from the file when it was sent
	done    chan struct{}
	answer  *Answer
	err     error
}

func finish(s *Summary, start time.Time) Summary {
	s.Elapsed = time.Since(start)
	return *s
}

func readCheckpoint(path string) (*checkpoint, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var cp checkpoint
	if err := json.Unmarshal(data, &cp); err != nil {
		return nil, fmt.Errorf("checkpoint %s is unreadable (%v); remove it to start over", path, err)
	}
	return &cp, nil
}

// writeCheckpoint replaces the checkpoint atomically (write, then rename),
// so an interruption leaves the old or the new one, never half of one.
func writeCheckpoint(path string, cp checkpoint) error {
	data, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ExportOptions configure one `userve export` run.
type ExportOptions struct {
	Client   *Client
	Where    string
	WithHash bool
	Out      io.Writer
	Progress io.Writer
	Terminal bool
	Interval time.Duration
}

// Export writes the tenant's users to opt.Out as JSON Lines; it returns
// how many.
func Export(ctx context.Context, opt ExportOptions) (int64, time.Duration, error) {
	if opt.Interval == 0 {
		opt.Interval = 5 * time.Second
	}
	start := time.Now()
	prog := newProgress(opt.Progress, opt.Terminal, "export", 0, opt.Interval)
	defer prog.finish()
	var n int64
	err := opt.Client.Export(ctx, opt.Where, opt.WithHash, opt.Out, func() {
		n++
		if n%500 == 0 {
			prog.update(n, 0, 0)
		}
	})
	prog.update(n, 0, 0)
	return n, time.Since(start), err
}
