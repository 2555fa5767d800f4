package hasync

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/hagent/hagent/ha/internal/binding"
)

// simNets gives a registration a NAT endpoint and networks derived from its
// home and Identification alone (no random draw: the seeded schedules stay
// what they were). Every count of networks, 0..8, and every encapsulation
// occur; a UDP one always has its endpoint.
func simNets(e *binding.Entry) {
	k := e.ID*0x9e3779b97f4a7c15 ^ uint64(e.Home)
	e.Encap = binding.Encap(k % 4)
	if e.Encap != binding.EncapDefault || k%3 == 0 {
		e.NATAddr, e.NATPort = 0xcb007100+uint32(k>>8)%200+1, uint16(1024+(k>>16)%60000)
	}
	for j := range int(k>>40) % (binding.MaxPrefixes + 1) {
		e.AddPrefixU32(0x0a800000|uint32(e.Home&0xff)<<12|uint32(j)<<8, uint8(24+j%9))
	}
}

// simNetsString is netsString of what simNets gives (home, id).
func simNetsString(home uint32, id uint64) string {
	e := binding.Entry{Home: home, ID: id}
	simNets(&e)
	return netsString(&e)
}

// netsString shows an entry's NAT endpoint and networks, "" when it has
// none (the state of a plain binding reads as it always did).
func netsString(e *binding.Entry) string {
	var b strings.Builder
	if e.NATAddr != 0 || e.NATPort != 0 || e.Encap != binding.EncapDefault {
		fmt.Fprintf(&b, " nat=%s:%d/%v", binding.U32Addr(e.NATAddr), e.NATPort, e.Encap)
	}
	for i := range e.NumPrefixes() {
		fmt.Fprintf(&b, " net=%v", e.Prefix(i))
	}
	return b.String()
}

// Mobile routers registered at the active member keep their NAT endpoints
// and networks on the standby when the active member dies (replicated by
// updates under loss), and a member that starts afterwards downloads them
// all from the standby: chunks of long records, every datagram within one
// MTU.
func TestRoutersSurviveFailover(t *testing.T) {
	s := group(t, 2, nil)
	longest := 0
	s.tap = func(from, to int, data []byte) { longest = max(longest, len(data)) }
	s.loss = 0.2
	const routers = 300
	want := map[uint32]string{}
	size := 0 // of the binding extensions a download carries
	for k := range routers {
		home := uint32(0x0a000100 + k)
		e := binding.Entry{Home: home, CareOf: 0xc6336401, HomeAgent: 0xc0a80101, ID: uint64(1000 + k), Granted: 3600}
		simNets(&e)
		if k%3 == 0 { // a full set on every third router: the longest records
			e.ClearPrefixes()
			for j := range binding.MaxPrefixes {
				e.AddPrefixU32(0x0b000000|uint32(k)<<8|uint32(j)<<4, 28)
			}
		}
		want[home] = netsString(&e)
		var r Record
		recordOf(&e, 0, &r)
		size += ExtSize(&r)
		var err error
		if s.out, err = s.nodes[0].m.Register(s.now, e, s.out[:0]); err != nil {
			t.Fatal(err)
		}
		s.dispatch(0)
		s.run(s.now + 10*ms)
	}
	s.run(s.now + 20*sec) // retransmissions
	s.stop(0)             // the active member dies
	check := func(who int) {
		t.Helper()
		tab := s.nodes[who].tab
		for home, w := range want {
			e := tab.Get(home)
			if e == nil || e.Tombstone() {
				t.Fatalf("member %d lacks router %08x", who, home)
			}
			if got := netsString(e); got != w {
				t.Fatalf("member %d router %08x:\n got%s\nwant%s", who, home, got, w)
			}
		}
	}
	check(1)
	s.loss = 0
	s.nodes = append(s.nodes, &node{id: 12, addr: netip.AddrFrom4([4]byte{192, 168, 1, 12})})
	s.side = append(s.side, 0)
	s.start(2)
	s.run(s.now + 10*sec)
	if !s.nodes[2].m.Initialized() || s.nodes[2].m.Counters().Downloads != 1 {
		t.Fatalf("member 2: initialized %v, downloads %d", s.nodes[2].m.Initialized(), s.nodes[2].m.Counters().Downloads)
	}
	check(2)
	if longest > MaxDatagram {
		t.Fatalf("a %d-byte datagram was sent (limit %d)", longest, MaxDatagram)
	}
	if c, least := s.nodes[1].m.Counters(), 1+(size+ReplyRoom-1)/ReplyRoom; c.RepliesSent < uint64(least) {
		t.Errorf("%d chunks for %d bytes of records: fewer than the %d they need", c.RepliesSent, size, least)
	} else {
		t.Logf("download: %d chunks for %d routers (%d bytes of records); longest datagram %d bytes", c.RepliesSent, routers, size, longest)
	}
}
