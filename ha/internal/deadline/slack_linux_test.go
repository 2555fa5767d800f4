package deadline

import (
	"testing"
	"time"
)

// On the timerfd: deadlines a period apart, each jittered earlier by up to
// half the slack (a deadline counted from a periodic peer's arrival, set
// at the wake-up after it), are repeated by the kernel after the first
// few: Set makes no timerfd_settime, and no tick is handled before its
// deadline or later than the slack after it, but for the wake-up's own
// latency.
func TestSlackCadenceOnTimerfd(t *testing.T) {
	const p = 20 * time.Millisecond
	const slack = time.Millisecond
	tm := newTimer(t)
	tm.SetSlack(slack)
	j := jitter{x: 7}
	to := tm.Now() + p
	tm.Set(to)
	set := to // the deadline Set was given: to, jittered earlier
	settimes := []uint64{tm.settimes}
	for range 25 {
		now := due(t, tm)
		if now < set {
			t.Fatalf("handled at %v, before the deadline %v", now, set)
		}
		if at := time.Duration(tm.at.Load()); at < set || at > set+slack {
			t.Fatalf("armed for %v, want %v to %v", at, set, set+slack)
		}
		// The next deadline after the one that passed (not after now: a
		// late wake-up must not move the sender's grid).
		to += p
		for to <= now {
			to += p
		}
		set = to - j.next(slack/2)
		tm.Set(set)
		settimes = append(settimes, tm.settimes)
	}
	// The first deadline, a second step, the cadence; then nothing but
	// when the test was descheduled past a deadline (Set of a passed
	// deadline re-arms at once).
	late := 0
	for i := 4; i < len(settimes); i++ {
		if settimes[i] != settimes[i-1] {
			late++
		}
	}
	if late > 5 {
		t.Fatalf("timerfd_settime after each Set: %v; want none from the fourth but when late", settimes)
	}
	if _, period := kernel(t, tm); period != p {
		t.Errorf("the kernel's period is %v, want %v", period, p)
	}
}
