package logbuffer

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingWriter keeps every Write it gets, safe for the flush timer.
type recordingWriter struct {
	mu     sync.Mutex
	writes []string
	err    error
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, string(p))
	return len(p), w.err
}

func (w *recordingWriter) snapshot() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.writes...)
}

func TestLogBufferBatchesLinesIntoOneWrite(t *testing.T) {
	out := &recordingWriter{}
	b := New(out, 20*time.Millisecond)
	for i := range 100 {
		if n, err := b.Write([]byte("line\n")); n != 5 || err != nil {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	if got := out.snapshot(); len(got) != 0 {
		t.Fatalf("lines were written before the flush interval: %d writes", len(got))
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(out.snapshot()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := out.snapshot()
	if len(got) != 1 || got[0] != strings.Repeat("line\n", 100) {
		t.Fatalf("after the interval: %d writes, first %q; want the 100 lines in one write", len(got), got)
	}
	// A later line arms the timer again.
	_, _ = b.Write([]byte("again\n"))
	for len(out.snapshot()) == 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := out.snapshot(); len(got) != 2 || got[1] != "again\n" {
		t.Fatalf("second flush: %q", got)
	}
}

func TestLogBufferFlushesWhenFull(t *testing.T) {
	out := &recordingWriter{}
	b := New(out, time.Hour)
	line := bytes.Repeat([]byte("x"), 1000)
	for range maxBuffered/len(line) + 1 {
		_, _ = b.Write(line)
	}
	if got := out.snapshot(); len(got) != 1 || len(got[0]) < maxBuffered {
		t.Fatalf("a full buffer: %d writes; want one of at least %d bytes", len(got), maxBuffered)
	}
}

func TestLogBufferCloseFlushesThenWritesThrough(t *testing.T) {
	out := &recordingWriter{}
	b := New(out, time.Hour)
	_, _ = b.Write([]byte("a\n"))
	_, _ = b.Write([]byte("b\n"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	_, _ = b.Write([]byte("late\n"))
	if got := out.snapshot(); len(got) != 2 || got[0] != "a\nb\n" || got[1] != "late\n" {
		t.Fatalf("writes %q; want the buffered lines, then the late line on its own", got)
	}
}

func TestLogBufferCloseReportsAFailedWrite(t *testing.T) {
	out := &recordingWriter{err: errors.New("disk full")}
	b := New(out, time.Hour)
	_, _ = b.Write([]byte("a\n"))
	if err := b.Close(); err == nil || err.Error() != "disk full" {
		t.Fatalf("Close: %v; want the write error", err)
	}
}
