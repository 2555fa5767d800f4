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
}

// never is the longest timer Run sets: "no deadline" without overflowing
// the runtime's when = now + d.
const never = time.Duration(1<<62) - 1

// Run handles events until ctx is done, then handles Shutdown and returns.
func (l *Loop[E, A]) Run(ctx context.Context) {
	// Monotonic time since start: the machines' clock (routers boot at 1970).
	start := time.Now()
	now := func() time.Duration { return time.Since(start) }
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	out := make([]A, 0, 8)
	handle := func(ev E) {
		var dl time.Duration
		out, dl = l.Machine.Handle(now(), ev, out[:0])
		l.Do(out)
		// Measured after the actions: sending and netlink took some of it.
		timer.Reset(min(max(dl-now(), 0), never))
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
	for {
		select {
		case <-ctx.Done():
			handle(l.Shutdown)
			return
		case ev := <-l.Received:
			handle(ev)
		case ev := <-l.Control:
			handle(ev)
		case <-timer.C:
			handle(l.Timer)
		}
	}
}
