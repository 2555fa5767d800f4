package vrrp

import (
	"net/netip"
	"time"
)

// PeerSilent tells the election that the group member at addr has been
// silent for silent, longer than its heartbeat detection time; interval is
// the heartbeat interval (the scale of the skew). The machine acts only if
// addr is the master it follows (silent.go). It never blocks the caller
// (the agent's owner loop): when the control channel is full the hint is
// dropped and the Master_Down_Timer decides, as without a heartbeat.
func (r *Runner) PeerSilent(addr netip.Addr, silent, interval time.Duration) {
	r.hint(Event{Kind: EvSilent, Src: addr, Silent: silent, Interval: interval})
}

// PeerAlive tells the election that the member at addr, reported silent,
// spoke again in the same session: a takeover made on its silence is
// undone (silent.go). Never blocks, like PeerSilent.
func (r *Runner) PeerAlive(addr netip.Addr) { r.hint(Event{Kind: EvAlive, Src: addr}) }

func (r *Runner) hint(ev Event) {
	select {
	case r.ctl <- rxEvent{Event: ev}:
	default:
	}
}
