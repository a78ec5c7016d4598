package plus

import (
	"net/netip"
	"testing"
)

func TestClientAddress(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"no trusted proxies: the header is ignored", "203.0.113.7:5000", []string{"198.51.100.1"}, nil, "203.0.113.7"},
		{"untrusted peer: the header is ignored", "203.0.113.7:5000", []string{"198.51.100.1"}, trusted, "203.0.113.7"},
		{"trusted peer, one hop", "10.1.2.3:5000", []string{"198.51.100.1"}, trusted, "198.51.100.1"},
		{"client-sent addresses left of the real one are not believed", "10.1.2.3:5000", []string{"1.1.1.1, 198.51.100.1"}, trusted, "198.51.100.1"},
		{"a chain of trusted proxies", "10.1.2.3:5000", []string{"198.51.100.1, 10.9.9.9", "10.8.8.8"}, trusted, "198.51.100.1"},
		{"only trusted hops: the left-most of them", "10.1.2.3:5000", []string{"10.7.7.7, 10.8.8.8"}, trusted, "10.7.7.7"},
		{"trusted peer without the header", "10.1.2.3:5000", nil, trusted, "10.1.2.3"},
		{"a hop that does not parse stops at the last trusted one", "10.1.2.3:5000", []string{"198.51.100.1, junk"}, trusted, "10.1.2.3"},
		{"IPv6 through an IPv6 proxy", "[fd00::1]:443", []string{"2001:db8::5"}, trusted, "2001:db8::5"},
		{"IPv4-mapped hop", "10.1.2.3:5000", []string{"::ffff:198.51.100.9"}, trusted, "198.51.100.9"},
		{"a peer without a port", "10.1.2.3", []string{"198.51.100.1"}, trusted, "198.51.100.1"},
	}
	for _, tt := range tests {
		if got := clientAddress(tt.remote, tt.xff, tt.trusted); got != tt.want {
			t.Errorf("%s: clientAddress(%q, %q) = %q; want %q", tt.name, tt.remote, tt.xff, got, tt.want)
		}
	}
}
