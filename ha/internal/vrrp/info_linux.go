package vrrp

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// Info is the election as the runner last saw it, for `hactl show
// redundancy`: the runner's goroutine owns the Machine, so it publishes
// these after every step and readers take the copy.
type Info struct {
	Priority            uint8      // ours now (tracking applied; 1 while held)
	Master              netip.Addr // the master as last heard; ours when Master
	MasterPriority      uint8      // its advertised priority; 0 before any advert
	MasterAdverInterval time.Duration
	MasterDownInterval  time.Duration
}

type info struct {
	prio, master, masterPrio atomic.Uint32
	interval, down           atomic.Int64
}

func (i *info) store(m *Machine) {
	i.prio.Store(uint32(m.Priority()))
	var a uint32
	if ad := m.MasterAddr(); ad.Is4() {
		b := ad.As4()
		a = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	i.master.Store(a)
	i.masterPrio.Store(uint32(m.MasterPriority()))
	i.interval.Store(int64(m.MasterAdverInterval()))
	i.down.Store(int64(m.MasterDownInterval()))
}

// Info returns the latest published election state; before Run has taken a
// step, the configured priority and intervals.
func (r *Runner) Info() Info {
	i := &r.inf
	in := Info{Priority: uint8(i.prio.Load()), MasterPriority: uint8(i.masterPrio.Load()),
		MasterAdverInterval: time.Duration(i.interval.Load()), MasterDownInterval: time.Duration(i.down.Load())}
	if a := i.master.Load(); a != 0 {
		in.Master = netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
	}
	if in.Priority == 0 {
		in.Priority = r.cfg.Machine.Priority
		in.MasterAdverInterval = r.cfg.Machine.AdvertInterval
	}
	return in
}
