package hasync

import (
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
)

const (
	testVIP     = 0x0a0000fe // 10.0.0.254: the group's virtual address in these tests
	testOutside = 0x08080808 // 8.8.8.8
)

// admitTen is the agent's validator in miniature: 10.0.0.0/24 minus the
// virtual address.
func admitTen(home uint32) string {
	switch {
	case home>>8 != 0x0a0000:
		return "outside the home network"
	case home == testVIP:
		return "the virtual address"
	}
	return ""
}

// Records a member's configuration does not admit are never stored, by
// update, download or repair; the refusal is acknowledged (no
// retransmission) and counted on both sides.
func TestRefusesRecordsNotAdmitted(t *testing.T) {
	s := group(t, 2, func(c *Config) { c.Admit = admitTen })
	member0 := binding.AddrU32(s.nodes[0].addr)
	member1 := binding.AddrU32(s.nodes[1].addr)
	bad := []uint32{testOutside, testVIP, member0, member1}
	for k, h := range bad {
		if err := s.register(0, h, uint64(100+k), 0xc6336401); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.register(0, 0x0a000005, 200, 0xc6336401); err != nil {
		t.Fatal(err)
	}
	s.run(s.now + 30*sec)
	for _, h := range bad {
		if e := s.nodes[1].tab.Get(h); e != nil {
			t.Errorf("member 1 stored %08x: %+v", h, e)
		}
	}
	if e := s.nodes[1].tab.Get(0x0a000005); e == nil || e.Tombstone() {
		t.Fatalf("member 1 lacks the admitted binding: %+v", e)
	}
	c0, c1 := s.nodes[0].m.Counters(), s.nodes[1].m.Counters()
	if c1.RecordsRefused < 4 || c0.UpdatesRefused != 4 || c0.UpdatesFailed != 0 {
		t.Fatalf("refused %d at the receiver (want >= 4), %d refusals and %d failures at the sender (want 4, 0)", c1.RecordsRefused, c0.UpdatesRefused, c0.UpdatesFailed)
	}
	if c0.UpdatesTotal != c0.UpdatesSent {
		t.Fatalf("%d updates sent, %d with retransmissions: a refusal must settle the update", c0.UpdatesSent, c0.UpdatesTotal)
	}
	if len(s.acked) != 1 || s.acked[0].Home != 0x0a000005 {
		t.Fatalf("acked %+v: only the admitted binding is replicated", s.acked)
	}

	// A member that starts now downloads the table: the same refusals.
	s.nodes = append(s.nodes, &node{id: 12, addr: binding.U32Addr(0xc0a8010c)})
	s.side = append(s.side, 0)
	s.start(2)
	s.run(s.now + 10*sec)
	if !s.nodes[2].m.Initialized() {
		t.Fatal("member 2 not initialized")
	}
	for _, h := range bad {
		if e := s.nodes[2].tab.Get(h); e != nil {
			t.Errorf("member 2 downloaded %08x: %+v", h, e)
		}
	}
	if e := s.nodes[2].tab.Get(0x0a000005); e == nil {
		t.Fatal("member 2 lacks the admitted binding")
	}
	if s.nodes[2].m.Counters().RecordsRefused == 0 {
		t.Fatal("member 2 counted no refusal")
	}
}

// A de-registration for a home the configuration no longer admits still
// removes the binding a member holds (it only removes).
func TestDeregistrationOfAHeldHomeIsAdmitted(t *testing.T) {
	admitted := true
	s := group(t, 2, func(c *Config) {
		c.Admit = func(home uint32) string {
			if !admitted && home == 0x0a000007 {
				return "no configured node or pool"
			}
			return ""
		}
	})
	s.register(0, 0x0a000007, 10, 0xc6336401)
	s.run(s.now + sec)
	admitted = false
	s.deregister(0, 0x0a000007, 11)
	s.run(s.now + sec)
	if e := s.nodes[1].tab.Get(0x0a000007); e == nil || !e.Tombstone() {
		t.Fatalf("member 1 kept %+v", e)
	}
}

// A member whose table had no room for a tombstone folded it; the stale
// live copy another member still holds must not come back through
// anti-entropy, nor be registered locally at an older Identification.
func TestFoldedTombstoneRefusesStaleCopy(t *testing.T) {
	s := newSimnet(t, 2, 1, func(c *Config) { c.TombstoneTTL = time.Hour })
	s.table = func() *binding.Table { return binding.New(2, 2) } // 4 slots
	for i := range 2 {
		s.start(i)
		s.run(s.now + 5*sec)
	}
	const h1 = 0x0a000001
	if err := s.register(0, h1, 10, 0xc6336401); err != nil {
		t.Fatal(err)
	}
	s.run(s.now + sec)
	deaf := true
	s.drop = func(from, to int, typ uint8) bool { return deaf && to == 1 }
	if err := s.deregister(0, h1, 11); err != nil {
		t.Fatal(err)
	}
	s.run(s.now + sec)
	for k := uint32(2); k <= 5; k++ { // homes member 0 never held: H1's tombstone is the nearest purge
		if err := s.deregister(0, 0x0a000000+k, 20); err != nil {
			t.Fatal(err)
		}
		s.run(s.now + sec)
	}
	if s.nodes[0].tab.Get(h1) != nil || s.nodes[0].tab.Stats().TombEvicted == 0 {
		t.Fatalf("setup: H1's tombstone was not folded: %+v", s.nodes[0].tab.Get(h1))
	}
	if e := s.nodes[1].tab.Get(h1); e == nil || e.Tombstone() {
		t.Fatalf("setup: member 1 should still hold H1 live: %+v", e)
	}
	deaf = false
	s.run(s.now + 30*sec) // retransmissions are over; anti-entropy runs
	if e := s.nodes[0].tab.Get(h1); e != nil && !e.Tombstone() {
		t.Fatalf("member 0: de-registered H1 is live again: %+v", e)
	}
	if s.nodes[0].m.Counters().StaleByFloor == 0 {
		t.Fatal("no stale copy refused: the test no longer reaches the floor")
	}
	if err := s.register(0, h1, 10, 0xc6336402); err != ErrStale {
		t.Fatalf("local registration below the floor: %v, want ErrStale", err)
	}
	if err := s.register(0, h1, 12, 0xc6336402); err != nil {
		t.Fatalf("local registration above the floor: %v", err)
	}
}
