// Package runner is what the VRRP and HSRP runners share around their pure
// state machines: the owner loop that feeds a machine its events and its
// one timer (Loop), and, on Linux, the protocol-independent half of a
// runner (Shell): the interface, the role.Change feed with its drop-oldest
// rule, the virtual address, gratuitous ARP, and the counters of those.
//
// What differs stays in each protocol's runner_linux.go: sockets and their
// options, packet validation and drop reasons, which actions exist and how
// the protocol's states map onto roles.
package runner

import (
	"context"
	"sync/atomic"
	"time"
)

// Machine is a pure protocol state machine (vrrp.Machine, hsrp.Machine):
// it appends the actions an event calls for to out and returns them with
// its next deadline, on the clock Loop.Run gives it; math.MaxInt64 is none.
type Machine[E, A any] interface {
	Handle(now time.Duration, ev E, out []A) ([]A, time.Duration)
}

// Loop is one runner's owner goroutine: it alone touches the machine, fed
// by the reader goroutine (Received), by role.Elector's SetHold and
// SetPriority (Control) and by one timer that follows the machine's next
// deadline. E and A are the protocol's event and action types.
type Loop[E, A any] struct {
	Machine  Machine[E, A]
	Received <-chan E // valid packets, parsed by the reader goroutine
	Control  <-chan E // SetHold, SetPriority
	// Startup is handled once, after the Control events already queued;
	// Shutdown when ctx is done (the machine resigns); Timer when the
	// deadline has passed.
	Startup, Shutdown, Timer E
	// Do does the actions the machine returned (sends, addresses, ARP,
	// role reports). acts is reused for the next event.
	Do func(acts []A)
	// Awake, if set, is called after each packet received and each timer
	// tick: the wake-ups the election has anyway (an advertisement sent or
	// heard, the lazily read ones at the deadline), at which the agent
	// reads the group heartbeats queued meanwhile instead of waking for
	// each (groupio's lazy socket).
	Awake func()
	// Queued, if set, is called at every wake-up before anything else is
	// handled (the event that woke the loop, or the deadline that passed):
	// it hands the machine, through handle, the events that were queued
	// without waking the loop (the VRRP backup's lazy socket), so that a
	// deadline is acted on only after what arrived before it.
	Queued func(handle func(E))
	// Wakeups, if set, counts the loop's wake-ups.
	Wakeups *atomic.Uint64
	// Clock is the machine's clock and the timer that follows its
	// deadline: a deadline.Timer in the runners (a timerfd: a deadline
	// that moves at every packet does not wake the process at its old
	// time). nil: Go's clock and a time.Timer, which the tests' fake time
	// (testing/synctest) drives.
	Clock Clock
}

// Clock is a monotonic clock and one deadline on it (deadline.Timer).
type Clock interface {
	Now() time.Duration
	// Set arms the deadline (at or beyond 1<<62: none).
	Set(at time.Duration)
	// C ticks when the deadline may have passed; Due says whether it has
	// (a tick can be stale: the deadline moved after it fired).
	C() <-chan struct{}
	Due(now time.Duration) bool
}

// Run handles events until ctx is done, then handles Shutdown and returns.
func (l *Loop[E, A]) Run(ctx context.Context) {
	clk := l.Clock
	if clk == nil {
		g := newGoClock()
		defer g.t.Stop()
		clk = g
	}
	out := make([]A, 0, 8)
	handle := func(ev E) {
		var dl time.Duration
		out, dl = l.Machine.Handle(clk.Now(), ev, out[:0])
		l.Do(out)
		clk.Set(dl)
	}
	// Apply SetHold/SetPriority calls made before Run first: a held owner
	// must not start as master.
	for pending := true; pending; {
		select {
		case ev := <-l.Control:
			handle(ev)
		default:
			pending = false
		}
	}
	handle(l.Startup)
	tick := clk.C()
	for {
		select {
		case <-ctx.Done():
			handle(l.Shutdown)
			return
		case ev := <-l.Received:
			l.woke(handle)
			handle(ev)
			l.awake()
		case ev := <-l.Control:
			l.woke(handle)
			handle(ev)
		case <-tick:
			l.woke(handle)
			// Due after the queued events: they may have moved it.
			if clk.Due(clk.Now()) {
				handle(l.Timer)
			}
			l.awake()
		}
	}
}

func (l *Loop[E, A]) woke(handle func(E)) {
	if l.Wakeups != nil {
		l.Wakeups.Add(1)
	}
	if l.Queued != nil {
		l.Queued(handle)
	}
}

func (l *Loop[E, A]) awake() {
	if l.Awake != nil {
		l.Awake()
	}
}

// goClock is Clock on Go's monotonic clock and a time.Timer.
type goClock struct {
	start time.Time
	t     *time.Timer
	c     chan struct{}
	at    time.Duration
}

func newGoClock() *goClock {
	g := &goClock{start: time.Now(), c: make(chan struct{}, 1), at: -1}
	g.t = time.AfterFunc(time.Hour, func() {
		select {
		case g.c <- struct{}{}:
		default:
		}
	})
	g.t.Stop()
	return g
}

func (g *goClock) Now() time.Duration { return time.Since(g.start) }
func (g *goClock) C() <-chan struct{} { return g.c }

// Due: at is -1 when no deadline is armed.
func (g *goClock) Due(now time.Duration) bool { return g.at >= 0 && now >= g.at }

func (g *goClock) Set(at time.Duration) {
	if at >= 1<<62 {
		g.t.Stop()
		g.at = -1
		return
	}
	g.at = max(at, 0)
	// Measured now, after the machine's actions: sending and netlink took
	// some of the time.
	g.t.Reset(max(at-g.Now(), 0))
}
