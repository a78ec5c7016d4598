package egress_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"userve.dev/userve/internal/egress"
)

// probe is a TCP listener that records what it accepts.
type probe struct {
	ln    net.Listener
	conns chan net.Conn
}

func listen(t *testing.T, addr string) *probe {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &probe{ln: ln, conns: make(chan net.Conn, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(p.conns)
				return
			}
			p.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *probe) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// next is the next connection accepted.
func (p *probe) next(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-p.conns:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the listener accepted nothing")
		return nil
	}
}

// sawNothing proves no connection reached the listener before now: a marker
// connection is opened, and the first connection accepted must be it
// (accepts are first in, first out).
func (p *probe) sawNothing(t *testing.T) {
	t.Helper()
	marker, err := net.Dial("tcp", p.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer marker.Close()
	c := p.next(t)
	defer c.Close()
	if c.RemoteAddr().String() != marker.LocalAddr().String() {
		t.Fatalf("the listener accepted a connection from %s before the marker", c.RemoteAddr())
	}
}

// fakeDNS is a resolver whose DNS server answers every A and AAAA question
// with the addresses answer gives for the name.
func fakeDNS(t *testing.T, answer func(name string) []netip.Addr) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}
			for _, a := range answer(strings.TrimSuffix(q.Name.String(), ".")) {
				switch {
				case a.Is4() && q.Type == dnsmessage.TypeA:
					rh.Type = dnsmessage.TypeA
					_ = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
				case a.Is6() && q.Type == dnsmessage.TypeAAAA:
					rh.Type = dnsmessage.TypeAAAA
					_ = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
				}
			}
			msg, err := b.Finish()
			if err == nil {
				_, _ = pc.WriteTo(msg, from)
			}
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

func refusal(t *testing.T, err error, want egress.Class) {
	t.Helper()
	var re *egress.RefusedError
	if !errors.As(err, &re) || !errors.Is(err, egress.ErrRefused) {
		t.Fatalf("error %v (%T) is not a refusal", err, err)
	}
	if re.Class != want {
		t.Fatalf("refused as %q, want %q (%v)", re.Class, want, err)
	}
	if !strings.Contains(err.Error(), string(want)) {
		t.Fatalf("error %q does not name the class %q", err, want)
	}
}

// A refused dial never connects: the listener sees nothing, whichever form
// names the loopback address. The same dial unguarded does connect (the
// forms are real ways in), and an allowed range goes through.
func TestRefusedDialNeverConnects(t *testing.T) {
	p := listen(t, "127.0.0.1:0")
	port := strconv.Itoa(p.port())
	var refused []*egress.RefusedError
	g := egress.New(egress.Options{}).WithReport(func(e *egress.RefusedError) { refused = append(refused, e) })
	ctx := context.Background()

	hosts := []string{"127.0.0.1", "::ffff:127.0.0.1", "0.0.0.0", "::", "localhost", "127.0.0.2"}
	for _, host := range hosts {
		c, err := g.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
		if err == nil {
			c.Close()
			t.Fatalf("dial %s connected", host)
		}
		var re *egress.RefusedError
		if !errors.As(err, &re) {
			t.Fatalf("dial %s: %v is not a refusal", host, err)
		}
		p.sawNothing(t)
	}
	if len(refused) < len(hosts) {
		t.Fatalf("reported %d refusals, want one per attempt at least (%d)", len(refused), len(hosts))
	}
	// 0.0.0.0 is a way to the loopback on Linux: unguarded it connects.
	var d net.Dialer
	if c, err := d.DialContext(ctx, "tcp", "0.0.0.0:"+port); err == nil {
		c.Close()
		p.next(t).Close()
	}

	allowed := egress.New(egress.Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	c, err := allowed.DialContext(ctx, "tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatalf("allowed dial: %v", err)
	}
	defer c.Close()
	if got := p.next(t); got.RemoteAddr().String() != c.LocalAddr().String() {
		t.Fatalf("accepted %s, dialled from %s", got.RemoteAddr(), c.LocalAddr())
	}
	if _, err := allowed.DialContext(ctx, "udp", "127.0.0.1:53"); err == nil {
		t.Fatal("a UDP dial went through")
	}
}

// Whatever a resolver makes of a host (names that answer a loopback
// address, numeric forms some resolvers read as IPv4), the address checked
// is the address dialled: a name with one refused and one allowed address
// connects to the allowed one only.
func TestResolvedAddressIsTheOneChecked(t *testing.T) {
	allowedLn := listen(t, "127.0.0.2:0")
	port := strconv.Itoa(allowedLn.port())
	refusedLn := listen(t, "127.0.0.1:"+port)
	resolver := fakeDNS(t, func(name string) []netip.Addr {
		if strings.HasPrefix(name, "mixed.") {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")}
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}
	})
	g := egress.New(egress.Options{Resolver: resolver, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	ctx := context.Background()

	for _, host := range []string{"rebind.test", "0x7f.1", "localtest.me"} {
		_, err := g.DialContext(ctx, "tcp", host+":"+port)
		refusal(t, err, egress.Loopback)
	}
	// All-numeric forms (127.1, 2130706433, 0177.0.0.1) are no IP address
	// to Go and no valid name: they fail before any dial. With a resolver
	// that reads them as IPv4 they would be refused above.
	for _, host := range []string{"127.1", "2130706433", "0177.0.0.1", "017700000001"} {
		if _, err := g.DialContext(ctx, "tcp", host+":"+port); err == nil {
			t.Fatalf("dial %s connected", host)
		}
		if _, err := egress.New(egress.Options{}).DialContext(ctx, "tcp", host+":"+port); err == nil {
			t.Fatalf("dial %s with the system resolver connected", host)
		}
	}
	refusedLn.sawNothing(t)
	allowedLn.sawNothing(t)

	c, err := g.DialContext(ctx, "tcp", "mixed.test:"+port)
	if err != nil {
		t.Fatalf("dial of a name with an allowed address: %v", err)
	}
	defer c.Close()
	if got := allowedLn.next(t); got.RemoteAddr().String() != c.LocalAddr().String() {
		t.Fatalf("allowed listener accepted %s, dialled from %s", got.RemoteAddr(), c.LocalAddr())
	}
	refusedLn.sawNothing(t)
}

// A guarded HTTP client ignores proxies from the environment (a proxy would
// connect on the tenant's behalf): the request goes straight to the
// checked address, and a refused one fails without reaching the proxy.
func TestHTTPClientIgnoresEnvironmentProxies(t *testing.T) {
	proxy := listen(t, "127.0.0.1:0")
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:"+strconv.Itoa(proxy.port()))
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:"+strconv.Itoa(proxy.port()))
	t.Setenv("NO_PROXY", "")
	target := listen(t, "127.0.0.1:0")
	go func() {
		for c := range target.conns {
			_, _ = io.ReadAll(io.LimitReader(c, 1)) // read a byte of the request
			_, _ = io.WriteString(c, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
			c.Close()
		}
	}()
	resolver := fakeDNS(t, func(string) []netip.Addr { return []netip.Addr{netip.MustParseAddr("127.0.0.1")} })
	url := "http://relay.test:" + strconv.Itoa(target.port()) + "/hook"

	refused := egress.New(egress.Options{Resolver: resolver}).HTTPClient(5 * time.Second)
	_, err := refused.Post(url, "application/json", strings.NewReader("{}"))
	refusal(t, err, egress.Loopback)
	proxy.sawNothing(t)

	allowed := egress.New(egress.Options{Resolver: resolver, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}).HTTPClient(5 * time.Second)
	res, err := allowed.Post(url, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("allowed request: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d", res.StatusCode)
	}
	proxy.sawNothing(t)
}
