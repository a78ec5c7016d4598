package account

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddress is the address key the per-address budgets count r
// against: its client's address (clientAddress) as addressKey counts it.
// trusted are the proxies whose X-Forwarded-For is believed.
func ClientAddress(r *http.Request, trusted []netip.Prefix) string {
	return addressKey(clientAddress(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), trusted))
}

// addressKey is what a per-address limit counts: an IPv4 address as it is,
// an IPv6 address by its /64, the smallest block a provider hands one
// customer (one host can otherwise use 2^64 addresses).
func addressKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// clientAddress is the TCP peer, unless the peer is a trusted proxy: then it
// is the right-most X-Forwarded-For address that is not a trusted proxy
// itself. Addresses to the left of that one are whatever the client chose to
// send, so they are never believed; a header that does not parse leaves the
// last trusted hop, so a forged header cannot spread one client over many
// keys.
func clientAddress(remoteAddr string, forwardedFor []string, trusted []netip.Prefix) string {
	peer := remoteAddr
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		peer = host
	}
	addr, err := netip.ParseAddr(peer)
	if err != nil || !isTrusted(addr, trusted) {
		return peer
	}
	var hops []string
	for _, v := range forwardedFor {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return addr.String()
		}
		hop = hop.Unmap()
		if !isTrusted(hop, trusted) {
			return hop.String()
		}
		addr = hop
	}
	return addr.String()
}

func isTrusted(addr netip.Addr, trusted []netip.Prefix) bool {
	addr = addr.Unmap()
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
