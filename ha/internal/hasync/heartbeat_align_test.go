package hasync

import (
	"testing"
	"time"
)

// With an election, the active member's heartbeats ride on the election's
// wake-ups: a heartbeat due within a quarter interval of an advertisement
// leaves with it, and the next is timed from there, unjittered, so that
// it is again due at an advertisement. At an interval equal to the
// advertisement interval no heartbeat then needs a wake-up of its own; at
// a third of it, two in three do.
func TestHeartbeatAlignedWithElection(t *testing.T) {
	const advert = 100 * ms
	for _, tc := range []struct {
		iv       time.Duration
		perCycle uint64 // heartbeats per advertisement interval on the member's own timer
	}{{100 * time.Millisecond, 0}, {time.Duration(advert / 3), 2}} {
		s := group(t, 2, hbConfig(tc.iv, 3))
		m := s.nodes[0].m
		s.run(s.now + sec)
		var own, aligned uint64
		const cycles = 50
		wake := s.now
		// The election's timer fires every advert; the owner loop runs
		// AlignHeartbeat a little later in the same wake-up (eps).
		eps := int64(50 * time.Microsecond)
		for k := range cycles + 5 {
			wake += advert
			before := m.C.HeartbeatsSent
			s.run(wake + eps - 1)
			if k >= 5 {
				own += m.C.HeartbeatsSent - before
			}
			before = m.C.HeartbeatsSent
			s.out = m.AlignHeartbeat(wake+eps, advert, s.out[:0])
			s.dispatch(0)
			if k >= 5 {
				aligned += m.C.HeartbeatsSent - before
			}
		}
		if aligned != cycles || own != tc.perCycle*cycles {
			t.Errorf("interval %v: %d heartbeats with the advertisements and %d on the member's own timer in %d cycles, want %d and %d",
				tc.iv, aligned, own, cycles, cycles, tc.perCycle*cycles)
		}
		if c := s.nodes[1].m.Counters(); c.PeersDetectedDown != 0 {
			t.Errorf("interval %v: the peer declared the member down %d times", tc.iv, c.PeersDetectedDown)
		}
	}
}

// What a lazily reading member must watch: a periodic peer's expiry, and
// whether every up peer's heartbeat is known. A restarted peer whose new
// incarnation sent no heartbeat yet is unknown (read at every chance); a
// peer in demand mode gives no expiry to watch.
func TestHeartbeatWatch(t *testing.T) {
	s := group(t, 2, hbConfig(100*time.Millisecond, 3))
	m := s.nodes[0].m
	s.run(s.now + sec)
	if e, known := m.HeartbeatWatch(); e != m.LastHeard(s.nodes[1].addr)+300*ms || !known {
		t.Fatalf("periodic peer: expiry %d known %v, want last heard + 300 ms and known", e, known)
	}
	s.nodes[1].m.SetHeartbeatDemand(true)
	s.run(s.now + sec)
	if e, known := m.HeartbeatWatch(); e != 0 || !known {
		t.Fatalf("demand peer: expiry %d known %v, want none and known", e, known)
	}
	s.cfg = nil // the new incarnation sends no heartbeat
	s.stop(1)
	s.start(1)
	s.run(s.now + sec)
	if e, known := m.HeartbeatWatch(); e != 0 || known || m.UpPeers() != 1 {
		t.Fatalf("restarted peer, no heartbeat yet: expiry %d known %v up %d, want none, unknown, up", e, known, m.UpPeers())
	}
}

// An interval longer than the advertisement's is not aligned: the
// heartbeat never leaves faster than its transmit interval (a peer's
// RxInterval is a floor).
func TestHeartbeatAlignNeverFaster(t *testing.T) {
	s := group(t, 2, hbConfig(time.Second, 3))
	m := s.nodes[0].m
	s.run(s.now + 2*sec)
	before := m.C.HeartbeatsSent
	start := s.now
	for range 100 {
		s.run(s.now + 100*ms)
		s.out = m.AlignHeartbeat(s.now, 100*ms, s.out[:0])
		s.dispatch(0)
	}
	if got, most := m.C.HeartbeatsSent-before, uint64((s.now-start)/(750*ms))+1; got > most {
		t.Fatalf("%d heartbeats in %v at a 1 s interval (75-100 %% jitter): at most %d", got, time.Duration(s.now-start), most)
	}
}

// A member in demand mode sends its refresh (the announcement's repeats a
// second apart, then one about every 4.4 s) and takes its turns (at most
// a second apart) in a wake-up of its election when they fall due within
// the window asked for, never on a timer of its own: an idle pair at the
// default then wakes for its advertisements only. Without AlignDemand
// every refresh was a wake-up of its own on each member.
func TestDemandRefreshRidesElection(t *testing.T) {
	const advert = 100 * ms
	s := group(t, 2, hbConfig(100*time.Millisecond, 3))
	m := s.nodes[0].m
	m.SetHeartbeatDemand(true)
	s.run(s.now + sec)
	var own, ownTurns, aligned uint64
	wake := s.now
	eps := int64(50 * time.Microsecond)
	const cycles = 300 // 30 s: the last two repeats and three refreshes
	for k := range cycles {
		wake += advert
		before, turn := m.C.HeartbeatsSent, m.hb.turn
		s.run(wake + eps - 1)
		own += m.C.HeartbeatsSent - before
		if m.hb.turn != turn && k > 0 { // the first has no wake-up before it to ride
			ownTurns++
		}
		before = m.C.HeartbeatsSent
		if due := m.DemandDue(); due < 0 || due > wake+eps+advert+advert/4 {
			// The agent asks for no wake-up this early: nothing is sent.
			if s.out = m.AlignDemand(wake+eps, wake+eps+advert+advert/4, s.out[:0]); len(s.out) != 0 {
				t.Fatalf("refresh due %v, sent %v early", time.Duration(due), time.Duration(due-wake))
			}
			continue
		}
		s.out = m.AlignDemand(wake+eps, wake+eps+advert+advert/4, s.out[:0])
		s.dispatch(0)
		aligned += m.C.HeartbeatsSent - before
	}
	if own != 0 || ownTurns != 0 || aligned < 5 {
		t.Fatalf("%d refreshes and %d turns on the member's own timer and %d refreshes with the election in %d cycles, want none, none and at least 5", own, ownTurns, aligned, cycles)
	}
	if c := s.nodes[1].m.Counters(); c.PeersDetectedDown != 0 {
		t.Fatalf("the peer declared the member down %d times", c.PeersDetectedDown)
	}
	m.SetHeartbeatDemand(false)
	if m.DemandDue() != -1 {
		t.Fatal("a periodic member owes a demand refresh")
	}
}
