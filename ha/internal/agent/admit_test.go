package agent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/hasync"
)

// A peer holding the group key sends Binding Updates for addresses this
// member's configuration would never bind (outside the home network, the
// virtual address, the member's own and the peer's address, an address no
// node or pool holds): none is stored, each is counted, and the one
// configured node's binding still is.
func TestPeerRecordsAreAdmittedByOwnConfig(t *testing.T) {
	h := newReplHarness(t, false)
	h.peerUp()
	h.toPeer(true) // the peer hears the member: it expects acks from it
	homes := []string{"8.8.8.8", "127.0.0.2", "127.0.0.1", "127.0.0.3", "127.0.0.99", "127.255.255.255", "127.0.0.10"}
	now := h.now
	for i, s := range homes {
		e := binding.Entry{Home: binding.AddrU32(netip.MustParseAddr(s)), CareOf: 0xc6336401, HomeAgent: binding.AddrU32(h.a.cfg.Agent.VirtualAddress),
			ID: uint64(1000 + i), Granted: 300}
		var err error
		if h.out, err = h.peer.Register(now, e, h.out[:0]); err != nil {
			t.Fatal(err)
		}
		h.peerSays(h.out)
	}
	tab := h.a.core.Table()
	for _, s := range homes[:len(homes)-1] {
		if e := tab.Get(binding.AddrU32(netip.MustParseAddr(s))); e != nil {
			t.Errorf("stored a peer's record for %s: %+v", s, e)
		}
	}
	if e := tab.Get(binding.AddrU32(netip.MustParseAddr("127.0.0.10"))); e == nil || e.Tombstone() {
		t.Fatalf("the configured node's binding was not stored: %+v", e)
	}
	if n := counter(t, h.a, "records.refused_not_admitted"); n != uint64(len(homes)-1) {
		t.Fatalf("refused counter %d, want %d", n, len(homes)-1)
	}
	// The refusals are acknowledged: the peer stops retransmitting.
	h.toPeer(true)
	if c := h.peer.Counters(); c.UpdatesRefused != uint64(len(homes)-1) {
		t.Fatalf("peer heard %d refusals, want %d", c.UpdatesRefused, len(homes)-1)
	}
	h.out = h.peer.Tick(now+int64(time.Minute), h.out[:0])
	for _, a := range h.out {
		if (a.Kind == hasync.ActUnicast || a.Kind == hasync.ActMulticast) && a.Pkt[1] == hasync.TypeBindingUpdate {
			t.Fatal("the peer still retransmits a refused update")
		}
	}
}

func TestAdmitHomeAllocatesNothing(t *testing.T) {
	c, err := NewCore(testConfig(8))
	if err != nil {
		t.Fatal(err)
	}
	homes := []uint32{0x08080808, c.netLo, c.addr, c.netLo + 77}
	if n := testing.AllocsPerRun(100, func() {
		for _, h := range homes {
			_ = c.AdmitHome(h)
		}
	}); n != 0 {
		t.Fatalf("allocs %v", n)
	}
}
