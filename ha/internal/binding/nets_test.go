package binding

import (
	"errors"
	"net/netip"
	"testing"
)

func routerEntry(home uint32, reg int64, n int) Entry {
	e := live(home, reg, 60)
	e.NATAddr, e.NATPort, e.Encap = 0xcb007101, 40000+uint16(n), EncapUDP
	for k := range n {
		e.AddPrefixU32(0x0a800000+uint32(k)<<8+7, 24) // host bits: AddPrefix clears them
	}
	return e
}

// A binding keeps its NAT endpoint and prefixes through Put, renewals, a
// copy and a tombstone-to-live revival; a renewal that carries none clears
// them (the entry is what the latest registration said).
func TestEntryNets(t *testing.T) {
	tb := New(10, 10)
	p := mustPut(t, tb, routerEntry(1, t0, MaxPrefixes))
	if p.NumPrefixes() != MaxPrefixes || p.Encap != EncapUDP || p.NATPort != 40000+MaxPrefixes || p.NATAddr != 0xcb007101 {
		t.Fatalf("after Put: %d prefixes, endpoint %08x:%d %v", p.NumPrefixes(), p.NATAddr, p.NATPort, p.Encap)
	}
	for i := range MaxPrefixes {
		want := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 128, byte(i), 0}), 24)
		if got := p.Prefix(i); got != want {
			t.Errorf("Prefix(%d) = %v, want %v", i, got, want)
		}
	}
	cp := *p
	if cp.AddPrefix(netip.MustParsePrefix("10.200.0.0/16")) {
		t.Error("a ninth prefix was accepted")
	}
	tb.Delete(2) // a mutation: the copy must not depend on the slot
	if cp.NumPrefixes() != MaxPrefixes || cp.Prefix(7) != p.Prefix(7) {
		t.Error("a copy lost its prefixes")
	}
	mustPut(t, tb, live(1, t0+sec, 60))
	if e := tb.Get(1); e.NumPrefixes() != 0 || e.Encap != EncapDefault || e.NATAddr != 0 {
		t.Errorf("renewal without networks kept %d prefixes, %v", e.NumPrefixes(), e.Encap)
	}
	tb.Tombstone(1, 9, 1, t0+10*sec)
	mustPut(t, tb, routerEntry(1, t0+2*sec, 3))
	if e := tb.Get(1); e.Tombstone() || e.NumPrefixes() != 3 || e.NATPort != 40003 {
		t.Errorf("revived tombstone: %d prefixes, port %d", e.NumPrefixes(), e.NATPort)
	}
	var e Entry
	for _, bad := range []string{"2001:db8::/32"} {
		if e.AddPrefix(netip.MustParsePrefix(bad)) {
			t.Errorf("AddPrefix(%s) accepted", bad)
		}
	}
	if e.AddPrefixU32(1, 33) || e.AddPrefix(netip.Prefix{}) || e.NumPrefixes() != 0 {
		t.Error("an invalid prefix was accepted")
	}
	if !e.AddPrefix(netip.MustParsePrefix("0.0.0.0/0")) || !e.AddPrefix(netip.MustParsePrefix("::ffff:10.1.2.3/32")) ||
		e.Prefix(0) != netip.MustParsePrefix("0.0.0.0/0") || e.Prefix(1) != netip.MustParsePrefix("10.1.2.3/32") {
		t.Errorf("edge prefixes: %v %v", e.Prefix(0), e.Prefix(1))
	}
	e.ClearPrefixes()
	if e != (Entry{}) {
		t.Error("ClearPrefixes left something behind")
	}
	for x := EncapDefault; x <= EncapUDP; x++ {
		if !x.Valid() || x.String() == "unknown" {
			t.Errorf("encapsulation %d", x)
		}
	}
	if Encap(4).Valid() {
		t.Error("encapsulation 4 valid")
	}
}

// The registration path stays allocation-free with a full set of networks:
// building the entry, Put (new and renewal), Get and the copy a Change
// makes.
func TestAllocsPutWithPrefixes(t *testing.T) {
	tb := New(1000, 100)
	now := t0
	tb.Expire(now, nil)
	var h uint32
	var sink Entry
	pfx := netip.MustParsePrefix("10.77.0.0/24")
	allocs := testing.AllocsPerRun(1000, func() {
		h = (h + 1) % 1500
		now += sec / 10
		e := live(h, now, 30)
		e.NATAddr, e.NATPort, e.Encap = 0xcb007101, 4500, EncapUDP
		for range MaxPrefixes {
			e.AddPrefix(pfx)
		}
		p, err := tb.Put(e)
		if err != nil && !errors.Is(err, ErrFull) {
			t.Fatal(err)
		}
		if p != nil {
			sink = *p
		}
		_ = tb.Get(h)
		tb.Expire(now, nil)
	})
	if allocs != 0 {
		t.Fatalf("allocs per Put with %d prefixes = %v, want 0", MaxPrefixes, allocs)
	}
	_ = sink
}
