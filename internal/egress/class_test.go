package egress

import (
	"net"
	"net/netip"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		ip   string
		want Class
	}{
		{"127.0.0.1", Loopback},
		{"127.255.255.254", Loopback},
		{"::1", Loopback},
		{"::ffff:127.0.0.1", Loopback}, // IPv4-mapped
		{"::127.0.0.1", Loopback},      // IPv4-compatible
		{"64:ff9b::7f00:1", Loopback},  // NAT64 of 127.0.0.1
		{"2002:7f00:1::", Loopback},    // 6to4 of 127.0.0.1
		{"0.0.0.0", Unspecified},
		{"0.1.2.3", Unspecified},
		{"::", Unspecified},
		{"::ffff:0.0.0.0", Unspecified},
		{"169.254.169.254", LinkLocal}, // cloud metadata
		{"::ffff:169.254.169.254", LinkLocal},
		{"64:ff9b::a9fe:a9fe", LinkLocal},
		{"fe80::1", LinkLocal},
		{"fe80::1%eth0", LinkLocal},
		{"10.0.0.1", Private},
		{"172.16.0.1", Private},
		{"172.31.255.255", Private},
		{"192.168.1.1", Private},
		{"::ffff:10.1.2.3", Private},
		{"fd00::1", Private},
		{"fc00::1", Private},
		{"fd00:ec2::254", Private}, // AWS's IPv6 metadata
		{"fec0::1", Private},
		{"64:ff9b:1::a", Private},
		{"100.64.0.1", Shared},
		{"100.127.255.255", Shared},
		{"224.0.0.1", Multicast},
		{"239.255.255.250", Multicast},
		{"ff02::1", Multicast},
		{"255.255.255.255", Reserved},
		{"240.0.0.1", Reserved},
		{"192.0.0.170", Reserved},
		{"198.18.0.1", Reserved},
		{"192.0.2.1", Reserved},
		{"2001:db8::1", Reserved},
		{"2001::1", Reserved}, // Teredo
		{"::8.8.8.8", Reserved},
		{"100::1", Reserved},

		{"8.8.8.8", Public},
		{"1.1.1.1", Public},
		{"172.32.0.1", Public},
		{"100.128.0.1", Public},
		{"169.255.0.1", Public},
		{"::ffff:8.8.8.8", Public},
		{"64:ff9b::808:808", Public}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", Public},  // 6to4 of 8.8.8.8
		{"2606:4700:4700::1111", Public},
		{"2001:4860:4860::8888", Public},
	} {
		if got := Classify(netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("Classify(%s) = %q, want %q", c.ip, got, c.want)
		}
	}
	if got := Classify(netip.Addr{}); got != Invalid {
		t.Errorf("Classify(zero) = %q, want invalid", got)
	}
}

func TestCheckAllowAndDeny(t *testing.T) {
	g := New(Options{
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::ffff:10.1.0.0/112"), netip.MustParsePrefix("10.2.3.4/8")},
		Deny:  []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("203.0.112.0/24")},
	})
	for _, c := range []struct {
		ip   string
		want Class
	}{
		{"127.0.0.1", Public},
		{"::ffff:127.0.0.1", Public}, // an allowed IPv4 range covers its mapped form
		{"::1", Loopback},            // 127.0.0.0/8 says nothing of IPv6
		{"10.1.2.3", Public},         // a mapped allow range is its IPv4 range
		{"10.200.0.1", Public},       // 10.2.3.4/8 is 10.0.0.0/8
		{"10.96.0.1", Denied},        // deny wins over allow
		{"203.0.112.9", Denied},      // deny reaches public addresses too
		{"169.254.169.254", LinkLocal},
		{"8.8.8.8", Public},
	} {
		if got := g.Check(netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("Check(%s) = %q, want %q", c.ip, got, c.want)
		}
	}
	var none *Guard
	if got := none.Check(netip.MustParseAddr("127.0.0.1")); got != Public {
		t.Errorf("nil guard Check = %q, want public (no guard)", got)
	}
}

func TestPrefixesFlag(t *testing.T) {
	var p Prefixes
	if err := p.Set("10.0.0.0/8, 192.168.1.7"); err != nil {
		t.Fatal(err)
	}
	if err := p.Set("fd00::/8"); err != nil {
		t.Fatal(err)
	}
	if got := p.String(); got != "10.0.0.0/8,192.168.1.7/32,fd00::/8" {
		t.Fatalf("prefixes = %s", got)
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0/8", "fe80::1%eth0"} {
		var q Prefixes
		if err := q.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted %v", bad, q)
		}
	}
}

// FuzzClassify checks the classifier against its invariants and against
// the standard library's own predicates on any address.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::ffff:127.0.0.1", "::", "0.0.0.0", "169.254.169.254", "fd00::1",
		"64:ff9b::7f00:1", "2002:a00:1::", "::10.0.0.1", "8.8.8.8", "2606:4700::1", "ff02::1", "fe80::1%eth0"} {
		a := netip.MustParseAddr(s).As16()
		f.Add(a[:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != 4 && len(b) != 16 {
			return
		}
		ip, _ := netip.AddrFromSlice(b)
		c := Classify(ip)
		// The mapped and plain forms of an IPv4 address are one address.
		if ip.Is4() {
			if m := Classify(netip.AddrFrom16(ip.As16())); m != c {
				t.Fatalf("Classify(%s) = %q but its mapped form is %q", ip, c, m)
			}
		}
		std := net.IP(b)
		if c == Public && (std.IsLoopback() || std.IsPrivate() || std.IsLinkLocalUnicast() ||
			std.IsLinkLocalMulticast() || std.IsMulticast() || std.IsUnspecified() || std.IsInterfaceLocalMulticast()) {
			t.Fatalf("Classify(%s) = public, but the standard library says it is local", ip)
		}
		// An empty guard refuses exactly the classified addresses; allowing
		// everything refuses nothing.
		if got := New(Options{}).Check(ip); got != c {
			t.Fatalf("Check(%s) = %q, Classify %q", ip, got, c)
		}
		all := New(Options{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}})
		if got := all.Check(ip); got != Public {
			t.Fatalf("allow-all Check(%s) = %q", ip, got)
		}
	})
}

// FuzzPrefixesSet: --allow-egress never panics, keeps only masked valid
// ranges, and what it prints parses back to the same ranges.
func FuzzPrefixesSet(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "10.0.0.0/8,fd00::/8", " 192.168.1.7 ", "::ffff:10.0.0.0/104", "1.2.3.4/33", ",,", "fe80::1%eth0", "10.1.2.3/8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		var p Prefixes
		if err := p.Set(v); err != nil {
			return
		}
		for _, x := range p {
			if !x.IsValid() || x != x.Masked() {
				t.Fatalf("Set(%q) kept %v", v, x)
			}
		}
		var q Prefixes
		if err := q.Set(p.String()); err != nil || q.String() != p.String() {
			t.Fatalf("Set(%q) = %s, which parses back as %s (%v)", v, p.String(), q.String(), err)
		}
	})
}
