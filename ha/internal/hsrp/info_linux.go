package hsrp

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// Info is the group as the runner last saw it, for `hactl show
// redundancy`: the runner's goroutine owns the Machine, so it publishes
// these after every step and readers take the copy.
type Info struct {
	Priority       uint8      // ours now (1 while held)
	Active         netip.Addr // the active router as last heard; ours when Active
	ActivePriority uint8      // its priority; 0 before any hello from it
	Hello, Hold    time.Duration
}

type info struct {
	prio, active, activePrio atomic.Uint32
	hello, hold              atomic.Int64
}

func (i *info) store(m *Machine) {
	i.prio.Store(uint32(m.Priority()))
	a, p := m.Active()
	var u uint32
	if a.Is4() {
		b := a.As4()
		u = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	i.active.Store(u)
	i.activePrio.Store(uint32(p))
	h, hd := m.Timers()
	i.hello.Store(int64(h))
	i.hold.Store(int64(hd))
}

// Info returns the latest published state; before Run has taken a step, the
// configured priority and timers.
func (r *Runner) Info() Info {
	i := &r.inf
	in := Info{Priority: uint8(i.prio.Load()), ActivePriority: uint8(i.activePrio.Load()),
		Hello: time.Duration(i.hello.Load()), Hold: time.Duration(i.hold.Load())}
	if a := i.active.Load(); a != 0 {
		in.Active = netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
	}
	if in.Priority == 0 {
		in.Priority = r.cfg.Machine.Priority
		in.Hello, in.Hold = r.cfg.Machine.Hellotime, r.cfg.Machine.Holdtime
	}
	return in
}
