package hasync

import (
	"testing"
	"time"
)

// A refresh sent early, in a wake-up of the election before it was due,
// keeps the refresh schedule: the next one counts from when this one was
// due (never later than a whole DemandRefresh after it was sent). Riding
// wake-ups three advertisement intervals apart (a VRRP backup that reads
// its master's adverts lazily), with a window of one spacing and a
// quarter, then sends about as many refreshes as the member's own timer
// would (one per 0.875 s on average), not one per 0.875 s less the mean
// earliness; and no two more than DemandRefresh apart.
func TestDemandRideKeepsSchedule(t *testing.T) {
	const advert = 100 * ms
	const gap = 3 * advert
	const window = gap + advert/4
	s := group(t, 2, hbConfig(100*time.Millisecond, 3))
	m := s.nodes[0].m
	m.SetHeartbeatDemand(true)
	s.run(s.now + sec)
	start, sent0 := s.now, m.C.HeartbeatsSent
	last := int64(-1)
	var own, aligned uint64
	wake := s.now
	eps := int64(50 * time.Microsecond)
	const cycles = 400 // 120 s
	for range cycles {
		wake += gap
		before := m.C.HeartbeatsSent
		s.run(wake + eps - 1)
		own += m.C.HeartbeatsSent - before
		before = m.C.HeartbeatsSent
		if due := m.DemandDue(); due >= 0 && due <= wake+eps+window {
			s.out = m.AlignDemand(wake+eps, wake+eps+window, s.out[:0])
			s.dispatch(0)
		}
		if m.C.HeartbeatsSent != before {
			aligned++
			if last >= 0 && wake+eps-last > int64(DemandRefresh) {
				t.Fatalf("refreshes %v apart, more than DemandRefresh", time.Duration(wake+eps-last))
			}
			last = wake + eps
		}
	}
	span := time.Duration(wake - start)
	n := m.C.HeartbeatsSent - sent0
	if own != 0 {
		t.Errorf("%d refreshes on the member's own timer, want all %d in the election's wake-ups", own, n)
	}
	// The own timer's mean is 0.875 s (75–100 % of DemandRefresh): 137
	// in 120 s. Timed from each early send instead, it was about 168.
	if max := uint64(span / (800 * time.Millisecond)); n > max {
		t.Errorf("%d refreshes in %v riding wake-ups %v apart, want at most %d (one per 0.8 s)",
			n, span, time.Duration(gap), max)
	}
	if c := s.nodes[1].m.Counters(); c.PeersDetectedDown != 0 {
		t.Fatalf("the peer declared the member down %d times", c.PeersDetectedDown)
	}
}
