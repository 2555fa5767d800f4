package deadline

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newTimer(t *testing.T) *Timer {
	t.Helper()
	tm, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tm.Close(); err != nil {
			t.Error(err)
		}
	})
	return tm
}

// wait receives ticks until one is due (as the owner loop does) and returns
// the time it was handled.
func wait(tm *Timer) time.Duration {
	for {
		<-tm.C()
		if now := tm.Now(); tm.Due(now) {
			return now
		}
	}
}

// armed is how long until the timerfd fires (0: disarmed).
func armed(t *testing.T, tm *Timer) time.Duration {
	t.Helper()
	var cur unix.ItimerSpec
	if err := unix.TimerfdGettime(tm.fd, &cur); err != nil {
		t.Fatal(err)
	}
	return time.Duration(cur.Value.Nano())
}

// A deadline fires, never before its time; one in the past fires at once.
func TestFires(t *testing.T) {
	tm := newTimer(t)
	at := tm.Now() + time.Millisecond
	tm.Set(at)
	if got := wait(tm); got < at {
		t.Errorf("handled at %v, before the deadline %v", got, at)
	}
	tm.Set(-time.Second)
	wait(tm)
	tm.Reset(0)
	wait(tm)
}

// A deadline moved later fires at the later time, not at the first; one
// moved earlier fires at the earlier time. The order is checked against a
// second timer, not against a duration.
func TestMoved(t *testing.T) {
	tm, ref := newTimer(t), newTimer(t)
	now := tm.Now()
	tm.Set(now + 2*time.Millisecond)
	tm.Set(now + time.Hour)                  // moved later, beyond the test
	ref.Set(ref.Now() + 20*time.Millisecond) // after the first deadline
	// The kernel holds the moved deadline, not the old one: the process
	// does not wake at the old time.
	if left := armed(t, tm); left < time.Minute {
		t.Errorf("moved an hour later, the timerfd fires in %v", left)
	}
	wait(ref)
	select {
	case <-tm.C():
		if tm.Due(tm.Now()) {
			t.Fatal("a deadline moved an hour later fired at its old time")
		}
	default:
	}
	// Moved earlier: from an hour to now.
	tm.Set(tm.Now() + time.Millisecond)
	wait(tm)
}

// Disarmed (Set(Never), or a deadline beyond any uptime), the timer does
// not fire while a later one does.
func TestNever(t *testing.T) {
	for _, off := range []time.Duration{Never, 1<<62 + 1} {
		tm, ref := newTimer(t), newTimer(t)
		tm.Set(tm.Now() + time.Millisecond)
		tm.Set(off)
		if left := armed(t, tm); left != 0 {
			t.Errorf("Set(%v): the timerfd is armed for %v", off, left)
		}
		ref.Reset(20 * time.Millisecond)
		wait(ref)
		select {
		case <-tm.C():
			t.Errorf("Set(%v): the disarmed timer ticked", off)
		default:
		}
		if tm.Due(tm.Now()) {
			t.Errorf("Set(%v): Due with no deadline armed", off)
		}
	}
}

// Re-arming allocates nothing: the owner loop does it at every event.
func TestSetAllocs(t *testing.T) {
	tm := newTimer(t)
	i := time.Duration(0)
	if a := testing.AllocsPerRun(100, func() {
		i++
		tm.Set(tm.Now() + time.Hour + i)
		tm.Reset(time.Hour)
		_ = tm.Due(tm.Now())
	}); a != 0 {
		t.Errorf("Set: %v allocations, want 0", a)
	}
}

// Close returns with the reader goroutine waiting in the poller, and with a
// deadline armed.
func TestClose(t *testing.T) {
	tm, err := New()
	if err != nil {
		t.Fatal(err)
	}
	tm.Reset(time.Hour)
	if err := tm.Close(); err != nil {
		t.Fatal(err)
	}
}

// Now is never behind the kernel's clock as the timerfd reads it: when the
// timerfd fires for a deadline, Now has reached it, so the tick is not
// dropped as stale (a clock read in the other order lost ticks: the owner
// loop then never ran again).
func TestNowNotBehindKernel(t *testing.T) {
	for range 100 {
		tm := newTimer(t)
		for range 100 {
			var ts unix.Timespec
			if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
				t.Fatal(err)
			}
			if now := tm.Now(); tm.base+int64(now) < ts.Nano() {
				t.Fatalf("Now %v + base is %v behind the kernel's clock", now, time.Duration(ts.Nano()-tm.base-int64(now)))
			}
		}
	}
}

// Every expiration ticks, back to back: the reader goroutine reads the
// timerfd once per expiration and then waits without reading again, so an
// expiration that came in between must still wake it (each deadline here
// is set while the reader is between its read and its wait, or waiting).
func TestEveryExpiryTicks(t *testing.T) {
	tm := newTimer(t)
	for i := range 500 {
		switch i % 3 {
		case 0:
			tm.Reset(0) // already past: fires at once
		case 1:
			tm.Set(tm.Now() + 50*time.Microsecond)
		case 2:
			tm.Set(tm.Now() + time.Millisecond)
			tm.Set(tm.Now()) // moved earlier, to now
		}
		select {
		case <-tm.C():
		case <-time.After(5 * time.Second):
			t.Fatalf("expiration %d: no tick within 5 s", i)
		}
	}
}

// What a re-arm costs: VRRP's Master_Down_Timer moves later at every
// advertisement heard, one timerfd_settime each. Keeping the earlier expiry
// armed instead would trade these for a wake-up per detection interval
// (docs/performance.md, "Idle cost").
func BenchmarkSetMoved(b *testing.B) {
	tm, err := New()
	if err != nil {
		b.Fatal(err)
	}
	defer tm.Close()
	at := tm.Now() + time.Hour
	for b.Loop() {
		at += time.Millisecond
		tm.Set(at)
	}
}
