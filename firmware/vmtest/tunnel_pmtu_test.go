package vmtest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/firmware/vm"
)

// narrowMTU is the link MTU of the hop beyond the agent in
// checkTunnelPMTU: narrower than the 1,500 the agent's uplink has, as on
// carrier paths.
const narrowMTU = 1400

// narrowPath puts a narrower hop between the agent and the care-of
// address: the node's namespace becomes a router that answers ARP for the
// care-of address on the lab link (the agent's neighbour entry for it stays
// right) and forwards to a new namespace, which now holds the care-of
// address, over a link of narrowMTU. It returns that namespace.
func narrowPath(t *testing.T, l *lab) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	far, err := l.AddHost(ctx, "far", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	haIP := strings.Split(haForeign, "/")[0]
	mtu := itoa(narrowMTU)
	for _, c := range []struct {
		ns   string
		args []string
	}{
		{far, []string{"ip", "link", "del", "eth0"}}, // AddHost's link to the bridge: this one is reached through the hop
		{l.mnNS, []string{"sysctl", "-qw", "net.ipv4.conf.eth0.promote_secondaries=1", "net.ipv4.ip_forward=1", "net.ipv4.conf.eth0.proxy_arp=1"}},
		{l.mnNS, []string{"ip", "addr", "del", coa + "/24", "dev", "eth0"}},
		{l.mnNS, []string{"ip", "route", "replace", "192.0.2.0/24", "via", haIP}},
		{l.mnNS, []string{"ip", "link", "add", "nar0", "mtu", mtu, "type", "veth", "peer", "name", "eth1", "mtu", mtu, "netns", far}},
		{l.mnNS, []string{"sysctl", "-qw", "net.ipv4.conf.nar0.proxy_arp=1"}},
		{l.mnNS, []string{"ip", "link", "set", "nar0", "up"}},
		{l.mnNS, []string{"ip", "route", "add", coa + "/32", "dev", "nar0"}},
		{far, []string{"ip", "link", "set", "eth1", "up"}},
		{far, []string{"ip", "addr", "add", coa + "/32", "dev", "eth1"}},
		{far, []string{"ip", "route", "add", "default", "dev", "eth1"}},
	} {
		if out, err := vm.Exec(ctx, c.ns, c.args[0], c.args[1:]...); err != nil {
			t.Fatalf("narrow path: %v\n%s", err, out)
		}
	}
	return far
}

// registerFrom registers the node from namespace ns (the care-of address
// is there) with extra mnsim flags.
func (l *lab) registerFrom(t *testing.T, ns string, extra ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	args := append([]string{"register", "-ha", haAddr, "-home", homeAddr, "-coa", coa,
		"-spi", spi, "-key-hex", keyHex, "-timeout", "2s"}, extra...)
	if out, err := vm.Exec(ctx, ns, l.mnsim, args...); err != nil {
		t.Fatalf("mnsim %s in %s: %v\n%s", strings.Join(args, " "), ns, err, out)
	}
}

// checkTunnelPMTU: with the outer DF set, a hop beyond the agent whose MTU
// is narrower than the tunnel's drops the full-size outer packet and
// answers the agent with ICMP "fragmentation needed" (mtu = narrowMTU);
// the tunnel device records that path MTU towards the care-of address and
// answers the correspondent's next DF packet with the tunnel MTU on that
// path (narrowMTU less the tunnel's header), so the correspondent's path
// MTU discovery learns it. With the outer DF clear (the earlier default)
// the hop fragments the outer packet instead and the correspondent never
// hears of the narrower path.
func checkTunnelPMTU(t *testing.T, l *lab, far, name, proto string, overhead int) {
	t.Helper()
	ping := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, _ := vm.Exec(ctx, l.cnNS, "ping", append(args, "-i", "0.5", "-W", "2", homeAddr)...)
		return out
	}
	_, _ = vm.Exec(context.Background(), l.cnNS, "ip", "route", "flush", "cache")
	want := itoa(narrowMTU - overhead)
	// Eight DF echoes of the tunnel MTU (1,500 bytes outer): the first
	// ones meet the hop, the rest the agent's answer.
	out := ping("-M", "do", "-c", "8", "-s", itoa(1500-overhead-28))
	var got []string
	for _, m := range fragNeeded.FindAllStringSubmatch(out, -1) {
		got = append(got, m[1])
	}
	if len(got) == 0 || got[len(got)-1] != want {
		t.Fatalf("%s behind a %d-byte hop: want the agent's fragmentation needed with mtu = %s (got %v):\n%s", name, narrowMTU, want, got, out)
	}
	t.Logf("%s behind a %d-byte hop: DF pings of the tunnel MTU: fragmentation needed, mtu %v", name, narrowMTU, got)
	// A DF echo that fits the narrower path arrives whole.
	fits := sniff(far, "eth1", "ip proto "+proto+" and dst host "+coa, func() { out = ping("-M", "do", "-c", "5", "-s", itoa(narrowMTU-overhead-28)) })
	if !hasFrame(fits, narrowMTU+14, "0,0") || !hasDF(fits, narrowMTU+14, "1,1") {
		t.Fatalf("%s behind a %d-byte hop: a %s-byte DF ping: want whole %d-byte outer packets with DF at %s:\n%s\nping:\n%s", name, narrowMTU, want, narrowMTU, coa, fits, out)
	}
	// Without DF, 1,500 bytes, from a correspondent that has not learned
	// the path MTU (its cache flushed: as any sender whose packets are
	// already fragments, or that clears DF): the agent fragments the inner
	// packet at the path MTU it learned, and every piece arrives in a whole
	// outer packet with DF. With net.ipv4.ip_forward_use_pmtu at the
	// kernel's default (0) ip_forward cut it at the tunnel device's MTU
	// and only the last, small piece arrived.
	_, _ = vm.Exec(context.Background(), l.cnNS, "ip", "route", "flush", "cache")
	nodf := sniff(far, "eth1", "ip proto "+proto+" and dst host "+coa, func() { out = ping("-M", "dont", "-c", "5", "-s", "1472") })
	big, last := frameMF(nodf, "0,1"), frameMF(nodf, "0,0")
	if big == 0 || last == 0 || big > narrowMTU+14 || !hasDF(nodf, 0, "1,0") {
		t.Fatalf("%s behind a %d-byte hop: 1,500-byte pings without DF: want the inner packet fragmented at the path MTU by the agent, each piece in a whole outer packet with DF, at %s:\n%s\nping:\n%s", name, narrowMTU, coa, frames(nodf), out)
	}
	t.Logf("%s behind a %d-byte hop: 1,500-byte pings without DF arrive as inner fragments in %d- and %d-byte frames, outer DF set", name, narrowMTU, big, last)
}

// frameMF is the length of the largest frame in sniff's output whose
// more-fragments flags are mf (0: none).
func frameMF(out string, mf string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 8 || f[7] != mf {
			continue
		}
		if v, err := strconv.Atoi(f[6]); err == nil && v > n {
			n = v
		}
	}
	return n
}

// frames is sniff's output without tshark's own lines.
func frames(out string) string {
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Split(line, "\t"); len(f) >= 13 {
			b.WriteString(strings.Join(strings.Fields(line), " ") + "\n")
		}
	}
	return b.String()
}
