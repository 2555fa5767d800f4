package hsrp

import (
	"net/netip"
	"time"
)

// PeerSilent tells the election that the group member at addr has been
// silent for silent, longer than its heartbeat detection time (interval:
// the heartbeat interval). Only a Standby router whose active router that
// is acts on it (silent.go). It never blocks the caller (the agent's owner
// loop): with the control channel full the hint is dropped and the hold
// time decides, as without a heartbeat.
func (r *Runner) PeerSilent(addr netip.Addr, silent, interval time.Duration) {
	select {
	case r.ctl <- Event{Kind: EvSilent, Src: addr, Silent: silent, Interval: interval}:
	default:
	}
}
