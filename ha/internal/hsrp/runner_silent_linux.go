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
	r.hint(Event{Kind: EvSilent, Src: addr, Silent: silent, Interval: interval})
}

// PeerAlive tells the election that the member at addr, reported silent,
// spoke again in the same session: a takeover made on its silence is
// undone (silent.go). Never blocks, like PeerSilent.
func (r *Runner) PeerAlive(addr netip.Addr) { r.hint(Event{Kind: EvAlive, Src: addr}) }

func (r *Runner) hint(ev Event) {
	select {
	case r.ctl <- ev:
	default:
	}
}
