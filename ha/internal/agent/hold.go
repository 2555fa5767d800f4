package agent

import (
	"net/netip"

	"github.com/hagent/hagent/ha/internal/udpio"
	"github.com/hagent/hagent/ha/mip"
)

// Replies held until a peer acknowledged the binding update (group
// ack_before_reply): the node hears "accepted" only once the acceptance
// survives this member's death. The slots are preallocated. What a reply
// becomes when no acknowledgement comes is the owner's policy
// (group.require_replication, see Agent.unacked), not the queue's.
const (
	holdSlots  = 1024
	holdBufLen = 320 // a reply with the longest NAI and an authenticator
)

type held struct {
	used bool
	home uint32
	id   uint64
	due  int64
	pkt  udpio.Packet
	buf  [holdBufLen]byte
}

// holdQueue is a FIFO of held replies: every reply waits the same time, so
// insertion order is deadline order; acknowledged ones leave from the middle
// and the head skips them.
type holdQueue struct {
	slots  []held
	head   int
	n      int // slots between head and tail, used or not
	byHome map[uint32]int32
	wait   int64
	one    []udpio.Packet // scratch for sending one packet
	// send gets every reply that leaves the queue: acked says whether a
	// peer acknowledged it; otherwise the owner decides what it becomes.
	// Set once at construction (a method value built per call would
	// allocate on the registration path).
	send func(p *udpio.Packet, acked bool)

	Held, Acked, Timeouts, Overflow, Superseded uint64
	// What became of replies no peer acknowledged (Agent.unacked).
	AcceptedUnreplicated uint64 // sent "accepted" with no peer up, or none acking (served alone)
	DeniedNoAck          uint64 // held, no ack in time, answered 130 instead
	DeniedUnreplicated   uint64 // require_replication, no peer up: answered 130 at once
	DeniedFull           uint64 // require_replication, queue full: answered 130 at once
	Unsigned             uint64 // could not be re-signed as a denial (key reloaded): not sent
	lastAlone, lastDeny  int64  // rate limits of the log lines (monotonic ns)
}

func newHoldQueue(wait int64, send func(p *udpio.Packet, acked bool)) *holdQueue {
	return &holdQueue{
		slots:  make([]held, holdSlots),
		byHome: make(map[uint32]int32, holdSlots),
		wait:   wait,
		one:    make([]udpio.Packet, 1),
		send:   send,
		// The first line of each kind is logged at once.
		lastAlone: -int64(logEvery),
		lastDeny:  -int64(logEvery),
	}
}

// hold parks a reply; false when the queue is full or the reply too long
// (the caller decides what to send instead).
func (q *holdQueue) hold(now int64, home uint32, id uint64, reply []byte, to netip.AddrPort, from netip.Addr, ifindex int) bool {
	if len(reply) > holdBufLen {
		return false
	}
	if i, ok := q.byHome[home]; ok {
		// A newer request for the same node: the older reply leaves now, in
		// order, unacknowledged (its update was superseded by this one).
		q.Superseded++
		q.release(i, false)
	}
	q.compact()
	if q.n == len(q.slots) {
		q.Overflow++
		return false
	}
	i := (q.head + q.n) % len(q.slots)
	h := &q.slots[i]
	h.used, h.home, h.id, h.due = true, home, id, now+q.wait
	n := copy(h.buf[:], reply)
	h.pkt = udpio.Packet{Buf: h.buf[:n], N: n, Src: to, Dst: from, Ifindex: ifindex}
	q.byHome[home] = int32(i)
	q.n++
	q.Held++
	return true
}

// holding reports whether the reply to (home, id) is held: a retransmission
// of that request is answered by it when it leaves.
func (q *holdQueue) holding(home uint32, id uint64) bool {
	i, ok := q.byHome[home]
	return ok && q.slots[i].id == id
}

// acked releases the reply held for (home, id), if any, as acknowledged.
func (q *holdQueue) acked(home uint32, id uint64) {
	if i, ok := q.byHome[home]; ok && q.slots[i].id <= id {
		q.Acked++
		q.release(i, true)
	}
}

// expire releases, unacknowledged, every reply whose wait is over.
func (q *holdQueue) expire(now int64) {
	for q.compact(); q.n > 0 && q.slots[q.head].due <= now; q.compact() {
		q.Timeouts++
		q.release(int32(q.head), false)
	}
}

// take removes the reply held for home without sending it and returns it
// (valid until the next hold); nil when none is held.
func (q *holdQueue) take(home uint32) *udpio.Packet {
	i, ok := q.byHome[home]
	if !ok {
		return nil
	}
	h := &q.slots[i]
	h.used = false
	delete(q.byHome, home)
	return &h.pkt
}

// next is the earliest deadline (false when nothing is held).
func (q *holdQueue) next() (int64, bool) {
	q.compact()
	if q.n == 0 {
		return 0, false
	}
	return q.slots[q.head].due, true
}

func (q *holdQueue) release(i int32, acked bool) {
	h := &q.slots[i]
	if !h.used {
		return
	}
	h.used = false
	delete(q.byHome, h.home)
	q.send(&h.pkt, acked)
}

// compact drops released slots from the head.
func (q *holdQueue) compact() {
	for q.n > 0 && !q.slots[q.head].used {
		q.head = (q.head + 1) % len(q.slots)
		q.n--
	}
}

// releaseHeld sends a reply leaving the hold queue (owner goroutine); one
// no peer acknowledged goes through the replication policy first.
func (a *Agent) releaseHeld(p *udpio.Packet, acked bool) {
	if !acked && !a.unacked(p.Buf[:p.N]) {
		return
	}
	a.sendOne(p)
}

func (a *Agent) sendOne(p *udpio.Packet) {
	a.hold.one[0] = *p
	if n, err := a.conn.WriteBatch(a.hold.one); err != nil || n != 1 {
		a.core.Stats.SendErrors++
	}
}

// unacked applies the replication policy to an "accepted" reply for a table
// change that no peer has acknowledged, when nothing more will be waited
// for: the wait is over, a newer request superseded it, this member stops
// being active or stops, or no peer is up to acknowledge it at all. It
// returns whether reply (perhaps rewritten in place) is to be sent.
//
// With group.require_replication, or while a peer that has been
// acknowledging this member's updates is still up, the node is told 130
// (insufficient resources, RFC 5944 §3.4) instead: it retries, and a retry
// reaches whichever member is active then. The binding stays in the table
// and keeps replicating; a retry re-registers the same care-of, which is
// harmless. Otherwise this member serves alone, as an unreplicated group
// must, and counts every such acceptance: each is lost if this member dies
// before a peer returns.
//
// Why acking peers (hasync AckingPeers), not every up peer: a peer that is
// heard but has never acknowledged anything proves nothing about this
// member's reach. One replayed group message makes such a "peer" up for
// DeadInterval (35 s); counting it would let that message stop every
// registration (the hostile-input test does exactly that). An acking peer
// that falls silent is the case of issue 7: this member is more likely cut
// off than alone, and its acceptances would die with it.
func (a *Agent) unacked(reply []byte) bool {
	q := a.hold
	now := a.now()
	if a.cfg.Group.RequireReplication || a.grp.m.AckingPeers() > 0 {
		return a.refuse(now, reply, &q.DeniedNoAck, "registration answered 130: no peer acknowledged its binding update in time; the node retries")
	}
	a.acceptAlone()
	return true
}

// acceptAlone counts (and, at most once a second, logs) an acceptance no
// peer can acknowledge because none is up.
func (a *Agent) acceptAlone() {
	q := a.hold
	q.AcceptedUnreplicated++
	if now := a.now(); now-q.lastAlone >= int64(logEvery) {
		q.lastAlone = now
		a.log.Warn("registration accepted with no peer acknowledging: this member serves alone, and loses these bindings if it dies before a peer returns (group.require_replication refuses instead)",
			"accepted_unreplicated", q.AcceptedUnreplicated)
	}
}

// refuse denies reply (deny), counts it in n and says why at most once a
// second (the denials share one rate limit); false when the reply cannot
// be re-signed and must not be sent.
func (a *Agent) refuse(now int64, reply []byte, n *uint64, why string) bool {
	if !a.deny(reply) {
		return false
	}
	*n++
	if q := a.hold; now-q.lastDeny >= int64(logEvery) {
		q.lastDeny = now
		a.log.Warn(why, "denied_total", q.DeniedNoAck+q.DeniedUnreplicated+q.DeniedFull, "acking_peers", a.grp.m.AckingPeers())
	}
	return true
}

// deny turns an accepted reply into 130 in place; false (counted) when it
// cannot be re-signed, and then it must not be sent.
func (a *Agent) deny(reply []byte) bool {
	if a.core.Deny(reply, mip.CodeInsufficientResources) {
		return true
	}
	a.hold.Unsigned++
	return false
}

// gateReply decides what happens now to the reply accepting a table change
// (or a retransmission of one, ch.Dup) in a group with ack_before_reply:
// true: send reply now (it may have been rewritten into a denial); false:
// it is held until a peer acknowledges, or dropped.
func (a *Agent) gateReply(now int64, ch *Change, reply []byte, to netip.AddrPort, from netip.Addr, ifindex int) bool {
	q, m := a.hold, a.grp.m
	home, id := ch.Entry.Home, ch.Entry.ID
	if ch.Dup && q.holding(home, id) {
		return false // the held reply answers the retransmission too: one answer
	}
	if m.UpPeers() == 0 {
		if !a.cfg.Group.RequireReplication {
			a.acceptAlone()
			return true
		}
		return a.refuse(now, reply, &q.DeniedUnreplicated, "registration answered 130: no peer is up to replicate it (group.require_replication)")
	}
	if m.AckingPeers() == 0 && !a.cfg.Group.RequireReplication {
		// Peers are heard but none has acknowledged anything (one just
		// joined, or a replayed group message made one up): holding would
		// delay every reply by 2 × ack_timeout and then send it anyway
		// (unacked: no acking peer, so it is accepted alone). Send it now,
		// counted as unreplicated; the update still goes out and is
		// retransmitted. Not logged: under a hostile replay that would be a
		// line a second for as long as the bogus peer stays up.
		q.AcceptedUnreplicated++
		return true
	}
	if ch.Dup {
		// The first update may never have been acknowledged (its reply was
		// then a denial): announce the binding again, and let an ack decide.
		a.core.acts = m.Reannounce(now, home, a.core.acts[:0])
		a.groupActions()
	}
	if q.hold(now, home, id, reply, to, from, ifindex) {
		return false
	}
	if !a.cfg.Group.RequireReplication {
		return true // counted in Overflow: availability first, as before the policy
	}
	if !a.deny(reply) {
		return false
	}
	q.DeniedFull++
	return true
}
