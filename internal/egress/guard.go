package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"
)

// DialTimeout bounds one connection attempt of a guarded dial.
const DialTimeout = 10 * time.Second

// ErrRefused is what every *RefusedError is (errors.Is).
var ErrRefused = errors.New("egress refused")

// RefusedError is a connection the guard did not open. Its text names the
// address and its class, never the URL or host name the tenant configured
// (a URL may carry a token).
type RefusedError struct {
	Network string
	Addr    netip.AddrPort // invalid when the dial named no IP address
	Class   Class
}

func (e *RefusedError) Error() string {
	if !e.Addr.IsValid() {
		return fmt.Sprintf("%v: %s network or address", ErrRefused, e.Class)
	}
	return fmt.Sprintf("%v: %s is a %s address", ErrRefused, e.Addr, e.Class)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Options configure a Guard.
type Options struct {
	// Allow are ranges whose addresses pass although their class is
	// refused (an SMTP relay or SMS gateway inside the platform: the
	// pool's --allow-egress).
	Allow []netip.Prefix
	// Deny are more ranges refused whatever their class and Allow (the
	// cluster's pod and service ranges when they are not private).
	Deny []netip.Prefix
	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver *net.Resolver
}

// Guard opens a tenant's outbound connections. A nil *Guard guards
// nothing: its clients and dials behave as net/http's and net's defaults
// (proxies from the environment included), which is a dedicated tenant's
// behaviour (docs/pools.md, "Outbound calls").
type Guard struct {
	allow, deny []netip.Prefix
	resolver    *net.Resolver
	report      func(*RefusedError)
}

// New is a guard with opts.
func New(opts Options) *Guard {
	return &Guard{allow: normalize(opts.Allow), deny: normalize(opts.Deny), resolver: opts.Resolver}
}

// normalize masks the prefixes and writes IPv4-mapped ones as IPv4, the
// form Check compares addresses in.
func normalize(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out
}

// WithReport is a copy of g that calls report with every refusal before
// the dial fails (a tenant's server counts them). Nil stays nil.
func (g *Guard) WithReport(report func(*RefusedError)) *Guard {
	if g == nil {
		return nil
	}
	c := *g
	c.report = report
	return &c
}

// Allowed are the ranges g lets through.
func (g *Guard) Allowed() []netip.Prefix {
	if g == nil {
		return nil
	}
	return slices.Clone(g.allow)
}

// Check is the class for which g refuses ip, or Public when g lets it
// through: Deny first, then the refused classes, then Allow.
func (g *Guard) Check(ip netip.Addr) Class {
	if !ip.IsValid() {
		return Invalid
	}
	ip = ip.WithZone("").Unmap()
	if g == nil {
		return Public
	}
	for _, p := range g.deny {
		if p.Contains(ip) {
			return Denied
		}
	}
	c := Classify(ip)
	if c == Public || c == Invalid {
		return c
	}
	for _, p := range g.allow {
		if p.Contains(ip) {
			return Public
		}
	}
	return c
}

// control runs for every address a guarded dialer connects to, after
// resolution and before connect(2): the address checked is the address
// reached.
func (g *Guard) control(_ context.Context, network, address string, _ syscall.RawConn) error {
	if network != "tcp4" && network != "tcp6" {
		return g.refuse(&RefusedError{Network: network, Class: Invalid})
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return g.refuse(&RefusedError{Network: network, Class: Invalid})
	}
	if c := g.Check(ap.Addr()); c != Public {
		return g.refuse(&RefusedError{Network: network, Addr: ap, Class: c})
	}
	return nil
}

func (g *Guard) refuse(e *RefusedError) error {
	if g.report != nil {
		g.report(e)
	}
	return e
}

// DialContext connects over TCP like net.Dialer, refusing what Check
// refuses (the SMTP sender's dial). Other networks are refused.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if g == nil {
		d := net.Dialer{Timeout: DialTimeout}
		return d.DialContext(ctx, network, addr)
	}
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		return nil, g.refuse(&RefusedError{Network: network, Class: Invalid})
	}
	d := net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second, Resolver: g.resolver, ControlContext: g.control}
	return d.DialContext(ctx, network, addr)
}

// HTTPClient is a client whose connections go through DialContext,
// directly: no proxy from the environment (a proxy would connect on the
// tenant's behalf, unchecked). Redirects are followed, each new
// connection checked. Each call has its own connection pool, so two
// tenants never share a connection.
func (g *Guard) HTTPClient(timeout time.Duration) *http.Client {
	if g == nil {
		return &http.Client{Timeout: timeout}
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           g.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}

// Prefixes is a flag.Value of CIDR ranges (repeated or comma-separated;
// a bare address is its own /32 or /128), for the pool's --allow-egress.
type Prefixes []netip.Prefix

func (p *Prefixes) String() string {
	if p == nil {
		return ""
	}
	s := make([]string, len(*p))
	for i, x := range *p {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

// Set adds the ranges of v.
func (p *Prefixes) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil || a.Zone() != "" {
				return fmt.Errorf("%q is not a CIDR range or an IP address", f)
			}
			*p = append(*p, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		pr, err := netip.ParsePrefix(f)
		if err != nil {
			return fmt.Errorf("%q is not a CIDR range (such as 10.0.0.0/8)", f)
		}
		*p = append(*p, pr.Masked())
	}
	return nil
}
