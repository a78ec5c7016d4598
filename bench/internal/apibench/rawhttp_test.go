package apibench

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestRawClientAgainstNetHTTP(t *testing.T) {
	var conns atomic.Int64
	big := strings.Repeat("0123456789", 10_000)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Auth", r.Header.Get("Authorization"))
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization")+" "+string(body))
		case "/chunked":
			_, _ = io.WriteString(w, big[:5000])
			w.(http.Flusher).Flush() // forces chunked framing
			_, _ = io.WriteString(w, big[5000:])
		case "/close":
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "bye")
		default:
			http.NotFound(w, r)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := newRawClient(strings.TrimPrefix(srv.URL, "http://"), 4)
	defer c.Close()
	ctx := context.Background()

	res, err := c.Do(ctx, "POST", "/echo?a=1", []byte(`{"x":1}`), "Bearer t", true)
	if err != nil || res.Status != 201 || string(res.Body) != `POST /echo?a=1 Bearer t {"x":1}` {
		t.Fatalf("POST: %d %q %v", res.Status, res.Body, err)
	}
	res, err = c.Do(ctx, "GET", "/chunked", nil, "", true)
	if err != nil || res.Status != 200 || string(res.Body) != big {
		t.Fatalf("chunked GET: %d, %d bytes, %v", res.Status, len(res.Body), err)
	}
	res, err = c.Do(ctx, "GET", "/missing", nil, "", false)
	if err != nil || res.Status != 404 || res.Body != nil {
		t.Fatalf("404 without keeping the body: %d %q %v", res.Status, res.Body, err)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 keep-alive requests; want 1", n)
	}
	for range 2 {
		if res, err := c.Do(ctx, "GET", "/close", nil, "", true); err != nil || string(res.Body) != "bye" {
			t.Fatalf("Connection: close answer: %q %v", res.Body, err)
		}
	}
	// The first goes over the kept connection, which then closes; the
	// second needs a new one.
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections after two Connection: close answers; want 2 (a closed one is not reused)", n)
	}
}

func TestReadResponseRejectsMalformedAnswers(t *testing.T) {
	for _, raw := range []string{
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"SMTP ready\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\nbody without framing",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	} {
		_, _, err := readResponse(bufio.NewReader(strings.NewReader(raw)), true, 1<<20)
		if !errors.Is(err, errMalformedResponse) {
			t.Errorf("%q: err = %v; want errMalformedResponse", raw, err)
		}
	}
	// A truncated answer is an error too (not a short success).
	_, _, err := readResponse(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")), true, 1<<20)
	if err == nil {
		t.Error("a truncated body was accepted")
	}
}
