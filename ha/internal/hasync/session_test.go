package hasync

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/hagent/hagent/ha/internal/binding"
)

// capture records every datagram member from sends, per session.
type capture struct {
	pkts [][]byte
}

func (c *capture) add(data []byte) {
	for _, p := range c.pkts {
		if bytes.Equal(p, data) {
			return
		}
	}
	c.pkts = append(c.pkts, append([]byte(nil), data...))
}

// replayAll sends every captured datagram to member to from rogue, as an
// off-link host with TTL 255 would.
func (s *simnet) replayAll(to int, rogue netip.Addr, c *capture) {
	for _, p := range c.pkts {
		if !s.nodes[to].alive {
			return
		}
		s.out = s.nodes[to].m.Receive(s.now, rogue, RequiredTTL, p, s.out[:0])
		s.dispatch(to)
	}
}

// healthy checks that member b follows member a: a's writes from now on
// are acknowledged by b and held by b, b knows a at its real address, up.
func healthy(t *testing.T, s *simnet, a, b int, homes uint32, id uint64) {
	t.Helper()
	acked := len(s.acked)
	for k := range homes {
		if err := s.register(a, 0x0a100000+k, id, 0xc6336400+k); err != nil {
			t.Fatal(err)
		}
		s.run(s.now + 5*ms)
	}
	s.run(s.now + 2*sec)
	got := map[uint32]bool{}
	for _, e := range s.acked[acked:] {
		if e.ID == id {
			got[e.Home] = true
		}
	}
	if len(got) != int(homes) {
		t.Errorf("%d of %d updates of member %d acknowledged", len(got), homes, a)
	}
	for k := range homes {
		e := s.nodes[b].tab.Get(0x0a100000 + k)
		if e == nil || e.ID != id || e.Tombstone() {
			t.Fatalf("member %d lost home %08x (id %d): %+v", b, 0x0a100000+k, id, e)
		}
	}
	for _, p := range s.nodes[b].m.Peers(nil) {
		if p.ID == s.nodes[a].id && (p.Addr != s.nodes[a].addr || !p.Up) {
			t.Errorf("member %d sees member %d as %+v", b, a, p)
		}
	}
}

// A replay of any datagram a member ever sent, from any of its earlier
// sessions, to a member in any state, changes nothing but counters: the
// victim keeps accepting and acknowledging the live session, and keeps the
// real address. Old code: a restarted member that received one Binding
// Update of an earlier session retired the live session and dropped every
// genuine message of its peer as a replay.
func TestOldSessionReplay(t *testing.T) {
	rogue := netip.MustParseAddr("203.0.113.66")
	scenarios := []struct {
		name string
		run  func(s *simnet, old *capture)
	}{
		{"victim restarted after the sender", func(s *simnet, old *capture) {
			s.stop(1)
			s.run(s.now + sec)
			s.start(1)
			s.run(s.now + 5*sec)
			s.replayAll(1, rogue, old)
		}},
		{"victim running long", func(s *simnet, old *capture) {
			s.run(s.now + 30*sec)
			s.replayAll(1, rogue, old)
		}},
		{"victim fresh, replay before any genuine message", func(s *simnet, old *capture) {
			s.stop(1)
			s.run(s.now + sec)
			s.start(1)
			s.replayAll(1, rogue, old)
			s.run(s.now + 5*sec)
		}},
		{"both restarted, replay at once", func(s *simnet, old *capture) {
			s.stop(0)
			s.stop(1)
			s.start(1)
			s.start(0)
			s.replayAll(1, rogue, old)
			s.replayAll(0, rogue, old)
			s.run(s.now + 10*sec)
			s.replayAll(1, rogue, old)
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			s := group(t, 2, nil)
			old := &capture{}
			// Everything member 0 sends in its first two sessions: updates,
			// acks, requests, digests, challenges, answers, its Leave.
			s.tap = func(from, to int, data []byte) {
				if from == 0 {
					old.add(data)
				}
			}
			healthy(t, s, 0, 1, 5, 10)
			s.out = s.nodes[0].m.Leave(s.now, s.out[:0])
			s.dispatch(0)
			s.stop(0)
			s.start(0) // second session
			s.run(s.now + 5*sec)
			healthy(t, s, 0, 1, 5, 20)
			s.out = s.nodes[0].m.Leave(s.now, s.out[:0])
			s.dispatch(0)
			s.stop(0)
			s.start(0) // the live session
			s.run(s.now + 5*sec)
			s.tap = nil
			sc.run(s, old)
			healthy(t, s, 0, 1, 20, 30)
			healthy(t, s, 1, 0, 20, 40)
			same(t, s)
			if c := s.nodes[1].m.Counters(); c.Replay+c.Unproven == 0 {
				t.Errorf("replays not counted: %+v", c)
			}
		})
	}
}

// A member that restarts twice in quick succession: the second session is
// the one proven; replays of both earlier ones change nothing.
func TestRestartTwiceQuickly(t *testing.T) {
	s := group(t, 2, nil)
	old := &capture{}
	s.tap = func(from, to int, data []byte) {
		if from == 0 {
			old.add(data)
		}
	}
	healthy(t, s, 0, 1, 3, 10)
	s.stop(0)
	s.start(0)
	s.run(s.now + 300*1000) // 0.3 ms: its request is out, maybe challenged
	s.stop(0)
	s.start(0)
	s.tap = nil
	s.run(s.now + 5*sec)
	s.replayAll(1, netip.MustParseAddr("203.0.113.66"), old)
	healthy(t, s, 0, 1, 10, 20)
	same(t, s)
}

// A replayed challenge makes the member answer (to the group, never to the
// replayer) and changes nothing; a replayed answer proves nothing.
func TestReplayedChallengeAndResponse(t *testing.T) {
	tab := binding.New(16, 16)
	m, _ := New(Config{ID: 1, Session: 5, Keys: []Key{{ID: 7, Secret: testKey}}, SendKey: 7, MaxPending: 16}, tab)
	real, rogue := netip.MustParseAddr("192.168.1.99"), netip.MustParseAddr("203.0.113.66")
	f := newFakePeer(t, 99, 1)
	f.prove(t, m, 1, 1, real)
	// Its next session, proven too; a replayer captured both answers.
	g := newFakePeer(t, 99, 2)
	out := m.Receive(2e9, real, RequiredTTL, g.msg(TypeLeave, nil), nil)
	n := g.challengeIn(out)
	if n == 0 {
		t.Fatalf("no challenge for a new session: %+v", out)
	}
	ans := g.answer(1, n)
	m.Receive(2e9, real, RequiredTTL, ans, nil)
	if p := m.Peers(nil); len(p) != 1 || !p[0].Proven || p[0].Addr != real {
		t.Fatalf("peer after its restart: %+v", p)
	}
	// Replayed: the answer of the live session (a replay in its window),
	// and the first session's messages.
	if out := m.Receive(3e9, rogue, RequiredTTL, ans, nil); len(out) != 0 {
		t.Errorf("replayed answer answered: %+v", out)
	}
	out = m.Receive(3e9, rogue, RequiredTTL, f.update(Record{Granted: 9, Remaining: 9000, Home: 5, ID: 1, Origin: 99}), nil)
	if tab.Len() != 0 {
		t.Error("an update of a retired session was applied")
	}
	// The replay made this member challenge the peer: to the group only.
	for _, a := range out {
		if a.Kind == ActUnicast && a.To == rogue {
			t.Errorf("sent to the replayer: %+v", a)
		}
	}
	// A replayed challenge of our own (a member that restarted and sent it
	// in its earlier life) is answered at most once per nonce and period,
	// to the group.
	c := Challenge{Peer: 1, Nonce: 77}
	chal := f.msg(TypeChallenge, c.AppendBinary)
	out = m.Receive(4e9, rogue, RequiredTTL, chal, nil)
	answered := 0
	for _, a := range out {
		if a.Pkt != nil && a.Pkt[1] == TypeResponse {
			answered++
			if a.Kind != ActMulticast {
				t.Errorf("answer not sent to the group: %+v", a)
			}
		}
	}
	if answered != 1 {
		t.Errorf("challenge answered %d times, want 1", answered)
	}
	if out := m.Receive(4e9, rogue, RequiredTTL, chal, nil); len(out) != 0 && out[0].Pkt[1] == TypeResponse {
		t.Errorf("same challenge answered twice at once")
	}
	if p := m.Peers(nil); len(p) != 1 || !p[0].Proven || p[0].Addr != real || !p[0].Up {
		t.Fatalf("peer after the replays: %+v", p)
	}
	// The live session is still accepted.
	m.Receive(5e9, real, RequiredTTL, g.update(Record{Granted: 9, Remaining: 9000, Home: 6, ID: 1, Origin: 99}), nil)
	if tab.Get(6) == nil {
		t.Fatal("the live session's update was not applied after the replays")
	}
}

// A peer whose sequence numbers wrap past 0xffffffff keeps being heard.
// Old code: after the wrap, 0 and 1 were "too old" and the peer went deaf.
func TestSequenceWrap(t *testing.T) {
	s := group(t, 2, nil)
	s.onNew = func(i int, m *Machine) { m.seq = 0xffffffff - 20 }
	s.stop(0)
	s.start(0)
	s.run(s.now + 5*sec)
	healthy(t, s, 0, 1, 60, 10)
	if c := s.nodes[1].m.Counters(); c.Replay != 0 {
		t.Errorf("genuine messages across the wrap counted as replays: %d", c.Replay)
	}
}

// Key holders inventing agent ids: each one is heard (it answers the
// session challenge) but never acknowledges. They can neither stop the
// real peer's acknowledgements from reaching the agent nor grow the
// outstanding set beyond a bound per peer. Old code: the fake peers filled
// the outstanding set, the real peer's updates were counted failed.
func TestFakePeersNeverAck(t *testing.T) {
	// The fakes are there first (the real peer is then last in every
	// list), and keep talking so that they stay up.
	s := newSimnet(t, 2, 1, nil)
	s.start(0)
	s.run(s.now + 10*sec)
	m := s.nodes[0].m
	fakes := make([]*fakePeer, 97)
	hello := func() {
		for i, f := range fakes {
			src := netip.AddrFrom4([4]byte{192, 168, 2, byte(i)})
			d := Digest{}
			out := m.Receive(s.now, src, RequiredTTL, f.msg(TypeDigest, d.AppendBinary), nil)
			if n := f.challengeIn(out); n != 0 {
				m.Receive(s.now, src, RequiredTTL, f.answer(s.nodes[0].id, n), nil)
			}
		}
	}
	for i := range fakes {
		fakes[i] = newFakePeer(t, uint32(1000+i), uint32(7000+i))
	}
	hello()
	s.start(1)
	s.run(s.now + 5*sec)
	hello()
	if up := m.UpPeers(); up != 98 {
		t.Fatalf("up peers %d, want 98 (the real one and 97 fakes)", up)
	}
	// 200 registrations: with MaxPending 1024 (the simulation's) the fakes
	// alone would need 97 × 200 outstanding updates.
	sent := s.sent[TypeBindingUpdate] + s.sent[TypeDigest]
	healthy(t, s, 0, 1, 200, 10)
	if c := m.Counters(); c.PendingRefused == 0 {
		t.Errorf("no update refused to the fakes: %+v", c)
	}
	// Bytes to the fakes are bounded by the per-peer bound, not by the
	// registrations: at most 64 updates (and their 5 retransmissions) and
	// a few resync digests each.
	if n := s.sent[TypeBindingUpdate] + s.sent[TypeDigest] - sent; n > 97*(64*6+10)+200 {
		t.Errorf("%d updates and digests sent for 200 registrations", n)
	}
	for _, p := range m.Peers(nil) {
		if p.ID >= 1000 && p.Outstanding > 64 {
			t.Fatalf("fake peer %d holds %d outstanding updates", p.ID, p.Outstanding)
		}
	}
	if m.AckingPeers() != 1 {
		t.Errorf("acking peers %d, want 1 (the fakes never acknowledged)", m.AckingPeers())
	}
}

// A bounded group: agent ids beyond MaxPeers are refused and counted.
func TestMaxPeers(t *testing.T) {
	s := group(t, 3, func(c *Config) { c.MaxPeers = 2 })
	m := s.nodes[0].m
	f := newFakePeer(t, 5000, 1)
	d := Digest{}
	before := m.Counters().PeersRejected
	out := m.Receive(s.now, netip.MustParseAddr("192.168.1.200"), RequiredTTL, f.msg(TypeDigest, d.AppendBinary), nil)
	if len(out) != 0 || m.Counters().PeersRejected != before+1 || len(m.Peers(nil)) != 2 {
		t.Fatalf("a third peer admitted: out %+v peers %+v counters %+v", out, m.Peers(nil), m.Counters())
	}
	healthy(t, s, 0, 2, 5, 10)
	// A slot taken by an agent id that never proved a session (a replay
	// of a member since removed) goes to the next member that does.
	s2 := group(t, 2, func(c *Config) { c.MaxPeers = 2 })
	m = s2.nodes[0].m
	gone := newFakePeer(t, 777, 1)
	m.Receive(s2.now, netip.MustParseAddr("192.168.1.77"), RequiredTTL, gone.msg(TypeDigest, d.AppendBinary), nil)
	if len(m.Peers(nil)) != 2 {
		t.Fatalf("unproven id not listed: %+v", m.Peers(nil))
	}
	s2.nodes = append(s2.nodes, &node{id: 30, addr: netip.MustParseAddr("192.168.1.30")})
	s2.side = append(s2.side, 0)
	s2.start(2)
	s2.run(s2.now + 5*sec)
	for _, p := range m.Peers(nil) {
		if p.ID == 777 {
			t.Errorf("the never-proven id kept its slot: %+v", m.Peers(nil))
		}
	}
	healthy(t, s2, 0, 2, 5, 10)
	if _, err := New(Config{ID: 1, Session: 1, Keys: []Key{{ID: 7, Secret: testKey}}, SendKey: 7, MaxPeers: 1,
		Peers: []netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("192.168.1.2")}}, binding.New(4, 4)); err == nil {
		t.Error("two unicast peers accepted with MaxPeers 1")
	}
}

// A member given another group key: nobody hears it, it hears nobody.
// Both sides count it per source, log it, and stop showing it in sync.
func TestDifferentKeyVisible(t *testing.T) {
	s := group(t, 2, nil)
	s.run(s.now + 12*sec) // digests: in sync
	if p := s.nodes[0].m.Peers(nil)[0]; !p.InSync {
		t.Fatalf("not in sync before the key change: %+v", p)
	}
	s.stop(1)
	s.cfg = func(c *Config) {
		if c.ID == s.nodes[1].id {
			c.Keys = []Key{{ID: 7, Secret: []byte("a-different-group-key")}}
		}
	}
	s.start(1)
	s.run(s.now + 12*sec)
	for i, other := range []int{1, 0} {
		var p *PeerInfo
		for _, x := range s.nodes[i].m.Peers(nil) {
			if x.Addr == s.nodes[other].addr {
				p = &x
			}
		}
		if p != nil && p.InSync {
			t.Errorf("member %d shows member %d in sync: %+v", i, other, *p)
		}
		src := s.nodes[i].m.AuthSources(nil)
		if len(src) != 1 || src[0].Addr != s.nodes[other].addr || src[0].Failures == 0 || src[0].ID != s.nodes[other].id {
			t.Errorf("member %d auth failure sources %+v", i, src)
		}
		if p != nil && p.AuthFailures == 0 {
			t.Errorf("member %d: peer %d shows no auth failures: %+v", i, other, *p)
		}
	}
}

func ExampleAuthSource() {
	fmt.Println(AuthSource{Addr: netip.MustParseAddr("192.168.1.2"), ID: 2, Failures: 3}.Failures)
	// Output: 3
}

// A member that never heard of an agent id takes no address from the first
// datagram naming it: that datagram's session is unproven (a replay, for
// all this member knows). The address comes with the proof.
func TestNoAddressFromUnprovenDatagram(t *testing.T) {
	m, _ := New(Config{ID: 1, Session: 5, Keys: []Key{{ID: 7, Secret: testKey}}, SendKey: 7, MaxPending: 16}, binding.New(16, 16))
	f := newFakePeer(t, 99, 1)
	rogue, real := netip.MustParseAddr("203.0.113.66"), netip.MustParseAddr("192.168.1.99")
	out := m.Receive(1, rogue, RequiredTTL, f.update(Record{Granted: 9, Remaining: 9000, Home: 5, ID: 1, Origin: 99}), nil)
	for _, a := range out {
		if a.Kind != ActMulticast || a.Pkt[1] != TypeChallenge {
			t.Errorf("an unproven datagram caused %+v", a)
		}
	}
	if p := m.Peers(nil); len(p) != 1 || p[0].Addr.IsValid() || p[0].Up || p[0].Proven {
		t.Fatalf("peer after an unproven datagram: %+v", p)
	}
	m.Receive(2, real, RequiredTTL, f.answer(1, f.challengeIn(out)), nil)
	if p := m.Peers(nil); len(p) != 1 || p[0].Addr != real || !p[0].Up || !p[0].Proven {
		t.Fatalf("peer after its proof: %+v", p)
	}
}
