//go:build linux

package datapath

// The reverse-tunnel check on the host kernel. The host has no ipip, but a
// VXLAN device in external (collect_md) mode fills the same tunnel
// metadata on receive (outer source → remote_ipv4), and the filter reads
// the inner source relative to the network header, so it runs unchanged on
// it. The test sends VXLAN frames over loopback from two local addresses
// (the right and a wrong care-of) and reads the filter's counters. The VM
// tier (firmware/vmtest) repeats it with real IP-in-IP.

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/groupio"
)

// vxlanFrame is a VXLAN packet (RFC 7348) carrying an Ethernet frame of
// ethertype typ with an IPv4 header from inner src.
func vxlanFrame(typ uint16, src netip.Addr) []byte {
	b := []byte{0x08, 0, 0, 0, 0, 0, 42, 0}                // I flag, VNI 42
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)      // dst MAC
	b = append(b, 0x02, 0x00, 0x5e, 0x10, 0x20, 0x30)      // src MAC (not the device's)
	b = binary.BigEndian.AppendUint16(b, typ)              // ethertype
	ip := []byte{0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0} // 20 + 8 bytes, UDP
	ip = append(ip, src.AsSlice()...)
	ip = append(ip, 10, 77, 0, 1) // a correspondent
	ip = append(ip, 0x30, 0x39, 0x30, 0x39, 0, 8, 0, 0)
	return append(b, ip...)
}

// vxlanDatapath sets up a datapath with the reverse check whose "tunnel"
// is vx0, a VXLAN device in external mode.
func vxlanDatapath(t *testing.T, n *netns, capacity int) Datapath {
	t.Helper()
	n.ip(t, "link", "add", "vx0", "type", "vxlan", "external", "dstport", "4789")
	n.ip(t, "link", "set", "vx0", "up")
	dp, err := Open(Config{HomeIfname: "home0", TunnelName: "vx0", Protocol: 77,
		Local: netip.MustParseAddr("10.0.0.1"), NetNS: n.fd, anyTunnel: true,
		ReverseCheck: true, Capacity: capacity})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	if err := dp.Setup(); err != nil {
		t.Fatal(err)
	}
	return dp
}

func TestNetnsReverseCheck(t *testing.T) {
	n := newNetns(t)
	dp := vxlanDatapath(t, n, 16)
	n.ip(t, "addr", "add", "10.9.0.2/32", "dev", "lo")
	n.ip(t, "addr", "add", "10.9.0.3/32", "dev", "lo")
	filters := func() string {
		return n.tc(t, "filter", "show", "dev", "vx0", "ingress")
	}
	if f := filters(); !strings.Contains(f, "hagent_rev") || !strings.Contains(f, "direct-action") {
		t.Fatalf("filter not attached in direct-action mode:\n%s", f)
	}
	// A second Setup (home link re-created) replaces, never stacks.
	if err := dp.Setup(); err != nil {
		t.Fatal(err)
	}
	if f := filters(); strings.Count(f, "direct-action") != 1 {
		t.Fatalf("filter stacked by a second Setup:\n%s", f)
	}

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
	send := func(from string, typ uint16, inner string) {
		t.Helper()
		if _, err := socks[from].WriteToUDP(vxlanFrame(typ, netip.MustParseAddr(inner)), to); err != nil {
			t.Fatal(err)
		}
	}
	var want Stats
	check := func(what string) {
		t.Helper()
		waitReverseCounters(t, dp, want, what)
	}

	home := netip.MustParseAddr("10.1.0.5")
	if errs := dp.Apply([]Binding{{Home: home, CareOf: netip.MustParseAddr("10.9.0.2")}}, nil); errs != nil {
		t.Fatal(errs)
	}
	send("10.9.0.2", 0x0800, "10.1.0.5")
	want.ReversePassed++
	check("from the care-of address")
	send("10.9.0.3", 0x0800, "10.1.0.5")
	want.ReverseWrongCareOf++
	check("from another care-of address")
	send("10.9.0.2", 0x0800, "10.1.0.9")
	want.ReverseUnknownHome++
	check("unregistered inner source")
	send("10.9.0.2", 0x0806, "10.1.0.5")
	want.ReverseMalformed++
	check("not IPv4")

	// The node moves: the old care-of is refused, the new one passes.
	if errs := dp.Apply([]Binding{{Home: home, CareOf: netip.MustParseAddr("10.9.0.3")}}, nil); errs != nil {
		t.Fatal(errs)
	}
	send("10.9.0.3", 0x0800, "10.1.0.5")
	want.ReversePassed++
	send("10.9.0.2", 0x0800, "10.1.0.5")
	want.ReverseWrongCareOf++
	check("after a move")

	// De-registration: the home is unknown again.
	if errs := dp.Apply(nil, []netip.Addr{home}); errs != nil {
		t.Fatal(errs)
	}
	send("10.9.0.3", 0x0800, "10.1.0.5")
	want.ReverseUnknownHome++
	check("after de-registration")

	// Reconcile converges the map both ways.
	other := netip.MustParseAddr("10.1.0.6")
	if errs := dp.Apply([]Binding{{Home: other, CareOf: netip.MustParseAddr("10.9.0.2")}}, nil); errs != nil {
		t.Fatal(errs)
	}
	if _, _, err := dp.Reconcile(slices.Values([]Binding{{Home: home, CareOf: netip.MustParseAddr("10.9.0.2"), Encap: IPIP}})); err != nil {
		t.Fatal(err)
	}
	send("10.9.0.2", 0x0800, "10.1.0.5")
	want.ReversePassed++
	send("10.9.0.2", 0x0800, "10.1.0.6")
	want.ReverseUnknownHome++
	check("after reconcile")

	// Withdraw (standby, shutdown) takes the filter off; becoming active
	// (Reconcile) puts it back with the table.
	if err := dp.Withdraw(); err != nil {
		t.Fatal(err)
	}
	if f := filters(); strings.Contains(f, "hagent_rev") {
		t.Fatalf("filter survived Withdraw:\n%s", f)
	}
	send("10.9.0.3", 0x0800, "10.1.0.5") // no filter: not counted
	if _, _, err := dp.Reconcile(slices.Values([]Binding{{Home: home, CareOf: netip.MustParseAddr("10.9.0.2"), Encap: IPIP}})); err != nil {
		t.Fatal(err)
	}
	if f := filters(); !strings.Contains(f, "hagent_rev") {
		t.Fatalf("filter not back after Reconcile:\n%s", f)
	}
	send("10.9.0.2", 0x0800, "10.1.0.5")
	want.ReversePassed++
	send("10.9.0.3", 0x0800, "10.1.0.5")
	want.ReverseWrongCareOf++
	check("after withdraw and reconcile")
}

// TestNetnsReverseCheckMapFull: the map holds Capacity bindings; one more
// is an error on that binding, the others stand.
func TestNetnsReverseCheckMapFull(t *testing.T) {
	dp := vxlanDatapath(t, newNetns(t), 2)
	errs := dp.Apply([]Binding{bindingN(1), bindingN(2), bindingN(3)}, nil)
	if errs == nil || errs[0] != nil || errs[1] != nil || errs[2] == nil || !strings.Contains(errs[2].Error(), "map full") {
		t.Fatalf("errors %v, want only the third: map full", errs)
	}
}

func (n *netns) tc(t testing.TB, args ...string) string {
	t.Helper()
	return n.run(t, "tc", args...)
}

// The map read back in batches (BPF_MAP_LOOKUP_BATCH) and key by key gives
// the same pairs, across several batches; sync then converges it: a stale
// home removed, a moved one rewritten, a missing one added, the rest left.
func TestRevMapReadAllAndSync(t *testing.T) {
	requireRoot(t)
	f, err := newRevFilter(5000)
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	const n = 3*revBatch + 17
	var want []revEntry
	for i := range n {
		home := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		coa := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		if err := f.put(home, coa); err != nil {
			t.Fatal(err)
		}
		var e revEntry
		e.home = home.As4()
		careOfValue(&e.careOf, coa)
		want = append(want, e)
	}
	batch, err := f.rd.readAll(f.homes)
	if err != nil {
		t.Fatal(err)
	}
	if f.rd.noBatch {
		t.Fatal("this kernel refused BPF_MAP_LOOKUP_BATCH (Linux ≥ 5.6 has it): the fallback ran")
	}
	batch = slices.Clone(batch)
	f.rd.noBatch = true
	single, err := f.rd.readAll(f.homes)
	if err != nil {
		t.Fatal(err)
	}
	f.rd.noBatch = false
	if len(batch) != n || !slices.Equal(batch, single) {
		t.Fatalf("batch read %d pairs, key by key %d; equal %v", len(batch), len(single), slices.Equal(batch, single))
	}
	// want: drop the first, move the second, add one, keep the rest; a
	// duplicate home counts once.
	stale := want[0]
	want = want[1:]
	want[0].careOf[3] ^= 0xff
	want = append(want, revEntry{home: [4]byte{10, 2, 0, 1}, careOf: [4]byte{1, 2, 3, 4}}, want[5])
	slices.Reverse(want) // any order
	a, r, err := f.sync(slices.Clone(want), slices.Clone(mustRead(t, f)))
	if err != nil || a != 2 || r != 1 {
		t.Fatalf("sync: added %d removed %d err %v, want 2 1 nil", a, r, err)
	}
	got, err := f.rd.readAll(f.homes)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(want, func(a, b revEntry) int { return cmp4(a.home, b.home) })
	want = slices.Compact(want)
	if !slices.Equal(got, want) {
		t.Fatalf("after sync: %d pairs, want %d", len(got), len(want))
	}
	if slices.ContainsFunc(got, func(e revEntry) bool { return e.home == stale.home }) {
		t.Fatal("the stale home is still mapped")
	}
	if a, r, err := f.sync(slices.Clone(want), slices.Clone(mustRead(t, f))); a != 0 || r != 0 || err != nil {
		t.Fatalf("second sync changed %d/%d (%v), want nothing", a, r, err)
	}
}

func mustRead(t *testing.T, f *revFilter) []revEntry {
	t.Helper()
	have, err := f.rd.readAll(f.homes)
	if err != nil {
		t.Fatal(err)
	}
	return have
}

// waitReverseCounters waits up to 3 s for the reverse check's verdict
// counters to equal want's, and fails t with both sets if they do not.
func waitReverseCounters(t *testing.T, dp interface{ Stats() Stats }, want Stats, what string) {
	t.Helper()
	var s Stats
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		s = dp.Stats()
		if s.ReversePassed == want.ReversePassed && s.ReverseWrongCareOf == want.ReverseWrongCareOf &&
			s.ReverseUnknownHome == want.ReverseUnknownHome && s.ReverseMalformed == want.ReverseMalformed {
			return
		}
	}
	t.Fatalf("%s: counters passed/wrong/unknown/malformed = %d/%d/%d/%d, want %d/%d/%d/%d", what,
		s.ReversePassed, s.ReverseWrongCareOf, s.ReverseUnknownHome, s.ReverseMalformed,
		want.ReversePassed, want.ReverseWrongCareOf, want.ReverseUnknownHome, want.ReverseMalformed)
}
