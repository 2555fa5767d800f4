package hasync

import (
	"net/netip"
	"slices"
)

// The group's members: who they are, when they were last heard, and how
// many of them acknowledge updates.

// PeerInfo describes one member of the Home Agent list (hactl show redundancy).
type PeerInfo struct {
	ID          uint32
	Addr        netip.Addr
	LastHeard   int64 // monotonic ns, 0 never
	Up          bool
	Initialized bool
	InSync      bool // last digest exchange found equal tables
	Acking      bool // acknowledged an update of ours since it came up, and none has run out of retries since (AckingPeers)
	Outstanding int  // updates waiting for its ack
	Proven      bool // its current session answered our challenge (spec §3.1)
	// AuthFailures: messages from its address that failed authentication
	// (a member with another group key); AuthFailedAt: the last one.
	AuthFailures uint64
	AuthFailedAt int64
}

// MaxPeers bounds the Home Agent list (a Home Agent List carries 100).
const MaxPeers = MaxHAs - 1

type peer struct {
	id          uint32
	addr        netip.Addr
	heard       int64
	up          bool
	init        bool
	inSync      bool
	needDigest  bool
	digestAt    int64 // last digest sent to it alone (rate limit: resyncDigestGap)
	warnedAt    int64 // last "not acknowledged" warning (rate limit: one per 10 s per peer)
	outstanding int
	rw          ReplayWindow
	nonce       uint64 // outstanding session challenge, 0: none
	chalAt      int64  // last challenge sent
	nonceAt     int64  // first challenge with nonce sent: what its Response proves recent
	answered    uint64 // nonce of the last challenge of this peer we answered
	answeredAt  int64
	// acking: it acknowledged an update of ours since it was last marked up
	// (AckingPeers). Cleared when it goes down, leaves or restarts.
	acking bool
	// failed: an update to it ran out of retries since its session was
	// last proven and it has not acknowledged one since (AwaitedPeers).
	failed bool
	hb     hbPeer // its heartbeat, this session
}

// Peers appends the Home Agent list to dst.
func (m *Machine) Peers(dst []PeerInfo) []PeerInfo {
	for i := range m.peers {
		p := &m.peers[i]
		if p.id == 0 {
			continue
		}
		pi := PeerInfo{ID: p.id, Addr: p.addr, LastHeard: p.heard, Up: p.up, Initialized: p.init, InSync: p.inSync, Acking: p.acking, Outstanding: p.outstanding, Proven: p.rw.Session != 0}
		pi.AuthFailures, pi.AuthFailedAt = m.authFailuresFrom(p.addr)
		dst = append(dst, pi)
	}
	return dst
}

// peerFor finds or adds the peer with agent id id heard from src. A known
// peer's address becomes src only with move (a Home Agent list's entry);
// Receive moves it itself once the message has passed the replay check.
func (m *Machine) peerFor(id uint32, src netip.Addr, move bool) int {
	for i := range m.peers {
		if m.peers[i].id == id {
			if move && src.IsValid() {
				m.peers[i].addr = src
			}
			return i
		}
	}
	for i := range m.peers { // a configured unicast peer heard for the first time
		if m.peers[i].id == 0 && m.peers[i].addr == src {
			m.peers[i].id = id
			return i
		}
	}
	if len(m.peers) >= m.cfg.MaxPeers {
		return m.reclaim(id)
	}
	// No address yet: the datagram that names a new agent id has not
	// proven its session; the proof, or a Home Agent List, gives it one.
	m.peers = append(m.peers, peer{id: id})
	if move {
		m.peers[len(m.peers)-1].addr = src
	}
	return len(m.peers) - 1
}

// reclaim gives the slot of a peer that never proved a session, is not up
// and holds nothing (an agent id known only from a replay, say of a member
// since removed) to agent id id; -1 if there is none. A configured unicast
// peer's slot is never reclaimed.
func (m *Machine) reclaim(id uint32) int {
	for i := range m.peers {
		p := &m.peers[i]
		if p.rw.Session != 0 || p.up || p.outstanding != 0 || slices.Contains(m.cfg.Peers, p.addr) {
			continue
		}
		*p = peer{id: id}
		return i
	}
	return -1
}

// Leave tells the group this member is stopping cleanly (SIGTERM), so that
// peers stop expecting its acknowledgements now rather than after the dead
// interval. Send it before closing the socket.
func (m *Machine) Leave(now int64, out []Action) []Action {
	m.arena = m.arena[:0]
	if len(m.peers) == 0 {
		return out
	}
	start := m.begin(TypeLeave)
	out, _ = m.finish(out, start, netip.Addr{})
	return out
}

// left marks peer pi down on its Leave: nothing outstanding to it is
// retransmitted, and UpPeers no longer counts it.
func (m *Machine) left(pi int) {
	p := &m.peers[pi]
	m.log.Info("hasync: peer left the group", "peer", p.addr, "id", p.id)
	p.up, p.inSync, p.acking = false, false, false
	for s := range m.pend {
		if m.pend[s].used && int(m.pend[s].peer) == pi {
			m.release(int32(s))
		}
	}
}

func (m *Machine) heard(now int64, pi int, restarted bool) {
	p := &m.peers[pi]
	if !p.up || restarted {
		m.announce() // tell it our heartbeat parameters at the next Tick
	}
	if !p.up {
		m.log.Info("hasync: peer up", "peer", p.addr, "id", p.id)
		if p.heard != 0 {
			m.markResync(int32(pi))
		}
	}
	if restarted {
		m.log.Info("hasync: peer restarted", "peer", p.addr, "id", p.id)
		p.init, p.acking = false, false
		p.hb = hbPeer{}
		m.markResync(int32(pi))
	}
	p.up = true
	// A heartbeat read late from a lazy socket carries its arrival time,
	// which may precede a message already read: last heard never goes back.
	if restarted || now > p.heard {
		p.heard = now
	}
}

// UpPeers is how many members of the Home Agent list are up: the number of
// acknowledgements an update can expect.
func (m *Machine) UpPeers() int {
	n := 0
	for i := range m.peers {
		if m.peers[i].up {
			n++
		}
	}
	return n
}

// AckingPeers is how many up peers have acknowledged an update of this
// member since they were last marked up: the ones whose silence means
// something. A peer that is heard but never acknowledges (one replayed
// group message creates such a "peer" for DeadInterval; so does a member
// that only listens) is up but not acking. The agent asks it when a
// registration reply's wait for an ack ends: with an acking peer up, the
// missing ack more likely means this member is cut off than that it is
// alone.
func (m *Machine) AckingPeers() int {
	n := 0
	for i := range m.peers {
		if m.peers[i].up && m.peers[i].acking {
			n++
		}
	}
	return n
}

// AwaitedPeers is how many up peers are expected to acknowledge this
// member's next update: the acking ones, and those whose session was
// proven (they answered a fresh challenge: a live member, not a replay)
// and that have not acknowledged anything yet, unless an update to them
// has run out of retries since. A member that just started or restarted
// is such a peer: it acknowledges updates while it downloads the table.
// The agent holds a registration reply for an ack while one is up, so
// that the acceptances of a member serving right after its peer
// restarted are replicated before they are answered.
func (m *Machine) AwaitedPeers() int {
	n := 0
	for i := range m.peers {
		p := &m.peers[i]
		if p.up && (p.acking || (p.rw.Session != 0 && !p.failed)) {
			n++
		}
	}
	return n
}
