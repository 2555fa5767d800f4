package hsrp

import (
	"net/netip"
	"time"
)

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
	m.activeTimer, m.silent, m.silentFrom = now, true, ev.Src
	return m.timers(now, out)
}

// ReasonAlive is the state change reason of a takeover undone.
const ReasonAlive = "the active router taken over on its heartbeat's silence spoke again"

// peerAlive undoes a takeover the heartbeat caused when the active router
// it replaced turns out to be alive (its group messages resumed in the same
// session): as on a hello from a higher-priority active router, this
// router goes to Speak at once instead of staying a second active router
// until that router's next hello (3 s by default).
func (m *Machine) peerAlive(now time.Duration, ev Event, out []Action) []Action {
	if m.state != Active || !m.replaced.IsValid() || ev.Src != m.replaced {
		return out
	}
	m.replaced = netip.Addr{}
	m.active = ev.Src
	m.activeTimer, m.standbyTimer = now+m.hold, now+m.hold // A B
	out = m.to(Speak, ReasonAlive, ev.Src, out)
	return m.sendHello(now, out)
}
