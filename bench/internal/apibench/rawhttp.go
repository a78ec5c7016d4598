package apibench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// rawClient is the load's HTTP/1.1 client: keep-alive connections, each
// request written with one write(2) and its answer read in the calling
// goroutine. net/http's client hands every request between three
// goroutines; on two shared cores the harness's own CPU competes with the
// server it measures (the driver ceiling has no HTTP side at all), so the
// load uses this lean client. Checks and set-up use net/http.
type rawClient struct {
	addr  string // host:port
	host  string // Host header
	idle  chan *rawConn
	dial  net.Dialer
	limit int64 // largest answer body read
}

type rawConn struct {
	c   net.Conn
	br  *bufio.Reader
	req []byte
}

func newRawClient(addr string, maxIdle int) *rawClient {
	return &rawClient{addr: addr, host: addr, idle: make(chan *rawConn, maxIdle), limit: 8 << 20}
}

// rawResponse is a status and, when asked for, the body.
type rawResponse struct {
	Status int
	Body   []byte
}

// Do sends one request. The body is read (and kept when keep is set); a
// connection the server wants closed, or any error, is not reused.
func (c *rawClient) Do(ctx context.Context, method, path string, body []byte, auth string, keep bool) (rawResponse, error) {
	conn, err := c.get(ctx)
	if err != nil {
		return rawResponse{}, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.c.SetDeadline(dl)
	} else {
		_ = conn.c.SetDeadline(time.Time{})
	}
	conn.req = appendRequest(conn.req[:0], method, path, c.host, auth, body)
	if _, err := conn.c.Write(conn.req); err != nil {
		conn.c.Close()
		return rawResponse{}, err
	}
	res, reuse, err := readResponse(conn.br, keep, c.limit)
	if err != nil || !reuse {
		conn.c.Close()
		return res, err
	}
	select {
	case c.idle <- conn:
	default:
		conn.c.Close()
	}
	return res, nil
}

func (c *rawClient) get(ctx context.Context) (*rawConn, error) {
	select {
	case conn := <-c.idle:
		return conn, nil
	default:
	}
	nc, err := c.dial.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, err
	}
	return &rawConn{c: nc, br: bufio.NewReaderSize(nc, 16<<10)}, nil
}

// Close closes the idle connections.
func (c *rawClient) Close() {
	for {
		select {
		case conn := <-c.idle:
			conn.c.Close()
		default:
			return
		}
	}
}

func appendRequest(b []byte, method, path, host, auth string, body []byte) []byte {
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\nUser-Agent: userve-bench\r\n"...)
	if auth != "" {
		b = append(b, "Authorization: "...)
		b = append(b, auth...)
		b = append(b, "\r\n"...)
	}
	if body != nil {
		b = append(b, "Content-Type: application/json\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n\r\n"...)
		return append(b, body...)
	}
	return append(b, "\r\n"...)
}

var errMalformedResponse = errors.New("malformed HTTP response")

// readResponse reads one answer: status line, headers, and a body framed by
// Content-Length or chunked encoding. reuse is false when the server closes
// the connection.
func readResponse(br *bufio.Reader, keep bool, limit int64) (res rawResponse, reuse bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return res, false, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return res, false, fmt.Errorf("%w: status line %q", errMalformedResponse, line)
	}
	res.Status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return res, false, fmt.Errorf("%w: status line %q", errMalformedResponse, line)
	}
	length, chunked, reuse := int64(-1), false, true
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return res, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return res, false, fmt.Errorf("%w: header %q", errMalformedResponse, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return res, false, fmt.Errorf("%w: Content-Length %q", errMalformedResponse, value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			reuse = !bytes.EqualFold(value, []byte("close"))
		}
	}
	var sink io.Writer = io.Discard
	var kept bytes.Buffer
	if keep {
		sink = &kept
	}
	switch {
	case chunked:
		err = copyChunked(sink, br, limit)
	case length >= 0:
		if length > limit {
			return res, false, fmt.Errorf("answer body of %d bytes is over the bench's %d", length, limit)
		}
		_, err = io.CopyN(sink, br, length)
	default:
		return res, false, fmt.Errorf("%w: neither Content-Length nor chunked", errMalformedResponse)
	}
	if err != nil {
		return res, false, err
	}
	if keep {
		res.Body = kept.Bytes()
	}
	return res, reuse, nil
}

func copyChunked(dst io.Writer, br *bufio.Reader, limit int64) error {
	var total int64
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: chunk size %q", errMalformedResponse, line)
		}
		if total += n; total > limit {
			return fmt.Errorf("answer body over the bench's %d bytes", limit)
		}
		if n == 0 {
			// Trailers, then the final empty line.
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := io.CopyN(dst, br, n); err != nil {
			return err
		}
		if crlf, err := br.ReadSlice('\n'); err != nil || len(bytes.TrimRight(crlf, "\r\n")) != 0 {
			return fmt.Errorf("%w: no CRLF after a chunk", errMalformedResponse)
		}
	}
}
