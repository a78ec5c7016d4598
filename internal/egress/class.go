// Package egress guards a tenant's outbound calls (code delivery webhooks,
// SMTP, the WeChat API, event webhooks): a pooled tenant's calls leave from
// the platform's network position, so the addresses a tenant may name must
// not reach into the platform. A Guard's dialer checks the address each
// connection actually goes to, after DNS resolution, inside net.Dialer's
// Control hook (so a name that resolves to a refused address, or rebinds to
// one, is refused at the socket), and refuses every address class below
// unless an Allow range covers it. Proxies from the environment are never
// used by a guarded client (a proxy would dial on the tenant's behalf).
package egress

import (
	"net/netip"
)

// Class names why an address is refused; "" is a public address.
type Class string

// The refused address classes. One table (ranges) maps prefixes to them.
const (
	Public      Class = ""
	Unspecified Class = "unspecified" // 0.0.0.0/8, ::
	Loopback    Class = "loopback"    // 127.0.0.0/8, ::1
	LinkLocal   Class = "link-local"  // 169.254.0.0/16 (cloud metadata 169.254.169.254), fe80::/10
	Private     Class = "private"     // RFC 1918, ULA fc00::/7, site-local fec0::/10, local NAT64
	Shared      Class = "shared"      // carrier-grade NAT 100.64.0.0/10
	Multicast   Class = "multicast"   // 224.0.0.0/4, ff00::/8
	Reserved    Class = "reserved"    // documentation, benchmarking, IETF, 240.0.0.0/4 and broadcast
	Denied      Class = "denied"      // a Policy.Deny range (the cluster's pod and service ranges)
	Invalid     Class = "invalid"     // not an IP address (a dial the guard cannot check)
)

// Refused lists every class a guard refuses (the metrics' label values).
var Refused = []Class{Unspecified, Loopback, LinkLocal, Private, Shared, Multicast, Reserved, Denied, Invalid}

type classRange struct {
	prefix netip.Prefix
	class  Class
}

// ranges are the special-purpose ranges (IANA's IPv4 and IPv6
// special-purpose registries) a tenant's call may not reach. IPv6 forms
// that embed an IPv4 address (mapped, compatible, NAT64, 6to4) are judged
// by the embedded address in Classify, not here.
var ranges = func() []classRange {
	table := []struct {
		cidr  string
		class Class
	}{
		{"0.0.0.0/8", Unspecified},
		{"10.0.0.0/8", Private},
		{"100.64.0.0/10", Shared},
		{"127.0.0.0/8", Loopback},
		{"169.254.0.0/16", LinkLocal},
		{"172.16.0.0/12", Private},
		{"192.0.0.0/24", Reserved},
		{"192.0.2.0/24", Reserved},
		{"192.88.99.0/24", Reserved},
		{"192.168.0.0/16", Private},
		{"198.18.0.0/15", Reserved},
		{"198.51.100.0/24", Reserved},
		{"203.0.113.0/24", Reserved},
		{"224.0.0.0/4", Multicast},
		{"240.0.0.0/4", Reserved}, // 255.255.255.255 included

		{"::/128", Unspecified},
		{"::1/128", Loopback},
		{"64:ff9b:1::/48", Private}, // local-use NAT64 (RFC 8215)
		{"100::/64", Reserved},      // discard
		{"2001::/23", Reserved},     // IETF protocol assignments, Teredo
		{"2001:db8::/32", Reserved}, // documentation
		{"3fff::/20", Reserved},     // documentation
		{"5f00::/16", Reserved},     // SRv6 SIDs
		{"fc00::/7", Private},
		{"fe80::/10", LinkLocal},
		{"fec0::/10", Private}, // deprecated site-local
		{"ff00::/8", Multicast},
	}
	out := make([]classRange, len(table))
	for i, r := range table {
		out[i] = classRange{netip.MustParsePrefix(r.cidr), r.class}
	}
	return out
}()

// Embedding IPv6 ranges: the IPv4 address they carry is what is reached.
var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour  = netip.MustParsePrefix("2002::/16")
	compatible = netip.MustParsePrefix("::/96") // deprecated IPv4-compatible
)

// Classify is the class of ip: Public, or why a tenant's call may not
// reach it. An IPv6 address that carries an IPv4 one (::ffff:a.b.c.d,
// ::a.b.c.d, 64:ff9b::a.b.c.d, 2002:aabb:ccdd::) is judged by the IPv4
// address; a zone is ignored.
func Classify(ip netip.Addr) Class {
	if !ip.IsValid() {
		return Invalid
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is6() {
		if v4, ok := embeddedIPv4(ip); ok {
			if c := Classify(v4); c != Public {
				return c
			}
			if compatible.Contains(ip) {
				return Reserved // ::a.b.c.d is routed nowhere today
			}
			return Public
		}
	}
	for _, r := range ranges {
		if r.prefix.Contains(ip) {
			return r.class
		}
	}
	return Public
}

// embeddedIPv4 is the IPv4 address an IPv6 address of nat64, sixToFour or
// compatible carries (:: and ::1 are not embeddings).
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	case compatible.Contains(ip) && ip != netip.IPv6Unspecified() && ip != netip.IPv6Loopback():
		return netip.AddrFrom4([4]byte(b[12:16])), true
	}
	return netip.Addr{}, false
}
