package hasync

import (
	"testing"
	"time"
)

// demandPair: two members both in demand mode at the agent's default
// heartbeat (100 ms × 3) and DeadInterval (35 s), past the announcements
// of their start.
func demandPair(t *testing.T, cfg func(*Config)) *simnet {
	t.Helper()
	s := group(t, 2, func(c *Config) {
		c.HeartbeatInterval, c.HeartbeatMultiplier, c.HeartbeatDemand = 100*time.Millisecond, 3, true
		c.DeadInterval = 35 * time.Second
		if cfg != nil {
			cfg(c)
		}
	})
	s.run(s.now + 10*sec)
	return s
}

// heartbeatTimes records when each member sends a heartbeat (every
// datagram goes through s.tap once per receiver: a pair has one).
func heartbeatTimes(s *simnet) *[2][]int64 {
	var at [2][]int64
	s.tap = func(from, to int, data []byte) {
		if data[1] == TypeHeartbeat && from < 2 {
			at[from] = append(at[from], s.now)
		}
	}
	return &at
}

// An idle pair in demand mode repeats its heartbeat only every
// DemandIdleRefresh (75–100 % of 5 s): 24–33 in 120 s per member, where
// a refresh every DemandRefresh (75–100 % of 1 s) sent about 137. No peer
// is declared down, and neither runs out of DeadInterval.
func TestDemandIdleRefreshRare(t *testing.T) {
	s := demandPair(t, nil)
	at := heartbeatTimes(s)
	const span = 120 * sec
	s.run(s.now + span)
	for i := range 2 {
		n := int64(len(at[i]))
		if most, least := span/(DemandIdleRefresh.Nanoseconds()*3/4)+1, span/DemandIdleRefresh.Nanoseconds(); n > most || n < least {
			t.Errorf("member %d sent %d heartbeats in %v idle, want %d..%d (one per 3.75-5 s)", i, n, time.Duration(span), least, most)
		}
		if m := s.nodes[i].m; m.UpPeers() != 1 || m.Counters().PeersDetectedDown != 0 {
			t.Errorf("member %d: up peers %d, detected down %d", i, m.UpPeers(), m.Counters().PeersDetectedDown)
		}
	}
}

// The idle refresh keeps a peer from running out of DeadInterval with
// every digest lost (nothing else is sent in an idle pair but the
// session's challenges, which a fresh message prompts), also with a
// DeadInterval shorter than DemandIdleRefresh: the refresh is then sent
// every seventh of it.
func TestDemandIdleRefreshWithinDeadInterval(t *testing.T) {
	for _, dead := range []time.Duration{35 * time.Second, 8 * time.Second} {
		s := demandPair(t, func(c *Config) { c.DeadInterval = dead })
		s.drop = func(from, to int, typ uint8) bool { return typ == TypeDigest }
	steps:
		for end := s.now + 120*sec; s.now < end; {
			s.run(s.now + 100*ms)
			for i := range 2 {
				if m := s.nodes[i].m; m.UpPeers() != 1 {
					t.Errorf("DeadInterval %v: member %d lost its peer with only the idle refresh heard", dead, i)
					break steps
				}
			}
		}
	}
}

// burstGaps returns the spacing of member i's heartbeats sent from the
// index first of at on: the announcement, its repeats, the idle refresh.
func burstGaps(at []int64, first int) []time.Duration {
	var g []time.Duration
	for k := first + 1; k < len(at); k++ {
		g = append(g, time.Duration(at[k]-at[k-1]))
	}
	return g
}

// After a change (priority, mode) or a peer's coming up or restart, the
// announcement is repeated DemandRepeats (3) times at the DemandRefresh
// spacing (75–100 % of 1 s), and the next heartbeat comes only at the idle
// spacing (3.75–5 s).
func TestDemandBurstAfterChange(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(s *simnet)
	}{
		{"priority", func(s *simnet) { s.nodes[0].m.SetHeartbeatPriority(77) }},
		{"mode", func(s *simnet) { s.nodes[0].m.SetHeartbeatDemand(false); s.nodes[0].m.SetHeartbeatDemand(true) }},
		{"peer restart", func(s *simnet) { s.stop(1); s.start(1) }},
	} {
		s := demandPair(t, nil)
		at := heartbeatTimes(s)
		t0 := s.now
		tc.do(s)
		s.run(s.now + 30*sec)
		first := -1
		for k, x := range at[0] {
			if x >= t0 && x <= t0+ms {
				first = k
				break
			}
		}
		if first < 0 {
			t.Errorf("%s: no announcement at once (sent at %v)", tc.name, at[0])
			continue
		}
		g := burstGaps(at[0], first)
		if len(g) < DemandRepeats+1 {
			t.Errorf("%s: %d heartbeats after the announcement in 30 s: %v", tc.name, len(g), g)
			continue
		}
		for k := range DemandRepeats {
			if g[k] < DemandRefresh*3/4 || g[k] > DemandRefresh {
				t.Errorf("%s: repeat %d %v after the previous, want 75-100 %% of %v (gaps %v)", tc.name, k+1, g[k], DemandRefresh, g)
			}
		}
		if g[DemandRepeats] < DemandIdleRefresh*3/4 {
			t.Errorf("%s: the refresh after %d repeats came %v later, want the idle spacing (gaps %v)", tc.name, DemandRepeats, g[DemandRepeats], g)
		}
	}
}

// A peer that missed the announcement of a change (and the first two
// repeats) learns it from the last repeat, about 3 s later, not at the
// idle refresh 3.75-5 s later.
func TestDemandBurstReachesPeerThatMissed(t *testing.T) {
	const missed = 3 // the announcement and two repeats
	s := demandPair(t, nil)
	lost := 0
	s.drop = func(from, to int, typ uint8) bool {
		if from == 0 && typ == TypeHeartbeat && lost < missed {
			lost++
			return true
		}
		return false
	}
	t0 := s.now
	s.nodes[0].m.SetHeartbeatPriority(77)
	s.run(t0 + missed*int64(DemandRefresh) + ms)
	if lost != missed {
		t.Fatalf("%d heartbeats lost, want %d", lost, missed)
	}
	if p := s.nodes[1].m.peers[0]; p.hb.prio != 77 {
		t.Fatalf("the peer knows priority %d %v after a change to 77 whose first %d heartbeats it missed", p.hb.prio, time.Duration(s.now-t0), missed)
	}
}

// A member in demand mode takes a turn at most DemandRefresh apart even
// when it sends nothing in it: the agent reads its heartbeat socket at its
// turns, and a peer that turns periodic must be read within DemandRefresh
// (hasync-spec §4.12, Reading). Here no election wake-up rides them: every
// turn is the member's own timer.
func TestDemandTurnsAtMostDemandRefreshApart(t *testing.T) {
	s := demandPair(t, nil)
	m := s.nodes[0].m
	last, end := s.now, s.now+120*sec
	turns := 0
	for s.now < end {
		d := m.NextDeadline()
		if d-last > int64(DemandRefresh) {
			t.Fatalf("next turn %v after the previous, want at most %v", time.Duration(d-last), DemandRefresh)
		}
		s.run(max(d, s.now) + 1)
		last = max(d, last)
		turns++
	}
	if turns < 120 {
		t.Fatalf("%d turns in 120 s", turns)
	}
}

// Loss must not make an idle peer look dead: every DeadInterval holds at
// least seven of its heartbeats, digests aside, so that DeadInterval runs
// out only if seven in a row are lost (at 5 % loss 8e-10 a window, at 10 %
// 1e-7: less than once a year) where three or four (a refresh every 7.5-10 s) made
// it about once in 18 days at 5 % and daily at 10 %.
func TestDemandIdleRefreshSurvivesLoss(t *testing.T) {
	s := demandPair(t, nil)
	at := heartbeatTimes(s)
	s.run(s.now + 300*sec)
	dead := int64(35 * time.Second)
	for i := range 2 {
		hb := at[i]
		for j := range hb {
			// the heartbeats in (hb[j]-dead, hb[j]]: a window ending at a send
			n := 0
			for k := j; k >= 0 && hb[k] > hb[j]-dead; k-- {
				n++
			}
			if hb[j]-hb[0] >= dead && n < 7 {
				t.Fatalf("member %d: %d heartbeats in the DeadInterval before %v, want at least 7", i, n, time.Duration(hb[j]))
			}
		}
	}
}
