package account

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

func TestAddressKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"198.51.100.7", "198.51.100.7"},
		{"::ffff:198.51.100.7", "198.51.100.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"::1", "::/64"},
		{"not-an-address", "not-an-address"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := addressKey(tt.in); got != tt.want {
			t.Errorf("addressKey(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzAddressKey: any input gives a key without panicking; an IPv6 address
// gives the /64 that contains it, the same for every address in it.
func FuzzAddressKey(f *testing.F) {
	for _, s := range []string{"198.51.100.7", "::ffff:1.2.3.4", "2001:db8::1", "fe80::1%eth0", "", "::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key := addressKey(s)
		a, err := netip.ParseAddr(s)
		if err != nil {
			if key != s {
				t.Fatalf("addressKey(%q) = %q for a non-address", s, key)
			}
			return
		}
		a = a.Unmap()
		if !a.Is6() {
			if key != a.String() {
				t.Fatalf("addressKey(%q) = %q, want %q", s, key, a.String())
			}
			return
		}
		p, err := netip.ParsePrefix(key)
		if err != nil || p.Bits() != 64 || !p.Contains(a.WithZone("")) {
			t.Fatalf("addressKey(%q) = %q, not a /64 containing it", s, key)
		}
		b := a.WithZone("").As16()
		b[15] ^= 0xff
		if other := addressKey(netip.AddrFrom16(b).String()); other != key {
			t.Fatalf("%q and its neighbour get %q and %q", s, key, other)
		}
	})
}
