package agent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/datapath"
)

// prioElector is fakeElector that also takes tracking's priority.
type prioElector struct {
	fakeElector
	prio uint8
}

func (p *prioElector) SetPriority(v uint8) { p.prio = v }

// A tracked interface that goes down lowers the member's election
// priority, and with it the priority its heartbeats carry and the one it
// ranks itself by when the active member dies: otherwise a standby whose
// uplink is down would still claim the fast takeover over a standby the
// election prefers, and the election would take it back at once (two
// role changes, two rounds of gratuitous ARP).
func TestTrackingLowersHeartbeatPriority(t *testing.T) {
	h := newReplHarnessWith(t, false, func(cfg *config.Config) {
		cfg.Group.Heartbeat, cfg.Group.HeartbeatInterval, cfg.Group.HeartbeatMultiplier = true, 100*time.Millisecond, 3
		cfg.Group.HeartbeatFailover = true
		cfg.VRRP.Enabled, cfg.VRRP.AdvertInterval, cfg.VRRP.Priority = true, time.Second, 200
		cfg.VRRP.TrackInterfaces = []config.Track{{Interface: "uplink0", Weight: 100}}
	})
	h.peer.SetHeartbeatPriority(150)
	h.peerAcking()
	h.out = h.peer.Tick(h.now, h.out[:0]) // its heartbeat: priority 150
	h.peerSays(h.out)
	e := &prioElector{}
	h.a.grp.elector = e

	h.a.linkEvent(datapath.LinkEvent{Name: "uplink0", Up: true, Carrier: false})
	if e.prio != 100 {
		t.Fatalf("election priority %d after the tracked link went down, want 100", e.prio)
	}
	// The member's next heartbeat tells the peer: the peer (150) now
	// outranks it.
	h.now += int64(time.Second)
	h.handle(Event{Kind: EvTimer})
	h.toPeer(true)
	if !h.peer.FirstInLine(120) {
		t.Error("the peer (120 here) is not first in line: the member's heartbeat still carries its configured 200")
	}
	// A third member, the master, dies: the member (100) is not first in
	// line against the up peer (150), so it leaves the takeover to the
	// election.
	h.a.peerDown(h.now, netip.MustParseAddr("127.0.0.9"))
	if e.hints != 0 {
		t.Error("the member took the fast takeover by its configured priority 200, above the peer's 150; tracking made it 100")
	}
	// Link back: 200 again, first in line.
	h.a.linkEvent(datapath.LinkEvent{Name: "uplink0", Up: true, Carrier: true})
	h.a.peerDown(h.now, netip.MustParseAddr("127.0.0.9"))
	if e.prio != 200 || e.hints != 1 {
		t.Errorf("link back up: priority %d, hints %d; want 200 and the takeover", e.prio, e.hints)
	}
}
