package hasync

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
)

// heldAcrossPurge scripts an attacker on the path who holds no key and
// tries to bring back a de-registered binding. Member 0 registers home h
// (id 5); the attacker copies its Binding Update and drops it and every
// retransmission, so member 1 never sees id 5. Member 0 de-registers h
// (id 6), which reaches member 1. Then member 0 goes away (gone: it
// crashes or leaves, and stays down) or is cut off from member 1 (it
// stays up and is heard again after the cut), for longer than the
// tombstone lifetime (2 minutes here): every member purges the tombstone
// of id 6. Finally the attacker delivers the copied update to member 1.
// Its sequence number was never seen in member 0's session, so without
// more it is fresh there. It returns the simulation, the copy and its
// sequence number.
func heldAcrossPurge(t *testing.T, gone string) (*simnet, []byte) {
	t.Helper()
	const h = 0x0a000018
	s := group(t, 2, func(c *Config) { c.TombstoneTTL = 2 * time.Minute })
	var held []byte
	s.tap = func(from, to int, data []byte) {
		if from == 0 && data[1] == TypeBindingUpdate && held == nil {
			held = append([]byte(nil), data...)
		}
	}
	s.drop = func(from, to int, typ uint8) bool { return from == 0 && typ == TypeBindingUpdate }
	var err error
	s.out, err = s.nodes[0].m.Register(s.now, binding.Entry{Home: h, CareOf: 0xc6336455, HomeAgent: 0xc0a80101, ID: 5, Granted: 60}, s.out[:0])
	if err != nil {
		t.Fatal(err)
	}
	s.dispatch(0)
	s.run(s.now + 100*ms)
	s.tap, s.drop = nil, nil
	if held == nil {
		t.Fatal("the attacker captured no Binding Update")
	}
	if err := s.deregister(0, h, 6); err != nil {
		t.Fatal(err)
	}
	s.run(s.now + 300*ms)
	if e := s.nodes[1].tab.Get(h); e == nil || !e.Tombstone() || e.ID != 6 {
		t.Fatalf("member 1 holds %+v, want the tombstone of id 6", e)
	}
	switch gone {
	case "crash":
		s.stop(0)
	case "leave":
		s.out = s.nodes[0].m.Leave(s.now, s.out[:0])
		s.dispatch(0)
		s.run(s.now + ms)
		s.stop(0)
	case "cut":
		s.side[0] = 1
	}
	s.run(s.now + 3*time.Minute.Nanoseconds())
	for i, nd := range s.nodes {
		if nd.alive && nd.tab.Get(h) != nil {
			t.Fatalf("member %d still holds %+v: the test needs the tombstone purged", i, nd.tab.Get(h))
		}
	}
	if gone == "cut" {
		clear(s.side)
		s.run(s.now + 5*sec) // heard again, each session proven again
	}
	s.out = s.nodes[1].m.Receive(s.now, s.nodes[0].addr, RequiredTTL, held, s.out[:0])
	s.dispatch(1)
	s.run(s.now + 10*sec)
	return s, held
}

// TestWithheldUpdateAfterTombstonePurge: a member's datagram held back on
// the path cannot bring back a binding it de-registered since, however
// late it is delivered: not after the member crashed, not after it left,
// not after it was cut off and came back.
func TestWithheldUpdateAfterTombstonePurge(t *testing.T) {
	const h = 0x0a000018
	for _, gone := range []string{"crash", "leave", "cut"} {
		t.Run(gone, func(t *testing.T) {
			s, held := heldAcrossPurge(t, gone)
			for i, nd := range s.nodes {
				if e := nd.tab.Get(h); nd.alive && e != nil && !e.Tombstone() {
					t.Fatalf("member %d: de-registered binding live again, %v after its de-registration: %+v", i, 3*time.Minute, e)
				}
			}
			if gone == "cut" {
				// The cut must leave the copy within the 64-message window of
				// the session proven again: otherwise the window alone refuses
				// it and this case tests nothing more.
				top := s.nodes[1].m.peers[0].rw.Top
				if d := top - binary.BigEndian.Uint32(held[16:]); d >= 64 {
					t.Fatalf("the copy is %d messages behind member 0's latest: outside the window, the test no longer exercises the proof", d)
				}
			}
		})
	}
}

// TestLapsedSessionProvenAgainIsNoRestart: a member cut off for longer
// than the dead interval proves its session again when it is heard, and
// that proof is no restart: the peer that the heartbeat declared down is
// reported alive again (what was done on its death is undone), it keeps
// being known as initialized, and its table is not downloaded anew.
func TestLapsedSessionProvenAgainIsNoRestart(t *testing.T) {
	s := group(t, 2, hbConfig(100*time.Millisecond, 3))
	m1 := s.nodes[1].m
	proven, downloads := m1.Counters().SessionsProven, s.nodes[0].m.Counters().Downloads
	s.side[0] = 1
	s.run(s.now + 20*sec) // > DeadInterval (18 s)
	if m1.UpPeers() != 0 {
		t.Fatalf("member 0 still up at member 1 after 20 s cut off: %+v", m1.Peers(nil))
	}
	s.alive = nil
	clear(s.side)
	s.run(s.now + 2*sec)
	if got := m1.Counters().SessionsProven - proven; got != 1 {
		t.Fatalf("member 1 proved %d sessions of member 0 after the cut, want 1 (the same session, again)", got)
	}
	if ps := m1.Peers(nil); len(ps) != 1 || !ps[0].Up || !ps[0].Initialized {
		t.Fatalf("member 1's view of member 0 after the heal: %+v, want up and initialized", ps)
	}
	found := false
	for _, i := range s.alive {
		found = found || i == 1
	}
	if !found {
		t.Fatalf("member 1 did not report member 0 alive again (ActPeerAlive from members %v)", s.alive)
	}
	if got := s.nodes[0].m.Counters().Downloads - downloads; got != 0 {
		t.Fatalf("member 0 downloaded its table %d times after the cut", got)
	}
}

// TestWithheldUpdateBehindDelayedStream: the sender stays alive, and the
// attacker on the path, instead of silencing it (its session would lapse),
// delays everything it sends to member 1 after its de-registration and
// lets one message through every 15 s (less than the dead interval), so
// member 1 keeps hearing a live session that never gets 64 messages past
// the copy. After the tombstone is purged the copy is delivered: it was
// passed by a later sequence minutes before, so it is no reordered
// datagram but a withheld one, and is refused.
func TestWithheldUpdateBehindDelayedStream(t *testing.T) {
	const h = 0x0a000018
	// Digests every 15 s: fewer than 64 messages of member 0 in the 3
	// minutes, each session proof asked again every DeadInterval/4 included.
	s := group(t, 2, func(c *Config) { c.TombstoneTTL, c.DigestPeriod = 2*time.Minute, 15*time.Second })
	var held []byte
	var delayed [][]byte
	holding := false
	s.tap = func(from, to int, data []byte) {
		switch {
		case from == 0 && data[1] == TypeBindingUpdate && held == nil:
			held = append([]byte(nil), data...)
		case holding && from == 0 && to == 1 && data[1] != TypeResponse:
			delayed = append(delayed, append([]byte(nil), data...))
		}
	}
	s.drop = func(from, to int, typ uint8) bool {
		return from == 0 && to == 1 && (typ == TypeBindingUpdate || holding)
	}
	var err error
	s.out, err = s.nodes[0].m.Register(s.now, binding.Entry{Home: h, CareOf: 0xc6336455, HomeAgent: 0xc0a80101, ID: 5, Granted: 60}, s.out[:0])
	if err != nil {
		t.Fatal(err)
	}
	s.dispatch(0)
	s.run(s.now + 100*ms)
	if held == nil {
		t.Fatal("the attacker captured no Binding Update")
	}
	// Session Responses go through: member 1 dates the session by them
	// (spec §3.1 rule 6), and an attacker who held them back too would
	// only make it lapse; this test is about the window.
	s.drop = func(from, to int, typ uint8) bool { return holding && from == 0 && to == 1 && typ != TypeResponse }
	if err := s.deregister(0, h, 6); err != nil {
		t.Fatal(err)
	}
	s.run(s.now + 300*ms)
	if e := s.nodes[1].tab.Get(h); e == nil || !e.Tombstone() || e.ID != 6 {
		t.Fatalf("member 1 holds %+v, want the tombstone of id 6", e)
	}
	holding = true
	m1 := s.nodes[1].m
	end := s.now + 3*time.Minute.Nanoseconds()
	for s.now < end {
		s.run(s.now + 15*sec)
		if len(delayed) > 0 {
			// The newest only: one delayed by minutes is older than the
			// session's latest proof allows (spec §3.1 rule 6) and would
			// make the session lapse.
			s.out = m1.Receive(s.now, s.nodes[0].addr, RequiredTTL, delayed[len(delayed)-1], s.out[:0])
			s.dispatch(1)
			delayed = delayed[:0]
		}
	}
	if m1.UpPeers() != 1 || m1.Counters().SessionsProven != 1 {
		t.Fatalf("member 1 lost member 0's session during the trickle (up %d, proven %d): the test needs it kept", m1.UpPeers(), m1.Counters().SessionsProven)
	}
	if e := s.nodes[1].tab.Get(h); e != nil {
		t.Fatalf("member 1 still holds %+v: the test needs the tombstone purged", e)
	}
	if d := m1.peers[0].rw.Top - binary.BigEndian.Uint32(held[16:]); d >= 64 {
		t.Fatalf("the copy is %d messages behind: outside the window, the test exercises nothing", d)
	}
	s.out = m1.Receive(s.now, s.nodes[0].addr, RequiredTTL, held, s.out[:0])
	s.dispatch(1)
	if e := s.nodes[1].tab.Get(h); e != nil && !e.Tombstone() {
		t.Fatalf("member 1: de-registered binding live again, 3 min after its de-registration: %+v", e)
	}
}
