package agent

import (
	"net/netip"
	"testing"
)

func TestHoldQueue(t *testing.T) {
	var sent []string
	var unacked int
	send := func(h *held, acked bool) {
		sent = append(sent, string(h.v.NAI))
		if !acked {
			unacked++
		}
	}
	q := newHoldQueue(100, send)
	to := netip.MustParseAddrPort("198.51.100.7:434")
	// Verdicts told apart by their NAI, which the queue must copy: the
	// request's buffer it aliases is reused once the batch is answered.
	vd := func(nai string) *Verdict {
		return &Verdict{Answer: true, NAI: []byte(nai), From: netip.MustParseAddr("192.0.2.1")}
	}
	for i, r := range []string{"a", "b", "c"} {
		v := vd(r)
		if !q.hold(int64(i), uint32(i+1), 0, 10, v, to, 0) {
			t.Fatal("hold refused with free slots")
		}
		v.NAI[0] = 'X' // the batch's buffer is reused
	}
	q.acked(2, 0, 9) // an older version is not this reply's ack
	if len(sent) != 0 {
		t.Fatalf("sent %v before any matching ack", sent)
	}
	q.acked(2, 0, 10)
	if len(sent) != 1 || sent[0] != "b" {
		t.Fatalf("ack for home 2: sent %v", sent)
	}
	if d, ok := q.next(); !ok || d != 100 {
		t.Fatalf("next deadline %d %v, want 100 (home 1's)", d, ok)
	}
	// A newer request for home 3 sends the older reply at once.
	q.hold(50, 3, 0, 11, vd("c2"), to, 0)
	if sent[len(sent)-1] != "c" || q.Superseded != 1 {
		t.Fatalf("superseded: sent %v", sent)
	}
	q.expire(100) // home 1's wait is over; c2 waits until 150
	if sent[len(sent)-1] != "a" || q.Timeouts != 1 {
		t.Fatalf("expire(100): sent %v timeouts %d", sent, q.Timeouts)
	}
	q.expire(149)
	if len(sent) != 3 {
		t.Fatalf("expire(149) sent early: %v", sent)
	}
	q.expire(150)
	if len(sent) != 4 || sent[3] != "c2" {
		t.Fatalf("expire(150): %v", sent)
	}
	if _, ok := q.next(); ok {
		t.Fatal("queue not empty")
	}
	// Full: hold refuses (the caller sends at once), counted.
	if unacked != 3 { // c (superseded), a and c2 (wait over); b was acked
		t.Fatalf("%d replies released unacknowledged, want 3", unacked)
	}
	// take removes a held reply without sending it.
	q.hold(200, 7, 0, 1, vd("t"), to, 0)
	if h := q.take(7, 0); h == nil || string(h.v.NAI) != "t" || q.holding(7, 0, 1) {
		t.Fatalf("take: %v", h)
	}
	if q.take(7, 0) != nil {
		t.Fatal("take twice")
	}
	if _, ok := q.next(); ok {
		t.Fatal("a taken reply still has a deadline")
	}
	q2 := newHoldQueue(100, send)
	for i := 0; i < holdSlots; i++ {
		if !q2.hold(0, uint32(i+1), 0, 1, vd("x"), to, 0) {
			t.Fatalf("slot %d refused", i)
		}
	}
	if q2.hold(0, 1<<30, 0, 1, vd("x"), to, 0) || q2.Overflow != 1 {
		t.Fatal("a full queue accepted a reply")
	}
	y := vd("y")
	allocs := testing.AllocsPerRun(100, func() {
		q2.acked(5, 0, 1)
		q2.hold(1, 5, 0, 1, y, to, 0)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per hold/ack", allocs)
	}
}
