package store

import (
	"context"
	"io"
	"net"
	"testing"
)

// countingConn counts the reads that reach the connection.
type countingConn struct {
	net.Conn
	reads int
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads++
	return c.Conn.Read(p)
}

func TestBufferedConnReadsAReplyInOneRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	reply := append([]byte{0, 1, 0, 0}, make([]byte, 256-4)...) // a 256-byte wire message
	written := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			written <- err
			return
		}
		_, err = c.Write(reply)
		written <- err
		<-t.Context().Done()
		c.Close()
	}()
	conn, err := (&bufferedDialer{}).DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	bc := conn.(*bufferedConn)
	counter := &countingConn{Conn: bc.Conn}
	bc.r.Reset(counter)
	// On loopback a written segment is in our socket buffer when Write returns.
	if err := <-written; err != nil {
		t.Fatal(err)
	}

	// Read as the driver does: the length, then the rest.
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		t.Fatal(err)
	}
	rest := make([]byte, 256-4)
	if _, err := io.ReadFull(conn, rest); err != nil {
		t.Fatal(err)
	}
	if counter.reads != 1 {
		t.Errorf("%d reads reached the connection for a 256-byte reply; want 1", counter.reads)
	}
}
