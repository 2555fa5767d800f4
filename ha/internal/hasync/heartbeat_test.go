package hasync

import (
	"bytes"
	"testing"
	"time"
)

const goldenHB = "020b003007000000c0a801021122334400000005" + "01000300000186a0000186a0" + "1cd1cc77ec8e1f97596747919bae1879"

func TestHeartbeatWire(t *testing.T) {
	k := testKeyring(t)
	hb := Heartbeat{Mult: 3, TxInterval: 100000, RxInterval: 100000}
	got := seal(t, k, TypeHeartbeat, hb.AppendBinary)
	if len(got) != HeartbeatLen {
		t.Fatalf("length %d, want %d", len(got), HeartbeatLen)
	}
	checkGolden(t, "heartbeat", got, goldenHB)
	_, body := open(t, k, got)
	var back Heartbeat
	if err := back.UnmarshalBinary(body); err != nil || back != hb {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	for name, c := range map[string]struct {
		b    []byte
		want error
	}{
		"short":        {body[:11], ErrTruncated},
		"long":         {append(bytes.Clone(body), 0), ErrLength},
		"version 2":    {append([]byte{2}, body[1:]...), ErrVersion},
		"multiplier 0": {append([]byte{1, 0, 0}, body[3:]...), ErrMalformed},
		"interval 0":   {append(bytes.Clone(body[:4]), 0, 0, 0, 0, 0, 0, 0, 1), ErrMalformed},
	} {
		if err := back.UnmarshalBinary(c.b); err != c.want {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func FuzzHeartbeat(f *testing.F) {
	fuzzBody(f, goldenHB, &Heartbeat{}, clearReserved())
}

func hbConfig(iv time.Duration, mult int) func(*Config) {
	return func(c *Config) { c.HeartbeatInterval, c.HeartbeatMultiplier = iv, mult }
}

// stepUntilDown advances the simulation 1 ms at a time until member i sees
// no peer up, and returns when that happened (0: not before until).
func stepUntilDown(s *simnet, i int, until int64) int64 {
	for s.now < until {
		s.run(s.now + ms)
		if s.nodes[i].m.UpPeers() == 0 {
			return s.now
		}
	}
	return 0
}

// A peer that dies silently is declared down within its detection time
// (multiplier × interval after the last message heard), no longer counts as
// acknowledging, and is reported once (ActPeerDown).
func TestHeartbeatDetectsDeadPeer(t *testing.T) {
	s := group(t, 2, hbConfig(100*time.Millisecond, 3))
	m := s.nodes[0].m
	s.register(0, 0x0a000001, 5, 1)
	s.run(s.now + sec)
	if m.AckingPeers() != 1 {
		t.Fatalf("acking %d before the crash", m.AckingPeers())
	}
	crash := s.now
	s.stop(1)
	down := stepUntilDown(s, 0, crash+sec)
	if down == 0 {
		t.Fatalf("peer still up 1 s after its crash: %+v", m.Peers(nil))
	}
	// The last heartbeat left at most one interval before the crash.
	if d := down - crash; d > 300*ms+ms || d < 200*ms-ms {
		t.Errorf("declared down %v after the crash, want 200..300 ms", time.Duration(d))
	}
	if m.AckingPeers() != 0 || m.Counters().PeersDetectedDown != 1 {
		t.Errorf("acking %d, counters %+v", m.AckingPeers(), m.Counters())
	}
	// A live peer is never declared down, also across minutes.
	s2 := group(t, 3, hbConfig(100*time.Millisecond, 3))
	s2.run(s2.now + 120*sec)
	for i, nd := range s2.nodes {
		if c := nd.m.Counters(); c.PeersDetectedDown != 0 || nd.m.UpPeers() != 2 {
			t.Errorf("member %d: up %d, detected down %d", i, nd.m.UpPeers(), c.PeersDetectedDown)
		}
	}
}

// A heartbeat recorded from a peer and played back after the peer died is
// a replay: it is counted and the peer stays down.
func TestReplayedHeartbeatDoesNotRevive(t *testing.T) {
	s := group(t, 2, hbConfig(100*time.Millisecond, 3))
	var rec [][]byte
	// Record the heartbeats member 1 sends (and deliver them).
	m1 := s.nodes[1].m
	for range 5 {
		s.run(m1.hb.next - 1)
		s.now = m1.hb.next
		s.out = m1.Tick(s.now, s.out[:0])
		for _, a := range s.out {
			if a.Pkt != nil && a.Pkt[1] == TypeHeartbeat {
				rec = append(rec, bytes.Clone(a.Pkt))
			}
		}
		s.dispatch(1)
	}
	if len(rec) == 0 {
		t.Fatal("no heartbeat recorded")
	}
	s.run(s.now + ms) // delivered: member 0 has seen every recorded one
	s.stop(1)
	m := s.nodes[0].m
	if stepUntilDown(s, 0, s.now+sec) == 0 {
		t.Fatal("peer not declared down")
	}
	replays := m.Counters().Replay
	for _, p := range rec {
		s.out = m.Receive(s.now, s.nodes[1].addr, RequiredTTL, p, s.out[:0])
		s.dispatch(0)
	}
	if m.UpPeers() != 0 {
		t.Fatalf("a replayed heartbeat revived the dead peer: %+v", m.Peers(nil))
	}
	if got := m.Counters().Replay - replays; got != uint64(len(rec)) {
		t.Errorf("replays counted %d, want %d", got, len(rec))
	}
}

// Heartbeats leave every 75-100 % of the interval (RFC 5880 §6.8.7), and
// 75-90 % with a multiplier of 1, not in lockstep.
func TestHeartbeatJitter(t *testing.T) {
	for _, c := range []struct {
		mult   int
		lo, hi int64
	}{{3, 75 * ms, 100 * ms}, {1, 75 * ms, 90 * ms}} {
		s := group(t, 2, hbConfig(100*time.Millisecond, c.mult))
		var at []int64
		s.drop = func(from, to int, typ uint8) bool {
			if from == 0 && typ == TypeHeartbeat {
				at = append(at, s.now)
			}
			return false
		}
		s.run(s.now + 20*sec)
		if len(at) < 150 {
			t.Fatalf("mult %d: %d heartbeats in 20 s", c.mult, len(at))
		}
		seen := map[int64]bool{}
		for i := 1; i < len(at); i++ {
			d := at[i] - at[i-1]
			if d < c.lo || d > c.hi {
				t.Errorf("mult %d: gap %v outside %v..%v", c.mult, time.Duration(d), time.Duration(c.lo), time.Duration(c.hi))
			}
			seen[d/ms] = true
		}
		if len(seen) < 10 {
			t.Errorf("mult %d: only %d distinct gaps: not jittered", c.mult, len(seen))
		}
	}
}

// A member whose own loop stalled past a peer's expiry reads the peer's
// queued heartbeats before calling it dead: the late verdict waits one
// interval. A peer that is really dead is then declared down.
func TestHeartbeatStalledReceiverWaits(t *testing.T) {
	for _, dead := range []bool{false, true} {
		s := group(t, 2, hbConfig(100*time.Millisecond, 3))
		m := s.nodes[0].m
		// While member 0's loop is stalled, what member 1 sends it waits
		// in member 0's socket (pkts), unread.
		stalled := true
		s.drop = func(from, to int, typ uint8) bool { return stalled && to == 0 }
		s.nodes[0].alive = false // member 0's loop does not run
		start := s.now
		var pkts [][]byte
		for s.now < start+500*ms {
			s.out = s.nodes[1].m.Tick(s.now, s.out[:0])
			for _, a := range s.out {
				if a.Pkt != nil && !dead {
					pkts = append(pkts, bytes.Clone(a.Pkt))
				}
			}
			s.out = s.out[:0]
			s.now = max(s.now+ms, s.nodes[1].m.NextDeadline())
		}
		if dead {
			s.stop(1)
		}
		stalled = false
		s.nodes[0].alive = true
		// The loop resumes: the timer fires first, then the queue is read.
		resume := s.now
		s.out = m.Tick(s.now, s.out[:0])
		s.dispatch(0)
		if m.UpPeers() != 1 {
			t.Fatalf("dead=%v: peer declared down by a stalled member before it read its queue", dead)
		}
		for _, p := range pkts {
			s.out = m.Receive(s.now, s.nodes[1].addr, RequiredTTL, p, s.out[:0])
			s.dispatch(0)
		}
		if dead {
			if d := stepUntilDown(s, 0, s.now+sec); d == 0 || d-resume > 100*ms+ms {
				t.Fatalf("a dead peer after a stall: down %v after the loop resumed, want one interval", time.Duration(d-resume))
			}
			continue
		}
		s.run(s.now + 5*sec)
		if m.UpPeers() != 1 || m.Counters().PeersDetectedDown != 0 {
			t.Fatalf("a live peer after a stall: up %d, %+v", m.UpPeers(), m.Counters())
		}
	}
}

// A verdict reached on time (less than one interval late) still lets the
// owner loop read what waits in its socket first: the timer of a member
// woken a millisecond after the peer's expiry fires before its queue is
// read, and the peer's last heartbeat is in that queue.
func TestHeartbeatReadsQueueBeforeVerdict(t *testing.T) {
	s := group(t, 2, hbConfig(100*time.Millisecond, 3))
	m := s.nodes[0].m
	s.run(s.now + sec)
	e := m.LastHeard(s.nodes[1].addr) + 300*ms
	var pkts [][]byte
	s.drop = func(from, to int, typ uint8) bool { return to == 0 }
	s.nodes[0].alive = false
	for s.now < e {
		s.out = s.nodes[1].m.Tick(s.now, s.out[:0])
		for _, a := range s.out {
			if a.Pkt != nil {
				pkts = append(pkts, bytes.Clone(a.Pkt))
			}
		}
		s.out = s.out[:0]
		s.now = min(max(s.now+ms, s.nodes[1].m.NextDeadline()), e)
		if s.now == e {
			break
		}
	}
	if len(pkts) == 0 {
		t.Fatal("member 1 sent nothing to queue")
	}
	s.drop = nil
	s.nodes[0].alive = true
	s.now = e + ms // woken a millisecond late: the timer first
	s.out = m.Tick(s.now, s.out[:0])
	s.dispatch(0)
	for _, p := range pkts { // then the queue
		s.out = m.Receive(s.now, s.nodes[1].addr, RequiredTTL, p, s.out[:0])
		s.dispatch(0)
	}
	s.run(s.now + sec)
	if c := m.Counters(); m.UpPeers() != 1 || c.PeersDetectedDown != 0 {
		t.Fatalf("a live peer whose heartbeat was queued: up %d, detected down %d", m.UpPeers(), c.PeersDetectedDown)
	}
}

// Members with different intervals: each transmits no faster than the
// slowest receive interval of its up peers, and detects each peer on that
// peer's own advertised interval.
func TestHeartbeatSlowestReceiverWins(t *testing.T) {
	s := group(t, 2, func(c *Config) {
		c.HeartbeatMultiplier = 3
		c.HeartbeatInterval = 50 * time.Millisecond
		if c.ID == 11 {
			c.HeartbeatInterval = 200 * time.Millisecond
		}
	})
	var at []int64
	s.drop = func(from, to int, typ uint8) bool {
		if from == 0 && typ == TypeHeartbeat {
			at = append(at, s.now)
		}
		return false
	}
	s.run(s.now + 10*sec)
	for i := 1; i < len(at); i++ {
		if d := at[i] - at[i-1]; d < 150*ms {
			t.Fatalf("member 0 sends every %v, faster than its peer's 200 ms receive interval", time.Duration(d))
		}
	}
	crash := s.now
	s.stop(1)
	d := stepUntilDown(s, 0, crash+2*sec)
	if d == 0 || d-crash > 600*ms+ms || d-crash < 400*ms {
		t.Fatalf("slow peer declared down %v after its crash, want 400..600 ms", time.Duration(d-crash))
	}
}

// A restarted peer's heartbeat parameters belong to its old session: until
// it sends a heartbeat again, only the dead interval applies to it.
func TestHeartbeatForgottenOnRestart(t *testing.T) {
	s := group(t, 2, hbConfig(100*time.Millisecond, 3))
	s.cfg = nil // the new incarnation sends no heartbeat
	s.stop(1)
	s.start(1)
	s.run(s.now + 2*sec)
	if m := s.nodes[0].m; m.UpPeers() != 1 || m.Counters().PeersDetectedDown != 0 {
		t.Fatalf("a restarted peer without heartbeats was declared down: up %d %+v", m.UpPeers(), m.Counters())
	}
}

// A standby in demand mode sends one heartbeat a second, not ten; it is not
// declared down for being quiet while it owes nothing, but is once it owes
// an acknowledgement and stays silent for its detection time. It still
// detects the periodic (active) member's death in the usual time.
func TestHeartbeatDemandMode(t *testing.T) {
	s := group(t, 2, func(c *Config) {
		c.HeartbeatInterval, c.HeartbeatMultiplier = 100*time.Millisecond, 3
		c.HeartbeatDemand = c.ID == 11
	})
	sent := [2]int{}
	s.drop = func(from, to int, typ uint8) bool {
		if typ == TypeHeartbeat {
			sent[from]++
		}
		return false
	}
	s.run(s.now + 20*sec)
	if sent[1] > 25 || sent[0] < 150 {
		t.Fatalf("heartbeats in 20 s: active %d, demand-mode standby %d", sent[0], sent[1])
	}
	m := s.nodes[0].m
	if m.UpPeers() != 1 || m.Counters().PeersDetectedDown != 0 {
		t.Fatalf("a quiet standby owing nothing was declared down: %+v", m.Counters())
	}
	s.register(0, 0x0a000001, 5, 1)
	s.run(s.now + sec)
	if m.AckingPeers() != 1 {
		t.Fatal("standby not acking")
	}
	crash := s.now
	s.stop(1)
	s.run(crash + 2*sec) // silent, but owing nothing: still up
	if m.UpPeers() != 1 {
		t.Fatalf("a dead standby owing nothing was declared down (it cannot be told apart from a quiet one)")
	}
	owed := s.now
	s.register(0, 0x0a000002, 6, 1)
	d := stepUntilDown(s, 0, owed+sec)
	if rb := int64(ReadBack); d == 0 || d-owed > 300*ms+rb+ms || d-owed < 300*ms+rb {
		t.Fatalf("standby declared down %v after it began to owe an ack, want 300 ms + ReadBack", time.Duration(d-owed))
	}
	if m.AckingPeers() != 0 {
		t.Fatal("still acking after the detection")
	}

	// The other way round: the demand-mode standby detects the active's death.
	s = group(t, 2, func(c *Config) {
		c.HeartbeatInterval, c.HeartbeatMultiplier = 100*time.Millisecond, 3
		c.HeartbeatDemand = c.ID == 11
	})
	crash = s.now
	s.stop(0)
	if d := stepUntilDown(s, 1, crash+sec); d == 0 || d-crash > 300*ms+ms {
		t.Fatalf("the standby detected the active's death %v after it", time.Duration(d-crash))
	}
}

// Switching modes is announced at once, and a peer follows the switch.
func TestHeartbeatDemandSwitch(t *testing.T) {
	s := group(t, 2, hbConfig(100*time.Millisecond, 3))
	s.nodes[1].m.SetHeartbeatDemand(true)
	s.run(s.now + ms)
	if p := s.nodes[0].m.peers[0]; !p.hb.demand {
		t.Fatal("switch to demand mode not announced")
	}
	s.nodes[1].m.SetHeartbeatDemand(false)
	s.run(s.now + ms)
	if p := s.nodes[0].m.peers[0]; p.hb.demand {
		t.Fatal("switch back not announced")
	}
}

// Of several standbys, only the first in line (priority, then address)
// takes over at once when the active member's heartbeat stops.
func TestHeartbeatFirstInLine(t *testing.T) {
	prio := map[uint32]uint8{10: 130, 11: 120, 12: 110}
	s := group(t, 3, hbConfig(100*time.Millisecond, 3))
	for _, nd := range s.nodes {
		nd.m.SetHeartbeatPriority(prio[nd.id])
	}
	s.run(s.now + sec)
	crash := s.now
	s.stop(0)
	stepUntilDown(s, 1, crash+sec)
	s.run(s.now + 50*ms)
	if !s.nodes[1].m.FirstInLine(120) || s.nodes[2].m.FirstInLine(110) {
		t.Fatalf("first in line: member 2 %v, member 3 %v; want only member 2", s.nodes[1].m.FirstInLine(120), s.nodes[2].m.FirstInLine(110))
	}
	// Equal priorities: the higher address wins, as in VRRP.
	if s.nodes[1].m.FirstInLine(110) || !s.nodes[2].m.FirstInLine(120) {
		t.Fatal("tie-break by address")
	}
	var h Heartbeat
	b, _ := (&Heartbeat{Mult: 3, Priority: 120, TxInterval: 1, Demand: true}).AppendBinary(nil)
	if err := h.UnmarshalBinary(b); err != nil || h.Priority != 120 || !h.Demand {
		t.Fatalf("%+v %v", h, err)
	}
}

// A peer declared down that speaks again in the same session was alive:
// reported once (ActPeerAlive); a restarted one is not (the old one died).
func TestHeartbeatPeerAlive(t *testing.T) {
	s := group(t, 2, hbConfig(100*time.Millisecond, 3))
	m := s.nodes[0].m
	deaf := true
	s.drop = func(from, to int, typ uint8) bool { return deaf && to == 0 }
	if stepUntilDown(s, 0, s.now+sec) == 0 {
		t.Fatal("not declared down")
	}
	deaf = false
	for end := s.now + sec; s.now < end && m.UpPeers() == 0; {
		s.run(s.now + ms)
	}
	if m.UpPeers() != 1 || m.peers[0].hb.declared {
		t.Fatalf("peer not back up, or still marked declared: up %d", m.UpPeers())
	}
	// Direct: a same-session message after a declaration yields ActPeerAlive.
	m.peers[0].up, m.peers[0].hb.declared = false, true
	if out := m.revived(0, false, nil); len(out) != 1 || out[0].Kind != ActPeerAlive {
		t.Fatalf("revived: %+v", out)
	}
	m.peers[0].hb.declared = true
	if out := m.revived(0, true, nil); len(out) != 0 {
		t.Fatalf("a restarted peer reported alive: %+v", out)
	}
}

// Sending and receiving heartbeats allocates nothing (an idle group does it
// all day).
func TestHeartbeatAllocs(t *testing.T) {
	s := group(t, 2, hbConfig(100*time.Millisecond, 3))
	a, b := s.nodes[0].m, s.nodes[1].m
	out := make([]Action, 0, 16)
	in := make([]Action, 0, 16)
	now := s.now
	n := testing.AllocsPerRun(500, func() {
		now += 100 * ms
		out = a.Tick(now, out[:0])
		for _, act := range out {
			if act.Kind == ActMulticast && act.Pkt[1] == TypeHeartbeat {
				in = b.Receive(now, s.nodes[0].addr, RequiredTTL, act.Pkt, in[:0])
			}
		}
	})
	if n != 0 {
		t.Errorf("heartbeat sent and received: %v allocs, want 0", n)
	}
	if b.Counters().HeartbeatsReceived < 100 {
		t.Fatalf("only %d heartbeats received", b.Counters().HeartbeatsReceived)
	}
}

// A member that reads its heartbeat socket lazily (the agent drains it when
// awake, with each datagram's kernel arrival time as now) may read an older
// heartbeat after a newer message from the same peer: the older arrival
// must not move the peer's last-heard time back, or the peer's expiry
// would come early and a live peer be declared down.
func TestHeartbeatOlderArrivalKeepsLastHeard(t *testing.T) {
	s := group(t, 2, hbConfig(100*time.Millisecond, 3))
	m, m1 := s.nodes[0].m, s.nodes[1].m
	s.run(s.now + sec)
	// Member 1's next heartbeat is held back (queued in member 0's lazy
	// socket); the one after it is delivered at once.
	s.run(m1.hb.next - 1)
	s.now = m1.hb.next
	arrived := s.now
	var held []byte
	s.out = m1.Tick(s.now, s.out[:0])
	for _, a := range s.out {
		if a.Pkt != nil && a.Pkt[1] == TypeHeartbeat {
			held = bytes.Clone(a.Pkt)
		}
	}
	s.out = s.out[:0]
	if held == nil {
		t.Fatal("no heartbeat from member 1")
	}
	s.run(m1.hb.next + ms)
	newer := m.LastHeard(s.nodes[1].addr)
	if newer <= arrived {
		t.Fatalf("last heard %v, want after the held heartbeat's %v", newer, arrived)
	}
	s.out = m.Receive(arrived, s.nodes[1].addr, RequiredTTL, held, s.out[:0])
	s.dispatch(0)
	if got := m.LastHeard(s.nodes[1].addr); got != newer {
		t.Fatalf("an older arrival read late moved last heard from %v back to %v", newer, got)
	}
	if c := m.Counters(); c.HeartbeatsReceived == 0 || c.Replay != 0 {
		t.Fatalf("counters %+v: the held heartbeat is fresh, not a replay", c)
	}
}
