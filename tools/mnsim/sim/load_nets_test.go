package sim

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/hagent/hagent/ha/mip"
)

// Node i of a load claims the i·k-th to the (i+1)·k−1-th prefixes after
// NetBase: distinct for every node, consecutive, of NetBase's length.
func TestLoadClaims(t *testing.T) {
	o := &LoadOptions{Base: netip.MustParseAddr("10.2.0.1"), NetsPerNode: 4, NetBase: netip.MustParsePrefix("32.0.0.0/24")}
	w := &worker{o: o, base: 0x0a020001}
	var m mip.MobileNetRequest
	for _, c := range []struct{ home, want string }{
		{"10.2.0.1", "32.0.0.0/24 32.0.1.0/24 32.0.2.0/24 32.0.3.0/24"},
		{"10.2.0.2", "32.0.4.0/24 32.0.5.0/24 32.0.6.0/24 32.0.7.0/24"},
		{"10.3.134.160", "38.26.124.0/24 38.26.125.0/24 38.26.126.0/24 38.26.127.0/24"}, // node 99,999
	} {
		w.claim(&m, netip.MustParseAddr(c.home))
		var got []string
		for _, p := range m.List() {
			q, _ := p.Prefix()
			got = append(got, q.String())
		}
		if g := strings.Join(got, " "); g != c.want {
			t.Errorf("node %s claims %s, want %s", c.home, g, c.want)
		}
	}
	o.NetsPerNode = 0
	if w.claim(&m, netip.MustParseAddr("10.2.0.1")); m.N != 0 {
		t.Errorf("without NetsPerNode: %d prefixes claimed", m.N)
	}
}

func TestLoadClaimsRefused(t *testing.T) {
	base := LoadOptions{HA: netip.MustParseAddrPort("127.0.0.1:434"), Base: netip.MustParseAddr("10.2.0.1"), N: 100000,
		Key: []byte("k"), Duration: 1}
	for name, c := range map[string]struct {
		k    int
		base string
		want string
	}{
		"too many":     {9, "32.0.0.0/24", "networks per node"},
		"host bits":    {4, "32.0.0.1/24", "host bits"},
		"past the end": {4, "255.255.0.0/24", "run past"},
	} {
		o := base
		o.NetsPerNode, o.NetBase = c.k, netip.MustParsePrefix(c.base)
		if _, err := Load(context.Background(), o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %q", name, err, c.want)
		}
	}
}
