package deadline

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// kernel is the timerfd's state: how long until it fires (0: disarmed) and
// its period (0: once).
func kernel(t *testing.T, tm *Timer) (left, period time.Duration) {
	t.Helper()
	var cur unix.ItimerSpec
	if err := unix.TimerfdGettime(tm.fd, &cur); err != nil {
		t.Fatal(err)
	}
	return time.Duration(cur.Value.Nano()), time.Duration(cur.Interval.Nano())
}

// monotonic is the kernel's CLOCK_MONOTONIC.
func monotonic(t *testing.T) time.Duration {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

// due receives ticks until one is due, as the owner loop does, and returns
// when it was handled; a stale tick (the deadline moved after it fired) is
// skipped.
func due(t *testing.T, tm *Timer) time.Duration {
	t.Helper()
	for {
		select {
		case <-tm.C():
			if now := tm.Now(); tm.Due(now) {
				return now
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no due tick within 5 s")
		}
	}
}

// cadence arms tm on a cadence of step p: three deadlines a step apart, set
// before the first one fires (tried again if the test was descheduled
// between them), and returns the armed deadline.
func cadence(t *testing.T, tm *Timer, p time.Duration) time.Duration {
	t.Helper()
	for range 100 {
		at := tm.Now() + p
		tm.Set(at)
		tm.Set(at + p)
		tm.Set(at + 2*p)
		if _, period := kernel(t, tm); period == p && tm.Now() < at {
			return at + 2*p
		}
	}
	t.Fatalf("three deadlines %v apart: the kernel never repeats them", p)
	return 0
}

// Once a deadline moves by the same step twice, the kernel repeats it: a
// deadline set to its next expiry after each tick makes no system call,
// and every tick still comes, never before its deadline.
func TestCadenceCostsNoSettime(t *testing.T) {
	const p = 20 * time.Millisecond
	tm := newTimer(t)
	at := cadence(t, tm, p)
	checked := 0
	for range 25 {
		now := due(t, tm)
		if now < at {
			t.Fatalf("handled at %v, before the deadline %v", now, at)
		}
		next := at + ((now-at)/p+1)*p // the kernel's next expiry: the grid's first point after now
		periodic, n := tm.arm.period == p, tm.settimes
		tm.Set(next)
		// Unless the clock passed next during Set (then it fires at once,
		// one timerfd_settime), the kernel already holds it.
		if periodic && tm.Now() < next {
			checked++
			if tm.settimes != n {
				t.Fatalf("Set(%v), the kernel's next expiry, at %v: %d timerfd_settime, want 0",
					next, now, tm.settimes-n)
			}
			if _, period := kernel(t, tm); period != p {
				t.Fatalf("the kernel's period is %v, want %v", period, p)
			}
		}
		at = next
	}
	if checked < 5 {
		t.Skipf("the clock passed the next deadline during Set in %d of 25 rounds: too loaded to tell", 25-checked)
	}
}

// A deadline off the cadence re-arms exactly, once, and disarms the
// period: the kernel no longer fires on the old grid.
func TestOffCadenceRearms(t *testing.T) {
	const p = 20 * time.Millisecond
	tm := newTimer(t)
	at := cadence(t, tm, p)
	due(t, tm)
	n := tm.settimes
	off := at + p + p/3
	tm.Set(off)
	if tm.settimes != n+1 {
		t.Fatalf("Set off the cadence: %d timerfd_settime, want 1", tm.settimes-n)
	}
	before := monotonic(t)
	left, period := kernel(t, tm)
	after := monotonic(t)
	if period != 0 {
		t.Fatalf("off the cadence the kernel still repeats every %v", period)
	}
	// The kernel holds exactly off (on its clock: base + off).
	if end := time.Duration(tm.base) + off; left > end-before || left < end-after {
		t.Fatalf("the timerfd fires in %v, want %v to %v", left, end-after, end-before)
	}
	if now := due(t, tm); now < off {
		t.Fatalf("handled at %v, before the deadline %v", now, off)
	}
}

// A wake-up later than two periods (the owner was descheduled) finds one
// tick, not one per missed expiry; a deadline then set a whole period from
// now fires at it, not on the old grid before it.
func TestLateWakeOneTick(t *testing.T) {
	const p = 20 * time.Millisecond
	tm := newTimer(t)
	at := cadence(t, tm, p)
	time.Sleep(at + 2*p + p/2 - tm.Now())
	now := due(t, tm)
	select {
	case <-tm.C():
		// Unless the grid's next expiry has come meanwhile.
		if tm.Now() < at+3*p {
			t.Fatal("a second tick waiting after a late wake-up")
		}
	default:
	}
	next := now + p
	tm.Set(next)
	if got := due(t, tm); got < next {
		t.Fatalf("after the late wake-up at %v the next due tick came at %v, before %v", now, got, next)
	}
}
