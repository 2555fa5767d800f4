package hsrp

import "time"

// ReasonSilent is the role change reason of a takeover the group heartbeat
// brought forward.
const ReasonSilent = "active router's group heartbeat stopped"

// peerSilent is the fast failure detector's hook (the agent's group
// heartbeat, hasync): the member at ev.Src has been silent for ev.Silent,
// longer than its heartbeat detection time. If this router is Standby and
// Src is the active router, the active timer expires now (event c): the
// standby, which HSRP already chose as the one successor, becomes Active
// without waiting for the rest of the hold time. Listen and Speak routers
// are left to the hold time: they compete for standby first.
//
// As for VRRP (vrrp/silent.go), a hello from the active router learnt more
// than one heartbeat interval after its last heartbeat means its election
// is alive and only its group protocol stalled: nothing happens.
func (m *Machine) peerSilent(now time.Duration, ev Event, out []Action) []Action {
	if m.state != Standby || !ev.Src.IsValid() || ev.Src != m.active {
		return out
	}
	if m.heardAt > now-ev.Silent+ev.Interval {
		return out
	}
	m.activeTimer, m.silent = now, true
	return m.timers(now, out)
}
