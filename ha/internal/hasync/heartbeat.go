package hasync

import (
	"net/netip"
	"time"
)

// Heartbeat is the body of a group heartbeat (spec §4.10): the cheap,
// authenticated liveness signal by which a member learns within a few
// hundred milliseconds that a peer died, instead of after an update to it
// ran out of retransmissions. It is modelled on BFD's asynchronous mode
// (RFC 5880 §6.8): each member multicasts one every transmit interval,
// jittered, and a peer silent for Mult × that interval is down.
//
//	0      Body version (1)
//	1      Flags: 0x80 D (demand): the sender sends no periodic heartbeats;
//	       judge its liveness by its acknowledgements (see below)
//	2      Detect multiplier (1..255): the receiver declares the sender down
//	       after Mult × TxInterval without a message from it
//	3      Priority: the sender's election priority (VRRP/HSRP; 0: none),
//	       so that of several standbys only the first in line takes over
//	       when the active member's heartbeat stops
//	4..7   TxInterval, µs: the interval the sender transmits at now (> 0)
//	8..11  RxInterval, µs: the slowest the sender wants to receive at; a
//	       member transmits no faster than any up peer's RxInterval
//
// Demand mode (RFC 5880 §6.6, adapted): a member that serves nothing (a
// standby) need not prove it is alive ten times a second; only a member
// waiting for its acknowledgement cares. It sends a heartbeat with the D
// flag when a peer comes up or restarts or its parameters change, repeats
// it every DemandRefresh three times, and then sends one every
// DemandIdleRefresh; a peer declares it down once it owes an
// acknowledgement and has been silent for its detection time since it
// last spoke or since the debt began, whichever is later. The active
// member sends heartbeats periodically: a standby needs them to take over
// (the election's fast failure detector).
//
// A heartbeat travels like every other group message: common header with
// the sender's session and sequence, HMAC, replay window. So a recorded
// heartbeat replayed later is rejected like any replay, and never makes a
// dead peer look alive.
type Heartbeat struct {
	Demand     bool
	Mult       uint8
	Priority   uint8
	TxInterval uint32 // µs
	RxInterval uint32 // µs
}

// Heartbeat sizes and the body version.
const (
	HeartbeatBodyLen = 12
	HeartbeatLen     = HeaderLen + HeartbeatBodyLen + ICVLen // 48
	HeartbeatVersion = 1
	HeartbeatDemand  = 0x80 // flag: demand mode
	// DemandRefresh is the spacing (jittered) at which a member in demand
	// mode repeats an announcement (a change, a peer that came up or
	// restarted) DemandRepeats times, so that a peer that missed it learns
	// its parameters within a few seconds; and the longest a member in
	// demand mode goes without a turn (DemandDue), in which the agent
	// reads its heartbeat socket, whether or not it sends.
	DemandRefresh = time.Second
	// DemandRepeats: with the announcement, four heartbeats carry a
	// change; a peer misses all four at 5 % loss with probability 6e-6.
	DemandRepeats = 3
	// DemandIdleRefresh is how often (jittered, and at most a seventh of
	// DeadInterval) a member in demand mode repeats its heartbeat once the
	// repeats are done, so that the dead interval never runs out on a peer
	// from its silence or from loss: at least seven in any DeadInterval
	// (35 s), with the digest at least once (30 s + 10 %); all seven lost
	// at 5 % loss is 8e-10 a window, at 10 % 1e-7 (less than once a year;
	// with three, about once in 18 days at 5 %).
	DemandIdleRefresh = 5 * time.Second
	// demandIdleShare: the idle refresh is at most DeadInterval divided by
	// this (DemandIdleRefresh's seven per DeadInterval).
	demandIdleShare = 7
	// ReadBack is how long a heartbeat verdict reached on time waits, so
	// that the owner loop reads what already waits in its socket first
	// (see checkLiveness). It adds that much to every detection.
	ReadBack = 2 * time.Millisecond
)

// HeartbeatPortOffset: heartbeats travel to and from the group port + 1
// (spec §2), on a socket of their own that a member reads when it is awake
// anyway rather than at every arrival; everything else uses the group port.
const HeartbeatPortOffset = 1

// IsHeartbeat reports whether pkt, a message this member built, is a
// heartbeat (it leaves from and to the heartbeat port).
func IsHeartbeat(pkt []byte) bool { return len(pkt) > 1 && pkt[1] == TypeHeartbeat }

// AppendBinary appends the 12-byte body.
func (h *Heartbeat) AppendBinary(b []byte) ([]byte, error) {
	f := uint8(0)
	if h.Demand {
		f = HeartbeatDemand
	}
	b = append(b, HeartbeatVersion, f, h.Mult, h.Priority)
	b = be.AppendUint32(b, h.TxInterval)
	b = be.AppendUint32(b, h.RxInterval)
	return b, nil
}

// UnmarshalBinary parses exactly one body of version 1. A zero multiplier or
// transmit interval is malformed: it would make the sender undetectable.
func (h *Heartbeat) UnmarshalBinary(b []byte) error {
	if len(b) < HeartbeatBodyLen {
		return ErrTruncated
	}
	if len(b) != HeartbeatBodyLen {
		return ErrLength
	}
	if b[0] != HeartbeatVersion {
		return ErrVersion
	}
	h.Demand = b[1]&HeartbeatDemand != 0
	h.Mult, h.Priority = b[2], b[3]
	h.TxInterval = be.Uint32(b[4:])
	h.RxInterval = be.Uint32(b[8:])
	if h.Mult == 0 || h.TxInterval == 0 || b[1]&^HeartbeatDemand != 0 {
		return ErrMalformed
	}
	return nil
}

// hbPeer is what a member knows of one peer's heartbeat, for the peer's
// current session (cleared when it restarts).
type hbPeer struct {
	declared bool  // the heartbeat declared it down, and it has not spoken since
	prio     uint8 // its election priority
	demand   bool  // it is in demand mode: down only while it owes an ack
	owed     int64 // when its oldest outstanding update was sent (demand mode)
	mult     uint8
	tx       int64 // ns: the peer's transmit interval
	rx       int64 // ns: the slowest the peer wants to receive at
	// graceFor is the peer's last-heard time for which the verdict was
	// postponed once (see checkLiveness); graceUntil when that ends.
	graceFor, graceUntil int64
}

// hbState is the machine's own heartbeat state.
type hbState struct {
	next   int64 // monotonic ns: next transmission (0: at once)
	turn   int64 // demand mode: next turn, sending or not (DemandDue)
	span   int64 // demand mode: the spacing (unjittered) the last refresh was timed at
	burst  int   // demand mode: heartbeats still to send at DemandRefresh (announce)
	last   int64 // when the last heartbeat was sent (0: none yet)
	step   int64 // aligned with the election (AlignHeartbeat): the spacing; 0: not aligned
	prio   uint8 // this member's election priority (SetHeartbeatPriority)
	demand bool  // this member is in demand mode (SetHeartbeatDemand)
	rx     Heartbeat
}

// SetHeartbeatDemand switches this member's heartbeat between periodic
// (false: an active member, whose death a standby must detect) and demand
// mode (true: a standby, judged by its acknowledgements). A switch is
// announced by a heartbeat at the next Tick.
func (m *Machine) SetHeartbeatDemand(on bool) {
	if m.hb.demand != on {
		m.hb.demand = on
		m.hb.step = 0
		m.announce()
	}
}

// announce sends a heartbeat at the next Tick and, in demand mode,
// repeats it DemandRepeats times at the DemandRefresh spacing: the
// announcement of a change, or to a peer that came up or restarted.
func (m *Machine) announce() {
	m.hb.next, m.hb.burst = 0, 1+DemandRepeats
}

// demandSpacing is the interval, before jitter, to the refresh after one
// sent now at transmit interval tx: DemandRefresh while the announcement
// is repeated, DemandIdleRefresh after, never shorter than tx (a peer's
// RxInterval is a floor) and never longer than a seventh of DeadInterval
// (a peer must hear enough before it runs out, loss included).
func (m *Machine) demandSpacing(tx int64) int64 {
	if m.hb.burst > 0 {
		m.hb.burst--
	}
	if m.hb.burst > 0 {
		return max(int64(DemandRefresh), tx)
	}
	return min(max(int64(DemandIdleRefresh), tx), int64(m.cfg.DeadInterval)/demandIdleShare)
}

// heartbeatOn reports whether this member sends heartbeats.
func (m *Machine) heartbeatOn() bool { return m.cfg.HeartbeatInterval > 0 }

// detect is how long peer p may stay silent before it is declared down
// (0: it sends no heartbeat, DeadInterval applies).
func (p *peer) detect() int64 {
	return int64(p.hb.mult) * p.hb.tx
}

// txInterval is the interval this member transmits at: its own, slowed to
// the slowest receive interval an up peer asked for (RFC 5880 §6.8.3).
func (m *Machine) txInterval() int64 {
	t := int64(m.cfg.HeartbeatInterval)
	for i := range m.peers {
		if p := &m.peers[i]; p.up && p.hb.rx > t {
			t = p.hb.rx
		}
	}
	return t
}

// jittered is d reduced by 0-25 % at random, or by 10-25 % with a detect
// multiplier of 1 (RFC 5880 §6.8.7), so that members started together do
// not send in lockstep and a single late packet is not a missed one.
func (m *Machine) jittered(d int64) int64 {
	m.rng ^= m.rng << 13
	m.rng ^= m.rng >> 7
	m.rng ^= m.rng << 17
	lo, span := uint64(75), uint64(26)
	if m.cfg.HeartbeatMultiplier == 1 {
		span = 16
	}
	return d * int64(lo+m.rng%span) / 100
}

func usOf(d int64) uint32 {
	d /= int64(time.Microsecond)
	if d > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(d)
}

// sendHeartbeat multicasts a heartbeat when one is due. Nothing is sent
// while no peer is known: the digest is the hello that finds peers.
func (m *Machine) sendHeartbeat(now int64, out []Action) []Action {
	if !m.heartbeatOn() || len(m.peers) == 0 {
		return out
	}
	if m.hb.demand && now >= m.hb.turn {
		m.hb.turn = now + int64(DemandRefresh)
	}
	if now < m.hb.next {
		return out
	}
	tx := m.txInterval()
	switch {
	case m.hb.demand:
		m.hb.span = m.demandSpacing(tx)
		m.hb.next = now + m.jittered(m.hb.span)
	case m.hb.step >= tx: // on the election's grid (AlignHeartbeat): unjittered
		m.hb.next += m.hb.step
		if m.hb.next <= now {
			m.hb.next = now + m.hb.step
		}
		tx = m.hb.step
	default: // not aligned, or a peer asked for a slower interval since
		m.hb.step = 0
		m.hb.next = now + m.jittered(tx)
	}
	return m.emitHeartbeat(now, tx, out)
}

// emitHeartbeat builds one heartbeat announcing transmit interval tx.
func (m *Machine) emitHeartbeat(now, tx int64, out []Action) []Action {
	m.hb.last = now
	h := Heartbeat{Demand: m.hb.demand, Priority: m.hb.prio, Mult: uint8(m.cfg.HeartbeatMultiplier), TxInterval: usOf(tx), RxInterval: usOf(int64(m.cfg.HeartbeatInterval))}
	start := m.begin(TypeHeartbeat)
	m.arena, _ = h.AppendBinary(m.arena)
	out, n := m.finish(out, start, netip.Addr{})
	m.C.HeartbeatsSent += uint64(n)
	return out
}

// onHeartbeat records peer pi's heartbeat parameters (its liveness was
// already refreshed by the receive path: any fresh message counts).
func (m *Machine) onHeartbeat(pi int) {
	h := &m.hb.rx
	p := &m.peers[pi]
	m.C.HeartbeatsReceived++
	p.hb.demand, p.hb.prio = h.Demand, h.Priority
	p.hb.mult = h.Mult
	p.hb.tx = int64(h.TxInterval) * int64(time.Microsecond)
	p.hb.rx = int64(h.RxInterval) * int64(time.Microsecond)
}

// silentSince is when peer p's current silence began: its last message,
// or in demand mode the later of that and the start of its debt (0: in
// demand mode and owing nothing, so its silence means nothing).
func (p *peer) silentSince() int64 {
	if !p.hb.demand {
		return p.heard
	}
	if p.outstanding == 0 {
		return 0
	}
	return max(p.heard, p.hb.owed)
}

// expiry is when peer p is declared down if nothing is heard from it (0:
// no heartbeat from it, down already, or nothing to wait for).
func (p *peer) expiry() int64 {
	d := p.detect()
	since := p.silentSince()
	if d == 0 || !p.up || since == 0 {
		return 0
	}
	e := since + d
	if p.hb.graceFor == since && p.hb.graceUntil > e {
		e = p.hb.graceUntil
	}
	return e
}

// checkLiveness declares down every peer silent for its detection time and
// reports each as ActPeerDown: an acknowledgement it owed is not waited for
// any more (AckingPeers no longer counts it), and an election may take
// over from it.
//
// Every verdict is postponed once, so that the peer's messages already
// queued in this member's socket are read first: by ReadBack when it is
// reached on time (the owner loop reads its queue before the timer fires
// again), by one interval when it is reached late — this member's own loop
// ran more than one transmit interval after the peer's expiry: a member
// that was itself stalled (scheduling, a long slice of work) may hold many
// of the peer's heartbeats unread. Without the short postponement a member
// woken by its timer a few milliseconds late called a live peer dead while
// its heartbeat waited in the queue (seen at 33 ms × 3 under load).
func (m *Machine) checkLiveness(now int64, out []Action) []Action {
	for i := range m.peers {
		p := &m.peers[i]
		e := p.expiry()
		if e == 0 || now < e {
			continue
		}
		if since := p.silentSince(); p.hb.graceFor != since {
			wait := int64(ReadBack)
			if now-e > p.hb.tx {
				wait = p.hb.tx
			}
			p.hb.graceFor, p.hb.graceUntil = since, now+wait
			continue
		}
		p.up, p.inSync, p.acking = false, false, false
		p.hb.declared = true
		m.C.PeersDetectedDown++
		m.log.Warn("hasync: peer down (heartbeat silent)", "peer", p.addr, "id", p.id,
			"silent", time.Duration(now-p.heard), "detect", time.Duration(p.detect()), "demand", p.hb.demand)
		out = append(out, Action{Kind: ActPeerDown, To: p.addr})
	}
	return out
}

// revived reports (ActPeerAlive) a peer the heartbeat declared down that
// speaks again in the same session: the verdict was wrong (it was stalled,
// or its messages were lost), and whatever was done on it — an election's
// fast takeover — must be undone. A restarted peer is a new incarnation:
// the old one did die.
func (m *Machine) revived(pi int, restarted bool, out []Action) []Action {
	p := &m.peers[pi]
	if p.up || restarted || !p.hb.declared {
		return out
	}
	p.hb.declared = false
	return append(out, Action{Kind: ActPeerAlive, To: p.addr})
}

// heartbeatDeadline is the earliest heartbeat timer: the next transmission,
// in demand mode the next turn, and every up peer's expiry.
func (m *Machine) heartbeatDeadline(t int64) int64 {
	if m.heartbeatOn() && len(m.peers) > 0 {
		t = min(t, m.hb.next)
		if m.hb.demand {
			t = min(t, m.hb.turn)
		}
	}
	for i := range m.peers {
		if e := m.peers[i].expiry(); e != 0 {
			t = min(t, e)
		}
	}
	return t
}

// LastHeard is when the peer at addr was last heard (monotonic ns; 0:
// unknown). The agent gives an election the silence it measured.
func (m *Machine) LastHeard(addr netip.Addr) int64 {
	for i := range m.peers {
		if m.peers[i].addr == addr {
			return m.peers[i].heard
		}
	}
	return 0
}

// SetHeartbeatPriority sets the election priority this member's heartbeats
// carry (announced at the next Tick when it changes).
func (m *Machine) SetHeartbeatPriority(p uint8) {
	if m.hb.prio != p {
		m.hb.prio = p
		m.announce()
	}
}

// FirstInLine reports whether this member, of election priority prio and
// address m's own, outranks every up peer by the heartbeats' priorities
// (VRRP's order: higher priority, then higher address). Of several
// standbys told that the active member died, only the first in line acts
// at once; the others leave it to the election's own timers (they hear the
// new active member's advertisement first), so the fast path makes no
// second master. A peer whose priority is unknown (no heartbeat yet)
// counts as outranking.
func (m *Machine) FirstInLine(prio uint8) bool {
	for i := range m.peers {
		p := &m.peers[i]
		if !p.up || p.id == 0 {
			continue
		}
		if p.hb.mult == 0 || p.hb.prio > prio || p.hb.prio == prio && p.addr.Compare(m.cfg.Addr) > 0 {
			return false
		}
	}
	return true
}
