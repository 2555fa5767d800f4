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
// (group.require_replication, see Registrar.unacked), not the queue's.
const holdSlots = 1024

// held is one reply waiting: its verdict (not bytes: it is sealed when it
// leaves, after the policy may have turned it into a denial) and where it
// goes.
type held struct {
	used    bool
	home    uint32
	key     uint64 // binding.Entry.Key: one reply per router of a shared home address
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
	byHome map[bindingKey]int32
	wait   int64
	one    []udpio.Packet // scratch for sending one packet
	// send gets every reply that leaves the queue: acked says whether a
	// peer acknowledged it; otherwise the owner decides what it becomes.
	// Set once at construction (a method value built per call would
	// allocate on the registration path).
	send func(h *held, acked bool)

	Held, Acked, Timeouts, Overflow, Superseded uint64
	// What became of replies no peer acknowledged (Registrar.unacked).
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
		byHome: make(map[bindingKey]int32, holdSlots),
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
func (q *holdQueue) hold(now int64, home uint32, key uint64, id uint64, v *Verdict, to netip.AddrPort, ifindex int) bool {
	if i, ok := q.byHome[bindingKey{home, key}]; ok {
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
	h.used, h.home, h.key, h.id, h.due = true, home, key, id, now+q.wait
	h.v, h.to, h.ifindex = *v, to, ifindex
	h.v.Keep(h.nai[:])
	q.byHome[bindingKey{home, key}] = int32(i)
	q.n++
	q.Held++
	return true
}

// holding reports whether the reply to (home, id) is held: a retransmission
// of that request is answered by it when it leaves.
func (q *holdQueue) holding(home uint32, key uint64, id uint64) bool {
	i, ok := q.byHome[bindingKey{home, key}]
	return ok && q.slots[i].id == id
}

// acked releases the reply held for (home, id), if any, as acknowledged.
func (q *holdQueue) acked(home uint32, key uint64, id uint64) {
	if i, ok := q.byHome[bindingKey{home, key}]; ok && q.slots[i].id <= id {
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
func (q *holdQueue) take(home uint32, key uint64) *held {
	i, ok := q.byHome[bindingKey{home, key}]
	if !ok {
		return nil
	}
	h := &q.slots[i]
	h.used = false
	delete(q.byHome, bindingKey{home, key})
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
	delete(q.byHome, bindingKey{h.home, h.key})
	q.send(h, acked)
}

// compact drops released slots from the head.
func (q *holdQueue) compact() {
	for q.n > 0 && !q.slots[q.head].used {
		q.head = (q.head + 1) % len(q.slots)
		q.n--
	}
}
