//go:build linux

// Package rawio reads and writes TCP connections with raw system calls
// instead of the runtime's syscall wrappers, to spare a tenant server the
// scheduler's work around each one.
//
// A tenant at low concurrency sleeps twice per request (for the client,
// then for MongoDB). Every system call the runtime wraps (entersyscall)
// wakes the runtime's monitor thread from that sleep and makes it poll
// every 20 µs until the process sleeps again, taking the P away from any
// call longer than that, which hands the P to a second thread: 4 of the
// 5.4 context switches per detail request, 17% of the server's CPU at c=1
// (docs/bench.md, "A dedicated tenant's weight"). The sockets are
// non-blocking, so read(2) and write(2) on them never wait: they need none
// of that. When there is nothing to read or no room to write, the
// connection waits in the runtime's network poller as usual, honouring its
// deadlines.
package rawio

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a TCP connection whose Read and Write use raw system calls;
// everything else (deadlines, Close, addresses, ReadFrom) is the
// connection's own.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	// State of the read and the write in progress, each guarded by its own
	// lock for the whole call (net.Conn allows concurrent callers; the fd's
	// locks cover only the callbacks); bound callbacks keep each call free
	// of allocations.
	rmu, wmu        sync.Mutex
	rbuf, wbuf      []byte
	rn, wn          int
	rerrno, werrno  syscall.Errno
	readFn, writeFn func(fd uintptr) bool
}

// Wrap returns c reading and writing with raw system calls when it is a
// TCP connection, else c itself.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	conn := &Conn{TCPConn: tc, rc: rc}
	conn.readFn, conn.writeFn = conn.read, conn.write
	return conn
}

func (c *Conn) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait in the poller
		case 0:
			c.rn = int(n)
		}
		c.rerrno = e
		return true
	}
}

func (c *Conn) write(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		p := c.wbuf[c.wn:]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // the socket buffer is full: wait in the poller
		case 0:
			c.wn += int(n)
			continue
		}
		c.werrno = e
		return true
	}
	return true
}

// Read reads like net.Conn's Read: at most len(p) bytes, io.EOF at the end.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rbuf, c.rn, c.rerrno = p, 0, 0
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerrno
	c.rbuf = nil
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p or returns why not, like net.Conn's Write.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf, c.wn, c.werrno = p, 0, 0
	err := c.rc.Write(c.writeFn)
	n, errno := c.wn, c.werrno
	c.wbuf = nil
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

// opError is err as the net package reports it on op, so that callers'
// checks (net.Error's Timeout, net.ErrClosed, Op "read") hold.
func (c *Conn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err // RawConn says "raw-read"; the net package says "read"
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Listener wraps the connections ln accepts.
type Listener struct{ net.Listener }

// Accept accepts the next connection, wrapped.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}
