//go:build linux

package rawio

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// pair is a loopback TCP connection: the wrapped end and the plain peer.
func pair(t *testing.T) (wrapped, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := Listener{Listener: ln}.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	peer, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	wrapped = <-accepted
	if _, ok := wrapped.(*Conn); !ok {
		t.Fatalf("accepted %T, want *rawio.Conn", wrapped)
	}
	t.Cleanup(func() { wrapped.Close(); peer.Close() })
	return wrapped, peer
}

// Thirty connections in parallel each carry 4 MiB both ways, far more than
// a socket buffer holds: writes come back partial and wait for room, reads
// wait for data, and every byte arrives in order.
func TestConnCarriesEveryByteBothWays(t *testing.T) {
	const size = 4 << 20
	var wg sync.WaitGroup
	for range 30 {
		wrapped, peer := pair(t)
		want := make([]byte, size)
		rand.Read(want)
		wg.Add(1)
		go func() {
			defer wg.Done()
			echo := make(chan error, 1)
			go func() { // the peer echoes what it reads
				_, err := io.CopyN(peer, peer, size)
				echo <- err
			}()
			writeErr := make(chan error, 1)
			go func() {
				n, err := wrapped.Write(want)
				if err == nil && n != size {
					err = io.ErrShortWrite
				}
				writeErr <- err
			}()
			got := make([]byte, size)
			if _, err := io.ReadFull(wrapped, got); err != nil {
				t.Errorf("read: %v", err)
				return
			}
			if err := <-writeErr; err != nil {
				t.Errorf("write: %v", err)
			}
			if err := <-echo; err != nil {
				t.Errorf("echo: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Error("the bytes read back differ from those written")
			}
		}()
	}
	wg.Wait()
}

// Deadlines, the peer's close and the connection's own close read as they
// do on a net.TCPConn.
func TestConnErrorsReadAsTheNetPackages(t *testing.T) {
	wrapped, peer := pair(t)
	if err := wrapped.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := wrapped.Read(make([]byte, 10))
	var ne net.Error
	var oe *net.OpError
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("read past the deadline: %v; want a read timeout", err)
	}
	if err := wrapped.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	peer.Close()
	buf := make([]byte, 10)
	if n, err := io.ReadFull(wrapped, buf[:2]); err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("read %q, %v; want hi", buf[:n], err)
	}
	if n, err := wrapped.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("read after the peer closed: %d, %v; want io.EOF", n, err)
	}
	wrapped.Close()
	if _, err := wrapped.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after Close: %v; want net.ErrClosed", err)
	}
	if _, err := wrapped.Write([]byte("x")); !errors.Is(err, net.ErrClosed) || !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("write after Close: %v; want a write error wrapping net.ErrClosed", err)
	}
}

// Anything but a TCP connection is left as it is.
func TestWrapLeavesOtherConnectionsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := Wrap(a); got != a {
		t.Fatalf("Wrap(pipe) = %T, want the pipe", got)
	}
}

// Thirty goroutines write to one connection at once, as net.Conn allows:
// each write arrives whole, never interleaved with another's (the state of
// a call in progress is its own).
func TestConcurrentWritesArriveWhole(t *testing.T) {
	const writers, size = 30, 256 << 10
	wrapped, peer := pair(t)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := wrapped.Write(bytes.Repeat([]byte{byte(i)}, size)); err != nil {
				t.Errorf("write %d: %v", i, err)
			}
		}()
	}
	got := make([]byte, writers*size)
	_ = peer.SetReadDeadline(time.Now().Add(30 * time.Second)) // a lost write must fail, not hang
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	seen := map[byte]bool{}
	for off := 0; off < len(got); off += size {
		run := got[off : off+size]
		if !bytes.Equal(run, bytes.Repeat(run[:1], size)) || seen[run[0]] {
			t.Fatalf("the write at offset %d is not one writer's whole write", off)
		}
		seen[run[0]] = true
	}
}
