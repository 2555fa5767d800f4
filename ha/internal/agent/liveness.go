package agent

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/hasync"
)

// heartbeatConfig passes [group]'s heartbeat keys to the group machine.
// With an election the member starts in demand mode (it is not active):
// only the active member heartbeats periodically, and only when that
// detects its death sooner than the election (activeHeartbeat; the
// registrar switches the mode at each role change).
func heartbeatConfig(cfg *config.Config, hc *hasync.Config) {
	if gc := &cfg.Group; gc.Heartbeat {
		hc.HeartbeatInterval, hc.HeartbeatMultiplier = gc.HeartbeatInterval, gc.HeartbeatMultiplier
		hc.HeartbeatDemand = cfg.VRRP.Enabled || cfg.HSRP.Enabled
		hc.HeartbeatPriority = electionPriority(cfg)
	}
}

// activeHeartbeat decides whether the active member heartbeats
// periodically: only when that tells a standby of its death sooner than
// the election's own timers do (its detection time, multiplier ×
// interval, shorter than VRRP's three advertisement intervals or HSRP's
// hold time) and a standby may act on it (heartbeat_failover). Otherwise
// it stays in demand mode like the standbys (RFC 5880 §6.6: liveness is
// established otherwise, here by the advertisements, and verified on
// demand: a member that owes an acknowledgement is still declared down
// after its detection time of silence). At the default, 3 × the
// advertisement interval at 100 ms adverts, a periodic heartbeat would
// detect at the same time as the election and cost the master a packet
// per advertisement. why says which, for the log and the console.
func activeHeartbeat(cfg *config.Config) (periodic bool, why string) {
	gc := &cfg.Group
	if !gc.Heartbeat {
		return false, "off"
	}
	detect := time.Duration(gc.HeartbeatMultiplier) * gc.HeartbeatInterval
	var election time.Duration
	var what string
	switch {
	case cfg.VRRP.Enabled:
		election, what = 3*cfg.VRRP.AdvertInterval, "3 × the VRRP advertisement interval"
	case cfg.HSRP.Enabled:
		election, what = cfg.HSRP.Hold, "the HSRP hold time"
	default:
		return true, fmt.Sprintf("periodic, %v × %d (no election: every member)", gc.HeartbeatInterval, gc.HeartbeatMultiplier)
	}
	switch {
	case !gc.HeartbeatFailover:
		return false, fmt.Sprintf("demand: heartbeat_failover is off, so no standby acts on the active member's heartbeat (%v × %d)",
			gc.HeartbeatInterval, gc.HeartbeatMultiplier)
	case detect < election:
		return true, fmt.Sprintf("periodic while active: %v × %d = %v detects a dead active member before the election (%s, %v)",
			gc.HeartbeatInterval, gc.HeartbeatMultiplier, detect, what, election)
	}
	return false, fmt.Sprintf("demand: %v × %d = %v detects no sooner than the election (%s, %v), whose advertisements prove the active member alive",
		gc.HeartbeatInterval, gc.HeartbeatMultiplier, detect, what, election)
}

// electionPriority is the configured VRRP or HSRP priority (0: no
// election): the heartbeat's priority at start. VRRP's interface tracking
// changes it later (linkEvent, currentPriority).
func electionPriority(cfg *config.Config) uint8 {
	switch {
	case cfg.VRRP.Enabled:
		return cfg.VRRP.Priority
	case cfg.HSRP.Enabled:
		return cfg.HSRP.Priority
	}
	return 0
}

// currentPriority is this member's election priority now (owner
// goroutine): the configured one, less VRRP interface tracking's weights
// for the tracked interfaces seen down (a weight of 0 resigns: 1), never
// below 1.
func (a *Agent) currentPriority() uint8 {
	v := &a.cfg.VRRP
	if !v.Enabled || len(v.TrackInterfaces) == 0 {
		return electionPriority(a.cfg)
	}
	prio := int(v.Priority)
	for _, tr := range v.TrackInterfaces {
		if a.linkDown[tr.Interface] {
			if tr.Weight == 0 {
				return 1
			}
			prio -= tr.Weight
		}
	}
	return uint8(max(prio, 1))
}

// silenceHearer is the fast failure detector's hook of an election
// (vrrp.Runner, hsrp.Runner): told that the member at addr has been silent
// for silent, it takes over if that member is the one it follows.
type silenceHearer interface {
	PeerSilent(addr netip.Addr, silent, interval time.Duration)
}

// peerDown acts on a peer the group heartbeat declared down (owner
// goroutine).
//
// The registrar has already decided the replies held for an
// acknowledgement if no acknowledging peer is left: they went through the
// replication policy (Registrar.unacked), so by default this member serves
// alone at once and counts it, and with group.require_replication it
// answers 130 at once. Either way the nodes hear within the detection time,
// not after 2 × ack_timeout, and no later registration is held for the dead
// peer (gateReply sees no peer up).
//
// With group.heartbeat_failover the election hears of it too: if the dead
// member is the master it follows, it takes over after a skew on the
// heartbeat's scale instead of three advertisements (vrrp/silent.go).
func (a *Agent) peerDown(now int64, addr netip.Addr) {
	g := a.grp
	if !a.cfg.Group.HeartbeatFailover || g.elector == nil {
		return
	}
	// Of several standbys only the first in line acts at once: the others
	// would become master together with it until its advertisement
	// reached them (measured: 5-11 ms of two masters, and the losers'
	// gratuitous ARP pointing the LAN at a member about to step down).
	if e, ok := g.elector.(silenceHearer); ok && g.m.FirstInLine(a.currentPriority()) {
		silent := time.Duration(now - g.m.LastHeard(addr))
		e.PeerSilent(addr, silent, a.cfg.Group.HeartbeatInterval)
	}
}

// aliveHearer undoes a takeover made on a member's silence when that
// member speaks again in the same session (vrrp.Runner).
type aliveHearer interface {
	PeerAlive(addr netip.Addr)
}

// peerAlive: a member the heartbeat declared down was alive all along (it
// stalled, or its messages were lost). With heartbeat_failover, the
// election undoes a takeover it made on that silence at once, rather than
// leaving two masters until the live one's next advertisement (up to a
// whole advertisement interval; measured 0.8-1.2 s at 1 s adverts with a
// 30 ms heartbeat under load).
func (a *Agent) peerAlive(addr netip.Addr) {
	g := a.grp
	if !a.cfg.Group.HeartbeatFailover || g.elector == nil {
		return
	}
	if e, ok := g.elector.(aliveHearer); ok {
		e.PeerAlive(addr)
	}
}

// heartbeatMode decides the active member's heartbeat mode at start
// (activeHeartbeat), logs it once and keeps it for the console.
func (a *Agent) heartbeatMode() (periodicActive bool) {
	g := a.grp
	if g == nil || g.m == nil {
		return false
	}
	periodicActive, g.hbMode = activeHeartbeat(a.cfg)
	if a.cfg.Group.Heartbeat {
		a.log.Info("group heartbeat", "mode", g.hbMode)
	}
	return periodicActive
}
