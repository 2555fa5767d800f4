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
	select {
	case r.ctl <- Event{Kind: EvSilent, Src: addr, Silent: silent, Interval: interval}:
	default:
	}
}
