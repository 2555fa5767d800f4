package hasync

import (
	"testing"
	"time"
)

// delayedStream scripts an attacker on the path between two live members
// who holds no key: it delays member 0's whole stream to member 1, in
// order, by a lag that grows as long as the attack lasts (every datagram
// sent at t is delivered at t0 + 2(t−t0)), so member 1 never goes without
// a message of member 0 for long and never sees one overtake another.
// Member 0 registers home h (id 5) 150 s into the attack; member 2 gets
// the update at once, member 1 150 s later. Meanwhile member 2 accepts
// the de-registration (id 6), which every member holds at once and purges
// after the tombstone lifetime (2 minutes). Then member 1 receives
// member 0's update of id 5 and its retransmissions, 150 to 166 s late.
// It returns the simulation after that.
func delayedStream(t *testing.T) *simnet {
	t.Helper()
	const h = 0x0a000018
	s := group(t, 3, func(c *Config) { c.TombstoneTTL = 2 * time.Minute })
	t0 := s.now
	s.lag = func(from, to int) int64 {
		if from == 0 && to == 1 {
			return s.now - t0
		}
		return 0
	}
	s.run(t0 + 150*sec)
	if err := s.register(0, h, 5, 0xc6336455); err != nil {
		t.Fatal(err)
	}
	s.run(s.now + 20*sec)
	if err := s.deregister(2, h, 6); err != nil {
		t.Fatal(err)
	}
	s.run(s.now + 300*ms)
	for i, nd := range s.nodes {
		if e := nd.tab.Get(h); e == nil || !e.Tombstone() || e.ID != 6 {
			t.Fatalf("member %d holds %+v, want the tombstone of id 6", i, e)
		}
	}
	s.run(t0 + 340*sec)
	return s
}

// TestDelayedStreamCannotResurrect: a member's Binding Update delayed on
// the path, with everything else the member sends, cannot bring back a
// binding de-registered since, however long the delay: not at the member
// it was delayed to, and not through that member's repairs at the others.
func TestDelayedStreamCannotResurrect(t *testing.T) {
	const h = 0x0a000018
	s := delayedStream(t)
	if e := s.nodes[1].tab.Get(h); e != nil && !e.Tombstone() {
		t.Fatalf("member 1: de-registered binding live again from member 0's update delivered 150 s late: %+v", e)
	}
	s.lag = nil
	s.run(s.now + 60*sec)
	for i, nd := range s.nodes {
		if e := nd.tab.Get(h); e != nil && !e.Tombstone() {
			t.Fatalf("member %d: de-registered binding live again after the delayed stream: %+v", i, e)
		}
	}
	same(t, s)
}
