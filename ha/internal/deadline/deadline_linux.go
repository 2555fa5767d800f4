// Package deadline is an owner loop's one timer on a Linux timerfd
// (CLOCK_MONOTONIC, absolute, nanosecond), read through the runtime's
// poller.
//
// Why not time.Timer: an idle member's loops move their deadlines at every
// packet (a peer's heartbeat expiry at each heartbeat, VRRP's
// Master_Down_Timer at each advertisement), and the runtime's timer heap
// keeps a moved timer at its old place until it comes due, so the process
// wakes at the old time to find nothing to do. The runtime also sleeps in
// epoll_wait with a timeout in whole milliseconds, rounded down, so every
// timer wakes its thread early and again about 1 ms later; and its monitor
// thread (sysmon) sleeps only until the next timer, waking with it. A
// timerfd moves in the kernel (timerfd_settime), fires once at the
// nanosecond it is set to, and is one more descriptor in the poller: with no
// Go timer armed the process sleeps in epoll_wait without a timeout and
// sysmon stays asleep, so it wakes once per deadline that really comes due.
package deadline

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Never disarms the timer (Set(Never)); any deadline at or beyond it does.
const Never = time.Duration(1<<63 - 1)

// Timer is one deadline on its own clock (Now: time since New, on
// CLOCK_MONOTONIC, the clock of Go's monotonic time). Set, Reset, Now and
// Due belong to one goroutine (the owner loop); the channel C returns may
// be received from in its select. C may deliver a tick for a deadline that
// was moved later after it fired: the owner checks Due when it receives
// one, and the moved deadline fires in its turn. After a due tick the
// owner Sets its next deadline (or Never): a deadline on a cadence is
// repeated by the kernel, and left where it was it ticks again a step later.
type Timer struct {
	c     chan struct{}
	fd    int
	f     *os.File
	rc    syscall.RawConn
	start time.Time
	base  int64         // CLOCK_MONOTONIC at start, ns
	at    atomic.Int64  // the armed deadline in Now's clock (Never: none)
	arm   arming        // the owner's: what the kernel holds (plan)
	slack time.Duration // the owner's: how late a deadline may fire (SetSlack)
	spec  unix.ItimerSpec
	// settimes counts the timerfd_settime calls (the owner's).
	settimes uint64
	done     chan struct{}

	// The reader goroutine's: the expiration count and the read callback,
	// one method value so that nothing is allocated per tick.
	ticks  uint64
	readFn func(fd uintptr) bool
}

// New creates a disarmed timer and its reader goroutine. Close releases
// both.
func New() (*Timer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("deadline: timerfd_create: %w (the kernel needs CONFIG_TIMERFD)", err)
	}
	t := &Timer{c: make(chan struct{}, 1), fd: fd, done: make(chan struct{})}
	if err := t.setBase(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	t.at.Store(int64(Never))
	t.arm = arming{at: Never}
	// A non-blocking descriptor makes os.NewFile register it with the poller.
	t.f = os.NewFile(uintptr(fd), "timerfd")
	if t.rc, err = t.f.SyscallConn(); err != nil {
		t.f.Close()
		return nil, fmt.Errorf("deadline: the timerfd's raw connection: %w", err)
	}
	t.readFn = t.read
	go t.run()
	return t, nil
}

// setBase reads Go's clock (start) and then the kernel's (base), the same
// CLOCK_MONOTONIC. In that order the timerfd never fires before Now has
// reached the deadline (at fire time Now ≥ at: Due holds, the tick is not
// dropped); it fires late by the gap between the two readings, so a gap
// longer than maxGap (the goroutine was preempted) is read again.
func (t *Timer) setBase() error {
	const maxGap = 20 * time.Microsecond
	var ts unix.Timespec
	for try := 0; ; try++ {
		t.start = time.Now()
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			return fmt.Errorf("deadline: clock_gettime: %w", err)
		}
		t.base = ts.Nano()
		if time.Since(t.start) <= maxGap || try == 100 {
			return nil
		}
	}
}

// C delivers a tick when the armed deadline has passed (see Timer).
func (t *Timer) C() <-chan struct{} { return t.c }

// Start is the instant Now counts from. An owner on a clock of its own
// converts a deadline with it once (at − Start's offset), so that the same
// deadline is the same value to Set, which then costs nothing.
func (t *Timer) Start() time.Time { return t.start }

// Now is the time since New on the timer's clock.
func (t *Timer) Now() time.Duration { return time.Since(t.start) }

// Due reports whether a deadline is armed and now (Now's clock) has reached
// it: a tick received while it is false is stale (the deadline moved after
// it fired) and is ignored.
func (t *Timer) Due(now time.Duration) bool {
	at := time.Duration(t.at.Load())
	return at != Never && now >= at
}

// Reset arms the timer d from now (d ≤ 0: at once), like time.Timer.Reset.
func (t *Timer) Reset(d time.Duration) {
	now := t.Now()
	if d >= Never-now {
		t.Set(Never)
		return
	}
	t.Set(now + d)
}

// Set arms the timer for at, in Now's clock (at ≤ Now: at once; Never:
// disarmed). A deadline equal to the one already armed, still ahead, costs
// nothing; so does one on a cadence, the kernel's next expiry of a deadline
// that moved by the same step twice in a row (plan); otherwise one
// timerfd_settime, made with RawSyscall (it never blocks, and the
// scheduler's system-call bookkeeping would wake sysmon). Allocates
// nothing.
func (t *Timer) Set(at time.Duration) {
	next, settime := plan(t.arm, at, t.slack, t.Now())
	t.arm = next
	t.at.Store(int64(next.at))
	if !settime {
		return
	}
	if next.at == Never {
		t.spec = unix.ItimerSpec{}
	} else {
		// An absolute time in the past fires at once; 0 would disarm.
		t.spec = unix.ItimerSpec{
			Value:    unix.NsecToTimespec(max(t.base+int64(max(next.at, 0)), 1)),
			Interval: unix.NsecToTimespec(int64(next.period)),
		}
	}
	t.settimes++
	_, _, e := unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(t.fd), unix.TFD_TIMER_ABSTIME,
		uintptr(unsafe.Pointer(&t.spec)), 0, 0, 0)
	if e != 0 {
		// Only a bad descriptor or argument fails, i.e. a bug or a closed
		// timer: nothing the owner loop could handle.
		panic(fmt.Sprintf("deadline: timerfd_settime: %v", e))
	}
}

// SetSlack lets every later deadline fire up to d after it (0, the
// default: exactly at it; a deadline already passed fires at once). The
// owner that can take the lateness gives it for a deadline that follows
// a periodic peer's arrivals (VRRP's Master_Down_Timer): such a deadline
// moves by the peer's period plus microseconds of arrival jitter, never
// quite a cadence, and with the slack it is one (plan), so that the
// kernel re-arms it and Set costs no timerfd_settime. Due and the tick
// hold to the armed time, never before the deadline Set was given.
func (t *Timer) SetSlack(d time.Duration) { t.slack = max(d, 0) }

// run waits for the timerfd in the poller and turns each expiration into a
// tick on c (dropped if one is already waiting: one is enough). It stays in
// one RawConn.Read for the timer's life: each Read begins by forgetting the
// readiness the poller recorded, so a fresh Read must read before it may
// wait, and an expiration that was just read would cost a second read,
// EAGAIN, at every tick.
func (t *Timer) run() {
	defer close(t.done)
	_ = t.rc.Read(t.readFn) // returns when the timerfd is closed
}

// read is the callback of run's one RawConn.Read: it reads the expiration
// count and, when there was one, ticks and asks to wait for the next
// readiness without a second read. That loses nothing: the read resets the
// count, and an expiration after it, or a timerfd_settime to a time already
// past, is a new readiness that the poller records (or wakes this
// goroutine for) while it is still in the same Read. An expiration between
// the poller's wake-up and the read is read now and leaves a readiness
// with nothing behind it: the next call finds EAGAIN and waits again.
//
// The read is not only for the count (which nothing uses beyond "at least
// one"): the poller's edge-triggered epoll reports each expiration without
// it, but a periodic timerfd re-arms itself only when its expiration is
// read (timerfd_read forwards it to the first period after now), so on a
// cadence the read is what keeps the kernel's timer going.
func (t *Timer) read(fd uintptr) bool {
	for {
		t.ticks = 0
		_, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&t.ticks)), 8)
		switch e {
		case unix.EINTR:
			continue
		case 0:
			t.tick()
		}
		// EAGAIN, including when the deadline was moved between the
		// poller's wake-up and the read (timerfd_settime resets the count);
		// any other error is a closed descriptor, which the wait reports.
		return false
	}
}

// tick delivers an expiration on c. A tick for a deadline moved later since
// it fired is dropped here when the move came first; Due catches the rest.
func (t *Timer) tick() {
	if t.ticks == 0 || !t.Due(t.Now()) {
		return
	}
	select {
	case t.c <- struct{}{}:
	default:
	}
}

// Close stops the reader goroutine and closes the timerfd. The timer must
// not be used after.
func (t *Timer) Close() error {
	err := t.f.Close()
	<-t.done
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}
