package agent

import (
	"net/netip"

	"github.com/hagent/hagent/ha/internal/udpio"
)

// Replies held until a peer acknowledged the binding update (group
// ack_before_reply): the node hears "accepted" only once the acceptance
// survives this member's death. The slots are preallocated; when they are
// all in use a reply is sent at once (and counted), never dropped.
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

	Held, Acked, Timeouts, Overflow, Superseded uint64
}

func newHoldQueue(wait int64) *holdQueue {
	return &holdQueue{
		slots:  make([]held, holdSlots),
		byHome: make(map[uint32]int32, holdSlots),
		wait:   wait,
		one:    make([]udpio.Packet, 1),
	}
}

// hold parks a reply; false when the queue is full (send it now instead).
func (q *holdQueue) hold(now int64, home uint32, id uint64, reply []byte, to netip.AddrPort, from netip.Addr, ifindex int, send func(*udpio.Packet)) bool {
	if len(reply) > holdBufLen {
		return false
	}
	if i, ok := q.byHome[home]; ok {
		// A newer request for the same node: the older reply goes now, in
		// order (its update was superseded by this one anyway).
		q.Superseded++
		q.release(i, send)
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

// acked sends the reply held for (home, id), if any.
func (q *holdQueue) acked(home uint32, id uint64, send func(*udpio.Packet)) {
	if i, ok := q.byHome[home]; ok && q.slots[i].id <= id {
		q.Acked++
		q.release(i, send)
	}
}

// expire sends every reply whose wait is over (no peer acknowledged).
func (q *holdQueue) expire(now int64, send func(*udpio.Packet)) {
	for q.compact(); q.n > 0 && q.slots[q.head].due <= now; q.compact() {
		q.Timeouts++
		q.release(int32(q.head), send)
	}
}

// next is the earliest deadline (false when nothing is held).
func (q *holdQueue) next() (int64, bool) {
	q.compact()
	if q.n == 0 {
		return 0, false
	}
	return q.slots[q.head].due, true
}

func (q *holdQueue) release(i int32, send func(*udpio.Packet)) {
	h := &q.slots[i]
	if !h.used {
		return
	}
	h.used = false
	delete(q.byHome, h.home)
	send(&h.pkt)
}

// compact drops released slots from the head.
func (q *holdQueue) compact() {
	for q.n > 0 && !q.slots[q.head].used {
		q.head = (q.head + 1) % len(q.slots)
		q.n--
	}
}

// sendHeld sends one held reply (owner goroutine).
func (a *Agent) sendHeld(p *udpio.Packet) {
	a.hold.one[0] = *p
	if n, err := a.conn.WriteBatch(a.hold.one); err != nil || n != 1 {
		a.core.Stats.SendErrors++
	}
}
