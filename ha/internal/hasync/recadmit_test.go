package hasync

import (
	"net/netip"
	"testing"

	"github.com/hagent/hagent/ha/internal/binding"
)

// admitNets is a member's claims in miniature: only networks inside
// 10.128.0.0/9 may be claimed, by any home.
func admitNets(home uint32, p netip.Prefix) string {
	if !netip.MustParsePrefix("10.128.0.0/9").Overlaps(p) || p.Bits() < 9 {
		return "not a network any node may claim"
	}
	return ""
}

// A record carrying a network the receiver's configuration does not let
// its home claim is refused whole (update, download), acknowledged as
// refused and counted on both sides; the same binding with claimable
// networks is stored with them.
func TestRefusesPrefixesNotAdmitted(t *testing.T) {
	s := group(t, 2, func(c *Config) {
		if c.ID == 11 {
			c.AdmitPrefix = admitNets
		}
	})
	reg := func(home uint32, id uint64, nets ...string) {
		t.Helper()
		e := binding.Entry{Home: home, CareOf: 0xc6336401, HomeAgent: 0xc0a80101, ID: id, Granted: 3600,
			NATAddr: 0xcb007101, NATPort: 4500, Encap: binding.EncapUDP}
		for _, n := range nets {
			e.AddPrefix(netip.MustParsePrefix(n))
		}
		var err error
		if s.out, err = s.nodes[0].m.Register(s.now, e, s.out[:0]); err != nil {
			t.Fatal(err)
		}
		s.dispatch(0)
	}
	reg(0x0a000005, 10, "10.128.1.0/24", "10.200.0.0/16")
	reg(0x0a000006, 11, "10.128.2.0/24", "192.168.77.0/24")
	reg(0x0a000007, 12, "10.128.3.0/24", "10.129.0.0/16")
	s.run(s.now + 30*sec)
	for _, h := range []uint32{0x0a000006} {
		if e := s.nodes[1].tab.Get(h); e != nil {
			t.Errorf("member 1 stored %08x with a network it may not claim: %s", h, netsString(e))
		}
	}
	for _, h := range []uint32{0x0a000005, 0x0a000007} {
		if e := s.nodes[1].tab.Get(h); e == nil || e.NumPrefixes() != 2 || e.NATPort != 4500 {
			t.Errorf("member 1 lacks the admitted router %08x: %+v", h, e)
		}
	}
	c0, c1 := s.nodes[0].m.Counters(), s.nodes[1].m.Counters()
	if c1.RecordsRefused == 0 || c0.UpdatesRefused != 1 || c0.UpdatesFailed != 0 {
		t.Fatalf("refused %d at the receiver (want > 0), %d refusals and %d failures at the sender (want 1, 0)", c1.RecordsRefused, c0.UpdatesRefused, c0.UpdatesFailed)
	}
	// A restart downloads the table: the refused record stays out.
	s.stop(1)
	s.start(1)
	s.run(s.now + 10*sec)
	if !s.nodes[1].m.Initialized() || s.nodes[1].tab.Get(0x0a000006) != nil || s.nodes[1].tab.Get(0x0a000005) == nil {
		t.Fatalf("after a download: initialized %v, refused router %v, admitted router %v", s.nodes[1].m.Initialized(),
			s.nodes[1].tab.Get(0x0a000006) != nil, s.nodes[1].tab.Get(0x0a000005) != nil)
	}
	if s.nodes[1].m.Counters().RecordsRefused == 0 {
		t.Error("the download's refusal was not counted")
	}
}

// A record with an extension the receiver does not know but must
// understand is refused, not stored without it; one it may skip is stored.
func TestRefusesUnknownMustUnderstand(t *testing.T) {
	s := group(t, 2, nil)
	m := s.nodes[1].m
	r := sampleRecord()
	r.Unknown = RecExtMust | 5
	if code, _ := m.merge(s.now, &r, nil); code != AckRefused || s.nodes[1].tab.Get(r.Home) != nil {
		t.Fatalf("must-understand extension: ack %d, stored %v", code, s.nodes[1].tab.Get(r.Home) != nil)
	}
	base := sampleRecord()
	b, _ := base.AppendBinary(nil)
	b = append(b, 0x7f, 1, 0xaa) // unknown, skippable
	var q Record
	if err := q.UnmarshalBinary(b); err != nil || q.Unknown != 0 {
		t.Fatalf("skippable unknown extension: %v, unknown %d", err, q.Unknown)
	}
	if code, _ := m.merge(s.now, &q, nil); code != AckAccepted {
		t.Fatalf("record with a skippable unknown extension: ack %d", code)
	}
}

// A local write whose endpoint every peer would drop as malformed (UDP
// without an address and port, an undefined encapsulation) is refused at
// Register, before it is stored or sent: it could never replicate.
func TestRegisterRefusesBadEndpoint(t *testing.T) {
	s := group(t, 2, nil)
	for _, e := range []binding.Entry{
		{Home: 0x0a000005, ID: 10, Granted: 60, Encap: binding.EncapUDP, NATAddr: 0xcb007101},
		{Home: 0x0a000005, ID: 11, Granted: 60, Encap: binding.EncapUDP, NATPort: 4500},
		{Home: 0x0a000005, ID: 12, Granted: 60, Encap: 9, NATAddr: 0xcb007101, NATPort: 4500},
	} {
		out, err := s.nodes[0].m.Register(s.now, e, nil)
		if err != ErrEndpoint || len(out) != 0 || s.nodes[0].tab.Get(e.Home) != nil {
			t.Errorf("%+v: %v, %d actions, stored %v", e, err, len(out), s.nodes[0].tab.Get(e.Home) != nil)
		}
	}
}
