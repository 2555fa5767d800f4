package agent

import (
	"errors"
	"net/netip"

	"github.com/hagent/hagent/ha/internal/udpio"
	"github.com/hagent/hagent/ha/mip"
)

// Replies held until a peer acknowledged the binding update (group
// ack_before_reply): the node hears "accepted" only once the acceptance
// survives this member's death. The slots are preallocated. What a reply
// becomes when no acknowledgement comes is the owner's policy
// (group.require_replication, see Agent.unacked), not the queue's.
const holdSlots = 1024

// held is one reply waiting: its verdict (not bytes: it is sealed when it
// leaves, after the policy may have turned it into a denial) and where it
// goes.
type held struct {
	used    bool
	home    uint32
	id      uint64
	due     int64
	v       Verdict
	to      netip.AddrPort
	ifindex int
	nai     [mip.MaxNAI]byte // the verdict's NAI, kept beyond the request's buffer
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
	send func(h *held, acked bool)

	Held, Acked, Timeouts, Overflow, Superseded uint64
	// What became of replies no peer acknowledged (Agent.unacked).
	AcceptedUnreplicated uint64 // sent "accepted" with no peer up, or none acking (served alone)
	DeniedNoAck          uint64 // held, no ack in time, answered 130 instead
	DeniedUnreplicated   uint64 // require_replication, no peer up: answered 130 at once
	DeniedFull           uint64 // require_replication, queue full: answered 130 at once
	Unsigned             uint64 // its node's key was replaced by a reload while held: not sent
	lastAlone, lastDeny  int64  // rate limits of the log lines (monotonic ns)
}

func newHoldQueue(wait int64, send func(h *held, acked bool)) *holdQueue {
	q := &holdQueue{
		slots:  make([]held, holdSlots),
		byHome: make(map[uint32]int32, holdSlots),
		wait:   wait,
		one:    make([]udpio.Packet, 1),
		send:   send,
		// The first line of each kind is logged at once.
		lastAlone: -int64(logEvery),
		lastDeny:  -int64(logEvery),
	}
	q.one[0].Buf = make([]byte, 0, ReplyBufLen)
	return q
}

// hold parks a verdict (copied, its NAI too); false when the queue is full
// (the caller decides what to send instead).
func (q *holdQueue) hold(now int64, home uint32, id uint64, v *Verdict, to netip.AddrPort, ifindex int) bool {
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
	h.v, h.to, h.ifindex = *v, to, ifindex
	h.v.Keep(h.nai[:])
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
func (q *holdQueue) take(home uint32) *held {
	i, ok := q.byHome[home]
	if !ok {
		return nil
	}
	h := &q.slots[i]
	h.used = false
	delete(q.byHome, home)
	return h
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
	q.send(h, acked)
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
func (a *Agent) releaseHeld(h *held, acked bool) {
	if !acked {
		a.unacked(&h.v)
	}
	a.sendOne(&h.v, h.to, h.ifindex)
}

// sendOne seals v and sends it alone (a reply leaving the hold queue).
func (a *Agent) sendOne(v *Verdict, to netip.AddrPort, ifindex int) {
	q := a.hold
	p := &q.one[0]
	b, err := a.core.Seal(v, p.Buf[:0])
	if err != nil {
		if errors.Is(err, errKeyReplaced) {
			q.Unsigned++
		}
		return
	}
	p.Buf, p.N, p.Src, p.Dst, p.Ifindex = b, len(b), to, v.From, ifindex
	if n, err := a.conn.WriteBatch(q.one); err != nil || n != 1 {
		a.core.Stats.SendErrors++
	}
}

// unacked applies the replication policy to an "accepted" verdict for a
// table change that no peer has acknowledged, when nothing more will be
// waited for: the wait is over, a newer request superseded it, this member
// stops being active or stops, or no peer is up to acknowledge it at all.
// It may turn v into a denial.
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
func (a *Agent) unacked(v *Verdict) {
	q := a.hold
	now := a.now()
	if a.cfg.Group.RequireReplication || a.grp.m.AckingPeers() > 0 {
		a.refuse(now, v, &q.DeniedNoAck, "registration answered 130: no peer acknowledged its binding update in time; the node retries")
		return
	}
	a.acceptAlone()
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

// refuse turns v into 130, counts it in n and says why at most once a
// second (the denials share one rate limit).
func (a *Agent) refuse(now int64, v *Verdict, n *uint64, why string) {
	v.Deny(mip.CodeInsufficientResources)
	*n++
	if q := a.hold; now-q.lastDeny >= int64(logEvery) {
		q.lastDeny = now
		a.log.Warn(why, "denied_total", q.DeniedNoAck+q.DeniedUnreplicated+q.DeniedFull, "acking_peers", a.grp.m.AckingPeers())
	}
}

// gateReply decides what happens now to the verdict accepting a table
// change (or a retransmission of one, ch.Dup) in a group with
// ack_before_reply: true: send it now (it may have been turned into a
// denial); false: it is held until a peer acknowledges, or not answered.
func (a *Agent) gateReply(now int64, ch *Change, v *Verdict, to netip.AddrPort, ifindex int) bool {
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
		a.refuse(now, v, &q.DeniedUnreplicated, "registration answered 130: no peer is up to replicate it (group.require_replication)")
		return true
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
	if q.hold(now, home, id, v, to, ifindex) {
		return false
	}
	if !a.cfg.Group.RequireReplication {
		return true // counted in Overflow: availability first, as before the policy
	}
	v.Deny(mip.CodeInsufficientResources)
	q.DeniedFull++
	return true
}
