package hasync

import (
	"testing"
	"time"
)

// A refresh sent early, in a wake-up of the election before it was due,
// keeps the refresh schedule: the next one counts from when this one was
// due (never later than a whole spacing after it was sent). Riding
// wake-ups three advertisement intervals apart (a VRRP backup that reads
// its master's adverts lazily), with a window of one spacing and a
// quarter, then sends about as many refreshes as the member's own timer
// would (one per 4.4 s on average once the announcement's repeats are
// done), and no two more than DemandIdleRefresh apart. Every turn rides a
// wake-up too, none more than DemandRefresh after the previous one, and
// most send nothing.
func TestDemandRideKeepsSchedule(t *testing.T) {
	const advert = 100 * ms
	const gap = 3 * advert
	const window = gap + advert/4
	s := group(t, 2, func(c *Config) {
		c.HeartbeatInterval, c.HeartbeatMultiplier, c.DeadInterval = 100*time.Millisecond, 3, 35*time.Second
	})
	m := s.nodes[0].m
	m.SetHeartbeatDemand(true)
	s.run(s.now + 5*sec) // the announcement of the switch and its repeats
	start, sent0 := s.now, m.C.HeartbeatsSent
	last, lastTurn := int64(-1), s.now
	var own, ownTurns, turns uint64
	wake := s.now
	eps := int64(50 * time.Microsecond)
	const cycles = 400 // 120 s
	for k := range cycles {
		wake += gap
		before, turn := m.C.HeartbeatsSent, m.hb.turn
		s.run(wake + eps - 1)
		own += m.C.HeartbeatsSent - before
		if m.hb.turn != turn && k > 0 { // the first has no wake-up before it to ride
			ownTurns++
		}
		before = m.C.HeartbeatsSent
		if due := m.DemandDue(); due >= 0 && due <= wake+eps+window {
			s.out = m.AlignDemand(wake+eps, wake+eps+window, s.out[:0])
			s.dispatch(0)
			if wake+eps-lastTurn > int64(DemandRefresh) {
				t.Fatalf("turns %v apart, more than DemandRefresh", time.Duration(wake+eps-lastTurn))
			}
			lastTurn = wake + eps
			turns++
		}
		if m.C.HeartbeatsSent != before {
			if last >= 0 && wake+eps-last > int64(DemandIdleRefresh) {
				t.Fatalf("refreshes %v apart, more than DemandIdleRefresh", time.Duration(wake+eps-last))
			}
			last = wake + eps
		}
	}
	span := time.Duration(wake - start)
	n := m.C.HeartbeatsSent - sent0
	if own != 0 || ownTurns != 0 {
		t.Errorf("%d refreshes and %d turns on the member's own timer, want all in the election's wake-ups (%d refreshes, %d turns)", own, ownTurns, n, turns)
	}
	// The own timer's mean is 4.4 s (75–100 % of DemandIdleRefresh): 28
	// in 120 s, 33 at the shortest spacing.
	if most := uint64(span/(DemandIdleRefresh*3/4)) + 1; n > most {
		t.Errorf("%d refreshes in %v riding wake-ups %v apart, want at most %d (one per 3.75 s)",
			n, span, time.Duration(gap), most)
	}
	if least := uint64(span / time.Second); turns < least {
		t.Errorf("%d turns in %v, want at least %d", turns, span, least)
	}
	if c := s.nodes[1].m.Counters(); c.PeersDetectedDown != 0 {
		t.Fatalf("the peer declared the member down %d times", c.PeersDetectedDown)
	}
}
