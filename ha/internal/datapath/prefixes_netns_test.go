//go:build linux

package datapath

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func mobileNet(p string, careOf string) MobileNet {
	return MobileNet{Prefix: netip.MustParsePrefix(p), CareOf: netip.MustParseAddr(careOf), Encap: IPIP}
}

// prefixRoutes lists the namespace's protocol 77 routes as "dst metric N"
// with the encap destination, sorted.
func prefixRoutes(t *testing.T, n *netns) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(n.ip(t, "-4", "route", "show", "proto", "77")), "\n") {
		if l == "" {
			continue
		}
		f := strings.Fields(l)
		s := f[0]
		for i := 1; i+1 < len(f); i++ {
			switch f[i] {
			case "dst", "dev", "metric":
				s += " " + f[i] + " " + f[i+1]
			}
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func TestNetnsPrefixes(t *testing.T) {
	n := newNetns(t)
	k := n.open(t, false)
	var pr PrefixRouter = k

	home := Binding{Home: netip.MustParseAddr("10.1.0.5"), CareOf: netip.MustParseAddr("192.0.2.5"), Encap: IPIP}
	if errs := k.Apply([]Binding{home}, nil); errs != nil {
		t.Fatal(errs)
	}
	nets := []MobileNet{
		mobileNet("10.9.1.0/24", "192.0.2.5"),
		mobileNet("10.9.2.7/32", "192.0.2.5"), // a /32 network: must not pass for a home address
		mobileNet("172.16.0.0/12", "192.0.2.6"),
	}
	if errs := pr.ApplyPrefixes(nets, nil); errs != nil {
		t.Fatal(errs)
	}
	want := []string{
		"10.1.0.5 dst 192.0.2.5 dev tun0 metric 1024",
		"10.9.1.0/24 dst 192.0.2.5 dev tun0 metric 16777216",
		"10.9.2.7 dst 192.0.2.5 dev tun0 metric 16777217",
		"172.16.0.0/12 dst 192.0.2.6 dev tun0 metric 16777218",
	}
	if got := prefixRoutes(t, n); !slices.Equal(got, want) {
		t.Fatalf("routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if pr.PrefixRoutes() != 3 {
		t.Fatalf("PrefixRoutes %d, want 3", pr.PrefixRoutes())
	}

	// A care-of change replaces the route in place (same metric).
	moved := mobileNet("10.9.1.0/24", "192.0.2.9")
	if errs := pr.ApplyPrefixes([]MobileNet{moved}, nil); errs != nil {
		t.Fatal(errs)
	}
	want[1] = "10.9.1.0/24 dst 192.0.2.9 dev tun0 metric 16777216"
	if got := prefixRoutes(t, n); !slices.Equal(got, want) {
		t.Fatalf("after the move:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	nets[0] = moved

	// The home-address reconciliation leaves prefix routes alone, the /32
	// one included: it tells them apart by their metric range.
	if _, removed, err := k.Reconcile(slices.Values([]Binding{home})); err != nil || removed != 0 {
		t.Fatalf("home Reconcile removed %d, err %v: it took a mobile network for a stale home route", removed, err)
	}
	if got := prefixRoutes(t, n); !slices.Equal(got, want) {
		t.Fatalf("after the home Reconcile:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Invalid input is refused per entry.
	errs := pr.ApplyPrefixes([]MobileNet{{Prefix: netip.MustParsePrefix("10.9.3.1/24"), CareOf: netip.MustParseAddr("192.0.2.5")}},
		[]netip.Prefix{netip.MustParsePrefix("2001:db8::/32")})
	if len(errs) != 2 || errs[0] == nil || errs[1] == nil {
		t.Fatalf("errs %v: want both refused", errs)
	}

	// A restarted agent (fresh state) reconciles against what it finds:
	// keeps the wanted, adopting their metrics, drops the stale.
	k2 := n.open(t, false)
	added, removed, err := k2.ReconcilePrefixes(slices.Values(nets[:2]))
	if err != nil || added != 0 || removed != 1 {
		t.Fatalf("ReconcilePrefixes: added %d removed %d err %v, want 0 1 nil", added, removed, err)
	}
	if got := prefixRoutes(t, n); !slices.Equal(got, want[:3]) {
		t.Fatalf("after ReconcilePrefixes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want[:3], "\n"))
	}
	// and a second one with the same want changes nothing
	if added, removed, err := k2.ReconcilePrefixes(slices.Values(nets[:2])); err != nil || added+removed != 0 {
		t.Fatalf("second ReconcilePrefixes: added %d removed %d err %v", added, removed, err)
	}

	// Removal, idempotent.
	for range 2 {
		if errs := k2.ApplyPrefixes(nil, []netip.Prefix{netip.MustParsePrefix("10.9.2.7/32")}); errs != nil {
			t.Fatal(errs)
		}
	}
	if got := prefixRoutes(t, n); !slices.Equal(got, want[:2]) {
		t.Fatalf("after removal:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want[:2], "\n"))
	}

	// Withdraw (becoming standby) takes the prefix routes with the home
	// routes.
	if err := k2.Withdraw(); err != nil {
		t.Fatal(err)
	}
	if got := prefixRoutes(t, n); len(got) != 0 {
		t.Fatalf("after Withdraw:\n%s", strings.Join(got, "\n"))
	}
	if k2.PrefixRoutes() != 0 {
		t.Fatalf("PrefixRoutes %d after Withdraw", k2.PrefixRoutes())
	}
}
