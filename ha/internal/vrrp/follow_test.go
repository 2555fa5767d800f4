package vrrp

import (
	"testing"
	"time"
)

// An advert read late counts from its arrival: the Master_Down_Timer is
// where it would have been had the advert been read at once, and an
// arrival older than an advert already learnt moves nothing back.
func TestLateAdvertArrival(t *testing.T) {
	h := newH(t, cfg(100))
	h.do(0, Event{Kind: EvStartup})
	h.advert(sec, upper, 200, sec)
	h.want(Backup, sec+mdi(100, sec))
	late := Event{Kind: EvAdvert, Src: upper, Priority: 200, Interval: sec}

	// Read 3.5 s after it arrived at 2 s (the backup was stalled, or read
	// it only at the timer): the timer counts from 2 s, not from now.
	late.Arrived = 2 * sec
	h.do(5500*time.Millisecond, late)
	h.want(Backup, 2*sec+mdi(100, sec))

	// An arrival before the last advert learnt (a copy of it read late):
	// the timer stays.
	late.Arrived = 1500 * time.Millisecond
	h.do(5600*time.Millisecond, late)
	h.want(Backup, 2*sec+mdi(100, sec))

	// An arrival in the future of now (clock skew between the stamp and
	// the machine's clock) counts as now.
	late.Arrived = 7 * sec
	h.do(6*sec, late)
	h.want(Backup, 6*sec+mdi(100, sec))

	// Due now, with the late advert that arrived before the deadline read
	// first (the runner drains the lazy socket before acting on a timer):
	// no takeover.
	dl := 6*sec + mdi(100, sec)
	late.Arrived = dl - 100*time.Millisecond
	h.do(dl+time.Millisecond, late)
	h.do(dl+time.Millisecond, Event{Kind: EvTimer})
	h.want(Backup, dl-100*time.Millisecond+mdi(100, sec))
}

// Follows: only an advert of the master the backup follows, with nothing
// else pending on its timer, may be read late.
func TestFollows(t *testing.T) {
	adv := func(prio uint8) Event { return Event{Kind: EvAdvert, Src: upper, Priority: prio, Interval: sec} }
	h := newH(t, cfg(100))
	h.do(0, Event{Kind: EvStartup})
	if h.m.Follows(adv(200)) {
		t.Fatal("follows an advert it has not heard")
	}
	h.do(sec, adv(200))
	if !h.m.Follows(adv(200)) {
		t.Fatal("does not follow the master's advert it learnt")
	}
	for _, ev := range []Event{adv(150), adv(0), {Kind: EvAdvert, Src: lower, Priority: 200, Interval: sec},
		{Kind: EvAdvert, Src: upper, Priority: 200, Interval: 2 * sec}, {Kind: EvTimer, Src: upper, Priority: 200, Interval: sec}} {
		if h.m.Follows(ev) {
			t.Errorf("follows %+v", ev)
		}
	}
	// A resignation: the timer runs to the skew, nothing may be late.
	h.do(2*sec, adv(0))
	if h.m.Follows(adv(200)) {
		t.Error("follows the master's advert after it resigned")
	}
	h.do(2100*time.Millisecond, adv(200))
	if !h.m.Follows(adv(200)) {
		t.Error("does not follow the master back")
	}
	// A lower priority than ours with preemption: discarded (the timer
	// must run out), never late.
	h.do(3*sec, adv(50))
	if h.m.Follows(adv(50)) {
		t.Error("follows a master it is about to preempt")
	}
	// Master: nothing.
	h.do(3*sec+mdi(100, sec), Event{Kind: EvTimer})
	h.want(Master, -1, becomeMaster...)
	if h.m.Follows(adv(200)) {
		t.Error("a Master follows an advert")
	}
}

// Our own priority raised above the master's (tracking, an operator) with
// preemption: its adverts must be read at once again, so that the
// preemption (and its delay) counts from their arrival, not from a drain.
func TestFollowsNotAfterOwnPriorityPreempts(t *testing.T) {
	adv := Event{Kind: EvAdvert, Src: upper, Priority: 150, Interval: sec}
	c := cfg(100)
	c.PreemptDelay = 5 * sec
	h := newH(t, c)
	h.do(0, Event{Kind: EvStartup})
	h.do(sec, adv)
	if !h.m.Follows(adv) {
		t.Fatal("does not follow the master's advert it learnt")
	}
	h.do(sec+100*time.Millisecond, Event{Kind: EvPriority, Priority: 200})
	if h.m.Follows(adv) {
		t.Error("follows, read late, the advert of a master its own priority now preempts")
	}
}
