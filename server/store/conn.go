package store

import (
	"bufio"
	"context"
	"net"

	"userve.dev/userve/internal/rawio"
)

// bufferedDialer dials MongoDB connections whose reads are buffered. The
// driver reads every reply in two reads, the 4-byte length and then the
// rest; through a buffer both come from one read(2) in the common case, one
// system call less per operation (on this project's VMs a system call costs
// several microseconds; see docs/bench.md).
type bufferedDialer struct{ net.Dialer }

func (d *bufferedDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := d.Dialer.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	c = rawio.Wrap(c) // raw reads and writes: see internal/rawio
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, 16<<10)}, nil
}

// bufferedConn is a net.Conn whose Read goes through r; deadlines, writes
// and Close are the connection's own.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
