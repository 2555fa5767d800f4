package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/hagent/hagent/ha/mip"
)

// The bounded storage of a parsed request and the configured maximum are
// one number: a config allowing more would promise prefixes no binding holds.
func TestMaxMobileNetworksMatchesWire(t *testing.T) {
	if MaxMobileNetworks != mip.MaxMobileNetPrefixes {
		t.Fatalf("MaxMobileNetworks %d, mip.MaxMobileNetPrefixes %d", MaxMobileNetworks, mip.MaxMobileNetPrefixes)
	}
}

// router is a [[node]] of one mobile router with the given extra lines.
func router(home, extra string) string {
	return "[[node]]\nhome_address = \"" + home + "\"\nspi = 256\nkey = \"text:0123456789abcdef\"\n" + extra + "\n"
}

func TestMobileNetworks(t *testing.T) {
	c := mustParse(t, base+
		router("192.0.2.9", `mobile_networks = ["10.1.0.0/24", "10.2.0.5/32", "172.16.0.0/12"]`)+
		router("192.0.2.10", "")+
		"[[node]]\npool = \"192.0.2.128/25\"\nspi = 300\nkey = \"text:0123456789abcdef\"\nmax_mobile_networks = 2\n"+
		"mobile_networks = [\"10.8.0.0/16\", \"10.9.0.0/16\", \"10.10.0.0/16\"]\n"+
		"[[node]]\npool = \"192.0.2.64/26\"\nnai = \"r1@fleet\"\nspi = 301\nkey = \"text:0123456789abcdef\"\nmobile_networks = [\"10.20.0.0/24\"]\n")
	want := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("10.2.0.5/32"), netip.MustParsePrefix("172.16.0.0/12")}
	r := &c.Nodes[0]
	if !slices.Equal(r.MobileNetworks, want) || r.MaxMobileNetworks != 8 || !slices.Equal(r.ImplicitMobileNetworks(), want) {
		t.Fatalf("router: %v max %d implicit %v", r.MobileNetworks, r.MaxMobileNetworks, r.ImplicitMobileNetworks())
	}
	for p, ok := range map[string]bool{
		"10.1.0.0/24": true, "10.1.0.128/25": true, "10.1.0.7/32": true, "10.2.0.5/32": true, "172.20.0.0/16": true,
		"10.1.0.0/23": false, "10.2.0.4/31": false, "10.3.0.0/24": false, "0.0.0.0/0": false,
	} {
		if got := r.MayClaim(netip.MustParsePrefix(p)); got != ok {
			t.Errorf("MayClaim(%s) = %v, want %v", p, got, ok)
		}
	}
	if n := c.Nodes[1]; n.MobileNetworks != nil || n.ImplicitMobileNetworks() != nil || n.MaxMobileNetworks != 8 || n.MayClaim(netip.MustParsePrefix("10.1.0.0/24")) {
		t.Errorf("plain node: %+v", n)
	}
	// A pool without an NAI is many routers: its networks may be claimed,
	// never given implicitly; it may list more than one router's maximum.
	if p := c.Nodes[2]; len(p.MobileNetworks) != 3 || p.MaxMobileNetworks != 2 || p.ImplicitMobileNetworks() != nil || !p.MayClaim(netip.MustParsePrefix("10.9.1.0/24")) {
		t.Errorf("pool: %+v implicit %v", p, p.ImplicitMobileNetworks())
	}
	// With an NAI it is one router.
	if p := c.Nodes[3]; !slices.Equal(p.ImplicitMobileNetworks(), []netip.Prefix{netip.MustParsePrefix("10.20.0.0/24")}) {
		t.Errorf("pool with nai: implicit %v", p.ImplicitMobileNetworks())
	}
}

func TestMobileNetworkAllocs(t *testing.T) {
	c := mustParse(t, base+router("192.0.2.9", `mobile_networks = ["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24", "10.4.0.0/24"]`))
	n, p := &c.Nodes[0], netip.MustParsePrefix("10.4.0.128/25")
	if a := testing.AllocsPerRun(100, func() {
		if !n.MayClaim(p) || n.ImplicitMobileNetworks() == nil {
			t.Fatal("not claimable")
		}
	}); a != 0 {
		t.Fatalf("%v allocations", a)
	}
}

func TestMobileNetworkErrors(t *testing.T) {
	eight := `mobile_networks = ["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24", "10.4.0.0/24", "10.5.0.0/24", "10.6.0.0/24", "10.7.0.0/24", "10.8.0.0/24", "10.9.0.0/24"]`
	for _, tc := range []struct{ name, text, want string }{
		{"not a prefix", router("192.0.2.9", `mobile_networks = ["10.1.0.0"]`), `x.toml:9: node[1].mobile_networks[1] "10.1.0.0" is not a prefix: write address/length`},
		{"ipv6", router("192.0.2.9", `mobile_networks = ["2001:db8::/64"]`), `x.toml:9: node[1].mobile_networks[1] "2001:db8::/64" is not IPv4`},
		{"length 0", router("192.0.2.9", `mobile_networks = ["0.0.0.0/0"]`), `x.toml:9: node[1].mobile_networks[1] 0.0.0.0/0 is every address`},
		{"host bits", router("192.0.2.9", `mobile_networks = ["10.1.0.0/24", "10.9.1.1/24"]`), `x.toml:9: node[1].mobile_networks[2] 10.9.1.1/24 has host bits set: write 10.9.1.0/24 (the network), or 10.9.1.1/32 for the one host`},
		{"multicast", router("192.0.2.9", `mobile_networks = ["224.1.0.0/16"]`), `x.toml:9: node[1].mobile_networks[1] 224.1.0.0/16 overlaps 224.0.0.0/4, which is multicast`},
		{"loopback", router("192.0.2.9", `mobile_networks = ["127.0.0.1/32"]`), `overlaps 127.0.0.0/8, which is loopback`},
		{"link-local", router("192.0.2.9", `mobile_networks = ["169.254.0.0/24"]`), `which is link-local`},
		{"this network", router("192.0.2.9", `mobile_networks = ["0.1.0.0/16"]`), `which is "this network"`},
		{"class e", router("192.0.2.9", `mobile_networks = ["255.255.255.255/32"]`), `which is reserved`},
		{"covers special", router("192.0.2.9", `mobile_networks = ["0.0.0.0/1"]`), `0.0.0.0/1 overlaps 0.0.0.0/8`},
		{"home network", router("192.0.2.9", `mobile_networks = ["192.0.2.128/25"]`), `x.toml:9: node[1].mobile_networks[1] 192.0.2.128/25 overlaps agent.home_network 192.0.2.0/24: the home network is the home link`},
		{"contains home", router("192.0.2.9", `mobile_networks = ["192.0.0.0/16"]`), `192.0.0.0/16 overlaps agent.home_network`},
		{"same entry", router("192.0.2.9", `mobile_networks = ["10.1.0.0/16", "10.1.2.0/24"]`), `x.toml:9: node[1].mobile_networks[2] 10.1.2.0/24 overlaps 10.1.0.0/16 listed before it (node[1].mobile_networks[1]): list each network once`},
		{"duplicate in entry", router("192.0.2.9", `mobile_networks = ["10.1.0.0/24", "10.1.0.0/24"]`), `node[1].mobile_networks[2] 10.1.0.0/24 overlaps 10.1.0.0/24 listed before it`},
		{"two routers", router("192.0.2.9", `mobile_networks = ["10.1.0.0/24"]`) + router("192.0.2.10", `mobile_networks = ["10.2.0.0/24", "10.1.0.0/24"]`),
			`x.toml:14: node[2].mobile_networks[2] 10.1.0.0/24 overlaps 10.1.0.0/24 of node[1] (line 5) (node[1].mobile_networks[1]): one network belongs to one router`},
		{"later contains earlier", router("192.0.2.9", `mobile_networks = ["10.1.2.0/24"]`) + router("192.0.2.10", `mobile_networks = ["10.0.0.0/8"]`),
			`x.toml:14: node[2].mobile_networks[1] 10.0.0.0/8 overlaps 10.1.2.0/24 of node[1] (line 5)`},
		{"earlier contains later", router("192.0.2.9", `mobile_networks = ["10.0.0.0/8"]`) + router("192.0.2.10", `mobile_networks = ["10.200.0.7/32"]`),
			`x.toml:14: node[2].mobile_networks[1] 10.200.0.7/32 overlaps 10.0.0.0/8 of node[1] (line 5)`},
		{"pool and router", "[[node]]\nname = \"fleet\"\npool = \"192.0.2.128/25\"\nspi = 300\nkey = \"text:0123456789abcdef\"\nmobile_networks = [\"10.0.0.0/8\"]\n" + router("192.0.2.9", `mobile_networks = ["10.3.0.0/16"]`),
			`x.toml:15: node[2].mobile_networks[1] 10.3.0.0/16 overlaps 10.0.0.0/8 of node[1] ("fleet", line 5)`},
		{"max 0", router("192.0.2.9", "max_mobile_networks = 0\nmobile_networks = [\"10.1.0.0/24\"]"), `x.toml:9: node[1].max_mobile_networks 0 out of range 1..8`},
		{"max 9", router("192.0.2.9", "max_mobile_networks = 9\nmobile_networks = [\"10.1.0.0/24\"]"), `x.toml:9: node[1].max_mobile_networks 9 out of range 1..8`},
		{"more than max", router("192.0.2.9", "max_mobile_networks = 2\nmobile_networks = [\"10.1.0.0/24\", \"10.2.0.0/24\", \"10.3.0.0/24\"]"),
			`x.toml:10: node[1].mobile_networks lists 3 networks but max_mobile_networks is 2: a router registering in implicit mode is given all of them`},
		{"more than 8", router("192.0.2.9", eight), `node[1].mobile_networks lists 9 networks but max_mobile_networks is 8`},
		{"pool with nai, more than max", "[[node]]\npool = \"192.0.2.128/25\"\nnai = \"r@x\"\nspi = 300\nkey = \"text:0123456789abcdef\"\nmax_mobile_networks = 1\nmobile_networks = [\"10.1.0.0/24\", \"10.2.0.0/24\"]",
			`x.toml:11: node[1].mobile_networks lists 2 networks but max_mobile_networks is 1`},
		{"wrong type", router("192.0.2.9", `mobile_networks = "10.1.0.0/24"`), `x.toml:9: node[1].mobile_networks must be an array of strings, got string`},
		{"wrong element", router("192.0.2.9", `mobile_networks = ["10.1.0.0/24", 5]`), `x.toml:9: node[1].mobile_networks[2] must be a string, got integer 5`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("x.toml", []byte(base+tc.text))
			if err == nil {
				t.Fatalf("no error; nodes %+v", c.Nodes)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not contain %q:\n%v", tc.want, err)
			}
		})
	}
}

// A claim inside another entry's is reported once, on the later entry of
// the two, naming the widest claim it falls in, in whatever order the file
// lists them.
func TestMobileNetworkOverlapsReportedOnce(t *testing.T) {
	text := base +
		router("192.0.2.9", `mobile_networks = ["10.1.1.0/24", "10.7.0.0/16"]`) + // 5
		router("192.0.2.10", `mobile_networks = ["10.0.0.0/8"]`) + // 10: overlaps both of node 1
		router("192.0.2.11", `mobile_networks = ["10.1.1.128/25", "192.168.0.0/16"]`) // 15: overlaps node 1 and node 2
	_, err := Parse("x.toml", []byte(text))
	var got []string
	for _, e := range Errors(err) {
		got = append(got, e.Key+" "+strings.SplitN(e.Msg, ":", 2)[0])
	}
	want := []string{
		"node[2].mobile_networks[1] 10.0.0.0/8 overlaps 10.1.1.0/24 of node[1] (line 5) (node[1].mobile_networks[1])",
		"node[2].mobile_networks[1] 10.0.0.0/8 overlaps 10.7.0.0/16 of node[1] (line 5) (node[1].mobile_networks[2])",
		"node[3].mobile_networks[1] 10.1.1.128/25 overlaps 10.0.0.0/8 of node[2] (line 10) (node[2].mobile_networks[1])",
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestMaxMobileNetworksWithoutNetworks(t *testing.T) {
	c := mustParse(t, base+router("192.0.2.9", "max_mobile_networks = 4"))
	if w := ownWarnings(c); len(w) != 1 || !strings.Contains(w[0], "x.toml:9: node[1].max_mobile_networks has no effect without mobile_networks") {
		t.Errorf("warnings %q", w)
	}
}

// The sorted sweep finds exactly the overlaps a pairwise comparison finds:
// fuzz bytes become prefixes of 10.0.0.0/8 spread over three routers. A
// claim overlapping an earlier one of its own router is its own error and
// is dropped; of the rest, a claim is reported once when another router's
// claim contains it and is wider (or is the same prefix, listed first), and
// the file loads if and only if nothing is reported.
func FuzzMobileNetworksDisjoint(f *testing.F) {
	f.Add([]byte{0, 1, 8, 1, 1, 16, 2, 2, 24})
	f.Add([]byte{0, 0, 8, 1, 0, 9, 2, 0, 10})
	f.Add([]byte{0, 0, 0, 1, 0, 8, 2, 0, 8}) // 10/8 holds two /16s of other routers
	f.Add([]byte{5, 5, 32, 5, 5, 32})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 3*24 {
			b = b[:3*24]
		}
		type claim struct {
			node int
			p    netip.Prefix
		}
		var kept []claim
		lists := make([][]string, 3)
		selfOverlaps := 0
		for i := 0; i+2 < len(b); i += 3 {
			bits := 8 + int(b[i+2])%25 // /8../32, inside 10.0.0.0/8
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, b[i], b[i+1], b[i+2]}), bits).Masked()
			n := int(b[i]) % 3
			if len(lists[n]) == MaxMobileNetworks {
				continue
			}
			lists[n] = append(lists[n], `"`+p.String()+`"`)
			if slices.ContainsFunc(kept, func(c claim) bool { return c.node == n && c.p.Overlaps(p) }) {
				selfOverlaps++
				continue
			}
			kept = append(kept, claim{n, p})
		}
		crossed := 0
		for j, c := range kept {
			for i, d := range kept {
				if i != j && d.p.Contains(c.p.Addr()) && (d.p.Bits() < c.p.Bits() || d.p == c.p && i < j) {
					crossed++
					break
				}
			}
		}
		text := base
		for n, l := range lists {
			text += router(fmt.Sprintf("192.0.2.%d", 10+n), "mobile_networks = ["+strings.Join(l, ", ")+"]")
		}
		c, err := Parse("x.toml", []byte(text))
		var gotCross, gotSelf int
		for _, e := range Errors(err) {
			switch {
			case strings.Contains(e.Msg, "listed before it"):
				gotSelf++
			case strings.Contains(e.Msg, " of node["):
				gotCross++
			default:
				t.Fatalf("unexpected error %v", e)
			}
		}
		if gotCross != crossed || gotSelf != selfOverlaps {
			t.Fatalf("reported %d across routers and %d within, want %d and %d:\n%v\n%s", gotCross, gotSelf, crossed, selfOverlaps, err, text)
		}
		if err == nil {
			for n := range lists {
				if len(c.Nodes[n].MobileNetworks) != len(lists[n]) {
					t.Fatalf("node %d kept %v of %v", n, c.Nodes[n].MobileNetworks, lists[n])
				}
			}
		}
	})
}
