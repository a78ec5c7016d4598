// Package logbuffer batches a server's log lines into few writes.
package logbuffer

import (
	"io"
	"sync"
	"time"
)

// Buffer batches log lines into few writes: a tenant server logs a line
// per request, and a write(2) per line cost a system call per request
// (about 2% of a detail request's CPU, measured by make bench). Lines wait
// at most flushEvery, or until maxBuffered bytes are waiting; Close writes
// the rest. A hard kill loses at most flushEvery of lines.
type Buffer struct {
	out        io.Writer
	flushEvery time.Duration

	mu     sync.Mutex
	buf    []byte
	timer  *time.Timer // armed while lines wait
	err    error       // the first failed write, reported by Close
	closed bool
}

const maxBuffered = 64 << 10

// New buffers writes to out, flushing at least every flushEvery.
func New(out io.Writer, flushEvery time.Duration) *Buffer {
	return &Buffer{out: out, flushEvery: flushEvery}
}

// Write keeps p (one log line) for the next flush. After Close it writes
// through, so late lines (shutdown messages) are not lost.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return b.out.Write(p)
	}
	b.buf = append(b.buf, p...)
	switch {
	case len(b.buf) >= maxBuffered:
		b.flushLocked()
	case b.timer == nil:
		b.timer = time.AfterFunc(b.flushEvery, b.Flush)
	}
	return len(p), nil
}

// Flush writes what waits.
func (b *Buffer) Flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
}

func (b *Buffer) flushLocked() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if len(b.buf) == 0 {
		return
	}
	if _, err := b.out.Write(b.buf); err != nil && b.err == nil {
		b.err = err
	}
	if cap(b.buf) > 4*maxBuffered {
		b.buf = nil // a burst's buffer is not kept for good
	} else {
		b.buf = b.buf[:0]
	}
}

// Close flushes and makes later writes go straight through.
func (b *Buffer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	b.closed = true
	return b.err
}
