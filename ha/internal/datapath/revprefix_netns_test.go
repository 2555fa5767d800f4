//go:build linux

package datapath

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/hagent/hagent/ha/internal/groupio"
)

// TestNetnsReverseCheckPrefixes: with the reverse check on, a packet from a
// host behind a mobile router (inner source inside a registered prefix)
// passes from the router's care-of address only, by longest match; a
// removed prefix is unknown again; Reconcile and Withdraw keep the trie in
// step. Without the trie lookup every such packet counted as "unknown home".
func TestNetnsReverseCheckPrefixes(t *testing.T) {
	n := newNetns(t)
	dp := vxlanDatapath(t, n, 16)
	k := dp.(*kernel)
	n.ip(t, "addr", "add", "10.9.0.2/32", "dev", "lo")
	n.ip(t, "addr", "add", "10.9.0.3/32", "dev", "lo")
	socks := map[string]*net.UDPConn{}
	for _, a := range []string{"10.9.0.2", "10.9.0.3"} {
		if err := groupio.InNetNS("/run/netns/"+n.name, func() error {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(a)})
			socks[a] = c
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer socks[a].Close()
	}
	to := &net.UDPAddr{IP: net.ParseIP("10.0.0.1"), Port: 4789}
	var want Stats
	send := func(from, inner string, verdict *uint64) {
		t.Helper()
		if _, err := socks[from].WriteToUDP(vxlanFrame(0x0800, netip.MustParseAddr(inner)), to); err != nil {
			t.Fatal(err)
		}
		*verdict++
	}
	check := func(what string) {
		t.Helper()
		waitReverseCounters(t, dp, want, what)
	}

	lan := mobileNet("10.20.1.0/24", "10.9.0.2")
	if errs := k.ApplyPrefixes([]MobileNet{lan}, nil); errs != nil {
		t.Fatal(errs)
	}
	send("10.9.0.2", "10.20.1.77", &want.ReversePassed)
	check("a host of the mobile network, from the router's care-of")
	send("10.9.0.3", "10.20.1.77", &want.ReverseWrongCareOf)
	check("the same host from another care-of")
	send("10.9.0.2", "10.20.2.1", &want.ReverseUnknownHome)
	check("outside every prefix")

	// Longest match: a more specific network of another router.
	cam := mobileNet("10.20.1.0/28", "10.9.0.3")
	if errs := k.ApplyPrefixes([]MobileNet{cam}, nil); errs != nil {
		t.Fatal(errs)
	}
	send("10.9.0.3", "10.20.1.5", &want.ReversePassed)
	send("10.9.0.2", "10.20.1.5", &want.ReverseWrongCareOf)
	send("10.9.0.2", "10.20.1.77", &want.ReversePassed)
	check("longest match")

	// A home address still wins over a prefix that covers it.
	if errs := dp.Apply([]Binding{{Home: netip.MustParseAddr("10.20.1.9"), CareOf: netip.MustParseAddr("10.9.0.2")}}, nil); errs != nil {
		t.Fatal(errs)
	}
	send("10.9.0.2", "10.20.1.9", &want.ReversePassed)
	send("10.9.0.3", "10.20.1.9", &want.ReverseWrongCareOf)
	check("home address inside a /28 of another router")

	// Removal.
	if errs := k.ApplyPrefixes(nil, []netip.Prefix{cam.Prefix}); errs != nil {
		t.Fatal(errs)
	}
	send("10.9.0.3", "10.20.1.5", &want.ReverseWrongCareOf) // the /24 of 10.9.0.2 now
	check("after removing the /28")

	// Reconcile drops a trie entry nobody wants, and restores a missing one.
	if err := k.rev.putPrefix(netip.MustParsePrefix("10.30.0.0/16"), netip.MustParseAddr("10.9.0.3")); err != nil {
		t.Fatal(err)
	}
	if err := k.rev.delPrefix(lan.Prefix); err != nil {
		t.Fatal(err)
	}
	if _, _, err := k.ReconcilePrefixes(slices.Values([]MobileNet{lan})); err != nil {
		t.Fatal(err)
	}
	if got, err := k.rev.listPrefixes(); err != nil || !slices.Equal(got, []netip.Prefix{lan.Prefix}) {
		t.Fatalf("trie after ReconcilePrefixes: %v %v, want [%v]", got, err, lan.Prefix)
	}
	send("10.9.0.2", "10.20.1.77", &want.ReversePassed)
	send("10.9.0.3", "10.30.0.1", &want.ReverseUnknownHome)
	check("after ReconcilePrefixes")

	if err := dp.Withdraw(); err != nil {
		t.Fatal(err)
	}
	if got, err := k.rev.listPrefixes(); err != nil || len(got) != 0 {
		t.Fatalf("trie after Withdraw: %v %v", got, err)
	}
}
