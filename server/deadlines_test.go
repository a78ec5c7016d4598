package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"userve.dev/userve/server"
	"userve.dev/userve/server/store"
	"userve.dev/userve/test/mongofixture"
)

// Short deadlines for the API listener, so that the tests see them act.
var shortTimeouts = server.HTTPTimeouts{ReadHeader: 400 * time.Millisecond, Read: 400 * time.Millisecond, Write: 2 * time.Second}

// serveShort serves a fresh database with shortTimeouts.
func serveShort(t *testing.T) string {
	t.Helper()
	st, err := store.Connect(mongofixture.URI(t), mongofixture.NewDatabase(t).Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	base, _, stop := serveStoreWith(t, st, server.Options{HTTP: shortTimeouts})
	t.Cleanup(func() { _ = stop() })
	waitReady(t, base, 30*time.Second)
	return strings.TrimPrefix(base, "http://")
}

// trickle sends the request's headers and then its body one byte every
// 20 ms, until the body is sent or the server closes the connection. It
// returns the response's status line and how long the server kept the
// connection from the first byte sent until it closed it (or cut is false
// when the client's own limit of 'within' ran out first).
func trickle(t *testing.T, addr, method, path, auth, body string, within time.Duration, extraHeaders ...string) (status string, held time.Duration, cut bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_ = conn.SetDeadline(start.Add(within))
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: %d\r\n", method, path, len(body))
	if auth != "" {
		head += "Authorization: Bearer " + auth + "\r\n"
	}
	for _, h := range extraHeaders {
		head += h + "\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := range len(body) {
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return // the server closed the connection
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err == nil {
		status = res.Status
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.Close {
			return status, time.Since(start), true
		}
		// Kept alive: the connection ends when the server stops waiting
		// for the rest of the body (or the next request).
		_, err = br.ReadByte()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return status, time.Since(start), false
	}
	return status, time.Since(start), true
}

// An anonymous client that promises a body to the import or export route
// and trickles it is cut at the server's read deadline (400 ms here), as
// every other request is: the bulk routes' 5-minute and 2-hour deadlines
// are only for requests with an admin token. On the old code the
// anonymous request got those deadlines before its token was checked, and
// the connection stayed open for as long as the client kept trickling.
func TestAnonymousBulkRequestsKeepTheNormalDeadlines(t *testing.T) {
	addr := serveShort(t)
	body := strings.Repeat("x", 400) // 8 s at one byte every 20 ms
	for _, tc := range []struct{ method, path, auth string }{
		{"POST", "/userve/v1/import/users/?format=thinksns", ""},
		{"POST", "/oserve/v1/import/users/?format=thinksns", "wrong-token"},
		{"GET", "/userve/v1/export/users/", ""},
		{"POST", "/userve/v2.0/miniapp/user_profile/", ""}, // an ordinary route, for comparison
	} {
		t.Run(tc.method+" "+tc.path+" "+tc.auth, func(t *testing.T) {
			status, held, cut := trickle(t, addr, tc.method, tc.path, tc.auth, body, 4*time.Second)
			if !cut {
				t.Fatalf("the server still held the connection after %s (answer %q); want it cut at the %s read deadline",
					held.Round(time.Millisecond), status, shortTimeouts.Read)
			}
			if status != "" && !strings.HasPrefix(status, "401") {
				t.Errorf("answer %q, want 401 or none", status)
			}
			if held > 2*time.Second {
				t.Errorf("connection held %s, want about %s", held.Round(time.Millisecond), shortTimeouts.Read)
			}
		})
	}
}

// With the admin token, the import still gets its long deadline: a batch
// trickled over far longer than the server-wide read deadline goes in.
func TestAuthenticatedImportOutlivesTheNormalReadDeadline(t *testing.T) {
	addr := serveShort(t)
	record := `{"id": 7, "name": "slowpoke"}` // ~0.6 s at one byte every 20 ms
	status, held, _ := trickle(t, addr, "POST", "/userve/v1/import/users/?format=thinksns", adminToken, record, 20*time.Second, "Connection: close")
	if !strings.HasPrefix(status, "200") {
		t.Fatalf("trickled import answered %q after %s, want 200", status, held.Round(time.Millisecond))
	}
	if held < shortTimeouts.Read {
		t.Fatalf("the body took %s, not longer than the %s read deadline: the test proves nothing", held, shortTimeouts.Read)
	}
}
